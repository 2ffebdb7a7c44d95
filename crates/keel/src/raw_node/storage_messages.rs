//! Typed views of the messages a node with asynchronous storage writes hands
//! its storage threads, so that every append or apply thread reads them the
//! same way instead of decoding the wire fields by hand.
//!
//! A `MsgStorageAppend` spreads its hard state over `term`, `vote` and
//! `commit` (all three or none) and carries, in `responses`, both messages
//! to step back into this node and messages to send to peers; a
//! `MsgStorageApply` carries committed entries and the acknowledgement to
//! step back once they are applied.

use crate::raftpb::{Entry, HardState, Message, MessageType, Snapshot};

/// A `MsgStorageAppend`: what the append thread must make durable, and the
/// responses to deliver once it is.
#[derive(Clone, Copy, Debug)]
pub struct StorageAppend<'a> {
    m: &'a Message,
}

impl<'a> StorageAppend<'a> {
    /// The view of `m`, if it is a `MsgStorageAppend`.
    pub fn new(m: &'a Message) -> Option<StorageAppend<'a>> {
        (m.msg_type() == MessageType::MsgStorageAppend).then_some(StorageAppend { m })
    }

    /// The hard state to persist, if it changed.
    pub fn hard_state(&self) -> Option<HardState> {
        let hs = HardState { term: self.m.term, vote: self.m.vote, commit: self.m.commit };
        (!hs.is_empty()).then_some(hs)
    }

    /// The entries to append (replacing any conflicting suffix), after the
    /// snapshot if there is one.
    pub fn entries(&self) -> &'a [Entry] {
        &self.m.entries
    }

    /// The snapshot to persist, before the entries.
    pub fn snapshot(&self) -> Option<&'a Snapshot> {
        self.m.snapshot.as_deref().filter(|s| !s.is_empty())
    }

    /// Every response, in order: deliver them only once everything above
    /// (and everything in earlier `MsgStorageAppend`s) is durable.
    pub fn responses(&self) -> &'a [Message] {
        &self.m.responses
    }

    /// The responses to step back into this node with
    /// [`RawNode::step_local`](crate::RawNode::step_local), in order.
    pub fn local_responses(&self) -> impl Iterator<Item = &'a Message> + 'a {
        let id = self.m.from;
        self.m.responses.iter().filter(move |r| r.to == id)
    }

    /// The responses to send to peers, in order.
    pub fn peer_responses(&self) -> impl Iterator<Item = &'a Message> + 'a {
        let id = self.m.from;
        self.m.responses.iter().filter(move |r| r.to != id)
    }
}

/// A `MsgStorageApply`: committed entries for the apply thread, and the
/// acknowledgement to step back once they are applied.
#[derive(Clone, Copy, Debug)]
pub struct StorageApply<'a> {
    m: &'a Message,
}

impl<'a> StorageApply<'a> {
    /// The view of `m`, if it is a `MsgStorageApply`.
    pub fn new(m: &'a Message) -> Option<StorageApply<'a>> {
        (m.msg_type() == MessageType::MsgStorageApply).then_some(StorageApply { m })
    }

    /// The committed entries to apply, in order.
    pub fn entries(&self) -> &'a [Entry] {
        &self.m.entries
    }

    /// The responses to step back into this node with
    /// [`RawNode::step_local`](crate::RawNode::step_local) once the entries
    /// are applied, in order.
    pub fn responses(&self) -> &'a [Message] {
        &self.m.responses
    }
}

/// A storage message's responses, moved out of it and split by destination
/// (each part in order), for a thread that owns the message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageResponses {
    /// To step back into this node with
    /// [`RawNode::step_local`](crate::RawNode::step_local).
    pub local: Vec<Message>,
    /// To send to peers.
    pub peers: Vec<Message>,
}

impl StorageResponses {
    /// Moves the responses out of a `MsgStorageAppend` or `MsgStorageApply`
    /// (any other message has none), leaving its `responses` empty.
    pub fn take(m: &mut Message) -> StorageResponses {
        let id = m.from;
        let (local, peers) = std::mem::take(&mut m.responses).into_iter().partition(|r| r.to == id);
        StorageResponses { local, peers }
    }
}
