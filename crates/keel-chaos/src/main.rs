//! `keel-chaos`: run a fault test of real keel-kv processes.
//!
//! Exit status: 0 linearizable (and nothing lost, members converged), 1 a
//! violation, 2 unknown (the checker's budget ran out), 3 the test itself
//! could not run.

#![allow(clippy::print_stdout, reason = "the summary is the tool's output")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use keel_chaos::{Kind, Options, Program};

#[derive(Parser)]
#[command(name = "keel-chaos", version, about = "A Jepsen-style fault test of keel-kv")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// Run keel-kv itself (how the tester starts its members).
    #[command(hide = true, name = "keel-kv", disable_help_flag = true)]
    KeelKv {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Seconds of faults and client load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Members (3 or 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(3..=7))]
    nodes: u64,
    /// Fault kinds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,partition,link,membership")]
    nemesis: Vec<Kind>,
    /// Seeds the tester's choices (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: u64,
    /// Keys the clients share.
    #[arg(long, default_value_t = 8)]
    keys: u64,
    /// Where the history, member logs, data and summary go (default: a new
    /// directory under the system's temporary directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A keel-kv binary to test instead of this program's own copy.
    #[arg(long)]
    keel_kv: Option<PathBuf>,
    /// Test-only: a deliberate keel-kv bug (`ack-before-commit`,
    /// `local-reads`); needs a debug build.
    #[arg(long)]
    planted_bug: Option<String>,
    /// Seconds the linearizability check may take.
    #[arg(long, default_value_t = 600)]
    check_timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::KeelKv { args }) = cli.command {
        let argv = std::iter::once("keel-kv".to_string()).chain(args);
        return keel_kv::cli::run(argv);
    }
    init_logging();
    let a = cli.run;
    let program = match &a.keel_kv {
        Some(path) => Program { exe: path.clone(), prefix: Vec::new() },
        None => match std::env::current_exe() {
            Ok(exe) => Program { exe, prefix: vec!["keel-kv".into()] },
            Err(e) => {
                eprintln!("keel-chaos: cannot find my own executable: {e}");
                return ExitCode::from(3);
            }
        },
    };
    let seed = a.seed.unwrap_or_else(clock_seed);
    let out = match a.out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("keel-chaos-{seed}")),
    };
    let mut o = Options::new(program, out, Duration::from_secs(a.duration));
    o.nodes = a.nodes;
    o.kinds = a.nemesis.into_iter().collect();
    o.seed = seed;
    o.workload.clients = a.clients.max(1);
    o.workload.keys = a.keys.max(1);
    o.planted_bug = a.planted_bug;
    o.check_timeout = Duration::from_secs(a.check_timeout);
    println!("keel-chaos: seed {seed}; output in {}", o.out.display());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keel-chaos: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(keel_chaos::run(o)) {
        Ok(report) => {
            print!("{}", report.summary);
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("keel-chaos: {e}");
            ExitCode::from(3)
        }
    }
}

/// A seed from the clock, so that repeated runs differ (and print theirs).
fn clock_seed() -> u64 {
    std::time::SystemTime::UNIX_EPOCH.elapsed().map_or(1, |d| d.as_nanos() as u64)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("keel_chaos=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
