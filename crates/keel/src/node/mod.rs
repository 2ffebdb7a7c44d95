//! `Node`: the Raft loop on a thread of its own, driven through a bounded
//! queue, as etcd's `node.go` drives its goroutine.
//!
//! This is the one module of the core that owns a thread. The loop holds the
//! [`RawNode`]; every call on a [`Node`] handle is a request to it, so a
//! handle is cheap to clone and share between threads and tokio tasks. Every
//! call has a blocking form and an `_async` form: the queue (`flume`) serves
//! both, so the same node can be driven from plain threads, from a runtime,
//! or from both at once, and the core still does not depend on tokio.
//!
//! Requests run one at a time, in the order they were made. A blocking call
//! made while the loop is idle runs on the calling thread instead of waking
//! the node's thread (and is answered without a thread hand-off); an async
//! call is always queued, so raft's work never runs on a runtime's worker
//! (from async code, use the `_async` forms). Code that must not block but
//! would rather not wake a thread for a lone input can call
//! [`Node::try_propose`] or [`Node::try_step_many`]: they run on the calling
//! thread if the loop is idle, and otherwise give the input back at once.
//! Blocking calls give up after [`NodeOptions::request_timeout`]; waiting
//! for output ([`Node::ready`], [`WorkQueue::recv`]) does not.
//!
//! # The application's loop
//!
//! Take each [`Ready`] with [`Node::ready`] (or [`Node::ready_async`]),
//! persist its snapshot, hard state and entries, send its messages, apply its
//! committed entries (calling [`Node::apply_conf_change_at`] for
//! configuration changes), then call [`Node::advance`]. The next `Ready` is
//! handed out only after `advance`, while the loop keeps taking ticks, peer
//! messages and proposals in between, as etcd's does.
//!
//! With [`Config::async_storage_writes`] there is no `advance`: the loop
//! routes each `MsgStorageAppend` to [`Node::append_work`] (as an
//! [`AppendWork`]) and each `MsgStorageApply` to [`Node::apply_work`] (as an
//! [`ApplyWork`]), so that a storage thread and an apply thread can run
//! concurrently; they hand their responses back with [`Node::step_local`]
//! (those addressed to this node) or send them to peers. [`Node::ready`]
//! then hands out only the `Ready`s that hold something besides storage
//! work (messages to send, a changed soft state, read states); the
//! entries, hard state and snapshot they still show are the storage
//! messages' and need no handling. With [`NodeOptions::inline_storage`]
//! the loop's holder does that work itself whenever the thread it would go
//! to is idle ([`InlineStorage`]), so a lightly loaded node wakes neither.
//! The two queues are not ordered against each other (as in etcd), and an
//! apply may run before the append that records its commit index is
//! written: an application that persists its applied index must restart
//! with it no higher than the commit index it finds stored (as keel-wal's
//! `DiskStorage` does for its snapshot), or [`Config::applied`] is refused.
//!
//! ```
//! use bytes::Bytes;
//! use keel::{Config, MemoryStorage, Node, Peer};
//!
//! let storage = MemoryStorage::new();
//! let node = Node::start(&Config::new(1), storage.clone(), &[Peer { id: 1, ..Peer::default() }])
//!     .unwrap();
//! let mut applied = Vec::new();
//! let (mut campaigned, mut proposed) = (false, false);
//! while applied.is_empty() {
//!     let rd = node.ready().unwrap();
//!     // 1. Persist the snapshot, hard state and entries.
//!     if let Some(snap) = &rd.snapshot {
//!         storage.apply_snapshot(snap.clone()).unwrap();
//!     }
//!     if let Some(hs) = rd.hard_state {
//!         storage.set_hard_state(hs);
//!     }
//!     storage.append(&rd.entries).unwrap();
//!     // 2. Send rd.messages to the peers (none: one voter).
//!     // 3. Apply the committed entries.
//!     for e in &rd.committed_entries {
//!         if e.index > 1 && !e.data.is_empty() {
//!             applied.push(e.data.clone());
//!         }
//!     }
//!     let leader = rd.soft_state.is_some_and(|s| s.lead == 1);
//!     // 4. Acknowledge.
//!     node.advance().unwrap();
//!     // A bootstrapped node campaigns once its first Ready (the initial
//!     // configuration) is applied.
//!     if !campaigned {
//!         node.campaign().unwrap();
//!         campaigned = true;
//!     }
//!     if leader && !proposed {
//!         node.propose(Bytes::from_static(b"hello")).unwrap();
//!         proposed = true;
//!     }
//! }
//! assert_eq!(applied, vec![Bytes::from_static(b"hello")]);
//! node.stop();
//! ```

mod event_loop;
mod reply;
mod work;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use self::event_loop::{Core, Drive};
use self::reply::{Pending, Replier, Reply};
use self::work::Lane;
pub use self::work::{AppendWork, ApplyWork, InlineStorage, WorkQueue};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::raftpb::{AnyConfChange, ConfState, Message};
use crate::raw_node::{Peer, Proposed, RawNode, Ready, SnapshotStatus};
use crate::status::Status;
use crate::storage::Storage;
use crate::util::is_local_msg;

/// How a [`Node`]'s channels and waits are sized.
#[derive(Clone)]
pub struct NodeOptions {
    /// Requests queued for the loop before callers block (or await).
    pub queue_capacity: usize,
    /// Storage messages queued for the storage and apply threads before the
    /// loop holds back the next `Ready` (asynchronous storage writes).
    pub storage_queue_capacity: usize,
    /// How long a blocking call waits for the loop (for room in its queue,
    /// then for its answer) before it returns [`Error::Timeout`]; `None`
    /// waits until the loop answers or stops. It does not bound waiting for
    /// work ([`Node::ready`] and [`WorkQueue::recv`] wait until there is
    /// some or the node stops). Async calls are bounded by the caller (for
    /// example `tokio::time::timeout`).
    pub request_timeout: Option<Duration>,
    /// The name of the loop's thread.
    pub thread_name: String,
    /// Where `Ready`s go instead of [`Node::ready`]: see [`ReadyHandler`].
    pub on_ready: Option<ReadyHandler>,
    /// Runs storage work where it is made while its queue's consumer is
    /// idle (asynchronous storage writes): see [`InlineStorage`].
    pub inline_storage: Option<Arc<dyn InlineStorage>>,
}

/// A function that takes each `Ready` where it is made, instead of a thread
/// waiting in [`Node::ready`]: the thread that ran the request behind it
/// (the node's own, or a blocking caller running inline) calls it, under
/// the loop's lock, so calls come one at a time and in order. A leader's
/// appends then leave from the thread that proposed, without waking
/// another.
///
/// It must be quick and must not block: it holds up the node. It may make
/// `Node` calls that return without an answer (`step`, `step_local`,
/// `tick`, `advance`, [`Node::stop`], ...): they go on a queue of the
/// holder's own, never full, and run once the handler returns. It must not
/// make ones that wait for one (`propose`, `status`, ...), which would wait
/// for the lock it holds. In
/// synchronous mode the `Ready` still needs [`Node::advance`] once it is
/// persisted, sent and applied.
#[derive(Clone)]
pub struct ReadyHandler(Arc<dyn Fn(Ready) + Send + Sync>);

impl ReadyHandler {
    /// Wraps `f`.
    pub fn new(f: impl Fn(Ready) + Send + Sync + 'static) -> ReadyHandler {
        ReadyHandler(Arc::new(f))
    }

    pub(super) fn call(&self, rd: Ready) {
        (self.0)(rd)
    }
}

impl std::fmt::Debug for ReadyHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyHandler")
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("queue_capacity", &self.queue_capacity)
            .field("storage_queue_capacity", &self.storage_queue_capacity)
            .field("request_timeout", &self.request_timeout)
            .field("thread_name", &self.thread_name)
            .field("on_ready", &self.on_ready)
            .field("inline_storage", &self.inline_storage.is_some())
            .finish()
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            queue_capacity: 1024,
            storage_queue_capacity: 64,
            request_timeout: None,
            thread_name: "keel-raft".to_string(),
            on_ready: None,
            inline_storage: None,
        }
    }
}

/// One input to the loop.
enum Request {
    Tick,
    Campaign(Replier<Result<()>>),
    Propose(Bytes, Replier<Result<Proposed>>),
    ProposeBatch(Vec<Bytes>, Replier<Result<Proposed>>),
    ProposeConfChange(AnyConfChange, Replier<Result<Proposed>>),
    Step(Message),
    StepMany(Vec<Message>),
    StepLocal(Message),
    ApplyConfChange(AnyConfChange, Option<u64>, Replier<Result<ConfState>>),
    TransferLeader(u64),
    ForgetLeader(Replier<Result<()>>),
    ReadIndex(Bytes, Replier<Result<()>>),
    Status(Replier<Status>),
    ReportUnreachable(u64),
    ReportSnapshot(u64, SnapshotStatus),
    Advance,
    Stop,
}

/// The progress of the two work queues' consumers.
#[derive(Debug, Default)]
struct Lanes {
    append: Lane,
    apply: Lane,
}

/// A handle on a Raft node whose loop runs on its own thread. Clones share
/// the node; the loop stops on [`Node::stop`] or when the last handle drops.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    /// The loop's state, for blocking calls to run on their own thread.
    core: Arc<dyn Drive>,
    requests: flume::Sender<Request>,
    /// Requests of the loop's holder (see `Core::own`).
    own: flume::Sender<Request>,
    /// Rung after queueing a request, to wake the node's thread.
    doorbell: flume::Sender<()>,
    /// The loop's queue, read here only to drop what a caller queued after
    /// the loop exited (see `Node::send`).
    leftovers: flume::Receiver<Request>,
    readies: flume::Receiver<Ready>,
    append_work: flume::Receiver<AppendWork>,
    apply_work: flume::Receiver<ApplyWork>,
    /// How far the storage and apply threads have got.
    lanes: Arc<Lanes>,
    async_storage_writes: bool,
    timeout: Option<Duration>,
    stopping: AtomicBool,
    /// The loop takes no more requests.
    exited: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Disconnecting the doorbell the thread waits on (rather than
        // sending `Stop`, which could find the queue full) ends the loop
        // once it has run what is queued.
        drop(std::mem::replace(&mut self.requests, flume::bounded(1).0));
        drop(std::mem::replace(&mut self.doorbell, flume::bounded(1).0));
        if let Some(handle) = self.thread.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("async_storage_writes", &self.inner.async_storage_writes)
            .field("stopping", &self.inner.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

impl Node {
    /// Bootstraps a new cluster of `peers` on empty `storage` and starts the
    /// loop. The first `Ready` carries the bootstrap entries to persist.
    pub fn start<S>(config: &Config, storage: S, peers: &[Peer]) -> Result<Node>
    where
        S: Storage + Send + 'static,
    {
        Node::start_with(config, storage, peers, NodeOptions::default())
    }

    /// [`Node::start`] with explicit options.
    pub fn start_with<S>(
        config: &Config,
        storage: S,
        peers: &[Peer],
        options: NodeOptions,
    ) -> Result<Node>
    where
        S: Storage + Send + 'static,
    {
        let mut raw = RawNode::new(config, storage)?;
        raw.bootstrap(peers)?;
        Node::spawn(raw, config.async_storage_writes, options)
    }

    /// Restarts a member from the state in `storage` and starts the loop.
    pub fn restart<S>(config: &Config, storage: S) -> Result<Node>
    where
        S: Storage + Send + 'static,
    {
        Node::restart_with(config, storage, NodeOptions::default())
    }

    /// [`Node::restart`] with explicit options.
    pub fn restart_with<S>(config: &Config, storage: S, options: NodeOptions) -> Result<Node>
    where
        S: Storage + Send + 'static,
    {
        let raw = RawNode::new(config, storage)?;
        Node::spawn(raw, config.async_storage_writes, options)
    }

    fn spawn<S>(raw: RawNode<S>, async_storage_writes: bool, options: NodeOptions) -> Result<Node>
    where
        S: Storage + Send + 'static,
    {
        let (requests, inbox) = flume::bounded(options.queue_capacity.max(1));
        let (own_tx, own) = flume::unbounded();
        let (ready_tx, readies) = flume::bounded(1);
        let storage_cap = options.storage_queue_capacity.max(1);
        let (append_tx, append_work) = flume::bounded(storage_cap);
        let (apply_tx, apply_work) = flume::bounded(storage_cap);
        let (doorbell, rings) = flume::bounded(1);
        let exited = Arc::new(AtomicBool::new(false));
        let lanes = Arc::new(Lanes::default());
        let core = Arc::new(Mutex::new(Core {
            raw,
            inbox: inbox.clone(),
            own,
            ready_tx,
            on_ready: options.on_ready.clone(),
            inline_storage: options.inline_storage.clone(),
            lanes: Arc::clone(&lanes),
            append_queued: 0,
            apply_queued: 0,
            append_tx,
            apply_tx,
            async_storage_writes,
            awaiting_advance: false,
            stopped: false,
        }));
        let handle = {
            let (core, exited) = (Arc::clone(&core), Arc::clone(&exited));
            std::thread::Builder::new()
                .name(options.thread_name.clone())
                .spawn(move || event_loop::run(&core, &rings, &exited))
                .map_err(Error::Spawn)?
        };
        Ok(Node {
            inner: Arc::new(Inner {
                core,
                requests,
                own: own_tx,
                doorbell,
                leftovers: inbox,
                readies,
                append_work,
                apply_work,
                lanes,
                async_storage_writes,
                timeout: options.request_timeout,
                stopping: AtomicBool::new(false),
                exited,
                thread: Mutex::new(Some(handle)),
            }),
        })
    }

    // --- plumbing -------------------------------------------------------

    fn live(&self) -> Result<()> {
        if self.inner.stopping.load(Ordering::Acquire) { Err(Error::Stopped) } else { Ok(()) }
    }

    /// A blocking request: run on this thread if the loop is idle,
    /// otherwise queued for the node's thread.
    fn send(&self, req: Request) -> Result<()> {
        self.live()?;
        if event_loop::holds_loop() {
            // Run by this thread once its current work is done: waiting for
            // room in the queue would wait for itself.
            return self.inner.own.send(req).map_err(|_| Error::Stopped);
        }
        match self.inner.core.try_inline(req) {
            None => Ok(()),
            Some(req) => self.enqueue(req),
        }
    }

    fn enqueue(&self, req: Request) -> Result<()> {
        match self.inner.timeout {
            None => self.inner.requests.send(req).map_err(|_| Error::Stopped)?,
            Some(t) => self.inner.requests.send_timeout(req, t).map_err(|e| match e {
                flume::SendTimeoutError::Timeout(_) => Error::Timeout,
                flume::SendTimeoutError::Disconnected(_) => Error::Stopped,
            })?,
        }
        self.after_enqueue()
    }

    /// An async request is always queued: raft's work never runs on a
    /// runtime's worker.
    async fn send_async(&self, req: Request) -> Result<()> {
        self.live()?;
        self.inner.requests.send_async(req).await.map_err(|_| Error::Stopped)?;
        self.after_enqueue()
    }

    /// Wakes the node's thread. A request queued after the thread's last
    /// look at its queue would wait for ever: drop it (and any other), which
    /// answers its caller.
    fn after_enqueue(&self) -> Result<()> {
        self.ring();
        if self.inner.exited.load(Ordering::SeqCst) {
            self.inner.leftovers.drain().for_each(drop);
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// A blocking call: the answer arrives in this thread's reply slot.
    fn call<T: Reply>(&self, make: impl FnOnce(Replier<T>) -> Request) -> Result<T> {
        let (pending, replier) = Pending::new();
        self.send(make(replier))?;
        pending.wait(self.inner.timeout)
    }

    async fn call_async<T: Send + 'static>(
        &self,
        make: impl FnOnce(Replier<T>) -> Request,
    ) -> Result<T> {
        let (rx, replier) = reply::channel();
        self.send_async(make(replier)).await?;
        rx.recv_async().await.map_err(|_| Error::Stopped)
    }

    // --- inputs ---------------------------------------------------------

    /// Advances the logical clock by one tick.
    pub fn tick(&self) -> Result<()> {
        self.send(Request::Tick)
    }

    /// Async [`Node::tick`].
    pub async fn tick_async(&self) -> Result<()> {
        self.send_async(Request::Tick).await
    }

    /// Starts an election.
    pub fn campaign(&self) -> Result<()> {
        self.call(Request::Campaign)?
    }

    /// Async [`Node::campaign`].
    pub async fn campaign_async(&self) -> Result<()> {
        self.call_async(Request::Campaign).await?
    }

    /// Proposes `data` for the log. Returns once raft has taken the proposal
    /// (appended on a leader, with the entry's id; forwarded by a follower)
    /// or refused it ([`Error::ProposalDropped`], at once where etcd's
    /// `Propose` would block: on a node that knows no leader); that it
    /// commits shows in a later `Ready`'s committed entries (see
    /// [`Proposed`]).
    pub fn propose(&self, data: Bytes) -> Result<Proposed> {
        self.call(|r| Request::Propose(data, r))?
    }

    /// Async [`Node::propose`].
    pub async fn propose_async(&self, data: Bytes) -> Result<Proposed> {
        self.call_async(|r| Request::Propose(data, r)).await?
    }

    /// [`Node::propose`] on this thread if the loop is idle, never waiting
    /// for it: `Ok(Err(data))` gives the data back while the loop is busy
    /// (queue it for a thread that may wait, or call `propose_async`). For
    /// a caller that must not block, such as an async runtime's worker,
    /// that would rather not wake a thread for a lone proposal. Raft's
    /// work, the [`ReadyHandler`] and [`InlineStorage`] run on this thread.
    pub fn try_propose(&self, data: Bytes) -> Result<std::result::Result<Proposed, Bytes>> {
        self.live()?;
        let (pending, replier) = Pending::new();
        match self.inner.core.try_inline(Request::Propose(data, replier)) {
            // Run: the answer is in this thread's slot.
            None => pending.wait(self.inner.timeout)?.map(Ok),
            Some(Request::Propose(data, _)) => Ok(Err(data)),
            Some(_) => unreachable!("try_inline gives back the request it was given"),
        }
    }

    /// Proposes several entries at once; all are taken or none. On a leader
    /// the outcome names the last entry.
    pub fn propose_batch(&self, data: Vec<Bytes>) -> Result<Proposed> {
        self.call(|r| Request::ProposeBatch(data, r))?
    }

    /// Async [`Node::propose_batch`].
    pub async fn propose_batch_async(&self, data: Vec<Bytes>) -> Result<Proposed> {
        self.call_async(|r| Request::ProposeBatch(data, r)).await?
    }

    /// Proposes a configuration change; the outcome is as for
    /// [`Node::propose`].
    pub fn propose_conf_change(&self, cc: impl Into<AnyConfChange>) -> Result<Proposed> {
        let cc = cc.into();
        self.call(|r| Request::ProposeConfChange(cc, r))?
    }

    /// Async [`Node::propose_conf_change`].
    pub async fn propose_conf_change_async(
        &self,
        cc: impl Into<AnyConfChange>,
    ) -> Result<Proposed> {
        let cc = cc.into();
        self.call_async(|r| Request::ProposeConfChange(cc, r)).await?
    }

    /// Hands the loop a message from a peer. Local-only message types are
    /// refused here ([`Error::StepLocalMsg`]); other refusals are logged by
    /// the core. Returns once the message is queued.
    pub fn step(&self, m: Message) -> Result<()> {
        refuse_local(&m)?;
        self.send(Request::Step(m))
    }

    /// Hands the loop several messages from peers, stepped one after the
    /// other before the next `Ready` is made: a burst read off the network
    /// (a leader's appends, followers' acknowledgements) yields one `Ready`,
    /// one storage write and one send instead of one each.
    /// Local-only messages are left out (a peer's bad message does not cost
    /// the others their step), and then reported as [`Error::StepLocalMsg`].
    pub fn step_many(&self, mut msgs: Vec<Message>) -> Result<()> {
        let refused = drop_local(&mut msgs);
        if !msgs.is_empty() {
            self.send(Request::StepMany(msgs))?;
        }
        if refused { Err(Error::StepLocalMsg) } else { Ok(()) }
    }

    /// [`Node::step_many`] on this thread if the loop is idle, never waiting
    /// for it: `Ok(Err(msgs))` gives the messages back while the loop is
    /// busy (queue them for a thread that may wait). For a network reader
    /// on an async runtime's worker that would rather not wake a thread for
    /// a lone message. Raft's work, the [`ReadyHandler`] and
    /// [`InlineStorage`] run on this thread.
    pub fn try_step_many(
        &self,
        mut msgs: Vec<Message>,
    ) -> Result<std::result::Result<(), Vec<Message>>> {
        self.live()?;
        let refused = drop_local(&mut msgs);
        if !msgs.is_empty() {
            match self.inner.core.try_inline(Request::StepMany(msgs)) {
                None => {}
                Some(Request::StepMany(msgs)) => return Ok(Err(msgs)),
                Some(_) => unreachable!("try_inline gives back the request it was given"),
            }
        }
        if refused { Err(Error::StepLocalMsg) } else { Ok(Ok(())) }
    }

    /// Async [`Node::step`].
    pub async fn step_async(&self, m: Message) -> Result<()> {
        refuse_local(&m)?;
        self.send_async(Request::Step(m)).await
    }

    /// Hands the loop a response of the local storage or apply thread (the
    /// responses of an [`AppendWork`] or [`ApplyWork`] addressed to this
    /// node), with asynchronous storage writes.
    pub fn step_local(&self, m: Message) -> Result<()> {
        self.send(Request::StepLocal(m))
    }

    /// Async [`Node::step_local`].
    pub async fn step_local_async(&self, m: Message) -> Result<()> {
        self.send_async(Request::StepLocal(m)).await
    }

    /// Applies a committed configuration change and returns the new
    /// configuration. Prefer [`Node::apply_conf_change_at`], which knows
    /// about snapshots.
    pub fn apply_conf_change(&self, cc: impl Into<AnyConfChange>) -> Result<ConfState> {
        let cc = cc.into();
        self.call(|r| Request::ApplyConfChange(cc, None, r))?
    }

    /// Async [`Node::apply_conf_change`].
    pub async fn apply_conf_change_async(&self, cc: impl Into<AnyConfChange>) -> Result<ConfState> {
        let cc = cc.into();
        self.call_async(|r| Request::ApplyConfChange(cc, None, r)).await?
    }

    /// Applies the configuration change committed at `index`. A change that
    /// a snapshot restored since then already covers (its index is at or
    /// below the snapshot's) changes nothing: the current configuration is
    /// returned. The application should skip such entries altogether; this
    /// guards the ones it cannot (etcd-io/etcd#11510).
    pub fn apply_conf_change_at(
        &self,
        index: u64,
        cc: impl Into<AnyConfChange>,
    ) -> Result<ConfState> {
        let cc = cc.into();
        self.call(|r| Request::ApplyConfChange(cc, Some(index), r))?
    }

    /// Async [`Node::apply_conf_change_at`].
    pub async fn apply_conf_change_at_async(
        &self,
        index: u64,
        cc: impl Into<AnyConfChange>,
    ) -> Result<ConfState> {
        let cc = cc.into();
        self.call_async(|r| Request::ApplyConfChange(cc, Some(index), r)).await?
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leadership(&self, transferee: u64) -> Result<()> {
        self.send(Request::TransferLeader(transferee))
    }

    /// Async [`Node::transfer_leadership`].
    pub async fn transfer_leadership_async(&self, transferee: u64) -> Result<()> {
        self.send_async(Request::TransferLeader(transferee)).await
    }

    /// Makes a follower forget its leader (see [`RawNode::forget_leader`]).
    pub fn forget_leader(&self) -> Result<()> {
        self.call(Request::ForgetLeader)?
    }

    /// Async [`Node::forget_leader`].
    pub async fn forget_leader_async(&self) -> Result<()> {
        self.call_async(Request::ForgetLeader).await?
    }

    /// Requests a read index; the answer arrives as a `ReadState` carrying
    /// `rctx` in a later `Ready`. Refused at once
    /// ([`Error::ProposalDropped`]) where it could never be answered, as on
    /// a follower that knows no leader.
    pub fn read_index(&self, rctx: Bytes) -> Result<()> {
        self.call(|r| Request::ReadIndex(rctx, r))?
    }

    /// Async [`Node::read_index`].
    pub async fn read_index_async(&self, rctx: Bytes) -> Result<()> {
        self.call_async(|r| Request::ReadIndex(rctx, r)).await?
    }

    /// The node's current status.
    pub fn status(&self) -> Result<Status> {
        self.call(Request::Status)
    }

    /// Async [`Node::status`].
    pub async fn status_async(&self) -> Result<Status> {
        self.call_async(Request::Status).await
    }

    /// Reports that the last message to `id` could not be sent.
    pub fn report_unreachable(&self, id: u64) -> Result<()> {
        self.send(Request::ReportUnreachable(id))
    }

    /// Async [`Node::report_unreachable`].
    pub async fn report_unreachable_async(&self, id: u64) -> Result<()> {
        self.send_async(Request::ReportUnreachable(id)).await
    }

    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&self, id: u64, status: SnapshotStatus) -> Result<()> {
        self.send(Request::ReportSnapshot(id, status))
    }

    /// Async [`Node::report_snapshot`].
    pub async fn report_snapshot_async(&self, id: u64, status: SnapshotStatus) -> Result<()> {
        self.send_async(Request::ReportSnapshot(id, status)).await
    }

    // --- outputs --------------------------------------------------------

    /// Waits for the next `Ready`, for as long as it takes ([`Error::Stopped`]
    /// once the node stops): an idle node is not a failed request, so the
    /// request timeout does not apply, as with [`WorkQueue::recv`]. A node
    /// started with [`NodeOptions::on_ready`] hands every `Ready` to it and
    /// none here. Dropping an unfinished [`Node::ready_async`] loses
    /// nothing: the `Ready` waits for the next call.
    pub fn ready(&self) -> Result<Ready> {
        self.live()?;
        let rd = self.inner.readies.recv().map_err(|_| Error::Stopped)?;
        self.taken();
        Ok(rd)
    }

    /// Async [`Node::ready`].
    pub async fn ready_async(&self) -> Result<Ready> {
        self.live()?;
        let rd = self.inner.readies.recv_async().await.map_err(|_| Error::Stopped)?;
        self.taken();
        Ok(rd)
    }

    /// The next `Ready`, if one is waiting.
    pub fn try_ready(&self) -> Result<Option<Ready>> {
        self.live()?;
        match self.inner.readies.try_recv() {
            Ok(rd) => {
                self.taken();
                Ok(Some(rd))
            }
            Err(flume::TryRecvError::Empty) => Ok(None),
            Err(flume::TryRecvError::Disconnected) => Err(Error::Stopped),
        }
    }

    /// With asynchronous storage writes the next `Ready` is offered once the
    /// last was taken: wake the loop for it. Only a wake-up (a request could
    /// fail or wait, and the `Ready` in hand would be lost with it).
    fn taken(&self) {
        if self.inner.async_storage_writes {
            self.ring();
        }
    }

    /// Wakes the node's thread to run what is queued and offer a `Ready`.
    pub(super) fn ring(&self) {
        let _ = self.inner.doorbell.try_send(());
    }

    /// Acknowledges the last `Ready`: it is persisted, sent and applied.
    /// Not used with asynchronous storage writes (an error there).
    pub fn advance(&self) -> Result<()> {
        if self.inner.async_storage_writes {
            return Err(Error::AdvanceWithAsyncStorageWrites);
        }
        self.send(Request::Advance)
    }

    /// Async [`Node::advance`].
    pub async fn advance_async(&self) -> Result<()> {
        if self.inner.async_storage_writes {
            return Err(Error::AdvanceWithAsyncStorageWrites);
        }
        self.send_async(Request::Advance).await
    }

    /// The `MsgStorageAppend`s for the storage thread, in order
    /// (asynchronous storage writes).
    pub fn append_work(&self) -> WorkQueue<'_, AppendWork> {
        WorkQueue { node: self, rx: &self.inner.append_work, lane: &self.inner.lanes.append }
    }

    /// The `MsgStorageApply`s for the apply thread, in order (asynchronous
    /// storage writes).
    pub fn apply_work(&self) -> WorkQueue<'_, ApplyWork> {
        WorkQueue { node: self, rx: &self.inner.apply_work, lane: &self.inner.lanes.apply }
    }

    /// Stops the loop and joins its thread. Idempotent; every call made
    /// after it (or while it runs) returns [`Error::Stopped`], and callers
    /// waiting on the loop are answered with it.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        if event_loop::holds_loop() {
            // From a handler or inline storage: the loop stops once this
            // thread lets go of it; joining here would wait for itself.
            let _ = self.inner.own.send(Request::Stop);
            self.ring();
            return;
        }
        let handle = self.inner.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            // The loop never blocks on its outputs, so the queue drains and
            // the request arrives.
            let _ = self.inner.requests.send(Request::Stop);
            self.ring();
            let _ = handle.join();
        }
    }

    /// Whether [`Node::stop`] has been called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }
}

/// Leaves out local-only messages (a peer's bad message does not cost the
/// others their step); whether there were any.
fn drop_local(msgs: &mut Vec<Message>) -> bool {
    let n = msgs.len();
    msgs.retain(|m| refuse_local(m).is_ok());
    msgs.len() < n
}

fn refuse_local(m: &Message) -> Result<()> {
    if is_local_msg(m.msg_type()) { Err(Error::StepLocalMsg) } else { Ok(()) }
}

#[cfg(test)]
mod loop_tests;
