//! keel-chaos: a Jepsen-style fault test of real `keel-kv` processes.
//!
//! A run starts a cluster of `keel-kv serve` processes on 127.0.0.1, each
//! peer link through a fault-injecting proxy ([`proxy`]); concurrent
//! clients ([`client`]) record every operation with its outcome
//! ([`history`]) while the nemesis ([`nemesis`]) kills, pauses, partitions
//! and slows members and changes the membership. At the end every fault is
//! healed and three checks run ([`check`]): the history through keel-sim's
//! linearizability checker, no acknowledged write lost, and every member
//! converged to the same state.
//!
//! The simulator proves the core under faults it can imagine; this proves
//! the shipped server, with real disks, sockets, signals and timing.

#![allow(clippy::print_stdout, reason = "the summary is the tester's output")]

pub mod check;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_sim::sim::rng::Rng;
use tokio::time::Instant;

pub use check::Report;
pub use cluster::{HarnessError, Program};
pub use nemesis::Kind;

use crate::client::{Processes, Workload};
use crate::cluster::{Cluster, ClusterOptions, ProcState};
use crate::history::Recorder;
use crate::nemesis::{Busy, Schedule};

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How to start `keel-kv`.
    pub program: Program,
    /// Members at the start (3 or 5).
    pub nodes: u64,
    /// How long clients and the nemesis run.
    pub duration: Duration,
    /// Fault kinds to inject.
    pub kinds: BTreeSet<Kind>,
    /// Seeds every random choice of the tester (the system's timing is real).
    pub seed: u64,
    /// The clients' workload.
    pub workload: Workload,
    /// Fault duration range.
    pub fault: (Duration, Duration),
    /// Quiet period range between faults.
    pub quiet: (Duration, Duration),
    /// Time budget of the linearizability check.
    pub check_timeout: Duration,
    /// History, member logs, data and the summary go here.
    pub out: PathBuf,
    /// A planted keel-kv bug (`ack-before-commit`, `local-reads`; debug
    /// builds of keel-kv only).
    pub planted_bug: Option<String>,
    /// `RUST_LOG` for the members.
    pub member_log: String,
}

impl Options {
    /// Defaults for `duration`, with every fault kind.
    pub fn new(program: Program, out: PathBuf, duration: Duration) -> Options {
        Options {
            program,
            nodes: 5,
            duration,
            kinds: [Kind::Kill, Kind::Pause, Kind::Partition, Kind::Link, Kind::Membership]
                .into_iter()
                .collect(),
            seed: 1,
            workload: Workload {
                clients: 10,
                keys: 8,
                read_per_mille: 500,
                think: Duration::from_millis(10),
                timeout: Duration::from_millis(2500),
            },
            // Short runs get short faults, so that every kind fits in.
            fault: (clamp(duration / 20, 1000, 2000), clamp(duration / 8, 2000, 6000)),
            quiet: (clamp(duration / 40, 500, 1000), clamp(duration / 20, 1000, 3000)),
            check_timeout: Duration::from_secs(300),
            out,
            planted_bug: None,
            member_log: "info".into(),
        }
    }

    /// The `serve` flags every member gets: fast elections and frequent
    /// snapshots, so that faults bite and restarted members catch up from
    /// snapshots, not only from the log.
    fn serve_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = [
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--request-timeout",
            "1000",
            "--snapshot-count",
            "300",
            "--snapshot-catchup-entries",
            "50",
        ]
        .map(String::from)
        .to_vec();
        if let Some(bug) = &self.planted_bug {
            flags.extend(["--planted-bug".to_string(), bug.clone()]);
        }
        flags
    }
}

fn clamp(d: Duration, lo_ms: u64, hi_ms: u64) -> Duration {
    d.clamp(Duration::from_millis(lo_ms), Duration::from_millis(hi_ms))
}

/// Fresh ids kept for membership changes: one per expected change, bounded.
fn spare_ids(o: &Options) -> u64 {
    if o.kinds.contains(&Kind::Membership) { (o.duration.as_secs() / 5 + 2).min(40) } else { 0 }
}

/// Runs the whole test: cluster, clients and nemesis, heal, checks.
pub async fn run(o: Options) -> Result<Report, HarnessError> {
    let started = Instant::now();
    if std::fs::read_dir(&o.out).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("member-")))
    }) {
        return Err(HarnessError::OutputInUse(o.out.display().to_string()));
    }
    std::fs::create_dir_all(&o.out).map_err(|source| HarnessError::Io {
        what: format!("creating {}", o.out.display()),
        source,
    })?;
    let cluster = Cluster::new(ClusterOptions {
        program: o.program.clone(),
        nodes: o.nodes,
        spare_ids: spare_ids(&o),
        dir: o.out.clone(),
        serve_flags: o.serve_flags(),
        log_filter: o.member_log.clone(),
    })
    .await?;
    cluster.start_all()?;
    wait_up(&cluster, Duration::from_secs(30)).await?;
    tracing::info!("cluster of {} up; running for {:?}", o.nodes, o.duration);

    let rec = Arc::new(Recorder::new());
    let procs = Arc::new(Processes::default());
    let mut rng = Rng::new(o.seed);
    let until = Instant::now() + o.duration;
    let mut clients = Vec::new();
    for _ in 0..o.workload.clients {
        clients.push(tokio::spawn(client::run_client(
            cluster.clone(),
            rec.clone(),
            procs.clone(),
            o.workload.clone(),
            rng.fork(),
            until,
        )));
    }
    let busy = Arc::new(Busy::default());
    let fault_kinds: BTreeSet<Kind> =
        o.kinds.iter().copied().filter(|k| *k != Kind::Membership).collect();
    let schedule = Schedule { kinds: fault_kinds, fault: o.fault, quiet: o.quiet };
    let faults = tokio::spawn(nemesis::run_faults(
        cluster.clone(),
        busy.clone(),
        schedule,
        rng.fork(),
        started,
        until,
    ));
    let membership = o.kinds.contains(&Kind::Membership).then(|| {
        // A change every few seconds (the first early, so that even a short
        // run makes one), slower in long runs, within the spare ids.
        let quiet = (o.quiet.1, (o.quiet.1 * 3).max(o.duration / 10));
        tokio::spawn(nemesis::run_membership(
            cluster.clone(),
            busy.clone(),
            quiet,
            rng.fork(),
            started,
            until,
        ))
    });
    for c in clients {
        let _ = c.await;
    }
    let mut injected = faults.await.unwrap_or_default();
    if let Some(m) = membership {
        injected.extend(m.await.unwrap_or_default());
    }
    injected.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));

    // Heal: links, paused and killed members; a member that died on its
    // own is a finding, and is restarted too so that convergence can be
    // judged.
    cluster.proxies.heal_all();
    let crashed = cluster.crashed();
    for id in cluster.config() {
        match cluster.state(id) {
            ProcState::Paused => cluster.resume(id),
            ProcState::Killed => cluster.start(id)?,
            _ if crashed.contains(&id) => {
                cluster.kill(id, ProcState::Killed);
                cluster.start(id)?;
            }
            _ => {}
        }
    }
    let report = check::finish(&o, &cluster, &rec, &procs, injected, crashed, started).await?;
    cluster.shutdown();
    Ok(report)
}

/// Waits until every member answers and one of them leads, failing at once
/// if a member exits (a member that never started would make a five-member
/// run a three-member one without anyone noticing).
async fn wait_up(cluster: &Cluster, limit: Duration) -> Result<u64, HarnessError> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(id) = cluster.config().into_iter().find(|id| cluster.exited(*id)) {
            return Err(HarnessError::Timeout(format!(
                "member {id} exited while starting; see {}",
                cluster.dir().join(format!("member-{id}.log")).display()
            )));
        }
        let mut all_answer = true;
        for id in cluster.config() {
            all_answer &= cluster.get_json(id, "/status").await.is_some();
        }
        if all_answer && let Some(l) = cluster.leader().await {
            return Ok(l);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(format!(
                "the cluster was not up (every member answering, one leading) within {limit:?}; \
                 see the member logs in {}",
                cluster.dir().display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory holding an earlier run's member data is refused before
    /// anything starts: its members would restart from that data.
    #[tokio::test]
    async fn an_output_directory_with_an_earlier_run_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("member-1")).expect("member dir");
        let program = Program { exe: PathBuf::from("/nonexistent"), prefix: Vec::new() };
        let o = Options::new(program, dir.path().to_path_buf(), Duration::from_secs(1));
        assert!(matches!(run(o).await, Err(HarnessError::OutputInUse(_))));
    }
}
