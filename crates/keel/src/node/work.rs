//! The work a node with asynchronous storage writes hands its storage and
//! apply threads: each `MsgStorageAppend` as an [`AppendWork`], each
//! `MsgStorageApply` as an [`ApplyWork`], owned by the thread that takes
//! it from a [`WorkQueue`] and read through the typed views of
//! [`crate::raw_node`] rather than by the message's wire fields.

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
}

impl<W> WorkQueue<'_, W> {
    /// Waits for the next work; [`Error::Stopped`] once the node stops.
    pub fn recv(&self) -> Result<W> {
        self.node.live()?;
        self.rx.recv().map_err(|_| Error::Stopped)
    }

    /// Async [`WorkQueue::recv`].
    pub async fn recv_async(&self) -> Result<W> {
        self.node.live()?;
        self.rx.recv_async().await.map_err(|_| Error::Stopped)
    }

    /// The next work, if some is waiting.
    pub fn try_recv(&self) -> Result<Option<W>> {
        self.node.live()?;
        match self.rx.try_recv() {
            Ok(w) => Ok(Some(w)),
            Err(flume::TryRecvError::Empty) => Ok(None),
            Err(flume::TryRecvError::Disconnected) => Err(Error::Stopped),
        }
    }
}
