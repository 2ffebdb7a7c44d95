//! The Raft state machine: roles, stepping, elections, replication,
//! configuration changes and reads, as etcd-raft's `raft.go` does them.
//!
//! # Layout
//! - `mod.rs` (this file): the `Raft` struct, construction, the common
//!   prefix of `step` (term handling, votes, local storage acknowledgements),
//!   role transitions and ticks.
//! - `election`: campaigning, polling, pre-vote, and the candidate's step.
//! - `replication`: sending appends, snapshots and heartbeats, and the
//!   follower's handling of them.
//! - `leader`, `follower`: the role-specific halves of `step`.
//! - `configuration`: applying configuration changes and switching to them.
//! - `reads`: ReadIndex (safe and lease-based).
//!
//! The struct keeps etcd's flat layout (rather than per-role enums) because
//! etcd's logic resets and consults leader-only fields from every role; the
//! flat shape keeps each rule recognisable next to its Go counterpart.

mod configuration;
mod election;
mod follower;
mod gateway;
mod leader;
mod reads;
mod replication;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;

use crate::confchange::{self, Changer};
use crate::config::{Config, ReadOnlyOption};
use crate::error::{Error, Result};
use crate::log::{EntryId, RaftLog};
use crate::logger::Logger;
use crate::raftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
use crate::state::{ReadState, SoftState, StateType};
use crate::storage::Storage;
use crate::tracker::{Inflights, Progress, ProgressTracker};
use crate::util::{NO_LIMIT, NONE, payloads_size};

pub(crate) use configuration::{conf_change_defect, conf_change_to_msg};
pub(crate) use election::CampaignType;
pub(crate) use reads::ReadOnly;

/// A small, fast, seedable generator (SplitMix64) for randomized election
/// timeouts. The core must not draw unseeded randomness.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)`; `n` must be positive.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The Raft state machine of one node. The application drives it through
/// [`RawNode`](crate::RawNode).
pub(crate) struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) read_states: Vec<ReadState>,
    /// The index of the last snapshot restored from a peer (0: none): a
    /// committed conf change at or below it is already in the configuration.
    pub(crate) restored_snapshot_index: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) max_msg_size: u64,
    pub(crate) max_uncommitted_size: u64,
    pub(crate) trk: ProgressTracker,
    /// The ids in `trk`'s progress map, sorted; kept in step with the map so
    /// that broadcasts can walk peers without allocating.
    pub(crate) peer_ids: Vec<u64>,
    pub(crate) state: StateType,
    pub(crate) is_learner: bool,
    /// Messages to send right away; they target other nodes.
    pub(crate) msgs: Vec<Message>,
    /// Messages to send only once the current unstable state (term, vote,
    /// entries, snapshot) is durable: `MsgAppResp`, `MsgVoteResp` and
    /// `MsgPreVoteResp`. They may target this node itself.
    pub(crate) msgs_after_append: Vec<Message>,
    /// Whether this leader's acknowledgements of its own appends are
    /// recorded in `own_acks` rather than as messages: set by a
    /// synchronous-mode `RawNode`, which steps them itself on `advance`.
    pub(crate) own_acks_as_indexes: bool,
    /// With `own_acks_as_indexes`: the leader's acknowledgements of its own
    /// appends that follow `msgs_after_append` in order, one per append, as
    /// the indexes they acknowledge, all from term `own_acks_term`. Each
    /// stands for the `MsgAppResp` that `append_entry_from` would otherwise
    /// queue (see `own_ack`); one proposal then costs an index, not a
    /// message to build, move and drop.
    pub(crate) own_acks: Vec<u64>,
    pub(crate) own_acks_term: u64,
    pub(crate) lead: u64,
    /// The target of a leadership transfer in progress, or `NONE`.
    pub(crate) lead_transferee: u64,
    /// An index at or above the latest pending configuration change; new
    /// changes wait until the leader has applied past it.
    pub(crate) pending_conf_index: u64,
    pub(crate) disable_conf_change_validation: bool,
    /// Payload bytes of the leader's uncommitted tail (an estimate that never
    /// overestimates); kept only under a quota (`uncommitted_size_bounded`).
    pub(crate) uncommitted_size: u64,
    pub(crate) read_only: ReadOnly,
    pub(crate) election_elapsed: usize,
    pub(crate) heartbeat_elapsed: usize,
    pub(crate) check_quorum: bool,
    pub(crate) pre_vote: bool,
    pub(crate) heartbeat_timeout: usize,
    pub(crate) election_timeout: usize,
    /// Drawn from `[election_timeout, 2*election_timeout)` on every reset.
    pub(crate) randomized_election_timeout: usize,
    pub(crate) disable_proposal_forwarding: bool,
    pub(crate) step_down_on_removal: bool,
    pub(crate) logger: Arc<dyn Logger>,
    /// Read requests that reached a new leader before it committed an entry
    /// in its term; answered once it has.
    pub(crate) pending_read_index_messages: Vec<Message>,
    rng: SplitMix64,
    /// Test-only: the bug keel-sim planted, if any (see `PlantedBug`).
    #[cfg(feature = "testing")]
    pub(crate) planted_bug: Option<crate::config::PlantedBug>,
}

impl<S: Storage> Raft<S> {
    /// Builds the state machine from its configuration and storage,
    /// restoring term, vote, commit and membership from the storage.
    pub(crate) fn new(c: &Config, storage: S) -> Result<Raft<S>> {
        c.validate()?;
        let logger = c.logger.clone();
        let (hs, cs) = storage.initial_state()?;
        let raft_log = RaftLog::with_size(
            storage,
            logger.clone(),
            c.effective_max_committed_size_per_ready(),
        )?;
        let mut r = Raft {
            id: c.id,
            term: 0,
            vote: NONE,
            read_states: Vec::new(),
            restored_snapshot_index: 0,
            raft_log,
            max_msg_size: c.max_size_per_msg,
            max_uncommitted_size: c.effective_max_uncommitted_size(),
            trk: ProgressTracker::new(c.max_inflight_msgs, c.effective_max_inflight_bytes()),
            peer_ids: Vec::new(),
            state: StateType::Follower,
            is_learner: false,
            msgs: Vec::new(),
            msgs_after_append: Vec::new(),
            own_acks_as_indexes: false,
            own_acks: Vec::new(),
            own_acks_term: 0,
            lead: NONE,
            lead_transferee: NONE,
            pending_conf_index: 0,
            disable_conf_change_validation: c.disable_conf_change_validation,
            uncommitted_size: 0,
            read_only: ReadOnly::new(c.read_only_option),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            check_quorum: c.check_quorum,
            pre_vote: c.pre_vote,
            heartbeat_timeout: c.heartbeat_tick,
            election_timeout: c.election_tick,
            randomized_election_timeout: c.election_tick,
            disable_proposal_forwarding: c.disable_proposal_forwarding,
            step_down_on_removal: c.step_down_on_removal,
            logger,
            pending_read_index_messages: Vec::new(),
            rng: SplitMix64::new(c.seed ^ c.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            #[cfg(feature = "testing")]
            planted_bug: c.planted_bug,
        };

        let last_id = r.raft_log.last_entry_id();
        let (cfg, prs) =
            confchange::restore(&Changer { tracker: &r.trk, last_index: last_id.index }, &cs)?;
        let restored = r.switch_to_config(cfg, prs);
        if !cs.equivalent(&restored) {
            return Err(Error::ConfStateNotRestorable {
                stored: Box::new(cs),
                restored: Box::new(restored),
            });
        }

        if !hs.is_empty() {
            r.load_state(&hs)?;
        }
        if c.applied > 0 {
            let (lo, hi) = (r.raft_log.applied(), r.raft_log.committed());
            if c.applied < lo || c.applied > hi {
                return Err(Error::AppliedOutOfRange { applied: c.applied, lo, hi });
            }
            r.raft_log.applied_to(c.applied, 0);
        }
        r.become_follower(r.term, NONE);

        let peers: Vec<String> = r.trk.voter_nodes().iter().map(|id| format!("{id:x}")).collect();
        infof!(
            r.logger,
            "newRaft {:x} [peers: [{}], term: {}, commit: {}, applied: {}, lastindex: {}, lastterm: {}]",
            r.id,
            peers.join(","),
            r.term,
            r.raft_log.committed(),
            r.raft_log.applied(),
            last_id.index,
            last_id.term
        );
        Ok(r)
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState { lead: self.lead, raft_state: self.state }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.raft_log.committed() }
    }

    /// Queues `m` for sending, filling in `from` and the term. Responses that
    /// vote (on an election or an append) wait until the state they depend on
    /// is durable; everything else goes out with the next `Ready`.
    ///
    /// Always inlined: a call moves the 120-byte message into the callee
    /// before it is moved again into the queue, for every message sent.
    #[inline(always)]
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == NONE {
            m.from = self.id;
        }
        let t = m.msg_type();
        if matches!(
            t,
            MessageType::MsgVote
                | MessageType::MsgVoteResp
                | MessageType::MsgPreVote
                | MessageType::MsgPreVoteResp
        ) {
            if m.term == 0 {
                // Campaign messages carry the term campaigned for (or granted).
                panicf!(self.logger, "term should be set when sending {:?}", t);
            }
        } else {
            if m.term != 0 {
                panicf!(
                    self.logger,
                    "term should not be set when sending {:?} (was {})",
                    t,
                    m.term
                );
            }
            // Proposals and read requests are forwarded as if local: no term.
            if t != MessageType::MsgProp && t != MessageType::MsgReadIndex {
                m.term = self.term;
            }
        }
        // PLANTED BUG (testing only): a peer's append acknowledgement skips the wait.
        let ack_early =
            planted_bug!(self, AckBeforePersist) && t == MessageType::MsgAppResp && m.to != self.id;
        if matches!(
            t,
            MessageType::MsgAppResp | MessageType::MsgVoteResp | MessageType::MsgPreVoteResp
        ) && !ack_early
        {
            // Acknowledging an append or granting a vote must wait until the
            // entries or vote are durable (Raft thesis 3.8); rejections wait
            // too, erring on the side of safety as etcd does.
            self.own_acks_to_messages();
            self.msgs_after_append.push(m);
        } else {
            if m.to == self.id {
                panicf!(self.logger, "message should not be self-addressed when sending {:?}", t);
            }
            self.msgs.push(m);
        }
    }

    /// Applies entries up to `index` (of encoded size `size`); a leader in an
    /// auto-leave joint configuration proposes leaving it once applied far
    /// enough.
    pub(crate) fn applied_to(&mut self, index: u64, size: u64) {
        let old_applied = self.raft_log.applied();
        let new_applied = index.max(old_applied);
        self.raft_log.applied_to(new_applied, size);

        if self.trk.config.auto_leave
            && new_applied >= self.pending_conf_index
            && self.state == StateType::Leader
        {
            // An empty V2 change leaves the joint configuration. Its payload
            // is empty, so the uncommitted-size quota never refuses it; a
            // leadership transfer may, and then it is retried on the next
            // application.
            let m = configuration::conf_change_to_msg(None);
            match self.step(m) {
                Err(err) => debugf!(
                    self.logger,
                    "not initiating automatic transition out of joint configuration {}: {}",
                    self.trk.config,
                    err
                ),
                Ok(()) => infof!(
                    self.logger,
                    "initiating automatic transition out of joint configuration {}",
                    self.trk.config
                ),
            }
        }
    }

    /// The application applied committed entries up to `index`, of encoded
    /// size `size` and payload size `payloads`: advance the applied index and
    /// release their share of the uncommitted-size quota.
    pub(crate) fn entries_applied(&mut self, index: u64, size: u64, payloads: u64) {
        self.applied_to(index, size);
        self.reduce_uncommitted_size(payloads);
    }

    pub(crate) fn applied_snap(&mut self, snap: &Snapshot) {
        let index = snap.metadata.index;
        self.raft_log.stable_snap_to(index);
        self.applied_to(index, 0);
    }

    /// Advances the commit index to what a quorum has acknowledged, if that
    /// entry is from the current term. Only a leader calls this.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let committed = self.trk.committed();
        // PLANTED BUG (testing only): take the entry's own term, so that any
        // entry a quorum holds commits, whatever its term (figure 8).
        let term = if planted_bug!(self, CommitPreviousTermByCount) {
            self.raft_log.term_or_zero(committed)
        } else {
            self.term
        };
        self.raft_log.maybe_commit(EntryId { term, index: committed })
    }

    /// Resets the volatile state for `term` (clearing the vote on a term
    /// change) and every peer's progress.
    pub(crate) fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = NONE;
        }
        self.lead = NONE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        let last_index = self.raft_log.last_index();
        let (max_inflight, max_bytes) = (self.trk.max_inflight, self.trk.max_inflight_bytes);
        let id = self.id;
        for (&peer, pr) in self.trk.progress.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = Progress::new(last_index + 1, Inflights::new(max_inflight, max_bytes));
            pr.is_learner = is_learner;
            if peer == id {
                pr.matched = last_index;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only = ReadOnly::new(self.read_only.option);
    }

    /// Appends proposed entries to the leader's log, assigning term and
    /// index. Returns false (dropping them) when they would overflow the
    /// uncommitted-size quota.
    pub(crate) fn append_entry(&mut self, mut es: Vec<Entry>) -> bool {
        self.append_entry_from(&mut es)
    }

    /// [`append_entry`](Raft::append_entry), moving the entries out of `es`
    /// when they are appended (left as they are when dropped).
    #[inline]
    pub(crate) fn append_entry_from(&mut self, es: &mut Vec<Entry>) -> bool {
        let li = self.raft_log.last_index();
        for (i, e) in es.iter_mut().enumerate() {
            e.term = self.term;
            e.index = li + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(es) {
            warnf!(
                self.logger,
                "{:x} appending new entries to log would exceed uncommitted entry size limit; dropping proposal",
                self.id
            );
            return false;
        }
        let li = self.raft_log.append_from(es);
        // The leader acknowledges its own entries once they are durable: this
        // response is delivered back to it after the next storage write.
        // (What `send` makes of it, built complete: one per proposal.)
        if self.own_acks_as_indexes {
            if self.own_acks_term != self.term {
                self.own_acks_to_messages();
                self.own_acks_term = self.term;
            }
            self.own_acks.push(li);
        } else {
            self.msgs_after_append.push(self.own_ack(self.term, li));
        }
        true
    }

    /// The leader's acknowledgement, at `term`, of its own entries up to
    /// `index` once they are durable.
    pub(crate) fn own_ack(&self, term: u64, index: u64) -> Message {
        Message {
            to: self.id,
            from: self.id,
            term,
            msg_type: MessageType::MsgAppResp as i32,
            index,
            ..Message::default()
        }
    }

    /// Turns the acknowledgements recorded in `own_acks` into the messages
    /// they stand for, at the end of `msgs_after_append`, so that what is
    /// queued after them keeps its place.
    #[inline]
    pub(crate) fn own_acks_to_messages(&mut self) {
        if !self.own_acks.is_empty() {
            self.own_acks_to_messages_now();
        }
    }

    #[cold]
    fn own_acks_to_messages_now(&mut self) {
        let mut acks = std::mem::take(&mut self.own_acks);
        for &index in &acks {
            self.msgs_after_append.push(self.own_ack(self.own_acks_term, index));
        }
        acks.clear();
        self.own_acks = acks;
    }

    /// Advances the logical clock by one tick.
    pub(crate) fn tick(&mut self) {
        match self.state {
            StateType::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    /// Followers and candidates: campaign once the election timeout passes.
    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.past_election_timeout() {
            self.election_elapsed = 0;
            if let Err(err) =
                self.step(Message { from: self.id, ..Message::new(MessageType::MsgHup) })
            {
                debugf!(self.logger, "error occurred during election: {}", err);
            }
        }
    }

    /// Leaders: heartbeat every heartbeat timeout; check quorum and give up
    /// a stalled leadership transfer every election timeout.
    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;

        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                let m = Message { from: self.id, ..Message::new(MessageType::MsgCheckQuorum) };
                if let Err(err) = self.step(m) {
                    debugf!(
                        self.logger,
                        "error occurred during checking sending heartbeat: {}",
                        err
                    );
                }
            }
            if self.state == StateType::Leader && self.lead_transferee != NONE {
                self.abort_leader_transfer();
            }
        }

        if self.state != StateType::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let m = Message { from: self.id, ..Message::new(MessageType::MsgBeat) };
            if let Err(err) = self.step(m) {
                debugf!(self.logger, "error occurred during checking sending heartbeat: {}", err);
            }
        }
    }

    pub(crate) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateType::Follower;
        infof!(self.logger, "{:x} became follower at term {}", self.id, self.term);
    }

    pub(crate) fn become_candidate(&mut self) {
        assert!(self.state != StateType::Leader, "invalid transition [leader -> candidate]");
        self.reset(self.term + 1);
        self.vote = self.id;
        self.state = StateType::Candidate;
        infof!(self.logger, "{:x} became candidate at term {}", self.id, self.term);
    }

    /// Pre-candidacy changes the role but not the term or vote.
    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(self.state != StateType::Leader, "invalid transition [leader -> pre-candidate]");
        self.trk.reset_votes();
        self.lead = NONE;
        self.state = StateType::PreCandidate;
        infof!(self.logger, "{:x} became pre-candidate at term {}", self.id, self.term);
    }

    pub(crate) fn become_leader(&mut self) {
        assert!(self.state != StateType::Follower, "invalid transition [follower -> leader]");
        self.reset(self.term);
        self.lead = self.id;
        self.state = StateType::Leader;
        // The leader trivially replicates to itself, and is always active.
        let id = self.id;
        if let Some(pr) = self.trk.progress.get_mut(id) {
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Any pending configuration change is somewhere in the log; wait
        // until everything in it is applied before accepting a new one.
        self.pending_conf_index = self.raft_log.last_index();

        // The empty entry has no payload, so the fresh quota always takes it.
        if !self.append_entry(vec![Entry::default()]) {
            panicf!(self.logger, "empty entry was dropped");
        }
        infof!(self.logger, "{:x} became leader at term {}", self.id, self.term);
    }

    /// Processes one message: the term-first prefix shared by every role,
    /// then the role's own handling.
    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        if !self.step_term(&m) {
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgHup => {
                let t =
                    if self.pre_vote { CampaignType::PreElection } else { CampaignType::Election };
                self.hup(t);
            }
            MessageType::MsgStorageAppendResp => {
                if m.index != 0 {
                    self.raft_log.stable_to(EntryId { term: m.log_term, index: m.index });
                }
                if let Some(snap) = &m.snapshot {
                    self.applied_snap(snap);
                }
            }
            MessageType::MsgStorageApplyResp => {
                if let Some(last) = m.entries.last() {
                    let index = last.index;
                    let size = crate::storage::ents_size(&m.entries);
                    let payloads =
                        if self.uncommitted_size_bounded() { payloads_size(&m.entries) } else { 0 };
                    self.entries_applied(index, size, payloads);
                }
            }
            MessageType::MsgVote | MessageType::MsgPreVote => self.handle_vote_request(&m),
            _ => match self.state {
                StateType::Leader => self.step_leader(m)?,
                StateType::Candidate | StateType::PreCandidate => self.step_candidate(m)?,
                StateType::Follower => self.step_follower(m)?,
            },
        }
        Ok(())
    }

    /// Handles the message's term against ours. Returns whether the message
    /// should be processed further.
    fn step_term(&mut self, m: &Message) -> bool {
        let t = m.msg_type();
        if m.term == 0 {
            // A local message.
            return true;
        }
        if m.term > self.term {
            if (t == MessageType::MsgVote || t == MessageType::MsgPreVote)
                && self.ignore_vote_in_lease(m)
            {
                return false;
            }
            match t {
                // Never change the term in response to a pre-vote.
                MessageType::MsgPreVote => {}
                // A granted pre-vote carries the future term we campaign for;
                // the term moves when the election is won.
                MessageType::MsgPreVoteResp if !m.reject => {}
                _ => {
                    infof!(
                        self.logger,
                        "{:x} [term: {}] received a {:?} message with higher term from {:x} [term: {}]",
                        self.id,
                        self.term,
                        t,
                        m.from,
                        m.term
                    );
                    if matches!(
                        t,
                        MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap
                    ) {
                        self.become_follower(m.term, m.from);
                    } else {
                        self.become_follower(m.term, NONE);
                    }
                }
            }
            return true;
        }
        if m.term < self.term {
            self.step_lower_term(m);
            return false;
        }
        true
    }

    /// Handles a message from an earlier term.
    fn step_lower_term(&mut self, m: &Message) {
        let t = m.msg_type();
        if (self.check_quorum || self.pre_vote)
            && (t == MessageType::MsgHeartbeat || t == MessageType::MsgApp)
        {
            // A leader of an old term is talking to us: perhaps we raised our
            // term while partitioned and can neither win nor rejoin. Tell it
            // our term (this response carries it) so that it steps down and a
            // fresh election frees us. Pre-vote avoids most such disruption.
            self.send(Message {
                to: m.from,
                msg_type: MessageType::MsgAppResp as i32,
                ..Message::default()
            });
        } else if t == MessageType::MsgPreVote {
            // Rejecting (rather than ignoring) keeps a cluster that upgraded
            // to pre-vote from deadlocking on a higher-term candidate.
            let last = self.raft_log.last_entry_id();
            infof!(
                self.logger,
                "{:x} [logterm: {}, index: {}, vote: {:x}] rejected {:?} from {:x} [logterm: {}, index: {}] at term {}",
                self.id,
                last.term,
                last.index,
                self.vote,
                t,
                m.from,
                m.log_term,
                m.index,
                self.term
            );
            self.send(Message {
                to: m.from,
                term: self.term,
                msg_type: MessageType::MsgPreVoteResp as i32,
                reject: true,
                ..Message::default()
            });
        } else if t == MessageType::MsgStorageAppendResp {
            if m.index != 0 {
                // The entries may have been overwritten in a later term; do
                // not consider them stable.
                infof!(
                    self.logger,
                    "{:x} [term: {}] ignored entry appends from a {:?} message with lower term [term: {}]",
                    self.id,
                    self.term,
                    t,
                    m.term
                );
            }
            if let Some(snap) = &m.snapshot {
                // Snapshots carry committed state, valid in any term.
                self.applied_snap(snap);
            }
        } else {
            infof!(
                self.logger,
                "{:x} [term: {}] ignored a {:?} message with lower term from {:x} [term: {}]",
                self.id,
                self.term,
                t,
                m.from,
                m.term
            );
        }
    }

    /// Whether this node may become leader: it is a voter in the current
    /// configuration and is not waiting on a snapshot.
    pub(crate) fn promotable(&self) -> bool {
        match self.trk.progress.get(self.id) {
            Some(pr) => !pr.is_learner && !self.raft_log.has_next_or_in_progress_snapshot(),
            None => false,
        }
    }

    /// Restores term, vote and commit from persisted state.
    fn load_state(&mut self, state: &HardState) -> Result<()> {
        let (lo, hi) = (self.raft_log.committed(), self.raft_log.last_index());
        if state.commit < lo || state.commit > hi {
            return Err(Error::InvalidHardState { id: self.id, commit: state.commit, lo, hi });
        }
        self.raft_log.set_committed(state.commit);
        self.term = state.term;
        self.vote = state.vote;
        Ok(())
    }

    pub(crate) fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_timeout
    }

    pub(crate) fn reset_randomized_election_timeout(&mut self) {
        self.randomized_election_timeout =
            self.election_timeout + self.rng.below(self.election_timeout);
    }

    pub(crate) fn send_timeout_now(&mut self, to: u64) {
        self.send(Message {
            to,
            msg_type: MessageType::MsgTimeoutNow as i32,
            ..Message::default()
        });
    }

    pub(crate) fn abort_leader_transfer(&mut self) {
        self.lead_transferee = NONE;
    }

    /// Whether this leader has committed an entry in its own term (before
    /// which its commit index may lag the true one).
    pub(crate) fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term_or_zero(self.raft_log.committed()) == self.term
    }

    /// Counts proposed entries against the uncommitted-size quota. An empty
    /// tail accepts any proposal, and empty payloads are always accepted.
    pub(crate) fn increase_uncommitted_size(&mut self, ents: &[Entry]) -> bool {
        if !self.uncommitted_size_bounded() {
            // Nothing to refuse against, and nothing else reads the count:
            // not measured (see `uncommitted_size_bounded`).
            return true;
        }
        let s = payloads_size(ents);
        if self.uncommitted_size > 0
            && s > 0
            && self.uncommitted_size.saturating_add(s) > self.max_uncommitted_size
        {
            return false;
        }
        self.uncommitted_size += s;
        true
    }

    /// Whether proposals count against an uncommitted-size quota. Without
    /// one (`NO_LIMIT`, the default) `uncommitted_size` is not kept: the
    /// quota check could never refuse and nothing else reads it, so neither
    /// proposing nor applying measures payloads for it.
    #[inline]
    pub(crate) fn uncommitted_size_bounded(&self) -> bool {
        self.max_uncommitted_size != NO_LIMIT
    }

    /// Releases quota for entries now committed (saturating at zero, since
    /// the estimate may be low after a term change).
    pub(crate) fn reduce_uncommitted_size(&mut self, s: u64) {
        self.uncommitted_size = self.uncommitted_size.saturating_sub(s);
    }

    fn assert_conf_states_equivalent(&self, a: &ConfState, b: &ConfState) {
        if !a.equivalent(b) {
            panicf!(self.logger, "ConfStates not equivalent after sorting:\n{:?}\n{:?}", a, b);
        }
    }

    /// The context carried by the heartbeats of a safe read, as bytes.
    pub(crate) fn last_pending_read_ctx(&self) -> Bytes {
        self.read_only.last_pending_request_ctx()
    }

    #[cfg(feature = "testing")]
    /// Overrides the randomized election timeout (a test hook; the value is
    /// redrawn on the next reset).
    pub(crate) fn set_randomized_election_timeout(&mut self, ticks: usize) {
        self.randomized_election_timeout = ticks;
    }

    /// Rebuilds `peer_ids` from the progress map.
    pub(crate) fn refresh_peer_ids(&mut self) {
        self.peer_ids.clear();
        self.peer_ids.extend(self.trk.progress.ids().copied());
    }

    /// Whether this node's read-only option is lease-based.
    pub(crate) fn lease_based_reads(&self) -> bool {
        self.read_only.option == ReadOnlyOption::LeaseBased
    }
}
