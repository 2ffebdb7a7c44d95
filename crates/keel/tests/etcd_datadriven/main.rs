//! etcd-raft's datadriven conformance files, run byte for byte.
//! (Placeholder; the harness lands in its own change.)
