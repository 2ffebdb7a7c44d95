//! The `keel-sim` command.
//!
//! - `keel-sim check-history [--format keel|jepsen-etcd|porcupine-kv] FILE` checks a client
//!   history for linearizability. It prints `linearizable` (exit 0), `not linearizable`
//!   followed by a counterexample (exit 1), or `unknown: <reason>` when a budget runs out
//!   (exit 2). A file that cannot be read or is malformed exits 3, with a message naming
//!   the line. Usage errors exit 64.
//! - With no subcommand, the simulator: `keel-sim --seeds N [--first-seed F] [--nodes K]
//!   [--steps S] [--mode sync|async]` runs N seeds and prints seeds per second and the
//!   number of failures (exit 1 if any run failed, else 2 if the checker could not judge
//!   some run's history within its budget); `keel-sim --seed S` replays one run and
//!   prints its event trace, one line per event (exit 1 if it fails).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keel::PlantedBug;
use keel_sim::linearizability::format::{self, ParseError};
use keel_sim::linearizability::models::{AppendKvModel, KvModel, RegisterModel};
use keel_sim::linearizability::{CheckOptions, History, Model, Verdict, check};
use keel_sim::sim::{self, Options, Outcome, Overrides, RunSettings, StorageKind, TraceRecord};
use std::sync::Arc;

const EXIT_LINEARIZABLE: u8 = 0;
const EXIT_NOT_LINEARIZABLE: u8 = 1;
const EXIT_UNKNOWN: u8 = 2;
const EXIT_BAD_FILE: u8 = 3;
/// As sysexits' EX_USAGE: kept apart from the verdict codes, which clap's default (2)
/// would collide with.
const EXIT_USAGE: u8 = 64;

/// Keel's simulation and history-checking tool.
#[derive(Debug, Parser)]
#[command(name = "keel-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sim: SimArgs,
}

/// The simulator's flags (used when no subcommand is given).
#[derive(Debug, Args)]
struct SimArgs {
    /// Soak: run this many seeds, from `--first-seed` on.
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<u64>,
    /// The first seed of a soak.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Replay one seed and print its event trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Initial voters (default: drawn from the seed, 3 or 5).
    #[arg(long)]
    nodes: Option<usize>,
    /// Events in the faulty phase.
    #[arg(long)]
    steps: Option<u64>,
    /// Storage write mode (default: drawn from the seed).
    #[arg(long, value_enum)]
    mode: Option<WriteMode>,
    /// Each node's disk: the model, keel-wal's real WAL on a file system that
    /// loses power at every crash, or that WAL on a disk that lies about fsync
    /// (a planted storage bug).
    #[arg(long, value_enum, default_value_t = StorageArg::Memory)]
    storage: StorageArg,
    /// Plant a known bug in the core (to see the simulator catch it).
    #[arg(long, value_enum)]
    plant_bug: Option<BugArg>,
    /// Replay: also print the core's own log lines (to stderr).
    #[arg(long)]
    raft_log: bool,
    /// Soak: print the full report of every failing seed (default: the first 3).
    #[arg(long)]
    all_failures: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StorageArg {
    /// `MemoryStorage`.
    Memory,
    /// keel-wal's `DiskStorage` on an in-memory file system.
    Wal,
    /// The same WAL on a disk whose fsyncs do nothing.
    LyingWal,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WriteMode {
    /// `Ready` / `advance`.
    Sync,
    /// `MsgStorageAppend` / `MsgStorageApply`.
    Async,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BugArg {
    /// Commit entries of earlier terms by counting replicas.
    CommitPreviousTermByCount,
    /// Grant votes without the log check.
    VoteWithoutLogCheck,
    /// Lease-based reads without CheckQuorum.
    LeaseReadWithoutCheckQuorum,
    /// Acknowledge appends before they are durable.
    AckBeforePersist,
    /// Answer ReadIndex before committing an entry of the leader's term.
    ReadIndexBeforeCommitInTerm,
}

impl From<BugArg> for PlantedBug {
    fn from(b: BugArg) -> PlantedBug {
        match b {
            BugArg::CommitPreviousTermByCount => PlantedBug::CommitPreviousTermByCount,
            BugArg::VoteWithoutLogCheck => PlantedBug::VoteWithoutLogCheck,
            BugArg::LeaseReadWithoutCheckQuorum => PlantedBug::LeaseReadWithoutCheckQuorum,
            BugArg::AckBeforePersist => PlantedBug::AckBeforePersist,
            BugArg::ReadIndexBeforeCommitInTerm => PlantedBug::ReadIndexBeforeCommitInTerm,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a client history for linearizability.
    ///
    /// Prints `linearizable` (exit 0), `not linearizable` and a counterexample (exit 1), or
    /// `unknown: <reason>` (exit 2); a malformed file exits 3.
    CheckHistory(CheckHistoryArgs),
}

#[derive(Debug, Args)]
struct CheckHistoryArgs {
    /// The file's format, which also picks the model it is checked against.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Keel)]
    format: HistoryFormat,
    /// Wall-clock budget in seconds; when it runs out the verdict is `unknown`.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    timeout_secs: f64,
    /// Memory budget of the search cache, in MiB; when exceeded the verdict is `unknown`.
    #[arg(long, default_value_t = 1024)]
    max_cache_mib: usize,
    /// The history file.
    file: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HistoryFormat {
    /// Keel's JSON lines (get/put/delete/cas on keys), see the crate README.
    Keel,
    /// Jepsen etcd logs: one register with read/write/cas.
    JepsenEtcd,
    /// Porcupine's KV logs: get/put/append on keys.
    PorcupineKv,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{e}"))?;
    Ok(seconds)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are not errors.
            let code = if error.use_stderr() { EXIT_USAGE } else { EXIT_LINEARIZABLE };
            // Nothing sensible is left to do if the terminal is gone.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Some(Command::CheckHistory(args)) => ExitCode::from(check_history(&args)),
        None => match (cli.sim.seeds, cli.sim.seed) {
            (Some(n), _) => ExitCode::from(soak(&cli.sim, n)),
            (None, Some(seed)) => ExitCode::from(replay(&cli.sim, seed)),
            (None, None) => {
                eprintln!("keel-sim: give --seeds N (soak), --seed S (replay) or a subcommand");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

fn overrides(args: &SimArgs) -> Overrides {
    Overrides {
        nodes: args.nodes,
        steps: args.steps,
        async_storage_writes: args.mode.map(|m| matches!(m, WriteMode::Async)),
        planted_bug: args.plant_bug.map(PlantedBug::from),
        storage: Some(match args.storage {
            StorageArg::Memory => StorageKind::Memory,
            StorageArg::Wal => StorageKind::Wal,
            StorageArg::LyingWal => StorageKind::LyingWal,
        }),
    }
}

/// Runs many seeds; prints failures and a summary.
#[allow(clippy::print_stdout, reason = "the soak's report is the command's output")]
#[allow(clippy::disallowed_methods, reason = "seeds per second is wall-clock by nature")]
fn soak(args: &SimArgs, n: u64) -> u8 {
    // Panics are caught and reported with their seed; the default hook's
    // message would only interleave with the report.
    std::panic::set_hook(Box::new(|_| {}));
    let overrides = overrides(args);
    let start = std::time::Instant::now();
    let (mut safety, mut liveness, mut panics, mut unknown, mut shown) =
        (0u64, 0u64, 0u64, 0u64, 0);
    let mut failing = Vec::new();
    let mut steps = 0u64;
    let mut totals = keel_sim::sim::RunStats::default();
    for seed in args.first_seed..args.first_seed.saturating_add(n) {
        let options = Options::swarm(seed, &overrides);
        let report = sim::run(seed, &options, RunSettings::default());
        steps += report.stats.steps;
        add_stats(&mut totals, &report.stats);
        match &report.outcome {
            Outcome::Passed => {}
            Outcome::CheckUnknown(why) => {
                unknown += 1;
                println!("seed={seed} linearizability unknown: {why}");
            }
            Outcome::Safety(_) | Outcome::NotLinearizable(_) => safety += 1,
            Outcome::Liveness(_) => liveness += 1,
            Outcome::Panic(_) => panics += 1,
        }
        if report.outcome.is_failure() {
            failing.push(seed);
            if args.all_failures || shown < 3 {
                shown += 1;
                println!("{report}");
            } else {
                println!("seed={seed} {}", first_line(&report.outcome.to_string()));
            }
        }
        let done = seed - args.first_seed + 1;
        if done.is_multiple_of(500) {
            let rate = done as f64 / start.elapsed().as_secs_f64();
            eprintln!("{done}/{n} seeds, {rate:.1} seeds/s, {} failing so far", failing.len());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} seeds in {secs:.1}s: {:.1} seeds/s, {:.0} events/s; safety violations: {safety}, \
         liveness failures: {liveness}, panics: {panics}, checks out of budget: {unknown}",
        n as f64 / secs,
        steps as f64 / secs
    );
    println!(
        "totals: {} client ops ({} returned, {} checked), {} leaders, {} crashes ({} mid-write), \
         {} partitions, {} pauses, \
         {} membership changes applied, {} transfers, {} snapshots made, {} installed, \
         {} lease reads outside etcd's lease, {} stranded members",
        totals.ops_invoked,
        totals.ops_ok,
        totals.ops_checked,
        totals.leaders_elected,
        totals.crashes,
        totals.crashes_mid_write,
        totals.partitions,
        totals.pauses,
        totals.conf_changes_applied,
        totals.transfers,
        totals.snapshots_created,
        totals.snapshots_installed,
        totals.lease_reads_unverifiable,
        totals.stranded_members
    );
    if !failing.is_empty() {
        println!("failing seeds: {failing:?}");
        return 1;
    }
    // Seeds whose history the checker could not judge proved nothing.
    u8::from(unknown > 0) * 2
}

fn add_stats(t: &mut keel_sim::sim::RunStats, s: &keel_sim::sim::RunStats) {
    t.ops_invoked += s.ops_invoked;
    t.ops_ok += s.ops_ok;
    t.ops_checked += s.ops_checked;
    t.leaders_elected += s.leaders_elected;
    t.crashes += s.crashes;
    t.crashes_mid_write += s.crashes_mid_write;
    t.partitions += s.partitions;
    t.pauses += s.pauses;
    t.conf_changes_applied += s.conf_changes_applied;
    t.transfers += s.transfers;
    t.snapshots_created += s.snapshots_created;
    t.snapshots_installed += s.snapshots_installed;
    t.lease_reads_unverifiable += s.lease_reads_unverifiable;
    t.stranded_members += s.stranded_members;
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Replays one seed, streaming its trace.
#[allow(clippy::print_stdout, reason = "the trace is the command's output")]
fn replay(args: &SimArgs, seed: u64) -> u8 {
    std::panic::set_hook(Box::new(|_| {}));
    let options = Options::swarm(seed, &overrides(args));
    println!("seed={seed} options: {options}");
    let mut settings = RunSettings {
        trace_tail: 0,
        sink: Some(Box::new(|r: &TraceRecord| println!("{r}"))),
        ..RunSettings::default()
    };
    if args.raft_log {
        settings.logger = Arc::new(StderrLogger);
    }
    let report = sim::run(seed, &options, settings);
    println!("stats: {:?}", report.stats);
    println!("seed={seed} {}", report.outcome);
    u8::from(report.outcome.is_failure())
}

/// The core's log lines on stderr (replay with `--raft-log`).
struct StderrLogger;

impl keel::Logger for StderrLogger {
    fn is_enabled(&self, level: keel::Level) -> bool {
        level >= keel::Level::Info
    }
    fn log(&self, level: keel::Level, message: std::fmt::Arguments<'_>) {
        eprintln!("    raft {level}: {message}");
    }
}

#[allow(clippy::print_stdout, reason = "the verdict is the command's output")]
fn check_history(args: &CheckHistoryArgs) -> u8 {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", args.file.display());
            return EXIT_BAD_FILE;
        }
    };
    let options = CheckOptions {
        timeout: Some(Duration::from_secs_f64(args.timeout_secs)),
        max_cache_bytes: args.max_cache_mib.saturating_mul(1 << 20),
    };
    let verdict = match args.format {
        HistoryFormat::Keel => run(&KvModel, format::keel::parse(&text), &options),
        HistoryFormat::JepsenEtcd => {
            run(&RegisterModel, format::jepsen_etcd::parse(&text), &options)
        }
        HistoryFormat::PorcupineKv => {
            run(&AppendKvModel, format::porcupine_kv::parse(&text), &options)
        }
    };
    match verdict {
        Ok(verdict) => {
            println!("{verdict}");
            match verdict {
                Verdict::Linearizable => EXIT_LINEARIZABLE,
                Verdict::NotLinearizable { .. } => EXIT_NOT_LINEARIZABLE,
                Verdict::Unknown { .. } => EXIT_UNKNOWN,
            }
        }
        Err(error) => {
            report_malformed(&args.file, &error);
            EXIT_BAD_FILE
        }
    }
}

fn run<M: Model>(
    model: &M,
    parsed: Result<History<M>, ParseError>,
    options: &CheckOptions,
) -> Result<Verdict, ParseError> {
    parsed.map(|history| check(model, &history, options))
}

fn report_malformed(path: &Path, error: &ParseError) {
    eprintln!("error: malformed history {}: {error}", path.display());
}
