//! `keel-kv`: a replicated key-value server on Keel.
//!
//! - `keel-kv cluster` starts a local cluster, one process per member.
//! - `keel-kv serve` runs one member, as a deployment does.

fn main() -> std::process::ExitCode {
    keel_kv::cli::run(std::env::args_os())
}
