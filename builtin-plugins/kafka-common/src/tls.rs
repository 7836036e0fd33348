//! TLS to the brokers, inside the component (rustls with ring; the host
//! only sees the encrypted bytes on the granted socket). Settings are
//! eKuiper's TLS properties: `rootCaPath`/`rootCARaw` (else the Mozilla
//! roots compiled in), a client certificate from `certificationPath`/
//! `certficationRaw` with `privateKeyPath`/`privateKeyRaw`,
//! `insecureSkipVerify`, `tlsMinVersion` and `renegotiationSupport`. TLS is
//! on when a certificate or key setting is given, `insecureSkipVerify` is
//! true or the brokers are written `ssl://host:port` (`tlsMinVersion` alone
//! does not turn it on).
//! A `...Raw` value is the PEM text in base64 (eKuiper's form) and wins
//! over its path; a path is read inside the sandbox, so its directory must
//! be granted to the plugin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use oort_plugin_sdk::{prop, Error, Props};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

/// The properties that turn TLS on (any of them set).
const TLS_KEYS: &[&str] = &[
    "certificationPath",
    "privateKeyPath",
    "rootCaPath",
    "certficationRaw",
    "privateKeyRaw",
    "rootCARaw",
];

/// A client TLS configuration, built once per plugin instance and shared by
/// its connections.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Largest PEM document read (a certificate chain is a few KB).
const MAX_PEM: usize = 1 << 20;

/// A PEM document from `<raw>` (base64 of the text) or `<path>`; `None`
/// when neither is set.
fn pem(props: &Props, raw_key: &str, path_key: &str) -> Result<Option<Vec<u8>>, Error> {
    let raw = prop::<String>(props, raw_key)?.unwrap_or_default();
    if !raw.trim().is_empty() {
        if raw.len() > MAX_PEM * 4 / 3 + 4 {
            return Err(Error::config(format!(
                "{raw_key}: larger than {MAX_PEM} bytes once decoded, not a PEM certificate or key"
            )));
        }
        let compact: String = raw.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| {
                Error::config(format!(
                    "{raw_key}: not base64 ({e}); it holds the PEM file's text encoded in base64, e.g. `base64 -w0 ca.pem`"
                ))
            })?;
        return Ok(Some(bytes));
    }
    let path = prop::<String>(props, path_key)?.unwrap_or_default();
    if path.trim().is_empty() {
        return Ok(None);
    }
    let mut text = Vec::new();
    std::fs::File::open(path.trim())
        .and_then(|f| f.take(MAX_PEM as u64 + 1).read_to_end(&mut text))
        .map_err(|e| {
            Error::config(format!(
                "{path_key} {path}: cannot be read by the plugin ({e}); grant its directory \
                 (plugins.grants.kafka.dirs) or give the content in {raw_key}"
            ))
        })?;
    if text.len() > MAX_PEM {
        return Err(Error::config(format!(
            "{path_key} {path}: larger than {MAX_PEM} bytes, not a PEM certificate or key"
        )));
    }
    Ok(Some(text))
}

fn certificates(pem_text: &[u8], key: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::config(format!("{key}: not a PEM certificate ({e:?})")))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{key}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

/// `renegotiationSupport`: only `never` (rustls does not renegotiate).
fn check_renegotiation(props: &Props) -> Result<(), Error> {
    let v = prop::<String>(props, "renegotiationSupport")?.unwrap_or_default();
    match v.to_ascii_lowercase().as_str() {
        "" | "never" => Ok(()),
        other => Err(Error::config(format!(
            "renegotiationSupport {other:?}: only never is supported (rustls does not renegotiate)"
        ))),
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// `tlsMinVersion` (`tls1.2`, the default, or `tls1.3`): the versions offered.
fn min_version(
    props: &Props,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], Error> {
    let v = prop::<String>(props, "tlsMinVersion")?.unwrap_or_default();
    match v.to_ascii_lowercase().replace(['.', '_', ' '], "").as_str() {
        "" | "tls12" => Ok(rustls::ALL_VERSIONS),
        "tls13" => Ok(TLS13_ONLY),
        "tls10" | "tls11" => Err(Error::config(
            "tlsMinVersion: TLS 1.0 and 1.1 are not supported; use tls1.2 (the default) or tls1.3",
        )),
        other => Err(Error::config(format!(
            "tlsMinVersion {other:?}: use tls1.2 or tls1.3"
        ))),
    }
}

/// The TLS settings: `None` when TLS is off. `ssl_brokers`: the brokers
/// were written `ssl://`, which turns it on too.
pub fn tls(props: &Props, ssl_brokers: bool) -> Result<Option<Tls>, Error> {
    let skip = prop::<bool>(props, "insecureSkipVerify")?.unwrap_or(false);
    let mut on = skip || ssl_brokers;
    for k in TLS_KEYS {
        on |= prop::<String>(props, k)?.is_some_and(|v| !v.trim().is_empty());
    }
    check_renegotiation(props)?;
    let versions = min_version(props)?;
    if !on {
        return Ok(None);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| Error::config(format!("tlsMinVersion: {e}")))?;
    let builder = if skip {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match pem(props, "rootCARaw", "rootCaPath")? {
            Some(text) => {
                let key = "rootCARaw/rootCaPath";
                for c in certificates(&text, key)? {
                    roots
                        .add(c)
                        .map_err(|e| Error::config(format!("{key}: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let cert = pem(props, "certficationRaw", "certificationPath")?;
    let key = pem(props, "privateKeyRaw", "privateKeyPath")?;
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => {
            let chain = certificates(&c, "certficationRaw/certificationPath")?;
            let key = PrivateKeyDer::from_pem_slice(&k).map_err(|e| {
                Error::config(format!(
                    "privateKeyRaw/privateKeyPath: no PEM private key ({e:?})"
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config(format!("client certificate and key: {e}")))?
        }
        (Some(_), None) => {
            return Err(Error::config(
                "certificationPath/certficationRaw is set without privateKeyPath/privateKeyRaw: a client certificate needs its key",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "privateKeyPath/privateKeyRaw is set without certificationPath/certficationRaw: a client key needs its certificate",
            ))
        }
    };
    // No session resumption: a broker connection lives as long as the
    // plugin instance, so a resumed handshake saves nothing that matters,
    // and servers that check client certificates without a session id
    // context (OpenSSL-based fronts) refuse a resumed session outright.
    let mut config = config;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Some(Tls {
        config: Arc::new(config),
    }))
}

/// `insecureSkipVerify`: any certificate and host name are accepted; the
/// handshake's signatures are still checked, so the session is encrypted
/// to whoever holds the presented certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A broker connection's byte stream: plain TCP or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Wraps `tcp` in TLS for `host` and completes the handshake before
    /// `deadline`.
    pub(crate) fn tls(
        tls: &Tls,
        tcp: TcpStream,
        host: &str,
        deadline: Instant,
    ) -> Result<Stream, Error> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| Error::config(format!("kafka TLS: broker host {host:?}: {e}")))?;
        let conn = ClientConnection::new(tls.config.clone(), name)
            .map_err(|e| Error::internal(format!("kafka TLS with {host}: {e}")))?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::unavailable(format!(
                    "kafka TLS handshake with {host}: no answer in time (is the listener TLS?)"
                )));
            }
            let _ = s
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return Err(handshake_error(host, e));
            }
        }
        Ok(Stream::Tls(Box::new(s)))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    pub(crate) fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(b),
            Stream::Tls(s) => s
                .write_all(b)
                .and_then(|()| s.flush())
                .map_err(session_error),
        }
    }
}

fn handshake_error(host: &str, e: std::io::Error) -> Error {
    let why = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        // Trust refused either way: permanent (the rule stops, as for a
        // wrong SASL password), not a network hiccup to retry.
        Some(rustls::Error::InvalidCertificate(c)) => {
            return Error::unauthorized(format!(
                "kafka TLS handshake with {host}: the broker's certificate is refused ({c:?}): give its CA in rootCARaw/rootCaPath, or set insecureSkipVerify"
            ))
        }
        Some(rustls::Error::AlertReceived(_)) => {
            let e = session_error(e);
            let msg = format!("kafka TLS handshake with {host}: {e}");
            return if e.kind() == std::io::ErrorKind::PermissionDenied {
                Error::unauthorized(msg)
            } else {
                Error::unavailable(msg)
            };
        }
        Some(other) => other.to_string(),
        None if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            "no answer in time (is the listener TLS?)".to_string()
        }
        None => e.to_string(),
    };
    Error::unavailable(format!("kafka TLS handshake with {host}: {why}"))
}

/// An IO error of the TLS session, with what a refusing broker's alert
/// usually means; a refusal of the client's identity is `PermissionDenied`
/// (permanent: the rule stops), not a hiccup to retry.
fn session_error(e: std::io::Error) -> std::io::Error {
    use rustls::AlertDescription as A;
    let Some(rustls::Error::AlertReceived(a)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let (kind, hint) = match a {
        A::CertificateRequired
        | A::HandshakeFailure
        | A::BadCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::AccessDenied => (
            std::io::ErrorKind::PermissionDenied,
            ": the broker refused the TLS session, likely for want of an accepted client certificate (certificationPath/certficationRaw with privateKeyPath/privateKeyRaw)",
        ),
        _ => (e.kind(), ""),
    };
    std::io::Error::new(kind, format!("TLS alert {a:?} from the broker{hint}"))
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf).map_err(session_error),
        }
    }
}

impl oort_plugin_sdk::net::ReadTimeout for Stream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn tls_is_off_without_its_settings_and_on_with_any() {
        for v in [
            serde_json::json!({}),
            serde_json::json!({"tlsMinVersion": "tls1.2", "insecureSkipVerify": false}),
        ] {
            assert!(tls(&props(v.clone()), false).unwrap().is_none(), "{v}");
        }
        assert!(tls(&props(serde_json::json!({})), true).unwrap().is_some());
        let skip = props(serde_json::json!({"insecureSkipVerify": true}));
        assert!(tls(&skip, false).unwrap().is_some());
    }

    #[test]
    fn bad_tls_settings_are_refused_by_name() {
        for (v, want) in [
            (serde_json::json!({"rootCARaw": "%%%"}), "rootCARaw"),
            (
                serde_json::json!({"rootCARaw": base64::engine::general_purpose::STANDARD.encode("hello")}),
                "rootCARaw/rootCaPath",
            ),
            (
                serde_json::json!({"rootCaPath": "/nonexistent/ca.pem"}),
                "rootCaPath /nonexistent/ca.pem",
            ),
            (
                serde_json::json!({"tlsMinVersion": "tls1.0"}),
                "tlsMinVersion",
            ),
            (
                serde_json::json!({"tlsMinVersion": "ssl3"}),
                "tlsMinVersion",
            ),
            (
                serde_json::json!({"renegotiationSupport": "freely"}),
                "renegotiationSupport",
            ),
            (
                serde_json::json!({"insecureSkipVerify": true, "privateKeyRaw": base64::engine::general_purpose::STANDARD.encode("x")}),
                "privateKeyPath/privateKeyRaw is set without",
            ),
        ] {
            let e = tls(&props(v.clone()), false).unwrap_err();
            assert!(e.message.contains(want), "{v}: {}", e.message);
        }
    }
}
