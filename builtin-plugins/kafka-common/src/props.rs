//! The properties both plugins share (eKuiper's names): the broker list
//! and the security settings.

use oort_plugin_sdk::{prop, Error, Props};

/// The `brokers` property: `host:port[,host:port...]`.
pub fn brokers(props: &Props) -> Result<Vec<String>, Error> {
    broker_list(props).map(|(list, _)| list)
}

/// The broker list, and whether it is written `ssl://` (or `tls://`),
/// which turns TLS on. A `tcp://` broker beside an `ssl://` one is refused:
/// every connection to a cluster is secured the same way.
pub(crate) fn broker_list(props: &Props) -> Result<(Vec<String>, bool), Error> {
    let raw = prop::<String>(props, "brokers")?.unwrap_or_default();
    let mut out = Vec::new();
    let (mut plain, mut tls) = (false, false);
    for b in raw.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let lower = b.to_ascii_lowercase();
        let scheme = [("tcp://", false), ("ssl://", true), ("tls://", true)]
            .into_iter()
            .find(|(p, _)| lower.starts_with(p));
        let b = match scheme {
            Some((p, secure)) => {
                if secure {
                    tls = true;
                } else {
                    plain = true;
                }
                &b[p.len()..]
            }
            None => b,
        };
        match b.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                out.push(b.to_string())
            }
            _ => {
                return Err(Error::config(format!(
                    "brokers: {b:?} is not host:port (brokers is a comma-separated list such as 127.0.0.1:9092,127.0.0.1:9093)"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(Error::config(
            "brokers is required: a comma-separated list of host:port",
        ));
    }
    if plain && tls {
        return Err(Error::config(
            "brokers: tcp:// and ssl:// are mixed; every broker of a cluster is reached the same way (ssl:// or TLS settings for all)",
        ));
    }
    Ok((out, tls))
}

/// SASL credentials (eKuiper's `saslAuthType` `plain` or `scram`, the
/// latter SCRAM-SHA-512 as eKuiper's client uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: &'static str,
    pub user: String,
    pub password: String,
}

/// The SASL settings: `None` for `saslAuthType` none (or unset).
/// `password` is eKuiper's key (`saslPassword` its older one).
pub fn sasl(props: &Props) -> Result<Option<Sasl>, Error> {
    let t = prop::<String>(props, "saslAuthType")?.unwrap_or_default();
    let user = prop::<String>(props, "saslUserName")?.unwrap_or_default();
    let password = match prop::<String>(props, "password")?.filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => prop::<String>(props, "saslPassword")?.unwrap_or_default(),
    };
    let mechanism = match t.to_ascii_lowercase().as_str() {
        "" | "none" => {
            if !user.is_empty() || !password.is_empty() {
                return Err(Error::config(
                    "saslUserName/password are set but saslAuthType is none: set saslAuthType to plain or scram",
                ));
            }
            return Ok(None);
        }
        "plain" => "PLAIN",
        "scram" => "SCRAM-SHA-512",
        other => {
            return Err(Error::config(format!(
                "saslAuthType {other:?}: use none, plain or scram"
            )))
        }
    };
    if user.is_empty() || password.is_empty() {
        return Err(Error::config(format!(
            "saslAuthType {t}: saslUserName and password are required"
        )));
    }
    Ok(Some(Sasl {
        mechanism,
        user,
        password,
    }))
}

/// How every connection to the cluster is secured: SASL and TLS.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub sasl: Option<Sasl>,
    pub tls: Option<crate::tls::Tls>,
}

/// The SASL and TLS settings, checked (a bad one is refused by name).
pub fn security(props: &Props) -> Result<Security, Error> {
    let (_, ssl_brokers) = broker_list(props)?;
    Ok(Security {
        sasl: sasl(props)?,
        tls: crate::tls::tls(props, ssl_brokers)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn brokers_are_a_host_port_list() {
        let p = props(serde_json::json!({"brokers": " 127.0.0.1:9092, kafka:9093 "}));
        assert_eq!(
            brokers(&p).unwrap(),
            vec!["127.0.0.1:9092".to_string(), "kafka:9093".to_string()]
        );
        let p = props(serde_json::json!({"brokers": "127.0.0.1"}));
        assert!(brokers(&p).unwrap_err().message.contains("127.0.0.1"));
        let p = props(serde_json::json!({}));
        assert!(brokers(&p)
            .unwrap_err()
            .message
            .contains("brokers is required"));
    }

    #[test]
    fn brokers_may_be_written_with_a_scheme() {
        let p = props(serde_json::json!({"brokers": "ssl://k1:9093,SSL://k2:9093, tcp://k3:9092"}));
        assert!(brokers(&p).unwrap_err().message.contains("mixed"));
        let p = props(serde_json::json!({"brokers": "ssl://k1:9093,SSL://k2:9093, tls://k3:9093"}));
        assert_eq!(
            broker_list(&p).unwrap(),
            (
                vec!["k1:9093".into(), "k2:9093".into(), "k3:9093".into()],
                true
            )
        );
        let p = props(serde_json::json!({"brokers": "tcp://k1:9092,k2:9092"}));
        assert_eq!(
            broker_list(&p).unwrap(),
            (vec!["k1:9092".into(), "k2:9092".into()], false)
        );
    }

    #[test]
    fn sasl_settings_are_ekuipers() {
        let p = props(
            serde_json::json!({"saslAuthType": "scram", "saslUserName": "u", "password": "p"}),
        );
        assert_eq!(
            sasl(&p).unwrap(),
            Some(Sasl {
                mechanism: "SCRAM-SHA-512",
                user: "u".into(),
                password: "p".into()
            })
        );
        let p = props(
            serde_json::json!({"saslAuthType": "plain", "saslUserName": "u", "saslPassword": "p"}),
        );
        assert_eq!(sasl(&p).unwrap().map(|s| s.mechanism), Some("PLAIN"));
        for (v, want) in [
            (
                serde_json::json!({"saslAuthType": "plain", "saslUserName": "u"}),
                "required",
            ),
            (
                serde_json::json!({"saslAuthType": "gssapi"}),
                "saslAuthType",
            ),
            (
                serde_json::json!({"saslUserName": "u"}),
                "saslAuthType is none",
            ),
        ] {
            let e = sasl(&props(v)).unwrap_err();
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
        assert_eq!(
            sasl(&props(serde_json::json!({"saslAuthType": "none"}))).unwrap(),
            None
        );
    }
}
