//! The checks at the end of a run, and its report.
//!
//! 1. **Convergence**: once healed, every member reports the same commit
//!    index, has applied it, and lists the same keys and values.
//! 2. **Final reads**: a linearizable read of every key on every member is
//!    added to the history, so the checker also judges the final state.
//! 3. **Linearizability** of the whole history (keel-sim's checker, on the
//!    history file as written, so the file is exactly what was judged).
//! 4. **No lost acknowledged write**: each `ok` put is in the final state,
//!    or some write to its key that did not fail may come after it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use keel_sim::linearizability::models::KvModel;
use keel_sim::linearizability::{CheckOptions, Verdict, check, format};
use serde_json::json;
use tokio::time::Instant;

use crate::Options;
use crate::client::{Processes, perform};
use crate::cluster::{Cluster, HarnessError};
use crate::history::{self, Op, Outcome, Record, Recorder};
use crate::nemesis::{self, FaultRecord};

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// The checker's verdict on the whole history.
    pub verdict: Verdict,
    /// How long the check took.
    pub check_time: Duration,
    /// Acknowledged puts missing from the final state with nothing after
    /// them that could have overwritten them.
    pub lost_writes: Vec<String>,
    /// `Ok`: every member agrees on this many keys; `Err`: how they differ.
    pub convergence: Result<usize, String>,
    /// Members that exited on their own during the run (not removed).
    pub crashed: Vec<u64>,
    /// Operation counts by type and outcome (`put ok`, `get fail`, ...).
    pub counts: BTreeMap<String, u64>,
    /// Operations in the history.
    pub operations: usize,
    /// Every fault injected, in order.
    pub faults: Vec<FaultRecord>,
    /// The report as text (also in `summary.txt`).
    pub summary: String,
}

impl Report {
    /// 0: linearizable, nothing lost, converged, no crash; 1: a violation;
    /// 2: the checker ran out of budget (and nothing else failed).
    pub fn exit_code(&self) -> u8 {
        let broken = matches!(self.verdict, Verdict::NotLinearizable { .. })
            || !self.lost_writes.is_empty()
            || self.convergence.is_err()
            || !self.crashed.is_empty();
        match (&self.verdict, broken) {
            (_, true) => 1,
            (Verdict::Unknown { .. }, false) => 2,
            _ => 0,
        }
    }

    /// Faults injected, by kind.
    pub fn faults_by_kind(&self) -> BTreeMap<String, u64> {
        nemesis::by_kind(&self.faults)
    }
}

/// Waits until every running member of the configuration has applied the
/// same commit index and lists the same pairs; returns that state.
async fn converge(cluster: &Cluster, limit: Duration) -> Result<BTreeMap<String, String>, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no member answered");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ids = cluster.config();
        let mut states = BTreeMap::new();
        let mut indexes = BTreeMap::new();
        for &id in &ids {
            let status = cluster.get_json(id, "/status").await;
            let list =
                cluster.get_json(id, "/kv?prefix=&consistency=serializable&limit=10000").await;
            let (Some(status), Some(list)) = (status, list) else {
                last = format!("member {id} does not answer");
                break;
            };
            let commit = status["commit"].as_u64().unwrap_or(0);
            let applied = status["applied"].as_u64().unwrap_or(0);
            indexes.insert(id, (commit, applied));
            let pairs: BTreeMap<String, String> = list["kvs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kv| {
                    Some((kv["key"].as_str()?.to_owned(), kv["value"].as_str()?.to_owned()))
                })
                .collect();
            states.insert(id, pairs);
        }
        if states.len() < ids.len() {
            continue;
        }
        let commits: Vec<u64> = indexes.values().map(|(c, _)| *c).collect();
        let caught_up =
            indexes.values().all(|(c, a)| c == a) && commits.windows(2).all(|w| w[0] == w[1]);
        let first = states.values().next().cloned().unwrap_or_default();
        if caught_up && states.values().all(|s| *s == first) {
            return Ok(first);
        }
        last = if caught_up {
            let differ: Vec<String> = states
                .iter()
                .map(|(id, s)| {
                    format!(
                        "member {id}: {} keys {:?}",
                        s.len(),
                        s.iter().take(3).collect::<Vec<_>>()
                    )
                })
                .collect();
            format!(
                "members applied the same index but hold different states: {}",
                differ.join("; ")
            )
        } else {
            format!("members have not caught up (commit, applied): {indexes:?}")
        };
    }
    Err(last)
}

/// Acknowledged puts that are neither in `final_state` nor possibly
/// overwritten by a later write to their key.
fn lost_writes(records: &[Record], final_state: &BTreeMap<String, String>) -> Vec<String> {
    let mut writes: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| !matches!(r.op, Op::Get(_)) && r.outcome != Outcome::Fail) {
        writes.entry(r.op.key()).or_default().push(r);
    }
    let mut lost = Vec::new();
    for (key, ws) in &writes {
        for w in ws.iter().filter(|w| matches!(w.outcome, Outcome::Ok(_))) {
            let Op::Put(_, value) = &w.op else { continue };
            if final_state.get(*key) == Some(value) {
                continue;
            }
            // Another write could be ordered after this one only if it had
            // not returned before this one was invoked (an info never returns).
            let overwritable = ws
                .iter()
                .any(|o| !std::ptr::eq(*o, *w) && (o.outcome == Outcome::Info || o.ret > w.invoke));
            if !overwritable {
                lost.push(format!(
                    "put {key}={value} (process {}, acknowledged at {:.3}s by member {}) is missing \
                     from the final state ({:?}) and nothing later wrote {key}",
                    w.process,
                    w.ret as f64 / 1e9,
                    w.member,
                    final_state.get(*key)
                ));
            }
        }
    }
    lost
}

/// Converges, reads the final state into the history, checks, and writes
/// `history.jsonl`, `summary.json` and `summary.txt`.
pub async fn finish(
    o: &Options,
    cluster: &Cluster,
    rec: &Recorder,
    procs: &Processes,
    faults: Vec<FaultRecord>,
    crashed: Vec<u64>,
    started: Instant,
) -> Result<Report, HarnessError> {
    let convergence = converge(cluster, Duration::from_secs(60)).await;
    // Final linearizable reads of every key on every member.
    for id in cluster.config() {
        for k in 0..o.workload.keys {
            let op = Op::Get(format!("k{k}"));
            let r = perform(cluster, rec, procs.next(), id, op, o.workload.timeout).await;
            rec.push(r);
        }
    }
    let records = rec.records();
    let text = history::to_keel_format(&records);
    let history_path = o.out.join("history.jsonl");
    std::fs::write(&history_path, &text).map_err(|source| HarnessError::Io {
        what: format!("writing {}", history_path.display()),
        source,
    })?;
    let t = Instant::now();
    let verdict = match format::keel::parse(&text) {
        Ok(ops) => {
            let opts = CheckOptions { timeout: Some(o.check_timeout), ..CheckOptions::default() };
            // The search is CPU-bound: keep it off the runtime's workers.
            tokio::task::spawn_blocking(move || check(&KvModel, &ops, &opts))
                .await
                .map_err(|e| HarnessError::Timeout(format!("the checker panicked: {e}")))?
        }
        Err(e) => {
            return Err(HarnessError::Timeout(format!("the history does not parse: {e}")));
        }
    };
    let check_time = t.elapsed();
    let final_state = convergence.clone().unwrap_or_default();
    let lost = if convergence.is_ok() { lost_writes(&records, &final_state) } else { Vec::new() };
    let mut report = Report {
        verdict,
        check_time,
        lost_writes: lost,
        convergence: convergence.map(|s| s.len()),
        crashed,
        counts: history::counts(&records),
        operations: records.len(),
        faults,
        summary: String::new(),
    };
    report.summary = summary_text(o, cluster, &report, started.elapsed());
    write_summary(o, cluster, &report)?;
    Ok(report)
}

fn summary_text(o: &Options, cluster: &Cluster, r: &Report, elapsed: Duration) -> String {
    let mut s = String::new();
    let kinds: Vec<String> = o.kinds.iter().map(|k| format!("{k:?}").to_lowercase()).collect();
    let _ = writeln!(
        s,
        "keel-chaos: seed {}, {} members, {:?} of faults ({}), {} clients on {} keys{}",
        o.seed,
        o.nodes,
        o.duration,
        kinds.join(","),
        o.workload.clients,
        o.workload.keys,
        o.planted_bug.as_ref().map(|b| format!(", planted bug {b}")).unwrap_or_default()
    );
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "operations: {} ({})", r.operations, counts.join(", "));
    let by_kind: Vec<String> = r.faults_by_kind().iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "faults: {} ({})", r.faults.len(), by_kind.join(", "));
    for f in &r.faults {
        let _ = writeln!(s, "  {:7.1}s..{:7.1}s  {}", f.start_s, f.end_s, f.what);
    }
    let _ = writeln!(s, "member starts: {:?}", cluster.starts());
    let _ = writeln!(s, "members that died on their own: {:?}", r.crashed);
    match &r.convergence {
        Ok(keys) => {
            let _ = writeln!(
                s,
                "convergence: all {} members hold the same {keys} keys",
                cluster.config().len()
            );
        }
        Err(e) => {
            let _ = writeln!(s, "convergence: FAILED: {e}");
        }
    }
    let _ = writeln!(s, "lost acknowledged writes: {}", r.lost_writes.len());
    for l in r.lost_writes.iter().take(20) {
        let _ = writeln!(s, "  {l}");
    }
    let _ = writeln!(s, "verdict: {} (checked in {:.2}s)", r.verdict, r.check_time.as_secs_f64());
    let _ = writeln!(
        s,
        "run took {:.1}s; history, logs and data in {}",
        elapsed.as_secs_f64(),
        o.out.display()
    );
    s
}

fn write_summary(o: &Options, cluster: &Cluster, r: &Report) -> Result<(), HarnessError> {
    let verdict = match &r.verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::NotLinearizable { .. } => "not linearizable".to_string(),
        Verdict::Unknown { reason } => format!("unknown: {reason}"),
    };
    let json = json!({
        "seed": o.seed,
        "nodes": o.nodes,
        "duration_s": o.duration.as_secs_f64(),
        "planted_bug": o.planted_bug,
        "operations": r.operations,
        "counts": r.counts,
        "faults": r.faults.iter().map(FaultRecord::to_json).collect::<Vec<_>>(),
        "faults_by_kind": r.faults_by_kind(),
        "member_starts": cluster.starts().iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "crashed": r.crashed,
        "convergence": match &r.convergence { Ok(n) => json!({"ok": true, "keys": n}), Err(e) => json!({"ok": false, "error": e}) },
        "lost_writes": r.lost_writes,
        "verdict": verdict,
        "check_seconds": r.check_time.as_secs_f64(),
        "exit_code": r.exit_code(),
    });
    for (name, text) in
        [("summary.txt", r.summary.clone()), ("summary.json", format!("{json:#}\n"))]
    {
        let path = o.out.join(name);
        std::fs::write(&path, text).map_err(|source| HarnessError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, v: &str, invoke: u64, ret: u64, outcome: Outcome) -> Record {
        Record {
            process: invoke,
            op: Op::Put(key.into(), v.into()),
            invoke,
            ret,
            outcome,
            member: 1,
        }
    }

    #[test]
    fn a_missing_acknowledged_put_is_lost_unless_something_may_follow_it() {
        let state: BTreeMap<String, String> = [("k".to_string(), "b".to_string())].into();
        // "a" acknowledged, then "b" written after it: overwritten, fine.
        let fine =
            [put("k", "a", 0, 10, Outcome::Ok(None)), put("k", "b", 20, 30, Outcome::Ok(None))];
        assert!(lost_writes(&fine, &state).is_empty());
        // "b" finished before "a" began, yet "b" is what is left: "a" is lost.
        let lost =
            [put("k", "b", 0, 10, Outcome::Ok(None)), put("k", "a", 20, 30, Outcome::Ok(None))];
        assert_eq!(lost_writes(&lost, &state).len(), 1);
        // An info write may land at any time, so it may have overwritten "a".
        let info = [put("k", "b", 0, 5, Outcome::Info), put("k", "a", 20, 30, Outcome::Ok(None))];
        assert!(lost_writes(&info, &state).is_empty());
        // A failed write never happened.
        let failed =
            [put("k", "b", 25, 40, Outcome::Fail), put("k", "a", 20, 30, Outcome::Ok(None))];
        assert_eq!(lost_writes(&failed, &BTreeMap::new()).len(), 1);
    }
}
