//! Mutual TLS from PEM files (as etcd's `--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file`): each side presents its certificate and verifies
//! the other's against the trusted CA.
//!
//! A CA-signed certificate alone proves membership of the cluster, not which
//! member: etcd narrows it with `--peer-cert-allowed-cn` and
//! `--peer-cert-allowed-hostname`. [`PeerIdentity`] does that here, and can
//! go further by tying a dialler's certificate to the member its handshake
//! claims to be (off by default, as in etcd).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{IdentityError, StartError};

/// What an accepted connection's client certificate must name, beyond
/// chaining to the trusted CA. Checked once the handshake has named the
/// sender; a mismatch refuses the connection
/// ([`Verdict::WrongIdentity`](crate::Verdict::WrongIdentity)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PeerIdentity {
    /// Any certificate the CA signed may claim to be any member (etcd's
    /// default; the default here, for compatibility).
    #[default]
    AnyMember,
    /// The certificate's subject alternative names must cover the IP of the
    /// address this member dials the claimed sender at (`add_peer`): the
    /// same name the dialling side already checks on the server's
    /// certificate, so a member's certificate needs nothing new. A member
    /// dialled through another address (NAT, a proxy) needs that IP too.
    PeerAddress,
    /// The certificate must be valid for this DNS name, whichever member it
    /// claims to be (etcd's `--peer-cert-allowed-hostname`).
    Hostname(String),
}

/// Certificate, key and trusted CA for mutual TLS.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
    identity: Identity,
}

/// [`PeerIdentity`], with its host name parsed once.
#[derive(Clone, Debug, Default)]
enum Identity {
    #[default]
    AnyMember,
    PeerAddress,
    Hostname(ServerName<'static>),
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
        Ok(TlsConfig {
            client: Arc::new(client),
            server: Arc::new(server),
            identity: Identity::AnyMember,
        })
    }

    /// Requires every accepted peer's certificate to name what `identity`
    /// says; an invalid host name is a [`StartError::Tls`].
    pub fn with_peer_identity(mut self, identity: PeerIdentity) -> Result<TlsConfig, StartError> {
        self.identity = match identity {
            PeerIdentity::AnyMember => Identity::AnyMember,
            PeerIdentity::PeerAddress => Identity::PeerAddress,
            PeerIdentity::Hostname(name) => Identity::Hostname(
                ServerName::try_from(name).map_err(|e| tls_err("allowed peer hostname", e))?,
            ),
        };
        Ok(self)
    }

    /// Checks the client certificate `cert` of a connection whose handshake
    /// claims to come from the member dialled at `claimed` (`None`: not known).
    pub(crate) fn check_peer(
        &self,
        cert: Option<&CertificateDer<'_>>,
        claimed: Option<SocketAddr>,
    ) -> Result<(), IdentityError> {
        let name = match &self.identity {
            Identity::AnyMember => return Ok(()),
            Identity::PeerAddress => server_name(claimed.ok_or(IdentityError::NoAddress)?),
            Identity::Hostname(name) => name.clone(),
        };
        let cert = cert.ok_or(IdentityError::NoCertificate)?;
        let parsed = ParsedCertificate::try_from(cert).map_err(IdentityError::Unparsable)?;
        rustls::client::verify_server_name(&parsed, &name)
            .map_err(|source| IdentityError::Mismatch { name: name.to_str().into_owned(), source })
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
