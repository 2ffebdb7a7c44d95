//! keel-kv: a replicated key-value server built on Keel: [`keel::Node`] for
//! raft, `keel-wal` for the disk, `keel-transport` between members, and an
//! HTTP API (axum) for clients. It is etcd's `contrib/raftexample` done
//! properly: a write is answered once committed and applied, reads are
//! linearizable through ReadIndex, and a member survives `kill -9`.
//!
//! # Layout
//! - [`cli`] — the `keel-kv` command line.
//! - [`serve`] — the `serve` flags and a member's life.
//! - [`cluster`] — `keel-kv cluster`: a local cluster of processes.
//! - [`server`] — the member: raft node, disk, transport and their threads.
//! - [`http`] — the client API.
//! - [`state`] — the state machine and its snapshot format.
//! - [`command`] — what log entries carry.
//! - [`metrics`] — Prometheus metrics.
//! - [`error`] — request errors and their HTTP answers.
//! - [`tls`] — HTTPS for clients.

// A server lives in real time: ticks, request deadlines, latency histograms.
#![allow(clippy::disallowed_methods, reason = "a server reads the clock; the core does not")]

pub mod cli;
pub mod cluster;
pub mod command;
pub mod error;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod state;
pub mod tls;
