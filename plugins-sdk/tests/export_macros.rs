//! The export macros expand and type-check against the generated bindings
//! (natively: the wasm imports become stubs that are never called here).

use std::time::Duration;

use oort_plugin_sdk::{Context, Error, Message, PluginInfo, Props, ReadOutcome};

mod source_plugin {
    use super::*;

    pub struct Counter {
        pub left: u32,
    }

    impl oort_plugin_sdk::Source for Counter {
        fn describe() -> PluginInfo {
            PluginInfo::new("counter", "1.0.0").description("counts down")
        }
        fn validate(props: &Props) -> Result<(), Error> {
            oort_plugin_sdk::prop::<u32>(props, "count").map(|_| ())
        }
        fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
            Ok(Counter {
                left: oort_plugin_sdk::prop::<u32>(&props, "count")?.unwrap_or(2),
            })
        }
        fn read(&mut self, _max: u32, _wait: Duration) -> Result<ReadOutcome, Error> {
            if self.left == 0 {
                return Ok(ReadOutcome::EndOfStream);
            }
            self.left -= 1;
            Ok(ReadOutcome::one(Message::new(format!(
                "{{\"n\":{}}}",
                self.left
            ))))
        }
    }

    oort_plugin_sdk::export_source!(Counter);

    #[test]
    fn generated_source_guest_drives_the_trait() {
        use __oort_bindings::exports::oort::connector::source::{Guest, ReadOutcome as R};
        use __oort_bindings::oort::connector::types::{Context as C, ErrorKind};
        let info = <__OortSource as Guest>::describe();
        assert_eq!(info.name, "counter");
        assert_eq!(info.version, "1.0.0");
        let bad = <__OortSource as Guest>::validate(r#"{"count":"x"}"#.into()).unwrap_err();
        assert!(matches!(bad.kind, ErrorKind::Config));
        assert!(bad.message.contains("count"));
        let before = <__OortSource as Guest>::read(1, 0).unwrap_err();
        assert!(matches!(before.kind, ErrorKind::Internal));
        let ctx = C {
            rule_id: "r".into(),
            op_id: "o".into(),
            instance_index: 0,
        };
        <__OortSource as Guest>::open(ctx, r#"{"count":1}"#.into(), None).unwrap();
        match <__OortSource as Guest>::read(10, 0).unwrap() {
            R::Messages(p) => {
                assert_eq!(p.data, br#"{"n":0}"#.to_vec());
                assert_eq!(p.ends, [7]);
                assert!(p.timestamps.is_empty() && p.meta.is_empty());
            }
            R::EndOfStream => panic!("expected a message"),
        }
        assert!(matches!(
            <__OortSource as Guest>::read(10, 0).unwrap(),
            R::EndOfStream
        ));
        <__OortSource as Guest>::close().unwrap();
    }
}

mod sink_plugin {
    use super::*;
    use oort_plugin_sdk::{Batch, WriteFailure};

    pub struct Picky;

    /// Overrides `write_batch`: reads payloads and metadata in place.
    impl oort_plugin_sdk::Sink for Picky {
        fn describe() -> PluginInfo {
            PluginInfo::new("picky", "0.2.0")
        }
        fn open(_ctx: &Context, _props: Props) -> Result<Self, Error> {
            Ok(Picky)
        }
        fn write(&mut self, _batch: Vec<Message>) -> Result<(), WriteFailure> {
            Err(Error::internal("write_batch is overridden").into())
        }
        fn write_batch(&mut self, batch: &Batch) -> Result<(), WriteFailure> {
            for (i, m) in batch.iter().enumerate() {
                if m.payload.is_empty() || m.meta_value("table") == Some("bad") {
                    return Err(WriteFailure {
                        accepted: i as u32,
                        error: Error::invalid_data("empty payload or bad table"),
                    });
                }
            }
            Ok(())
        }
    }

    oort_plugin_sdk::export_sink!(Picky);

    #[test]
    fn generated_sink_guest_reports_partial_writes() {
        use __oort_bindings::exports::oort::connector::sink::Guest;
        use __oort_bindings::oort::connector::types::{Context as C, ErrorKind, MetaEntry, Packed};
        let ctx = C {
            rule_id: "r".into(),
            op_id: "o".into(),
            instance_index: 0,
        };
        <__OortSink as Guest>::open(ctx, String::new()).unwrap();
        let packed = |data: &[u8], ends: &[u32], meta: Vec<MetaEntry>| Packed {
            data: data.to_vec(),
            ends: ends.to_vec(),
            timestamps: vec![],
            strings: vec!["table".into(), "ok".into(), "bad".into()],
            meta,
        };
        assert!(<__OortSink as Guest>::write(packed(b"ab", &[1, 2], vec![])).is_ok());
        let f = <__OortSink as Guest>::write(packed(b"ac", &[1, 1, 2], vec![])).unwrap_err();
        assert_eq!(f.accepted, 1);
        assert!(matches!(f.error.kind, ErrorKind::InvalidData));
        let meta = vec![
            MetaEntry {
                message: 0,
                key: 0,
                value: 1,
            },
            MetaEntry {
                message: 2,
                key: 0,
                value: 2,
            },
        ];
        let f = <__OortSink as Guest>::write(packed(b"abc", &[1, 2, 3], meta)).unwrap_err();
        assert_eq!(f.accepted, 2, "the third message's table is bad");
        <__OortSink as Guest>::close().unwrap();
    }
}

/// The 0.1.0 export (`export_source_v1!`): one record per message.
mod source_plugin_v1 {
    use super::*;

    pub struct Counter {
        pub left: u32,
    }

    impl oort_plugin_sdk::Source for Counter {
        fn describe() -> PluginInfo {
            PluginInfo::new("counter", "1.0.0").description("counts down")
        }
        fn validate(props: &Props) -> Result<(), Error> {
            oort_plugin_sdk::prop::<u32>(props, "count").map(|_| ())
        }
        fn open(_ctx: &Context, props: Props, _resume: Option<String>) -> Result<Self, Error> {
            Ok(Counter {
                left: oort_plugin_sdk::prop::<u32>(&props, "count")?.unwrap_or(2),
            })
        }
        fn read(&mut self, _max: u32, _wait: Duration) -> Result<ReadOutcome, Error> {
            if self.left == 0 {
                return Ok(ReadOutcome::EndOfStream);
            }
            self.left -= 1;
            Ok(ReadOutcome::one(Message::new(format!(
                "{{\"n\":{}}}",
                self.left
            ))))
        }
    }

    oort_plugin_sdk::export_source_v1!(Counter);

    #[test]
    fn generated_source_guest_drives_the_trait() {
        use __oort_bindings::exports::oort::connector::source::{Guest, ReadOutcome as R};
        use __oort_bindings::oort::connector::types::{Context as C, ErrorKind};
        let info = <__OortSource as Guest>::describe();
        assert_eq!(info.name, "counter");
        assert_eq!(info.version, "1.0.0");
        let bad = <__OortSource as Guest>::validate(r#"{"count":"x"}"#.into()).unwrap_err();
        assert!(matches!(bad.kind, ErrorKind::Config));
        assert!(bad.message.contains("count"));
        let before = <__OortSource as Guest>::read(1, 0).unwrap_err();
        assert!(matches!(before.kind, ErrorKind::Internal));
        let ctx = C {
            rule_id: "r".into(),
            op_id: "o".into(),
            instance_index: 0,
        };
        <__OortSource as Guest>::open(ctx, r#"{"count":1}"#.into(), None).unwrap();
        match <__OortSource as Guest>::read(10, 0).unwrap() {
            R::Messages(v) => assert_eq!(v[0].payload, br#"{"n":0}"#.to_vec()),
            R::EndOfStream => panic!("expected a message"),
        }
        assert!(matches!(
            <__OortSource as Guest>::read(10, 0).unwrap(),
            R::EndOfStream
        ));
        <__OortSource as Guest>::close().unwrap();
    }
}

/// The 0.1.0 export (`export_sink_v1!`).
mod sink_plugin_v1 {
    use super::*;
    use oort_plugin_sdk::WriteFailure;

    pub struct Picky;

    impl oort_plugin_sdk::Sink for Picky {
        fn describe() -> PluginInfo {
            PluginInfo::new("picky", "0.1.0")
        }
        fn open(_ctx: &Context, _props: Props) -> Result<Self, Error> {
            Ok(Picky)
        }
        fn write(&mut self, batch: Vec<Message>) -> Result<(), WriteFailure> {
            match batch.iter().position(|m| m.payload.is_empty()) {
                None => Ok(()),
                Some(i) => Err(WriteFailure {
                    accepted: i as u32,
                    error: Error::invalid_data("empty payload"),
                }),
            }
        }
    }

    oort_plugin_sdk::export_sink_v1!(Picky);

    #[test]
    fn generated_sink_guest_reports_partial_writes() {
        use __oort_bindings::exports::oort::connector::sink::Guest;
        use __oort_bindings::oort::connector::types::{Context as C, ErrorKind, Message as M};
        let ctx = C {
            rule_id: "r".into(),
            op_id: "o".into(),
            instance_index: 0,
        };
        <__OortSink as Guest>::open(ctx, String::new()).unwrap();
        let m = |p: &[u8]| M {
            payload: p.to_vec(),
            meta: vec![],
            timestamp_ms: None,
        };
        assert!(<__OortSink as Guest>::write(vec![m(b"a"), m(b"b")]).is_ok());
        let f = <__OortSink as Guest>::write(vec![m(b"a"), m(b""), m(b"c")]).unwrap_err();
        assert_eq!(f.accepted, 1);
        assert!(matches!(f.error.kind, ErrorKind::InvalidData));
        <__OortSink as Guest>::close().unwrap();
    }
}
