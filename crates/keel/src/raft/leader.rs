//! The leader's half of `step`: proposals, acknowledgements, heartbeats,
//! snapshot reports, unreachable peers and leadership transfer.

use super::Raft;
use crate::error::{DropReason, Error, InvalidMessage, Result};
use crate::quorum::AckedIndexer;
use crate::raftpb::{Entry, Message, MessageType};
use crate::state::StateType;
use crate::storage::Storage;
use crate::tracker::{ProgressMap, ProgressState};
use crate::util::NONE;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_leader(&mut self, mut m: Message) -> Result<()> {
        // These message types need no progress for m.from.
        match m.msg_type() {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                if !self.trk.quorum_active() {
                    warnf!(
                        self.logger,
                        "{:x} stepped down to follower since quorum is not active",
                        self.id
                    );
                    self.become_follower(self.term, NONE);
                }
                // Mark everyone but ourselves inactive for the next check.
                let id = self.id;
                for (&peer, pr) in self.trk.progress.iter_mut() {
                    if peer != id {
                        pr.recent_active = false;
                    }
                }
                return Ok(());
            }
            MessageType::MsgProp => {
                return self.handle_proposal(&mut m);
            }
            MessageType::MsgReadIndex => {
                self.leader_read_index(m);
                return Ok(());
            }
            MessageType::MsgForgetLeader => return Ok(()), // a no-op on the leader
            _ => {}
        }

        // All other message types need the sender's progress.
        if !self.trk.progress.contains(m.from) {
            debugf!(self.logger, "{:x} no progress available for {:x}", self.id, m.from);
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgAppResp => {
                let last = self.raft_log.last_index();
                if !m.reject && m.index > last {
                    // No follower holds entries we never sent.
                    let t = MessageType::MsgAppResp;
                    return Err(InvalidMessage::PastLastIndex(t, m.from, m.index, last).into());
                }
                self.handle_append_response(&m);
            }
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(m),
            MessageType::MsgSnapStatus => self.handle_snap_status(&m),
            MessageType::MsgUnreachable => {
                let id = self.id;
                if let Some(pr) = self.trk.progress.get_mut(m.from) {
                    // In optimistic replication, an unreachable peer has very
                    // likely lost an append: fall back to probing.
                    if pr.state == ProgressState::Replicate {
                        pr.become_probe();
                    }
                    debugf!(
                        self.logger,
                        "{:x} failed to send message to {:x} because it is unreachable [{}]",
                        id,
                        m.from,
                        pr
                    );
                }
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(&m),
            _ => {}
        }
        Ok(())
    }

    /// Appends proposed entries (refusing invalid configuration changes in
    /// place) and broadcasts them.
    fn handle_proposal(&mut self, m: &mut Message) -> Result<()> {
        self.propose_entries(&mut m.entries)
    }

    /// What stepping a `MsgProp` carrying `entries` does on a leader; the
    /// entries are moved out (into the log, or dropped with the proposal),
    /// leaving the vector empty for the caller to reuse.
    pub(crate) fn propose_entries(&mut self, entries: &mut Vec<Entry>) -> Result<()> {
        let res = self.propose_entries_checked(entries);
        entries.clear();
        res
    }

    fn propose_entries_checked(&mut self, entries: &mut Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            panicf!(self.logger, "{:x} stepped empty MsgProp", self.id);
        }
        if !self.trk.progress.contains(self.id) {
            // This node was removed while leading: drop new proposals.
            return Err(Error::ProposalDropped(DropReason::NotMember));
        }
        if self.lead_transferee != NONE {
            debugf!(
                self.logger,
                "{:x} [term {}] transfer leadership to {:x} is in progress; dropping proposal",
                self.id,
                self.term,
                self.lead_transferee
            );
            return Err(Error::ProposalDropped(DropReason::Transferring));
        }
        self.check_proposed_conf_changes(entries)?;
        if !self.append_entry_from(entries) {
            return Err(Error::ProposalDropped(DropReason::QuotaExceeded));
        }
        self.bcast_append();
        Ok(())
    }

    /// Handles a follower's acknowledgement or rejection of an append.
    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let id = self.id;
        let Some(pr) = self.trk.progress.get_mut(from) else { return };
        pr.recent_active = true;

        if m.reject {
            // reject_hint is where the follower suggests probing next, and
            // log_term its term there (0 from old versions or empty logs).
            debugf!(
                self.logger,
                "{:x} received MsgAppResp(rejected, hint: (index {}, term {})) from {:x} for index {}",
                id,
                m.reject_hint,
                m.log_term,
                from,
                m.index
            );
            let mut next_probe_idx = m.reject_hint;
            if m.log_term > 0 {
                // Skip every index whose term in our log exceeds the
                // follower's term at the hint: a probe there must fail too.
                // This probes at most once per term of our log.
                next_probe_idx = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term).0;
            }
            let Some(pr) = self.trk.progress.get_mut(from) else { return };
            if pr.maybe_decr_to(m.index, next_probe_idx) {
                debugf!(self.logger, "{:x} decreased progress of {:x} to [{}]", id, from, pr);
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }

        // Update the progress if the response raises the match, or if it can
        // move a probing peer back to replicating (a snapshot-state peer
        // cannot: its pending snapshot must land first).
        let updated = pr.maybe_update(m.index);
        if !(updated || (pr.matched == m.index && pr.state == ProgressState::Probe)) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched + 1 >= self.raft_log.first_index() => {
                // Whatever index the snapshot landed at, if the log can now
                // catch the follower up, resume replication (through probe,
                // which accounts for the snapshot).
                debugf!(
                    self.logger,
                    "{:x} recovered from needing snapshot, resumed sending replication messages to {:x} [{}]",
                    id,
                    from,
                    pr
                );
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
            ProgressState::Snapshot => {}
        }

        if self.maybe_commit() {
            // The commit index moved in this term: pending reads can go.
            self.release_pending_read_index_messages();
            self.bcast_append();
        } else if id != from
            && self
                .trk
                .progress
                .get(from)
                .is_some_and(|pr| pr.can_bump_commit(self.raft_log.committed()))
        {
            // The follower may lack the latest commit index; a message now
            // beats waiting for the next heartbeat.
            self.send_append(from);
        }
        // The window may now allow more (size-limited) appends at once.
        if id != from {
            while self.maybe_send_append(from, false) {}
        }
        // A leadership transfer waits for the target to catch up.
        let matched = self.trk.progress.get(from).map_or(0, |pr| pr.matched);
        if from == self.lead_transferee && matched == self.raft_log.last_index() {
            infof!(
                self.logger,
                "{:x} sent MsgTimeoutNow to {:x} after received MsgAppResp",
                id,
                from
            );
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        let Some(pr) = self.trk.progress.get_mut(from) else { return };
        pr.recent_active = true;
        pr.msg_app_flow_paused = false;
        // A paused (full) follower still gets an empty append, so that it
        // recovers if everything in flight was lost; a caught-up follower in
        // probe state gets one so that it can move back to replicating.
        if pr.matched < last_index || pr.state == ProgressState::Probe {
            self.send_append(from);
        }
        if self.read_only.option != crate::config::ReadOnlyOption::Safe || m.context.is_empty() {
            return;
        }
        self.handle_read_ack(&m);
    }

    fn handle_snap_status(&mut self, m: &Message) {
        let id = self.id;
        let Some(pr) = self.trk.progress.get_mut(m.from) else { return };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        if !m.reject {
            pr.become_probe();
            debugf!(
                self.logger,
                "{:x} snapshot succeeded, resumed sending replication messages to {:x} [{}]",
                id,
                m.from,
                pr
            );
        } else {
            // Clear the pending snapshot first, or we would probe from an
            // index the follower never reached.
            pr.pending_snapshot = 0;
            pr.become_probe();
            debugf!(
                self.logger,
                "{:x} snapshot failed, resumed sending replication messages to {:x} [{}]",
                id,
                m.from,
                pr
            );
        }
        // After a success, wait for the follower's MsgAppResp before the next
        // append; after a failure, wait a heartbeat before retrying.
        pr.msg_app_flow_paused = true;
    }

    fn handle_transfer_leader(&mut self, m: &Message) {
        let Some(pr) = self.trk.progress.get(m.from) else { return };
        if pr.is_learner {
            debugf!(self.logger, "{:x} is learner. Ignored transferring leadership", self.id);
            return;
        }
        let transferee = m.from;
        let last_transferee = self.lead_transferee;
        if last_transferee != NONE {
            if last_transferee == transferee {
                infof!(
                    self.logger,
                    "{:x} [term {}] transfer leadership to {:x} is in progress, ignores request to same node {:x}",
                    self.id,
                    self.term,
                    transferee,
                    transferee
                );
                return;
            }
            self.abort_leader_transfer();
            infof!(
                self.logger,
                "{:x} [term {}] abort previous transferring leadership to {:x}",
                self.id,
                self.term,
                last_transferee
            );
        }
        if transferee == self.id {
            debugf!(
                self.logger,
                "{:x} is already leader. Ignored transferring leadership to self",
                self.id
            );
            return;
        }
        infof!(
            self.logger,
            "{:x} [term {}] starts to transfer leadership to {:x}",
            self.id,
            self.term,
            transferee
        );
        // The transfer should finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = transferee;
        let matched = self.trk.progress.get(transferee).map_or(0, |pr| pr.matched);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
            infof!(
                self.logger,
                "{:x} sends MsgTimeoutNow to {:x} immediately as {:x} already has up-to-date log",
                self.id,
                transferee,
                transferee
            );
        } else {
            self.send_append(transferee);
        }
    }

    /// Whether stepping this leader's own append acknowledgements one by one,
    /// up to the last at `index`, has the same effect as stepping only that
    /// last one. `RawNode::advance` uses it to skip the others: a leader
    /// queues one acknowledgement per proposal, and each would otherwise
    /// recompute the committed index.
    ///
    /// For an acknowledgement from itself, `handle_append_response` marks
    /// the leader active, raises its match (monotone), frees its inflights
    /// up to the index (it has none), may commit, and checks a transfer to
    /// itself (never in progress). Only committing depends on the
    /// intermediate indexes, so the answer is yes when even the last cannot
    /// move the commit index. Keep this in step with `handle_append_response`.
    pub(crate) fn own_acks_coalesce(&self, index: u64) -> bool {
        if self.state != StateType::Leader || self.lead_transferee == self.id {
            return false;
        }
        let Some(pr) = self.trk.progress.get(self.id) else { return false };
        if pr.state != ProgressState::Replicate {
            return false;
        }
        let acked = OwnAckAt { progress: &self.trk.progress, id: self.id, index };
        self.trk.config.voters.committed_index(&acked) <= self.raft_log.committed()
    }
}

/// The acknowledged indexes as they would be after the leader `id`
/// acknowledged `index` itself.
struct OwnAckAt<'a> {
    progress: &'a ProgressMap,
    id: u64,
    index: u64,
}

impl AckedIndexer for OwnAckAt<'_> {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        let acked = self.progress.acked_index(voter_id);
        if voter_id == self.id { acked.map(|matched| matched.max(self.index)) } else { acked }
    }
}
