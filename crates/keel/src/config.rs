//! The parameters of a Raft node, with etcd's fields, defaults and checks.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::logger::{Logger, TracingLogger};
use crate::util::{NO_LIMIT, NONE, is_local_msg_target};

/// How read-only requests are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a quorum of heartbeats for each read batch.
    /// Always linearizable.
    #[default]
    Safe,
    /// Rely on the leader lease (CheckQuorum): no round trip, but only safe
    /// while clock drift between nodes is bounded.
    LeaseBased,
}

/// Everything needed to start a node. Build one with [`Config::new`] and
/// adjust the public fields; [`Config::validate`] (called by the node's
/// constructor) rejects invalid combinations with etcd's errors.
#[derive(Clone)]
pub struct Config {
    /// This node's id; not zero.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The
    /// actual timeout is randomized in `[election_tick, 2*election_tick)`.
    /// Must exceed `heartbeat_tick`; about ten times it is typical.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// The last applied index, when restarting: entries up to it are not
    /// handed out again.
    pub applied: u64,
    /// Persist and apply through `MsgStorageAppend` / `MsgStorageApply`
    /// messages to local threads instead of the `Ready`/`advance` calls.
    pub async_storage_writes: bool,
    /// Maximum encoded size of the entries in one append message
    /// ([`NO_LIMIT`](crate::NO_LIMIT), that is `u64::MAX`, for no limit; 0
    /// for one entry per message).
    pub max_size_per_msg: u64,
    /// Maximum encoded size of committed entries being applied at once
    /// (across `Ready`s with asynchronous writes). 0 means `max_size_per_msg`;
    /// if that is 0 too, one entry at a time.
    pub max_committed_size_per_ready: u64,
    /// Maximum payload bytes of a leader's uncommitted log tail; proposals
    /// beyond it are dropped. 0 means no limit.
    pub max_uncommitted_entries_size: u64,
    /// Maximum append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Maximum payload bytes in flight to one follower. 0 means no limit.
    pub max_inflight_bytes: u64,
    /// The leader steps down when a quorum has not been active for an
    /// election timeout.
    pub check_quorum: bool,
    /// Campaign with a pre-vote round first (Raft thesis 9.6).
    pub pre_vote: bool,
    /// How read-only requests are served.
    pub read_only_option: ReadOnlyOption,
    /// Followers drop proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Skip the propose-time checks of configuration changes.
    pub disable_conf_change_validation: bool,
    /// A leader removed from the configuration (or demoted) steps down.
    pub step_down_on_removal: bool,
    /// Where log lines go.
    pub logger: Arc<dyn Logger>,
    /// Seed of the generator behind randomized election timeouts, so that a
    /// run is reproducible. It is mixed with the id, so nodes sharing a seed
    /// still draw different timeouts.
    pub seed: u64,
    /// Test-only: a known bug to plant in the core, so that the simulator can
    /// prove it catches it (see [`PlantedBug`]). `None` in every real use.
    #[cfg(feature = "testing")]
    pub planted_bug: Option<PlantedBug>,
}

/// Test-only (feature `testing`): known safety bugs the core can be told to
/// commit, each at the one place it would live. keel-sim plants them to show
/// that its invariants and linearizability checks catch them.
#[cfg(feature = "testing")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// Commit an entry of an earlier term by counting replicas (Raft paper
    /// figure 8), instead of only entries of the leader's term.
    CommitPreviousTermByCount,
    /// Grant votes without checking that the candidate's log is up to date.
    VoteWithoutLogCheck,
    /// Accept lease-based reads without CheckQuorum, so a deposed leader
    /// keeps serving reads.
    LeaseReadWithoutCheckQuorum,
    /// Acknowledge appended entries (`MsgAppResp`) before they are durable.
    AckBeforePersist,
    /// Answer ReadIndex before the leader has committed an entry of its own
    /// term (skipping etcd's `committedEntryInCurrentTerm` check), when its
    /// commit index may still lag the one its predecessor reached.
    ReadIndexBeforeCommitInTerm,
}

/// Whether the test-only planted bug `$bug` is on in `$owner` (a `Config` or
/// the state machine); a constant `false` without the `testing` feature.
macro_rules! planted_bug {
    ($owner:expr, $bug:ident) => {{
        #[cfg(feature = "testing")]
        let on = $owner.planted_bug == Some($crate::config::PlantedBug::$bug);
        #[cfg(not(feature = "testing"))]
        let on = false;
        on
    }};
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("id", &self.id)
            .field("election_tick", &self.election_tick)
            .field("heartbeat_tick", &self.heartbeat_tick)
            .field("applied", &self.applied)
            .field("async_storage_writes", &self.async_storage_writes)
            .field("max_size_per_msg", &self.max_size_per_msg)
            .field("max_committed_size_per_ready", &self.max_committed_size_per_ready)
            .field("max_uncommitted_entries_size", &self.max_uncommitted_entries_size)
            .field("max_inflight_msgs", &self.max_inflight_msgs)
            .field("max_inflight_bytes", &self.max_inflight_bytes)
            .field("check_quorum", &self.check_quorum)
            .field("pre_vote", &self.pre_vote)
            .field("read_only_option", &self.read_only_option)
            .field("disable_proposal_forwarding", &self.disable_proposal_forwarding)
            .field("disable_conf_change_validation", &self.disable_conf_change_validation)
            .field("step_down_on_removal", &self.step_down_on_removal)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for node `id` with common settings: election after
    /// 10 ticks, heartbeat every tick, 1 MiB messages, 256 messages in flight,
    /// CheckQuorum and PreVote on, logging through `tracing`.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            async_storage_writes: false,
            max_size_per_msg: 1024 * 1024,
            max_committed_size_per_ready: 0,
            max_uncommitted_entries_size: 0,
            max_inflight_msgs: 256,
            max_inflight_bytes: 0,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            disable_conf_change_validation: false,
            step_down_on_removal: false,
            logger: Arc::new(TracingLogger),
            seed: 0,
            #[cfg(feature = "testing")]
            planted_bug: None,
        }
    }

    /// Checks the configuration, with etcd's rules and messages.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NONE {
            return Err(ConfigError::NoneId);
        }
        if is_local_msg_target(self.id) {
            return Err(ConfigError::LocalTargetId);
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::HeartbeatTick);
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(ConfigError::ElectionTick);
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::MaxInflightMsgs);
        }
        if self.max_inflight_bytes != 0 && self.max_inflight_bytes < self.max_size_per_msg {
            return Err(ConfigError::MaxInflightBytes);
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased
            && !self.check_quorum
            && !planted_bug!(self, LeaseReadWithoutCheckQuorum)
        {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        Ok(())
    }

    /// The uncommitted-log quota with 0 read as "no limit".
    pub(crate) fn effective_max_uncommitted_size(&self) -> u64 {
        if self.max_uncommitted_entries_size == 0 {
            NO_LIMIT
        } else {
            self.max_uncommitted_entries_size
        }
    }

    /// The apply quota with 0 read as `max_size_per_msg`, and at least one
    /// byte: with both limits 0 it hands out one entry at a time (etcd
    /// panics there, on its first committed entry).
    pub(crate) fn effective_max_committed_size_per_ready(&self) -> u64 {
        let limit = if self.max_committed_size_per_ready == 0 {
            self.max_size_per_msg
        } else {
            self.max_committed_size_per_ready
        };
        limit.max(1)
    }

    /// The inflight byte limit with 0 read as "no limit".
    pub(crate) fn effective_max_inflight_bytes(&self) -> u64 {
        if self.max_inflight_bytes == 0 { NO_LIMIT } else { self.max_inflight_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_matches_etcd() {
        let ok = Config { election_tick: 10, heartbeat_tick: 1, ..Config::new(1) };
        assert!(ok.validate().is_ok());
        let cases: Vec<(Config, &str)> = vec![
            (Config::new(0), "cannot use none as id"),
            (Config::new(u64::MAX), "cannot use local target as id"),
            (
                Config { heartbeat_tick: 0, ..Config::new(1) },
                "heartbeat tick must be greater than 0",
            ),
            (
                Config { election_tick: 1, ..Config::new(1) },
                "election tick must be greater than heartbeat tick",
            ),
            (
                Config { max_inflight_msgs: 0, ..Config::new(1) },
                "max inflight messages must be greater than 0",
            ),
            (
                Config { max_inflight_bytes: 10, ..Config::new(1) },
                "max inflight bytes must be >= max message size",
            ),
            (
                Config {
                    read_only_option: ReadOnlyOption::LeaseBased,
                    check_quorum: false,
                    ..Config::new(1)
                },
                "CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased",
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(cfg.validate().unwrap_err().to_string(), want);
        }
    }
}
