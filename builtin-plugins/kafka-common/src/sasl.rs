//! SASL on a Kafka connection (KIP-152): SaslHandshake names the
//! mechanism, then SaslAuthenticate carries each message of the exchange,
//! computed by `rsasl` (PLAIN in one step; SCRAM client-first, then
//! client-final, then the server's signature checked).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use oort_plugin_sdk::Error;
use rsasl::prelude::{Mechname, SASLClient, SASLConfig, State};

use crate::{Conn, Sasl, SASL_AUTHENTICATE_VERSION, SASL_HANDSHAKE_VERSION};

fn denied(c: &Conn, s: &Sasl, why: impl std::fmt::Display) -> Error {
    Error::unauthorized(format!(
        "kafka {}: SASL {} as {}: {why}",
        c.addr(),
        s.mechanism,
        s.user
    ))
}

/// The client side of the exchange for `s`'s mechanism and credentials.
fn session(s: &Sasl) -> Result<rsasl::prelude::Session, String> {
    let config: Arc<SASLConfig> =
        SASLConfig::with_credentials(None, s.user.clone(), s.password.clone())
            .map_err(|e| format!("SASL settings: {e}"))?;
    let mech = Mechname::parse(s.mechanism.as_bytes()).map_err(|e| e.to_string())?;
    SASLClient::new(config)
        .start_suggested(&[mech])
        .map_err(|e| e.to_string())
}

pub(crate) fn authenticate(c: &mut Conn, s: &Sasl) -> Result<(), Error> {
    let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(s.mechanism));
    let r: SaslHandshakeResponse = c.call(ApiKey::SaslHandshake, SASL_HANDSHAKE_VERSION, &hs)?;
    if r.error_code != 0 {
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(denied(
            c,
            s,
            format!(
                "the broker does not offer it (error {}; it offers {offered:?})",
                r.error_code
            ),
        ));
    }
    let mut session = session(s).map_err(|e| denied(c, s, e))?;
    let mut input: Option<Bytes> = None;
    // PLAIN takes one round trip, SCRAM two; a few more are room enough.
    for _ in 0..8 {
        let mut out = Vec::new();
        let state = session
            .step(input.as_deref(), &mut out)
            .map_err(|e| denied(c, s, e))?;
        let sent = !out.is_empty() || matches!(state, State::Running);
        if sent {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out));
            let r: SaslAuthenticateResponse =
                c.call(ApiKey::SaslAuthenticate, SASL_AUTHENTICATE_VERSION, &req)?;
            if r.error_code != 0 {
                let msg = r
                    .error_message
                    .as_ref()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| format!("error {}", r.error_code));
                return Err(denied(c, s, msg));
            }
            input = Some(r.auth_bytes);
        }
        if state.is_finished() {
            return Ok(());
        }
    }
    Err(denied(c, s, "the exchange did not finish"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(mechanism: &'static str) -> Sasl {
        Sasl {
            mechanism,
            user: "alice".into(),
            password: "s3cret".into(),
        }
    }

    /// What the broker receives in the first SaslAuthenticate: PLAIN's one
    /// message is RFC 4616's `authzid NUL authcid NUL passwd` (no authzid),
    /// SCRAM's client-first names the user (RFC 5802).
    #[test]
    fn first_messages_on_the_wire() {
        let mut out = Vec::new();
        let state = session(&sasl("PLAIN"))
            .unwrap()
            .step(None, &mut out)
            .unwrap();
        assert_eq!(out, b"\0alice\0s3cret");
        assert!(state.is_finished());
        let mut out = Vec::new();
        session(&sasl("SCRAM-SHA-512"))
            .unwrap()
            .step(None, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("n,,n=alice,r="), "{text}");
    }
}
