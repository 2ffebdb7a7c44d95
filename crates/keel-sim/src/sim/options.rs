//! The knobs of one simulation run, drawn from the seed ("swarm testing":
//! each run switches features and faults on or off at random, so that rare
//! combinations get their turn), with a few that the command line can pin.

use super::disk::StorageKind;
use std::fmt;

use keel::PlantedBug;

use super::rng::Rng;

/// Everything that shapes a run besides its seed. Times are in simulated
/// microseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Voters the cluster is bootstrapped with.
    pub nodes: usize,
    /// Extra node ids that membership changes may add (each id is used for
    /// one membership only, as etcd requires).
    pub spare_nodes: usize,
    /// Drive the nodes with `MsgStorageAppend`/`MsgStorageApply` instead of
    /// `Ready`/`advance`.
    pub async_storage_writes: bool,
    /// `Config::pre_vote`.
    pub pre_vote: bool,
    /// `Config::check_quorum`.
    pub check_quorum: bool,
    /// `ReadOnlyOption::LeaseBased` (drawn only with CheckQuorum, which the
    /// core requires).
    pub lease_reads: bool,
    /// `Config::step_down_on_removal`.
    pub step_down_on_removal: bool,
    /// `Config::disable_proposal_forwarding`.
    pub disable_proposal_forwarding: bool,
    /// `Config::max_size_per_msg` (0: one entry per append).
    pub max_size_per_msg: u64,
    /// `Config::max_committed_size_per_ready` (never 0 when
    /// `max_size_per_msg` is 0: etcd's default would then be a limit of 0
    /// bytes, on which the first apply panics, in etcd as in Keel).
    pub max_committed_size_per_ready: u64,
    /// `Config::max_inflight_msgs`.
    pub max_inflight_msgs: usize,
    /// `Config::max_inflight_bytes` (0: no limit).
    pub max_inflight_bytes: u64,
    /// `Config::max_uncommitted_entries_size` (0: no limit).
    pub max_uncommitted_entries_size: u64,
    /// Whether the operator tells followers to forget a leader it saw crash
    /// (`RawNode::forget_leader`).
    pub forget_crashed_leader: bool,
    /// `Config::election_tick`.
    pub election_tick: usize,
    /// `Config::heartbeat_tick`.
    pub heartbeat_tick: usize,
    /// The nominal time between two ticks of a node.
    pub tick_us: u64,
    /// Each node's tick interval is off the nominal one by up to this many
    /// percent (fixed per node and per run).
    pub tick_skew_pct: u64,
    /// Network delay bounds; a message's delay is uniform in between, so
    /// messages are reordered.
    pub delay_min_us: u64,
    /// See `delay_min_us`.
    pub delay_max_us: u64,
    /// Upper bound of the time a storage write (with its fsync) or an apply
    /// takes.
    pub fsync_max_us: u64,
    /// Probability, in thousandths, that the network drops a message.
    pub drop_per_mille: u32,
    /// Probability, in thousandths, that it delivers a message twice.
    pub dup_per_mille: u32,
    /// Mean time between partitions (0: none).
    pub partition_every_us: u64,
    /// Longest partition.
    pub partition_max_us: u64,
    /// Mean time between crashes (0: none).
    pub crash_every_us: u64,
    /// Longest time a crashed node stays down.
    pub down_max_us: u64,
    /// Concurrent clients, each with one operation outstanding.
    pub clients: usize,
    /// Keys the clients use (few keys: contention).
    pub keys: usize,
    /// Longest pause of a client between two operations.
    pub think_max_us: u64,
    /// A client gives up on an operation after this long; it is then
    /// recorded as never returned.
    pub client_timeout_us: u64,
    /// Mean time between membership changes (0: none).
    pub conf_change_every_us: u64,
    /// Mean time between leadership transfers (0: none).
    pub transfer_every_us: u64,
    /// A node snapshots its state machine every this many applied entries
    /// (0: never).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot when compacting.
    pub compact_keep: u64,
    /// Mean time between process pauses (0: none): a node stops handling
    /// anything (ticks, messages, its storage's completions) and resumes
    /// later with its state as it was, as after a long GC or a stopped VM.
    pub pause_every_us: u64,
    /// Longest pause.
    pub pause_max_us: u64,
    /// Events of the faulty phase.
    pub steps: u64,
    /// After the faulty phase the network heals and every node restarts; the
    /// cluster must then converge within this many election timeouts.
    pub liveness_election_timeouts: u64,
    /// A bug to plant in the core (proof that the checks have teeth).
    pub planted_bug: Option<PlantedBug>,
    /// What each node's disk is (the model, or the real WAL).
    pub storage: StorageKind,
}

/// Options the command line (or a test) pins instead of drawing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Number of initial voters.
    pub nodes: Option<usize>,
    /// Events of the faulty phase.
    pub steps: Option<u64>,
    /// Storage write mode.
    pub async_storage_writes: Option<bool>,
    /// A bug to plant.
    pub planted_bug: Option<PlantedBug>,
    /// The disks' storage.
    pub storage: Option<StorageKind>,
}

/// The faulty phase's default length in events.
pub const DEFAULT_STEPS: u64 = 3000;

impl Options {
    /// The options of run `seed`: drawn from the seed, then `overrides`
    /// applied. The draws use their own generator, so the run's own random
    /// choices do not depend on how options are drawn.
    pub fn swarm(seed: u64, overrides: &Overrides) -> Options {
        let mut r = Rng::new(seed ^ 0x6f70_7469_6f6e_7321);
        let check_quorum = r.chance(500);
        let conf_changes = r.chance(400);
        let max_size_per_msg = *r.pick(&[1 << 20, 1 << 20, 0, 256]);
        let election_tick = *r.pick(&[10, 10, 5, 20]);
        let mut o = Options {
            nodes: *r.pick(&[3, 3, 5]),
            spare_nodes: if conf_changes { 3 } else { 0 },
            async_storage_writes: r.chance(500),
            pre_vote: r.chance(500),
            check_quorum,
            lease_reads: check_quorum && r.chance(300),
            step_down_on_removal: r.chance(500),
            disable_proposal_forwarding: r.chance(100),
            max_size_per_msg,
            max_committed_size_per_ready: *r.pick(&[1 << 20, 1 << 20, 1, 4096]),
            max_inflight_msgs: *r.pick(&[256, 256, 4, 1]),
            max_inflight_bytes: if r.chance(250) {
                max_size_per_msg.max(256) * r.range(1, 4)
            } else {
                0
            },
            max_uncommitted_entries_size: *r.pick(&[0, 0, 0, 200, 2000]),
            forget_crashed_leader: r.chance(300),
            election_tick,
            heartbeat_tick: *r.pick(&[1, 1, 2]),
            tick_us: 10_000,
            tick_skew_pct: *r.pick(&[0, 5, 20]),
            delay_min_us: r.range(100, 1000),
            delay_max_us: *r.pick(&[2_000, 5_000, 15_000, 40_000]),
            fsync_max_us: *r.pick(&[200, 2_000, 5_000]),
            drop_per_mille: *r.pick(&[0, 10, 50, 150]),
            dup_per_mille: *r.pick(&[0, 10, 50]),
            partition_every_us: *r.pick(&[0, 500_000, 1_000_000, 3_000_000]),
            partition_max_us: *r.pick(&[100_000, 500_000, 2_000_000]),
            crash_every_us: *r.pick(&[0, 700_000, 2_000_000, 5_000_000]),
            down_max_us: *r.pick(&[50_000, 300_000, 1_000_000]),
            clients: r.range(1, 5) as usize,
            keys: r.range(1, 4) as usize,
            think_max_us: *r.pick(&[0, 5_000, 20_000]),
            client_timeout_us: *r.pick(&[500_000, 1_000_000, 2_000_000]),
            conf_change_every_us: if conf_changes { *r.pick(&[300_000, 1_000_000]) } else { 0 },
            transfer_every_us: *r.pick(&[0, 700_000, 3_000_000]),
            snapshot_every: *r.pick(&[0, 5, 20, 100]),
            compact_keep: *r.pick(&[0, 3, 10]),
            pause_every_us: *r.pick(&[0, 0, 1_000_000, 3_000_000]),
            pause_max_us: *r.pick(&[50_000, 300_000, 1_000_000]),
            steps: DEFAULT_STEPS,
            liveness_election_timeouts: 50,
            planted_bug: None,
            storage: StorageKind::Memory,
        };
        o.apply(overrides);
        o
    }

    /// Pins what `overrides` sets.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(n) = overrides.nodes {
            self.nodes = n;
        }
        if let Some(s) = overrides.steps {
            self.steps = s;
        }
        if let Some(a) = overrides.async_storage_writes {
            self.async_storage_writes = a;
        }
        if let Some(k) = overrides.storage {
            self.storage = k;
        }
        if overrides.planted_bug.is_some() {
            self.planted_bug = overrides.planted_bug;
        }
        if self.planted_bug == Some(PlantedBug::LeaseReadWithoutCheckQuorum) {
            // The bug is a configuration the core should have refused.
            self.lease_reads = true;
            self.check_quorum = false;
        }
    }

    /// The nominal election timeout in simulated time.
    pub fn election_timeout_us(&self) -> u64 {
        self.election_tick as u64 * self.tick_us
    }
}

impl fmt::Display for Options {
    /// One line of `name=value` pairs, enough to see what a failing run did.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "nodes={}+{} mode={} pre_vote={} check_quorum={} reads={} step_down_on_removal={} \
             no_forwarding={} max_size_per_msg={} max_committed_size_per_ready={} \
             max_inflight={}/{}B max_uncommitted={}B forget_crashed_leader={} ticks={}/{} \
             tick={}ms±{}% \
             delay={}..{}ms fsync<={}ms drop={}‰ dup={}‰ partition_every={}ms(<={}ms) \
             crash_every={}ms(down<={}ms) clients={} keys={} think<={}ms timeout={}ms \
             conf_change_every={}ms transfer_every={}ms snapshot_every={} compact_keep={} \
             pause_every={}ms(<={}ms) steps={} planted_bug={:?}",
            self.nodes,
            self.spare_nodes,
            if self.async_storage_writes { "async" } else { "sync" },
            self.pre_vote,
            self.check_quorum,
            if self.lease_reads { "lease" } else { "safe" },
            self.step_down_on_removal,
            self.disable_proposal_forwarding,
            self.max_size_per_msg,
            self.max_committed_size_per_ready,
            self.max_inflight_msgs,
            self.max_inflight_bytes,
            self.max_uncommitted_entries_size,
            self.forget_crashed_leader,
            self.election_tick,
            self.heartbeat_tick,
            ms(self.tick_us),
            self.tick_skew_pct,
            ms(self.delay_min_us),
            ms(self.delay_max_us),
            ms(self.fsync_max_us),
            self.drop_per_mille,
            self.dup_per_mille,
            ms(self.partition_every_us),
            ms(self.partition_max_us),
            ms(self.crash_every_us),
            ms(self.down_max_us),
            self.clients,
            self.keys,
            ms(self.think_max_us),
            ms(self.client_timeout_us),
            ms(self.conf_change_every_us),
            ms(self.transfer_every_us),
            self.snapshot_every,
            self.compact_keep,
            ms(self.pause_every_us),
            ms(self.pause_max_us),
            self.steps,
            self.planted_bug,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_is_a_function_of_the_seed_and_respects_overrides() {
        let none = Overrides::default();
        assert_eq!(Options::swarm(5, &none), Options::swarm(5, &none));
        let pinned = Overrides { nodes: Some(5), steps: Some(10), ..Overrides::default() };
        let o = Options::swarm(5, &pinned);
        assert_eq!((o.nodes, o.steps), (5, 10));
        for seed in 0..200 {
            let o = Options::swarm(seed, &none);
            assert!(!o.lease_reads || o.check_quorum, "seed {seed}: lease reads need CheckQuorum");
        }
    }
}
