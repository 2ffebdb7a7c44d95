//! `RawNode` micro-benchmarks.
//!
//! - `rawnode/etcd/{single-voter,two-voters}`: etcd-raft's `BenchmarkRawNode`
//!   (rawnode_test.go). One node; each iteration proposes `"foo"` and runs
//!   the Ready loop until nothing is left, appending entries to the
//!   `MemoryStorage` and answering the node's own `MsgVote`/`MsgApp` with
//!   synthesized responses from the other voter, as etcd's benchmark does.
//! - `rawnode/three-nodes/{keel,raft-rs}/{1,64}`: the three-node in-memory
//!   cluster of `vs-raft-rs`; each iteration proposes 1 entry (one
//!   `propose()`) or 64 (the batch path) and runs loops until the leader has
//!   applied them. Both libraries are run, for a side-by-side.
//!
//! Run with `cargo bench -p keel-bench --bench rawnode`. Before the timings
//! it prints allocations per operation (counted by an instrumented global
//! allocator) and, for the etcd cases, the storage accesses and `Ready`s per
//! proposal that etcd's benchmark reports.

#![allow(clippy::print_stdout, reason = "the benchmark prints its allocation counts")]
#![allow(missing_docs, reason = "criterion's macros generate undocumented items")]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel::raftpb::{ConfState, Message, MessageType};
use keel::storage::MemoryStorage;
use keel::{Config, DiscardLogger, RawNode};
use keel_bench::alloc::{AllocProbe, per_op};
use keel_bench::keel_side::KeelCluster;
use keel_bench::raft_rs_side::RaftRsCluster;
use keel_bench::workload::{Cluster, Mode, propose_and_apply};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// etcd's benchmark node: one `RawNode` whose peers are simulated.
struct EtcdBench {
    rn: RawNode<MemoryStorage>,
    storage: MemoryStorage,
    readies: u64,
    applied: u64,
}

impl EtcdBench {
    fn new(peers: &[u64]) -> EtcdBench {
        let storage = MemoryStorage::new_with_conf_state(ConfState {
            voters: peers.to_vec(),
            ..ConfState::default()
        });
        // etcd's newTestConfig(1, 10, 1, s): no message size limit, 256
        // inflight messages, no PreVote or CheckQuorum.
        let cfg = Config {
            election_tick: 10,
            heartbeat_tick: 1,
            max_size_per_msg: u64::MAX,
            max_inflight_msgs: 256,
            check_quorum: false,
            pre_vote: false,
            logger: Arc::new(DiscardLogger),
            ..Config::new(1)
        };
        let rn = RawNode::new(&cfg, storage.clone()).expect("valid config");
        let mut b = EtcdBench { rn, storage, readies: 0, applied: 0 };
        b.rn.campaign().expect("campaign");
        b.stabilize();
        b
    }

    /// Handles Readies until there are none, answering votes and appends.
    fn stabilize(&mut self) {
        while self.rn.has_ready() {
            self.readies += 1;
            let rd = self.rn.ready();
            if let Some(e) = rd.committed_entries.last() {
                self.applied = e.index;
            }
            self.storage.append(&rd.entries).expect("append");
            for m in &rd.messages {
                let resp = match m.msg_type() {
                    MessageType::MsgVote => Message {
                        to: m.from,
                        from: m.to,
                        term: m.term,
                        ..Message::new(MessageType::MsgVoteResp)
                    },
                    MessageType::MsgApp => Message {
                        to: m.from,
                        from: m.to,
                        term: m.term,
                        index: m.entries.last().map_or(m.index, |e| e.index),
                        ..Message::new(MessageType::MsgAppResp)
                    },
                    _ => continue,
                };
                self.rn.step(resp).expect("step a synthesized response");
            }
            self.rn.advance();
        }
    }

    fn propose(&mut self) {
        self.rn.propose(Bytes::from_static(b"foo")).expect("propose");
        self.stabilize();
    }
}

const ETCD_CASES: [(&str, &[u64]); 2] = [("single-voter", &[1]), ("two-voters", &[1, 2])];

fn report_etcd(probe: AllocProbe) {
    const N: u64 = 100_000;
    for (name, peers) in ETCD_CASES {
        let mut b = EtcdBench::new(peers);
        let (readies0, stats0) = (b.readies, b.storage.call_stats());
        let applied0 = b.applied;
        let (allocs, bytes) = per_op(probe, N, || b.propose());
        let n = (N + N / 10) as f64;
        let stats = b.storage.call_stats();
        assert!(b.applied - applied0 >= N + N / 10, "did not apply everything");
        println!(
            "rawnode/etcd/{name}: {allocs:.2} allocs/op, {bytes:.0} B/op, \
             {:.2} firstIndex/op, {:.2} lastIndex/op, {:.2} term/op, {:.2} ready/op",
            (stats.first_index - stats0.first_index) as f64 / n,
            (stats.last_index - stats0.last_index) as f64 / n,
            (stats.term - stats0.term) as f64 / n,
            (b.readies - readies0) as f64 / n,
        );
    }
}

fn bench_etcd(c: &mut Criterion) {
    report_etcd(AllocProbe::new(GLOBAL));
    let mut group = c.benchmark_group("rawnode/etcd");
    group.throughput(Throughput::Elements(1));
    for (name, peers) in ETCD_CASES {
        group.bench_function(name, |bench| {
            let mut b = EtcdBench::new(peers);
            bench.iter(|| b.propose());
        });
    }
    group.finish();
}

fn mode_for(n: usize) -> Mode {
    if n == 1 { Mode::Single } else { Mode::Batch }
}

fn report_three_nodes<C: Cluster>(probe: AllocProbe) {
    for n in [1usize, 64] {
        let mut c = C::start();
        let (allocs, bytes) =
            per_op(probe, 20_000, || _ = propose_and_apply(&mut c, mode_for(n), n));
        println!(
            "rawnode/three-nodes/{}/{n}: {:.2} allocs/entry, {:.0} B/entry",
            C::NAME,
            allocs / n as f64,
            bytes / n as f64
        );
    }
}

fn bench_three<C: Cluster>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("rawnode/three-nodes/{}", C::NAME));
    for n in [1usize, 64] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, &n| {
            let mut cluster = C::start();
            bench.iter(|| propose_and_apply(&mut cluster, mode_for(n), n));
        });
    }
    group.finish();
}

fn bench_three_nodes(c: &mut Criterion) {
    let probe = AllocProbe::new(GLOBAL);
    report_three_nodes::<KeelCluster>(probe);
    report_three_nodes::<RaftRsCluster>(probe);
    bench_three::<KeelCluster>(c);
    bench_three::<RaftRsCluster>(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_etcd, bench_three_nodes
}
criterion_main!(benches);
