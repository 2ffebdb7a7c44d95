//! The checks a peer's message passes before it reaches the state machine.
//! Peers are trusted to be crash-fault only (see ARCHITECTURE.md, "Trust
//! model"), but a message that no honest peer sends must never crash the
//! node or move its state: it is refused with a typed reason.

use super::Raft;
use crate::confchange::{self, Changer};
use crate::error::{Error, InvalidMessage, Result};
use crate::raftpb::{Message, MessageType};
use crate::storage::Storage;
use crate::tracker::ProgressTracker;
use crate::util::{NONE, is_local_msg, is_local_msg_target, is_response_msg};

impl<S: Storage> Raft<S> {
    /// Checks a message from the network (see `RawNode::step`).
    pub(crate) fn check_peer_message(&self, m: &Message) -> Result<()> {
        let Ok(t) = MessageType::try_from(m.msg_type) else {
            return Err(InvalidMessage::UnknownType(m.msg_type).into());
        };
        if is_local_msg(t) || t == MessageType::MsgForgetLeader {
            return Err(Error::StepLocalMsg);
        }
        let from = m.from;
        if from == self.id && m.to == self.id && is_response_msg(t) {
            return Err(InvalidMessage::LocalResponse(t, from).into());
        }
        // A forwarded transfer names the transferee as sender, which may be
        // the leader itself (it then ignores the request).
        let own = from == self.id && t != MessageType::MsgTransferLeader;
        if from == NONE || own || is_local_msg_target(from) {
            return Err(InvalidMessage::BadSender(t, from).into());
        }
        if is_response_msg(t) && !self.trk.progress.contains(from) {
            return Err(Error::StepPeerNotFound);
        }
        check_term(t, m)?;
        match t {
            MessageType::MsgProp if m.entries.is_empty() => {
                return Err(InvalidMessage::EmptyProposal(from).into());
            }
            MessageType::MsgApp => {
                if m.index == u64::MAX || m.commit == u64::MAX {
                    return Err(InvalidMessage::MaxIndex(t, from).into());
                }
                crate::log::validate_msg_app(m).map_err(|e| InvalidMessage::Append(from, e))?;
            }
            MessageType::MsgAppResp | MessageType::MsgHeartbeat
                if m.index == u64::MAX || m.reject_hint == u64::MAX || m.commit == u64::MAX =>
            {
                return Err(InvalidMessage::MaxIndex(t, from).into());
            }
            MessageType::MsgSnap => self.check_snapshot(m)?,
            _ => {}
        }
        Ok(())
    }

    /// A snapshot must be no newer than the message carrying it, and its
    /// configuration must restore (a dry run, on an empty tracker).
    fn check_snapshot(&self, m: &Message) -> Result<()> {
        let Some(s) = m.snapshot.as_deref() else {
            return Err(InvalidMessage::SnapshotTerm(m.from, 0, 0, m.term).into());
        };
        let (index, term) = (s.metadata.index, s.metadata.term);
        if index == u64::MAX {
            return Err(InvalidMessage::MaxIndex(MessageType::MsgSnap, m.from).into());
        }
        if term > m.term || (index == 0) != (term == 0) {
            return Err(InvalidMessage::SnapshotTerm(m.from, index, term, m.term).into());
        }
        let cs = &s.metadata.conf_state;
        let mut tracker = ProgressTracker::new(self.trk.max_inflight, self.trk.max_inflight_bytes);
        let changer = Changer { tracker: &tracker, last_index: index };
        let (cfg, prs) = confchange::restore(&changer, cs)
            .map_err(|e| InvalidMessage::SnapshotConfState(m.from, e))?;
        tracker.install(cfg, prs);
        // Restoring must give back the same configuration (no id twice, none
        // both voter and learner), and no member may be 0 or a thread id.
        let ids = cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing);
        let reserved =
            ids.chain(&cs.learners_next).any(|&id| id == NONE || is_local_msg_target(id));
        if reserved || !cs.equivalent(&tracker.conf_state()) {
            return Err(InvalidMessage::SnapshotMembers(m.from).into());
        }
        Ok(())
    }

    /// Checks what the storage threads (or this node's own responses) hand
    /// back (see `RawNode::step_local`).
    pub(crate) fn check_local_message(&self, m: &Message) -> Result<()> {
        let t = m.msg_type();
        let ok = match t {
            MessageType::MsgStorageAppendResp | MessageType::MsgStorageApplyResp => {
                is_local_msg_target(m.from)
            }
            _ => is_response_msg(t) && m.from == self.id && m.to == self.id,
        };
        if !ok {
            return Err(InvalidMessage::NotLocal(t, m.from, m.to).into());
        }
        // One below the applied index is a late answer for entries a
        // restored snapshot covers (raft keeps the higher index); one beyond
        // the commit index answers nothing raft handed out.
        let committed = self.raft_log.committed();
        if t == MessageType::MsgStorageApplyResp
            && let Some(last) = m.entries.last()
            && last.index > committed
        {
            return Err(InvalidMessage::AppliedBeyondCommit { index: last.index, committed }.into());
        }
        Ok(())
    }
}

/// Forwarded proposals and read requests travel without a term; every other
/// peer message carries one, and never `u64::MAX` (the next campaign would
/// overflow it).
fn check_term(t: MessageType, m: &Message) -> Result<()> {
    let termless = matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex);
    if termless && m.term != 0 {
        return Err(InvalidMessage::UnexpectedTerm(t, m.from, m.term).into());
    }
    if !termless && m.term == 0 {
        return Err(InvalidMessage::MissingTerm(t, m.from).into());
    }
    if m.term == u64::MAX {
        return Err(InvalidMessage::MaxTerm(t, m.from).into());
    }
    Ok(())
}
