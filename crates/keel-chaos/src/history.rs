//! The recorded history: every client operation with its invoke and return
//! times and outcome, written in the checker's `keel` JSON-lines format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use serde_json::json;
use tokio::time::Instant;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A linearizable read.
    Get(String),
    /// Set the key to a value unique in the run.
    Put(String, String),
    /// Remove the key.
    Delete(String),
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Get(k) | Op::Put(k, _) | Op::Delete(k) => k,
        }
    }

    /// `get`, `put` or `delete`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get(_) => "get",
            Op::Put(..) => "put",
            Op::Delete(_) => "delete",
        }
    }
}

/// How an operation ended, as Jepsen classifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect; a get carries the value read (`None`: absent).
    Ok(Option<String>),
    /// It definitely did not take effect.
    Fail,
    /// Unknown (timeout, reset, 5xx): it may or may not have taken effect.
    Info,
}

/// One finished (or abandoned) operation.
#[derive(Clone, Debug)]
pub struct Record {
    /// The client process; a client takes a fresh one after an `Info`.
    pub process: u64,
    /// What was asked.
    pub op: Op,
    /// Nanoseconds since the run started.
    pub invoke: u64,
    /// Nanoseconds since the run started: when the client got its answer
    /// or gave up (an `Info` may still take effect at any later time; the
    /// checker treats it as never returning).
    pub ret: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The member asked.
    pub member: u64,
}

/// Collects records from every client.
pub struct Recorder {
    start: Instant,
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder { start: Instant::now(), records: Mutex::new(Vec::new()) }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a finished operation.
    pub fn push(&self, r: Record) {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).push(r);
    }

    /// Every record so far, in invoke order.
    pub fn records(&self) -> Vec<Record> {
        let mut out = self.records.lock().unwrap_or_else(PoisonError::into_inner).clone();
        out.sort_by_key(|r| (r.invoke, r.process));
        out
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// The history in the checker's `keel` format (events in time order).
pub fn to_keel_format(records: &[Record]) -> String {
    let mut events: Vec<(u64, u8, serde_json::Value)> = Vec::with_capacity(records.len() * 2);
    for r in records {
        let mut invoke = json!({
            "process": r.process, "type": "invoke", "op": r.op.name(),
            "key": r.op.key(), "time": r.invoke,
        });
        if let Op::Put(_, v) = &r.op {
            invoke["value"] = json!(v);
        }
        events.push((r.invoke, 0, invoke));
        let ret = r.ret;
        let ret_event = match &r.outcome {
            Outcome::Ok(value) => {
                let mut e = json!({ "process": r.process, "type": "ok", "time": ret });
                if matches!(r.op, Op::Get(_)) {
                    e["value"] = json!(value);
                }
                e
            }
            Outcome::Fail => json!({ "process": r.process, "type": "fail", "time": ret }),
            Outcome::Info => json!({ "process": r.process, "type": "info", "time": ret }),
        };
        events.push((ret, 1, ret_event));
    }
    events.sort_by_key(|(t, kind, _)| (*t, *kind));
    let mut out = String::new();
    for (_, _, e) in events {
        let _ = writeln!(out, "{e}");
    }
    out
}

/// Operation counts by type and outcome, for the summary.
pub fn counts(records: &[Record]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        let outcome = match r.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *out.entry(format!("{} {outcome}", r.op.name())).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_sim::linearizability::models::KvModel;
    use keel_sim::linearizability::{CheckOptions, Verdict, check, format};

    fn rec(process: u64, op: Op, invoke: u64, ret: u64, outcome: Outcome) -> Record {
        Record { process, op, invoke, ret, outcome, member: 1 }
    }

    #[test]
    fn round_trips_through_the_checker() {
        let put = |v: &str| Op::Put("k".into(), v.into());
        let get = || Op::Get("k".into());
        let good = vec![
            rec(1, put("a"), 0, 10, Outcome::Ok(None)),
            rec(2, get(), 20, 30, Outcome::Ok(Some("a".into()))),
            rec(3, put("b"), 25, 35, Outcome::Info),
            rec(4, Op::Delete("k".into()), 40, 45, Outcome::Fail),
            rec(2, get(), 50, 60, Outcome::Ok(Some("b".into()))),
        ];
        let parsed = format::keel::parse(&to_keel_format(&good)).unwrap();
        assert_eq!(parsed.len(), 4, "the failed delete is left out");
        assert_eq!(check(&KvModel, &parsed, &CheckOptions::default()), Verdict::Linearizable);

        // A read of a value older than one acknowledged before it began.
        let mut bad = good.clone();
        bad.push(rec(5, get(), 70, 80, Outcome::Ok(Some("a".into()))));
        let parsed = format::keel::parse(&to_keel_format(&bad)).unwrap();
        let verdict = check(&KvModel, &parsed, &CheckOptions::default());
        assert!(matches!(verdict, Verdict::NotLinearizable { .. }), "{verdict}");
    }
}
