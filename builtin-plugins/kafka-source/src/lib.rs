//! `kafka` source: eKuiper's Kafka source as a component. It reads the
//! topic named by the stream's DATASOURCE: one `partition` (default 0), or,
//! with a `groupID`, every partition of the topic with the group's
//! committed offsets as the starting point and the offsets read committed
//! back to the group. Each record is one message (its value the payload),
//! with `meta(topic)`, `meta(partition)`, `meta(offset)`, `meta(key)` and
//! `meta(headers)` (a JSON object), and the record's timestamp.
//!
//! Rewindable: `offset` is `partition:next-offset` per partition, so a
//! rule with `qos` >= 1 resumes exactly after what it finished.
//! Needs an outbound grant for every broker address.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_common::{
    broker_id, code_name, complete_batches, stale_leader, topic_name, Cluster, FETCH_VERSION,
    LIST_OFFSETS_VERSION, OFFSET_COMMIT_VERSION, OFFSET_FETCH_VERSION,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, GroupId, ListOffsetsRequest, ListOffsetsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use oort_plugin_sdk::{
    export_source, logging as log, Context, Error, Message, PluginInfo, Props, ReadOutcome, Source,
};

const SCHEMA: &str = r#"{"brokers":"string, host:port[,host:port] (required; ssl://host:port for TLS)","partition":"int: the partition to read without a groupID (default 0)","groupID":"string: consumer group whose committed offsets are the start and receive the offsets read","maxBytes":"int: most bytes per fetch (default 1000000)","startOffset":"string: latest (default without a group) or earliest (default with a group), where reading starts with no stored offset","saslAuthType":"string: none, plain or scram (SCRAM-SHA-512)","saslUserName":"string","password":"string","insecureSkipVerify":"bool: TLS without checking the certificate","rootCaPath":"string: CA PEM file (TLS)","rootCARaw":"string: CA PEM in base64 (TLS)","certificationPath":"string: client certificate PEM file (mutual TLS)","certficationRaw":"string: client certificate PEM in base64","privateKeyPath":"string: client key PEM file","privateKeyRaw":"string: client key PEM in base64","tlsMinVersion":"string: tls1.2 (default) or tls1.3","renegotiationSupport":"string: never"}"#;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A group's offsets are committed at most this often while reading.
const AUTO_COMMIT: Duration = Duration::from_secs(1);
/// The longest a Fetch request waits at the broker for data.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(2);
/// How long `open` waits for its first partitions from the group.
const JOIN_AT_OPEN: Duration = Duration::from_secs(15);

mod config;
mod group;
use config::{config, format_offsets, parse_offsets, Config, Part, Start};
use group::{Group, Step};

struct KafkaSource {
    c: Config,
    cluster: Cluster,
    /// Membership, with a groupID.
    group: Option<Group>,
    /// Oort's stored offsets, used at the first assignment.
    resume: Vec<(i32, i64)>,
    /// The partitions this instance reads (with a group: its assignment).
    parts: Vec<Part>,
    /// Fetched, not yet returned: (partition, offset, message).
    pending: VecDeque<(i32, i64, Message)>,
    /// Position last committed to the group.
    committed: String,
    last_commit: Instant,
}

impl KafkaSource {
    fn refresh(&mut self) -> Result<(), Error> {
        let info = self.cluster.partitions(&self.c.topic, false)?;
        for p in &mut self.parts {
            if let Some(i) = info.iter().find(|i| i.index == p.index) {
                p.leader = i.leader;
            }
        }
        Ok(())
    }

    /// ListOffsets for the partitions at `idx`: -1 latest, -2 earliest.
    fn list_offsets(&mut self, idx: &[usize], which: i64) -> Result<(), Error> {
        for &i in idx {
            let (index, leader) = (self.parts[i].index, self.parts[i].leader);
            let req = ListOffsetsRequest::default()
                .with_replica_id(broker_id(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(&self.c.topic))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(index)
                        .with_timestamp(which)])]);
            let resp: ListOffsetsResponse = self.cluster.with_conn(leader, |c| {
                c.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &req)
            })?;
            let p = resp
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == index)
                .ok_or_else(|| Error::unavailable("kafka: ListOffsets gave no answer"))?;
            if p.error_code != 0 {
                return Err(Error::unavailable(format!(
                    "kafka {}[{index}]: listing offsets: {} (error {})",
                    self.c.topic,
                    code_name(p.error_code),
                    p.error_code
                )));
            }
            self.parts[i].fetch = p.offset;
            self.parts[i].delivered = p.offset;
        }
        Ok(())
    }

    /// The group's committed offsets (-1 where none).
    fn group_offsets(&mut self, group: &str) -> Result<Vec<(i32, i64)>, Error> {
        let node = self.cluster.coordinator(group)?;
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(&self.c.topic))
                .with_partition_indexes(
                    self.parts.iter().map(|p| p.index).collect(),
                )]));
        let resp: OffsetFetchResponse = self.cluster.with_conn(node, |c| {
            c.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &req)
        })?;
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                let o = if p.error_code == 0 {
                    p.committed_offset
                } else {
                    -1
                };
                (p.partition_index, o)
            })
            .collect())
    }

    fn commit_group(&mut self, offsets: &[(i32, i64)]) -> Result<(), Error> {
        let Some(group) = self.c.group.clone() else {
            return Ok(());
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let (member, generation) = self
            .group
            .as_ref()
            .map(|g| g.member_generation())
            .unwrap_or((String::new(), -1));
        let node = self.cluster.coordinator(&group)?;
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member))
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&self.c.topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                )]);
        let resp: OffsetCommitResponse = self.cluster.with_conn(node, |c| {
            c.call(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, &req)
        })?;
        for p in resp.topics.iter().flat_map(|t| t.partitions.iter()) {
            if p.error_code != 0 {
                return Err(Error::unavailable(format!(
                    "kafka group {group}: committing partition {}: {} (error {})",
                    p.partition_index,
                    code_name(p.error_code),
                    p.error_code
                )));
            }
        }
        Ok(())
    }

    /// One Fetch per leader; appends what came to `pending`.
    fn fetch(&mut self, wait: Duration) -> Result<(), Error> {
        let mut leaders: Vec<i32> = self.parts.iter().map(|p| p.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        let per = (wait / leaders.len().max(1) as u32).min(MAX_FETCH_WAIT);
        let mut refresh = false;
        for leader in leaders {
            if leader < 0 {
                // No leader at the last metadata: look again below.
                refresh = true;
                continue;
            }
            let idx: Vec<usize> = (0..self.parts.len())
                .filter(|&i| self.parts[i].leader == leader)
                .collect();
            let req = FetchRequest::default()
                .with_replica_id(broker_id(-1))
                .with_max_wait_ms(per.as_millis() as i32)
                .with_min_bytes(1)
                .with_max_bytes(self.c.max_bytes)
                .with_isolation_level(0)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(&self.c.topic))
                    .with_partitions(
                        idx.iter()
                            .map(|&i| {
                                FetchPartition::default()
                                    .with_partition(self.parts[i].index)
                                    .with_fetch_offset(self.parts[i].fetch)
                                    .with_partition_max_bytes(self.c.max_bytes)
                            })
                            .collect(),
                    )]);
            let resp: FetchResponse = match self
                .cluster
                .with_conn(leader, |c| c.call(ApiKey::Fetch, FETCH_VERSION, &req))
            {
                Ok(r) => r,
                Err(e) => {
                    // Another try after a metadata refresh, at the next read.
                    log::warn(&format!("kafka fetch from broker {leader}: {}", e.message));
                    refresh = true;
                    continue;
                }
            };
            for pd in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
                let Some(i) = self
                    .parts
                    .iter()
                    .position(|p| p.index == pd.partition_index)
                else {
                    continue;
                };
                match pd.error_code {
                    0 => {}
                    1 => {
                        // The offset is gone (retention) or beyond the end.
                        let which = match self.c.start {
                            Start::Earliest => -2,
                            Start::Latest => -1,
                        };
                        let was = self.parts[i].fetch;
                        self.list_offsets(&[i], which)?;
                        log::warn(&format!(
                            "kafka {}[{}]: offset {was} is out of range; reading from {} ({:?})",
                            self.c.topic, pd.partition_index, self.parts[i].fetch, self.c.start
                        ));
                        continue;
                    }
                    c if stale_leader(c) || kafka_common::retriable(c) => {
                        refresh = true;
                        continue;
                    }
                    c => {
                        return Err(Error::unavailable(format!(
                            "kafka {}[{}]: fetch: {} (error {c})",
                            self.c.topic,
                            pd.partition_index,
                            code_name(c)
                        )))
                    }
                }
                let Some(records) = pd.records.clone() else {
                    continue;
                };
                self.take(i, records)?;
            }
        }
        if refresh {
            self.cluster.reset();
            self.refresh()?;
        }
        Ok(())
    }

    /// Decodes the complete record batches of one partition's fetch.
    fn take(&mut self, i: usize, records: Bytes) -> Result<(), Error> {
        let index = self.parts[i].index;
        for mut b in complete_batches(records) {
            let set = RecordBatchDecoder::decode(&mut b).map_err(|e| {
                Error::invalid_data(format!(
                    "kafka {}[{index}]: undecodable record batch at offset {}: {e}",
                    self.c.topic, self.parts[i].fetch
                ))
            })?;
            for r in set.records {
                if r.offset < self.parts[i].fetch {
                    continue;
                }
                self.parts[i].fetch = r.offset + 1;
                if r.control {
                    continue;
                }
                let mut m = Message::new(r.value.map(|v| v.to_vec()).unwrap_or_default())
                    .with_meta("topic", self.c.topic.clone())
                    .with_meta("partition", index.to_string())
                    .with_meta("offset", r.offset.to_string());
                if let Some(k) = r.key {
                    m = m.with_meta("key", String::from_utf8_lossy(&k).into_owned());
                }
                if !r.headers.is_empty() {
                    let h: serde_json::Map<String, serde_json::Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            let v = v
                                .as_ref()
                                .map(|v| {
                                    serde_json::Value::String(String::from_utf8_lossy(v).into())
                                })
                                .unwrap_or(serde_json::Value::Null);
                            (k.as_str().to_string(), v)
                        })
                        .collect();
                    m = m.with_meta("headers", serde_json::Value::Object(h).to_string());
                }
                if r.timestamp >= 0 {
                    m = m.with_timestamp(r.timestamp as u64);
                }
                self.pending.push_back((index, r.offset, m));
            }
        }
        Ok(())
    }

    /// Starts reading `indexes`: from `known` offsets where given, else
    /// the group's committed ones, else `startOffset`.
    fn take_partitions(&mut self, indexes: &[i32], known: &[(i32, i64)]) -> Result<(), Error> {
        let info = self.cluster.partitions(&self.c.topic, false)?;
        self.parts = indexes
            .iter()
            .filter_map(|i| info.iter().find(|p| p.index == *i))
            .map(|p| Part {
                index: p.index,
                leader: p.leader,
                fetch: -1,
                delivered: -1,
            })
            .collect();
        let mut known = known.to_vec();
        if !self.parts.is_empty()
            && !self
                .parts
                .iter()
                .all(|p| known.iter().any(|k| k.0 == p.index))
        {
            if let Some(g) = self.c.group.clone() {
                known.extend(self.group_offsets(&g)?);
            }
        }
        for p in &mut self.parts {
            if let Some((_, o)) = known.iter().find(|(i, o)| *i == p.index && *o >= 0) {
                p.fetch = *o;
                p.delivered = *o;
            }
        }
        let unset: Vec<usize> = (0..self.parts.len())
            .filter(|&i| self.parts[i].fetch < 0)
            .collect();
        let which = match self.c.start {
            Start::Latest => -1,
            Start::Earliest => -2,
        };
        self.list_offsets(&unset, which)?;
        self.committed = format_offsets(&self.parts);
        Ok(())
    }

    /// One step of group membership; true when partitions were assigned.
    fn group_step(&mut self, deadline: Instant) -> Result<bool, Error> {
        let Some(mut g) = self.group.take() else {
            return Ok(false);
        };
        let all: Result<Vec<i32>, Error> = self
            .cluster
            .partitions(&self.c.topic, false)
            .map(|ps| ps.iter().map(|p| p.index).collect());
        let step = all.and_then(|all| g.step(&mut self.cluster, &all, deadline));
        self.group = Some(g);
        match step? {
            Step::Same => Ok(false),
            Step::Revoked => {
                // Positions of what we gave up go to the group first, so
                // the next owner goes on from there.
                let offsets: Vec<(i32, i64)> =
                    self.parts.iter().map(|p| (p.index, p.delivered)).collect();
                if let Err(e) = self.commit_group(&offsets) {
                    log::warn(&format!("kafka: {}", e.message));
                }
                self.parts.clear();
                self.pending.clear();
                Ok(false)
            }
            Step::Assigned(mine) => {
                let (generation, role) = match &self.group {
                    Some(g) if g.leader => (g.generation, format!("leader of {}", g.members)),
                    Some(g) => (g.generation, "member".to_string()),
                    None => (-1, String::new()),
                };
                log::info(&format!(
                    "kafka group {}: generation {generation} ({role}), partitions {mine:?} of {}",
                    self.c.group.as_deref().unwrap_or_default(),
                    self.c.topic
                ));
                let resume = std::mem::take(&mut self.resume);
                self.take_partitions(&mine, &resume)?;
                Ok(true)
            }
        }
    }

    fn auto_commit(&mut self) {
        if self.c.group.is_none() || self.last_commit.elapsed() < AUTO_COMMIT {
            return;
        }
        let now = format_offsets(&self.parts);
        if now == self.committed {
            return;
        }
        self.last_commit = Instant::now();
        let offsets: Vec<(i32, i64)> = self.parts.iter().map(|p| (p.index, p.delivered)).collect();
        match self.commit_group(&offsets) {
            Ok(()) => self.committed = now,
            Err(e) => log::warn(&format!("kafka: {}", e.message)),
        }
    }
}

impl Source for KafkaSource {
    fn describe() -> PluginInfo {
        PluginInfo::new("kafka", env!("CARGO_PKG_VERSION"))
            .description("Reads a Kafka topic (the stream's DATASOURCE), eKuiper's kafka source.")
            .properties_schema(SCHEMA)
            .outbound("tcp://*:*")
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props, resume: Option<String>) -> Result<Self, Error> {
        let c = config(&props)?;
        let mut s = KafkaSource {
            cluster: Cluster::new(c.brokers.clone(), REQUEST_TIMEOUT, c.security.clone()),
            group: c.group.clone().map(|g| Group::new(g, c.topic.clone())),
            resume: Vec::new(),
            parts: Vec::new(),
            pending: VecDeque::new(),
            committed: String::new(),
            last_commit: Instant::now(),
            c,
        };
        s.resume = match resume.as_deref() {
            Some(r) if !r.is_empty() => parse_offsets(r)?,
            _ => Vec::new(),
        };
        let info = s.cluster.partitions(&s.c.topic, false)?;
        if s.group.is_some() {
            // Join now, so the rule starts reading its share; what does
            // not settle within the open deadline goes on in `read`.
            let until = Instant::now() + JOIN_AT_OPEN;
            while Instant::now() < until && s.parts.is_empty() {
                let assigned = s.group_step(Instant::now() + Duration::from_millis(500))?;
                if assigned {
                    break;
                }
            }
            return Ok(s);
        }
        if !info.iter().any(|p| p.index == s.c.partition) {
            return Err(Error::config(format!(
                "partition {}: topic {} has partitions 0 to {}",
                s.c.partition,
                s.c.topic,
                info.len().saturating_sub(1)
            )));
        }
        let resume = std::mem::take(&mut s.resume);
        s.take_partitions(&[s.c.partition], &resume)?;
        Ok(s)
    }

    fn read(&mut self, max: u32, wait: Duration) -> Result<ReadOutcome, Error> {
        if max == 0 {
            return Ok(ReadOutcome::none());
        }
        let start = Instant::now();
        if self.group.is_some() {
            self.group_step(start + wait.min(Duration::from_millis(200)))?;
        }
        self.auto_commit();
        if self.parts.is_empty() {
            // Nothing of ours (yet): the group's answer may come later.
            let left = wait.saturating_sub(start.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(200)));
            return Ok(ReadOutcome::none());
        }
        if self.pending.is_empty() {
            self.fetch(wait.saturating_sub(start.elapsed()))?;
        }
        let n = (max as usize).min(self.pending.len());
        let mut out = Vec::with_capacity(n);
        for (p, o, m) in self.pending.drain(..n) {
            if let Some(part) = self.parts.iter_mut().find(|x| x.index == p) {
                part.delivered = o + 1;
            }
            out.push(m);
        }
        Ok(ReadOutcome::Messages(out))
    }

    fn offset(&self) -> Result<Option<String>, Error> {
        Ok(Some(format_offsets(&self.parts)))
    }

    fn commit(&mut self, offset: &str) -> Result<(), Error> {
        if self.c.group.is_none() {
            return Ok(());
        }
        let offsets = parse_offsets(offset)?;
        self.commit_group(&offsets)?;
        self.committed = offset.to_string();
        self.last_commit = Instant::now();
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.c.group.is_some() {
            let offsets: Vec<(i32, i64)> =
                self.parts.iter().map(|p| (p.index, p.delivered)).collect();
            if format_offsets(&self.parts) != self.committed {
                if let Err(e) = self.commit_group(&offsets) {
                    log::warn(&format!("kafka: {}", e.message));
                }
            }
            if let Some(mut g) = self.group.take() {
                g.leave(&mut self.cluster);
            }
        }
        Ok(())
    }
}

export_source!(KafkaSource);
