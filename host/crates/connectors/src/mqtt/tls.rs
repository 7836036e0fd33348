//! TLS for MQTT connections (`ssl://`, `tls://`, `mqtts://`): rustls with the
//! broker's CA (`rootCaPath`/`rootCaRaw`, else the system bundle) and an
//! optional client certificate, through the tokio-rustls that rumqttc
//! re-exports (one rustls in the build).

use std::sync::Arc;

use oort_core::ConnectorError;
use rumqttc::tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    ClientConfig, RootCertStore,
};
use rumqttc::tokio_rustls::TlsConnector;

use super::client::Settings;

/// System CA bundles tried when TLS is used without `rootCaPath`.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectorError::Config(format!("mqtt: invalid PEM in {what}: {e}")))?;
    if certs.is_empty() {
        return Err(ConnectorError::Config(format!(
            "mqtt: no certificate in {what}"
        )));
    }
    Ok(certs)
}

/// The connector for `s` (reads the PEM files: call it when connecting).
pub(crate) fn connector(s: &Settings) -> Result<TlsConnector, ConnectorError> {
    let ca = match &s.tls.ca {
        Some(src) => src.load("rootCaPath")?,
        None => SYSTEM_CA_FILES
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                ConnectorError::config("mqtt: no system CA bundle found: set rootCaPath")
            })?,
    };
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs(&ca, "rootCaPath")?);
    if added == 0 {
        return Err(ConnectorError::config(
            "mqtt: no usable CA certificate in rootCaPath",
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("mqtt: TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match (&s.tls.cert, &s.tls.key) {
        (Some(c), Some(k)) => {
            let chain = certs(&c.load("certificationPath")?, "certificationPath")?;
            let key = PrivateKeyDer::from_pem_slice(&k.load("privateKeyPath")?).map_err(|e| {
                ConnectorError::Config(format!("mqtt: no usable key in privateKeyPath: {e}"))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConnectorError::Config(format!("mqtt: client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the broker's certificate must carry.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}
