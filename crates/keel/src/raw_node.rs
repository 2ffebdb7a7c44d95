//! `RawNode`, the application's handle on the state machine, and `Ready`, the
//! batch of work it hands out.
//!
//! The loop is: feed inputs (`tick`, `step`, `propose`, ...), then while
//! `has_ready()`: take `ready()`, persist its entries, hard state and
//! snapshot, send its messages, apply its committed entries, and call
//! `advance()`. With asynchronous storage writes the persisting and applying
//! happen on other threads, driven by the `MsgStorageAppend` /
//! `MsgStorageApply` messages in `Ready::messages`, whose responses are
//! stepped back in instead of calling `advance()`.
//!
//! # The application's duties
//! `examples/three_nodes.rs` is a complete loop that does all of this (three
//! nodes, a conf change, snapshots, compaction and a restart).
//!
//! 1. **Handle each `Ready` in order, completely.** Take the next `Ready`
//!    only after `advance()` for the last one (synchronous mode).
//! 2. **Persist, snapshot first.** If the `Ready` carries a snapshot, apply
//!    it to storage (it replaces the log up to its index) before appending
//!    the `Ready`'s entries, which follow it; then persist the hard state.
//!    Entries replace any stored entries at the same or later indexes. Sync
//!    to disk when `must_sync` is set.
//! 3. **Send only what is durable.** A `Ready`'s messages leave after its
//!    entries, hard state and snapshot are persisted (with asynchronous
//!    writes, deliver a `MsgStorageAppend`'s responses only once its writes
//!    are durable). Messages may be sent in any order, dropped or delayed;
//!    report a peer that cannot be reached with
//!    [`RawNode::report_unreachable`].
//! 4. **Report every snapshot sent.** After a `MsgSnap` was delivered, or
//!    failed, call [`RawNode::report_snapshot`] for its recipient: while a
//!    snapshot is pending the leader sends that peer no appends, so a lost
//!    snapshot that is never reported can stall the peer.
//! 5. **Apply committed entries in order**, and call
//!    [`RawNode::apply_conf_change`] for each committed configuration change
//!    as it is applied (decode it with
//!    [`AnyConfChange::from_entry`](crate::raftpb::AnyConfChange::from_entry)).
//!    Keep the `ConfState` it returns for the next snapshot. An empty normal
//!    entry is a new leader's, not a proposal.
//! 6. **Skip what a snapshot superseded.** Once a `Ready` (or
//!    `MsgStorageAppend`) carries a snapshot at index `i`, restore the state
//!    machine from it and skip any entry at or below `i` that was handed out
//!    before but is not yet applied; do not call `apply_conf_change` for it.
//!    The snapshot's configuration already includes its effect; applying it
//!    again would corrupt this node's configuration (etcd-io/etcd#11510;
//!    Keel's simulator checks this). In synchronous mode the core keeps this
//!    from arising: a `MsgSnap` stepped between `ready()` and `advance()` is
//!    held until `advance()`. With asynchronous writes it can arise; use
//!    [`RawNode::apply_conf_change_at`], which ignores such a change.
//! 7. **Call `advance()`** once the `Ready` is persisted, sent and applied
//!    (synchronous mode). With asynchronous writes, read the storage
//!    messages through [`StorageAppend`] and [`StorageApply`] instead, and
//!    step their responses (split by [`StorageResponses`]) back in with
//!    [`RawNode::step_local`] once the work is done.
//! 8. **Snapshot and compact** from time to time: record the state machine
//!    as of an applied index with the `ConfState` at that point, then discard
//!    log entries before it (keeping some for followers that lag a little),
//!    never past what is applied.
//! 9. **Restart from storage.** A restarted node is built with
//!    [`RawNode::new`] on the storage it persisted to, never bootstrapped
//!    again. Restore the state machine from the storage's snapshot; raft then
//!    hands out the committed entries after it again (or set
//!    [`Config::applied`] to what the state machine already holds).
//! 10. **Ids are unique for all time.** Never reuse the id of a removed
//!     node; a node that joins starts with empty storage and learns the
//!     configuration from the leader.

use bytes::Bytes;

use crate::confchange::ConfChangeError;
use crate::config::Config;
use crate::error::{DropReason, Error, Result};
use crate::log::{EntryId, SharedEntries};
use crate::raft::Raft;
use crate::raftpb::{
    AnyConfChange, ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message,
    MessageType, Snapshot,
};
use crate::state::{ReadState, SoftState, StateType};
use crate::status::{BasicStatus, ProgressType, Status};
use crate::storage::{Storage, ents_and_payloads_size};
use crate::tracker::Progress;
use crate::util::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE, payloads_size};

/// Everything the application must do: persist, send, apply. Fields that are
/// empty (or `None`) need no action.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// Changed soft state, if any.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist before sending messages (`None`: unchanged).
    pub hard_state: Option<HardState>,
    /// Read requests that are now served.
    pub read_states: Vec<ReadState>,
    /// Entries to persist before sending messages. They are shared with the
    /// node's unstable log, not copied: the node keeps reading them until
    /// they are reported stable. Read them as a slice; `into_vec()` gives
    /// an owned vector.
    pub entries: SharedEntries,
    /// A snapshot to persist, before the entries (`None`: none).
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply. Like `entries`, they are shared with the
    /// node's log when it still holds them (it keeps recently persisted
    /// entries until they are handed out here), not copied.
    pub committed_entries: SharedEntries,
    /// Messages to send after the entries and state are persisted (or, with
    /// asynchronous storage writes, messages to hand to the storage threads).
    pub messages: Vec<Message>,
    /// Whether the hard state and entries must be synced to disk.
    pub must_sync: bool,
}

/// What became of a proposal that was not dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// This node leads and appended the proposal to its log as the entry
    /// with this id (for a batch: its last entry; the batch fills the
    /// indexes before it). It took effect if a later `Ready` hands out a
    /// committed entry with this id; a committed entry at this index with
    /// another term means it was lost (a new leader overwrote it).
    Appended(EntryId),
    /// This node follows and forwarded the proposal to its leader, which can
    /// still drop it; no index is known until the entry commits.
    Forwarded,
}

/// A peer to bootstrap a new cluster with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// The peer's id.
    pub id: u64,
    /// Opaque context carried in the peer's initial configuration change.
    pub context: Bytes,
}

/// The outcome of sending a snapshot, reported with
/// [`RawNode::report_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The follower received and applied the snapshot.
    Finish,
    /// Sending the snapshot failed.
    Failure,
}

/// Whether the hard state and entries of a `Ready` must be synced to disk:
/// term, vote and log entries must be durable before responding to any RPC.
pub fn must_sync(st: &HardState, prev: &HardState, entries: usize) -> bool {
    entries != 0 || st.vote != prev.vote || st.term != prev.term
}

/// The application's handle on one Raft node. It is not thread-safe; wrap it
/// (as `Node` does) to share it.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    async_storage_writes: bool,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// Self-addressed responses to step on `advance` (synchronous mode).
    steps_on_advance: Vec<Message>,
    /// A leader's acknowledgements of its own appends to step on `advance`
    /// before `steps_on_advance`, as indexes (`Raft::own_acks`), all from
    /// term `acks_on_advance_term` (synchronous mode).
    acks_on_advance: Vec<u64>,
    acks_on_advance_term: u64,
    /// The apply acknowledgement to process on `advance`, after
    /// `steps_on_advance` (synchronous mode). etcd steps a
    /// `MsgStorageApplyResp` carrying the applied entries; only their last
    /// index and sizes matter, so the entries are not copied.
    applied_on_advance: Option<AppliedOnAdvance>,
    /// Synchronous mode: a `Ready` was handed out and `advance` not yet
    /// called.
    ready_outstanding: bool,
    /// Synchronous mode: a `MsgSnap` that arrived while a `Ready` was
    /// outstanding, stepped on `advance` (see [`RawNode::step`]).
    deferred_snapshot: Option<Message>,
    /// The entries of the proposal being made on a leader; empty between
    /// calls, kept for its capacity.
    proposal: Vec<Entry>,
}

/// The part of a `MsgStorageApplyResp` that stepping it reads.
#[derive(Clone, Copy, Debug)]
struct AppliedOnAdvance {
    /// The last applied index.
    index: u64,
    /// The encoded size of the applied entries.
    size: u64,
    /// Their payload bytes, released from the uncommitted-size quota.
    payloads_size: u64,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node from its configuration and storage, restoring any
    /// persisted state. To start a brand-new cluster either call
    /// [`RawNode::bootstrap`] or give it storage whose snapshot holds the
    /// initial configuration.
    pub fn new(config: &Config, storage: S) -> Result<RawNode<S>> {
        let mut raft = Raft::new(config, storage)?;
        // In synchronous mode the leader's own acknowledgements never leave
        // this node: `advance` steps them, so they are kept as indexes.
        raft.own_acks_as_indexes = !config.async_storage_writes;
        let prev_soft_state = raft.soft_state();
        let prev_hard_state = raft.hard_state();
        Ok(RawNode {
            raft,
            async_storage_writes: config.async_storage_writes,
            prev_soft_state,
            prev_hard_state,
            steps_on_advance: Vec::new(),
            acks_on_advance: Vec::new(),
            acks_on_advance_term: 0,
            applied_on_advance: None,
            ready_outstanding: false,
            deferred_snapshot: None,
            proposal: Vec::new(),
        })
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Advances the election clock without any other processing, for groups
    /// known to be quiescent. Use with care: it subverts the state machine.
    pub fn tick_quiesced(&mut self) {
        self.raft.election_elapsed += 1;
    }

    /// Starts an election (a pre-vote round first, if PreVote is on).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(Message::new(MessageType::MsgHup))
    }

    /// Proposes `data` for appending to the log, and says where it went: on
    /// a leader, the id of its entry. Proposals can be dropped (see
    /// [`Error::ProposalDropped`] and its [`DropReason`]).
    pub fn propose(&mut self, data: Bytes) -> Result<Proposed> {
        let entry = Entry { data, ..Entry::default() };
        if self.raft.state == StateType::Leader {
            // Empty unless a caller's iterator panicked mid-batch.
            self.proposal.clear();
            self.proposal.push(entry);
            return self.propose_on_leader();
        }
        self.step_proposal(Message {
            from: self.raft.id,
            entries: vec![entry],
            ..Message::new(MessageType::MsgProp)
        })
    }

    /// Proposes many entries in one message: they are appended (or dropped)
    /// together, and cost one broadcast instead of one per entry. On a
    /// leader the outcome names the last entry. An empty batch is refused
    /// with [`DropReason::EmptyBatch`] (it has no entry to name).
    pub fn propose_batch<I>(&mut self, data: I) -> Result<Proposed>
    where
        I: IntoIterator<Item = Bytes>,
    {
        let entries = data.into_iter().map(|data| Entry { data, ..Entry::default() });
        if self.raft.state == StateType::Leader {
            self.proposal.clear();
            self.proposal.extend(entries);
            if self.proposal.is_empty() {
                return Err(Error::ProposalDropped(DropReason::EmptyBatch));
            }
            return self.propose_on_leader();
        }
        let entries: Vec<Entry> = entries.collect();
        if entries.is_empty() {
            return Err(Error::ProposalDropped(DropReason::EmptyBatch));
        }
        self.step_proposal(Message {
            from: self.raft.id,
            entries,
            ..Message::new(MessageType::MsgProp)
        })
    }

    /// A leader's proposal of the entries in `self.proposal`: exactly what
    /// stepping a `MsgProp` carrying them does, without building one, so
    /// the entry vector is reused rather than allocated per proposal.
    fn propose_on_leader(&mut self) -> Result<Proposed> {
        self.raft.propose_entries(&mut self.proposal)?;
        // The entries were appended last, with the leader's term: no need to
        // look the term up.
        let index = self.raft.raft_log.last_index();
        debug_assert_eq!(self.raft.raft_log.last_entry_id().term, self.raft.term);
        Ok(Proposed::Appended(EntryId { term: self.raft.term, index }))
    }

    /// Steps a local proposal. A leader appends it at the end of its log
    /// (or refuses it); any other role forwards it or refuses it; stepping a
    /// local proposal never changes the role.
    fn step_proposal(&mut self, m: Message) -> Result<Proposed> {
        self.raft.step(m)?;
        Ok(if self.raft.state == StateType::Leader {
            Proposed::Appended(self.raft.raft_log.last_entry_id())
        } else {
            Proposed::Forwarded
        })
    }

    /// Proposes a configuration change. Only one may be pending at a time;
    /// a change proposed while another is unapplied is replaced by an empty
    /// entry (see the log line explaining why).
    ///
    /// On a leader the outcome names the entry even when it was replaced:
    /// whether the change takes effect shows when that entry is applied.
    pub fn propose_conf_change(&mut self, cc: impl Into<AnyConfChange>) -> Result<Proposed> {
        let cc = cc.into();
        if crate::raft::conf_change_defect(&cc).is_some() {
            return Err(Error::ProposalDropped(DropReason::InvalidConfChange));
        }
        let m = crate::raft::conf_change_to_msg(Some(&cc));
        self.step_proposal(m)
    }

    /// Applies a committed configuration change to this node, returning the
    /// new configuration. Call it when applying the change's entry (unless
    /// the application rejects the change), never for an entry a snapshot has
    /// since superseded (see the module docs).
    pub fn apply_conf_change(
        &mut self,
        cc: &AnyConfChange,
    ) -> std::result::Result<ConfState, ConfChangeError> {
        self.raft.apply_conf_change(&cc.as_v2())
    }

    /// Applies the configuration change committed at `index`, the form to
    /// use when a snapshot may arrive while committed entries are being
    /// applied. A change at or below the last snapshot this node restored
    /// from a peer is already in that snapshot's configuration: nothing
    /// changes and the current configuration is returned
    /// (etcd-io/etcd#11510). Applications should still skip such entries.
    pub fn apply_conf_change_at(
        &mut self,
        index: u64,
        cc: &AnyConfChange,
    ) -> std::result::Result<ConfState, ConfChangeError> {
        if index <= self.raft.restored_snapshot_index {
            return Ok(self.raft.trk.conf_state());
        }
        self.apply_conf_change(cc)
    }

    /// Advances the state machine with a message from a peer. This is the
    /// gateway for the network: local message types, the storage threads'
    /// responses (whatever `from` says), senders that are this node or a
    /// reserved id, terms no honest peer sends, empty proposals, malformed
    /// appends and snapshots that do not restore are refused with
    /// [`Error::InvalidMessage`] (or etcd's [`Error::StepLocalMsg`] and
    /// [`Error::StepPeerNotFound`]), logged once at warn level, and leave the
    /// node unchanged.
    ///
    /// In synchronous mode a `MsgSnap` that arrives between `ready` and
    /// `advance` is held and stepped on `advance`: restoring it at once would
    /// replace the configuration under the application, which is still
    /// applying the `Ready`'s committed entries (etcd-io/etcd#11510). Only
    /// one is held, the one with the highest term and snapshot index; a
    /// leader whose snapshot is not held retries it (after
    /// [`RawNode::report_snapshot`] or a probe).
    pub fn step(&mut self, m: Message) -> Result<()> {
        if let Err(err) = self.raft.check_peer_message(&m) {
            return self.log_refusal(Err(err));
        }
        if self.ready_outstanding && m.msg_type() == MessageType::MsgSnap {
            self.defer_snapshot(m);
            return Ok(());
        }
        let res = self.raft.step(m);
        self.log_refusal(res)
    }

    /// Holds a `MsgSnap` until `advance`, keeping the newest of those held.
    fn defer_snapshot(&mut self, m: Message) {
        let key = |m: &Message| (m.term, m.snapshot.as_ref().map_or(0, |s| s.metadata.index));
        if self.deferred_snapshot.as_ref().is_some_and(|held| key(held) >= key(&m)) {
            debugf!(self.raft.logger, "{:x} dropping MsgSnap from {:x}", self.raft.id, m.from);
            return;
        }
        infof!(
            self.raft.logger,
            "{:x} deferring MsgSnap from {:x} until the outstanding Ready is advanced",
            self.raft.id,
            m.from
        );
        self.deferred_snapshot = Some(m);
    }

    /// Advances the state machine with a local response: a storage thread's
    /// `MsgStorageAppendResp` / `MsgStorageApplyResp`, or one of this node's
    /// own self-addressed responses carried in a `MsgStorageAppend`'s
    /// `responses`. Anything else is refused with
    /// [`InvalidMessage::NotLocal`](crate::InvalidMessage::NotLocal).
    pub fn step_local(&mut self, m: Message) -> Result<()> {
        let res = self.raft.check_local_message(&m).and_then(|()| self.raft.step(m));
        self.log_refusal(res)
    }

    /// Whether `m`, a `MsgStorageAppendResp`, would change nothing if
    /// stepped: it names entries that an earlier response already made
    /// stable, and carries no snapshot. Such a response answers a
    /// commit-only append issued while entries were still being written
    /// (it repeats their last id), and raft ignores it with an info line.
    /// `Node` drops it unstepped so that a busy node does not print that
    /// line for most writes; [`step_local`](Self::step_local) keeps etcd's
    /// behaviour.
    pub(crate) fn is_stale_append_response(&self, m: &Message) -> bool {
        let unstable = self.raft.raft_log.unstable();
        m.msg_type() == MessageType::MsgStorageAppendResp
            && m.snapshot.is_none()
            && m.index != 0
            && m.term == self.raft.term
            && m.index < unstable.offset()
            && unstable.maybe_term(m.index).is_none()
    }

    /// Logs a refused message once, at warn level.
    fn log_refusal(&self, res: Result<()>) -> Result<()> {
        if let Err(Error::InvalidMessage(reason)) = &res {
            warnf!(self.raft.logger, "{:x} refused message: {}", self.raft.id, reason);
        }
        res
    }

    /// The outstanding work. Everything in it must be handled, and then (in
    /// synchronous mode) `advance` called, before the next `ready`.
    #[must_use = "a Ready must be handled (persist, send, apply) before `advance`"]
    pub fn ready(&mut self) -> Ready {
        let mut rd = self.ready_without_accept();
        self.accept_ready(&mut rd);
        rd
    }

    /// Builds a `Ready` without committing to handle it. In synchronous
    /// mode its messages do not yet include the responses that wait for the
    /// entries to be durable: [`accept_ready`](Self::accept_ready) moves
    /// them in (rather than this cloning them).
    fn ready_without_accept(&mut self) -> Ready {
        let allow_unstable = self.apply_unstable_entries();
        let r = &mut self.raft;
        let mut rd = Ready {
            entries: r.raft_log.take_next_unstable_ents(),
            committed_entries: r.raft_log.next_committed_ents(allow_unstable),
            messages: take_keeping_room(&mut r.msgs),
            ..Ready::default()
        };
        let soft = r.soft_state();
        if soft != self.prev_soft_state {
            rd.soft_state = Some(soft);
        }
        let hard = r.hard_state();
        if hard != self.prev_hard_state {
            rd.hard_state = Some(hard);
        }
        rd.snapshot = r.raft_log.next_unstable_snapshot().cloned();
        if !r.read_states.is_empty() {
            rd.read_states = r.read_states.clone();
        }
        rd.must_sync = must_sync(&hard, &self.prev_hard_state, rd.entries.len());

        if self.async_storage_writes {
            // Hand persisting and applying to the local storage threads.
            if self.need_storage_append_msg(&rd) {
                let m = self.new_storage_append_msg(&rd);
                rd.messages.push(m);
            }
            if !rd.committed_entries.is_empty() {
                let m = self.new_storage_apply_msg(&rd.committed_entries);
                rd.messages.push(m);
            }
        }
        rd
    }

    fn need_storage_append_msg(&self, rd: &Ready) -> bool {
        // Entries, hard state or snapshot to write, or responses that must
        // wait for everything before them to be written.
        !rd.entries.is_empty()
            || rd.hard_state.is_some()
            || rd.snapshot.is_some()
            || !self.raft.msgs_after_append.is_empty()
    }

    fn need_storage_append_resp_msg(&self, rd: &Ready) -> bool {
        // Raft needs to hear about stable entries or an applied snapshot.
        // Checking in-progress entries too (not just this Ready's) lets a
        // later response truncate the unstable log after an earlier one was
        // ignored for a term change.
        self.raft.raft_log.has_next_or_in_progress_unstable_ents() || rd.snapshot.is_some()
    }

    /// The message to the append thread: entries, hard state and snapshot to
    /// persist, and the responses to deliver once they are durable.
    fn new_storage_append_msg(&mut self, rd: &Ready) -> Message {
        let mut m = Message {
            to: LOCAL_APPEND_THREAD,
            from: self.raft.id,
            entries: rd.entries.to_vec(),
            ..Message::new(MessageType::MsgStorageAppend)
        };
        if let Some(hs) = rd.hard_state {
            // All three fields or none, so the hard state can be rebuilt.
            m.term = hs.term;
            m.vote = hs.vote;
            m.commit = hs.commit;
        }
        m.snapshot = rd.snapshot.clone().map(Box::new);
        // Asynchronous mode keeps them as messages.
        debug_assert!(self.raft.own_acks.is_empty());
        // The leader's self-acknowledgements come before the append response,
        // so that they find the new entries still in the unstable log.
        m.responses = std::mem::take(&mut self.raft.msgs_after_append).into();
        if self.need_storage_append_resp_msg(rd) {
            let resp = self.new_storage_append_resp_msg(rd);
            m.responses.push(resp);
        }
        m
    }

    /// The append thread's acknowledgement, stepped back into this node once
    /// everything written so far is durable. It carries the current term: a
    /// response from an earlier term is ignored, since the entries it covers
    /// may since have been overwritten (the ABA problem); and it attests the
    /// last index and term of the whole unstable log, so that a later
    /// response can truncate what an ignored one could not.
    fn new_storage_append_resp_msg(&self, rd: &Ready) -> Message {
        let r = &self.raft;
        let mut m = Message {
            to: r.id,
            from: LOCAL_APPEND_THREAD,
            term: r.term,
            ..Message::new(MessageType::MsgStorageAppendResp)
        };
        if r.raft_log.has_next_or_in_progress_unstable_ents() {
            let last = r.raft_log.last_entry_id();
            m.index = last.index;
            m.log_term = last.term;
        }
        m.snapshot = rd.snapshot.clone().map(Box::new);
        m
    }

    /// The message to the apply thread: committed entries to apply (under no
    /// particular term), and the acknowledgement to deliver afterwards.
    fn new_storage_apply_msg(&self, ents: &[Entry]) -> Message {
        Message {
            to: LOCAL_APPLY_THREAD,
            from: self.raft.id,
            entries: ents.to_vec(),
            responses: vec![self.new_storage_apply_resp_msg(ents)].into(),
            ..Message::new(MessageType::MsgStorageApply)
        }
    }

    fn new_storage_apply_resp_msg(&self, ents: &[Entry]) -> Message {
        Message {
            to: self.raft.id,
            from: LOCAL_APPLY_THREAD,
            entries: ents.to_vec(),
            ..Message::new(MessageType::MsgStorageApplyResp)
        }
    }

    /// Commits to handling `rd`: nothing may change the node between
    /// `ready_without_accept` and this.
    fn accept_ready(&mut self, rd: &mut Ready) {
        if let Some(ss) = rd.soft_state {
            self.prev_soft_state = ss;
        }
        if let Some(hs) = rd.hard_state {
            self.prev_hard_state = hs;
        }
        if !rd.read_states.is_empty() {
            self.raft.read_states.clear();
        }
        let (committed_size, committed_payloads) = if self.raft.raft_log.applying_size_bounded() {
            // Both sizes in one pass over the entries.
            ents_and_payloads_size(&rd.committed_entries)
        } else if self.raft.uncommitted_size_bounded() {
            // No bound for the encoded size to count against: only the
            // payload bytes (the uncommitted quota) matter.
            (0, payloads_size(&rd.committed_entries))
        } else {
            // Neither is bounded: nothing to measure.
            (0, 0)
        };
        if !self.async_storage_writes {
            if !self.steps_on_advance.is_empty()
                || !self.acks_on_advance.is_empty()
                || self.applied_on_advance.is_some()
            {
                panicf!(self.raft.logger, "two accepted Ready structs without call to Advance");
            }
            self.ready_outstanding = true;
            self.split_msgs_after_append(rd);
            self.take_own_acks();
            if self.need_storage_append_resp_msg(rd) {
                let m = self.new_storage_append_resp_msg(rd);
                self.steps_on_advance.push(m);
            }
            if let Some(last) = rd.committed_entries.last() {
                // What stepping the apply thread's response (which would
                // carry a copy of the committed entries) does on advance.
                self.applied_on_advance = Some(AppliedOnAdvance {
                    index: last.index,
                    size: committed_size,
                    payloads_size: committed_payloads,
                });
            }
        }
        self.raft.msgs_after_append.clear();
        self.raft.raft_log.accept_unstable();
        if let Some(last) = rd.committed_entries.last() {
            let allow_unstable = self.apply_unstable_entries();
            self.raft.raft_log.accept_applying(last.index, committed_size, allow_unstable);
        }
    }

    /// Synchronous mode: the Ready contract says messages go out after the
    /// entries are persisted, so the responses that wait for durability join
    /// the Ready's messages, except the self-addressed ones, which are stepped
    /// on `advance`. Moves them (in order) instead of copying.
    fn split_msgs_after_append(&mut self, rd: &mut Ready) {
        let id = self.raft.id;
        let after = &mut self.raft.msgs_after_append;
        if after.iter().all(|m| m.to == id) {
            // A leader's own acknowledgements: hand over the whole buffer.
            std::mem::swap(&mut self.steps_on_advance, after);
        } else if after.iter().all(|m| m.to != id) {
            if rd.messages.is_empty() {
                // A follower's responses: hand over the buffer rather than
                // copying every message into the Ready's.
                std::mem::swap(&mut rd.messages, after);
                after.reserve(rd.messages.len());
            } else {
                rd.messages.append(after);
            }
        } else {
            for m in after.drain(..) {
                if m.to == id {
                    self.steps_on_advance.push(m);
                } else {
                    rd.messages.push(m);
                }
            }
        }
    }

    /// Synchronous mode: moves the leader's own acknowledgements, which
    /// follow the responses `split_msgs_after_append` took, to be stepped on
    /// `advance`. Kept as indexes when nothing is stepped before them (the
    /// usual case); otherwise turned into the messages they stand for, after
    /// those steps.
    fn take_own_acks(&mut self) {
        let r = &mut self.raft;
        if r.own_acks.is_empty() {
            return;
        }
        if self.steps_on_advance.is_empty() {
            std::mem::swap(&mut self.acks_on_advance, &mut r.own_acks);
            self.acks_on_advance_term = r.own_acks_term;
            return;
        }
        for &index in &r.own_acks {
            self.steps_on_advance.push(r.own_ack(r.own_acks_term, index));
        }
        r.own_acks.clear();
    }

    /// Committed entries may be applied before they are locally durable only
    /// in synchronous mode, where the `Ready` persists them first anyway.
    fn apply_unstable_entries(&self) -> bool {
        !self.async_storage_writes
    }

    /// Whether there is a `Ready` to handle.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        if r.soft_state() != self.prev_soft_state {
            return true;
        }
        let hard = r.hard_state();
        if !hard.is_empty() && hard != self.prev_hard_state {
            return true;
        }
        if r.raft_log.has_next_unstable_snapshot() {
            return true;
        }
        if !r.msgs.is_empty() || !r.msgs_after_append.is_empty() || !r.own_acks.is_empty() {
            return true;
        }
        if r.raft_log.has_next_unstable_ents()
            || r.raft_log.has_next_committed_ents(self.apply_unstable_entries())
        {
            return true;
        }
        !r.read_states.is_empty()
    }

    /// Tells the node that the last `Ready` was handled: its entries and
    /// state are persisted and its committed entries applied.
    ///
    /// # Panics
    /// With asynchronous storage writes, where the storage threads'
    /// responses take its place.
    pub fn advance(&mut self) {
        if self.async_storage_writes {
            panicf!(self.raft.logger, "Advance must not be called when using AsyncStorageWrites");
        }
        let mut acks = std::mem::take(&mut self.acks_on_advance);
        if !acks.is_empty() {
            self.step_own_acks(&acks);
            acks.clear();
            self.acks_on_advance = acks;
        }
        let mut steps = std::mem::take(&mut self.steps_on_advance);
        let skip = self.own_acks_to_skip(&steps);
        // Dropped where they lie: skipping them one by one through the
        // iterator would move each message out first.
        steps.drain(..skip);
        for m in steps.drain(..) {
            let _ = self.raft.step(m);
        }
        // Keep the buffer's capacity for the next Ready. (When it was swapped
        // with `msgs_after_append`, this hands that buffer's capacity back.)
        if self.raft.msgs_after_append.capacity() == 0 {
            self.raft.msgs_after_append = steps;
        } else {
            self.steps_on_advance = steps;
        }
        if let Some(applied) = self.applied_on_advance.take() {
            // Exactly what `Raft::step` does with a `MsgStorageApplyResp`
            // (a local message, so no term checks).
            self.raft.entries_applied(applied.index, applied.size, applied.payloads_size);
        }
        self.ready_outstanding = false;
        if let Some(m) = self.deferred_snapshot.take() {
            let res = self.raft.step(m);
            let _ = self.log_refusal(res);
        }
    }

    /// Steps the leader's own acknowledgements of `acks_on_advance`, as the
    /// messages they stand for would be stepped: only the last when that has
    /// the same effect (as `own_acks_to_skip` decides for messages).
    fn step_own_acks(&mut self, acks: &[u64]) {
        let term = self.acks_on_advance_term;
        let skip = self.own_ack_run_skip(term, acks.len(), |i| acks[i]);
        for &index in &acks[skip..] {
            let m = self.raft.own_ack(term, index);
            let _ = self.raft.step(m);
        }
    }

    /// How many of the leading steps on advance (a leader's acknowledgements
    /// of its own appends, one per proposal) can be skipped because stepping
    /// the last of them alone has the same effect (see
    /// `Raft::own_acks_coalesce`).
    fn own_acks_to_skip(&self, steps: &[Message]) -> usize {
        let (id, term) = (self.raft.id, self.raft.term);
        let run = steps
            .iter()
            .take_while(|m| {
                m.msg_type() == MessageType::MsgAppResp
                    && m.from == id
                    && m.to == id
                    && m.term == term
                    && !m.reject
            })
            .count();
        self.own_ack_run_skip(term, run, |i| steps[i].index)
    }

    /// How many of a run of `n` acknowledgements by the leader of its own
    /// appends, at `term` and with indexes `index(0..n)`, can be skipped:
    /// all but the last when they rise, are of the current term, and
    /// stepping the last alone has the same effect
    /// (`Raft::own_acks_coalesce`). One
    /// rule for the messages of `own_acks_to_skip` and the indexes of
    /// `step_own_acks`.
    fn own_ack_run_skip(&self, term: u64, n: usize, index: impl Fn(usize) -> u64) -> usize {
        if n < 2 || term != self.raft.term || !(1..n).all(|i| index(i - 1) <= index(i)) {
            return 0;
        }
        if self.raft.own_acks_coalesce(index(n - 1)) { n - 1 } else { 0 }
    }

    /// The node's state, with the configuration and (on a leader) a copy of
    /// every peer's progress. See [`RawNode::basic_status`] and
    /// [`RawNode::with_progress`] for cheaper views.
    pub fn status(&self) -> Status {
        Status::of(&self.raft)
    }

    /// The node's state without per-peer progress; does not allocate.
    pub fn basic_status(&self) -> BasicStatus {
        BasicStatus::of(&self.raft)
    }

    /// Visits every peer's progress in id order, without copying.
    pub fn with_progress(&self, mut visitor: impl FnMut(u64, ProgressType, &Progress)) {
        for (&id, pr) in self.raft.trk.progress.iter() {
            let typ = if pr.is_learner { ProgressType::Learner } else { ProgressType::Peer };
            visitor(id, typ, pr);
        }
    }

    /// Reports that the last message to `id` could not be sent.
    pub fn report_unreachable(&mut self, id: u64) {
        let _ = self.raft.step(Message { from: id, ..Message::new(MessageType::MsgUnreachable) });
    }

    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let reject = status == SnapshotStatus::Failure;
        let _ = self.raft.step(Message {
            from: id,
            reject,
            ..Message::new(MessageType::MsgSnapStatus)
        });
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) {
        let _ = self
            .raft
            .step(Message { from: transferee, ..Message::new(MessageType::MsgTransferLeader) });
    }

    /// Makes a follower forget its leader, so that it will grant votes to
    /// others at once (useful when the application knows the leader is gone).
    /// Ignored on a leader and with lease-based reads.
    pub fn forget_leader(&mut self) -> Result<()> {
        self.raft.step(Message::new(MessageType::MsgForgetLeader))
    }

    /// Requests a read index; the answer arrives as a [`ReadState`] with
    /// the same `rctx` in a later `Ready`. Without a known leader the
    /// request is refused with [`DropReason::NoLeader`] (etcd drops it
    /// silently, leaving the reader nothing to wait for but a timeout).
    pub fn read_index(&mut self, rctx: Bytes) -> Result<()> {
        // A candidate drops the request silently in etcd; say so instead, so
        // that the reader does not wait in vain. (A leaderless follower logs
        // etcd's line and returns the same error from `step`.)
        if self.raft.lead == NONE && self.raft.state != StateType::Follower {
            return Err(Error::ProposalDropped(DropReason::NoLeader));
        }
        let entry = Entry { data: rctx, ..Entry::default() };
        self.raft.step(Message { entries: vec![entry], ..Message::new(MessageType::MsgReadIndex) })
    }

    /// Bootstraps a new cluster: appends (as committed) one configuration
    /// change per peer and applies them. The storage must be empty. The
    /// first `Ready` then holds the hard state and entries to persist.
    pub fn bootstrap(&mut self, peers: &[Peer]) -> Result<()> {
        if peers.is_empty() {
            return Err(Error::BootstrapNoPeers);
        }
        if self.raft.raft_log.storage().last_index()? != 0 {
            return Err(Error::BootstrapNonEmpty);
        }
        // Nothing is persisted yet: start from an empty hard state so that
        // the first Ready carries one.
        self.prev_hard_state = HardState::default();
        self.raft.become_follower(1, NONE);
        let ents: Vec<Entry> = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| {
                let cc = AnyConfChange::V1(ConfChange {
                    change_type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: peer.id,
                    context: peer.context.clone(),
                    id: 0,
                });
                let (entry_type, data) = cc.to_entry_data();
                debug_assert_eq!(entry_type, EntryType::EntryConfChange);
                Entry { entry_type: Some(entry_type as i32), term: 1, index: i as u64 + 1, data }
            })
            .collect();
        let n = ents.len() as u64;
        self.raft.raft_log.append(ents);
        // Mark them committed and apply them now, so that the application
        // can campaign right away.
        self.raft.raft_log.set_committed(n);
        for peer in peers {
            let cc = ConfChange {
                change_type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: peer.id,
                ..ConfChange::default()
            };
            self.raft.apply_conf_change(&cc.as_v2()).map_err(Error::ConfChange)?;
        }
        Ok(())
    }

    /// The storage the node reads from.
    pub fn storage(&self) -> &S {
        self.raft.raft_log.storage()
    }

    /// The storage, mutably: for a storage the node owns, to persist a
    /// `Ready` or compact the log. The node caches nothing about what storage
    /// holds beyond what it was told through `Ready`, so writes must follow
    /// the application's duties (persist what a `Ready` hands out, compact
    /// only applied entries).
    pub fn storage_mut(&mut self) -> &mut S {
        self.raft.raft_log.storage_mut()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// Overrides the current randomized election timeout (test hook for
    /// etcd's interaction tests; redrawn on the next state change).
    #[cfg(feature = "testing")]
    pub fn set_randomized_election_timeout(&mut self, ticks: usize) {
        self.raft.set_randomized_election_timeout(ticks);
    }
}

/// Takes the messages out of `msgs`, leaving an empty buffer with room for
/// as many: the next `Ready`'s messages then do not regrow (and copy) the
/// buffer from nothing, one reallocation at a time.
fn take_keeping_room(msgs: &mut Vec<Message>) -> Vec<Message> {
    let room = msgs.len();
    std::mem::replace(msgs, Vec::with_capacity(room))
}
mod storage_messages;

pub use storage_messages::{StorageAppend, StorageApply, StorageResponses};

#[cfg(test)]
mod tests;
