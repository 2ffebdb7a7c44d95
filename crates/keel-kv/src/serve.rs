//! `keel-kv serve`: one member, its flags, and its life from start to a
//! clean stop (a signal, or removal from the cluster).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use clap::Args;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use keel_transport::{PeerIdentity, TlsConfig};
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Member, MemberOptions, PlantedBug, StopReason};
use crate::{http, tls};

/// The flags of `keel-kv serve` (named as etcd names them).
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// This member's id (a positive integer, unique for all time).
    #[arg(long)]
    pub id: u64,
    /// Every member's id and peer URL: `1=http://10.0.0.1:2380,2=http://...`.
    #[arg(long)]
    pub initial_cluster: String,
    /// Where to accept peer connections (default: this member's address in --initial-cluster).
    #[arg(long)]
    pub listen_peer: Option<SocketAddr>,
    /// Where to serve the client API.
    #[arg(long)]
    pub listen_client: SocketAddr,
    /// This member's data directory (the WAL and snapshots).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Join an existing cluster (add the member first with `POST /members`).
    #[arg(long)]
    pub join: bool,
    /// Members started with different tokens refuse each other.
    #[arg(long, default_value = "keel-cluster")]
    pub initial_cluster_token: String,
    /// Applied entries between snapshots.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_count: u64,
    /// Entries kept behind a snapshot for slow followers.
    #[arg(long, default_value_t = 5_000)]
    pub snapshot_catchup_entries: u64,
    /// The raft tick, in milliseconds (heartbeats go out every tick).
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Election timeout, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// How long a request waits for a leader, a commit or a read, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub request_timeout: u64,
    /// Largest request body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Serve clients over HTTPS with this certificate (PEM).
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The key of --cert-file (PEM).
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Mutual TLS between peers: this member's certificate (PEM).
    #[arg(long, requires_all = ["peer_key_file", "peer_trusted_ca_file"])]
    pub peer_cert_file: Option<PathBuf>,
    /// The key of --peer-cert-file (PEM).
    #[arg(long, requires = "peer_cert_file")]
    pub peer_key_file: Option<PathBuf>,
    /// The CA that every peer's certificate must chain to (PEM).
    #[arg(long, requires = "peer_cert_file")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// A peer's certificate must name the IP address this member dials it
    /// at, so that one member's certificate cannot pose as another member.
    #[arg(long, requires = "peer_cert_file", conflicts_with = "peer_cert_allowed_hostname")]
    pub peer_cert_check_address: bool,
    /// A peer's certificate must be valid for this DNS name (as etcd's flag).
    #[arg(long, requires = "peer_cert_file", value_name = "NAME")]
    pub peer_cert_allowed_hostname: Option<String>,
    /// Dial member ID at HOST:PORT instead of its advertised peer URL
    /// (repeatable; for NAT, tunnels or fault-injecting proxies).
    #[arg(long = "peer-address", value_name = "ID=HOST:PORT")]
    pub peer_addresses: Vec<String>,
    /// Refuse a change of the voters that would leave fewer members in touch
    /// with the leader than a quorum (such changes are then made on the leader).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub strict_reconfig_check: bool,
    /// Most client connections open at once, TLS handshakes included; when
    /// all are taken, new ones wait in the kernel's accept queue.
    #[arg(
        long,
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1 << 20)
    )]
    pub max_client_connections: u32,
    /// Test-only: run with a deliberate consistency bug (debug builds only).
    #[arg(long, hide = true, value_enum)]
    pub planted_bug: Option<PlantedBug>,
}

/// Parses the `--peer-address ID=HOST:PORT` flags.
fn parse_peer_addresses(flags: &[String]) -> Result<HashMap<u64, SocketAddr>, String> {
    let mut out = HashMap::new();
    for flag in flags.iter().flat_map(|f| f.split(',')).map(str::trim).filter(|f| !f.is_empty()) {
        let parsed = flag.split_once('=').and_then(|(id, addr)| {
            Some((id.parse::<u64>().ok().filter(|id| *id != 0)?, addr.parse::<SocketAddr>().ok()?))
        });
        let (id, addr) =
            parsed.ok_or_else(|| format!("--peer-address {flag:?} is not ID=HOST:PORT"))?;
        if out.insert(id, addr).is_some() {
            return Err(format!("--peer-address names member {id} twice"));
        }
    }
    Ok(out)
}

/// Parses `1=http://host:port,2=...`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(u64, String)>, String> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, url) = part
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster entry {part:?} is not ID=URL"))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|id| *id != 0)
            .ok_or_else(|| format!("--initial-cluster id {id:?} is not a positive integer"))?;
        // Its form only: a restarted member may list a host whose name is
        // gone, and a new cluster looks every member up when it starts.
        server::peer_host_port(url)?;
        if out.iter().any(|(m, _)| *m == id) {
            return Err(format!("--initial-cluster lists member {id} twice"));
        }
        out.push((id, url.to_string()));
    }
    if out.is_empty() {
        return Err("--initial-cluster is empty".into());
    }
    Ok(out)
}

/// The member options the flags describe.
pub fn member_options(a: &ServeArgs) -> Result<MemberOptions, String> {
    let initial_cluster = parse_initial_cluster(&a.initial_cluster)?;
    let own = initial_cluster
        .iter()
        .find(|(id, _)| *id == a.id)
        .ok_or_else(|| format!("--initial-cluster does not list this member ({})", a.id))?;
    let listen_peer = match a.listen_peer {
        Some(addr) => addr,
        None => server::resolve_peer_url(&own.1)?,
    };
    if a.heartbeat_interval == 0 || a.election_timeout < 2 * a.heartbeat_interval {
        return Err("--election-timeout must be at least twice --heartbeat-interval".into());
    }
    let peer_tls = match (&a.peer_cert_file, &a.peer_key_file, &a.peer_trusted_ca_file) {
        (Some(c), Some(k), Some(ca)) => {
            let identity = match (&a.peer_cert_allowed_hostname, a.peer_cert_check_address) {
                (Some(name), _) => PeerIdentity::Hostname(name.clone()),
                (None, true) => PeerIdentity::PeerAddress,
                (None, false) => PeerIdentity::AnyMember,
            };
            let tls = TlsConfig::from_files(c, k, ca).and_then(|t| t.with_peer_identity(identity));
            Some(tls.map_err(|e| format!("peer TLS: {e}"))?)
        }
        _ => None,
    };
    if a.planted_bug.is_some() && !cfg!(debug_assertions) {
        return Err("--planted-bug is test-only and exists only in debug builds".into());
    }
    Ok(MemberOptions {
        id: a.id,
        initial_cluster,
        cluster_token: a.initial_cluster_token.clone(),
        listen_peer,
        data_dir: a.data_dir.clone(),
        join: a.join,
        tick: Duration::from_millis(a.heartbeat_interval),
        election_ticks: (a.election_timeout / a.heartbeat_interval) as usize,
        snapshot_count: a.snapshot_count.max(1),
        snapshot_catchup_entries: a.snapshot_catchup_entries,
        request_timeout: Duration::from_millis(a.request_timeout.max(1)),
        peer_tls,
        peer_addresses: parse_peer_addresses(&a.peer_addresses)?,
        strict_reconfig_check: a.strict_reconfig_check,
        planted_bug: a.planted_bug,
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs one member until it stops; says why it stopped.
pub async fn serve(args: ServeArgs) -> Result<StopReason, String> {
    let opts = member_options(&args)?;
    let tls = match (&args.cert_file, &args.key_file) {
        (Some(c), Some(k)) => Some(TlsAcceptor::from(tls::server_config(c, k)?)),
        _ => None,
    };
    let listener = TcpListener::bind(args.listen_client)
        .await
        .map_err(|e| format!("cannot listen for clients on {}: {e}", args.listen_client))?;
    let id = opts.id;
    let member = Member::start(opts).map_err(|e| e.to_string())?;
    let sh = member.shared();
    // A request's raft waits are bounded by the request timeout; reading it
    // gets as long again.
    let deadline = 2 * sh.opts.request_timeout;
    let clients = Clients {
        app: http::router(sh.clone(), args.max_request_bytes, deadline),
        tls,
        max: args.max_client_connections,
        // The headers get the bound of reading and serving the rest: one
        // knob, and a client slow before its request holds a slot no longer
        // than one slow within it.
        http: http1_server(deadline),
        open: sh.metrics.client_connections.clone(),
    };
    let scheme = if clients.tls.is_some() { "https" } else { "http" };
    tracing::info!(
        id,
        "serving clients on {scheme}://{}, peers on {}",
        args.listen_client,
        sh.transport.local_addr()
    );
    let stop_sh = sh.clone();
    let stop = async move {
        let why = tokio::select! {
            _ = shutdown_signal() => StopReason::Requested,
            why = stop_sh.stopped() => why,
        };
        stop_sh.request_stop(why);
    };
    // Requests in flight get the deadline to finish once the member stops;
    // connections still open after it (a client that sends nothing) are
    // dropped, so that a stop or a removal never waits on a client.
    let grace_sh = sh.clone();
    let grace = async move {
        grace_sh.stopped().await;
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        () = clients.serve(listener, stop) => {}
        () = grace => tracing::warn!(id, "client connections still open; stopping anyway"),
    }
    let why = sh.stopped().await;
    tracing::info!(id, ?why, "stopping");
    drop(sh);
    tokio::task::spawn_blocking(move || member.stop()).await.map_err(|e| e.to_string())?;
    Ok(why)
}

/// How often, at most, a full connection table is logged.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The client API's connections: axum routes served over hyper's HTTP/1.1
/// directly (axum::serve bounds neither the time a client takes to send its
/// headers nor the number of connections).
struct Clients {
    app: Router,
    tls: Option<TlsAcceptor>,
    /// Most connections open at once. Past it the accept loop waits for a
    /// slot and the kernel queues new connections in the listen backlog (as
    /// Go's `netutil.LimitListener` does): a client sees a slow connect, not
    /// an error, and a flood costs no work; accepting to close at once would
    /// spin on the flood and turn a brief burst into failures.
    max: u32,
    /// HTTP/1.1 with keep-alive and a header read timeout.
    http: http1::Builder,
    /// The gauge of connections open.
    open: Gauge,
}

/// hyper's HTTP/1.1 server with `header_timeout`: the time a client has to
/// send a request's headers from the moment its connection is ready for one,
/// so also how long a keep-alive connection may stay idle. hyper closes the
/// connection when it runs out.
fn http1_server(header_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    http
}

/// One connection's place among [`Clients::max`]; counted in the gauge of
/// open connections while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, open: &Gauge) -> Slot {
        open.inc();
        Slot { _permit: permit, open: open.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Resolves once the accept loop has stopped (or is gone).
async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopping| *stopping).await;
}

impl Clients {
    /// Accepts and serves connections until `stop` resolves, then lets every
    /// connection finish the request it is serving; returns once all are
    /// closed.
    async fn serve(self, listener: TcpListener, stop: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.max as usize));
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let this = Arc::new(self);
        let mut stop = std::pin::pin!(stop);
        let mut warned: Option<Instant> = None;
        loop {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if warned.is_none_or(|t| t.elapsed() >= FULL_WARNING_EVERY) {
                        warned = Some(Instant::now());
                        tracing::warn!(
                            "{} client connections open (--max-client-connections); \
                             new ones wait",
                            this.max
                        );
                    }
                    tokio::select! {
                        p = slots.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                        () = &mut stop => break,
                    }
                }
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, say: try again shortly.
                        tracing::debug!("client accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let slot = Slot::new(permit, &this.open);
            tokio::spawn(this.clone().connection(stream, peer, stopping_rx.clone(), slot));
        }
        drop(listener);
        let _ = stopping_tx.send(true);
        // Every connection holds a slot until it closes.
        let _ = slots.acquire_many(this.max).await;
    }

    /// Serves one connection: its TLS handshake if any, then its requests.
    async fn connection(
        self: Arc<Clients>,
        stream: TcpStream,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
        _slot: Slot,
    ) {
        match &self.tls {
            None => self.requests(TokioIo::new(stream), peer, &mut stop).await,
            Some(acceptor) => {
                let handshaken = tokio::select! {
                    tls = tls::handshake(acceptor, stream, peer) => tls,
                    () = stopping(&mut stop) => None,
                };
                if let Some(tls) = handshaken {
                    self.requests(TokioIo::new(tls), peer, &mut stop).await;
                }
            }
        }
    }

    /// Serves the requests of one connection (HTTP/1.1, keep-alive) until
    /// the client closes it, its header timeout runs out, or the accept
    /// loop stops: then the request being served finishes and it closes.
    async fn requests<I>(&self, io: I, peer: SocketAddr, stop: &mut watch::Receiver<bool>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let conn = self.http.serve_connection(io, TowerToHyperService::new(self.app.clone()));
        let mut conn = std::pin::pin!(conn);
        let served = tokio::select! {
            served = conn.as_mut() => served,
            () = stopping(stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = served {
            tracing::debug!(%peer, "client connection closed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_refuses_nonsense() {
        let c = parse_initial_cluster("1=http://127.0.0.1:1,2=http://127.0.0.1:2").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1], (2, "http://127.0.0.1:2".to_string()));
        for bad in [
            "",
            "1",
            "0=http://127.0.0.1:1",
            "x=http://127.0.0.1:1",
            "1=http://127.0.0.1:1,1=http://127.0.0.1:2",
            "1=http://127.0.0.1",
        ] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peer_addresses_parse_and_refuse_nonsense() {
        let flags = ["2=127.0.0.1:7,3=127.0.0.1:8".to_string(), "4=[::1]:9".to_string()];
        let m = parse_peer_addresses(&flags).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&3].port(), 8);
        for bad in ["2", "0=127.0.0.1:7", "2=localhost", "2=127.0.0.1:7,2=127.0.0.1:8"] {
            assert!(parse_peer_addresses(&[bad.to_string()]).is_err(), "{bad:?}");
        }
    }
}
