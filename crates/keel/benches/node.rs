//! etcd's `BenchmarkOneNode`, for Keel's `Node`: one voter; a driver thread
//! runs the Ready loop (persist to `MemoryStorage`, advance) while the
//! benchmark thread proposes. One iteration is one `propose` call, which
//! returns once the loop has taken the proposal. The same workload on a bare
//! `RawNode` loop (no thread hand-off) is measured beside it, for the cost
//! of the thread and channels.
//!
//! Run with `cargo bench -p keel --bench node`. Before the timings it prints
//! heap allocations per proposal, counted by an instrumented allocator.

#![allow(clippy::print_stdout, reason = "the benchmark prints its allocation counts")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::alloc::System;
use std::hint::black_box;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use keel::raftpb::ConfState;
use keel::{Config, DiscardLogger, MemoryStorage, Node, Peer, RawNode, StateType};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn config() -> Config {
    let mut c = Config::new(1);
    c.logger = std::sync::Arc::new(DiscardLogger);
    c
}

/// A leader `Node` with a driver thread running its Ready loop, compacting
/// storage now and then as an application's snapshots would.
fn leader_node() -> (Node, thread::JoinHandle<()>) {
    let storage = MemoryStorage::new();
    let node =
        Node::start(&config(), storage.clone(), &[Peer { id: 1, ..Peer::default() }]).unwrap();
    let driver = {
        let node = node.clone();
        thread::spawn(move || {
            let mut applied = 0;
            while let Ok(rd) = node.ready() {
                if let Some(hs) = rd.hard_state {
                    storage.set_hard_state(hs);
                }
                storage.append(&rd.entries).unwrap();
                if let Some(last) = rd.committed_entries.last() {
                    applied = last.index;
                }
                if node.advance().is_err() {
                    return;
                }
                if applied > 0 && applied % 8192 == 0 {
                    let _ = storage.compact(applied);
                }
            }
        })
    };
    // The bootstrap Ready is applied by the driver; then campaign.
    for _ in 0..10_000 {
        let _ = node.campaign();
        if node.status().unwrap().basic.soft_state.raft_state == StateType::Leader {
            return (node, driver);
        }
        thread::sleep(Duration::from_micros(100));
    }
    panic!("the node did not become leader");
}

fn raw_leader() -> (RawNode<MemoryStorage>, MemoryStorage) {
    let cs = ConfState { voters: vec![1], ..ConfState::default() };
    let storage = MemoryStorage::new_with_conf_state(cs);
    let mut raw = RawNode::new(&config(), storage.clone()).unwrap();
    raw.campaign().unwrap();
    for _ in 0..10 {
        raw_round(&mut raw, &storage);
    }
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

fn count_allocations() {
    let (node, driver) = leader_node();
    let payload = Bytes::from_static(b"foo");
    const N: u64 = 20_000;
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        node.propose(payload.clone()).unwrap();
    }
    let stats = region.change();
    node.stop();
    driver.join().unwrap();
    println!(
        "node: {:.2} allocations and {:.0} bytes per proposal (all threads)",
        stats.allocations as f64 / N as f64,
        stats.bytes_allocated as f64 / N as f64
    );
}

fn bench(c: &mut Criterion) {
    count_allocations();
    let (node, driver) = leader_node();
    let payload = Bytes::from_static(b"foo");
    c.bench_function("node/propose (BenchmarkOneNode)", |b| {
        b.iter(|| node.propose(black_box(payload.clone())).unwrap());
    });
    node.stop();
    driver.join().unwrap();

    let (mut raw, storage) = raw_leader();
    c.bench_function("raw_node/propose+ready+advance", |b| {
        b.iter(|| {
            raw.propose(black_box(payload.clone())).unwrap();
            raw_round(&mut raw, &storage);
            if raw.status().basic.applied % 8192 == 0 {
                let _ = storage.compact(raw.status().basic.applied);
            }
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
