//! The `keel-kv` command line, in the library so that a tester (keel-chaos)
//! can run the very same program as its own child processes.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::server::StopReason;
use crate::{cluster, serve};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keel-kv", version, about = "A replicated key-value server on Keel (raft)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of a cluster.
    Serve(Box<serve::ServeArgs>),
    /// Start a local cluster, one process per member, and supervise it.
    Cluster(cluster::ClusterArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
}

/// Runs `keel-kv` with these arguments (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_logging();
    match cli.command {
        Command::Cluster(args) => cluster::run(&args),
        Command::Serve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("keel-kv: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(serve::serve(*args));
            // Stragglers (handshakes, idle connections) must not hold up the exit.
            runtime.shutdown_timeout(Duration::from_secs(2));
            match result {
                Ok(StopReason::Requested | StopReason::Removed) => ExitCode::SUCCESS,
                Ok(StopReason::Fatal) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("keel-kv: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
