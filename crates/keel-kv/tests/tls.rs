//! TLS: members that talk mutual TLS to each other, and HTTPS for clients.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::{Cluster, free_port, wait_for};

/// A CA and one certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn pki(dir: &Path) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    (
        write("ca.pem", ca.pem()),
        write("cert.pem", cert.pem()),
        write("key.pem", key.serialize_pem()),
    )
}

#[test]
fn members_replicate_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path());
    let mut flags = vec!["--peer-cert-file", &cert, "--peer-key-file", &key];
    // Every member's certificate names 127.0.0.1, where the others dial it.
    flags.extend(["--peer-trusted-ca-file", &ca, "--peer-cert-check-address"]);
    let c = Cluster::start_in(dir, 3, &flags);
    c.put_ok(0, "secret", "over tls");
    assert_eq!(c.value(2, "secret", false).as_deref(), Some("over tls"));
}

/// One HTTPS GET with a client that trusts only `ca`; the status line.
fn https_get(port: u16, ca: &str, path: &str) -> Option<String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out);
    out.lines().next().map(str::to_string)
}

#[test]
fn clients_are_served_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path());
    let (client, peer) = (free_port(), free_port());
    let _member = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_keel-kv"))
            .args([
                "serve",
                "--id",
                "1",
                "--initial-cluster",
                &format!("1=http://127.0.0.1:{peer}"),
            ])
            .args(["--listen-client", &format!("127.0.0.1:{client}")])
            .args(["--data-dir", dir.path().join("m1").to_str().unwrap()])
            .args(["--cert-file", &cert, "--key-file", &key])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = wait_for(Duration::from_secs(20), "an HTTPS health check", || {
        https_get(client, &ca, "/health").filter(|s| s.contains(" 200 "))
    });
    assert!(status.starts_with("HTTP/1"), "{status}");
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(("127.0.0.1", client)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    plain.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
}

/// Kills the member it holds (by its pid) however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
