//! Side-by-side benchmarks of Keel against raft-rs 0.7 (TiKV's port of
//! etcd-raft), and the shared pieces of Keel's criterion micro-benchmarks.
//!
//! # Layout
//! - [`workload`]: the workload both sides run (3 in-memory nodes in one
//!   thread, 128-byte payloads, at most 4,096 proposals outstanding), the
//!   throughput and latency drivers, and the checks that keep the comparison
//!   honest (every applied entry is counted, its index and length checked).
//! - [`keel_side`]: the workload against `keel::RawNode`.
//! - [`raft_rs_side`]: the same workload against raft-rs's `RawNode`.
//! - [`alloc`]: reading the counting global allocator the binaries install.
//!
//! The binary `vs-raft-rs` (`cargo run -p keel-bench --profile bench --bin
//! vs-raft-rs`) runs both sides in alternating rounds and prints a table with
//! the ratios; `bench/instructions.sh` counts instructions per entry under
//! callgrind; `docs/benchmarks.md` explains the figures.

pub mod alloc;
pub mod keel_side;
pub mod raft_rs_side;
pub mod workload;
