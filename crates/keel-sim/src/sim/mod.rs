//! A deterministic simulator of Keel clusters (TigerBeetle's VOPR and
//! FoundationDB's simulation testing are the models).
//!
//! One run is a pure function of its seed and [`Options`]: a single thread
//! drives N `keel::RawNode`s, their disks and a network through an event
//! queue ordered by simulated time, and every random choice comes from one
//! seeded generator. A failing seed replays exactly (`keel-sim --seed S`).
//!
//! # A run
//! 1. **Faulty phase** (`Options::steps` events). Clients run get, put,
//!    delete and cas operations against a replicated key-value store
//!    ([`crate::kv`]); an operator changes the membership (add, remove,
//!    promote, demote, replace; V1 and V2; joint with auto or explicit leave)
//!    and transfers leadership; nodes snapshot and compact their logs. The
//!    faults injected are the ones Raft claims to survive:
//!    - messages dropped, duplicated, delayed and so reordered;
//!    - partitions, symmetric or one way, healing after a while;
//!    - crashes at any event boundary, losing everything not fsynced (see
//!      [`disk`]), and restarts from the disk;
//!    - clocks that tick at different rates (up to `tick_skew_pct`);
//!    - process pauses: a node handles nothing for a while (its events wait)
//!      and resumes with the state it had, a leader still believing it
//!      leads.
//!
//!    Not injected: disk corruption, lost fsynced data, Byzantine messages.
//! 2. **Liveness phase.** The network heals, crashed nodes restart, removed
//!    nodes stop, and the cluster must converge within
//!    `liveness_election_timeouts` election timeouts: one leader at the
//!    highest term, all it has committed, every member applied to its commit
//!    index with the same configuration. Failing that is a liveness failure,
//!    reported apart from safety.
//! 3. **Checks.** The safety invariants ([`invariants`]) are checked after
//!    every event, and at the end the replicas' states are compared and the
//!    client history is checked for linearizability.
//!
//! # Lease-based reads
//! etcd's lease (CheckQuorum) is weaker than the Raft thesis's: followers
//! may elect a new leader one election timeout after last hearing from the
//! old one, but the old leader only steps down at its next CheckQuorum, up to
//! two election timeouts after its last quorum contact (etcd-io/raft#166),
//! and a leadership transfer restarts that clock (etcd-io/raft#99). Reads a
//! leader serves from its lease after a later term already had a leader are
//! therefore outside what etcd guarantees: they are left out of the
//! linearizability check. What is checked instead is the lease contract: a
//! leader serves a lease-based read only within `2 * election_tick` of its
//! own ticks (plus one election timeout per transfer it started) after last
//! hearing from a quorum. Without CheckQuorum a deposed leader would serve
//! them forever, which the contract catches.
//!
//! # The application's duties
//! The simulated application does what etcd's contract asks, plus one thing it
//! leaves implicit (etcd-io/etcd#11510): the core installs a snapshot's
//! configuration as soon as it steps the `MsgSnap`, so committed entries
//! handed out before and not yet applied must be skipped (their configuration
//! changes would land on the snapshot's configuration). The application skips
//! entries at or below a snapshot the core has handed out, and in synchronous
//! mode steps a `MsgSnap` only between two `Ready`s.
//!
//! # Layout
//! - [`options`]: the knobs, drawn from the seed (swarm testing).
//! - [`rng`]: the seeded generator.
//! - [`network`], [`disk`]: the faulty environment.
//! - [`node`]: one server's state.
//! - `cluster`: the event loop and how events drive nodes and storage.
//! - `workload`: clients, operator.
//! - [`invariants`]: the safety properties.
//! - [`trace`]: the event trace.

mod cluster;
pub mod disk;
pub mod invariants;
pub mod network;
pub mod node;
pub mod options;
pub mod rng;
pub mod trace;
mod workload;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use keel::{DiscardLogger, Logger};

use crate::linearizability::models::KvModel;
use crate::linearizability::{CheckOptions, Verdict, check};
use cluster::{Cluster, RunPhase};
pub use disk::StorageKind;
pub use invariants::Violation;
pub use options::{Options, Overrides};
pub use trace::{Trace, TraceRecord, TraceSink};

/// Counters of one run, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events processed.
    pub steps: u64,
    /// Simulated time at the end, in microseconds.
    pub sim_time_us: u64,
    /// Client operations started.
    pub ops_invoked: u64,
    /// ... that returned.
    pub ops_ok: u64,
    /// ... that the client gave up on.
    pub ops_timed_out: u64,
    /// ... that the core refused (dropped proposals).
    pub ops_refused: u64,
    /// Operations in the checked history.
    pub ops_checked: u64,
    /// Lease-based reads served after a later term had a leader.
    pub lease_reads_unverifiable: u64,
    /// Leaderships seen.
    pub leaders_elected: u64,
    /// Crashes.
    pub crashes: u64,
    /// ... with entries being written (on a WAL disk they may survive in
    /// part, the last record torn).
    pub crashes_mid_write: u64,
    /// Restarts.
    pub restarts: u64,
    /// Partitions.
    pub partitions: u64,
    /// Process pauses.
    pub pauses: u64,
    /// Configuration changes proposed by the operator.
    pub conf_changes_proposed: u64,
    /// Configuration changes applied (counted once per index).
    pub conf_changes_applied: u64,
    /// Leadership transfers asked for.
    pub transfers: u64,
    /// Snapshots created by state machines.
    pub snapshots_created: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// The commit index the cluster converged on.
    pub final_commit: u64,
    /// Members left behind at convergence by a known etcd limitation (see
    /// `Cluster::converged`).
    pub stranded_members: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// A safety invariant broke.
    Safety(Violation),
    /// The healed cluster did not converge in time.
    Liveness(String),
    /// The client history is not linearizable (the counterexample).
    NotLinearizable(String),
    /// The checker ran out of budget (not a failure).
    CheckUnknown(String),
    /// The core (or the simulator) panicked.
    Panic(String),
}

impl Outcome {
    /// Whether the run found a problem (an unknown check verdict is not one).
    pub fn is_failure(&self) -> bool {
        !matches!(self, Outcome::Passed | Outcome::CheckUnknown(_))
    }

    /// Whether a safety property failed (invariant or linearizability).
    pub fn is_safety_failure(&self) -> bool {
        matches!(self, Outcome::Safety(_) | Outcome::NotLinearizable(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Safety(v) => write!(f, "SAFETY VIOLATION: {v}"),
            Outcome::Liveness(s) => write!(f, "LIVENESS FAILURE: {s}"),
            Outcome::NotLinearizable(s) => write!(f, "NOT LINEARIZABLE: {s}"),
            Outcome::CheckUnknown(s) => write!(f, "linearizability unknown: {s}"),
            Outcome::Panic(s) => write!(f, "PANIC: {s}"),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The options it ran with.
    pub options: Options,
    /// How it ended.
    pub outcome: Outcome,
    /// Counters.
    pub stats: RunStats,
    /// The last trace lines (kept for failures).
    pub trace_tail: Vec<String>,
}

impl fmt::Display for RunReport {
    /// The failure report: seed, options, outcome, then the last events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed={} {}", self.seed, self.outcome)?;
        writeln!(f, "options: {}", self.options)?;
        writeln!(f, "stats: {:?}", self.stats)?;
        if !self.trace_tail.is_empty() {
            writeln!(f, "last {} events:", self.trace_tail.len())?;
            for line in &self.trace_tail {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

/// How a run reports as it goes.
pub struct RunSettings {
    /// Trace lines kept for a failure report.
    pub trace_tail: usize,
    /// Where to stream every trace line (replay), if anywhere.
    pub sink: Option<TraceSink>,
    /// The core's logger (discarded by default).
    pub logger: Arc<dyn Logger>,
    /// The linearizability check's wall-clock budget.
    pub check_timeout: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            trace_tail: 40,
            sink: None,
            logger: Arc::new(DiscardLogger),
            check_timeout: Duration::from_secs(20),
        }
    }
}

impl fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunSettings").field("trace_tail", &self.trace_tail).finish_non_exhaustive()
    }
}

/// Most events one run may take, faulty and liveness phases together: a
/// guard against a run that never ends (it is a liveness failure).
const MAX_EVENTS_FACTOR: u64 = 50;

/// Runs the simulation of `seed` with `options`.
pub fn run(seed: u64, options: &Options, settings: RunSettings) -> RunReport {
    let trace = Trace::new(settings.trace_tail, settings.sink);
    let mut cluster = Cluster::new(seed, options.clone(), trace, settings.logger);
    let result = catch_unwind(AssertUnwindSafe(|| drive(&mut cluster, settings.check_timeout)));
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            Outcome::Panic(format!("at step {}: {msg}", cluster.step))
        }
    };
    let mut stats = cluster.stats.clone();
    stats.steps = cluster.step;
    stats.sim_time_us = cluster.now;
    let trace_tail = if outcome.is_failure() { cluster.trace.tail() } else { Vec::new() };
    RunReport { seed, options: options.clone(), outcome, stats, trace_tail }
}

fn drive(c: &mut Cluster, check_timeout: Duration) -> Outcome {
    if let Err(v) = c.boot() {
        return Outcome::Safety(v);
    }
    let max_events = c.o.steps.saturating_mul(MAX_EVENTS_FACTOR).max(100_000);
    let converged_at = loop {
        match c.next() {
            Ok(true) => {}
            Ok(false) => return Outcome::Liveness("the event queue ran dry".to_owned()),
            Err(v) => return Outcome::Safety(v),
        }
        match c.phase {
            RunPhase::Faulty if c.step >= c.o.steps => {
                if let Err(v) = c.heal() {
                    return Outcome::Safety(v);
                }
            }
            RunPhase::Faulty => {}
            RunPhase::Liveness { deadline } => {
                if let Some((commit, stranded)) = c.converged() {
                    c.stats.stranded_members = stranded;
                    break commit;
                }
                if c.now > deadline || c.step > max_events {
                    return Outcome::Liveness(format!(
                        "no convergence within {} election timeouts of healing\n{}",
                        c.o.liveness_election_timeouts,
                        c.describe_nodes()
                    ));
                }
            }
        }
    };
    c.stats.final_commit = converged_at;
    c.note_with(0, || format!("=== converged at commit {converged_at} ==="));
    if let Err(v) = c.check_replicas(converged_at) {
        return Outcome::Safety(v);
    }
    let history = c.checked_history();
    c.stats.ops_checked = history.len() as u64;
    let options = CheckOptions { timeout: Some(check_timeout), max_cache_bytes: 256 << 20 };
    match check(&KvModel, &history, &options) {
        Verdict::Linearizable => Outcome::Passed,
        Verdict::NotLinearizable { counterexample } => {
            Outcome::NotLinearizable(counterexample.to_string())
        }
        Verdict::Unknown { reason } => Outcome::CheckUnknown(reason.to_string()),
    }
}
