//! Membership: checking proposed configuration changes, applying committed
//! ones, and switching the tracker to a new configuration.

use std::fmt::Write as _;

use super::Raft;
use crate::confchange::{Changer, ConfChangeError};
use crate::error::{DropReason, Error, Result};
use crate::raftpb::{
    AnyConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    Message, MessageType,
};
use crate::state::StateType;
use crate::storage::Storage;
use crate::tracker::{ProgressMap, TrackerConfig};
use crate::util::NONE;

/// The proposal message carrying a configuration change. `None` is the empty
/// V2 change that leaves a joint configuration; its payload is empty, so the
/// uncommitted-size quota can never refuse it.
pub(crate) fn conf_change_to_msg(cc: Option<&AnyConfChange>) -> Message {
    let (entry_type, data) = match cc {
        Some(cc) => cc.to_entry_data(),
        None => (EntryType::EntryConfChangeV2, bytes::Bytes::new()),
    };
    let entry = Entry { entry_type: Some(entry_type as i32), data, ..Entry::default() };
    Message { entries: vec![entry], ..Message::new(MessageType::MsgProp) }
}

/// What makes a change one that no replica could apply: an unknown
/// transition or change type, or a storage-thread id to add. `None` if it
/// is well formed (whether it fits the configuration is checked later).
pub(crate) fn conf_change_defect(cc: &AnyConfChange) -> Option<String> {
    let v2 = cc.as_v2();
    if ConfChangeTransition::try_from(v2.transition).is_err() {
        return Some(format!("unknown transition {}", v2.transition));
    }
    for c in &v2.changes {
        match ConfChangeType::try_from(c.change_type) {
            Err(_) => return Some(format!("unknown change type {}", c.change_type)),
            Ok(ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode)
                if crate::util::is_local_msg_target(c.node_id) =>
            {
                return Some(format!("{:x} is a reserved id", c.node_id));
            }
            Ok(_) => {}
        }
    }
    None
}

/// A change as etcd's `DescribeConfChange` prints it in its log lines: always
/// in its V2 form (a V1 change as `AsV2()` makes it), e.g.
/// `transition:ConfChangeTransitionAuto changes:{type:ConfChangeAddNode node_id:3}`.
pub(crate) fn conf_change_text(cc: &AnyConfChange) -> String {
    fn type_name(t: i32) -> String {
        ConfChangeType::try_from(t).map_or_else(|_| t.to_string(), |t| format!("{t:?}"))
    }
    let cc = cc.as_v2();
    let transition = ConfChangeTransition::try_from(cc.transition)
        .map_or_else(|_| cc.transition.to_string(), |t| format!("{t:?}"));
    let mut out = format!("transition:{transition}");
    for c in &cc.changes {
        let _ = write!(out, " changes:{{type:{} node_id:{}}}", type_name(c.change_type), c.node_id);
    }
    if !cc.context.is_empty() {
        let _ = write!(out, " context:{}", crate::go_fmt::go_quote(&cc.context));
    }
    out
}

/// A configuration in the text form Go's protobuf library prints for `%v`
/// (fields in declaration order, repeated fields repeated), e.g.
/// `voters:1 voters:2 learners:3 auto_leave:false`.
pub(crate) fn conf_state_text(cs: &ConfState) -> String {
    let mut out = String::new();
    let fields: [(&str, &[u64]); 4] = [
        ("voters", &cs.voters),
        ("learners", &cs.learners),
        ("voters_outgoing", &cs.voters_outgoing),
        ("learners_next", &cs.learners_next),
    ];
    for (name, ids) in fields {
        for id in ids {
            let _ = write!(out, "{name}:{id} ");
        }
    }
    let _ = write!(out, "auto_leave:{}", cs.auto_leave);
    out
}

impl<S: Storage> Raft<S> {
    /// Checks each proposed configuration change against the active
    /// configuration; a change that fails is replaced by an empty normal
    /// entry (unless validation is disabled). Remembers the index of the
    /// last accepted change.
    pub(crate) fn check_proposed_conf_changes(&mut self, entries: &mut [Entry]) -> Result<()> {
        for (i, e) in entries.iter_mut().enumerate() {
            if matches!(e.entry_type, None | Some(0)) {
                // A normal entry (the usual case), without a call to decode.
                continue;
            }
            let cc = match AnyConfChange::from_entry(e) {
                Ok(Some(cc)) => cc,
                Ok(None) => continue,
                Err(err) => {
                    // A proposal may come from a peer: refuse it, don't panic.
                    warnf!(
                        self.logger,
                        "{:x} dropping undecodable conf change proposal: {}",
                        self.id,
                        err
                    );
                    return Err(Error::ProposalDropped(DropReason::InvalidConfChange));
                }
            };
            if let Some(defect) = conf_change_defect(&cc) {
                // Never commit what every replica would fail to apply.
                warnf!(
                    self.logger,
                    "{:x} dropping invalid conf change proposal: {}",
                    self.id,
                    defect
                );
                return Err(Error::ProposalDropped(DropReason::InvalidConfChange));
            }
            let already_pending = self.pending_conf_index > self.raft_log.applied();
            let already_joint = self.trk.config.voters.is_joint();
            let wants_leave_joint = cc.as_v2().changes.is_empty();

            let failed_check = if already_pending {
                Some(format!(
                    "possible unapplied conf change at index {} (applied to {})",
                    self.pending_conf_index,
                    self.raft_log.applied()
                ))
            } else if already_joint && !wants_leave_joint {
                Some("must transition out of joint config first".to_string())
            } else if !already_joint && wants_leave_joint {
                Some("not in joint state; refusing empty conf change".to_string())
            } else {
                None
            };

            match failed_check {
                Some(why) if !self.disable_conf_change_validation => {
                    infof!(
                        self.logger,
                        "{:x} ignoring conf change {} at config {}: {}",
                        self.id,
                        conf_change_text(&cc),
                        self.trk.config,
                        why
                    );
                    // etcd sets the type explicitly here (2 bytes more
                    // than a proposal's entry, which leaves it unset).
                    *e = Entry {
                        entry_type: Some(EntryType::EntryNormal as i32),
                        ..Entry::default()
                    };
                }
                // (Looked up here: a normal proposal does not need it.)
                _ => self.pending_conf_index = self.raft_log.last_index() + i as u64 + 1,
            }
        }
        Ok(())
    }

    /// Applies a committed configuration change and returns the new
    /// configuration.
    pub(crate) fn apply_conf_change(
        &mut self,
        cc: &ConfChangeV2,
    ) -> std::result::Result<ConfState, ConfChangeError> {
        let changer = Changer { tracker: &self.trk, last_index: self.raft_log.last_index() };
        let (cfg, prs) = if cc.leave_joint() {
            changer.leave_joint()?
        } else if let Some(auto_leave) = cc.enter_joint() {
            changer.enter_joint(auto_leave, &cc.changes)?
        } else {
            changer.simple(&cc.changes)?
        };
        Ok(self.switch_to_config(cfg, prs))
    }

    /// Installs a configuration and reacts to it: a removed or demoted leader
    /// may step down; a leader commits what the new quorum allows and probes
    /// new peers at once; a transfer to a removed node is aborted.
    pub(crate) fn switch_to_config(&mut self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState {
        self.trk.install(cfg, prs);
        self.refresh_peer_ids();

        infof!(self.logger, "{:x} switched to configuration {}", self.id, self.trk.config);
        let cs = self.trk.conf_state();
        let (present, learner) = match self.trk.progress.get(self.id) {
            Some(pr) => (true, pr.is_learner),
            None => (false, false),
        };
        self.is_learner = present && learner;

        if (!present || self.is_learner) && self.state == StateType::Leader {
            // Removed or demoted while leading.
            if self.step_down_on_removal {
                self.become_follower(self.term, NONE);
            }
            return cs;
        }
        // The rest only matters to a leader with peers.
        if self.state != StateType::Leader || cs.voters.is_empty() {
            return cs;
        }
        if self.maybe_commit() {
            // The new quorum may commit more: tell everyone.
            self.bcast_append();
        } else {
            // Probe new peers now rather than at the next heartbeat.
            for i in 0..self.peer_ids.len() {
                let id = self.peer_ids[i];
                if id != self.id {
                    self.maybe_send_append(id, false);
                }
            }
        }
        if self.lead_transferee != NONE && !self.trk.config.voters.contains(self.lead_transferee) {
            self.abort_leader_transfer();
        }
        cs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftpb::{ConfChange, conf_changes_from_string};

    #[test]
    fn conf_change_text_matches_etcd_logs() {
        let cc = ConfChangeV2 {
            changes: conf_changes_from_string("v3 v4").unwrap(),
            ..ConfChangeV2::default()
        };
        assert_eq!(
            conf_change_text(&cc.into()),
            "transition:ConfChangeTransitionAuto changes:{type:ConfChangeAddNode node_id:3} \
             changes:{type:ConfChangeAddNode node_id:4}"
        );
        assert_eq!(
            conf_change_text(&ConfChangeV2::default().into()),
            "transition:ConfChangeTransitionAuto"
        );
        let v1 = ConfChange {
            change_type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: 2,
            id: 7,
            ..ConfChange::default()
        };
        // Printed in its V2 form, as Go's `DescribeConfChange(cc)` does.
        assert_eq!(
            conf_change_text(&v1.into()),
            "transition:ConfChangeTransitionAuto changes:{type:ConfChangeRemoveNode node_id:2}"
        );
        let cs = ConfState { voters: vec![1, 2], learners: vec![3], ..ConfState::default() };
        assert_eq!(conf_state_text(&cs), "voters:1 voters:2 learners:3 auto_leave:false");
    }
}
