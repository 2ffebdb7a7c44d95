//! `vs-raft-rs`: Keel against raft-rs 0.7 on the identical workload, in one
//! process, alternating rounds, with the ratio Keel ÷ raft-rs per figure.
//!
//! Run with `cargo run -p keel-bench --profile bench --bin vs-raft-rs` (add
//! `-- --help` for the flags). The workload is described in
//! `keel_bench::workload` and in `docs/benchmarks.md`.

#![allow(clippy::print_stdout, reason = "the benchmark prints its table")]

use clap::{Parser, ValueEnum};
use keel_bench::alloc::AllocProbe;
use keel_bench::keel_side::{KeelCluster, KeelMoveCluster};
use keel_bench::raft_rs_side::RaftRsCluster;
use keel_bench::workload::{
    Budget, Cluster, MAX_OUTSTANDING, Mode, PROPOSAL_BATCH, Pace, Percentiles, Workload,
    run_latency, run_throughput,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Which workloads to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// One propose() call per entry, refilling the window every loop.
    Single,
    /// Each library's batching path, refilling the window every loop.
    Batch,
    /// One propose() call per entry, at most 64 proposals per loop.
    Single64,
    /// The batching path, one batch of 64 per loop.
    Batch64,
    /// All four, one after the other.
    All,
}

/// Which libraries to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SideArg {
    /// Keel, entries cloned into storage (for profiling; no ratios).
    Keel,
    /// Keel, entries moved into storage with append_owned (no ratios).
    KeelMove,
    /// raft-rs only (for profiling; no ratios).
    RaftRs,
    /// All three, alternating.
    Both,
}

/// Keel vs raft-rs 0.7: 3 in-memory nodes in one thread, 128-byte entries.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Length of each timed run (throughput and latency, per side and
    /// workload), in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// End each throughput run after this many applied entries instead of
    /// after --seconds (for callgrind: bench/instructions.sh).
    #[arg(long)]
    entries: Option<u64>,
    /// Rounds; each runs Keel then raft-rs (raft-rs first in even rounds).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Workloads.
    #[arg(long, value_enum, default_value_t = ModeArg::All)]
    mode: ModeArg,
    /// Run only one side, e.g. under a profiler.
    #[arg(long, value_enum, default_value_t = SideArg::Both)]
    side: SideArg,
    /// Skip the latency runs (to profile the throughput workload alone).
    #[arg(long)]
    skip_latency: bool,
}

/// Everything measured for one library in one workload, over all rounds.
#[derive(Default)]
struct Figures {
    rates: Vec<f64>,
    latency_samples: Vec<u64>,
    peak_bytes: u64,
    allocs_per_entry: Vec<f64>,
}

impl Figures {
    fn record<C: Cluster>(&mut self, w: Workload, probe: AllocProbe, args: &Args, latency: bool) {
        let window = Duration::from_secs_f64(args.seconds.max(0.01));
        let budget = args.entries.map_or(Budget::Time(window), Budget::Entries);
        let run = run_throughput::<C>(w, budget, probe);
        println!(
            "  {:<9} {:<9} throughput {:>12.0} entries/s  ({} entries, {} loops, peak {:.1} MiB, {:.2} allocs/entry)",
            C::NAME,
            w.name(),
            run.rate(),
            run.entries,
            run.loops,
            mib(run.peak_bytes),
            run.allocs_per_entry,
        );
        self.rates.push(run.rate());
        self.peak_bytes = self.peak_bytes.max(run.peak_bytes);
        self.allocs_per_entry.push(run.allocs_per_entry);
        // Latency proposes one entry at a time, so it depends on the mode
        // only: measured with the refill workloads.
        if args.skip_latency || !latency || w.pace != Pace::Refill {
            return;
        }
        let mut samples = run_latency::<C>(w.mode, window);
        let p = Percentiles::of(&mut samples);
        println!(
            "  {:<9} {:<9} latency p50 {:.2} us  p99 {:.2} us  p999 {:.2} us  ({} samples)",
            C::NAME,
            w.name(),
            us(p.p50),
            us(p.p99),
            us(p.p999),
            p.count
        );
        self.latency_samples.extend_from_slice(&samples);
    }

    fn median_rate(&self) -> f64 {
        median(&self.rates)
    }
}

fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ratio(keel: f64, raft_rs: f64) -> f64 {
    if raft_rs == 0.0 { 0.0 } else { keel / raft_rs }
}

/// The three sides' figures for one workload.
#[derive(Default)]
struct Row {
    keel: Figures,
    keel_move: Figures,
    raft_rs: Figures,
}

fn main() {
    let args = Args::parse();
    let probe = AllocProbe::new(GLOBAL);
    let all = [
        Workload { mode: Mode::Single, pace: Pace::Refill },
        Workload { mode: Mode::Batch, pace: Pace::Refill },
        Workload { mode: Mode::Single, pace: Pace::PerLoop },
        Workload { mode: Mode::Batch, pace: Pace::PerLoop },
    ];
    let workloads: &[Workload] = match args.mode {
        ModeArg::Single => &all[0..1],
        ModeArg::Batch => &all[1..2],
        ModeArg::Single64 => &all[2..3],
        ModeArg::Batch64 => &all[3..4],
        ModeArg::All => &all,
    };
    if cfg!(debug_assertions) {
        println!("warning: a debug build; run with --profile bench for real figures");
    }
    let mut rows: Vec<Row> = workloads.iter().map(|_| Row::default()).collect();
    let run = |side: SideArg| args.side == side || args.side == SideArg::Both;
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        for (row, &w) in rows.iter_mut().zip(workloads) {
            // Alternate which side goes first, so neither always runs on a
            // warmer (or more fragmented) heap.
            if round % 2 == 1 && run(SideArg::Keel) {
                row.keel.record::<KeelCluster>(w, probe, &args, true);
            }
            if run(SideArg::RaftRs) {
                row.raft_rs.record::<RaftRsCluster>(w, probe, &args, true);
            }
            if round % 2 == 0 && run(SideArg::Keel) {
                row.keel.record::<KeelCluster>(w, probe, &args, true);
            }
            if run(SideArg::KeelMove) {
                row.keel_move.record::<KeelMoveCluster>(w, probe, &args, false);
            }
        }
    }

    if args.side != SideArg::Both {
        return;
    }
    println!();
    println!(
        "3 nodes in one thread, 128-byte entries (a fresh buffer per proposal), \
         <= {MAX_OUTSTANDING} outstanding in batches of {PROPOSAL_BATCH}, {} round(s) of {:.1} s",
        args.rounds, args.seconds
    );
    println!(
        "{:<9} {:<34} {:>12} {:>12} {:>13}",
        "workload", "figure", "keel", "raft-rs", "keel/raft-rs"
    );
    let mut throughput_ratios = Vec::new();
    for (row, &w) in rows.iter_mut().zip(workloads) {
        let (kt, rt) = (row.keel.median_rate(), row.raft_rs.median_rate());
        throughput_ratios.push((w, ratio(kt, rt)));
        let kp = Percentiles::of(&mut row.keel.latency_samples);
        let rp = Percentiles::of(&mut row.raft_rs.latency_samples);
        let mut lines: Vec<(&str, f64, f64, usize)> = vec![
            ("throughput (entries/s)", kt, rt, 0),
            ("throughput, keel moves (entries/s)", row.keel_move.median_rate(), rt, 0),
        ];
        if kp.count > 0 {
            lines.extend([
                ("latency p50 (us)", us(kp.p50), us(rp.p50), 2),
                ("latency p99 (us)", us(kp.p99), us(rp.p99), 2),
                ("latency p999 (us)", us(kp.p999), us(rp.p999), 2),
            ]);
        }
        lines.extend([
            ("peak memory (MiB)", mib(row.keel.peak_bytes), mib(row.raft_rs.peak_bytes), 1),
            (
                "allocations per entry",
                median(&row.keel.allocs_per_entry),
                median(&row.raft_rs.allocs_per_entry),
                2,
            ),
        ]);
        for (name, kv, rv, prec) in lines {
            println!(
                "{:<9} {:<34} {:>12.prec$} {:>12.prec$} {:>13.2}",
                w.name(),
                name,
                kv,
                rv,
                ratio(kv, rv),
            );
        }
    }
    println!();
    for (w, r) in &throughput_ratios {
        println!("{} throughput ratio: {r:.2}", w.name());
    }
    // The headline is the fair single mode (or the first workload run).
    let headline = throughput_ratios
        .iter()
        .find(|(w, _)| w.name() == "single")
        .or(throughput_ratios.first())
        .map_or(0.0, |(_, r)| *r);
    println!("keel/raft-rs throughput ratio: {headline:.2}");
}
