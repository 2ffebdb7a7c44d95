//! Dialling a peer and the server side of the handshake, over TCP or TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::WireError;
use crate::transport::Shared;
use crate::wire::{ConnKind, HELLO_LEN, Hello, PROTOCOL_VERSION, Verdict};

/// A byte stream to a peer, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type Conn = Box<dyn Io>;

/// Socket options of every peer connection: no Nagle delay (raft's messages
/// are latency-bound), keepalive probing of idle connections, and a bound on
/// unacknowledged data.
fn tune(tcp: &TcpStream, limits: &crate::Limits) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let idle = limits.keepalive_idle;
    let keepalive = TcpKeepalive::new().with_time(idle).with_interval(idle / 3).with_retries(3);
    let socket = SockRef::from(tcp);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(limits.write_timeout))?;
    Ok(())
}

/// Connects to `addr`, expecting member `to`, and completes the handshake.
pub(crate) async fn dial(
    shared: &Shared,
    to: u64,
    addr: SocketAddr,
    kind: ConnKind,
) -> Result<Conn, WireError> {
    let deadline = shared.limits.handshake_timeout;
    let work = async {
        let tcp = TcpStream::connect(addr).await?;
        tune(&tcp, &shared.limits)?;
        let mut conn: Conn = match &shared.tls {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.client));
                Box::new(connector.connect(crate::tls::server_name(addr), tcp).await?)
            }
            None => Box::new(tcp),
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            kind,
            cluster_id: shared.cluster_id,
            from: shared.local_id,
            to,
            listen_port: shared.listen_port,
        };
        conn.write_all(&hello.encode()).await?;
        conn.flush().await?;
        let verdict = Verdict::from_byte(conn.read_u8().await?)?;
        match verdict {
            Verdict::Accept => Ok(conn),
            refused => Err(WireError::Refused(refused)),
        }
    };
    match timeout(deadline, work).await {
        Ok(Err(WireError::Refused(v))) => {
            if v.is_membership() {
                tracing::warn!(peer = to, %addr, reason = %v, "peer refused our handshake");
            } else {
                tracing::error!(peer = to, %addr, reason = %v, "peer refused our handshake");
            }
            if v == Verdict::RemovedSender {
                shared.inbox.report_removed(to);
            }
            Err(WireError::Refused(v))
        }
        Ok(r) => r,
        Err(_) => Err(WireError::DialTimeout),
    }
}

/// Server side: TLS accept, read the hello, judge it and answer.
pub(crate) async fn accept(
    shared: &Shared,
    tcp: TcpStream,
    remote: SocketAddr,
) -> Result<(Conn, Hello), WireError> {
    let work = async {
        tune(&tcp, &shared.limits)?;
        let (mut conn, cert): (Conn, _) = match &shared.tls {
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.server));
                let stream = acceptor.accept(tcp).await?;
                let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
                (Box::new(stream), cert)
            }
            None => (Box::new(tcp), None),
        };
        let mut raw = [0u8; HELLO_LEN];
        crate::wire::read_exact(&mut conn, &mut raw).await?;
        let hello = Hello::decode(&raw)?;
        let mut identity = Ok(());
        let verdict = match judge(shared, &hello) {
            Verdict::Accept => {
                identity = check_identity(shared, cert.as_ref(), hello.from);
                if identity.is_ok() { Verdict::Accept } else { Verdict::WrongIdentity }
            }
            refused => refused,
        };
        if verdict == Verdict::UnknownSender && hello.listen_port != 0 {
            shared
                .inbox
                .report_unknown_peer(hello.from, SocketAddr::new(remote.ip(), hello.listen_port));
        }
        conn.write_u8(verdict as u8).await?;
        conn.flush().await?;
        match verdict {
            Verdict::Accept => Ok((conn, hello)),
            refused => {
                crate::stats::bump(&shared.stats.handshakes_refused, 1);
                if let Err(source) = identity {
                    let e = WireError::PeerIdentity { claimed: hello.from, source };
                    tracing::error!(%remote, error = %e, "refused a peer's handshake");
                    return Err(e);
                }
                if refused.is_membership() {
                    tracing::warn!(
                        %remote, from = hello.from, reason = %refused, "refused a peer's handshake"
                    );
                } else {
                    tracing::error!(
                        %remote, from = hello.from, to = hello.to, cluster = hello.cluster_id,
                        version = hello.version, reason = %refused, "refused a peer's handshake"
                    );
                }
                Err(WireError::Refused(refused))
            }
        }
    };
    match timeout(shared.limits.handshake_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(WireError::HandshakeTimeout),
    }
}

/// With TLS, whether `cert` identifies member `from` as
/// [`PeerIdentity`](crate::PeerIdentity) requires.
fn check_identity(
    shared: &Shared,
    cert: Option<&rustls_pki_types::CertificateDer<'_>>,
    from: u64,
) -> Result<(), crate::error::IdentityError> {
    match &shared.tls {
        Some(tls) => tls.check_peer(cert, shared.peer_addr(from)),
        None => Ok(()),
    }
}

fn judge(shared: &Shared, hello: &Hello) -> Verdict {
    if hello.version != PROTOCOL_VERSION {
        Verdict::WrongVersion
    } else if hello.cluster_id != shared.cluster_id {
        Verdict::WrongCluster
    } else if hello.to != shared.local_id {
        Verdict::WrongReceiver
    } else if shared.was_removed(hello.from) {
        Verdict::RemovedSender
    } else if !shared.is_peer(hello.from) {
        Verdict::UnknownSender
    } else {
        Verdict::Accept
    }
}
