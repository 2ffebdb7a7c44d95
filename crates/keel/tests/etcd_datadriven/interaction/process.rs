//! `process-ready`, `process-append-thread` and `process-apply-thread`:
//! handling a node's `Ready`, and the work of its storage threads with
//! asynchronous storage writes. The state machine is etcd's "appender":
//! each applied entry appends its payload to the previous state.

use bytes::{Bytes, BytesMut};
use keel::describe::{describe_message, describe_ready};
use keel::raftpb::{AnyConfChange, Entry, HardState, MessageType, Snapshot, SnapshotMetadata};
use keel::testing::is_local_msg_target;
use keel::{StorageAppend, StorageApply};

use super::{CmdResult, Env, Node, fatal, node_idxs, output_err};
use crate::datadriven::TestData;

impl Env {
    pub(crate) fn handle_process_ready(&mut self, d: &TestData) -> CmdResult {
        let idxs = node_idxs(d)?;
        for &idx in &idxs {
            if idxs.len() > 1 {
                self.output.write(&format!("> {} handling Ready\n", idx + 1));
                self.with_indent(|env| env.process_ready(idx))?;
            } else {
                self.process_ready(idx)?;
            }
        }
        Ok(())
    }

    /// Handles one `Ready` of the node at `idx`: prints it; in synchronous
    /// mode persists and applies it and advances; queues its messages (those
    /// to the local storage threads on the node's work queues).
    pub(crate) fn process_ready(&mut self, idx: usize) -> CmdResult {
        let Env { nodes, messages, output } = self;
        let n = nodes.get_mut(idx).ok_or_else(|| fatal(format!("index out of range [{idx}]")))?;
        let rd = n.raw.ready();
        output.write(&describe_ready(&rd, None));

        let async_writes = n.config.async_storage_writes;
        if !async_writes {
            process_append(n, rd.hard_state, &rd.entries, rd.snapshot.as_ref())?;
            process_apply(n, &rd.committed_entries)?;
        }
        for m in rd.messages {
            if is_local_msg_target(m.to) {
                if !async_writes {
                    return Err(fatal("unexpected local msg target"));
                }
                match m.msg_type() {
                    MessageType::MsgStorageAppend => n.append_work.push(m),
                    MessageType::MsgStorageApply => n.apply_work.push(m),
                    t => return Err(fatal(format!("unexpected message type {t:?}"))),
                }
            } else {
                messages.push(m);
            }
        }
        if !async_writes {
            n.raw.advance();
        }
        Ok(())
    }

    /// `process-append-thread` / `process-apply-thread`.
    pub(crate) fn handle_process_thread(&mut self, d: &TestData, thread: Thread) -> CmdResult {
        let idxs = node_idxs(d)?;
        for &idx in &idxs {
            if idxs.len() > 1 {
                self.output.write(&format!("> {} processing {} thread\n", idx + 1, thread.name()));
                self.with_indent(|env| env.process_thread(idx, thread))?;
            } else {
                self.process_thread(idx, thread)?;
            }
        }
        Ok(())
    }

    /// Performs the oldest work item of one of the node's storage threads,
    /// and queues the responses it carries.
    pub(crate) fn process_thread(&mut self, idx: usize, thread: Thread) -> CmdResult {
        let Env { nodes, messages, output } = self;
        let n = nodes.get_mut(idx).ok_or_else(|| fatal(format!("index out of range [{idx}]")))?;
        let work = thread.work(n);
        if work.is_empty() {
            output.write(&format!("no {} work to perform", thread.name()));
            return Ok(());
        }
        let mut m = work.remove(0);
        let resps = std::mem::take(&mut m.responses);
        output.write("Processing:\n");
        output.write(&describe_message(&m, None));
        output.write("\n");
        match thread {
            Thread::Append => {
                let append = StorageAppend::new(&m).ok_or_else(|| fatal("not an append"))?;
                process_append(n, append.hard_state(), append.entries(), append.snapshot())?;
            }
            Thread::Apply => {
                let apply = StorageApply::new(&m).ok_or_else(|| fatal("not an apply"))?;
                process_apply(n, apply.entries())?;
            }
        }
        output.write("Responses:\n");
        for r in &resps {
            output.write(&describe_message(r, None));
            output.write("\n");
        }
        messages.extend(resps);
        Ok(())
    }
}

/// A node's local storage threads (asynchronous storage writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Thread {
    /// Persists entries, hard state and snapshots (`MsgStorageAppend`).
    Append,
    /// Applies committed entries (`MsgStorageApply`).
    Apply,
}

impl Thread {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Thread::Append => "append",
            Thread::Apply => "apply",
        }
    }

    /// The thread's queue of work on node `n`.
    pub(crate) fn work(self, n: &mut Node) -> &mut Vec<keel::raftpb::Message> {
        match self {
            Thread::Append => &mut n.append_work,
            Thread::Apply => &mut n.apply_work,
        }
    }
}

/// Persists a hard state and either a snapshot or entries.
fn process_append(
    n: &Node,
    st: Option<HardState>,
    ents: &[Entry],
    snap: Option<&Snapshot>,
) -> CmdResult {
    let s = &n.storage;
    if let Some(st) = st {
        s.set_hard_state(st);
    }
    if let Some(snap) = snap {
        if !ents.is_empty() {
            return Err(output_err("can't apply snapshot and entries at the same time"));
        }
        s.apply_snapshot(snap.clone()).map_err(output_err)?;
    } else {
        s.append(ents).map_err(output_err)?;
    }
    Ok(())
}

/// Applies committed entries: configuration changes go to the node, and
/// every entry's payload (a change's context) is appended to the state.
fn process_apply(n: &mut Node, ents: &[Entry]) -> CmdResult {
    for ent in ents {
        let (update, cs) = match AnyConfChange::from_entry(ent).map_err(output_err)? {
            Some(cc) => {
                // etcd panics when a committed change cannot apply.
                let cs = n.raw.apply_conf_change(&cc).map_err(fatal)?;
                (cc.context().clone(), Some(cs))
            }
            None => (ent.data.clone(), None),
        };
        let last = n.last_snapshot();
        let mut data = BytesMut::with_capacity(last.data.len() + update.len());
        data.extend_from_slice(&last.data);
        data.extend_from_slice(&update);
        let snap = Snapshot {
            data: Bytes::from(data),
            metadata: SnapshotMetadata {
                conf_state: cs.unwrap_or(last.metadata.conf_state),
                index: ent.index,
                term: ent.term,
            },
        };
        n.push_history(snap);
    }
    Ok(())
}
