//! The work a node with asynchronous storage writes hands its storage and
//! apply threads: each `MsgStorageAppend` as an [`AppendWork`], each
//! `MsgStorageApply` as an [`ApplyWork`], owned by the thread that takes
//! it from a [`WorkQueue`] and read through the typed views of
//! [`crate::raw_node`] rather than by the message's wire fields.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::raftpb::{Entry, HardState, Message, MessageType, Snapshot};
use crate::raw_node::{StorageAppend, StorageApply, StorageResponses};

use super::Node;

/// A `MsgStorageAppend` for the storage thread: persist its snapshot, hard
/// state and entries (in that order), then deliver its responses, those to
/// this node with [`Node::step_local`] and the others to peers.
#[derive(Debug)]
pub struct AppendWork {
    m: Message,
}

impl AppendWork {
    /// The work of `m`, a `MsgStorageAppend`.
    pub(super) fn new(m: Message) -> AppendWork {
        debug_assert_eq!(m.msg_type(), MessageType::MsgStorageAppend);
        AppendWork { m }
    }

    /// The borrowed view, as [`RawNode`](crate::RawNode) users read it.
    pub fn view(&self) -> StorageAppend<'_> {
        match StorageAppend::new(&self.m) {
            Some(view) => view,
            None => unreachable!("an AppendWork holds a MsgStorageAppend"),
        }
    }

    /// The hard state to persist, if it changed.
    pub fn hard_state(&self) -> Option<HardState> {
        self.view().hard_state()
    }

    /// The entries to append (replacing any conflicting suffix), after the
    /// snapshot if there is one.
    pub fn entries(&self) -> &[Entry] {
        self.view().entries()
    }

    /// The snapshot to persist, before the entries.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.view().snapshot()
    }

    /// Whether only the hard state is to be written (no entries, no
    /// snapshot): at most a new term, vote or commit index.
    pub(super) fn is_state_only(&self) -> bool {
        self.m.entries.is_empty() && self.m.snapshot.is_none()
    }

    /// Every response, in order, to deliver once everything above (and
    /// everything in earlier work) is durable.
    pub fn responses(&self) -> &[Message] {
        self.view().responses()
    }

    /// Moves the snapshot out (for a state machine to restore it), leaving
    /// none.
    pub fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.m.snapshot.take().filter(|s| !s.is_empty()).map(|s| *s)
    }

    /// Moves the responses out, split by destination (each part in order).
    pub fn take_responses(&mut self) -> StorageResponses {
        StorageResponses::take(&mut self.m)
    }

    /// The message itself.
    pub fn into_message(self) -> Message {
        self.m
    }
}

/// A `MsgStorageApply` for the apply thread: apply its committed entries in
/// order, then step its responses back with [`Node::step_local`].
#[derive(Debug)]
pub struct ApplyWork {
    m: Message,
}

impl ApplyWork {
    /// The work of `m`, a `MsgStorageApply`.
    pub(super) fn new(m: Message) -> ApplyWork {
        debug_assert_eq!(m.msg_type(), MessageType::MsgStorageApply);
        ApplyWork { m }
    }

    /// The borrowed view, as [`RawNode`](crate::RawNode) users read it.
    pub fn view(&self) -> StorageApply<'_> {
        match StorageApply::new(&self.m) {
            Some(view) => view,
            None => unreachable!("an ApplyWork holds a MsgStorageApply"),
        }
    }

    /// The committed entries to apply, in order.
    pub fn entries(&self) -> &[Entry] {
        self.view().entries()
    }

    /// The responses to step back once the entries are applied, in order.
    pub fn responses(&self) -> &[Message] {
        self.view().responses()
    }

    /// The committed entries and the responses, moved out.
    pub fn into_parts(self) -> (Vec<Entry>, Vec<Message>) {
        let Message { entries, responses, .. } = self.m;
        (entries, responses.into())
    }

    /// The message itself.
    pub fn into_message(self) -> Message {
        self.m
    }
}

/// The queue of work for a storage or apply thread ([`Node::append_work`],
/// [`Node::apply_work`]), in the order raft made it.
///
/// Waiting for work is not a request: [`WorkQueue::recv`] blocks until work
/// arrives or the node stops, whatever
/// [`NodeOptions::request_timeout`](super::NodeOptions::request_timeout)
/// says (an idle storage thread has not failed). A storage thread that holds
/// a clone of the [`Node`] keeps it alive: stop it with [`Node::stop`].
#[derive(Debug)]
pub struct WorkQueue<'a, W> {
    pub(super) node: &'a Node,
    pub(super) rx: &'a flume::Receiver<W>,
    pub(super) lane: &'a Lane,
}

impl<W> WorkQueue<'_, W> {
    /// Waits for the next work; [`Error::Stopped`] once the node stops.
    /// Calling it says that all work taken before is done.
    pub fn recv(&self) -> Result<W> {
        self.node.live()?;
        self.lane.finished();
        let w = self.rx.recv().map_err(|_| Error::Stopped)?;
        self.took();
        Ok(w)
    }

    /// Async [`WorkQueue::recv`].
    pub async fn recv_async(&self) -> Result<W> {
        self.node.live()?;
        self.lane.finished();
        let w = self.rx.recv_async().await.map_err(|_| Error::Stopped)?;
        self.took();
        Ok(w)
    }

    /// Counts an item taken, and wakes the loop if it held a `Ready` back
    /// for room in this queue: nothing else may come to wake it (an append
    /// of the hard state alone answers no one).
    fn took(&self) {
        self.lane.took();
        if self.lane.held_for_room.swap(false, Ordering::AcqRel) {
            self.node.ring();
        }
    }

    /// The next work, if some is waiting.
    pub fn try_recv(&self) -> Result<Option<W>> {
        self.node.live()?;
        match self.rx.try_recv() {
            Ok(w) => {
                self.took();
                Ok(Some(w))
            }
            Err(flume::TryRecvError::Empty) => Ok(None),
            Err(flume::TryRecvError::Disconnected) => Err(Error::Stopped),
        }
    }
}

/// How far the consumer of one work queue has got, so that the loop can
/// tell when it is idle: every item queued has been taken, and the
/// consumer came back to [`WorkQueue::recv`] after the last one.
#[derive(Debug, Default)]
pub(super) struct Lane {
    /// Items taken from the queue.
    taken: AtomicU64,
    /// `taken` when the consumer last came back to wait for more.
    done: AtomicU64,
    /// The loop holds a `Ready` back until this queue has room.
    pub(super) held_for_room: AtomicBool,
}

impl Lane {
    fn took(&self) {
        self.taken.fetch_add(1, Ordering::AcqRel);
    }

    fn finished(&self) {
        self.done.store(self.taken.load(Ordering::Acquire), Ordering::Release);
    }

    /// Whether all of the `queued` items are taken and done: work run now,
    /// elsewhere, comes after them. Only the loop's holder queues items.
    pub(super) fn idle(&self, queued: u64) -> bool {
        self.done.load(Ordering::Acquire) == queued
    }
}

/// Storage work run where it is made, under the loop's lock, whenever the
/// queue's consumer is idle: on a lightly loaded node a write then crosses
/// no thread on its way to disk, and a commit none on its way to the state
/// machine. Under load the consumer is busy and work queues (and batches)
/// as before. Set with [`NodeOptions::inline_storage`](super::NodeOptions).
///
/// Each queue must then have one consumer, which calls
/// [`WorkQueue::recv`] only once all work it took is done, responses
/// stepped back included. A method must not make a [`Node`] call that
/// waits for an answer (it holds the lock the answer needs); it gives work
/// it cannot do at once back, to be queued in order.
pub trait InlineStorage: Send + Sync {
    /// Does `w` as the storage thread would, sending its responses to
    /// peers, and returns those to this node, which the loop steps at
    /// once; or gives `w` back.
    fn append(&self, w: AppendWork) -> std::result::Result<Vec<Message>, AppendWork> {
        Err(w)
    }

    /// Applies `w` and returns its responses, which the loop steps at
    /// once; or gives `w` back.
    fn apply(&self, w: ApplyWork) -> std::result::Result<Vec<Message>, ApplyWork> {
        Err(w)
    }
}
