//! etcd-raft's `BenchmarkMajorityConfig_CommittedIndex` (quorum/bench_test.go):
//! the committed index of a majority configuration of 1, 3, 5, 7, 9 and 11
//! voters whose acknowledged indexes are random, looked up in a map.
//!
//! Run with `cargo bench -p keel-bench --bench quorum`. Before the timings it
//! prints allocations per call, counted by an instrumented global allocator
//! (the leader computes this on every append response, so it should be 0).

#![allow(clippy::print_stdout, reason = "the benchmark prints its allocation counts")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keel::quorum::MajorityConfig;
use keel_bench::alloc::{AllocProbe, per_op};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const VOTERS: [u64; 6] = [1, 3, 5, 7, 9, 11];

/// The configuration and a map of random acknowledged indexes (in
/// `[0, i64::MAX)`, as etcd draws them), from a fixed-seed generator.
fn setup(n: u64) -> (MajorityConfig, BTreeMap<u64, u64>) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ n;
    let mut next = || {
        // xorshift64*: deterministic, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 1
    };
    let config: MajorityConfig = (1..=n).collect();
    let acked = (1..=n).map(|id| (id, next())).collect();
    (config, acked)
}

fn bench_committed_index(c: &mut Criterion) {
    let probe = AllocProbe::new(GLOBAL);
    for n in VOTERS {
        let (config, acked) = setup(n);
        let (allocs, bytes) = per_op(probe, 100_000, || {
            black_box(config.committed_index(black_box(&acked)));
        });
        println!("quorum/committed_index/voters={n}: {allocs:.2} allocs/op, {bytes:.0} B/op");
    }
    let mut group = c.benchmark_group("quorum/committed_index");
    for n in VOTERS {
        let (config, acked) = setup(n);
        group.bench_with_input(BenchmarkId::new("voters", n), &n, |b, _| {
            b.iter(|| config.committed_index(black_box(&acked)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_committed_index
}
criterion_main!(benches);
