//! A linearizability checker for client histories, independent of the simulator.
//!
//! A history is a list of [`Operation`]s, each with the times it was called and returned.
//! It is linearizable if each operation can be given one instant between its call and its
//! return such that, taken in that order, the operations are a legal sequential run of a
//! [`Model`]. [`check`] decides this with the search of Wing and Gong, memoized as Lowe
//! proposed and as the Porcupine checker does it (see the `search` module for the
//! algorithm), and returns a [`Verdict`].
//!
//! - **Partitions.** The model maps each operation to a key ([`Model::key`]); operations with
//!   different keys are independent and each key's sub-history is checked alone. The history
//!   is linearizable iff every partition is. Partitions are searched in key order, round
//!   robin with a step budget that doubles each round, so one hard key does not stall the
//!   others; the check stops at the first partition found not linearizable.
//! - **Unknown outcomes.** An operation that never returned (the client crashed or timed out)
//!   has `return_time: None` and `output: None`: it returns after every other event, with an
//!   output the model accepts whatever the state. It may therefore take effect anywhere after
//!   its call, or never (linearized after everything else, its effect is unobservable).
//! - **Bounds.** [`CheckOptions::max_cache_bytes`] caps the memoization cache, the only part
//!   of the search that grows beyond the size of the history; [`CheckOptions::timeout`] caps
//!   the wall-clock time. Either one running out gives [`Verdict::Unknown`], never an abort.
//! - **Counterexamples.** For a history that is not linearizable the verdict names the
//!   partition, the longest linearizable prefix the search found, the state after it, and
//!   the operations that could come next in real time but cannot be linearized there
//!   (Porcupine's "partial linearizations"). See [`Counterexample`].
//!
//! # Layout
//! - [`model`]: the [`Model`] trait.
//! - [`models`]: the key-value (get/put/delete/cas), Jepsen etcd register and
//!   get/put/append key-value models.
//! - [`format`](mod@format): parsers for the `keel`, `jepsen-etcd` and `porcupine-kv` history
//!   files.
//! - `search`: the per-partition search.
//!
//! # Example
//! ```
//! use keel_sim::linearizability::models::{KvInput, KvModel, KvOutput};
//! use keel_sim::linearizability::{check, CheckOptions, Operation, Verdict};
//!
//! let put = Operation {
//!     client_id: 1,
//!     input: KvInput::Put { key: "k".into(), value: "v".into() },
//!     call_time: 0,
//!     output: Some(KvOutput::Written),
//!     return_time: Some(10),
//! };
//! // Overlaps the put, so it may read either the old or the new value.
//! let get = Operation {
//!     client_id: 2,
//!     input: KvInput::Get { key: "k".into() },
//!     call_time: 5,
//!     output: Some(KvOutput::Get(None)),
//!     return_time: Some(8),
//! };
//! let verdict = check(&KvModel, &[put, get], &CheckOptions::default());
//! assert_eq!(verdict, Verdict::Linearizable);
//! ```

pub mod format;
pub mod model;
pub mod models;
mod search;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

pub use model::{Model, Step};

use search::{MemoryBudget, PartitionSearch, Progress};

/// One client operation of a history: what was asked, when, and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process) that issued it; only shown in counterexamples.
    pub client_id: u64,
    /// What the client asked for.
    pub input: I,
    /// When it was called, in any unit that orders events (e.g. nanoseconds, line numbers).
    pub call_time: u64,
    /// What the client was told; `None` when unknown (see [`Model::Output`]).
    pub output: Option<O>,
    /// When it returned; `None` if it never did, which orders its return after every other
    /// event. A return time before the call time is read as the call time. Events at equal
    /// times are ordered calls first, so operations of different clients that touch count
    /// as concurrent; a client's next operation, called at the instant its previous one
    /// returned, comes after it (a client has one operation open at a time).
    pub return_time: Option<u64>,
}

impl<I, O> Operation<I, O> {
    /// When it returned, a return before its call read as the call.
    pub(crate) fn returned_at(&self) -> Option<u64> {
        self.return_time.map(|t| t.max(self.call_time))
    }
}

/// A history of `M`'s operations, as the parsers return it.
pub type History<M> = Vec<Operation<<M as Model>::Input, <M as Model>::Output>>;

/// The limits of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Wall-clock budget; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Approximate bytes the memoization caches of all partitions may hold together.
    pub max_cache_bytes: usize,
}

impl Default for CheckOptions {
    /// No time limit and a 1 GiB cache.
    fn default() -> Self {
        CheckOptions { timeout: None, max_cache_bytes: 1 << 30 }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition has a linearization.
    Linearizable,
    /// Some partition has none; the first one found is explained.
    NotLinearizable {
        /// What went wrong, in the first partition found not linearizable.
        counterexample: Box<Counterexample>,
    },
    /// The check ran out of a budget before reaching an answer.
    Unknown {
        /// Which budget ran out, and where.
        reason: UnknownReason,
    },
}

impl fmt::Display for Verdict {
    /// `linearizable`, `not linearizable` followed by the counterexample on the next lines,
    /// or `unknown: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("linearizable"),
            Verdict::NotLinearizable { counterexample } => {
                write!(f, "not linearizable\n{counterexample}")
            }
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// Why a check gave [`Verdict::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// [`CheckOptions::timeout`] passed.
    TimeBudget {
        /// The budget that ran out.
        timeout: Duration,
        /// The partition being searched when it ran out.
        partition: String,
        /// Its number of operations.
        operations: usize,
    },
    /// The cache would have grown past [`CheckOptions::max_cache_bytes`].
    CacheLimit {
        /// The limit.
        max_cache_bytes: usize,
        /// The partition whose search hit it.
        partition: String,
        /// Its number of operations.
        operations: usize,
    },
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::TimeBudget { timeout, partition, operations } => write!(
                f,
                "time budget of {:.3}s ran out while checking {partition} ({operations} \
                 operations)",
                timeout.as_secs_f64()
            ),
            UnknownReason::CacheLimit { max_cache_bytes, partition, operations } => write!(
                f,
                "search cache limit of {} MiB reached while checking {partition} ({operations} \
                 operations)",
                max_cache_bytes.div_ceil(1 << 20)
            ),
        }
    }
}

/// Why a history is not linearizable, kept small: the partition, the longest linearizable
/// prefix the search found, and the operations that could not be linearized after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The partition (e.g. `key "k"`).
    pub partition: String,
    /// How many operations the partition has.
    pub partition_operations: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<OperationSummary>,
    /// The model state after the prefix.
    pub state_after_prefix: String,
    /// The operations not in the prefix that were called before the first of the rest
    /// returned, in call order: one of them must come next, and the model rejects each of
    /// them in the state after the prefix. (None is merely a dead end: since the prefix is
    /// the longest found, any that the model accepted would have made a longer one.)
    pub stuck: Vec<OperationSummary>,
}

/// One operation, as shown in a counterexample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationSummary {
    /// Its index in the checked history.
    pub index: usize,
    /// [`Operation::client_id`].
    pub client_id: u64,
    /// [`Operation::call_time`].
    pub call_time: u64,
    /// [`Operation::return_time`].
    pub return_time: Option<u64>,
    /// The model's description ([`Model::describe_operation`]).
    pub description: String,
}

/// How many prefix operations a printed counterexample shows (the last ones).
const PREFIX_SHOWN: usize = 10;

impl fmt::Display for OperationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {} (client {}, t={}..", self.index, self.client_id, self.call_time)?;
        match self.return_time {
            Some(t) => write!(f, "{t}")?,
            None => f.write_str("never returned")?,
        }
        write!(f, "): {}", self.description)
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "partition: {} ({} operations)", self.partition, self.partition_operations)?;
        write!(f, "longest linearizable prefix: {} operations", self.prefix.len())?;
        let hidden = self.prefix.len().saturating_sub(PREFIX_SHOWN);
        if hidden > 0 {
            write!(f, " ({hidden} earlier ones not shown)")?;
        }
        writeln!(f)?;
        for op in &self.prefix[hidden..] {
            writeln!(f, "  {op}")?;
        }
        writeln!(f, "state after the prefix: {}", self.state_after_prefix)?;
        write!(f, "one of these must come next, and none is possible in that state:")?;
        for op in &self.stuck {
            write!(f, "\n  {op}")?;
        }
        Ok(())
    }
}

/// Steps each unfinished partition gets in the first round; each round doubles it.
const FIRST_ROUND_STEPS: u64 = 1 << 12;

/// Checks `history` against `model` within the limits of `options`.
///
/// Untrusted histories cannot make this panic; the operations' outputs must be of the kind
/// the model expects for their inputs (the parsers in [`format`](mod@format) guarantee it),
/// or they are simply judged illegal.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Verdict {
    let deadline = options.timeout.map(|timeout| now() + timeout);
    let mut by_key: BTreeMap<M::Key, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        by_key.entry(model.key(&operation.input)).or_default().push(index);
    }
    let ties = search::client_ties(history);
    let (keys, mut searches): (Vec<M::Key>, Vec<Option<PartitionSearch<'_, M>>>) = by_key
        .into_iter()
        .map(|(key, ops)| (key, Some(PartitionSearch::new(model, history, &ties, ops))))
        .unzip();
    let mut memory = MemoryBudget { used_bytes: 0, max_bytes: options.max_cache_bytes };
    let mut pending: Vec<usize> = (0..searches.len()).collect();
    let mut steps = FIRST_ROUND_STEPS;
    let mut gave_up = None;
    while !pending.is_empty() {
        let mut unfinished = Vec::with_capacity(pending.len());
        for p in pending {
            let Some(search) = searches[p].as_mut() else { continue };
            let progress = search.run(steps, deadline, &mut memory);
            match progress {
                Progress::Paused => {
                    unfinished.push(p);
                    continue;
                }
                Progress::NotLinearizable => {
                    let counterexample = counterexample(model, history, &keys[p], search);
                    return Verdict::NotLinearizable { counterexample: Box::new(counterexample) };
                }
                Progress::TimeUp => {
                    let reason = gave_up.unwrap_or_else(|| UnknownReason::TimeBudget {
                        timeout: options.timeout.unwrap_or_default(),
                        partition: keys[p].to_string(),
                        operations: search.len(),
                    });
                    return Verdict::Unknown { reason };
                }
                Progress::CacheFull => {
                    gave_up.get_or_insert_with(|| UnknownReason::CacheLimit {
                        max_cache_bytes: options.max_cache_bytes,
                        partition: keys[p].to_string(),
                        operations: search.len(),
                    });
                }
                Progress::Linearizable => {}
            }
            // Finished or abandoned: give its cache memory back to the others.
            memory.used_bytes -= search.cache_bytes();
            searches[p] = None;
        }
        pending = unfinished;
        steps = steps.saturating_mul(2);
    }
    match gave_up {
        Some(reason) => Verdict::Unknown { reason },
        None => Verdict::Linearizable,
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the checker's time budget is wall-clock by design; it only ever turns a verdict \
              into Unknown"
)]
fn now() -> Instant {
    Instant::now()
}

fn counterexample<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    key: &M::Key,
    search: &PartitionSearch<'_, M>,
) -> Counterexample {
    let summary = |index: usize| {
        let operation = &history[index];
        OperationSummary {
            index,
            client_id: operation.client_id,
            call_time: operation.call_time,
            return_time: operation.return_time,
            description: model.describe_operation(&operation.input, operation.output.as_ref()),
        }
    };
    Counterexample {
        partition: key.to_string(),
        partition_operations: search.len(),
        prefix: search.best_prefix().into_iter().map(summary).collect(),
        state_after_prefix: model.describe_state(search.best_state()),
        stuck: search.stuck_after_best().into_iter().map(summary).collect(),
    }
}

#[cfg(test)]
mod tests;
