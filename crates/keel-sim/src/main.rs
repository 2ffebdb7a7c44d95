//! The `keel-sim` command.
//!
//! - `keel-sim check-history [--format keel|jepsen-etcd|porcupine-kv] FILE` checks a client
//!   history for linearizability. It prints `linearizable` (exit 0), `not linearizable`
//!   followed by a counterexample (exit 1), or `unknown: <reason>` when a budget runs out
//!   (exit 2). A file that cannot be read or is malformed exits 3, with a message naming
//!   the line. Usage errors exit 64.
//! - With no subcommand, `keel-sim --seeds N ...` will run the simulator's soak mode (not
//!   written yet).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keel_sim::linearizability::format::{self, ParseError};
use keel_sim::linearizability::models::{AppendKvModel, KvModel, RegisterModel};
use keel_sim::linearizability::{CheckOptions, History, Model, Verdict, check};

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
    // The simulator's soak mode adds its flags here (`--seeds N`, `--nodes`, `--steps`,
    // `--seed S`); they apply when no subcommand is given.
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
        None => {
            eprintln!(
                "keel-sim: the simulator (`keel-sim --seeds N`) is not implemented yet; \
                 see `keel-sim check-history --help`"
            );
            ExitCode::from(EXIT_USAGE)
        }
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
