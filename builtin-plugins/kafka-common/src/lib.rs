//! A small blocking Kafka client for the `kafka` source and sink plugins,
//! over `std::net::TcpStream` (on wasm32-wasip2, `wasi:sockets`: every
//! broker address needs an outbound grant). The wire messages and record
//! batches come from the `kafka-protocol` crate; this crate adds what a
//! client needs around them: framing and correlation, one connection per
//! broker, cluster metadata (partition leaders), the error codes, and the
//! properties both plugins share (`brokers`, security settings).
//!
//! Fixed protocol versions, all within what Kafka 2.1 to 4.x accept
//! (Kafka 4.0 dropped the older ones): Metadata v4, Produce v7, Fetch v4,
//! ListOffsets v1, FindCoordinator v1, OffsetFetch v1, OffsetCommit v2,
//! JoinGroup v2, SyncGroup v1, Heartbeat v1, LeaveGroup v1, SaslHandshake v1,
//! SaslAuthenticate v1.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use oort_plugin_sdk::Error;

mod codes;
mod props;
mod sasl;
mod tls;
pub use codes::{code_name, retriable, stale_leader};
pub use props::{brokers, sasl, security, Sasl, Security};
use tls::Stream;
pub use tls::{tls, Tls};

pub const METADATA_VERSION: i16 = 4;
pub const PRODUCE_VERSION: i16 = 7;
pub const FETCH_VERSION: i16 = 4;
pub const LIST_OFFSETS_VERSION: i16 = 1;
pub const FIND_COORDINATOR_VERSION: i16 = 1;
pub const OFFSET_FETCH_VERSION: i16 = 1;
pub const OFFSET_COMMIT_VERSION: i16 = 2;
pub const JOIN_GROUP_VERSION: i16 = 2;
pub const SYNC_GROUP_VERSION: i16 = 1;
pub const HEARTBEAT_VERSION: i16 = 1;
pub const LEAVE_GROUP_VERSION: i16 = 1;
pub const SASL_HANDSHAKE_VERSION: i16 = 1;
pub const SASL_AUTHENTICATE_VERSION: i16 = 1;

/// Largest response accepted from a broker.
pub const MAX_RESPONSE: usize = 64 << 20;
const CLIENT_ID: &str = "oort";

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    let mut err = Error::from(e);
    err.message = format!("kafka {what}: {}", err.message);
    err
}

fn proto_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("kafka {what}: {e}"))
}

/// One connection to one broker.
pub struct Conn {
    addr: String,
    stream: Stream,
    next_id: i32,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    /// Connects, opens TLS and authenticates as `security` says.
    pub fn connect(addr: &str, timeout: Duration, security: &Security) -> Result<Conn, Error> {
        let deadline = Instant::now() + timeout;
        let tcp = TcpStream::connect(addr).map_err(|e| io_err(&format!("connect {addr}"), e))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_write_timeout(Some(timeout));
        let stream = match &security.tls {
            Some(t) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Stream::tls(t, tcp, host, deadline)?
            }
            None => Stream::Plain(tcp),
        };
        let mut c = Conn {
            addr: addr.to_string(),
            stream,
            next_id: 1,
            buf: Vec::new(),
            timeout,
        };
        if let Some(s) = &security.sasl {
            sasl::authenticate(&mut c, s)?;
        }
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request; returns its correlation id.
    pub fn send<Q: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> Result<i32, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut out = BytesMut::with_capacity(256);
        out.put_i32(0);
        header
            .encode(&mut out, Q::header_version(version))
            .map_err(|e| Error::internal(format!("kafka encode {key:?} header: {e}")))?;
        req.encode(&mut out, version)
            .map_err(|e| Error::internal(format!("kafka encode {key:?}: {e}")))?;
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&out)
            .map_err(|e| io_err(&format!("send to {}", self.addr), e))?;
        Ok(id)
    }

    /// Reads the response to request `id`, waiting at most the
    /// connection's timeout.
    pub fn recv<P: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        id: i32,
    ) -> Result<P, Error> {
        match self.poll(key, version, id, Instant::now() + self.timeout)? {
            Some(p) => Ok(p),
            None => Err(Error::unavailable(format!(
                "kafka {} ({key:?}): no response within {:?}",
                self.addr, self.timeout
            ))),
        }
    }

    /// The response to request `id` if it arrives before `deadline`
    /// (`None`: not yet; poll again later on the same connection).
    pub fn poll<P: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        id: i32,
        deadline: Instant,
    ) -> Result<Option<P>, Error> {
        let what = format!("{} ({key:?})", self.addr);
        loop {
            if self.buf.len() >= 4 {
                let n = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if n < 0 || n as usize > MAX_RESPONSE {
                    return Err(proto_err(&what, format!("response of {n} bytes refused")));
                }
                if self.buf.len() >= 4 + n as usize {
                    let frame: Vec<u8> = self.buf.drain(..4 + n as usize).skip(4).collect();
                    let mut b = Bytes::from(frame);
                    let h = ResponseHeader::decode(&mut b, P::header_version(version))
                        .map_err(|e| proto_err(&what, e))?;
                    if h.correlation_id != id {
                        return Err(proto_err(
                            &what,
                            format!(
                                "response for request {} while waiting for {id}",
                                h.correlation_id
                            ),
                        ));
                    }
                    return P::decode(&mut b, version)
                        .map(Some)
                        .map_err(|e| proto_err(&what, e));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            oort_plugin_sdk::net::read_until(&mut self.stream, &mut self.buf, deadline, "kafka")?;
        }
    }

    pub fn call<Q: Encodable + HeaderVersion, P: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> Result<P, Error> {
        let id = self.send(key, version, req)?;
        self.recv(key, version, id)
    }
}

/// One partition's place in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub index: i32,
    pub leader: i32,
    pub error: i16,
}

/// The brokers of a cluster and one connection per broker, opened when
/// first needed; metadata answers which broker leads which partition.
pub struct Cluster {
    bootstrap: Vec<String>,
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    pub timeout: Duration,
    /// Every connection is secured with these.
    pub security: Security,
}

/// Key of the bootstrap connection in `Cluster::conns` (broker ids are >= 0).
const BOOTSTRAP: i32 = -1;

impl Cluster {
    pub fn new(bootstrap: Vec<String>, timeout: Duration, security: Security) -> Cluster {
        Cluster {
            bootstrap,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            timeout,
            security,
        }
    }

    /// Drops every connection (after an IO error, the next call reconnects).
    pub fn reset(&mut self) {
        self.conns.clear();
    }

    /// The address of broker `node`, once metadata or a coordinator
    /// lookup named it.
    pub fn broker_addr(&self, node: i32) -> Option<String> {
        self.brokers.get(&node).cloned()
    }

    /// Drops the connection to one broker.
    pub fn drop_conn(&mut self, node: i32) {
        self.conns.remove(&node);
    }

    /// Any live connection (for metadata): the bootstrap list in order.
    fn any(&mut self) -> Result<&mut Conn, Error> {
        if !self.conns.contains_key(&BOOTSTRAP) {
            let mut last = None;
            for b in &self.bootstrap {
                match Conn::connect(b, self.timeout, &self.security) {
                    Ok(c) => {
                        self.conns.insert(BOOTSTRAP, c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if !self.conns.contains_key(&BOOTSTRAP) {
                return Err(last.unwrap_or_else(|| Error::config("brokers is empty")));
            }
        }
        self.conns
            .get_mut(&BOOTSTRAP)
            .ok_or_else(|| Error::internal("kafka: bootstrap connection missing"))
    }

    /// The connection to broker `node` (known from metadata).
    pub fn conn(&mut self, node: i32) -> Result<&mut Conn, Error> {
        if !self.conns.contains_key(&node) {
            let addr = self.brokers.get(&node).cloned().ok_or_else(|| {
                Error::unavailable(format!("kafka: broker {node} is not in the metadata"))
            })?;
            let c = Conn::connect(&addr, self.timeout, &self.security)?;
            self.conns.insert(node, c);
        }
        self.conns
            .get_mut(&node)
            .ok_or_else(|| Error::internal("kafka: connection missing"))
    }

    /// Runs `f` on a connection; an IO failure drops that connection so the
    /// next call opens a new one.
    pub fn with_conn<T>(
        &mut self,
        node: i32,
        f: impl FnOnce(&mut Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let r = f(self.conn(node)?);
        if r.is_err() {
            self.conns.remove(&node);
        }
        r
    }

    /// The partitions of `topic` with their leaders; refreshes the broker
    /// list. `create`: ask the broker to create a missing topic (the
    /// broker's `auto.create.topics.enable` decides).
    pub fn partitions(&mut self, topic: &str, create: bool) -> Result<Vec<PartitionInfo>, Error> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(create);
        let conn = self.any()?;
        let r: Result<MetadataResponse, Error> =
            conn.call(ApiKey::Metadata, METADATA_VERSION, &req);
        let resp = match r {
            Ok(r) => r,
            Err(e) => {
                self.conns.remove(&BOOTSTRAP);
                return Err(e);
            }
        };
        for b in &resp.brokers {
            let addr = format!("{}:{}", b.host.as_str(), b.port);
            let id: i32 = *b.node_id;
            if self.brokers.get(&id) != Some(&addr) {
                self.conns.remove(&id);
                self.brokers.insert(id, addr);
            }
        }
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
            .ok_or_else(|| {
                Error::unavailable(format!("kafka: topic {topic} missing from the metadata"))
            })?;
        if t.error_code != 0 {
            let msg = format!(
                "kafka topic {topic}: {} (error {})",
                code_name(t.error_code),
                t.error_code
            );
            return Err(if t.error_code == 3 && !create {
                Error::config(format!("{msg}: create the topic first"))
            } else {
                Error::unavailable(msg)
            });
        }
        let mut parts: Vec<PartitionInfo> = t
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                index: p.partition_index,
                leader: *p.leader_id,
                error: p.error_code,
            })
            .collect();
        parts.sort_by_key(|p| p.index);
        if parts.is_empty() {
            return Err(Error::unavailable(format!(
                "kafka topic {topic}: no partitions yet"
            )));
        }
        Ok(parts)
    }

    /// Broker id of the coordinator of consumer group `group`.
    pub fn coordinator(&mut self, group: &str) -> Result<i32, Error> {
        use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        let conn = self.any()?;
        let r: Result<FindCoordinatorResponse, Error> =
            conn.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &req);
        let resp = match r {
            Ok(r) => r,
            Err(e) => {
                self.conns.remove(&BOOTSTRAP);
                return Err(e);
            }
        };
        if resp.error_code != 0 {
            return Err(Error::unavailable(format!(
                "kafka group {group}: no coordinator: {} (error {})",
                code_name(resp.error_code),
                resp.error_code
            )));
        }
        let id: i32 = *resp.node_id;
        let addr = format!("{}:{}", resp.host.as_str(), resp.port);
        if self.brokers.get(&id) != Some(&addr) {
            self.conns.remove(&id);
            self.brokers.insert(id, addr);
        }
        Ok(id)
    }
}

/// `BrokerId` as the plain number.
pub fn broker_id(id: i32) -> BrokerId {
    BrokerId(id)
}

/// Splits fetched record-batch bytes into complete batches: a broker may
/// cut the last batch short at the fetch size, which is not an error (it
/// comes whole in the next fetch).
pub fn complete_batches(mut data: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        if len < 0 {
            break;
        }
        let total = 12 + len as usize;
        if data.len() < total {
            break;
        }
        out.push(data.split_to(total));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_cut_short_is_left_for_the_next_fetch() {
        let mut b = Vec::new();
        for len in [20i32, 30] {
            b.extend_from_slice(&0i64.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            b.extend(std::iter::repeat_n(0u8, len as usize));
        }
        let whole = b.len();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&100i32.to_be_bytes());
        b.extend_from_slice(&[1, 2, 3]);
        let parts = complete_batches(Bytes::from(b));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), whole);
    }
}
