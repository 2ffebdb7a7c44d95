//! The loop that owns the [`RawNode`], on the node's thread: take every
//! queued request, then offer a `Ready`; when the queue is empty, spin a
//! little before blocking, so that a caller's next request (typically the
//! next proposal) finds the loop awake and wakes no thread.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Request;
use super::reply::{SPIN_ROUNDS, YIELD_ROUNDS};
use super::work::{AppendWork, ApplyWork};
use crate::error::Error;
use crate::raftpb::MessageType;
use crate::raw_node::{RawNode, Ready};
use crate::storage::Storage;

/// The loop's state, owned by its thread.
pub(super) struct Loop<S: Storage> {
    pub(super) raw: RawNode<S>,
    pub(super) inbox: flume::Receiver<Request>,
    pub(super) ready_tx: flume::Sender<Ready>,
    pub(super) append_tx: flume::Sender<AppendWork>,
    pub(super) apply_tx: flume::Sender<ApplyWork>,
    pub(super) async_storage_writes: bool,
    /// A `Ready` was handed out and `advance` has not come (synchronous).
    pub(super) awaiting_advance: bool,
    /// Set once the loop takes no more requests (see [`Loop::run`]).
    pub(super) exited: Arc<AtomicBool>,
}

/// Requests taken from the queue before the loop offers a `Ready`, so that
/// a burst of proposals lands in one `Ready`.
const BATCH: usize = 256;

impl<S: Storage> Loop<S> {
    /// Runs until [`Request::Stop`] or until every handle is gone; then
    /// drops what is still queued, which answers those callers with
    /// [`Error::Stopped`]. `exited` is set before that last drain, and a
    /// caller that queues a request after it sees `exited` and drains the
    /// queue itself (`Node::send`), so no request is left unanswered.
    pub(super) fn run(mut self) {
        self.serve();
        self.exited.store(true, Ordering::SeqCst);
        self.inbox.drain().for_each(drop);
    }

    fn serve(&mut self) {
        self.offer_ready();
        while let Some(req) = self.next_request() {
            if !self.handle(req) {
                return;
            }
            for _ in 1..BATCH {
                match self.inbox.try_recv() {
                    Ok(req) => {
                        if !self.handle(req) {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            self.offer_ready();
        }
    }

    /// The next request: spin, then yield, then block. `None` once every
    /// handle is gone.
    fn next_request(&self) -> Option<Request> {
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            match self.inbox.try_recv() {
                Ok(req) => return Some(req),
                Err(flume::TryRecvError::Disconnected) => return None,
                Err(flume::TryRecvError::Empty) if round < SPIN_ROUNDS => spin_loop(),
                Err(flume::TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
        self.inbox.recv().ok()
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
            Request::StepLocal(m) => {
                let _ = raw.step_local(m);
            }
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
            Request::Taken => {}
            Request::Stop => return false,
        }
        true
    }

    /// Hands out the next `Ready` if there is one, the last was taken (and
    /// acknowledged, in synchronous mode), and the storage queues have room.
    fn offer_ready(&mut self) {
        if self.awaiting_advance || !self.ready_tx.is_empty() || !self.raw.has_ready() {
            return;
        }
        if self.async_storage_writes && (self.append_tx.is_full() || self.apply_tx.is_full()) {
            return;
        }
        let mut rd = self.raw.ready();
        if self.async_storage_writes {
            let mut rest = Vec::with_capacity(rd.messages.len());
            for m in rd.messages.drain(..) {
                // Only this loop sends on the queues, and it checked for room
                // (a Ready holds at most one message for each).
                match m.msg_type() {
                    MessageType::MsgStorageAppend => {
                        let _ = self.append_tx.try_send(AppendWork::new(m));
                    }
                    MessageType::MsgStorageApply => {
                        let _ = self.apply_tx.try_send(ApplyWork::new(m));
                    }
                    _ => rest.push(m),
                }
            }
            rd.messages = rest;
        } else {
            self.awaiting_advance = true;
        }
        // The channel is empty and only this loop fills it.
        let _ = self.ready_tx.try_send(rd);
    }
}
