//! The log's hot cycle, as a node in steady state runs it for each batch of
//! proposals: `append` -> `next_unstable_ents` -> write to `MemoryStorage` ->
//! `stable_to` -> commit -> `next_committed_ents` -> `applied_to`, at 1, 64
//! and 1024 entries of 128 bytes a batch.
//!
//! Run with `cargo bench -p keel --bench log`. Criterion reports the time per
//! batch and the throughput in entries per second (ns per entry is the time
//! per batch divided by the batch size). Before the timings, the benchmark
//! prints the heap allocations per entry, counted by an instrumented global
//! allocator.

#![allow(clippy::print_stdout, reason = "the benchmark prints its allocation counts")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel::raftpb::Entry;
use keel::storage::{MemoryStorage, Storage, ents_size};
use keel::testing::RaftLog;
use keel::{DiscardLogger, EntryId};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BATCHES: [u64; 3] = [1, 64, 1024];
/// Storage is compacted to the applied index once it holds this many entries,
/// as an application snapshotting now and then would.
const COMPACT_EVERY: u64 = 8192;

struct Node {
    log: RaftLog<MemoryStorage>,
    storage: MemoryStorage,
    payload: Bytes,
}

impl Node {
    fn new() -> Node {
        let storage = MemoryStorage::new();
        let log = RaftLog::new(storage.clone(), Arc::new(DiscardLogger)).expect("memory storage");
        // Proposals arrive as shared buffers (from the network or a pool), so
        // entries clone a reference, never the bytes.
        let payload = Bytes::from(vec![0xab; 128]);
        let _shared = payload.clone();
        Node { log, storage, payload }
    }

    /// One batch of `n` entries through the whole cycle.
    fn cycle(&mut self, n: u64) {
        let last = self.log.last_index();
        let ents = (last + 1..=last + n).map(|i| Entry::new(1, i, self.payload.clone())).collect();
        self.log.append(ents);

        let unstable = self.log.next_unstable_ents();
        self.storage.append(unstable).expect("append");
        let written = EntryId::of(unstable.last().expect("entries"));
        self.log.accept_unstable();
        self.log.stable_to(written);

        assert!(self.log.maybe_commit(written));
        let committed = self.log.next_committed_ents(true);
        let size = ents_size(&committed);
        let applied = black_box(committed).last().expect("committed").index;
        self.log.accept_applying(applied, size, true);
        self.log.applied_to(applied, size);

        let first = self.storage.first_index().expect("first index");
        if applied + 1 - first >= COMPACT_EVERY {
            self.storage.compact(applied).expect("compact");
        }
    }
}

/// Prints heap allocations (and bytes) per entry over enough cycles to
/// amortize buffer growth and compaction.
fn report_allocations() {
    for n in BATCHES {
        let mut node = Node::new();
        // Warm up: let the buffers reach their steady-state capacity.
        for _ in 0..(2 * COMPACT_EVERY / n).max(16) {
            node.cycle(n);
        }
        let cycles = (8 * COMPACT_EVERY / n).max(64);
        let region = Region::new(GLOBAL);
        for _ in 0..cycles {
            node.cycle(n);
        }
        let stats = region.change();
        let entries = (cycles * n) as f64;
        println!(
            "log/cycle/{n}: {:.3} allocations/entry ({:.3} reallocations/entry), {:.1} bytes/entry",
            stats.allocations as f64 / entries,
            stats.reallocations as f64 / entries,
            stats.bytes_allocated as f64 / entries,
        );
    }
}

fn bench_cycle(c: &mut Criterion) {
    report_allocations();
    let mut group = c.benchmark_group("log/cycle");
    for n in BATCHES {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut node = Node::new();
            b.iter(|| node.cycle(n));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_cycle
}
criterion_main!(benches);
