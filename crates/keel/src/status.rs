//! A snapshot of a node's state for monitoring and tests: `BasicStatus`
//! (cheap) and `Status` (with the configuration and, on a leader, a copy of
//! every peer's progress).

use std::collections::BTreeMap;
use std::fmt;

use crate::raft::Raft;
use crate::raftpb::HardState;
use crate::state::{SoftState, StateType};
use crate::storage::Storage;
use crate::tracker::{Progress, TrackerConfig};

/// The state of a node without the per-peer progress; allocation free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BasicStatus {
    /// This node's id.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Leader and role.
    pub soft_state: SoftState,
    /// The applied index.
    pub applied: u64,
    /// The target of a leadership transfer in progress (0 if none).
    pub lead_transferee: u64,
}

/// The full state of a node.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The basic fields.
    pub basic: BasicStatus,
    /// The membership configuration.
    pub config: TrackerConfig,
    /// Every peer's progress, by id; filled only on the leader.
    pub progress: BTreeMap<u64, Progress>,
}

/// Whether a peer is a voter or a learner, for [`crate::RawNode::with_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressType {
    /// A voter.
    Peer,
    /// A learner.
    Learner,
}

impl BasicStatus {
    pub(crate) fn of<S: Storage>(r: &Raft<S>) -> BasicStatus {
        BasicStatus {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.raft_log.applied(),
            lead_transferee: r.lead_transferee,
        }
    }
}

impl Status {
    pub(crate) fn of<S: Storage>(r: &Raft<S>) -> Status {
        let basic = BasicStatus::of(r);
        let progress = if basic.soft_state.raft_state == StateType::Leader {
            r.trk.progress.iter().map(|(&id, pr)| (id, pr.clone())).collect()
        } else {
            BTreeMap::new()
        };
        Status { basic, config: r.trk.config.clone(), progress }
    }

    /// etcd's JSON form of the status (ids in hex, peers sorted by id).
    pub fn to_json(&self) -> String {
        let b = &self.basic;
        let mut j = format!(
            "{{\"id\":\"{:x}\",\"term\":{},\"vote\":\"{:x}\",\"commit\":{},\"lead\":\"{:x}\",\"raftState\":\"{}\",\"applied\":{},\"progress\":{{",
            b.id,
            b.hard_state.term,
            b.hard_state.vote,
            b.hard_state.commit,
            b.soft_state.lead,
            b.soft_state.raft_state,
            b.applied
        );
        let peers: Vec<String> = self
            .progress
            .iter()
            .map(|(id, pr)| {
                format!(
                    "\"{:x}\":{{\"match\":{},\"next\":{},\"state\":\"{}\"}}",
                    id, pr.matched, pr.next, pr.state
                )
            })
            .collect();
        j.push_str(&peers.join(","));
        j.push_str(&format!("}},\"leadtransferee\":\"{:x}\"}}", b.lead_transferee));
        j
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}
