//! etcd's `BenchmarkOneNode` (node_bench_test.go), for Keel's `Node`: one
//! voter; a proposer thread calls `propose` N times while the benchmark
//! thread runs the Ready loop (append to `MemoryStorage`, sleep 1 ms for "a
//! reasonable disk sync latency", advance) until all N are committed. Time
//! and allocations are per proposal, over every thread (the instrumented
//! allocator counts them all, as Go's `-benchmem` does).
//!
//! Beside it, the same proposals on a bare `RawNode` on one thread, one
//! Ready per proposal and one per 256 proposals, for the cost of the
//! thread hand-off.
//!
//! Run with `cargo bench -p keel --bench node`. It first prints one
//! Go-style line per workload (N proposals, ns/op, B/op, allocs/op, the load
//! average), then criterion's timings. `KEEL_BENCH_N` sets N and
//! `KEEL_BENCH_ONLY` (part of a workload's name) picks workloads, for
//! counting instructions under callgrind.

#![allow(clippy::print_stdout, reason = "the benchmark prints its figures")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the clock")]

use std::alloc::System;
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use keel::raftpb::ConfState;
use keel::{Config, DiscardLogger, MemoryStorage, Node, RawNode, StateType};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// etcd's "reasonable disk sync latency" in the Ready loop.
const DISK_LATENCY: Duration = Duration::from_millis(1);

fn config() -> Config {
    // etcd's newTestRawNode(1, 10, 1, s).
    let mut c = Config::new(1);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.logger = std::sync::Arc::new(DiscardLogger);
    c
}

fn one_voter_storage() -> MemoryStorage {
    MemoryStorage::new_with_conf_state(ConfState { voters: vec![1], ..ConfState::default() })
}

/// A one-voter node (its configuration in storage, as etcd's test storage
/// holds it) that has campaigned and leads, and the committed index.
fn leader() -> (Node, MemoryStorage, u64) {
    let storage = one_voter_storage();
    let node = Node::restart(&config(), storage.clone()).unwrap();
    node.campaign().unwrap();
    let mut commit = 0;
    while node.status().unwrap().basic.soft_state.raft_state != StateType::Leader {
        commit = ready_round(&node, &storage, Duration::ZERO, commit);
    }
    (node, storage, commit)
}

/// One turn of the Ready loop; returns the commit index after it.
fn ready_round(node: &Node, storage: &MemoryStorage, latency: Duration, commit: u64) -> u64 {
    let rd = node.ready().unwrap();
    let commit = rd.hard_state.map_or(commit, |hs| hs.commit);
    if let Some(hs) = rd.hard_state {
        storage.set_hard_state(hs);
    }
    storage.append(&rd.entries).unwrap();
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    node.advance().unwrap();
    // Compact now and then, as an application's snapshots would.
    if let Some(last) = rd.committed_entries.last()
        && last.index % 65_536 < rd.committed_entries.len() as u64
    {
        let _ = storage.compact(last.index);
    }
    commit
}

/// Proposes `n` entries from another thread while this one runs the Ready
/// loop until they are committed; returns the time taken and the commit
/// index reached.
fn propose_and_commit(
    node: &Node,
    storage: &MemoryStorage,
    mut commit: u64,
    n: u64,
    latency: Duration,
) -> (Duration, u64) {
    let target = commit + n;
    let started = Instant::now();
    let proposer = {
        let node = node.clone();
        thread::spawn(move || {
            let payload = Bytes::from_static(b"foo");
            for _ in 0..n {
                node.propose(black_box(payload.clone())).unwrap();
            }
        })
    };
    while commit < target {
        commit = ready_round(node, storage, latency, commit);
    }
    let elapsed = started.elapsed();
    proposer.join().unwrap();
    (elapsed, commit)
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Prints a `go test -benchmem` style line for `n` operations.
fn report(name: &str, n: u64, elapsed: Duration, stats: stats_alloc::Stats) {
    println!(
        "{name:<44} {n:>8} {:>8.0} ns/op {:>6.0} B/op {:>5.2} allocs/op  (load {})",
        elapsed.as_nanos() as f64 / n as f64,
        stats.bytes_allocated as f64 / n as f64,
        stats.allocations as f64 / n as f64,
        load_average(),
    );
}

/// Whether the workload `name` is to run: `KEEL_BENCH_ONLY` (a substring of
/// its name), when set, picks some (for example to count instructions of
/// one under callgrind, with `KEEL_BENCH_N` proposals).
fn selected(name: &str) -> bool {
    std::env::var("KEEL_BENCH_ONLY").map_or(true, |only| name.contains(&only))
}

fn go_style(n: u64) {
    let n = std::env::var("KEEL_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    for (name, latency) in [
        ("BenchmarkOneNode (Node)", DISK_LATENCY),
        ("OneNode, no disk latency (Node)", Duration::ZERO),
    ] {
        if !selected(name) {
            continue;
        }
        let (node, storage, commit) = leader();
        // Warm up (queues, the log's vectors), then measure.
        let (_, commit) = propose_and_commit(&node, &storage, commit, n / 10, latency);
        let region = Region::new(GLOBAL);
        let (elapsed, _) = propose_and_commit(&node, &storage, commit, n, latency);
        report(name, n, elapsed, region.change());
        node.stop();
    }
    for per_ready in [1, 256] {
        let name = format!("RawNode, one Ready per {per_ready} proposals");
        if !selected(&name) {
            continue;
        }
        let (mut raw, storage) = raw_leader();
        let region = Region::new(GLOBAL);
        let started = Instant::now();
        raw_proposals(&mut raw, &storage, n, per_ready);
        let elapsed = started.elapsed();
        report(&name, n, elapsed, region.change());
    }
}

fn raw_leader() -> (RawNode<MemoryStorage>, MemoryStorage) {
    let storage = one_voter_storage();
    let mut raw = RawNode::new(&config(), storage.clone()).unwrap();
    raw.campaign().unwrap();
    raw_round(&mut raw, &storage);
    assert_eq!(raw.status().basic.soft_state.raft_state, StateType::Leader);
    (raw, storage)
}

fn raw_round(raw: &mut RawNode<MemoryStorage>, storage: &MemoryStorage) {
    while raw.has_ready() {
        let rd = raw.ready();
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        storage.append(&rd.entries).unwrap();
        raw.advance();
    }
}

/// `n` proposals on a bare `RawNode`, with a Ready loop turn after every
/// `per_ready` of them.
fn raw_proposals(
    raw: &mut RawNode<MemoryStorage>,
    storage: &MemoryStorage,
    n: u64,
    per_ready: u64,
) {
    let payload = Bytes::from_static(b"foo");
    for i in 1..=n {
        raw.propose(black_box(payload.clone())).unwrap();
        if i % per_ready == 0 || i == n {
            raw_round(raw, storage);
            let applied = raw.status().basic.applied;
            if applied % 65_536 < per_ready {
                let _ = storage.compact(applied);
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    go_style(200_000);

    let (node, storage, mut commit) = leader();
    c.bench_function("node/BenchmarkOneNode", |b| {
        b.iter_custom(|iters| {
            let (elapsed, reached) =
                propose_and_commit(&node, &storage, commit, iters, DISK_LATENCY);
            commit = reached;
            elapsed
        });
    });
    node.stop();

    let (mut raw, storage) = raw_leader();
    c.bench_function("raw_node/propose+ready+advance", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            raw_proposals(&mut raw, &storage, iters, 1);
            started.elapsed()
        });
    });
}

criterion_group! {
    name = benches;
    // Few, long samples: a sample ends with up to two Ready turns of 1 ms.
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
