//! The follower's half of `step`.

use super::{CampaignType, Raft};
use crate::error::{DropReason, Error, Result};
use crate::raftpb::{Message, MessageType};
use crate::state::ReadState;
use crate::storage::Storage;
use crate::util::NONE;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgProp => {
                if self.lead == NONE {
                    infof!(
                        self.logger,
                        "{:x} no leader at term {}; dropping proposal",
                        self.id,
                        self.term
                    );
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                } else if self.disable_proposal_forwarding {
                    infof!(
                        self.logger,
                        "{:x} not forwarding to leader {:x} at term {}; dropping proposal",
                        self.id,
                        self.lead,
                        self.term
                    );
                    return Err(Error::ProposalDropped(DropReason::ForwardingDisabled));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m)?;
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader => {
                if self.lead == NONE {
                    infof!(
                        self.logger,
                        "{:x} no leader at term {}; dropping leader transfer msg",
                        self.id,
                        self.term
                    );
                    return Ok(());
                }
                m.to = self.lead;
                // A transfer forwarded by a peer already carries its term;
                // `send` stamps ours.
                m.term = 0;
                self.send(m);
            }
            MessageType::MsgForgetLeader => {
                if self.lease_based_reads() {
                    errorf!(self.logger, "ignoring MsgForgetLeader due to ReadOnlyLeaseBased");
                    return Ok(());
                }
                if self.lead != NONE {
                    infof!(
                        self.logger,
                        "{:x} forgetting leader {:x} at term {}",
                        self.id,
                        self.lead,
                        self.term
                    );
                    self.lead = NONE;
                }
            }
            MessageType::MsgTimeoutNow => {
                infof!(
                    self.logger,
                    "{:x} [term {}] received MsgTimeoutNow from {:x} and starts an election to get leadership.",
                    self.id,
                    self.term,
                    m.from
                );
                // Transfers never use pre-vote: this is no partition recovery.
                self.hup(CampaignType::Transfer);
            }
            MessageType::MsgReadIndex => {
                if self.lead == NONE {
                    infof!(
                        self.logger,
                        "{:x} no leader at term {}; dropping index reading msg",
                        self.id,
                        self.term
                    );
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgReadIndexResp => {
                if m.entries.len() != 1 {
                    errorf!(
                        self.logger,
                        "{:x} invalid format of MsgReadIndexResp from {:x}, entries count: {}",
                        self.id,
                        m.from,
                        m.entries.len()
                    );
                    return Ok(());
                }
                let request_ctx = std::mem::take(&mut m.entries[0].data);
                self.read_states.push(ReadState { index: m.index, request_ctx });
            }
            _ => {}
        }
        Ok(())
    }
}
