//! Log replication: what a leader sends (appends, snapshots, heartbeats) and
//! how a follower handles it, including restoring from a snapshot.

use bytes::Bytes;

use super::Raft;
use crate::confchange::{self, Changer};
use crate::error::{InvalidMessage, Result};
use crate::log::{EntryId, LogSlice};
use crate::raftpb::{Context, Message, MessageType, Responses, Snapshot};
use crate::state::StateType;
use crate::storage::{Storage, StorageError};
use crate::tracker::{ProgressState, ProgressTracker};
use crate::util::{NONE, payloads_size};

impl<S: Storage> Raft<S> {
    /// Sends an append (possibly empty, to carry the commit index) to `to`.
    pub(crate) fn send_append(&mut self, to: u64) -> bool {
        self.maybe_send_append(to, true)
    }

    /// Sends an append with new entries to `to` if its progress allows.
    /// Empty appends are sent only when `send_if_empty`. Falls back to a
    /// snapshot when the entries are compacted away. Returns whether a
    /// message was sent.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(at) = self.trk.progress.index_of(to) else { return false };
        self.maybe_send_append_at(at, send_if_empty)
    }

    /// [`maybe_send_append`](Raft::maybe_send_append) to the peer at
    /// position `at` of the progress map, which is looked up once: sending
    /// changes no membership.
    fn maybe_send_append_at(&mut self, at: usize, send_if_empty: bool) -> bool {
        let (to, pr) = self.trk.progress.nth(at);
        if pr.is_paused() {
            return false;
        }
        let next = pr.next;
        // A throttled replicating follower gets only empty appends, so that
        // one eventually gets through and clears the inflight window even if
        // every message in it was lost.
        let throttled = pr.state == ProgressState::Replicate && pr.inflights.full();

        let prev_index = next - 1;
        let Ok(prev_term) = self.raft_log.term(prev_index) else {
            // The log was compacted past what the follower has.
            return self.maybe_send_snapshot(to);
        };
        let ents = if throttled {
            Vec::new()
        } else {
            match self.raft_log.entries(next, self.max_msg_size) {
                Ok(e) => e,
                Err(_) => {
                    if !send_if_empty {
                        return false;
                    }
                    return self.maybe_send_snapshot(to);
                }
            }
        };
        if ents.is_empty() && !send_if_empty {
            return false;
        }

        let commit = self.raft_log.committed();
        let n = ents.len();
        let bytes = if n == 0 { 0 } else { payloads_size(&ents) };
        // Every field spelled out: `..Message::default()` would build and
        // drop a default entry vector on every append sent.
        self.send(Message {
            msg_type: MessageType::MsgApp as i32,
            to,
            from: NONE,
            term: 0,
            log_term: prev_term,
            index: prev_index,
            entries: ents,
            commit,
            vote: 0,
            snapshot: None,
            reject: false,
            reject_hint: 0,
            context: Context::default(),
            responses: Responses::default(),
        });
        let pr = self.trk.progress.nth_mut(at).1;
        pr.update_on_entries_send(n, bytes);
        pr.update_on_commit_send(commit);
        true
    }

    /// Sends the storage's snapshot to `to`, if it is active and a snapshot
    /// is available. Returns whether one was sent.
    pub(crate) fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.trk.progress.get(to) else { return false };
        if !pr.recent_active {
            debugf!(
                self.logger,
                "ignore sending snapshot to {:x} since it is not recently active",
                to
            );
            return false;
        }
        let snapshot = match self.raft_log.snapshot() {
            Ok(s) => s,
            Err(StorageError::SnapshotTemporarilyUnavailable) => {
                debugf!(
                    self.logger,
                    "{:x} failed to send snapshot to {:x} because snapshot is temporarily unavailable",
                    self.id,
                    to
                );
                return false;
            }
            Err(err) => panicf!(self.logger, "{}", err),
        };
        if snapshot.is_empty() {
            panicf!(self.logger, "need non-empty snapshot");
        }
        let (sindex, sterm) = (snapshot.metadata.index, snapshot.metadata.term);
        debugf!(
            self.logger,
            "{:x} [firstindex: {}, commit: {}] sent snapshot[index: {}, term: {}] to {:x} [{}]",
            self.id,
            self.raft_log.first_index(),
            self.raft_log.committed(),
            sindex,
            sterm,
            to,
            pr
        );
        let id = self.id;
        if let Some(pr) = self.trk.progress.get_mut(to) {
            pr.become_snapshot(sindex);
            debugf!(
                self.logger,
                "{:x} paused sending replication messages to {:x} [{}]",
                id,
                to,
                pr
            );
        }
        self.send(Message {
            to,
            msg_type: MessageType::MsgSnap as i32,
            snapshot: Some(Box::new(snapshot)),
            ..Message::default()
        });
        true
    }

    /// Sends a heartbeat carrying `min(match, commit)`: the leader must not
    /// move a follower's commit past what it knows the follower has.
    pub(crate) fn send_heartbeat(&mut self, to: u64, ctx: Bytes) {
        let Some(pr) = self.trk.progress.get(to) else { return };
        let commit = pr.matched.min(self.raft_log.committed());
        self.send(Message {
            to,
            msg_type: MessageType::MsgHeartbeat as i32,
            commit,
            context: ctx.into(),
            ..Message::default()
        });
        if let Some(pr) = self.trk.progress.get_mut(to) {
            pr.update_on_commit_send(commit);
        }
    }

    /// Sends appends to every peer that needs them.
    pub(crate) fn bcast_append(&mut self) {
        // Walks the progress map itself (sending changes no membership)
        // rather than looking each peer up.
        for i in 0..self.trk.progress.len() {
            let (id, pr) = self.trk.progress.nth(i);
            // A paused follower (its inflight window full, say) gets nothing
            // from `maybe_send_append`, which returns at once: skip the call,
            // as a leader broadcasts on every proposal.
            if id != self.id && !pr.is_paused() {
                self.maybe_send_append_at(i, true);
            }
        }
    }

    /// Sends heartbeats to every peer, with the context of the latest
    /// pending safe read, if any.
    pub(crate) fn bcast_heartbeat(&mut self) {
        let ctx = self.last_pending_read_ctx();
        self.bcast_heartbeat_with_ctx(ctx);
    }

    pub(crate) fn bcast_heartbeat_with_ctx(&mut self, ctx: Bytes) {
        for i in 0..self.peer_ids.len() {
            let id = self.peer_ids[i];
            if id != self.id {
                self.send_heartbeat(id, ctx.clone());
            }
        }
    }

    /// A follower's handling of an append.
    pub(crate) fn handle_append_entries(&mut self, mut m: Message) {
        let from = m.from;
        let (index, log_term, commit) = (m.index, m.log_term, m.commit);
        if index < self.raft_log.committed() {
            self.send(Message {
                to: from,
                msg_type: MessageType::MsgAppResp as i32,
                index: self.raft_log.committed(),
                ..Message::default()
            });
            return;
        }
        // The gateway (`RawNode::step`, `validate_msg_app`) refused
        // malformed appends; peers' messages reach the state machine only
        // through it.
        let slice = LogSlice::from_validated_msg_app(&mut m);
        if let Some(last_new) = self.raft_log.maybe_append(slice, commit) {
            self.send(Message {
                to: from,
                msg_type: MessageType::MsgAppResp as i32,
                index: last_new,
                ..Message::default()
            });
            return;
        }
        debugf!(
            self.logger,
            "{:x} [logterm: {}, index: {}] rejected MsgApp [logterm: {}, index: {}] from {:x}",
            self.id,
            self.raft_log.term_or_zero(index),
            index,
            log_term,
            index,
            from
        );
        // Hint the leader at the largest (index, term) where our logs may
        // match: an index at most the probe's with a term at most its term.
        // This skips our whole uncommitted tail of higher terms at once.
        let hint_index = index.min(self.raft_log.last_index());
        let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint_index, log_term);
        self.send(Message {
            to: from,
            msg_type: MessageType::MsgAppResp as i32,
            index,
            reject: true,
            reject_hint: hint_index,
            log_term: hint_term,
            ..Message::default()
        });
    }

    /// A follower's handling of a heartbeat. An honest leader's commit is at
    /// most our match index; one past our last index is refused.
    pub(crate) fn handle_heartbeat(&mut self, m: Message) -> Result<()> {
        let last = self.raft_log.last_index();
        if m.commit > last {
            return Err(InvalidMessage::PastLastIndex(
                MessageType::MsgHeartbeat,
                m.from,
                m.commit,
                last,
            )
            .into());
        }
        self.raft_log.commit_to(m.commit);
        self.send(Message {
            to: m.from,
            msg_type: MessageType::MsgHeartbeatResp as i32,
            context: m.context,
            ..Message::default()
        });
        Ok(())
    }

    pub(crate) fn handle_snapshot(&mut self, m: Message) {
        // A MsgSnap always carries a snapshot; treat a missing one as empty.
        let s = m.snapshot.map(|s| *s).unwrap_or_default();
        let (sindex, sterm) = (s.metadata.index, s.metadata.term);
        let restored = self.restore(s);
        infof!(
            self.logger,
            "{:x} [commit: {}] {} snapshot [index: {}, term: {}]",
            self.id,
            self.raft_log.committed(),
            if restored { "restored" } else { "ignored" },
            sindex,
            sterm
        );
        // Acknowledge up to what we now hold: the whole log after a restore,
        // else what we had already committed.
        let index = if restored { self.raft_log.last_index() } else { self.raft_log.committed() };
        self.send(Message {
            to: m.from,
            msg_type: MessageType::MsgAppResp as i32,
            index,
            ..Message::default()
        });
    }

    /// Restores the log and the configuration from a snapshot. Returns false
    /// when the snapshot is ignored: obsolete, not for us, or already matched
    /// by our log (then only the commit index moves).
    pub(crate) fn restore(&mut self, s: Snapshot) -> bool {
        if s.metadata.index <= self.raft_log.committed() {
            return false;
        }
        if self.state != StateType::Follower {
            // Defense in depth: only followers restore. Should never happen.
            warnf!(
                self.logger,
                "{:x} attempted to restore snapshot as leader; should never happen",
                self.id
            );
            self.become_follower(self.term + 1, NONE);
            return false;
        }
        // More defense in depth: the recipient must be in the configuration
        // (learners_next need not be checked: they are in voters_outgoing).
        let cs = &s.metadata.conf_state;
        let found = cs
            .voters
            .iter()
            .chain(cs.learners.iter())
            .chain(cs.voters_outgoing.iter())
            .any(|&id| id == self.id);
        if !found {
            warnf!(
                self.logger,
                "{:x} attempted to restore snapshot but it is not in the ConfState {}; should never happen",
                self.id,
                super::configuration::conf_state_text(cs)
            );
            return false;
        }

        let id = EntryId { term: s.metadata.term, index: s.metadata.index };
        if self.raft_log.match_term(id) {
            let last = self.raft_log.last_entry_id();
            infof!(
                self.logger,
                "{:x} [commit: {}, lastindex: {}, lastterm: {}] fast-forwarded commit to snapshot [index: {}, term: {}]",
                self.id,
                self.raft_log.committed(),
                last.index,
                last.term,
                id.index,
                id.term
            );
            self.raft_log.commit_to(s.metadata.index);
            return false;
        }

        let cs = s.metadata.conf_state.clone();
        self.restored_snapshot_index = s.metadata.index;
        self.raft_log.restore(s);

        // Rebuild the configuration from the snapshot, from scratch.
        self.trk = ProgressTracker::new(self.trk.max_inflight, self.trk.max_inflight_bytes);
        let changer = Changer { tracker: &self.trk, last_index: self.raft_log.last_index() };
        let (cfg, prs) = match confchange::restore(&changer, &cs) {
            Ok(v) => v,
            // A bug in our conf change handling, or a corrupt snapshot.
            Err(err) => panicf!(self.logger, "unable to restore config {:?}: {}", cs, err),
        };
        let restored = self.switch_to_config(cfg, prs);
        self.assert_conf_states_equivalent(&cs, &restored);

        let last = self.raft_log.last_entry_id();
        infof!(
            self.logger,
            "{:x} [commit: {}, lastindex: {}, lastterm: {}] restored snapshot [index: {}, term: {}]",
            self.id,
            self.raft_log.committed(),
            last.index,
            last.term,
            id.index,
            id.term
        );
        true
    }
}
