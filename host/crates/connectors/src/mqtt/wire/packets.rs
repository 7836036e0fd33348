//! Packets other than PUBLISH, through rumqttc's codec (`mqttbytes`) for
//! MQTT 3.1.1 and 5: what the loop reads ([`In`]) and the small packets it
//! writes ([`Simple`], SUBSCRIBE, UNSUBSCRIBE).

use super::*;

/// A packet other than PUBLISH, version-independent.
pub(super) enum In {
    PubAck(u16),
    /// A v5 PUBACK/PUBREC with an error reason.
    Refused(u16, String),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck {
        refused: usize,
    },
    PingResp,
    Disconnect(String),
    Other,
}

/// Small packets we write.
pub(super) enum Simple {
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    PingReq,
    Disconnect,
}

impl EventLoop {
    pub(super) fn read_other(&self, frame: BytesMut) -> Result<In, String> {
        let mut f = frame;
        Ok(match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::Packet;
                use rumqttc::SubscribeReasonCode;
                match Packet::read(&mut f, self.max_packet).map_err(|e| format!("read: {e}"))? {
                    Packet::PubAck(a) => In::PubAck(a.pkid),
                    Packet::PubRec(a) => In::PubRec(a.pkid),
                    Packet::PubRel(a) => In::PubRel(a.pkid),
                    Packet::PubComp(a) => In::PubComp(a.pkid),
                    Packet::SubAck(s) => In::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                            .count(),
                    },
                    Packet::PingResp => In::PingResp,
                    Packet::Disconnect => In::Disconnect(String::new()),
                    _ => In::Other,
                }
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{
                    Packet, PubAckReason, PubRecReason, SubscribeReasonCode,
                };
                let max = Some(self.max_packet.min(u32::MAX as usize) as u32);
                match Packet::read(&mut f, max).map_err(|e| format!("read: {e:?}"))? {
                    Packet::PubAck(a) => match a.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                            In::PubAck(a.pkid)
                        }
                        r => In::Refused(a.pkid, format!("{r:?}")),
                    },
                    Packet::PubRec(a) => match a.reason {
                        PubRecReason::Success | PubRecReason::NoMatchingSubscribers => {
                            In::PubRec(a.pkid)
                        }
                        r => In::Refused(a.pkid, format!("{r:?}")),
                    },
                    Packet::PubRel(a) => In::PubRel(a.pkid),
                    Packet::PubComp(a) => In::PubComp(a.pkid),
                    Packet::SubAck(s) => In::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .count(),
                    },
                    Packet::PingResp(_) => In::PingResp,
                    Packet::Disconnect(d) => In::Disconnect(format!("{:?}", d.reason_code)),
                    _ => In::Other,
                }
            }
        })
    }

    pub(super) fn put_simple(&mut self, s: Simple) -> Result<(), String> {
        let max = self.max_packet;
        match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::{Packet, PubAck, PubComp, PubRec, PubRel};
                let p = match s {
                    Simple::PubAck(id) => Packet::PubAck(PubAck::new(id)),
                    Simple::PubRec(id) => Packet::PubRec(PubRec::new(id)),
                    Simple::PubRel(id) => Packet::PubRel(PubRel::new(id)),
                    Simple::PubComp(id) => Packet::PubComp(PubComp::new(id)),
                    Simple::PingReq => Packet::PingReq,
                    Simple::Disconnect => Packet::Disconnect,
                };
                p.write(&mut self.wbuf, max)
                    .map(|_| ())
                    .map_err(|e| format!("encode: {e}"))
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{
                    Disconnect, DisconnectReasonCode, Packet, PingReq, PubAck, PubComp, PubRec,
                    PubRel,
                };
                let p = match s {
                    Simple::PubAck(id) => Packet::PubAck(PubAck::new(id, None)),
                    Simple::PubRec(id) => Packet::PubRec(PubRec::new(id, None)),
                    Simple::PubRel(id) => Packet::PubRel(PubRel::new(id, None)),
                    Simple::PubComp(id) => Packet::PubComp(PubComp::new(id, None)),
                    Simple::PingReq => Packet::PingReq(PingReq),
                    Simple::Disconnect => Packet::Disconnect(Disconnect::new(
                        DisconnectReasonCode::NormalDisconnection,
                    )),
                };
                p.write(&mut self.wbuf, Some(max.min(u32::MAX as usize) as u32))
                    .map(|_| ())
                    .map_err(|e| format!("encode: {e:?}"))
            }
        }
    }

    pub(super) fn put_subscribe(
        &mut self,
        id: u16,
        filters: Vec<(String, u8)>,
    ) -> Result<(), String> {
        let max = self.max_packet;
        match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::{Packet, Subscribe, SubscribeFilter};
                let mut s = Subscribe::new_many(
                    filters
                        .into_iter()
                        .map(|(t, q)| SubscribeFilter::new(t, super::super::client::qos_of(q))),
                );
                s.pkid = id;
                Packet::Subscribe(s)
                    .write(&mut self.wbuf, max)
                    .map(|_| ())
                    .map_err(|e| format!("encode SUBSCRIBE: {e}"))
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Subscribe};
                let mut s = Subscribe::new_many(
                    filters
                        .into_iter()
                        .map(|(t, q)| Filter::new(t, super::super::client::qos5_of(q))),
                    None,
                );
                s.pkid = id;
                Packet::Subscribe(s)
                    .write(&mut self.wbuf, Some(max.min(u32::MAX as usize) as u32))
                    .map(|_| ())
                    .map_err(|e| format!("encode SUBSCRIBE: {e:?}"))
            }
        }
    }

    pub(super) fn put_unsubscribe(&mut self, id: u16, filter: String) -> Result<(), String> {
        let max = self.max_packet;
        match self.version {
            Version::V4 => {
                use rumqttc::mqttbytes::v4::{Packet, Unsubscribe};
                let mut u = Unsubscribe::new(filter);
                u.pkid = id;
                Packet::Unsubscribe(u)
                    .write(&mut self.wbuf, max)
                    .map(|_| ())
                    .map_err(|e| format!("encode UNSUBSCRIBE: {e}"))
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::{Packet, Unsubscribe};
                let mut u = Unsubscribe::new(filter, None);
                u.pkid = id;
                Packet::Unsubscribe(u)
                    .write(&mut self.wbuf, Some(max.min(u32::MAX as usize) as u32))
                    .map(|_| ())
                    .map_err(|e| format!("encode UNSUBSCRIBE: {e:?}"))
            }
        }
    }
}
