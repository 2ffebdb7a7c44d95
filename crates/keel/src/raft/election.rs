//! Elections: starting a campaign (with or without a pre-vote round),
//! granting and refusing votes, tallying them as a candidate.

use bytes::Bytes;

use super::Raft;
use crate::error::Result;
use crate::log::EntryId;
use crate::quorum::VoteResult;
use crate::raftpb::{EntryType, Message, MessageType};
use crate::state::StateType;
use crate::storage::Storage;
use crate::util::{NONE, vote_resp_msg_type};

/// Ends a log scan early, or carries the storage error that ended it.
enum ScanStop {
    Found,
    Storage(crate::storage::StorageError),
}

impl From<crate::storage::StorageError> for ScanStop {
    fn from(err: crate::storage::StorageError) -> Self {
        ScanStop::Storage(err)
    }
}

/// Why a node campaigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CampaignType {
    /// The pre-vote round of an election (PreVote enabled).
    PreElection,
    /// A normal, time-based election (or its second round).
    Election,
    /// An election asked for by the leader, during a leadership transfer.
    Transfer,
}

impl CampaignType {
    /// The context etcd attaches to a transfer's vote requests.
    pub(crate) const TRANSFER_CONTEXT: &'static [u8] = b"CampaignTransfer";
}

impl<S: Storage> Raft<S> {
    /// Starts an election if this node can: it is not already leader, it is
    /// promotable, and no configuration change awaits application.
    pub(crate) fn hup(&mut self, t: CampaignType) {
        if self.state == StateType::Leader {
            debugf!(self.logger, "{:x} ignoring MsgHup because already leader", self.id);
            return;
        }
        if !self.promotable() {
            warnf!(self.logger, "{:x} is unpromotable and can not campaign", self.id);
            return;
        }
        if self.has_unapplied_conf_changes() {
            warnf!(
                self.logger,
                "{:x} cannot campaign at term {} since there are still pending configuration changes to apply",
                self.id,
                self.term
            );
            return;
        }
        infof!(self.logger, "{:x} is starting a new election at term {}", self.id, self.term);
        self.campaign(t);
    }

    /// Whether a committed but unapplied entry changes the configuration.
    /// The scan is paged by the apply size limit to bound memory.
    fn has_unapplied_conf_changes(&self) -> bool {
        if self.raft_log.applied() >= self.raft_log.committed() {
            return false;
        }
        let (lo, hi) = (self.raft_log.applied() + 1, self.raft_log.committed() + 1);
        let page_size = self.raft_log.max_applying_ents_size();
        let res = self.raft_log.scan(lo, hi, page_size, |ents| {
            let is_conf_change = |e: &crate::raftpb::Entry| {
                e.entry_type() == EntryType::EntryConfChange
                    || e.entry_type() == EntryType::EntryConfChangeV2
            };
            if ents.iter().any(is_conf_change) { Err(ScanStop::Found) } else { Ok(()) }
        });
        match res {
            Ok(()) => false,
            Err(ScanStop::Found) => true,
            Err(ScanStop::Storage(err)) => {
                panicf!(self.logger, "error scanning unapplied entries [{}, {}): {}", lo, hi, err)
            }
        }
    }

    /// Becomes (pre-)candidate and asks every voter for its vote. The vote
    /// for itself is counted once it is durable, like any other vote.
    pub(crate) fn campaign(&mut self, t: CampaignType) {
        if self.term >= u64::MAX - 1 {
            // The terms are used up (reachable only through a hostile term
            // just below the top, which the gateway lets through): stay put
            // rather than overflow.
            errorf!(
                self.logger,
                "{:x} cannot campaign at term {}: no term left",
                self.id,
                self.term
            );
            return;
        }
        if !self.promotable() {
            // Callers check this; a loud line if one did not.
            warnf!(
                self.logger,
                "{:x} is unpromotable; campaign() should have been called",
                self.id
            );
        }
        let (term, vote_msg) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            // Pre-votes are for the next term, before we increment ours.
            (self.term + 1, MessageType::MsgPreVote)
        } else {
            self.become_candidate();
            (self.term, MessageType::MsgVote)
        };
        // Voters in id order (the union of both halves of a joint config).
        let ids: Vec<u64> = self.trk.config.voters.ids().collect();
        for id in ids {
            if id == self.id {
                self.send(Message {
                    to: id,
                    term,
                    msg_type: vote_resp_msg_type(vote_msg) as i32,
                    ..Message::default()
                });
                continue;
            }
            let last = self.raft_log.last_entry_id();
            infof!(
                self.logger,
                "{:x} [logterm: {}, index: {}] sent {:?} request to {:x} at term {}",
                self.id,
                last.term,
                last.index,
                vote_msg,
                id,
                self.term
            );
            let context = if t == CampaignType::Transfer {
                Bytes::from_static(CampaignType::TRANSFER_CONTEXT)
            } else {
                Bytes::new()
            };
            self.send(Message {
                to: id,
                term,
                msg_type: vote_msg as i32,
                index: last.index,
                log_term: last.term,
                context: context.into(),
                ..Message::default()
            });
        }
    }

    /// Records a vote and returns the tally.
    fn poll(&mut self, id: u64, t: MessageType, v: bool) -> (usize, usize, VoteResult) {
        if v {
            infof!(
                self.logger,
                "{:x} received {:?} from {:x} at term {}",
                self.id,
                t,
                id,
                self.term
            );
        } else {
            infof!(
                self.logger,
                "{:x} received {:?} rejection from {:x} at term {}",
                self.id,
                t,
                id,
                self.term
            );
        }
        self.trk.record_vote(id, v);
        self.trk.tally_votes()
    }

    /// Whether a (pre-)vote request with a higher term should be ignored
    /// because we heard from a leader within the election timeout (the
    /// leader lease of CheckQuorum). Transfers are exempt.
    pub(crate) fn ignore_vote_in_lease(&self, m: &Message) -> bool {
        let force = m.context.as_ref() == CampaignType::TRANSFER_CONTEXT;
        let in_lease =
            self.check_quorum && self.lead != NONE && self.election_elapsed < self.election_timeout;
        if force || !in_lease {
            return false;
        }
        let last = self.raft_log.last_entry_id();
        infof!(
            self.logger,
            "{:x} [logterm: {}, index: {}, vote: {:x}] ignored {:?} from {:x} [logterm: {}, index: {}] at term {}: lease is not expired (remaining ticks: {})",
            self.id,
            last.term,
            last.index,
            self.vote,
            m.msg_type(),
            m.from,
            m.log_term,
            m.index,
            self.term,
            self.election_timeout as i64 - self.election_elapsed as i64
        );
        true
    }

    /// Grants or refuses a vote (or pre-vote) request at our term or above.
    pub(crate) fn handle_vote_request(&mut self, m: &Message) {
        let t = m.msg_type();
        // We can vote for a repeat of our vote, or when we have not voted and
        // know of no leader in this term, or for a pre-vote of a later term...
        let can_vote = self.vote == m.from
            || (self.vote == NONE && self.lead == NONE)
            || (t == MessageType::MsgPreVote && m.term > self.term);
        // ...and only for a candidate whose log is at least as up to date.
        let last = self.raft_log.last_entry_id();
        let cand = EntryId { term: m.log_term, index: m.index };
        // PLANTED BUG (testing only): skip the log check.
        let log_ok = planted_bug!(self, VoteWithoutLogCheck) || self.raft_log.is_up_to_date(cand);
        let grant = can_vote && log_ok;
        // Learners vote too: a learner may have been promoted without knowing
        // it yet, and the candidate knows better.
        infof!(
            self.logger,
            "{:x} [logterm: {}, index: {}, vote: {:x}] {} {:?} {} {:x} [logterm: {}, index: {}] at term {}",
            self.id,
            last.term,
            last.index,
            self.vote,
            if grant { "cast" } else { "rejected" },
            t,
            if grant { "for" } else { "from" },
            m.from,
            cand.term,
            cand.index,
            self.term
        );
        // A granted vote answers with the request's term, not ours: for a
        // pre-vote ours may be behind, and the candidate ignores stale terms.
        let term = if grant { m.term } else { self.term };
        self.send(Message {
            to: m.from,
            term,
            msg_type: vote_resp_msg_type(t) as i32,
            reject: !grant,
            ..Message::default()
        });
        if grant && t == MessageType::MsgVote {
            // Only real votes are recorded.
            self.election_elapsed = 0;
            self.vote = m.from;
        }
    }

    /// The step of candidates and pre-candidates; they differ in which vote
    /// responses they count.
    pub(crate) fn step_candidate(&mut self, m: Message) -> Result<()> {
        // Stale pre-vote responses may arrive while a candidate: ignore them.
        let my_vote_resp = if self.state == StateType::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        let t = m.msg_type();
        match t {
            MessageType::MsgProp => {
                infof!(
                    self.logger,
                    "{:x} no leader at term {}; dropping proposal",
                    self.id,
                    self.term
                );
                return Err(crate::error::Error::ProposalDropped(
                    crate::error::DropReason::NoLeader,
                ));
            }
            MessageType::MsgApp => {
                // `step` only lets through m.term == self.term here; use
                // ours so that no message can ever lower it.
                self.become_follower(self.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(self.term, m.from);
                self.handle_heartbeat(m)?;
            }
            MessageType::MsgSnap => {
                self.become_follower(self.term, m.from);
                self.handle_snapshot(m);
            }
            _ if t == my_vote_resp => {
                let (granted, rejected, res) = self.poll(m.from, t, !m.reject);
                infof!(
                    self.logger,
                    "{:x} has received {} {:?} votes and {} vote rejections",
                    self.id,
                    granted,
                    t,
                    rejected
                );
                match res {
                    VoteResult::Won => {
                        if self.state == StateType::PreCandidate {
                            self.campaign(CampaignType::Election);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    // A pre-vote response carries a future term; keep ours.
                    VoteResult::Lost => self.become_follower(self.term, NONE),
                    VoteResult::Pending => {}
                }
            }
            MessageType::MsgTimeoutNow => {
                debugf!(
                    self.logger,
                    "{:x} [term {} state {}] ignored MsgTimeoutNow from {:x}",
                    self.id,
                    self.term,
                    self.state,
                    m.from
                );
            }
            _ => {}
        }
        Ok(())
    }
}
