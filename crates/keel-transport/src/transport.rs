//! The [`Transport`] handle: the raft loop's side of the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use keel::raftpb::{Message, MessageType};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{Config, Limits};
use crate::error::StartError;
use crate::events::{DeliverInline, Events, Inbox, SnapshotStatus};
use crate::peer::PeerQueue;
use crate::stats::{Registry, Stats, bump};
use crate::tls::TlsConfig;

/// State shared by the handle and its tasks.
pub(crate) struct Shared {
    pub(crate) local_id: u64,
    pub(crate) cluster_id: u64,
    /// The port peers dial this member on (sent in every handshake).
    pub(crate) listen_port: u16,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) runtime: Handle,
    pub(crate) stats: Registry,
    pub(crate) closed: watch::Sender<bool>,
    peers: Mutex<BTreeMap<u64, PeerQueue>>,
    removed: Mutex<std::collections::BTreeSet<u64>>,
    pub(crate) inbox: Arc<Inbox>,
    /// Incoming snapshots in progress (one per sender, bounded in bytes).
    pub(crate) snapshots_in: crate::snapshot::Receiving,
    /// Incoming streams (the newest one per sender).
    pub(crate) streams_in: crate::listener::Streams,
}

impl Shared {
    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, PeerQueue>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_peer(&self, id: u64) -> bool {
        self.peers().contains_key(&id)
    }

    /// Where this member dials peer `id`, if it is one.
    pub(crate) fn peer_addr(&self, id: u64) -> Option<SocketAddr> {
        self.peers().get(&id).map(|p| p.addr)
    }

    fn removed(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<u64>> {
        self.removed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn was_removed(&self, id: u64) -> bool {
        self.removed().contains(&id)
    }

    pub(crate) fn report_unreachable(&self, id: u64) {
        self.inbox.report_unreachable(id);
    }
}

/// A running transport. Dropping it stops every task and closes every connection.
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_task: tokio::task::AbortHandle,
    runtime: Option<Runtime>,
}

impl Transport {
    /// Starts on the current tokio runtime (call from async code).
    pub fn start(config: Config) -> Result<(Transport, Events), StartError> {
        let handle = Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        Transport::start_on(config, handle, None)
    }

    /// Starts on a runtime of its own (two worker threads), for a plain thread.
    pub fn start_with_runtime(config: Config) -> Result<(Transport, Events), StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keel-transport")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let handle = runtime.handle().clone();
        Transport::start_on(config, handle, Some(runtime))
    }

    fn start_on(
        config: Config,
        handle: Handle,
        runtime: Option<Runtime>,
    ) -> Result<(Transport, Events), StartError> {
        config.validate().map_err(StartError::Config)?;
        let addr = config.listen_addr;
        let listen = |source| StartError::Listen { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(listen)?;
        std_listener.set_nonblocking(true).map_err(listen)?;
        let local_addr = std_listener.local_addr().map_err(listen)?;
        let _guard = handle.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener).map_err(listen)?;
        let inbox = Inbox::new(&config.limits);
        let shared = Arc::new(Shared {
            local_id: config.local_id,
            cluster_id: config.cluster_id,
            listen_port: local_addr.port(),
            limits: config.limits,
            tls: config.tls,
            runtime: handle.clone(),
            stats: Registry::default(),
            closed: watch::channel(false).0,
            peers: Mutex::new(BTreeMap::new()),
            removed: Mutex::new(std::collections::BTreeSet::new()),
            inbox: Arc::clone(&inbox),
            snapshots_in: Default::default(),
            streams_in: Default::default(),
        });
        let accept_task = handle.spawn(crate::listener::accept_loop(Arc::clone(&shared), listener));
        let transport =
            Transport { shared, local_addr, accept_task: accept_task.abort_handle(), runtime };
        for (id, addr) in config.peers {
            transport.add_peer(id, addr);
        }
        tracing::info!(id = config.local_id, %local_addr, "transport listening");
        Ok((transport, Events::new(inbox)))
    }

    /// Lets `deliver` take incoming messages on the task that read them,
    /// whenever the [`Events`] receiver waits with nothing in hand: a raft
    /// loop that can step them at once (`keel::Node::try_step_many`) then
    /// wakes no thread for a lone message. What it gives back is queued as
    /// usual. `None` removes it (a hook that holds the raft node should be
    /// removed when the node stops, or the two keep each other alive).
    pub fn deliver_inline(&self, deliver: Option<DeliverInline>) {
        self.shared.inbox.set_deliver(deliver);
    }

    /// The address peers connect to (the OS-chosen port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds (or re-addresses) a peer; its stream connects in the background.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        if id == self.shared.local_id || id == 0 {
            return;
        }
        self.shared.removed().remove(&id);
        let mut peers = self.shared.peers();
        if peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        peers.insert(id, PeerQueue::start(&self.shared, id, addr));
    }

    /// Removes a peer: its queue is dropped and its connections are refused
    /// from now on, with a verdict that tells it it was removed (it reports
    /// [`Event::Removed`](crate::Event::Removed)).
    pub fn remove_peer(&self, id: u64) {
        // Removed first: a handshake judged in between must hear that it was
        // removed, not that it is unknown.
        self.shared.removed().insert(id);
        self.shared.peers().remove(&id);
    }

    /// Queues messages for their recipients and returns at once. A message for
    /// an unknown peer, or one that does not fit the peer's queue, is dropped,
    /// counted, and the peer is reported unreachable (as etcd's rafthttp does);
    /// a `MsgSnap` for an unknown peer is also reported failed, or raft would
    /// wait for its outcome for ever. A `MsgSnap` goes on a connection of its
    /// own.
    pub fn send(&self, msgs: Vec<Message>) {
        let peers = self.shared.peers();
        for msg in msgs {
            let to = msg.to;
            let Some(peer) = peers.get(&to) else {
                bump(&self.shared.stats.unknown_peer, 1);
                tracing::debug!(peer = to, "dropped a message for an unknown peer");
                self.shared.report_unreachable(to);
                if msg.msg_type == MessageType::MsgSnap as i32 {
                    self.shared.inbox.report_snapshot(to, SnapshotStatus::Failed);
                }
                continue;
            };
            if msg.msg_type == MessageType::MsgSnap as i32 {
                let task = crate::snapshot::send(Arc::clone(&self.shared), to, peer.addr, msg);
                let span = tracing::info_span!("snapshot_send", peer = to, addr = %peer.addr);
                self.shared.runtime.spawn(task.instrument(span));
            } else if !peer.offer(msg, &self.shared.limits) {
                bump(&peer.counters.msgs_dropped, 1);
                tracing::debug!(peer = to, "peer queue full; dropped a message");
                self.shared.report_unreachable(to);
            }
        }
    }

    /// A copy of every counter.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.peers().clear();
        let _ = self.shared.closed.send(true);
        self.shared.inbox.close();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
