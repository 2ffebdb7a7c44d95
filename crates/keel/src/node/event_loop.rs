//! The loop that owns the [`RawNode`]: its state sits behind a mutex, and
//! whoever holds the mutex runs the requests, in queue order.
//!
//! The node's thread holds it to run what callers queued. A blocking call
//! made while the node is idle (the mutex free) does not queue: the calling
//! thread takes the mutex, runs what is queued, then its own request, and
//! offers the next `Ready`, so that a proposer in a tight loop (etcd's
//! `BenchmarkOneNode`) wakes no thread and waits on none. Requests are taken
//! from the queue only under the mutex, so calls run in the order they were
//! made, as etcd's unbuffered channels keep them. An `_async` call always
//! queues: raft's work (which may read storage) never runs on a runtime's
//! worker.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::work::{AppendWork, ApplyWork, InlineStorage, Lane};
use super::{Lanes, Request};
use crate::error::Error;
use crate::raftpb::{Message, MessageType};
use crate::raw_node::{RawNode, Ready};
use crate::storage::Storage;

/// The loop's state.
pub(super) struct Core<S: Storage> {
    pub(super) raw: RawNode<S>,
    pub(super) inbox: flume::Receiver<Request>,
    /// Requests made by the loop's holder itself (a `ReadyHandler` or
    /// inline storage calling the node): unbounded, since the holder is the
    /// one that would have to make room in `inbox`. Run before `inbox`.
    pub(super) own: flume::Receiver<Request>,
    pub(super) ready_tx: flume::Sender<Ready>,
    /// Takes each `Ready` instead of `ready_tx`.
    pub(super) on_ready: Option<super::ReadyHandler>,
    /// Runs storage work here while its queue's consumer is idle.
    pub(super) inline_storage: Option<Arc<dyn InlineStorage>>,
    pub(super) lanes: Arc<Lanes>,
    /// Items sent on `append_tx` and `apply_tx`.
    pub(super) append_queued: u64,
    pub(super) apply_queued: u64,
    pub(super) append_tx: flume::Sender<AppendWork>,
    pub(super) apply_tx: flume::Sender<ApplyWork>,
    pub(super) async_storage_writes: bool,
    /// A `Ready` was handed out and `advance` has not come (synchronous).
    pub(super) awaiting_advance: bool,
    /// A `Stop` was run: nothing more is.
    pub(super) stopped: bool,
}

/// What a [`Node`](super::Node) handle, which is not generic over the
/// storage, needs of the loop.
pub(super) trait Drive: Send + Sync {
    /// Runs `req` on the calling thread, after everything queued, if no one
    /// holds the loop; otherwise gives it back, to be queued.
    fn try_inline(&self, req: Request) -> Option<Request>;
}

impl<S: Storage + Send> Drive for Mutex<Core<S>> {
    fn try_inline(&self, req: Request) -> Option<Request> {
        // Poisoned: raft (or a handler) panicked while holding the loop, and
        // the node is stopping; queued, the request is answered `Stopped`.
        let Ok(mut core) = self.try_lock() else { return Some(req) };
        let _holding = Holding::new();
        core.run_queued();
        if core.stopped {
            return Some(req);
        }
        if !core.handle(req) {
            core.stopped = true;
        }
        core.settle();
        None
    }
}

thread_local! {
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread holds the loop (it runs a `ReadyHandler`, inline
/// storage, or raft itself): a call it makes must not wait on the loop.
pub(super) fn holds_loop() -> bool {
    HOLDING.with(Cell::get)
}

/// Marks this thread as the loop's holder while it lives.
struct Holding;

impl Holding {
    fn new() -> Holding {
        HOLDING.with(|h| h.set(true));
        Holding
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HOLDING.with(|h| h.set(false));
    }
}

/// Steps a storage thread's (or inline storage's) response. One that would
/// change nothing is dropped: see `RawNode::is_stale_append_response`.
fn step_local<S: Storage>(raw: &mut RawNode<S>, m: Message) {
    if !raw.is_stale_append_response(&m) {
        // The core logs what it refuses.
        let _ = raw.step_local(m);
    }
}

fn lock<S: Storage>(core: &Mutex<Core<S>>) -> MutexGuard<'_, Core<S>> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Requests run before the loop offers a `Ready`, so that a burst of
/// proposals lands in one `Ready`.
const BATCH: usize = 256;

/// The node's thread: runs what is queued whenever the doorbell rings,
/// until a `Stop` or until every handle is gone (the doorbell disconnects);
/// then drops what is still queued, which answers those callers with
/// [`Error::Stopped`]. `exited` is set before that last drain, and a caller
/// that queues a request after it sees `exited` and drains the queue itself
/// (`Node::send`), so no request is left unanswered.
pub(super) fn run<S: Storage>(
    core: &Mutex<Core<S>>,
    doorbell: &flume::Receiver<()>,
    exited: &AtomicBool,
) {
    // However the loop ends: a `Stop`, the last handle gone, or a panic in
    // raft, a `ReadyHandler` or inline storage (here, or on a caller's thread
    // that ran the loop and poisoned its lock).
    let _exit = Exit { core, exited };
    loop {
        {
            let Ok(mut core) = core.lock() else { return };
            let _holding = Holding::new();
            core.run_queued();
            if core.stopped {
                break;
            }
            core.settle();
            if core.stopped {
                break;
            }
        }
        if doorbell.recv().is_err() {
            if let Ok(mut core) = core.lock() {
                core.run_queued();
            }
            break;
        }
    }
}

/// Ends the loop: marks it exited, answers what is queued with
/// [`Error::Stopped`] (by dropping it) and disconnects the outputs, so that
/// whoever waits on them is told the node stopped.
struct Exit<'a, S: Storage> {
    core: &'a Mutex<Core<S>>,
    exited: &'a AtomicBool,
}

impl<S: Storage> Drop for Exit<'_, S> {
    fn drop(&mut self) {
        self.exited.store(true, Ordering::SeqCst);
        let mut core = lock(self.core);
        core.stopped = true;
        core.own.drain().for_each(drop);
        core.inbox.drain().for_each(drop);
        core.ready_tx = flume::bounded(1).0;
        core.on_ready = None;
        core.append_tx = flume::bounded(1).0;
        core.apply_tx = flume::bounded(1).0;
    }
}

impl<S: Storage> Core<S> {
    /// Runs every queued request (offering a `Ready` every [`BATCH`]),
    /// until the queue is empty or a `Stop`.
    fn run_queued(&mut self) {
        let mut n = 0;
        while !self.stopped {
            let Ok(req) = self.own.try_recv().or_else(|_| self.inbox.try_recv()) else { return };
            if !self.handle(req) {
                self.stopped = true;
            }
            n += 1;
            if n % BATCH == 0 {
                self.offer_ready();
            }
        }
    }

    /// Handles one request; false to stop.
    fn handle(&mut self, req: Request) -> bool {
        let raw = &mut self.raw;
        match req {
            Request::Tick => raw.tick(),
            Request::Campaign(r) => r.send(raw.campaign()),
            Request::Propose(data, r) => r.send(raw.propose(data)),
            Request::ProposeBatch(data, r) => r.send(raw.propose_batch(data)),
            Request::ProposeConfChange(cc, r) => r.send(raw.propose_conf_change(cc)),
            // The core logs what it refuses; a peer cannot stop the loop.
            Request::Step(m) => {
                let _ = raw.step(m);
            }
            Request::StepMany(msgs) => {
                for m in msgs {
                    let _ = raw.step(m);
                }
            }
            Request::StepLocal(m) => step_local(raw, m),
            Request::ApplyConfChange(cc, at, r) => {
                let cs = match at {
                    Some(index) => raw.apply_conf_change_at(index, &cc),
                    None => raw.apply_conf_change(&cc),
                };
                r.send(cs.map_err(Error::from));
            }
            Request::TransferLeader(id) => raw.transfer_leader(id),
            Request::ForgetLeader(r) => r.send(raw.forget_leader()),
            Request::ReadIndex(ctx, r) => r.send(raw.read_index(ctx)),
            Request::Status(r) => r.send(raw.status()),
            Request::ReportUnreachable(id) => raw.report_unreachable(id),
            Request::ReportSnapshot(id, st) => raw.report_snapshot(id, st),
            Request::Advance => {
                if self.awaiting_advance {
                    self.awaiting_advance = false;
                    raw.advance();
                }
            }
            Request::Stop => return false,
        }
        true
    }

    /// Offers `Ready`s, then runs what their handlers asked of the node, until
    /// neither leaves anything to do (or a `Stop`).
    fn settle(&mut self) {
        loop {
            self.offer_ready();
            if self.own.is_empty() {
                return;
            }
            self.run_queued();
            if self.stopped {
                return;
            }
        }
    }

    /// Hands out `Ready`s while there are some, the last was taken (and
    /// acknowledged, in synchronous mode), and the storage queues have room.
    fn offer_ready(&mut self) {
        // Storage work run here steps its responses, which may make another.
        while self.offer_one_ready() {}
    }

    /// Whether a storage queue is full, so that a `Ready` must wait: the
    /// consumer that makes room then wakes the loop (`WorkQueue`). Room made
    /// after the flag is set is seen by the second look.
    fn held_for_room(&self) -> bool {
        let mut held = false;
        for (full, lane) in [
            (self.append_tx.is_full(), &self.lanes.append),
            (self.apply_tx.is_full(), &self.lanes.apply),
        ] {
            if full {
                lane.held_for_room.store(true, Ordering::Release);
                held = true;
            }
        }
        held && (self.append_tx.is_full() || self.apply_tx.is_full())
    }

    /// Hands out one `Ready`; true if storage work for it ran here (and
    /// stepped its responses).
    fn offer_one_ready(&mut self) -> bool {
        if self.awaiting_advance || !self.ready_tx.is_empty() || !self.raw.has_ready() {
            return false;
        }
        if self.async_storage_writes && self.held_for_room() {
            return false;
        }
        let mut rd = self.raw.ready();
        if !self.async_storage_writes {
            self.awaiting_advance = true;
            self.hand_out(rd);
            return false;
        }
        let (mut append, mut apply) = (None, None);
        let mut rest = Vec::with_capacity(rd.messages.len());
        for m in rd.messages.drain(..) {
            // A Ready holds at most one message for each queue.
            match m.msg_type() {
                MessageType::MsgStorageAppend => append = Some(AppendWork::new(m)),
                MessageType::MsgStorageApply => apply = Some(ApplyWork::new(m)),
                _ => rest.push(m),
            }
        }
        rd.messages = rest;
        // What is left for the application is messages to send, a soft
        // state and read states. A `Ready` with none of them (a follower's
        // append, a leader's apply) is not handed out: the next one need not
        // wait for the application's loop to wake. Messages leave first: a
        // leader's appends go out while its own write is in progress.
        if !rd.messages.is_empty() || rd.soft_state.is_some() || !rd.read_states.is_empty() {
            self.hand_out(rd);
        }
        // An append of the hard state alone (a new commit index, as a rule)
        // answers no one, while applying the entries it committed answers
        // requests: they go first. The two queues are independent; their
        // threads may run in either order.
        let commit_only = append.as_ref().is_some_and(AppendWork::is_state_only);
        let mut stepped = false;
        if commit_only && let Some(w) = apply.take() {
            stepped |= self.apply(w);
        }
        if let Some(w) = append {
            stepped |= self.append(w);
        }
        if let Some(w) = apply {
            stepped |= self.apply(w);
        }
        stepped
    }

    /// Whether work may run here rather than on the thread behind `lane`:
    /// that thread did all it was sent, and stepped back its responses
    /// (which, if they were queued, are still in the inbox, and raft must
    /// take them in order).
    fn may_run_here(&self, lane: &Lane, queued: u64) -> bool {
        lane.idle(queued) && self.inbox.is_empty()
    }

    /// Runs `w` here if the storage thread is idle (true), or queues it.
    fn append(&mut self, w: AppendWork) -> bool {
        let here = self.may_run_here(&self.lanes.append, self.append_queued);
        match self.run_here(here, w, |inline, w| inline.append(w)) {
            Ok(()) => true,
            Err(w) => {
                // Only the loop's holder sends on the queue, and it checked
                // for room.
                self.append_queued += 1;
                let _ = self.append_tx.try_send(w);
                false
            }
        }
    }

    /// Runs `w` here if the apply thread is idle (true), or queues it.
    fn apply(&mut self, w: ApplyWork) -> bool {
        let here = self.may_run_here(&self.lanes.apply, self.apply_queued);
        match self.run_here(here, w, |inline, w| inline.apply(w)) {
            Ok(()) => true,
            Err(w) => {
                self.apply_queued += 1;
                let _ = self.apply_tx.try_send(w);
                false
            }
        }
    }

    /// Has the inline storage do `w` if `here` allows it, and steps the
    /// responses; gives `w` back otherwise.
    fn run_here<W>(
        &mut self,
        here: bool,
        w: W,
        run: impl FnOnce(&dyn InlineStorage, W) -> std::result::Result<Vec<Message>, W>,
    ) -> std::result::Result<(), W> {
        let responses = match &self.inline_storage {
            Some(inline) if here => run(inline.as_ref(), w)?,
            _ => return Err(w),
        };
        for m in responses {
            step_local(&mut self.raw, m);
        }
        Ok(())
    }

    fn hand_out(&mut self, rd: Ready) {
        match &self.on_ready {
            Some(handler) => handler.call(rd),
            // The channel is empty and only the loop's holder fills it.
            None => {
                let _ = self.ready_tx.try_send(rd);
            }
        }
    }
}
