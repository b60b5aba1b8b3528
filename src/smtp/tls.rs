//! STARTTLS: the server certificate and key from the configuration, read
//! once at start so that a missing or unreadable file stops the start with
//! its name rather than failing the first client.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Reads a PEM certificate chain and its private key into a TLS server
/// setup. The error names the file and what is wrong with it.
pub fn load_tls(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let cert_pem = read(certificate)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" block)",
            certificate.display()
        ));
    }
    let key_pem = read(key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?
        .ok_or_else(|| format!("{} holds no private key", key.display()))?;
    // One provider named explicitly: the dependency tree carries two, and
    // rustls will not guess between them.
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map(Arc::new)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))
}
