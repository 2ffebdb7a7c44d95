//! Linearizable reads without log writes (Raft thesis 6.4): ReadIndex,
//! either confirmed by a quorum of heartbeats (safe) or by the leader lease.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;

use super::Raft;
use crate::config::ReadOnlyOption;
use crate::quorum::VoteResult;
use crate::raftpb::{Message, MessageType};
use crate::state::ReadState;
use crate::storage::Storage;
use crate::util::NONE;

/// A read request waiting for a quorum of heartbeat acknowledgements.
#[derive(Debug)]
pub(crate) struct ReadIndexStatus {
    /// The original request (its first entry's data is the request context).
    pub(crate) req: Message,
    /// The commit index when the request arrived.
    pub(crate) index: u64,
    /// Who acknowledged the heartbeat carrying this request's context.
    pub(crate) acks: BTreeMap<u64, bool>,
}

/// The leader's queue of safe read requests, keyed by request context.
#[derive(Debug)]
pub(crate) struct ReadOnly {
    pub(crate) option: ReadOnlyOption,
    pending: HashMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    pub(crate) fn new(option: ReadOnlyOption) -> ReadOnly {
        ReadOnly { option, pending: HashMap::new(), queue: VecDeque::new() }
    }

    /// Queues a request received at commit index `index`; a duplicate
    /// context is ignored.
    pub(crate) fn add_request(&mut self, index: u64, req: Message) {
        let ctx = req.entries[0].data.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(ctx.clone(), ReadIndexStatus { req, index, acks: BTreeMap::new() });
        self.queue.push_back(ctx);
    }

    /// Records a heartbeat acknowledgement for the request with `ctx`, and
    /// returns its acknowledgements so far.
    pub(crate) fn recv_ack(&mut self, from: u64, ctx: &[u8]) -> Option<&BTreeMap<u64, bool>> {
        let rs = self.pending.get_mut(ctx)?;
        rs.acks.insert(from, true);
        Some(&rs.acks)
    }

    /// Dequeues every request up to and including the one with the context
    /// of `m`: confirming a later request confirms the earlier ones too.
    pub(crate) fn advance(&mut self, m: &Message) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| *c == m.context) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(pos + 1);
        for ctx in self.queue.drain(..=pos) {
            match self.pending.remove(&ctx) {
                Some(rs) => out.push(rs),
                None => panic!("cannot find corresponding read state from pending map"),
            }
        }
        out
    }

    /// The context of the newest pending request (empty if none).
    pub(crate) fn last_pending_request_ctx(&self) -> Bytes {
        self.queue.back().cloned().unwrap_or_default()
    }
}

impl<S: Storage> Raft<S> {
    /// A leader's handling of `MsgReadIndex`.
    pub(crate) fn leader_read_index(&mut self, m: Message) {
        if m.entries.len() != 1 {
            // The request context travels as the one entry's data.
            errorf!(
                self.logger,
                "{:x} invalid format of MsgReadIndex from {:x}, entries count: {}",
                self.id,
                m.from,
                m.entries.len()
            );
            return;
        }
        // A lone voter is its own quorum.
        if self.trk.is_singleton() {
            let resp = self.response_to_read_index_req(m, self.raft_log.committed());
            if resp.to != NONE {
                self.send(resp);
            }
            return;
        }
        // Until it commits an entry in its own term, a new leader's commit
        // index may be stale: hold the request until then.
        if !self.committed_entry_in_current_term()
            && !planted_bug!(self, ReadIndexBeforeCommitInTerm)
        {
            self.pending_read_index_messages.push(m);
            return;
        }
        self.send_msg_read_index_response(m);
    }

    /// Counts a heartbeat acknowledgement towards pending safe reads, and
    /// answers those a quorum has now confirmed.
    pub(crate) fn handle_read_ack(&mut self, m: &Message) {
        let won = match self.read_only.recv_ack(m.from, &m.context) {
            Some(acks) => self.trk.config.voters.vote_result(acks) == VoteResult::Won,
            None => false,
        };
        if !won {
            return;
        }
        for rs in self.read_only.advance(m) {
            let resp = self.response_to_read_index_req(rs.req, rs.index);
            if resp.to != NONE {
                self.send(resp);
            }
        }
    }

    /// Answers the reads held back until the first commit of this term.
    pub(crate) fn release_pending_read_index_messages(&mut self) {
        if self.pending_read_index_messages.is_empty() {
            return;
        }
        if !self.committed_entry_in_current_term() {
            errorf!(
                self.logger,
                "pending MsgReadIndex should be released only after first commit in current term"
            );
            return;
        }
        let msgs = std::mem::take(&mut self.pending_read_index_messages);
        for m in msgs {
            self.send_msg_read_index_response(m);
        }
    }

    fn send_msg_read_index_response(&mut self, m: Message) {
        match self.read_only.option {
            ReadOnlyOption::Safe => {
                // Confirm leadership with a round of heartbeats; the leader
                // acknowledges its own.
                let ctx = m.entries[0].data.clone();
                self.read_only.add_request(self.raft_log.committed(), m);
                let id = self.id;
                self.read_only.recv_ack(id, &ctx);
                self.bcast_heartbeat_with_ctx(ctx);
            }
            ReadOnlyOption::LeaseBased => {
                let resp = self.response_to_read_index_req(m, self.raft_log.committed());
                if resp.to != NONE {
                    self.send(resp);
                }
            }
        }
    }

    /// The response to a read request: a read state if it is our own (then
    /// the returned message is empty), else a `MsgReadIndexResp` to send.
    pub(crate) fn response_to_read_index_req(&mut self, req: Message, read_index: u64) -> Message {
        if req.from == NONE || req.from == self.id {
            let request_ctx = req.entries.first().map(|e| e.data.clone()).unwrap_or_default();
            self.read_states.push(ReadState { index: read_index, request_ctx });
            return Message::default();
        }
        Message {
            msg_type: MessageType::MsgReadIndexResp as i32,
            to: req.from,
            index: read_index,
            entries: req.entries,
            ..Message::default()
        }
    }
}
