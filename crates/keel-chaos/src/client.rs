//! Clients: each has one operation in flight against a random member, and
//! records it with Jepsen's outcomes.
//!
//! Classification (what an answer proves about a write):
//! - `ok`: 2xx (a get's 404 `not_found` is an ok read of an absent key);
//! - `fail`, definitely not applied: the connection was refused (nothing
//!   was sent), or 400/404/413/429 (refused before raft saw it);
//! - `info`, unknown: a timeout, a reset, 5xx, 410, anything else.
//!
//! A read changes nothing, so a read that did not succeed is a `fail`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_sim::sim::rng::Rng;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::history::{Op, Outcome, Record, Recorder};

/// What the clients do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: u64,
    /// Keys `k0..k{keys-1}`: few, so that operations contend.
    pub keys: u64,
    /// Per mille of operations that are reads; of the rest, a fifth are deletes.
    pub read_per_mille: u32,
    /// Pause between a client's operations.
    pub think: Duration,
    /// A request not answered in this long is `info`.
    pub timeout: Duration,
}

/// Hands out process ids, fresh for every client and after every `info`.
#[derive(Default)]
pub struct Processes(AtomicU64);

impl Processes {
    /// The next unused process id.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs one client until `until`.
pub async fn run_client(
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    procs: Arc<Processes>,
    w: Workload,
    mut rng: Rng,
    until: Instant,
) {
    let mut process = procs.next();
    let mut written = 0u64;
    while Instant::now() < until {
        let members = cluster.config().into_iter().collect::<Vec<_>>();
        if members.is_empty() {
            tokio::time::sleep(w.think).await;
            continue;
        }
        let member = *rng.pick(&members);
        let key = format!("k{}", rng.below(w.keys.max(1)));
        let op = if rng.chance(w.read_per_mille) {
            Op::Get(key)
        } else if rng.chance(200) {
            Op::Delete(key)
        } else {
            written += 1;
            Op::Put(key, format!("p{process}-{written}"))
        };
        let record = perform(&cluster, &rec, process, member, op, w.timeout).await;
        let info = record.outcome == Outcome::Info;
        rec.push(record);
        if info {
            process = procs.next();
        }
        tokio::time::sleep(w.think).await;
    }
}

/// Performs one operation on `member` and classifies its answer.
pub async fn perform(
    cluster: &Cluster,
    rec: &Recorder,
    process: u64,
    member: u64,
    op: Op,
    timeout: Duration,
) -> Record {
    let url = format!("http://{}/kv/{}", cluster.slot(member).client, op.key());
    let request = match &op {
        Op::Get(_) => cluster.http.get(url),
        Op::Put(_, v) => cluster.http.put(url).body(v.clone()),
        Op::Delete(_) => cluster.http.delete(url),
    };
    let invoke = rec.now();
    let answer = request.timeout(timeout).send().await;
    let outcome = match answer {
        Err(e) if e.is_connect() => Outcome::Fail,
        Err(_) => unknown(&op),
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await;
            match (status, body) {
                (200..=299, Ok(body)) => match op {
                    Op::Get(_) => Outcome::Ok(Some(body)),
                    _ => Outcome::Ok(None),
                },
                (404, Ok(body)) if matches!(op, Op::Get(_)) && is_not_found(&body) => {
                    Outcome::Ok(None)
                }
                (400 | 404 | 413 | 429, Ok(_)) => Outcome::Fail,
                _ => unknown(&op),
            }
        }
    };
    Record { process, op, invoke, ret: rec.now(), outcome, member }
}

/// An unknown outcome: `info` for a write, `fail` for a read.
fn unknown(op: &Op) -> Outcome {
    if matches!(op, Op::Get(_)) { Outcome::Fail } else { Outcome::Info }
}

fn is_not_found(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|v| v["error"].as_str() == Some("not_found"))
}
