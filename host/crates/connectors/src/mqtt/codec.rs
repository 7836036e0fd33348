//! The MQTT packets on the hot path, PUBLISH out and in, written and read
//! straight from and into our buffers (no topic `String` per message); every
//! other packet goes through rumqttc's codec (`mqttbytes`, v4 and v5), which
//! also checks what these functions produce in the tests below.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V4,
    V5,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// More bytes are needed before the frame is whole.
    Incomplete,
    TooLarge(usize),
    Malformed(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete => f.write_str("incomplete packet"),
            FrameError::TooLarge(n) => write!(f, "packet of {n} bytes is over the limit"),
            FrameError::Malformed(m) => write!(f, "malformed packet: {m}"),
        }
    }
}

/// The length of the first whole frame in `buf` (fixed header included).
pub(crate) fn frame_len(buf: &[u8], max: usize) -> Result<usize, FrameError> {
    let mut len: usize = 0;
    let mut shift = 0;
    for i in 1..5 {
        let Some(&b) = buf.get(i) else {
            return Err(FrameError::Incomplete);
        };
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            let total = 1 + i + len;
            if total > max {
                return Err(FrameError::TooLarge(total));
            }
            return Ok(total);
        }
        shift += 7;
    }
    Err(FrameError::Malformed("remaining length over 4 bytes"))
}

fn put_varint(buf: &mut BytesMut, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if n == 0 {
            return;
        }
    }
}

/// Why a PUBLISH cannot be encoded: a topic over 65,535 bytes, or a packet
/// over `max` bytes (the remaining length field holds at most 256 MiB).
pub(crate) fn publish_too_large(topic: &str, payload_len: usize, max: usize) -> Option<String> {
    if topic.len() > u16::MAX as usize {
        return Some(format!(
            "topic of {} bytes is over MQTT's 65,535",
            topic.len()
        ));
    }
    // Fixed header (at most 5), topic length, topic, packet id, v5 properties.
    let total = 5 + 2 + topic.len() + 2 + 1 + payload_len;
    let limit = max.min(268_435_455);
    (total > limit).then(|| format!("publish of {total} bytes is over the limit of {limit}"))
}

/// Appends a PUBLISH (`pkid` 0 for QoS 0). The caller checked
/// [`publish_too_large`].
pub(crate) fn put_publish(
    buf: &mut BytesMut,
    v: Version,
    topic: &str,
    qos: u8,
    retain: bool,
    pkid: u16,
    payload: &[u8],
) {
    let mut remaining = 2 + topic.len() + payload.len();
    if qos > 0 {
        remaining += 2;
    }
    if v == Version::V5 {
        remaining += 1; // no properties
    }
    buf.reserve(remaining + 5);
    buf.put_u8(0x30 | (qos << 1) | u8::from(retain));
    put_varint(buf, remaining);
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if qos > 0 {
        buf.put_u16(pkid);
    }
    if v == Version::V5 {
        buf.put_u8(0);
    }
    buf.put_slice(payload);
}

/// An incoming PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InPublish {
    /// UTF-8, checked.
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: u8,
    pub pkid: u16,
}

/// Reads a PUBLISH frame (as split off by [`frame_len`]).
pub(crate) fn read_publish(v: Version, mut frame: Bytes) -> Result<InPublish, FrameError> {
    let first = frame.get_u8();
    let qos = (first >> 1) & 0x03;
    if qos == 3 {
        return Err(FrameError::Malformed("PUBLISH with QoS 3"));
    }
    // The remaining length was checked by `frame_len`; skip it.
    while frame.has_remaining() {
        if frame.get_u8() & 0x80 == 0 {
            break;
        }
    }
    if frame.remaining() < 2 {
        return Err(FrameError::Malformed("PUBLISH without topic"));
    }
    let tlen = frame.get_u16() as usize;
    if frame.remaining() < tlen {
        return Err(FrameError::Malformed(
            "PUBLISH topic longer than the packet",
        ));
    }
    let topic = frame.split_to(tlen);
    if std::str::from_utf8(&topic).is_err() {
        return Err(FrameError::Malformed("PUBLISH topic is not UTF-8"));
    }
    let pkid = if qos > 0 {
        if frame.remaining() < 2 {
            return Err(FrameError::Malformed("PUBLISH without packet id"));
        }
        frame.get_u16()
    } else {
        0
    };
    if v == Version::V5 {
        // Properties are skipped: we never allow topic aliases, and nothing
        // else in them changes what the message is.
        let mut len: usize = 0;
        let mut shift = 0;
        loop {
            if !frame.has_remaining() || shift > 21 {
                return Err(FrameError::Malformed("PUBLISH properties"));
            }
            let b = frame.get_u8();
            len |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        if frame.remaining() < len {
            return Err(FrameError::Malformed(
                "PUBLISH properties longer than the packet",
            ));
        }
        frame.advance(len);
    }
    Ok(InPublish {
        topic,
        payload: frame,
        qos,
        pkid,
    })
}

/// The packet type of a frame's first byte.
pub(crate) fn is_publish(first: u8) -> bool {
    first >> 4 == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len(&[0x30], 100), Err(FrameError::Incomplete));
        assert_eq!(frame_len(&[0x30, 0x05], 100), Ok(7));
        assert_eq!(frame_len(&[0x30, 0x80, 0x01], 1000), Ok(131));
        assert_eq!(
            frame_len(&[0x30, 0x80, 0x01], 100),
            Err(FrameError::TooLarge(131))
        );
        assert!(matches!(
            frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn v4_publish_matches_rumqttc() {
        for (qos, pkid) in [(0u8, 0u16), (1, 7), (2, 65535)] {
            let mut buf = BytesMut::new();
            let payload = vec![b'x'; 300];
            put_publish(&mut buf, Version::V4, "a/b", qos, true, pkid, &payload);
            let mut theirs = BytesMut::new();
            let mut p =
                rumqttc::Publish::new("a/b", super::super::client::qos_of(qos), payload.clone());
            p.retain = true;
            p.pkid = pkid;
            p.write(&mut theirs).unwrap();
            assert_eq!(buf, theirs);
            let got = read_publish(Version::V4, buf.freeze()).unwrap();
            assert_eq!(&got.topic[..], b"a/b");
            assert_eq!(got.payload, payload);
            assert_eq!((got.qos, got.pkid), (qos, pkid));
        }
    }

    #[test]
    fn v5_publish_matches_rumqttc() {
        use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
        use rumqttc::v5::mqttbytes::QoS;
        let mut buf = BytesMut::new();
        put_publish(&mut buf, Version::V5, "t", 1, false, 9, b"{}");
        let mut theirs = BytesMut::new();
        let mut p = Publish::new("t", QoS::AtLeastOnce, "{}", None);
        p.pkid = 9;
        p.write(&mut theirs).unwrap();
        assert_eq!(buf, theirs);
        // Properties in an incoming PUBLISH are skipped.
        let props = PublishProperties {
            content_type: Some("application/json".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..PublishProperties::default()
        };
        let mut with = BytesMut::new();
        let mut p = Publish::new("t/x", QoS::ExactlyOnce, "payload", Some(props));
        p.pkid = 3;
        p.write(&mut with).unwrap();
        let n = frame_len(&with, 1 << 20).unwrap();
        assert_eq!(n, with.len());
        let got = read_publish(Version::V5, with.freeze()).unwrap();
        assert_eq!(
            (&got.topic[..], &got.payload[..], got.qos, got.pkid),
            (&b"t/x"[..], &b"payload"[..], 2, 3)
        );
    }

    #[test]
    fn malformed_publishes_are_errors() {
        for bad in [
            &[0x36, 0x00][..],                     // QoS 3
            &[0x30, 0x01, 0x00],                   // no topic length
            &[0x30, 0x03, 0x00, 0x05, b'a'],       // topic past the end
            &[0x32, 0x03, 0x00, 0x01, b'a'],       // no packet id
            &[0x30, 0x04, 0x00, 0x02, 0xff, 0xfe], // not UTF-8
        ] {
            assert!(
                read_publish(Version::V4, Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(read_publish(
            Version::V5,
            Bytes::from_static(&[0x30, 0x04, 0x00, 0x01, b'a', 0x05])
        )
        .is_err());
    }
}
