//! The workload both libraries run, and the drivers that time it.
//!
//! Three nodes live in memory in one thread; messages go from one node's
//! `Ready` straight into the other's `step`, without serialization. Node 1
//! campaigns and becomes leader. Every loop ([`Cluster::run_loop`]) first
//! delivers all queued messages, then handles at most one `Ready` per node in
//! id order: persist its entries and hard state to the in-memory storage,
//! queue its messages, apply its committed entries, advance. The log is
//! compacted every [`COMPACT_EVERY`] applied entries, keeping the previous
//! 10,000 as a catch-up margin (as etcd's raftexample keeps
//! `snapshotCatchUpEntriesN`), so a follower never needs a snapshot.
//!
//! The comparison is only honest if both sides really do the work they are
//! credited with, so [`AppliedLog`] checks every applied entry (indexes are
//! contiguous, payloads are [`PAYLOAD_BYTES`] long) and the throughput
//! driver, after the timed window, drains the cluster and checks that every
//! proposal was applied on every node.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark driver must read the clock to time the workload"
)]

use crate::alloc::{AllocProbe, PeakTracker};
use std::time::{Duration, Instant};

/// The number of nodes in the cluster.
pub const NODES: u64 = 3;
/// The node that campaigns and leads.
pub const LEADER: u64 = 1;
/// Size of every proposal's payload.
pub const PAYLOAD_BYTES: usize = 128;
/// The leader keeps at most this many proposals proposed but not applied.
pub const MAX_OUTSTANDING: u64 = 4096;
/// Proposals are made in groups of this many.
pub const PROPOSAL_BATCH: usize = 64;
/// The byte every payload is filled with.
const PAYLOAD_BYTE: u8 = 0xab;
/// Each node compacts its storage every this many applied entries.
pub const COMPACT_EVERY: u64 = 10_000;
/// Election timeout, in ticks (the workload never ticks; set for parity).
pub const ELECTION_TICK: usize = 10;
/// Heartbeat interval, in ticks.
pub const HEARTBEAT_TICK: usize = 1;
/// Maximum bytes of entries in one append message (and one `Ready`'s
/// committed entries).
pub const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// Maximum append messages in flight to one follower.
pub const MAX_INFLIGHT_MSGS: usize = 256;
/// Loops allowed to drain the cluster after a timed window, or to commit one
/// proposal when measuring latency, before the run is declared stuck.
const MAX_DRAIN_LOOPS: u64 = 1_000_000;
/// Upper bound on latency samples kept per run (bounds the driver's memory).
const MAX_LATENCY_SAMPLES: usize = 2_000_000;

/// How proposals are handed to the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One `propose()` call per entry: the API everyone uses.
    Single,
    /// Each library's best batching path: Keel's `propose_batch`, and for
    /// raft-rs stepping one `MsgPropose` that carries all the entries.
    Batch,
}

impl Mode {
    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Batch => "batch",
        }
    }
}

/// How fast the throughput driver proposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Before every loop, refill the window of [`MAX_OUTSTANDING`]
    /// proposals (about a third of it per loop): few messages per entry.
    Refill,
    /// At most [`PROPOSAL_BATCH`] proposals per loop (while fewer than
    /// [`MAX_OUTSTANDING`] are outstanding): more messages and `Ready`s per
    /// entry, closer to what a busy server sees.
    PerLoop,
}

/// A throughput workload: a proposal path and a pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// How proposals reach the library.
    pub mode: Mode,
    /// How many are proposed before each loop.
    pub pace: Pace,
}

impl Workload {
    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match (self.mode, self.pace) {
            (Mode::Single, Pace::Refill) => "single",
            (Mode::Batch, Pace::Refill) => "batch",
            (Mode::Single, Pace::PerLoop) => "single-64",
            (Mode::Batch, Pace::PerLoop) => "batch-64",
        }
    }
}

/// When a throughput run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// After this long (the timed figures).
    Time(Duration),
    /// Once the leader applied this many application entries (for counting
    /// instructions under callgrind, where time means nothing).
    Entries(u64),
}

/// A fresh payload of [`PAYLOAD_BYTES`], as a client request arrives: one
/// allocation per proposal, on both sides.
pub fn fresh_payload() -> Vec<u8> {
    vec![PAYLOAD_BYTE; PAYLOAD_BYTES]
}

/// One side of the comparison: a three-node cluster of one library.
pub trait Cluster: Sized {
    /// The library's name, as printed.
    const NAME: &'static str;

    /// Builds the three nodes, elects node 1 and runs until its first
    /// (empty) entry is applied everywhere.
    fn start() -> Self;

    /// Proposes `n` fresh payloads ([`fresh_payload`]) with one
    /// `propose()` call each.
    fn propose_each(&mut self, n: usize);

    /// Proposes `n` fresh payloads through the library's batching path.
    fn propose_batch(&mut self, n: usize);

    /// Delivers every queued message, then handles one `Ready` per node.
    fn run_loop(&mut self);

    /// What node `id` has applied so far.
    fn applied(&self, id: u64) -> &AppliedLog;

    /// Turns on (or off) stamping the time at which the leader first sees
    /// new committed normal entries.
    fn stamp_leader_commits(&mut self, on: bool);

    /// Snapshot messages sent so far (the workload should need none).
    fn snapshots_sent(&self) -> u64;

    /// Proposes `n` fresh payloads in the given mode.
    fn propose(&mut self, mode: Mode, n: usize) {
        match mode {
            Mode::Single => self.propose_each(n),
            Mode::Batch => self.propose_batch(n),
        }
    }
}

/// A node's view of what it applied, checked entry by entry, and when its
/// storage is due for compaction.
#[derive(Debug, Default)]
pub struct AppliedLog {
    /// The last applied index.
    pub index: u64,
    /// Application entries applied (normal entries with a payload; the
    /// leader's empty entry is not counted).
    pub normal: u64,
    /// Applied index at which the next compaction is due.
    next_compaction: u64,
    /// Applied index recorded at the last compaction point; the next
    /// compaction discards the log up to it.
    mark: u64,
    /// Whether to stamp the arrival time of committed normal entries.
    stamp: bool,
    /// When committed normal entries were last seen, if stamping.
    pub stamped_at: Option<Instant>,
}

impl AppliedLog {
    /// An empty log view.
    pub fn new() -> AppliedLog {
        AppliedLog { next_compaction: COMPACT_EVERY, ..AppliedLog::default() }
    }

    /// Turns stamping on or off.
    pub fn set_stamp(&mut self, on: bool) {
        self.stamp = on;
        self.stamped_at = None;
    }

    /// Applies one committed entry: checks that it follows the last one and
    /// that an application entry carries a whole payload.
    ///
    /// # Panics
    /// On a gap or repeat in the indexes, or a payload of the wrong length:
    /// either means the library (or the loop) is broken and the figures
    /// would be a lie.
    pub fn apply(&mut self, index: u64, normal: bool, data_len: usize) {
        assert_eq!(index, self.index + 1, "applied entries must be contiguous");
        self.index = index;
        if normal && data_len != 0 {
            assert_eq!(data_len, PAYLOAD_BYTES, "entry {index} has a truncated payload");
            self.normal += 1;
            if self.stamp && self.stamped_at.is_none() {
                self.stamped_at = Some(Instant::now());
            }
        }
    }

    /// Called after applying a batch: returns the index to compact the
    /// storage to, if a compaction is due.
    pub fn compaction_due(&mut self) -> Option<u64> {
        if self.index < self.next_compaction {
            return None;
        }
        let compact_to = self.mark;
        self.mark = self.index;
        self.next_compaction = self.index + COMPACT_EVERY;
        (compact_to > 0).then_some(compact_to)
    }
}

/// The outcome of one throughput run.
#[derive(Clone, Copy, Debug)]
pub struct ThroughputRun {
    /// Application entries committed and applied on the leader in the window.
    pub entries: u64,
    /// The length of the window.
    pub elapsed: Duration,
    /// Loops run in the window.
    pub loops: u64,
    /// Highest live heap bytes above the level before the cluster was built,
    /// sampled twice per loop.
    pub peak_bytes: u64,
    /// Heap allocation calls per applied entry in the window.
    pub allocs_per_entry: f64,
}

impl ThroughputRun {
    /// Entries per second.
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs a throughput workload until `budget` is spent: the leader keeps up
/// to [`MAX_OUTSTANDING`] proposals outstanding, proposing
/// [`PROPOSAL_BATCH`] at a time, at `workload`'s pace. Afterwards it drains
/// the cluster and checks that every proposal was applied on every node.
///
/// # Panics
/// If a node loses or duplicates an entry, or the cluster stops making
/// progress.
pub fn run_throughput<C: Cluster>(
    workload: Workload,
    budget: Budget,
    probe: AllocProbe,
) -> ThroughputRun {
    let mut peak = PeakTracker::start(probe);
    let mut cluster = C::start();
    let base_applied = cluster.applied(LEADER).normal;
    let allocs_before = probe.alloc_calls();
    let start = Instant::now();
    let (proposed, loops) = drive_window(&mut cluster, workload, budget, &mut peak);
    let elapsed = start.elapsed();
    let entries = cluster.applied(LEADER).normal - base_applied;
    let allocs = probe.alloc_calls() - allocs_before;
    drain(&mut cluster, base_applied + proposed);
    assert_eq!(cluster.snapshots_sent(), 0, "{}: the workload should need no snapshot", C::NAME);
    ThroughputRun {
        entries,
        elapsed,
        loops,
        peak_bytes: peak.peak_bytes(),
        allocs_per_entry: allocs as f64 / entries.max(1) as f64,
    }
}

/// The measured part of [`run_throughput`]: proposes and runs loops until
/// `budget` is spent. Returns the proposals made and the loops run.
///
/// Never inlined: `bench/instructions.sh` counts the instructions executed
/// inside this function with callgrind (`--toggle-collect`).
#[inline(never)]
fn drive_window<C: Cluster>(
    cluster: &mut C,
    workload: Workload,
    budget: Budget,
    peak: &mut PeakTracker,
) -> (u64, u64) {
    let base_applied = cluster.applied(LEADER).normal;
    let mut proposed = 0u64;
    let mut loops = 0u64;
    let start = Instant::now();
    loop {
        let applied = cluster.applied(LEADER).normal - base_applied;
        let done = match budget {
            // Reading the clock costs about as much as a short loop; every
            // 16th loop is precise enough over seconds.
            Budget::Time(window) => loops.is_multiple_of(16) && start.elapsed() >= window,
            Budget::Entries(n) => applied >= n,
        };
        if done {
            return (proposed, loops);
        }
        let mut room = MAX_OUTSTANDING - (proposed - applied);
        while room >= PROPOSAL_BATCH as u64 {
            cluster.propose(workload.mode, PROPOSAL_BATCH);
            proposed += PROPOSAL_BATCH as u64;
            room -= PROPOSAL_BATCH as u64;
            if workload.pace == Pace::PerLoop {
                break;
            }
        }
        peak.sample();
        cluster.run_loop();
        peak.sample();
        loops += 1;
    }
}

/// Proposes `n` fresh payloads on the leader and runs loops until the
/// leader has applied them: one synchronous round of the pipeline. Returns
/// the loops it took.
///
/// # Panics
/// If the proposals never commit.
pub fn propose_and_apply<C: Cluster>(cluster: &mut C, mode: Mode, n: usize) -> u64 {
    let target = cluster.applied(LEADER).normal + n as u64;
    cluster.propose(mode, n);
    let mut loops = 0;
    while cluster.applied(LEADER).normal < target {
        cluster.run_loop();
        loops += 1;
        assert!(loops < MAX_DRAIN_LOOPS, "{}: a proposal never committed", C::NAME);
    }
    loops
}

/// Runs loops until every node applied `proposed` application entries.
fn drain<C: Cluster>(cluster: &mut C, proposed: u64) {
    let mut loops = 0;
    while (1..=NODES).any(|id| cluster.applied(id).normal < proposed) {
        cluster.run_loop();
        loops += 1;
        assert!(loops < MAX_DRAIN_LOOPS, "{}: cluster stopped making progress", C::NAME);
    }
    for id in 1..=NODES {
        assert_eq!(
            cluster.applied(id).normal,
            proposed,
            "{}: node {id} applied a different number of entries than were proposed",
            C::NAME
        );
    }
}

/// Runs the latency workload for `window`: one proposal at a time, timed
/// from the propose call to the loop in which the leader's `Ready` first
/// carries it among the committed entries. Returns the samples in
/// nanoseconds.
///
/// # Panics
/// If a proposal never commits.
pub fn run_latency<C: Cluster>(mode: Mode, window: Duration) -> Vec<u64> {
    let mut cluster = C::start();
    let mut samples = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    // Warm up caches and buffers before recording.
    let warmup = 1_000;
    let mut n = 0u64;
    while start.elapsed() < window && samples.len() < MAX_LATENCY_SAMPLES {
        let before = cluster.applied(LEADER).normal;
        cluster.stamp_leader_commits(true);
        let t0 = Instant::now();
        cluster.propose(mode, 1);
        let mut loops = 0;
        while cluster.applied(LEADER).normal == before {
            cluster.run_loop();
            loops += 1;
            assert!(loops < MAX_DRAIN_LOOPS, "{}: a proposal never committed", C::NAME);
        }
        let t1 = cluster.applied(LEADER).stamped_at.expect("stamped when the entry committed");
        n += 1;
        if n > warmup {
            samples.push((t1 - t0).as_nanos() as u64);
        }
    }
    cluster.stamp_leader_commits(false);
    let proposed = cluster.applied(LEADER).normal;
    drain(&mut cluster, proposed);
    samples
}

/// Latency percentiles of a set of samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    /// Median, in nanoseconds.
    pub p50: u64,
    /// 99th percentile, in nanoseconds.
    pub p99: u64,
    /// 99.9th percentile, in nanoseconds.
    pub p999: u64,
    /// Number of samples.
    pub count: usize,
}

impl Percentiles {
    /// Computes the percentiles (nearest rank); all zero for no samples.
    pub fn of(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |p: f64| {
            let rank = (p * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Percentiles { p50: at(0.50), p99: at(0.99), p999: at(0.999), count: samples.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s: Vec<u64> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut s);
        assert_eq!((p.p50, p.p99, p.p999, p.count), (500, 990, 999, 1000));
        assert_eq!(Percentiles::of(&mut []).count, 0);
    }

    #[test]
    fn applied_log_compacts_behind_a_margin() {
        let mut log = AppliedLog::new();
        for i in 1..COMPACT_EVERY {
            log.apply(i, true, PAYLOAD_BYTES);
        }
        assert_eq!(log.compaction_due(), None);
        log.apply(COMPACT_EVERY, false, 0);
        // The first compaction point only records the mark.
        assert_eq!(log.compaction_due(), None);
        for i in COMPACT_EVERY + 1..=2 * COMPACT_EVERY {
            log.apply(i, true, PAYLOAD_BYTES);
        }
        assert_eq!(log.compaction_due(), Some(COMPACT_EVERY));
        assert_eq!(log.normal, 2 * COMPACT_EVERY - 1);
    }

    #[test]
    fn applied_log_rejects_gaps_and_short_payloads() {
        let gap = std::panic::catch_unwind(|| {
            let mut log = AppliedLog::new();
            log.apply(2, true, PAYLOAD_BYTES);
        });
        assert!(gap.is_err());
        let short = std::panic::catch_unwind(|| {
            let mut log = AppliedLog::new();
            log.apply(1, true, 3);
        });
        assert!(short.is_err());
    }
}
