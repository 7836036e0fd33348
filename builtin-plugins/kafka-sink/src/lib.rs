//! `kafka` sink: eKuiper's Kafka sink as a component. Each message becomes
//! one Kafka record (the payload as value) on `topic`, with an optional
//! `key` and `headers`; records of one write go out as one Produce request
//! per partition leader (cut at `batchBytes`), compressed with
//! `compression` (gzip or snappy). With a key, the partition is Kafka's
//! default (murmur2 of the key, as the Java client and eKuiper's
//! Murmur2Balancer choose); without, one partition per write, in turn.
//!
//! A write counts as done once every record is acknowledged as
//! `requiredACKs` asks (`0`: sent). Errors a metadata refresh can cure
//! (leader moved, broker restarting) are retried `maxAttempts` times in
//! all; what is still not acknowledged is reported as not accepted, so
//! Oort's retry and cache (`enableCache`) keep it.
//!
//! Templates (`{{...}}`) in `topic`, `key`, `headers` (the whole JSON text,
//! or each value of a headers map) are rendered per row by Oort and arrive
//! in each message's metadata under the property's name (`headers.<name>`
//! for a map's value). Needs an outbound grant for every broker address.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_common::{
    code_name, retriable, stale_leader, topic_name, Cluster, PartitionInfo, PRODUCE_VERSION,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use oort_plugin_sdk::{
    export_sink, logging as log, Context, Error, ErrorKind, Message, PluginInfo, Props, Sink,
    WriteFailure,
};

mod config;
mod murmur;
use config::{config, parse_headers_json, Config, Headers};

const SCHEMA: &str = r#"{"brokers":"string, host:port[,host:port] (required; ssl://host:port for TLS)","topic":"string (required; template allowed)","key":"string: record key (template allowed)","headers":"map of string, or a JSON-object template: record headers","requiredACKs":"int: -1 all replicas, 1 leader (default), 0 none","maxAttempts":"int: tries per record on retriable errors (default 1)","compression":"string: none, gzip, snappy","batchBytes":"int: largest Produce request in bytes (default 1048576)","saslAuthType":"string: none, plain or scram (SCRAM-SHA-512)","saslUserName":"string","password":"string","insecureSkipVerify":"bool: TLS without checking the certificate","rootCaPath":"string: CA PEM file (TLS)","rootCARaw":"string: CA PEM in base64 (TLS)","certificationPath":"string: client certificate PEM file (mutual TLS)","certficationRaw":"string: client certificate PEM in base64","privateKeyPath":"string: client key PEM file","privateKeyRaw":"string: client key PEM in base64","tlsMinVersion":"string: tls1.2 (default) or tls1.3","renegotiationSupport":"string: never"}"#;

/// How long a broker has to answer one Produce request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn meta<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.meta
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One record to send, and where.
struct Out {
    topic: String,
    partition: i32,
    record: Record,
    size: usize,
}

struct KafkaSink {
    c: Config,
    cluster: Cluster,
    /// Partitions per topic, from metadata.
    topics: HashMap<String, Vec<PartitionInfo>>,
    /// The keyless records' partition turn.
    turn: usize,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl KafkaSink {
    fn partitions(&mut self, topic: &str) -> Result<&[PartitionInfo], Error> {
        if !self.topics.contains_key(topic) {
            let p = self.cluster.partitions(topic, true)?;
            self.topics.insert(topic.to_string(), p);
        }
        Ok(self
            .topics
            .get(topic)
            .map(Vec::as_slice)
            .unwrap_or_default())
    }

    /// The record for one message (an `invalid-data` error when its
    /// rendered headers are not a JSON object).
    fn record(&mut self, mut m: Message, ts: i64) -> Result<Out, Error> {
        let topic = meta(&m, "topic").unwrap_or(&self.c.topic).to_string();
        if topic.is_empty() {
            return Err(Error::invalid_data("the topic rendered empty"));
        }
        let key = meta(&m, "key")
            .map(str::to_string)
            .or_else(|| self.c.key.clone())
            .filter(|k| !k.is_empty());
        let mut headers = IndexMap::new();
        let pairs = match &self.c.headers {
            Headers::None => Vec::new(),
            Headers::Map(h) => h
                .iter()
                .map(|(k, v, meta_key)| {
                    let v = meta(&m, meta_key).unwrap_or(v);
                    (k.clone(), v.to_string())
                })
                .collect(),
            Headers::Json(t) => parse_headers_json(meta(&m, "headers").unwrap_or(t))?,
        };
        let mut size = m.payload.len() + key.as_ref().map_or(0, String::len) + 24;
        for (k, v) in pairs {
            size += k.len() + v.len() + 4;
            headers.insert(StrBytes::from_string(k), Some(Bytes::from(v.into_bytes())));
        }
        let n = self.partitions(&topic)?.len().max(1);
        let partition = match &key {
            Some(k) => murmur::partition(k.as_bytes(), n),
            None => self.turn % n,
        } as i32;
        Ok(Out {
            topic,
            partition,
            size,
            record: Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                // Set per batch when the request is built.
                offset: 0,
                sequence: -1,
                timestamp: ts,
                key: key.map(|k| Bytes::from(k.into_bytes())),
                // The message is ours: its payload moves, not copied.
                value: Some(Bytes::from(std::mem::take(&mut m.payload))),
                headers,
            },
        })
    }

    fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topics
            .get(topic)?
            .iter()
            .find(|p| p.index == partition)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }

    /// Sends the records at `todo` (indices into `outs`); returns per index
    /// the error of those not acknowledged.
    fn send(&mut self, outs: &mut [Out], todo: &[usize]) -> Vec<(usize, Error)> {
        let mut failed = Vec::new();
        // Group by leader, keeping the order of the write.
        let mut by_leader: Vec<(i32, Vec<usize>)> = Vec::new();
        for &i in todo {
            let o = &outs[i];
            if let Err(e) = self.partitions(&o.topic) {
                failed.push((i, e));
                continue;
            }
            match self.leader(&o.topic, o.partition) {
                Some(l) => match by_leader.iter_mut().find(|(x, _)| *x == l) {
                    Some((_, v)) => v.push(i),
                    None => by_leader.push((l, vec![i])),
                },
                None => failed.push((
                    i,
                    Error::unavailable(format!("kafka {}[{}]: no leader", o.topic, o.partition)),
                )),
            }
        }
        for (leader, idx) in by_leader {
            // Cut into requests of at most batchBytes.
            let mut start = 0;
            while start < idx.len() {
                let mut end = start;
                let mut bytes = 0;
                while end < idx.len()
                    && (end == start || bytes + outs[idx[end]].size <= self.c.batch_bytes)
                {
                    bytes += outs[idx[end]].size;
                    end += 1;
                }
                let part = &idx[start..end];
                if let Err(errs) = self.produce(leader, outs, part) {
                    failed.extend(errs);
                }
                start = end;
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        failed
    }

    /// One Produce request to `leader` for the records at `idx`.
    fn produce(
        &mut self,
        leader: i32,
        outs: &mut [Out],
        idx: &[usize],
    ) -> Result<(), Vec<(usize, Error)>> {
        // topic -> partition -> indices
        let mut groups: Vec<(String, i32, Vec<usize>)> = Vec::new();
        for &i in idx {
            let o = &outs[i];
            match groups
                .iter_mut()
                .find(|(t, p, _)| *t == o.topic && *p == o.partition)
            {
                Some((_, _, v)) => v.push(i),
                None => groups.push((o.topic.clone(), o.partition, vec![i])),
            }
        }
        // Offsets inside a batch are 0..n-1 (the broker assigns the base):
        // a gap would make it count records that are not there. offset -
        // sequence is the same for every record, so the encoder keeps them
        // in one batch (base sequence -1: no idempotent producer).
        for (_, _, v) in &groups {
            for (j, &i) in v.iter().enumerate() {
                outs[i].record.offset = j as i64;
                outs[i].record.sequence = j as i32 - 1;
            }
        }
        let outs = &*outs;
        let all = |e: Error| idx.iter().map(|&i| (i, e.clone())).collect::<Vec<_>>();
        let options = RecordEncodeOptions {
            version: 2,
            compression: self.c.compression,
        };
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for (t, p, v) in &groups {
            let mut buf = BytesMut::new();
            let records = v.iter().map(|&i| &outs[i].record);
            if let Err(e) = RecordBatchEncoder::encode(&mut buf, records, &options) {
                return Err(all(Error::internal(format!(
                    "kafka: encoding records: {e}"
                ))));
            }
            let data = PartitionProduceData::default()
                .with_index(*p)
                .with_records(Some(buf.freeze()));
            match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                Some(x) => x.partition_data.push(data),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(topic_name(t))
                        .with_partition_data(vec![data]),
                ),
            }
        }
        let req = ProduceRequest::default()
            .with_acks(self.c.acks)
            .with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32)
            .with_topic_data(topics);
        let acks = self.c.acks;
        let resp = self.cluster.with_conn(leader, |c| {
            let id = c.send(ApiKey::Produce, PRODUCE_VERSION, &req)?;
            if acks == 0 {
                return Ok(None);
            }
            c.recv::<ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION, id)
                .map(Some)
        });
        let resp = match resp {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => return Err(all(e)),
        };
        let mut failed = Vec::new();
        for (t, p, v) in &groups {
            let r = resp
                .responses
                .iter()
                .filter(|x| x.name.0.as_str() == t)
                .flat_map(|x| x.partition_responses.iter())
                .find(|x| x.index == *p);
            let err = match r {
                None => Some(Error::unavailable(format!(
                    "kafka {t}[{p}]: no answer for the partition"
                ))),
                Some(r) if r.error_code != 0 => {
                    let mut msg = format!(
                        "kafka {t}[{p}]: {} (error {})",
                        code_name(r.error_code),
                        r.error_code
                    );
                    if let Some(m) = &r.error_message {
                        msg.push_str(": ");
                        msg.push_str(m.as_str());
                    }
                    Some(if retriable(r.error_code) {
                        Error::unavailable(msg)
                    } else {
                        // The broker refuses these records as they are
                        // (too large, invalid): resending cannot help.
                        Error::invalid_data(msg)
                    })
                }
                Some(_) => None,
            };
            if let Some(e) = err {
                if r.is_some_and(|r| stale_leader(r.error_code)) {
                    self.topics.remove(t);
                }
                failed.extend(v.iter().map(|&i| (i, e.clone())));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed)
        }
    }
}

impl Sink for KafkaSink {
    fn describe() -> PluginInfo {
        PluginInfo::new("kafka", env!("CARGO_PKG_VERSION"))
            .description(
                "Produces each message as a record to a Kafka topic (eKuiper's kafka sink).",
            )
            .properties_schema(SCHEMA)
            .outbound("tcp://*:*")
    }

    fn validate(props: &Props) -> Result<(), Error> {
        config(props).map(|_| ())
    }

    fn open(_ctx: &Context, props: Props) -> Result<Self, Error> {
        let c = config(&props)?;
        let mut s = KafkaSink {
            cluster: Cluster::new(c.brokers.clone(), REQUEST_TIMEOUT, c.security.clone()),
            c,
            topics: HashMap::new(),
            turn: 0,
        };
        // A fixed topic is looked up now: a missing broker or topic shows
        // when the rule starts, not at the first row.
        if !s.c.topic.contains("{{") {
            let t = s.c.topic.clone();
            s.partitions(&t)?;
        }
        Ok(s)
    }

    fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
        let ts = now_ms();
        self.turn = self.turn.wrapping_add(1);
        let mut outs = Vec::with_capacity(batch.len());
        for (i, m) in batch.into_iter().enumerate() {
            match self.record(m, ts) {
                Ok(o) => outs.push(o),
                Err(error) => {
                    // Send what came before; the host drops an
                    // invalid-data message and hands the rest back.
                    self.write_records(&mut outs).map_err(|mut f| {
                        f.accepted = f.accepted.min(i as u32);
                        f
                    })?;
                    return Err(WriteFailure {
                        accepted: i as u32,
                        error,
                    });
                }
            }
        }
        self.write_records(&mut outs)
    }
}

impl KafkaSink {
    /// Sends `outs`, retrying what failed on retriable errors; on failure,
    /// `accepted` is the count of leading records acknowledged.
    fn write_records(&mut self, outs: &mut [Out]) -> Result<(), WriteFailure> {
        let mut todo: Vec<usize> = (0..outs.len()).collect();
        let mut attempt = 1;
        loop {
            let failed = self.send(outs, &todo);
            let Some((first, _)) = failed.first() else {
                return Ok(());
            };
            let first = *first;
            let hard = failed
                .iter()
                .find(|(_, e)| e.kind != ErrorKind::Unavailable)
                .map(|(i, e)| (*i, e.clone()));
            if attempt >= self.c.attempts || hard.is_some() {
                // The next write starts from fresh metadata.
                self.topics.clear();
                let (at, error) = match hard {
                    Some((i, e)) if i <= first => (i, e),
                    _ => (first, failed[0].1.clone()),
                };
                return Err(WriteFailure {
                    accepted: at as u32,
                    error,
                });
            }
            log::warn(&format!(
                "kafka: {} record(s) not acknowledged ({}), try {} of {}",
                failed.len(),
                failed[0].1.message,
                attempt + 1,
                self.c.attempts
            ));
            attempt += 1;
            // Fresh metadata and connections for the next try (`send`
            // looks the topics up again).
            self.topics.clear();
            self.cluster.reset();
            let again: Vec<usize> = failed.into_iter().map(|(i, _)| i).collect();
            todo = again;
        }
    }
}

export_sink!(KafkaSink);
