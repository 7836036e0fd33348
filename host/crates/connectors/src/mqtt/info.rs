//! What the MQTT source and sink declare: traits, default conf keys
//! (eKuiper's `mqtt_source.yaml` and `sinks/mqtt.yaml`) and property schemas.

use oort_core::{ConnectorInfo, PropSpec};
use serde_json::json;

const SOURCE_DEFAULT: &str = "default:\n  qos: 1\n  server: \"tcp://127.0.0.1:1883\"\n  protocolVersion: \"3.1.1\"\n  insecureSkipVerify: false\n";
const SINK_DEFAULT: &str = "default:\n  server: \"tcp://127.0.0.1:1883\"\n";

/// The connection properties both share (a connection profile holds them).
fn connection() -> Vec<PropSpec> {
    vec![
        PropSpec::new(
            "server",
            "string",
            "The broker: tcp://host:port, ssl://host:port (also mqtt://, tls://, mqtts://)",
        )
        .default(json!("tcp://127.0.0.1:1883"))
        .connection(),
        PropSpec::new("username", "string", "User name").connection(),
        PropSpec::new("password", "string", "Password").connection(),
        PropSpec::new(
            "clientid",
            "string",
            "Client id; generated when empty (stable per stream for persistent sessions)",
        )
        .connection(),
        PropSpec::new("protocolVersion", "string", "MQTT protocol version")
            .default(json!("3.1.1"))
            .values(&["3.1", "3.1.1", "4", "5"])
            .connection(),
        PropSpec::new(
            "certificationPath",
            "string",
            "Client certificate file (TLS)",
        )
        .connection(),
        PropSpec::new("privateKeyPath", "string", "Client private key file (TLS)").connection(),
        PropSpec::new("rootCaPath", "string", "CA certificate file (TLS)").connection(),
        PropSpec::new(
            "certficationRaw",
            "string",
            "Client certificate, base64 PEM",
        )
        .connection(),
        PropSpec::new("privateKeyRaw", "string", "Client private key, base64 PEM").connection(),
        PropSpec::new("rootCARaw", "string", "CA certificate, base64 PEM").connection(),
        PropSpec::new(
            "insecureSkipVerify",
            "bool",
            "TLS: accept any broker certificate (tests only: the connection is not authenticated)",
        )
        .default(json!(false))
        .connection(),
        PropSpec::new(
            "connectionSelector",
            "string",
            "Use the shared connection of this connection profile (<type>.<id>)",
        ),
    ]
}

pub(super) fn source() -> ConnectorInfo {
    let mut properties = connection();
    properties.extend([
        PropSpec::new("qos", "int", "Subscription QoS")
            .default(json!(1))
            .values(&["0", "1", "2"]),
        PropSpec::new(
            "enableClientSession",
            "bool",
            "Persistent session (clean session false); default on at QoS 1",
        ),
        PropSpec::new(
            "sessionExpiryIntervalSeconds",
            "int",
            "MQTT 5: how long the broker keeps the session after a disconnect",
        )
        .default(json!(60)),
        PropSpec::new(
            "shareGroup",
            "string",
            "Oort: subscribe as a member of this shared-subscription group ($share/<group>/<topic>): instances of a fleet split the messages",
        ),
        PropSpec::new(
            "readLingerInterval",
            "int",
            "Oort: ms a read waits for more messages while they flow, reads under 1 ms apart (0-100; default 5 at QoS 0/1)",
        ),
    ]);
    ConnectorInfo {
        holds_connection: true,
        default_conf: Some(SOURCE_DEFAULT),
        conf_file: Some("mqtt_source.yaml"),
        datasource_hint: Some("The topic filter(s) to subscribe to, comma separated"),
        properties,
        ..ConnectorInfo::new("Subscribes to MQTT topics (MQTT 3.1.1 and 5)")
    }
}

pub(super) fn sink() -> ConnectorInfo {
    let mut properties = connection();
    properties.extend([
        PropSpec::new(
            "topic",
            "string",
            "Topic to publish to; may be a template ({{.field}})",
        )
        .required()
        .dynamic(),
        PropSpec::new("qos", "int", "Publish QoS")
            .default(json!(0))
            .values(&["0", "1", "2"]),
        PropSpec::new("retained", "bool", "Publish with the retain flag").default(json!(false)),
    ]);
    ConnectorInfo {
        holds_connection: true,
        default_conf: Some(SINK_DEFAULT),
        properties,
        ..ConnectorInfo::new("Publishes results to an MQTT topic (MQTT 3.1.1 and 5)")
    }
}
