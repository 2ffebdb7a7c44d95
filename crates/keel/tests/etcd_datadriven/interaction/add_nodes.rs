//! `add-nodes N [voters=(..)] [learners=(..)] [index=I] [content=S]
//! [inflight=N] [async-storage-writes=B] [prevote=B] [checkquorum=B]
//! [max-committed-size-per-ready=N] [disable-conf-change-validation=B]
//! [read-only=safe|lease-based] [step-down-on-removal=B]`: creates N nodes
//! with the next ids, bootstrapped from a snapshot when one is described.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use keel::raftpb::{ConfState, Entry, HardState, Snapshot};
use keel::storage::{MemoryStorage, Storage, StorageError};
use keel::{Config, RawNode, ReadOnlyOption};

use super::{CmdResult, Env, Node, first_as_int, output_err, scan_bool, scan_int, scan_u64};
use crate::datadriven::TestData;

/// A `MemoryStorage` whose snapshot is the node's latest applied state
/// (etcd's `snapOverrideStorage`): `MemoryStorage`'s own snapshot moves with
/// compactions, which is awkward for tests.
#[derive(Clone)]
pub(crate) struct EnvStorage {
    mem: MemoryStorage,
    history: Arc<Mutex<Vec<Snapshot>>>,
}

impl Storage for EnvStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState), StorageError> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        self.mem.entries(lo, hi, max_size, out)
    }
    fn term(&self, index: u64) -> Result<u64, StorageError> {
        self.mem.term(index)
    }
    fn first_index(&self) -> Result<u64, StorageError> {
        self.mem.first_index()
    }
    fn last_index(&self) -> Result<u64, StorageError> {
        self.mem.last_index()
    }
    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(history.last().cloned().unwrap_or_default())
    }
}

/// etcd's `raftConfigStub`: small ticks and no limits.
fn config_stub() -> Config {
    Config {
        election_tick: 3,
        heartbeat_tick: 1,
        max_size_per_msg: u64::MAX,
        max_inflight_msgs: i32::MAX as usize,
        check_quorum: false,
        pre_vote: false,
        ..Config::new(1)
    }
}

impl Env {
    pub(crate) fn handle_add_nodes(&mut self, d: &TestData) -> CmdResult {
        let n = first_as_int(d)?;
        let mut snap = Snapshot::default();
        let mut cfg = config_stub();
        for arg in &d.cmd_args[1..] {
            for i in 0..arg.vals.len() {
                match arg.key.as_str() {
                    "voters" => snap.metadata.conf_state.voters.push(scan_u64(arg, i)?),
                    "learners" => snap.metadata.conf_state.learners.push(scan_u64(arg, i)?),
                    "inflight" => {
                        // A non-positive value is refused by the config check.
                        cfg.max_inflight_msgs = usize::try_from(scan_int(arg, i)?).unwrap_or(0);
                    }
                    "index" => {
                        snap.metadata.index = scan_u64(arg, i)?;
                        cfg.applied = snap.metadata.index;
                    }
                    "content" => snap.data = Bytes::from(arg.vals[i].clone()),
                    "async-storage-writes" => cfg.async_storage_writes = scan_bool(arg, i)?,
                    "prevote" => cfg.pre_vote = scan_bool(arg, i)?,
                    "checkquorum" => cfg.check_quorum = scan_bool(arg, i)?,
                    "max-committed-size-per-ready" => {
                        cfg.max_committed_size_per_ready = scan_u64(arg, i)?;
                    }
                    "disable-conf-change-validation" => {
                        cfg.disable_conf_change_validation = scan_bool(arg, i)?;
                    }
                    "read-only" => {
                        cfg.read_only_option = match arg.vals[i].as_str() {
                            "safe" => ReadOnlyOption::Safe,
                            "lease-based" => ReadOnlyOption::LeaseBased,
                            other => {
                                return Err(output_err(format!(
                                    "invalid read-only option {}",
                                    super::go_str(other)
                                )));
                            }
                        }
                    }
                    "step-down-on-removal" => cfg.step_down_on_removal = scan_bool(arg, i)?,
                    _ => {}
                }
            }
        }
        self.add_nodes(n, cfg, snap)
    }

    /// Adds `n` nodes configured from `cfg`, bootstrapped from `snap` unless
    /// it is empty (etcd's `AddNodes`).
    fn add_nodes(&mut self, n: i64, cfg: Config, mut snap: Snapshot) -> CmdResult {
        let bootstrap = snap != Snapshot::default();
        for _ in 0..n {
            let id = 1 + self.nodes.len() as u64;
            let mem = MemoryStorage::new();
            let history = Arc::new(Mutex::new(Vec::new()));
            let storage = EnvStorage { mem: mem.clone(), history: history.clone() };
            if bootstrap {
                // MemoryStorage cannot express a snapshot at index 1 well.
                if snap.metadata.index <= 1 {
                    return Err(output_err("index must be specified as > 1 due to bootstrap"));
                }
                snap.metadata.term = 1;
                mem.apply_snapshot(snap.clone()).map_err(output_err)?;
                let fi = mem.first_index().map_err(output_err)?;
                let exp = snap.metadata.index + 1;
                if fi != exp {
                    return Err(output_err(format!(
                        "failed to establish first index {exp}; got {fi}"
                    )));
                }
            }
            history.lock().unwrap_or_else(PoisonError::into_inner).push(snap.clone());
            let mut cfg = cfg.clone();
            cfg.id = id;
            cfg.logger = Arc::new(self.output.logger.clone());
            let raw = RawNode::new(&cfg, storage).map_err(output_err)?;
            self.nodes.push(Node {
                raw,
                storage: mem,
                config: cfg,
                append_work: Vec::new(),
                apply_work: Vec::new(),
                history,
            });
        }
        Ok(())
    }
}
