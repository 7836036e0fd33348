//! TLS shared by the connectors: client settings (MQTT `ssl://`, WebSocket
//! `wss://`) and the data server's certificate ([`server_config`]):
//! rustls (ring) with the peer's CA (`rootCaPath` /
//! `rootCARaw`, else the system bundle), an optional client certificate
//! (`certificationPath`/`certficationRaw` with `privateKeyPath`/
//! `privateKeyRaw`), and `insecureSkipVerify`. One rustls in the build: the
//! one rumqttc's tokio-rustls re-exports.

use std::path::PathBuf;
use std::sync::Arc;

use oort_core::ConnectorError;
use rumqttc::tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

/// System CA bundles tried when no `rootCaPath` is given.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// PEM material: a path or base64 of the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    Path(PathBuf),
    Base64(String),
}

impl PemSource {
    /// The `raw` (base64) form wins over the path, as in eKuiper.
    pub fn pick(path: &str, raw: &str) -> Option<PemSource> {
        if !raw.trim().is_empty() {
            Some(PemSource::Base64(raw.trim().to_string()))
        } else if !path.trim().is_empty() {
            Some(PemSource::Path(PathBuf::from(path.trim())))
        } else {
            None
        }
    }

    /// The PEM bytes (reads the file).
    pub fn load(&self, kind: &str, what: &str) -> Result<Vec<u8>, ConnectorError> {
        match self {
            PemSource::Path(p) => std::fs::read(p).map_err(|e| {
                ConnectorError::Config(format!("{kind}: cannot read {what} {}: {e}", p.display()))
            }),
            // PEM text written in place of base64 is taken as it is.
            PemSource::Base64(b) if b.starts_with("-----BEGIN") => Ok(b.as_bytes().to_vec()),
            PemSource::Base64(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| {
                        ConnectorError::Config(format!(
                            "{kind}: invalid base64 in {}: {e}",
                            raw_name(what)
                        ))
                    })
            }
        }
    }
}

/// The name of the base64 form of a path property (eKuiper's spellings).
fn raw_name(path_prop: &str) -> &str {
    match path_prop {
        "rootCaPath" => "rootCARaw",
        "certificationPath" => "certficationRaw",
        "privateKeyPath" => "privateKeyRaw",
        other => other,
    }
}

/// The TLS settings of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PemSource>,
    pub cert: Option<PemSource>,
    pub key: Option<PemSource>,
    pub insecure_skip_verify: bool,
}

impl TlsFiles {
    /// True when any setting is given (a client that must use TLS).
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.insecure_skip_verify
    }

    /// A certificate without its key (or the reverse) is refused.
    pub fn check(&self, kind: &str) -> Result<(), ConnectorError> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(ConnectorError::Config(format!(
                "{kind}: certificationPath is set without privateKeyPath"
            ))),
            (None, Some(_)) => Err(ConnectorError::Config(format!(
                "{kind}: privateKeyPath is set without certificationPath"
            ))),
            _ => Ok(()),
        }
    }
}

fn certs(
    kind: &str,
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectorError::Config(format!("{kind}: invalid PEM in {what}: {e}")))?;
    if certs.is_empty() {
        return Err(ConnectorError::Config(format!(
            "{kind}: no certificate in {what}"
        )));
    }
    Ok(certs)
}

/// The rustls client configuration of `f` (reads the PEM files: call it
/// when connecting).
pub fn client_config(kind: &str, f: &TlsFiles) -> Result<Arc<ClientConfig>, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("{kind}: TLS: {e}")))?;
    let builder = if f.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let ca = match &f.ca {
            Some(src) => src.load(kind, "rootCaPath")?,
            None => SYSTEM_CA_FILES
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "{kind}: no system CA bundle found: set rootCaPath"
                    ))
                })?,
        };
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs(kind, &ca, "rootCaPath")?);
        if added == 0 {
            return Err(ConnectorError::Config(format!(
                "{kind}: no usable CA certificate in rootCaPath"
            )));
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&f.cert, &f.key) {
        (Some(c), Some(k)) => {
            let chain = certs(
                kind,
                &c.load(kind, "certificationPath")?,
                "certificationPath",
            )?;
            let key =
                PrivateKeyDer::from_pem_slice(&k.load(kind, "privateKeyPath")?).map_err(|e| {
                    ConnectorError::Config(format!("{kind}: no usable key in privateKeyPath: {e}"))
                })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConnectorError::Config(format!("{kind}: client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server's TLS configuration: its certificate chain and key (PEM).
pub fn server_config(
    kind: &str,
    cert: &PemSource,
    key: &PemSource,
) -> Result<Arc<ServerConfig>, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(kind, &cert.load(kind, "certfile")?, "certfile")?;
    let key = PrivateKeyDer::from_pem_slice(&key.load(kind, "keyfile")?)
        .map_err(|e| ConnectorError::Config(format!("{kind}: no usable key in keyfile: {e}")))?;
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("{kind}: TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ConnectorError::Config(format!("{kind}: certificate: {e}")))?;
    Ok(Arc::new(cfg))
}

/// The name the peer's certificate must carry.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// `insecureSkipVerify: true`: any certificate is accepted (signatures
/// of the handshake are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
