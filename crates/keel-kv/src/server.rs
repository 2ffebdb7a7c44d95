//! One member: the raft [`Node`], its [`DiskStorage`], its [`Transport`], and
//! the threads that drive them.
//!
//! Raft runs with asynchronous storage writes, so that disk, network and
//! apply overlap:
//! - **outbound** (`Node`'s ready handler, run by whichever thread made the
//!   `Ready`) sends its messages (the leader's appends leave while its own
//!   write is in flight) and resolves read states;
//! - the **append thread** makes up to 64 queued `MsgStorageAppend`s durable
//!   with one fdatasync (group commit), then steps or sends their responses;
//! - the **apply thread** applies committed entries to the map, wakes the
//!   waiting requests, applies configuration changes, and every
//!   `snapshot_count` entries hands an O(1) copy of the map to
//! - the **snapshot thread**, which encodes it, writes the snapshot and
//!   compacts the log, so that applies never wait for a snapshot;
//! - the **ticker** ticks raft;
//! - the **event thread** steps peers' messages (every message queued at
//!   once, with `Node::step_many`, so a burst makes one `Ready`) and
//!   transport reports into raft;
//! - the **proposer thread** batches concurrent writes into one proposal;
//! - the **read task** batches linearizable reads into one ReadIndex round.
//!
//! Under load each stage batches on its own thread. When a member is
//! lightly loaded, work skips the threads that are idle, since waking one
//! costs about as much as a loopback round trip on a small VM: a request
//! handler proposes a lone write itself (`Node::try_propose`), the
//! transport task that read a peer's message steps it (`try_step_many`,
//! through `Transport::deliver_inline`), and the thread that stepped in a
//! commit applies it and answers the request (`InlineStorage`). A lone
//! write then wakes, beyond the network's reads, only the append threads
//! (leader and follower) and the request's task.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    TryLockError, Weak,
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel::node::{AppendWork, ApplyWork, InlineStorage};
use keel::raftpb::{
    AnyConfChange, ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, Snapshot,
};
use keel::{Config, Node, NodeOptions, Peer, ReadyHandler, StateType, Storage};
use keel_transport::{Event, Events, TlsConfig, Transport};
use keel_wal::{DiskOptions, DiskStorage, PersistRequest};
use tokio::sync::{Notify, oneshot, watch};

use crate::command::{Command, Op};
use crate::error::KvError;
use crate::metrics::Metrics;
use crate::state::{KvState, MemberChange};

/// How one member runs.
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// This member's raft id.
    pub id: u64,
    /// Every initial member's id and peer URL (`http://host:port`).
    pub initial_cluster: Vec<(u64, String)>,
    /// Hashed into the cluster id that every peer handshake checks.
    pub cluster_token: String,
    /// Where peers connect.
    pub listen_peer: SocketAddr,
    /// This member's data directory.
    pub data_dir: PathBuf,
    /// Join an existing cluster (added first with `POST /members`).
    pub join: bool,
    /// The raft tick.
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot, for slow followers.
    pub snapshot_catchup_entries: u64,
    /// How long a request waits for a leader, a commit or a read.
    pub request_timeout: Duration,
    /// Mutual TLS between peers.
    pub peer_tls: Option<TlsConfig>,
    /// Members dialed at a fixed address instead of their advertised peer
    /// URL (NAT, tunnels, keel-chaos's fault-injecting proxies).
    pub peer_addresses: HashMap<u64, SocketAddr>,
    /// Refuse a change of the voters that would leave fewer members in
    /// touch with the leader than a quorum (etcd's `--strict-reconfig-check`).
    pub strict_reconfig_check: bool,
    /// A deliberate bug, for proving that keel-chaos catches one; only debug
    /// builds accept it.
    pub planted_bug: Option<PlantedBug>,
}

/// Bugs that break linearizability on purpose (test-only: `serve` refuses
/// them in release builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlantedBug {
    /// Answer a write once raft has accepted it, before it commits.
    AckBeforeCommit,
    /// Serve linearizable reads from the local state, without ReadIndex.
    LocalReads,
}

/// The outcome of an applied write.
#[derive(Clone, Copy, Debug)]
pub struct Applied {
    /// The entry's index.
    pub index: u64,
    /// Whether the key existed before (puts and deletes).
    pub existed: bool,
}

/// What every thread and request handler of a member shares.
pub struct Shared {
    /// This member's id.
    pub id: u64,
    /// The raft node.
    pub node: Node,
    /// The disk.
    pub storage: Arc<DiskStorage>,
    /// The peer network (shared with the metrics, which read its counters).
    pub transport: Arc<Transport>,
    state: RwLock<KvState>,
    /// The apply thread's state; the append thread takes it to restore a
    /// snapshot.
    applier: Mutex<Applier>,
    /// The index of the newest durable snapshot, created here (by the
    /// snapshot thread) or restored (by the append thread).
    snap_index: AtomicU64,
    /// The metrics.
    pub metrics: Metrics,
    /// The options it runs with.
    pub opts: MemberOptions,
    applied: watch::Sender<u64>,
    outbound: Arc<Outbound>,
    commit: AtomicU64,
    next_id: AtomicU64,
    waiters: Mutex<HashMap<u64, Waiter>>,
    /// Membership changes asked of this member, one at a time: raft would
    /// silently drop a second change proposed while the first is pending.
    membership: tokio::sync::Mutex<()>,
    read_queue: Mutex<Vec<oneshot::Sender<Result<u64, KvError>>>>,
    read_wake: Notify,
    proposals: tokio::sync::mpsc::Sender<Queued>,
    stop: watch::Sender<Option<StopReason>>,
    /// This, for threads that outlive a call (peer name lookups).
    me: Weak<Shared>,
}

/// Where the answer to a proposal goes once it is applied (or refused at
/// apply time, as a membership change may be).
type Waiter = oneshot::Sender<Result<Applied, KvError>>;

/// A write waiting for the proposer thread.
type Queued = (Bytes, oneshot::Sender<Result<(), KvError>>);

/// Most writes one batch proposal carries.
const PROPOSAL_BATCH: usize = 256;

/// Why a member stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Asked to (a signal).
    Requested,
    /// The cluster removed it.
    Removed,
    /// Its disk failed; it must not go on.
    Fatal,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cluster id every member derives from the same token (FNV-1a).
pub fn cluster_id(token: &str) -> u64 {
    let h = token
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h.max(1)
}

/// The `host:port` of a peer URL (`http://host:port`, `https://...` or
/// `host:port`), checked for its form only: no name is looked up.
pub fn peer_host_port(url: &str) -> Result<&str, String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).unwrap_or(url);
    let hostport = rest.trim_end_matches('/');
    let port = hostport.rsplit_once(':').map(|(host, port)| (host.is_empty(), port.parse::<u16>()));
    if hostport.contains('/') || !matches!(port, Some((false, Ok(_)))) {
        return Err(format!("peer URL {url:?} is not of the form http://host:port"));
    }
    Ok(hostport)
}

/// The socket address of a peer URL that names an IP (no lookup).
fn literal_peer_addr(url: &str) -> Option<SocketAddr> {
    peer_host_port(url).ok()?.parse().ok()
}

/// The socket address of a peer URL: its IP, or the first address its host
/// name resolves to (a lookup that may take as long as DNS does).
pub fn resolve_peer_url(url: &str) -> Result<SocketAddr, String> {
    peer_host_port(url)?
        .to_socket_addrs()
        .map_err(|e| format!("peer URL {url:?} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("peer URL {url:?} resolves to no address"))
}

/// A random starting point for request ids, so that ids of a restarted
/// member never meet those of its previous run in the log.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A running member.
pub struct Member {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    read_task: tokio::task::JoinHandle<()>,
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be opened.
    #[error("cannot open the data directory {dir}: {source}")]
    Storage {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: keel_wal::WalError,
    },
    /// The snapshot on disk does not decode.
    #[error("the snapshot in {0} is not a keel-kv snapshot: {1}")]
    Snapshot(PathBuf, crate::state::BadSnapshot),
    /// The options are inconsistent.
    #[error("{0}")]
    Options(String),
    /// The transport did not start.
    #[error("cannot start the peer transport: {0}")]
    Transport(#[from] keel_transport::StartError),
    /// Raft did not start.
    #[error("cannot start raft: {0}")]
    Raft(#[from] keel::Error),
    /// A thread could not be spawned.
    #[error("cannot spawn a thread: {0}")]
    Spawn(#[from] std::io::Error),
}

impl Member {
    /// Opens the data directory and starts the member (call inside a tokio
    /// runtime: the transport and the read task run on it).
    pub fn start(opts: MemberOptions) -> Result<Member, StartError> {
        let id = opts.id;
        let cid = cluster_id(&opts.cluster_token);
        let self_url = opts
            .initial_cluster
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, u)| u.clone())
            .ok_or_else(|| {
                StartError::Options(format!("--initial-cluster does not list member {id}"))
            })?;
        std::fs::create_dir_all(&opts.data_dir)?;
        let fs: Arc<dyn keel_wal::FileSystem> = Arc::new(keel_wal::StdFs::new());
        let storage = DiskStorage::open(fs, &opts.data_dir, DiskOptions::new(id, cid))
            .map_err(|source| StartError::Storage { dir: opts.data_dir.clone(), source })?;
        let storage = Arc::new(storage);
        let snap = storage.snapshot().map_err(|e| StartError::Options(e.to_string()))?;
        let fresh = snap.metadata.index == 0
            && storage.last_index().map_err(|e| StartError::Options(e.to_string()))? == 0;
        let state = if snap.metadata.index > 0 {
            KvState::decode(&snap.data)
                .map_err(|e| StartError::Snapshot(opts.data_dir.clone(), e))?
        } else {
            KvState::default()
        };

        // Peers: the initial cluster, overridden by the membership on disk.
        let mut peers: HashMap<u64, String> = opts.initial_cluster.iter().cloned().collect();
        for m in state.members().values() {
            peers.insert(m.id, m.peer_url.clone());
        }
        let mut tcfg = keel_transport::Config::new(id, cid, opts.listen_peer);
        // Host names of a restarted member's peers are looked up once it
        // runs (`Applier::connect`): a name that is gone (a retired host)
        // or slow to resolve must not keep it from starting.
        let mut lookups = Vec::new();
        for (pid, url) in &peers {
            if *pid == id {
                continue;
            }
            match opts.peer_addresses.get(pid).copied().or_else(|| literal_peer_addr(url)) {
                Some(addr) => tcfg.peers.push((*pid, addr)),
                None if !fresh => lookups.push((*pid, url.clone())),
                None => match resolve_peer_url(url) {
                    Ok(addr) => tcfg.peers.push((*pid, addr)),
                    // A new cluster needs every member's address; a joining
                    // member is dialled by the leader and answers it.
                    Err(e) if !opts.join => return Err(StartError::Options(e)),
                    Err(e) => tracing::warn!(id, peer = *pid, "{e}; not dialling it"),
                },
            }
        }
        tcfg.tls = opts.peer_tls.clone();
        let (transport, events) = Transport::start(tcfg)?;
        let transport = Arc::new(transport);

        let mut config = Config::new(id);
        config.election_tick = opts.election_ticks;
        config.heartbeat_tick = 1;
        config.applied = snap.metadata.index;
        config.check_quorum = true;
        config.pre_vote = true;
        config.max_size_per_msg = 1 << 20;
        config.max_inflight_msgs = 256;
        config.max_uncommitted_entries_size = 1 << 30;
        config.step_down_on_removal = true;
        config.async_storage_writes = true;
        config.logger = Arc::new(keel::TracingLogger);
        let metrics = {
            let transport = Arc::clone(&transport);
            Metrics::new(move || transport.stats())
        };
        let outbound = Arc::new(Outbound {
            id,
            transport: Arc::clone(&transport),
            metrics: metrics.clone(),
            leader: AtomicU64::new(0),
            reads: Mutex::new(HashMap::new()),
        });
        let inline = Arc::new(Inline::default());
        let node_opts = NodeOptions {
            request_timeout: Some(opts.request_timeout),
            thread_name: format!("keel-raft-{id}"),
            on_ready: Some({
                let outbound = Arc::clone(&outbound);
                ReadyHandler::new(move |rd| outbound.handle(rd))
            }),
            inline_storage: Some(Arc::clone(&inline) as Arc<dyn InlineStorage>),
            ..NodeOptions::default()
        };
        let node = if fresh && !opts.join {
            let mut boot: Vec<Peer> = opts
                .initial_cluster
                .iter()
                .map(|(pid, url)| Peer { id: *pid, context: Bytes::from(url.clone()) })
                .collect();
            boot.sort_by_key(|p| p.id);
            tracing::info!(id, members = boot.len(), "bootstrapping a new cluster");
            Node::start_with(&config, Arc::clone(&storage), &boot, node_opts)?
        } else {
            tracing::info!(id, snapshot = snap.metadata.index, join = opts.join, %self_url,
                "restarting from the data directory");
            Node::restart_with(&config, Arc::clone(&storage), node_opts)?
        };

        // The storage's conf state is the snapshot's.
        let conf_state = snap.metadata.conf_state.clone();
        // What /health compares the applied index with until raft moves it.
        let durable_commit = storage.hard_state().commit;
        let (proposals_tx, proposals_rx) = tokio::sync::mpsc::channel(4 * PROPOSAL_BATCH);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            id,
            node,
            storage,
            transport,
            state: RwLock::new(state),
            applier: Mutex::new(Applier {
                applied: snap.metadata.index,
                member_added: 0,
                conf_state,
                snapshots: None,
                halted: false,
            }),
            snap_index: AtomicU64::new(snap.metadata.index),
            metrics,
            opts: opts.clone(),
            applied: watch::channel(snap.metadata.index).0,
            outbound,
            commit: AtomicU64::new(durable_commit),
            next_id: AtomicU64::new(random_u64()),
            waiters: Mutex::new(HashMap::new()),
            membership: tokio::sync::Mutex::new(()),
            read_queue: Mutex::new(Vec::new()),
            read_wake: Notify::new(),
            proposals: proposals_tx,
            stop: watch::channel(None).0,
        });

        for (pid, url) in lookups {
            Applier::connect(&shared, pid, &url);
        }
        // Until now the node queued all storage work (nothing to run it).
        let _ = inline.shared.set(Arc::downgrade(&shared));
        // A peer's message that finds the event thread idle is stepped by
        // the task that read it (if raft is idle too), waking no thread.
        let node = shared.node.clone();
        shared.transport.deliver_inline(Some(Arc::new(move |msgs| {
            match node.try_step_many(msgs) {
                Ok(Err(busy)) => Err(busy),
                // Stepped, or refused (a local message), or stopped.
                Ok(Ok(())) | Err(_) => Ok(()),
            }
        })));
        let spawn = |name: &str, f: Box<dyn FnOnce(&Shared) + Send>| {
            let sh = Arc::clone(&shared);
            std::thread::Builder::new().name(format!("keel-{name}-{id}")).spawn(move || f(&sh))
        };
        // A rendezvous channel: a hand-off succeeds only while the snapshot
        // thread is idle, so at most one snapshot is in flight and the
        // applier never queues (or keeps alive) a second frozen state. The
        // apply thread drops the sender as it ends: the snapshot thread ends
        // after it.
        let (snapshots, snapshot_jobs) = std::sync::mpsc::sync_channel(0);
        lock(&shared.applier).snapshots = Some(snapshots);
        let threads = vec![
            spawn("append", Box::new(append_loop))?,
            spawn("apply", Box::new(apply_loop))?,
            spawn("snapshot", Box::new(move |sh| snapshot_loop(sh, snapshot_jobs)))?,
            spawn("tick", Box::new(ticker))?,
        ];
        // These two wait on queues that outlive the node (the transport's
        // events, the handlers' proposals), so `stop` does not join them.
        // They hold the member only while they handle an item: once the last
        // user lets go of it, the transport closes (and its port with it),
        // the queues end, and so do they.
        for (name, run) in [
            ("events", Box::new(move |sh| event_loop(sh, events)) as Box<dyn FnOnce(_) + Send>),
            ("propose", Box::new(move |sh| propose_loop(sh, proposals_rx))),
        ] {
            let sh = Arc::downgrade(&shared);
            std::thread::Builder::new().name(format!("keel-{name}-{id}")).spawn(move || run(sh))?;
        }
        let read_task = tokio::spawn(read_loop(Arc::clone(&shared)));
        Ok(Member { shared, threads, read_task })
    }

    /// What request handlers use.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Stops raft, drains the threads and closes the transport.
    pub fn stop(self) {
        // The hook holds the node, which holds the transport.
        self.shared.transport.deliver_inline(None);
        self.shared.node.stop();
        for t in self.threads {
            let _ = t.join();
        }
        self.read_task.abort();
    }
}

/// What a `Ready` holds for this member once its storage work is routed to
/// the append and apply threads: messages to peers (a leader's appends leave
/// while its own write is in flight), read states, the soft state. `Node`
/// calls [`Outbound::handle`] on the thread that made the `Ready`.
struct Outbound {
    id: u64,
    transport: Arc<Transport>,
    metrics: Metrics,
    /// The leader this member knows (0: none).
    leader: AtomicU64,
    /// ReadIndex rounds in flight, by request context.
    reads: Mutex<HashMap<Bytes, oneshot::Sender<u64>>>,
}

impl Outbound {
    fn handle(&self, mut rd: keel::Ready) {
        if let Some(ss) = &rd.soft_state {
            let old = self.leader.swap(ss.lead, Ordering::SeqCst);
            if old != ss.lead {
                self.metrics.leader_changes.inc();
                tracing::info!(id = self.id, leader = ss.lead, "leader changed");
            }
            self.metrics.is_leader.set(i64::from(ss.raft_state == StateType::Leader));
        }
        if !rd.messages.is_empty() {
            self.transport.send(std::mem::take(&mut rd.messages));
        }
        for rs in rd.read_states.drain(..) {
            if let Some(tx) = lock(&self.reads).remove(&rs.request_ctx) {
                let _ = tx.send(rs.index);
            }
        }
    }
}

/// Most `MsgStorageAppend`s made durable by one fsync.
const APPEND_BATCH: usize = 64;

/// The append thread: every `MsgStorageAppend` queued during the previous
/// sync goes to disk with one fsync (group commit); then their responses
/// are stepped back (those to this node) or sent (those to peers: votes and
/// append acknowledgements, which must not leave before the write is durable).
fn append_loop(sh: &Shared) {
    let work = sh.node.append_work();
    // `recv` waits until there is work or the node stops, however long.
    while let Ok(first) = work.recv() {
        let mut batch = vec![first];
        while batch.len() < APPEND_BATCH {
            match work.try_recv() {
                Ok(Some(w)) => batch.push(w),
                _ => break,
            }
        }
        let started = Instant::now();
        let reqs: Vec<PersistRequest<'_>> =
            batch.iter().map(|w| PersistRequest::from_storage_append(w.view())).collect();
        // A received snapshot is decoded before it is made durable: one that
        // does not decode would be the state this member restarts from.
        let mut states = Vec::new();
        for snap in reqs.iter().filter_map(|r| r.snapshot).filter(|s| s.metadata.index > 0) {
            match KvState::decode(&snap.data) {
                Ok(state) => states.push(state),
                Err(e) => {
                    let index = snap.metadata.index;
                    tracing::error!(id = sh.id, index, "received snapshot does not decode: {e}");
                    lock(&sh.applier).halted = true;
                    sh.request_stop(StopReason::Fatal);
                    return;
                }
            }
        }
        let mut states = states.into_iter();
        if let Err(e) = sh.storage.persist_all(&reqs) {
            tracing::error!(id = sh.id, "cannot persist to the WAL, stopping: {e}");
            sh.request_stop(StopReason::Fatal);
            return;
        }
        Metrics::observe(&sh.metrics.fsync_seconds, started.elapsed());
        for req in &reqs {
            persisted(sh, req);
        }
        drop(reqs);
        for mut w in batch {
            if let Some(snap) = w.take_snapshot().filter(|s| s.metadata.index > 0)
                && let Some(state) = states.next()
            {
                // The state machine holds the snapshot before raft hears it
                // is durable (and so before any later entry is applied).
                lock(&sh.applier).restore(sh, snap, state);
            }
            // Acknowledgements leave first: stepping the local responses
            // may make and run more work (a follower applies what the
            // write made stable), and a leader waits for these to commit.
            let responses = w.take_responses();
            if !responses.peers.is_empty() {
                sh.transport.send(responses.peers);
            }
            for r in responses.local {
                if !step_local(sh, r) {
                    return;
                }
            }
        }
    }
}

/// Hands raft a response of the append or apply thread; `false` once the
/// member stops. Raft cannot do without one (it would never learn that the
/// write or apply happened), so if its queue stayed full for the request
/// timeout the member stops, and a restart recovers from disk.
fn step_local(sh: &Shared, r: Message) -> bool {
    match sh.node.step_local(r) {
        Ok(()) => true,
        Err(keel::Error::Stopped) => false,
        Err(e) => {
            tracing::error!(id = sh.id, "raft did not take a storage response, stopping: {e}");
            lock(&sh.applier).halted = true;
            sh.request_stop(StopReason::Fatal);
            false
        }
    }
}

/// Publishes what a persisted request changed.
fn persisted(sh: &Shared, req: &PersistRequest<'_>) {
    if let Some(hs) = req.hard_state {
        sh.commit.store(hs.commit, Ordering::SeqCst);
        sh.metrics.commit_index.set(hs.commit as i64);
        sh.metrics.term.set(hs.term as i64);
    }
}

/// The apply thread: each `MsgStorageApply` in log order. The append thread
/// restores snapshots under the same lock; entries at or below a restored
/// snapshot are skipped, so the two may interleave in any order.
fn apply_loop(sh: &Shared) {
    let work = sh.node.apply_work();
    'work: while let Ok(w) = work.recv() {
        let responses = lock(&sh.applier).apply_work(sh, w);
        for r in responses {
            if !step_local(sh, r) {
                break 'work;
            }
        }
    }
    // The snapshot thread ends once it has written the snapshot in hand.
    lock(&sh.applier).snapshots = None;
}

/// Most committed entries applied where raft made them; more go to the
/// apply thread.
const INLINE_APPLY_MAX: usize = 64;

/// Storage work done where raft made it (see [`InlineStorage`]) while the
/// append or apply thread is idle, so that a lone write wakes neither:
/// - applies: a lone write is applied, and its request answered, by the
///   thread that stepped in its commit. Configuration changes, which call
///   back into the node, and applies that would wait for a snapshot's
///   restore go to the apply thread.
/// - appends that need no sync (a new commit index, which every write
///   brings to every member): written to the WAL without waiting. Appends
///   that sync go to the append thread: a leader's runs beside its
///   followers' (a commit does not wait for it), and a follower's would
///   hold up the task that read the leader's message, which then stops
///   reading while the disk syncs (measured: no gain at one client, a
///   worse p99 at 64).
#[derive(Default)]
struct Inline {
    /// Set once the member is built; until then all work queues.
    shared: OnceLock<Weak<Shared>>,
}

impl Inline {
    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.get().and_then(Weak::upgrade)
    }
}

impl InlineStorage for Inline {
    fn append(&self, mut w: AppendWork) -> Result<Vec<Message>, AppendWork> {
        let Some(sh) = self.shared() else { return Err(w) };
        let req = PersistRequest::from_storage_append(w.view());
        if sh.storage.needs_sync(&req) {
            return Err(w);
        }
        if let Err(e) = sh.storage.persist(req) {
            tracing::error!(id = sh.id, "cannot write to the WAL, stopping: {e}");
            sh.request_stop(StopReason::Fatal);
            return Ok(Vec::new());
        }
        persisted(&sh, &req);
        let responses = w.take_responses();
        if !responses.peers.is_empty() {
            sh.transport.send(responses.peers);
        }
        Ok(responses.local)
    }

    fn apply(&self, w: ApplyWork) -> Result<Vec<Message>, ApplyWork> {
        let Some(sh) = self.shared() else { return Err(w) };
        // A long run (a member catching up) would hold up the thread that
        // stepped it in, maybe a runtime's worker serving requests.
        if w.entries().len() > INLINE_APPLY_MAX
            || w.entries().iter().any(|e| e.entry_type() != EntryType::EntryNormal)
        {
            return Err(w);
        }
        // The append thread may be restoring a snapshot.
        let mut applier = match sh.applier.try_lock() {
            Ok(a) => a,
            Err(TryLockError::WouldBlock) => return Err(w),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        Ok(applier.apply_work(&sh, w))
    }
}

/// The state at an applied index, frozen for the snapshot thread.
struct SnapshotJob {
    index: u64,
    conf_state: ConfState,
    state: KvState,
}

/// The snapshot thread: encodes a frozen state, makes it durable, then
/// compacts the log behind it; a failure is logged, and the apply thread
/// tries again at a later apply (the snapshot index did not move). Ends
/// when the apply thread does (which drops the sender), after the snapshot
/// in hand is written.
fn snapshot_loop(sh: &Shared, jobs: Receiver<SnapshotJob>) {
    while let Ok(job) = jobs.recv() {
        let SnapshotJob { index, conf_state, state } = job;
        if index <= sh.snap_index.load(Ordering::SeqCst) {
            // A snapshot received meanwhile covers it.
            continue;
        }
        let started = Instant::now();
        let data = state.encode();
        // Frees the nodes the apply thread has replaced since the copy.
        drop(state);
        match sh.storage.create_snapshot(index, conf_state, data) {
            Ok(_) => {
                sh.snap_index.fetch_max(index, Ordering::SeqCst);
                sh.metrics.snapshots_created.inc();
                let compact_to = index.saturating_sub(sh.opts.snapshot_catchup_entries);
                if compact_to > 0
                    && let Err(e) = sh.storage.compact(compact_to)
                {
                    tracing::warn!(index = compact_to, "compaction failed: {e}");
                }
                tracing::debug!(id = sh.id, index, took = ?started.elapsed(), "snapshot created");
            }
            Err(e) => tracing::warn!(index, "snapshot failed: {e}"),
        }
    }
}

fn ticker(sh: &Shared) {
    let mut next = Instant::now() + sh.opts.tick;
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += sh.opts.tick;
        if next < Instant::now() {
            next = Instant::now() + sh.opts.tick;
        }
        match sh.node.tick() {
            Ok(()) => {}
            Err(keel::Error::Stopped) => return,
            Err(e) => tracing::debug!("tick: {e}"),
        }
    }
}

fn event_loop(member: Weak<Shared>, mut events: Events) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    let mut msgs = Vec::new();
    while events.blocking_recv_many(&mut batch, EVENT_BATCH) > 0 {
        let Some(sh) = member.upgrade() else { return };
        let sh = &*sh;
        // Messages go to raft together (one `Ready` for the lot); a report
        // first sends the messages queued before it, keeping their order.
        for ev in batch.drain(..) {
            match ev {
                Event::Message(m) => msgs.push(m),
                ev => {
                    if !step_messages(sh, &mut msgs) || !handle_event(sh, ev) {
                        return;
                    }
                }
            }
        }
        if !step_messages(sh, &mut msgs) {
            return;
        }
    }
}

/// Steps the queued peer messages into raft; `false` once the node stopped.
fn step_messages(sh: &Shared, msgs: &mut Vec<keel::raftpb::Message>) -> bool {
    msgs.is_empty() || outcome(sh.node.step_many(std::mem::take(msgs)))
}

/// Most transport events taken at once.
const EVENT_BATCH: usize = 256;

/// Steps one transport event into raft; `false` once the node stopped.
fn handle_event(sh: &Shared, ev: Event) -> bool {
    let r = match ev {
        Event::Message(m) => sh.node.step(m),
        Event::Unreachable(peer) => sh.node.report_unreachable(peer),
        Event::SnapshotStatus { to, status } => {
            let status = match status {
                keel_transport::SnapshotStatus::Finished => keel::SnapshotStatus::Finish,
                _ => keel::SnapshotStatus::Failure,
            };
            sh.node.report_snapshot(to, status)
        }
        Event::UnknownPeer { id, addr } => {
            // A member added while this one was down (it may lead now): let
            // it in, and answer it, until the log's membership catches up.
            // Its advertised address stands in for the URL the log holds.
            let addr = sh.opts.peer_addresses.get(&id).copied().unwrap_or(addr);
            tracing::info!(id = sh.id, peer = id, %addr, "an unknown member dialed in; let it in");
            sh.transport.add_peer(id, addr);
            Ok(())
        }
        Event::Removed { by } => {
            tracing::warn!(id = sh.id, by, "a peer says this member was removed; stopping");
            sh.request_stop(StopReason::Removed);
            Ok(())
        }
    };
    outcome(r)
}

/// Whether the event loop goes on after a call into raft.
fn outcome(r: keel::Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(keel::Error::Stopped) => false,
        Err(e) => {
            tracing::debug!("refused a peer message: {e}");
            true
        }
    }
}

/// Proposes queued writes: every write that arrived while the previous batch
/// was being handed to raft goes in the next one, as one `MsgProp` (one
/// request to the node, one forward from a follower, one broadcast).
fn propose_loop(member: Weak<Shared>, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(PROPOSAL_BATCH);
    while rx.blocking_recv_many(&mut batch, PROPOSAL_BATCH) > 0 {
        let Some(sh) = member.upgrade() else { return };
        let data: Vec<Bytes> = batch.iter().map(|(d, _)| d.clone()).collect();
        let r = sh.node.propose_batch(data).map(|_| ()).map_err(|e| KvError::from_raft(&e));
        let stopped = matches!(r, Err(KvError::Stopping));
        for (_, tx) in batch.drain(..) {
            let _ = tx.send(r.clone());
        }
        if stopped {
            return;
        }
    }
}

/// Serves queued linearizable reads, one ReadIndex round for every read that
/// arrived while the previous round was in flight (as etcd batches them).
async fn read_loop(sh: Arc<Shared>) {
    loop {
        sh.read_wake.notified().await;
        loop {
            let batch = std::mem::take(&mut *lock(&sh.read_queue));
            if batch.is_empty() {
                break;
            }
            let result = sh.one_read_index().await;
            for tx in batch {
                let _ = tx.send(result.clone());
            }
        }
    }
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the server to stop (the first reason wins).
    pub fn request_stop(&self, why: StopReason) {
        self.stop.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(why);
                true
            } else {
                false
            }
        });
    }

    /// Resolves once the member must stop.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(why) = *rx.borrow_and_update() {
                return why;
            }
            if rx.changed().await.is_err() {
                return StopReason::Requested;
            }
        }
    }

    /// The applied state, for reading.
    pub fn state(&self) -> RwLockReadGuard<'_, KvState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, KvState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The leader this member knows (0: none).
    pub fn leader(&self) -> u64 {
        self.outbound.leader.load(Ordering::SeqCst)
    }

    /// The commit index as last persisted.
    pub fn commit(&self) -> u64 {
        self.commit.load(Ordering::SeqCst)
    }

    /// The applied index.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Whether this member is the cluster's only voter.
    fn sole_voter(&self) -> bool {
        self.state().voters().eq([self.id])
    }

    async fn one_read_index(&self) -> Result<u64, KvError> {
        // Raft drops (and logs) a read index request made with no leader known.
        if self.leader() == 0 {
            return Err(KvError::NoLeader);
        }
        // A sole voter answers ReadIndex with its commit index at once, as
        // etcd-raft does, even before it has committed an entry of its
        // term; after a power loss that index may lag what it acknowledged
        // (a hard state that only moves the commit is not synced). Every
        // entry durable in its log is committed, so the read waits for that.
        let floor = if self.sole_voter() { self.storage.last_index().unwrap_or(0) } else { 0 };
        let ctx = Bytes::copy_from_slice(&self.next_id().to_be_bytes());
        let (tx, rx) = oneshot::channel();
        lock(&self.outbound.reads).insert(ctx.clone(), tx);
        let wait = Duration::from_millis(500).min(self.opts.request_timeout);
        let r = match self.node.read_index_async(ctx.clone()).await {
            Err(e) => Err(KvError::from_raft(&e)),
            Ok(()) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(index)) => Ok(index.max(floor)),
                _ => Err(KvError::Timeout(wait.as_millis() as u64)),
            },
        };
        lock(&self.outbound.reads).remove(&ctx);
        r
    }

    /// Waits until the applied index reaches `index`.
    async fn wait_applied(
        &self,
        index: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), KvError> {
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout_at(deadline, rx.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(KvError::Stopping),
            Err(_) => Err(self.timeout()),
        }
    }

    fn timeout(&self) -> KvError {
        KvError::Timeout(self.opts.request_timeout.as_millis() as u64)
    }

    /// Waits until a linearizable read may be served from the local state:
    /// a ReadIndex round confirms the leader's commit index, then this member
    /// applies up to it.
    pub async fn linearizable_barrier(&self) -> Result<(), KvError> {
        if self.opts.planted_bug == Some(PlantedBug::LocalReads) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.opts.request_timeout;
        loop {
            let (tx, rx) = oneshot::channel();
            lock(&self.read_queue).push(tx);
            self.read_wake.notify_one();
            let outcome = match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(KvError::Stopping),
                Err(_) => return Err(self.no_leader_or_timeout()),
            };
            match outcome {
                Ok(index) => {
                    self.wait_applied(index, deadline).await?;
                    self.metrics.linearizable_reads.inc();
                    return Ok(());
                }
                Err(KvError::NoLeader | KvError::Timeout(_)) => {
                    let pause = tokio::time::Instant::now() + NO_LEADER_RETRY;
                    if pause >= deadline {
                        return Err(self.no_leader_or_timeout());
                    }
                    tokio::time::sleep_until(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn no_leader_or_timeout(&self) -> KvError {
        if self.leader() == 0 { KvError::NoLeader } else { self.timeout() }
    }

    /// Proposes a put or delete and waits until this member has applied it.
    pub async fn write(&self, op: Op, key: String, value: Bytes) -> Result<Applied, KvError> {
        let id = self.next_id();
        let cmd = Command { id, op: op as i32, key, value };
        if self.opts.planted_bug == Some(PlantedBug::AckBeforeCommit) {
            self.queue_proposal(cmd.encode()).await?;
            return Ok(Applied { index: 0, existed: false });
        }
        self.propose_and_wait(id, Proposal::Data(cmd.encode())).await
    }

    /// Proposes a membership change and waits until this member applied it.
    /// `peer_url` is the new member's (an `Add`).
    pub async fn change_membership(
        &self,
        change: MemberChange,
        peer_url: Option<String>,
    ) -> Result<Applied, KvError> {
        let _one_at_a_time = self.membership.lock().await;
        self.state().check_change(change)?;
        if self.opts.strict_reconfig_check {
            self.check_quorum_kept(change).await?;
        }
        self.raft_caught_up_with_apply().await?;
        let id = self.next_id();
        let cc = ConfChange {
            id,
            change_type: change.conf_change_type() as i32,
            node_id: change.id(),
            context: peer_url.map(Bytes::from).unwrap_or_default(),
        };
        self.propose_and_wait(id, Proposal::Conf(cc)).await
    }

    /// Waits until raft counts everything applied here as applied. Raft
    /// refuses (silently replaces) a change proposed while it still counts
    /// an earlier one as unapplied: its applied index moves only when the
    /// apply thread's acknowledgement is stepped, which may trail the apply
    /// (and so the answer to the previous change).
    async fn raft_caught_up_with_apply(&self) -> Result<(), KvError> {
        let deadline = tokio::time::Instant::now() + self.opts.request_timeout;
        loop {
            let st = self.node.status_async().await.map_err(|e| KvError::from_raft(&e))?;
            if st.basic.applied >= self.applied() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.timeout());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// etcd's strict reconfiguration check: a change of the voters must
    /// leave at least a quorum of the new configuration in touch with the
    /// leader. Only the leader knows who is: raft's recent-activity flags,
    /// which CheckQuorum clears every election timeout and a heartbeat's
    /// answer sets again, so they are gathered over two heartbeats before a
    /// refusal.
    async fn check_quorum_kept(&self, change: MemberChange) -> Result<(), KvError> {
        let voters: BTreeSet<u64> = self.state().voters().collect();
        let affects_voters = match change {
            MemberChange::Add { learner, .. } => !learner,
            MemberChange::Promote(_) => true,
            MemberChange::Remove(id) => voters.contains(&id),
        };
        if !affects_voters {
            return Ok(());
        }
        let mut active = BTreeSet::from([self.id]);
        let deadline = tokio::time::Instant::now() + 2 * self.opts.tick + QUORUM_CHECK_SLACK;
        loop {
            let st = self.node.status_async().await.map_err(|e| KvError::from_raft(&e))?;
            if st.basic.soft_state.raft_state != StateType::Leader {
                return Err(KvError::NotLeader(st.basic.soft_state.lead));
            }
            active.extend(st.progress.iter().filter(|(_, p)| p.recent_active()).map(|(id, _)| *id));
            match quorum_kept(change, &voters, &active) {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(self.opts.tick / 4).await,
            }
        }
    }

    async fn queue_proposal(&self, data: Bytes) -> Result<(), KvError> {
        // With nothing queued, a lone write is proposed from here if raft is
        // idle, rather than waking the proposer thread.
        let data = if self.proposals.capacity() == self.proposals.max_capacity() {
            match self.node.try_propose(data) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(data)) => data,
                Err(e) => return Err(KvError::from_raft(&e)),
            }
        } else {
            data
        };
        let (tx, rx) = oneshot::channel();
        self.proposals.send((data, tx)).await.map_err(|_| KvError::Stopping)?;
        rx.await.map_err(|_| KvError::Stopping)?
    }

    async fn propose_and_wait(&self, id: u64, p: Proposal) -> Result<Applied, KvError> {
        let deadline = tokio::time::Instant::now() + self.opts.request_timeout;
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let _guard = WaiterGuard { waiters: &self.waiters, id };
        self.metrics.proposals.inc();
        let r = tokio::time::timeout_at(deadline, async {
            loop {
                // Raft drops (and logs) a proposal made with no leader known.
                if self.leader() == 0 {
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                    continue;
                }
                let r = match &p {
                    Proposal::Data(d) => self.queue_proposal(d.clone()).await,
                    Proposal::Conf(cc) => self
                        .node
                        .propose_conf_change_async(cc.clone())
                        .await
                        .map(|_| ())
                        .map_err(|e| KvError::from_raft(&e)),
                };
                match r {
                    Ok(()) => break,
                    Err(KvError::NoLeader) => tokio::time::sleep(NO_LEADER_RETRY).await,
                    Err(e) => return Err(e),
                }
            }
            rx.await.unwrap_or(Err(KvError::Stopping))
        })
        .await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(self.no_leader_or_timeout()),
        };
        if r.is_err() {
            self.metrics.proposals_failed.inc();
        }
        r
    }
}

/// Beyond two heartbeats, how long the strict reconfiguration check waits
/// for answers to them.
const QUORUM_CHECK_SLACK: Duration = Duration::from_millis(50);

/// Whether `change` leaves a quorum of the new voters among `active` (those
/// in touch with the leader, itself included), as etcd counts: a new voter
/// counts as not yet started; a promoted learner counts if it is in touch;
/// a voter out of touch may always be removed.
fn quorum_kept(
    change: MemberChange,
    voters: &BTreeSet<u64>,
    active: &BTreeSet<u64>,
) -> Result<(), KvError> {
    let in_touch = voters.intersection(active).count();
    let (total, started, what) = match change {
        // Growing a cluster of one to two (etcd allows it, to restore one
        // member's data into a new cluster).
        MemberChange::Add { .. } if voters.len() == 1 && in_touch == 1 => return Ok(()),
        MemberChange::Add { id, .. } => (voters.len() + 1, in_touch, format!("adding voter {id}")),
        MemberChange::Promote(id) => {
            let started = in_touch + usize::from(active.contains(&id));
            (voters.len() + 1, started, format!("promoting member {id}"))
        }
        MemberChange::Remove(id) if !active.contains(&id) => return Ok(()),
        MemberChange::Remove(id) => {
            (voters.len() - 1, in_touch - 1, format!("removing member {id}"))
        }
    };
    let quorum = total / 2 + 1;
    if started >= quorum {
        return Ok(());
    }
    Err(KvError::Conflict(format!(
        "strict reconfiguration check: {what} would leave {started} of {total} voters in \
         touch with the leader, fewer than a quorum of {quorum}; bring members back first, \
         or run with --strict-reconfig-check=false"
    )))
}

/// How long a request waits before trying again while no leader is known.
const NO_LEADER_RETRY: Duration = Duration::from_millis(20);

enum Proposal {
    Data(Bytes),
    Conf(ConfChange),
}

/// Removes a request's waiter however the request ends (answered, timed
/// out, or dropped by a client that went away).
struct WaiterGuard<'a> {
    waiters: &'a Mutex<HashMap<u64, Waiter>>,
    id: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        lock(self.waiters).remove(&self.id);
    }
}

/// The apply thread's state.
struct Applier {
    applied: u64,
    conf_state: ConfState,
    /// The index at which a member was last added: until a durable snapshot
    /// covers it, snapshot at once, so that a new member that needs one gets
    /// one listing it (raft sends the stored snapshot, and a member not in
    /// its conf state refuses it).
    member_added: u64,
    /// Hands frozen states to the snapshot thread; `None` once the apply
    /// thread ended.
    snapshots: Option<SyncSender<SnapshotJob>>,
    /// Set when the state machine can no longer follow raft (a change raft
    /// may or may not have applied, a snapshot that does not decode): it
    /// applies and snapshots nothing more, and the member stops. A restart
    /// replays from the durable state.
    halted: bool,
}

impl Applier {
    /// Applies one `MsgStorageApply`; returns its responses, for raft.
    fn apply_work(&mut self, sh: &Shared, w: ApplyWork) -> Vec<Message> {
        let started = Instant::now();
        let (entries, responses) = w.into_parts();
        if self.halted {
            return Vec::new();
        }
        if !entries.is_empty() {
            sh.metrics.committed_entries.inc_by(entries.len() as u64);
        }
        for e in entries {
            // Entries a restored snapshot already covers are skipped
            // (etcd-io/etcd#11510).
            if e.index > self.applied {
                self.apply(sh, e);
            }
            if self.halted {
                return Vec::new();
            }
        }
        self.published(sh);
        Metrics::observe(&sh.metrics.apply_seconds, started.elapsed());
        self.maybe_snapshot(sh);
        responses
    }

    /// Tells the waiting reads and the metrics how far this member applied.
    fn published(&self, sh: &Shared) {
        sh.applied.send_replace(self.applied);
        sh.metrics.applied_index.set(self.applied as i64);
    }

    /// Replaces the state with a received snapshot's, `state` (decoded
    /// before the snapshot was persisted).
    fn restore(&mut self, sh: &Shared, s: Snapshot, state: KvState) {
        if s.metadata.index <= self.applied {
            return;
        }
        let members: Vec<_> = state.members().values().cloned().collect();
        *sh.state_mut() = state;
        self.applied = s.metadata.index;
        sh.snap_index.fetch_max(s.metadata.index, Ordering::SeqCst);
        self.conf_state = s.metadata.conf_state;
        for m in members {
            Self::connect(sh, m.id, &m.peer_url);
        }
        sh.metrics.snapshots_restored.inc();
        self.published(sh);
        tracing::info!(id = sh.id, index = self.applied, "restored a snapshot");
    }

    fn apply(&mut self, sh: &Shared, e: Entry) {
        self.applied = e.index;
        if e.entry_type() == EntryType::EntryNormal {
            if e.data.is_empty() {
                return;
            }
            let Some(cmd) = Command::decode(&e.data) else {
                tracing::warn!(index = e.index, "skipping an entry that is not a command");
                return;
            };
            let id = cmd.id;
            let existed = {
                let mut st = sh.state_mut();
                let existed = st.apply(cmd);
                sh.metrics.keys.set(st.len() as i64);
                existed
            };
            if let Some(tx) = lock(&sh.waiters).remove(&id) {
                let _ = tx.send(Ok(Applied { index: e.index, existed }));
            }
            return;
        }
        match AnyConfChange::from_entry(&e) {
            Ok(Some(cc)) => self.apply_conf_change(sh, e.index, cc),
            Ok(None) => {}
            Err(err) => tracing::warn!(index = e.index, "skipping a bad conf change: {err}"),
        }
    }

    fn apply_conf_change(&mut self, sh: &Shared, index: u64, cc: AnyConfChange) {
        // Checked against the replicated membership first, so that every
        // member refuses the same changes (two requests for one id that
        // raced, a removed id added again). Raft is then given the change
        // for node 0, which it ignores, as etcd does.
        let refused = match &cc {
            AnyConfChange::V1(c) => {
                let st = sh.state();
                ConfChangeType::try_from(c.change_type)
                    .ok()
                    .and_then(|ty| st.change_of(ty, c.node_id))
                    .and_then(|change| st.check_change(change).err())
                    .map(|why| (why, ConfChange { node_id: 0, ..c.clone() }))
            }
            // keel-kv proposes only single-node changes.
            AnyConfChange::V2(_) => None,
        };
        let to_raft = match &refused {
            Some((_, ignored)) => AnyConfChange::V1(ignored.clone()),
            None => cc.clone(),
        };
        match sh.node.apply_conf_change_at(index, to_raft) {
            Ok(cs) => self.conf_state = cs,
            Err(keel::Error::Stopped) => {
                self.halted = true;
                return;
            }
            // Queued or not, raft may apply it later: the membership here
            // and the next snapshot's would then miss it.
            Err(e @ keel::Error::Timeout) => {
                tracing::error!(id = sh.id, index, "conf change left undecided, stopping: {e}");
                self.halted = true;
                sh.request_stop(StopReason::Fatal);
                return;
            }
            Err(e) => {
                tracing::warn!(index, "conf change not applied: {e}");
                return;
            }
        }
        let request = cc.as_v1().map(|c| c.id);
        if let Some((why, _)) = refused {
            tracing::warn!(id = sh.id, index, "membership change refused: {why}");
            // Published before the answer, here and below: the next change
            // asked of this member waits until raft counts this index applied.
            self.published(sh);
            if let Some(tx) = request.and_then(|req| lock(&sh.waiters).remove(&req)) {
                let _ = tx.send(Err(why.into()));
            }
            return;
        }
        let v2 = cc.as_v2();
        let url =
            std::str::from_utf8(&v2.context).ok().filter(|u| !u.is_empty()).map(str::to_string);
        let mut removed_self = false;
        for ch in &v2.changes {
            let id = ch.node_id;
            let mut st = sh.state_mut();
            match ConfChangeType::try_from(ch.change_type) {
                Ok(ConfChangeType::ConfChangeAddNode) => {
                    self.member_added = index;
                    st.set_member(id, url.clone(), false)
                }
                Ok(ConfChangeType::ConfChangeAddLearnerNode) => {
                    self.member_added = index;
                    st.set_member(id, url.clone(), true)
                }
                Ok(ConfChangeType::ConfChangeRemoveNode) => {
                    st.remove_member(id);
                    // Under the state's lock, which a name lookup that
                    // finished meanwhile takes before it adds the peer.
                    if id == sh.id {
                        removed_self = true;
                    } else {
                        sh.transport.remove_peer(id);
                    }
                    continue;
                }
                _ => continue,
            }
            let peer_url = st.members().get(&id).map(|m| m.peer_url.clone());
            drop(st);
            if let Some(u) = peer_url {
                Self::connect(sh, id, &u);
            }
        }
        tracing::info!(id = sh.id, index, change = ?v2.changes, "membership changed");
        self.published(sh);
        if let Some(req) = request
            && let Some(tx) = lock(&sh.waiters).remove(&req)
        {
            let _ = tx.send(Ok(Applied { index, existed: true }));
        }
        if removed_self {
            tracing::warn!(id = sh.id, "this member was removed from the cluster; stopping");
            sh.request_stop(StopReason::Removed);
        }
    }

    /// Dials member `id` at `url` from now on. A host name is looked up on
    /// a thread of its own: the lookup may take as long as DNS does, and
    /// applies wait for no one. Its answer is used only if the member is
    /// still there with that URL.
    fn connect(sh: &Shared, id: u64, url: &str) {
        if id == sh.id || url.is_empty() {
            return;
        }
        let literal = sh.opts.peer_addresses.get(&id).copied().or_else(|| literal_peer_addr(url));
        if let Some(addr) = literal {
            sh.transport.add_peer(id, addr);
            return;
        }
        let (me, url) = (sh.me.clone(), url.to_string());
        let lookup = move || {
            let addr = resolve_peer_url(&url);
            let Some(sh) = me.upgrade() else { return };
            let st = sh.state();
            if st.members().get(&id).is_none_or(|m| m.peer_url != url) {
                return;
            }
            match addr {
                Ok(addr) => sh.transport.add_peer(id, addr),
                Err(e) => tracing::warn!(peer = id, "cannot reach the new member: {e}"),
            }
        };
        let named = std::thread::Builder::new().name(format!("keel-lookup-{id}")).spawn(lookup);
        if let Err(e) = named {
            tracing::warn!(peer = id, "cannot start a name lookup: {e}");
        }
    }

    /// Hands the state at the applied index to the snapshot thread when a
    /// snapshot is due. Never waits for it: while the previous snapshot is
    /// still being written the hand-off fails, and the next apply tries
    /// again (with a newer index).
    fn maybe_snapshot(&mut self, sh: &Shared) {
        let Some(snapshots) = &self.snapshots else { return };
        let snap_index = sh.snap_index.load(Ordering::SeqCst);
        let due = self.applied >= snap_index + sh.opts.snapshot_count;
        if !(due || self.member_added > snap_index) || self.applied <= snap_index {
            return;
        }
        let state = sh.state().clone();
        // Raft restores a received snapshot's configuration as soon as it
        // steps it, before this thread restores its data: a conf change
        // applied in between returns that newer configuration. A snapshot
        // must pair the state with the configuration of the same index, so
        // none is taken until the two agree again (the restore makes them).
        let mut raft_cs = self.conf_state.clone();
        raft_cs.voters.sort_unstable();
        raft_cs.learners.sort_unstable();
        if raft_cs != state.conf_state() {
            // Only for the moment of a restore; for longer, something is wrong.
            if self.applied >= snap_index + 2 * sh.opts.snapshot_count {
                tracing::warn!(id = sh.id, cs = ?raft_cs, "snapshot deferred: raft's \
                    configuration differs from the membership");
            }
            return;
        }
        let job = SnapshotJob { index: self.applied, conf_state: self.conf_state.clone(), state };
        // `Full`: busy, try again later. `Disconnected`: the snapshot
        // thread panicked (and said so); applies go on without snapshots.
        let _: Result<(), TrySendError<_>> = snapshots.try_send(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_resolve_and_bad_ones_are_refused() {
        assert_eq!(resolve_peer_url("http://127.0.0.1:2380").unwrap().port(), 2380);
        assert_eq!(resolve_peer_url("127.0.0.1:7").unwrap().port(), 7);
        assert_eq!(literal_peer_addr("https://[::1]:2380/").map(|a| a.port()), Some(2380));
        assert_eq!(literal_peer_addr("http://db-1.example:2380"), None);
        assert_eq!(peer_host_port("http://db-1.example:2380"), Ok("db-1.example:2380"));
        for bad in
            ["http://127.0.0.1:2380/x", "http://", "http://127.0.0.1", "http://:80", "h:99999"]
        {
            assert!(peer_host_port(bad).is_err(), "{bad}");
            assert!(resolve_peer_url(bad).is_err(), "{bad}");
        }
    }

    /// A single member on 127.0.0.1 with the data directory `dir`.
    fn one_member(dir: &std::path::Path) -> MemberOptions {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen_peer = listener.local_addr().unwrap();
        MemberOptions {
            id: 1,
            initial_cluster: vec![(1, format!("http://{listen_peer}"))],
            cluster_token: "test".into(),
            listen_peer,
            data_dir: dir.to_path_buf(),
            join: false,
            tick: Duration::from_millis(10),
            election_ticks: 10,
            snapshot_count: 10_000,
            snapshot_catchup_entries: 100,
            request_timeout: Duration::from_secs(5),
            peer_tls: None,
            peer_addresses: HashMap::new(),
            strict_reconfig_check: true,
            planted_bug: None,
        }
    }

    /// Starts the one member of `opts` and waits until it leads.
    async fn leading(opts: &MemberOptions) -> Member {
        let member = Member::start(opts.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while member.shared().leader() != opts.id {
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        member
    }

    /// A member is added under a host name that stops resolving (a retired
    /// host; any client may name any host): the snapshot that lists it must
    /// not keep this member from starting again.
    #[test]
    fn a_member_whose_name_is_gone_does_not_keep_a_restart_from_starting() {
        let dir = tempfile::tempdir().unwrap();
        let opts = one_member(dir.path());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let gone = "http://no-such-host.invalid:2380".to_string();
        let member = runtime.block_on(async {
            let member = leading(&opts).await;
            let sh = member.shared();
            let deadline = Instant::now() + Duration::from_secs(10);
            let learner = MemberChange::Add { id: 9, learner: true };
            let added = sh.change_membership(learner, Some(gone.clone())).await.unwrap();
            // A member added is snapshotted at once.
            while sh.snap_index.load(Ordering::SeqCst) < added.index {
                assert!(Instant::now() < deadline, "no snapshot");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            member
        });
        let weak = Arc::downgrade(&member.shared());
        member.stop();
        // Nothing keeps the member once its runtime drops the aborted read
        // task: its transport closes, and the port is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while weak.strong_count() > 0 || std::net::TcpListener::bind(opts.listen_peer).is_err() {
            assert!(Instant::now() < deadline, "the stopped member lingers");
            std::thread::sleep(Duration::from_millis(10));
        }
        let member = runtime.block_on(async { Member::start(opts).expect("the member restarts") });
        let sh = member.shared();
        assert_eq!(sh.state().members().get(&9).map(|m| m.peer_url.clone()), Some(gone));
        member.stop();
    }

    /// Runs `test` on the one member of a new cluster once it leads, then
    /// stops the member.
    fn on_a_leading_member<F: Future<Output = ()>>(test: impl FnOnce(Arc<Shared>) -> F) {
        let dir = tempfile::tempdir().unwrap();
        let opts = one_member(dir.path());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let member = runtime.block_on(async {
            let member = leading(&opts).await;
            test(member.shared()).await;
            member
        });
        member.stop();
    }

    /// A change that got past the request's checks (two requests that
    /// raced, or here a removed id proposed straight to raft) is refused
    /// where it is applied, as every member refuses it, and raft is told to
    /// change nothing.
    #[test]
    fn a_change_the_membership_refuses_is_refused_when_applied() {
        let url = || Some("http://127.0.0.1:9".to_string());
        on_a_leading_member(|sh| async move {
            let nine = MemberChange::Add { id: 9, learner: true };
            sh.change_membership(nine, url()).await.unwrap();
            sh.change_membership(MemberChange::Remove(9), None).await.unwrap();
            let reused = |r: &Result<Applied, KvError>| {
                let Err(KvError::Conflict(m)) = r else { return false };
                m.contains("never reused")
            };
            let r = sh.change_membership(nine, url()).await;
            assert!(reused(&r), "{r:?}");
            sh.raft_caught_up_with_apply().await.unwrap();
            let id = sh.next_id();
            let cc = ConfChange {
                id,
                change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
                node_id: 9,
                context: Bytes::from(url().unwrap()),
            };
            let r = sh.propose_and_wait(id, Proposal::Conf(cc)).await;
            assert!(reused(&r), "{r:?}");
            let st = sh.node.status_async().await.unwrap();
            assert_eq!(st.progress.keys().copied().collect::<Vec<_>>(), [1]);
            assert!(sh.state().members().get(&9).is_none());
            // Raft takes the next change: the refused one counts as applied.
            let ten = MemberChange::Add { id: 10, learner: true };
            sh.change_membership(ten, url()).await.unwrap();
        });
    }

    /// Raft drops a conf change proposed while another is pending, so two
    /// asked of one member at once used to leave one request to time out.
    #[test]
    fn membership_changes_asked_at_once_are_made_one_after_the_other() {
        on_a_leading_member(|sh| async move {
            let add = |id| {
                let sh = Arc::clone(&sh);
                let url = Some(format!("http://127.0.0.1:{id}"));
                let change = MemberChange::Add { id, learner: true };
                async move { sh.change_membership(change, url).await }
            };
            let (a, b, again) = tokio::join!(add(7), add(8), add(7));
            assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
            let exists = matches!(&again, Err(KvError::Conflict(m)) if m.contains("exists"));
            assert!(exists, "{again:?}");
            assert_eq!(sh.state().members().keys().copied().collect::<Vec<_>>(), [1, 7, 8]);
        });
    }

    /// Only a sole voter reads up to its durable log (see one_read_index);
    /// learners do not count, another voter does.
    #[test]
    fn a_sole_voter_is_told_apart_and_still_reads() {
        on_a_leading_member(|sh| async move {
            assert!(sh.sole_voter());
            sh.write(Op::Put, "k".into(), Bytes::from_static(b"v")).await.unwrap();
            let learner = MemberChange::Add { id: 5, learner: true };
            sh.change_membership(learner, Some("http://127.0.0.1:5".into())).await.unwrap();
            assert!(sh.sole_voter(), "a learner does not vote");
            sh.linearizable_barrier().await.unwrap();
            assert_eq!(sh.state().get("k").as_deref(), Some(&b"v"[..]));
            sh.state_mut().set_member(6, Some("http://127.0.0.1:6".into()), false);
            assert!(!sh.sole_voter());
        });
    }

    #[test]
    fn the_strict_check_keeps_a_quorum_in_touch_as_etcd_counts() {
        let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
        let (voters, all, two) = (set(&[1, 2, 3]), set(&[1, 2, 3]), set(&[1, 2]));
        let ok = |change, voters: &BTreeSet<u64>, active: &BTreeSet<u64>| {
            quorum_kept(change, voters, active).is_ok()
        };
        let add = MemberChange::Add { id: 4, learner: false };
        assert!(ok(MemberChange::Remove(2), &voters, &all));
        assert!(ok(add, &voters, &all), "3 of 4 in touch");
        // Member 3 is out of touch.
        assert!(ok(MemberChange::Remove(3), &voters, &two), "removing the one down");
        assert!(!ok(MemberChange::Remove(2), &voters, &two), "1 of 2 left in touch");
        assert!(!ok(add, &voters, &two), "2 of 4");
        assert!(ok(MemberChange::Promote(4), &voters, &set(&[1, 2, 4])), "3 of 4");
        assert!(!ok(MemberChange::Promote(4), &voters, &two), "the learner is down too");
        assert!(ok(add, &set(&[1]), &set(&[1])), "one to two, as etcd allows");
        let e = quorum_kept(MemberChange::Remove(2), &voters, &two).unwrap_err();
        assert!(e.to_string().contains("1 of 2 voters"), "{e}");
    }

    #[test]
    fn cluster_ids_depend_on_the_token_only() {
        assert_eq!(cluster_id("keel-cluster"), cluster_id("keel-cluster"));
        assert_ne!(cluster_id("a"), cluster_id("b"));
        assert_ne!(cluster_id(""), 0);
    }
}
