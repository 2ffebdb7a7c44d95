//! `vs-raft-rs`: Keel against raft-rs 0.7 on the identical workload, in one
//! process, alternating rounds, with the ratio Keel ÷ raft-rs per figure.
//!
//! Run with `cargo run -p keel-bench --release --bin vs-raft-rs` (add
//! `-- --help` for the flags). The workload is described in
//! `keel_bench::workload` and in `docs/benchmarks.md`.

#![allow(clippy::print_stdout, reason = "the benchmark prints its table")]

use clap::{Parser, ValueEnum};
use keel_bench::alloc::AllocProbe;
use keel_bench::keel_side::KeelCluster;
use keel_bench::raft_rs_side::RaftRsCluster;
use keel_bench::workload::{Cluster, Mode, Percentiles, run_latency, run_throughput};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Which proposal paths to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// One propose() call per entry.
    Single,
    /// Each library's batching path.
    Batch,
    /// Both, one after the other.
    Both,
}

/// Which libraries to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SideArg {
    /// Keel only (for profiling; no ratios).
    Keel,
    /// raft-rs only (for profiling; no ratios).
    RaftRs,
    /// Both, alternating.
    Both,
}

/// Keel vs raft-rs 0.7: 3 in-memory nodes in one thread, 128-byte entries.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Length of each timed run (throughput and latency, per side and mode),
    /// in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds; each runs Keel then raft-rs (raft-rs first in odd rounds).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Proposal path.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// Run only one side, e.g. under a profiler.
    #[arg(long, value_enum, default_value_t = SideArg::Both)]
    side: SideArg,
    /// Skip the latency runs (to profile the throughput workload alone).
    #[arg(long)]
    skip_latency: bool,
}

/// Everything measured for one library in one mode, over all rounds.
#[derive(Default)]
struct Figures {
    rates: Vec<f64>,
    latency_samples: Vec<u64>,
    peak_bytes: u64,
    allocs_per_entry: Vec<f64>,
}

impl Figures {
    fn record<C: Cluster>(&mut self, mode: Mode, window: Duration, probe: AllocProbe, args: &Args) {
        let run = run_throughput::<C>(mode, window, probe);
        println!(
            "  {:<8} {:<7} throughput {:>12.0} entries/s  ({} entries, {} loops, peak {:.1} MiB, {:.2} allocs/entry)",
            C::NAME,
            mode.name(),
            run.rate(),
            run.entries,
            run.loops,
            mib(run.peak_bytes),
            run.allocs_per_entry,
        );
        self.rates.push(run.rate());
        self.peak_bytes = self.peak_bytes.max(run.peak_bytes);
        self.allocs_per_entry.push(run.allocs_per_entry);
        if args.skip_latency {
            return;
        }
        let mut samples = run_latency::<C>(mode, window);
        let p = Percentiles::of(&mut samples);
        println!(
            "  {:<8} {:<7} latency p50 {:.2} us  p99 {:.2} us  p999 {:.2} us  ({} samples)",
            C::NAME,
            mode.name(),
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

fn main() {
    let args = Args::parse();
    let probe = AllocProbe::new(GLOBAL);
    let window = Duration::from_secs_f64(args.seconds.max(0.01));
    let modes: &[Mode] = match args.mode {
        ModeArg::Single => &[Mode::Single],
        ModeArg::Batch => &[Mode::Batch],
        ModeArg::Both => &[Mode::Single, Mode::Batch],
    };
    if cfg!(debug_assertions) {
        println!("warning: a debug build; run with --release for real figures");
    }
    let mut keel: Vec<Figures> = modes.iter().map(|_| Figures::default()).collect();
    let mut raft_rs: Vec<Figures> = modes.iter().map(|_| Figures::default()).collect();
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        for (i, &mode) in modes.iter().enumerate() {
            // Alternate which side goes first, so neither always runs on a
            // warmer (or more fragmented) heap.
            let run_keel = args.side != SideArg::RaftRs;
            let run_raft_rs = args.side != SideArg::Keel;
            if round % 2 == 1 && run_keel {
                keel[i].record::<KeelCluster>(mode, window, probe, &args);
            }
            if run_raft_rs {
                raft_rs[i].record::<RaftRsCluster>(mode, window, probe, &args);
            }
            if round % 2 == 0 && run_keel {
                keel[i].record::<KeelCluster>(mode, window, probe, &args);
            }
        }
    }

    if args.side != SideArg::Both {
        return;
    }
    println!();
    println!(
        "3 nodes in one thread, 128-byte entries, <= 4096 outstanding in batches of 64, \
         {} round(s) of {:.1} s",
        args.rounds, args.seconds
    );
    println!(
        "{:<7} {:<26} {:>14} {:>14} {:>13}",
        "mode", "figure", "keel", "raft-rs", "keel/raft-rs"
    );
    let mut throughput_ratios = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        let (k, r) = (&mut keel[i], &mut raft_rs[i]);
        let (kt, rt) = (k.median_rate(), r.median_rate());
        throughput_ratios.push(ratio(kt, rt));
        let kp = Percentiles::of(&mut k.latency_samples);
        let rp = Percentiles::of(&mut r.latency_samples);
        let rows: [(&str, f64, f64, usize); 7] = [
            ("throughput (entries/s)", kt, rt, 0),
            ("latency p50 (us)", us(kp.p50), us(rp.p50), 2),
            ("latency p99 (us)", us(kp.p99), us(rp.p99), 2),
            ("latency p999 (us)", us(kp.p999), us(rp.p999), 2),
            ("peak memory (MiB)", mib(k.peak_bytes), mib(r.peak_bytes), 1),
            ("allocations per entry", median(&k.allocs_per_entry), median(&r.allocs_per_entry), 2),
            ("latency samples", kp.count as f64, rp.count as f64, 0),
        ];
        for (name, kv, rv, prec) in rows {
            println!(
                "{:<7} {:<26} {:>14.prec$} {:>14.prec$} {:>13.2}",
                mode.name(),
                name,
                kv,
                rv,
                ratio(kv, rv),
            );
        }
    }
    println!();
    for (i, &mode) in modes.iter().enumerate() {
        println!("{} throughput ratio: {:.2}", mode.name(), throughput_ratios[i]);
    }
    // The headline is the weaker of the modes run: the target is 2x in each.
    let headline = throughput_ratios.iter().copied().fold(f64::INFINITY, f64::min);
    println!("keel/raft-rs throughput ratio: {headline:.2}");
}
