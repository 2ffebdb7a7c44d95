//! etcd-raft's `BenchmarkStatus` (rawnode_test.go): a leader with 1, 3, 5
//! and 100 members, and the cost of `status()` (a copy of every peer's
//! progress), of reading it (`Status-example`), of `basic_status()`, and of
//! visiting the progress without copying (`with_progress`, and
//! `WithProgress-example` summing the match indexes).
//!
//! Run with `cargo bench -p keel-bench --bench status`. Before the timings it
//! prints allocations per call, counted by an instrumented global allocator.

#![allow(clippy::print_stdout, reason = "the benchmark prints its allocation counts")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use criterion::{Criterion, criterion_group, criterion_main};
use keel::raftpb::{ConfState, Message, MessageType};
use keel::storage::MemoryStorage;
use keel::{Config, DiscardLogger, RawNode, StateType};
use keel_bench::alloc::{AllocProbe, per_op};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MEMBERS: [u64; 4] = [1, 3, 5, 100];

/// A leader of `members` voters (etcd's setup: newTestConfig(1, 3, 1)), elected
/// with synthesized votes from a majority.
fn leader(members: u64) -> RawNode<MemoryStorage> {
    let storage = MemoryStorage::new_with_conf_state(ConfState {
        voters: (1..=members).collect(),
        ..ConfState::default()
    });
    let cfg = Config {
        election_tick: 3,
        heartbeat_tick: 1,
        max_size_per_msg: u64::MAX,
        max_inflight_msgs: 256,
        check_quorum: false,
        pre_vote: false,
        logger: Arc::new(DiscardLogger),
        ..Config::new(1)
    };
    let mut rn = RawNode::new(&cfg, storage.clone()).expect("valid config");
    rn.campaign().expect("campaign");
    // The candidate's own vote counts once its Ready (the new term and vote)
    // is persisted.
    let persist = |rn: &mut RawNode<MemoryStorage>| {
        while rn.has_ready() {
            let rd = rn.ready();
            storage.append(&rd.entries).expect("append");
            rn.advance();
        }
    };
    persist(&mut rn);
    let term = rn.basic_status().hard_state.term;
    for from in 2..=members / 2 + 1 {
        rn.step(Message { from, to: 1, term, ..Message::new(MessageType::MsgVoteResp) })
            .expect("vote");
    }
    persist(&mut rn);
    assert_eq!(rn.basic_status().soft_state.raft_state, StateType::Leader);
    rn
}

/// One measured operation on the leader.
type Op = fn(&RawNode<MemoryStorage>);

/// The operations etcd's benchmark measures, by etcd's sub-benchmark name.
fn ops() -> [(&'static str, Op); 5] {
    [
        ("Status", |rn| _ = black_box(rn.status())),
        ("Status-example", |rn| {
            let s = rn.status();
            black_box(s.progress.values().map(|pr| pr.matched()).sum::<u64>());
        }),
        ("BasicStatus", |rn| _ = black_box(rn.basic_status())),
        ("WithProgress", |rn| rn.with_progress(|_, _, pr| _ = black_box(pr))),
        ("WithProgress-example", |rn| {
            let mut n = 0u64;
            rn.with_progress(|_, _, pr| n += pr.matched());
            black_box(n);
        }),
    ]
}

fn bench_status(c: &mut Criterion) {
    let probe = AllocProbe::new(GLOBAL);
    for members in MEMBERS {
        let rn = leader(members);
        for (name, op) in ops() {
            let (allocs, bytes) = per_op(probe, 10_000, || op(&rn));
            println!("status/members={members}/{name}: {allocs:.2} allocs/op, {bytes:.0} B/op");
        }
    }
    for members in MEMBERS {
        let rn = leader(members);
        let mut group = c.benchmark_group(format!("status/members={members}"));
        for (name, op) in ops() {
            group.bench_function(name, |b| b.iter(|| op(&rn)));
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_status
}
criterion_main!(benches);
