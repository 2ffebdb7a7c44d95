//! Keel's testing tools that are not unit tests: a linearizability checker for client
//! histories and (to come) a deterministic simulator of whole Keel clusters.
//!
//! # Layout
//! - [`linearizability`]: the checker. It knows nothing of the simulator: it reads
//!   histories of any [`Model`](linearizability::Model), from memory or from files in the
//!   `keel`, `jepsen-etcd` and `porcupine-kv` formats.
//! - The `keel-sim` binary (`src/main.rs`): `keel-sim check-history` runs the checker on a
//!   file; the simulator's soak mode will live beside it.

pub mod linearizability;
