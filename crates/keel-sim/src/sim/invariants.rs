//! Raft's safety properties, checked incrementally as the run goes: every
//! event updates the registries below with what it revealed, and a
//! contradiction is a [`Violation`].
//!
//! - **Election safety**: at most one leader per term.
//! - **Log matching**: every `(index, term)` that appears in any node's log
//!   (as handed out in a `Ready`) names one entry, with one predecessor term.
//!   By induction on the index this is the paper's property: two logs with an
//!   entry of the same index and term agree up to it.
//! - **Committed entries**: an index known committed (a node's commit index
//!   covers it, or a snapshot contains it) holds one entry forever; that is
//!   also "committed entries survive crashes", since a restarted node's
//!   durable log and commit index are checked against it.
//! - **Leader completeness**: a leader of term `T` holds every entry known
//!   committed by a node whose term was below `T` when it learned of it (that
//!   node's term bounds the term the entry was committed in).
//! - **State machine safety**: an applied entry is the committed one at its
//!   index, payload included (the one a log was seen to append: storage that
//!   reads back other bytes under the same index and term is caught here),
//!   and two replicas' snapshots at one index have the same digest.
//! - **Configuration agreement**: applying the configuration change at an
//!   index gives every node the same configuration.
//! - **Reads see earlier commits**: a ReadIndex read's index is at least
//!   the highest index known committed (by any node) when the read started,
//!   so the read sees every write that completed before it.
//! - **One vote per term**: a node grants its vote in a term to one
//!   candidate; its durable (term, vote) never goes back, even across
//!   restarts (checked by the cluster, which sees the disks).
//!
//! The per-node checks (applied <= committed, term and vote monotonic, the
//! lease contract) live with the node code in `cluster.rs`, which has the
//! node's state at hand.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use bytes::Bytes;
use keel::raftpb::{ConfState, Entry};

use super::node::LogMirror;

/// A broken safety property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// The outcome of a check.
pub type Checked = Result<(), Violation>;

/// An entry's identity for log matching: its type, payload, and the term of
/// the entry before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryKey {
    entry_type: Option<i32>,
    data: Bytes,
    prev_term: u64,
}

/// What is known committed at one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    term: u64,
    /// The lowest term of a node that knew it committed.
    seen_term: u64,
}

/// The global registries.
#[derive(Debug, Default)]
pub struct Invariants {
    leaders: BTreeMap<u64, u64>,
    entries: HashMap<(u64, u64), EntryKey>,
    /// `committed[i]` for index `i` (slot 0 unused).
    committed: Vec<Option<Committed>>,
    votes: HashMap<(u64, u64), u64>,
    snapshot_digests: HashMap<u64, (u64, u64)>,
    /// The configuration each applied configuration change produced.
    confs: HashMap<u64, (u64, ConfState)>,
    /// The highest term in which some node was seen leading.
    pub max_leader_term: u64,
}

impl Invariants {
    /// Empty registries.
    pub fn new() -> Invariants {
        Invariants::default()
    }

    /// `id` leads in `term`.
    pub fn leader(&mut self, term: u64, id: u64) -> Checked {
        self.max_leader_term = self.max_leader_term.max(term);
        match self.leaders.insert(term, id) {
            Some(other) if other != id => Err(Violation::new(
                "election safety",
                format!("two leaders in term {term}: {other} and {id}"),
            )),
            _ => Ok(()),
        }
    }

    /// Node `id` appended `entries`, the first following an entry of
    /// `prev_term`.
    pub fn appended(&mut self, id: u64, entries: &[Entry], prev_term: u64) -> Checked {
        let mut prev = prev_term;
        for e in entries {
            let key = EntryKey { entry_type: e.entry_type, data: e.data.clone(), prev_term: prev };
            match self.entries.get(&(e.index, e.term)) {
                None => {
                    self.entries.insert((e.index, e.term), key);
                }
                Some(known) if *known == key => {}
                Some(known) => {
                    return Err(Violation::new(
                        "log matching",
                        format!(
                            "node {id} appended entry (index {}, term {}) with {} bytes after \
                             term {}, but another log has it with {} bytes after term {}",
                            e.index,
                            e.term,
                            e.data.len(),
                            prev,
                            known.data.len(),
                            known.prev_term
                        ),
                    ));
                }
            }
            prev = e.term;
        }
        Ok(())
    }

    fn committed_at(&self, index: u64) -> Option<Committed> {
        self.committed.get(index as usize).copied().flatten()
    }

    /// Records that `(index, term)` is committed, known by a node at
    /// `seen_term`.
    pub fn commit(&mut self, id: u64, index: u64, term: u64, seen_term: u64) -> Checked {
        let i = index as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        match &mut self.committed[i] {
            slot @ None => {
                *slot = Some(Committed { term, seen_term });
                Ok(())
            }
            Some(c) if c.term == term => {
                c.seen_term = c.seen_term.min(seen_term);
                Ok(())
            }
            Some(c) => Err(Violation::new(
                "committed entries are permanent",
                format!(
                    "node {id} has index {index} committed with term {term}, but it was \
                     committed with term {}",
                    c.term
                ),
            )),
        }
    }

    /// Records that node `id` (at term `seen_term`) knows its log committed
    /// up to `commit` (from `from`, exclusive). Indexes its log no longer
    /// holds (behind a snapshot) were recorded when the snapshot was.
    pub fn commit_log(
        &mut self,
        id: u64,
        log: &LogMirror,
        from: u64,
        commit: u64,
        seen_term: u64,
    ) -> Checked {
        let start = from.max(log.snap_index()) + 1;
        for index in start..=commit {
            let Some(term) = log.term(index) else {
                return Err(Violation::new(
                    "commit index within the log",
                    format!(
                        "node {id} has commit {commit} beyond its last index {}",
                        log.last_index()
                    ),
                ));
            };
            self.commit(id, index, term, seen_term)?;
        }
        Ok(())
    }

    /// A leader of `term` was elected with `log`: it must hold every entry
    /// committed in an earlier term.
    pub fn leader_complete(&self, id: u64, term: u64, log: &LogMirror) -> Checked {
        for (index, c) in self.committed.iter().enumerate() {
            let Some(c) = c else { continue };
            let index = index as u64;
            if c.seen_term >= term || index < log.snap_index() {
                continue;
            }
            let have = log.term(index);
            if have != Some(c.term) {
                return Err(Violation::new(
                    "leader completeness",
                    format!(
                        "node {id} leads term {term} but its log has {} at index {index}, \
                         committed with term {} (known at term {})",
                        have.map_or("no entry".to_owned(), |t| format!("term {t}")),
                        c.term,
                        c.seen_term
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Node `id` applies `e`: it must be the committed entry at its index,
    /// with the payload that was appended there.
    pub fn applied(&self, id: u64, e: &Entry) -> Checked {
        match self.committed_at(e.index) {
            Some(c) if c.term == e.term => self.appended_payload(id, e),
            Some(c) => Err(Violation::new(
                "state machine safety",
                format!(
                    "node {id} applies index {} of term {}, but the committed entry there has \
                     term {}",
                    e.index, e.term, c.term
                ),
            )),
            None => Err(Violation::new(
                "state machine safety",
                format!(
                    "node {id} applies index {} (term {}), which no node knew committed",
                    e.index, e.term
                ),
            )),
        }
    }

    /// The highest index known committed so far (0: none): a read that
    /// starts now must be answered at least this far.
    pub fn commit_floor(&self) -> u64 {
        self.committed.len().saturating_sub(1) as u64
    }

    /// Node `id` got read index `index` for a read that started when `floor`
    /// was known committed. A correct leader answers with its commit index
    /// once it has committed an entry of its term, and then confirms it
    /// still leads (a quorum of heartbeats, or its lease): every entry known
    /// committed earlier was committed in its term or before, so its commit
    /// index covers it (leader completeness). A lower index serves a stale
    /// read.
    pub fn read_index(&self, id: u64, index: u64, floor: u64) -> Checked {
        if index >= floor {
            return Ok(());
        }
        Err(Violation::new(
            "reads see earlier commits",
            format!(
                "node {id} got read index {index} for a read started when index {floor} was \
                 already known committed"
            ),
        ))
    }

    /// Node `id` applies `e`, of the committed term: its type and payload
    /// must be those a log was seen to append at its index and term (the
    /// core may read it back from storage, which could return other bytes).
    fn appended_payload(&self, id: u64, e: &Entry) -> Checked {
        let known = self.entries.get(&(e.index, e.term));
        if known.is_some_and(|k| k.entry_type == e.entry_type && k.data == e.data) {
            return Ok(());
        }
        Err(Violation::new(
            "state machine safety",
            format!(
                "node {id} applies index {} (term {}) with {} bytes, but {}",
                e.index,
                e.term,
                e.data.len(),
                known.map_or("no log was seen to append it".to_owned(), |k| format!(
                    "the entry appended there differs (type {:?}, {} bytes)",
                    k.entry_type,
                    k.data.len()
                ))
            ),
        ))
    }

    /// `voter` granted its vote in `term` to `candidate`.
    pub fn vote(&mut self, voter: u64, term: u64, candidate: u64) -> Checked {
        match self.votes.insert((voter, term), candidate) {
            Some(other) if other != candidate => Err(Violation::new(
                "one vote per term",
                format!("node {voter} voted for {other} and for {candidate} in term {term}"),
            )),
            _ => Ok(()),
        }
    }

    /// Node `id`'s state machine has `digest` at `index`.
    pub fn state_digest(&mut self, id: u64, index: u64, digest: u64) -> Checked {
        match self.snapshot_digests.get(&index) {
            None => {
                self.snapshot_digests.insert(index, (id, digest));
                Ok(())
            }
            Some(&(_, d)) if d == digest => Ok(()),
            Some(&(other, _)) => Err(Violation::new(
                "state machine safety",
                format!("nodes {other} and {id} have different states at applied index {index}"),
            )),
        }
    }

    /// Node `id` applied the configuration change at `index`, which gave
    /// `cs`: every node must get the same configuration from it.
    pub fn conf_applied(&mut self, id: u64, index: u64, cs: &ConfState) -> Checked {
        match self.confs.get(&index) {
            None => {
                self.confs.insert(index, (id, cs.clone()));
                Ok(())
            }
            Some((_, known)) if known.equivalent(cs) => Ok(()),
            Some((other, known)) => Err(Violation::new(
                "configuration agreement",
                format!(
                    "applying the configuration change at index {index}, node {other} got {} \
                     and node {id} got {}",
                    keel::describe::describe_conf_state(known),
                    keel::describe::describe_conf_state(cs)
                ),
            )),
        }
    }

    /// The term committed at `index`, if known.
    pub fn committed_term(&self, index: u64) -> Option<u64> {
        self.committed_at(index).map(|c| c.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry::new(term, index, Bytes::from_static(data))
    }

    #[test]
    fn detects_each_kind_of_contradiction() {
        let mut inv = Invariants::new();
        assert!(inv.leader(2, 1).is_ok());
        assert!(inv.leader(2, 1).is_ok());
        assert_eq!(inv.leader(2, 3).unwrap_err().invariant, "election safety");

        assert!(inv.appended(1, &[e(1, 1, b"a"), e(2, 1, b"b")], 0).is_ok());
        assert!(inv.appended(2, &[e(2, 1, b"b")], 1).is_ok());
        assert_eq!(inv.appended(3, &[e(2, 1, b"c")], 1).unwrap_err().invariant, "log matching");
        assert_eq!(inv.appended(3, &[e(2, 1, b"b")], 0).unwrap_err().invariant, "log matching");

        assert!(inv.commit(1, 2, 1, 1).is_ok());
        assert!(inv.commit(2, 2, 3, 3).is_err());
        assert!(inv.applied(1, &e(2, 1, b"b")).is_ok());
        assert!(inv.applied(1, &e(2, 1, b"x")).is_err());
        assert!(inv.applied(1, &e(2, 2, b"b")).is_err());
        assert!(inv.applied(1, &e(9, 2, b"b")).is_err());

        let mut log = LogMirror::new();
        log.append(&[e(1, 1, b"a")]);
        assert!(inv.leader_complete(1, 2, &log).is_err());
        log.append(&[e(2, 1, b"b")]);
        assert!(inv.leader_complete(1, 2, &log).is_ok());
        // Known committed only at term 2: a leader of term 2 need not have it.
        let empty = LogMirror::new();
        let mut inv2 = Invariants::new();
        inv2.commit(1, 1, 1, 2).unwrap();
        assert!(inv2.leader_complete(3, 2, &empty).is_ok());
        assert!(inv2.leader_complete(3, 3, &empty).is_err());

        assert_eq!(inv.commit_floor(), 2);
        assert!(inv.read_index(1, 2, 2).is_ok());
        assert_eq!(inv.read_index(1, 1, 2).unwrap_err().invariant, "reads see earlier commits");

        assert!(inv.vote(1, 5, 2).is_ok());
        assert!(inv.vote(1, 5, 3).is_err());
        assert!(inv.state_digest(1, 7, 42).is_ok());
        assert!(inv.state_digest(2, 7, 43).is_err());
    }
}
