//! Mutual TLS from PEM files (as etcd's `--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file`): each side presents its certificate and verifies
//! the other's against the trusted CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::StartError;

/// Certificate, key and trusted CA for mutual TLS.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::Tls(format!("{what}: {e}"))
}

impl TlsConfig {
    /// Builds from PEM text: the member's certificate chain, its private key,
    /// and the CA certificates peers must chain to.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
    ) -> Result<TlsConfig, StartError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| tls_err("certificate", e))?;
        if chain.is_empty() {
            return Err(StartError::Tls("no certificate in the certificate PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls_err("private key", e))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(ca.map_err(|e| tls_err("trusted CA", e))?)
                .map_err(|e| tls_err("trusted CA", e))?;
        }
        if roots.is_empty() {
            return Err(StartError::Tls("no certificate in the trusted CA PEM".into()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| tls_err("client verifier", e))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("server", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_err("server certificate", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("client", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_err("client certificate", e))?;
        Ok(TlsConfig { client: Arc::new(client), server: Arc::new(server) })
    }

    /// Reads the three PEM files, then as [`TlsConfig::from_pem`].
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<TlsConfig, StartError> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| tls_err(&p.display().to_string(), e));
        TlsConfig::from_pem(&read(cert)?, &read(key)?, &read(ca)?)
    }
}

/// Peers are dialled by address, so their certificates name their IP.
pub(crate) fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}
