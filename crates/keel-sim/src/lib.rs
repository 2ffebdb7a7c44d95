//! Keel's testing tools that are not unit tests: a deterministic simulator of whole Keel
//! clusters and a linearizability checker for client histories.
//!
//! # Layout
//! - [`sim`]: the simulator. A run is a pure function of a seed and [`sim::Options`]; it
//!   checks Raft's safety invariants after every event, requires convergence once the
//!   faults stop, and checks the clients' history for linearizability.
//! - [`kv`]: the key-value state machine the simulated cluster replicates.
//! - [`linearizability`]: the checker. It knows nothing of the simulator: it reads
//!   histories of any [`Model`](linearizability::Model), from memory or from files in the
//!   `keel`, `jepsen-etcd` and `porcupine-kv` formats.
//! - The `keel-sim` binary (`src/main.rs`): `keel-sim --seeds N` (soak), `keel-sim --seed
//!   S` (replay with the event trace), `keel-sim check-history FILE`.

pub mod kv;
pub mod linearizability;
pub mod sim;
