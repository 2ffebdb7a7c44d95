//! The state machine: the key-value map and the membership, with the
//! snapshot format that carries both.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;
use prost::Message as _;

use keel::raftpb::{ConfChangeType, ConfState};

use crate::command::{Command, Op};

/// A member as the log last configured it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    /// Raft id.
    pub id: u64,
    /// Where its peers reach it.
    pub peer_url: String,
    /// A learner receives the log but does not vote.
    pub learner: bool,
}

/// The applied state of one member.
///
/// Cloning it is O(1): the map is a persistent B+tree whose nodes are shared
/// between clones and copied only when one of them writes to them. The apply
/// thread freezes the state that way and goes on applying while the snapshot
/// thread encodes the copy.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    data: OrdMap<String, Bytes>,
    members: BTreeMap<u64, Member>,
    /// Ids removed from the cluster, never to be added again (as etcd
    /// keeps them): a removed member restarted on its old data must not
    /// find its id back in the configuration.
    removed: BTreeSet<u64>,
    bytes: usize,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PairRecord {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MemberRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    peer_url: String,
    #[prost(bool, tag = "3")]
    learner: bool,
}

/// The snapshot payload.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotRecord {
    #[prost(message, repeated, tag = "1")]
    pairs: Vec<PairRecord>,
    #[prost(message, repeated, tag = "2")]
    members: Vec<MemberRecord>,
    #[prost(uint64, repeated, tag = "3")]
    removed: Vec<u64>,
}

/// The keys of fields 1 and 2 when length-delimited (`number << 3 | 2`):
/// `SnapshotRecord.pairs`, `PairRecord.key` and `PairRecord.value`.
const FIELD_1: u8 = 1 << 3 | 2;
const FIELD_2: u8 = 2 << 3 | 2;

/// The encoded size of a `PairRecord` (proto3: empty fields are left out).
fn pair_len(key: &str, value: &[u8]) -> usize {
    let opt = |n: usize| if n == 0 { 0 } else { field_len(n) };
    opt(key.len()) + opt(value.len())
}

/// The size of a length-delimited field holding `n` bytes.
fn field_len(n: usize) -> usize {
    1 + prost::length_delimiter_len(n) + n
}

fn put_len(buf: &mut Vec<u8>, key: u8, n: usize) {
    buf.push(key);
    prost::encoding::encode_varint(n as u64, buf);
}

fn put_field(buf: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len(buf, key, bytes.len());
        buf.extend_from_slice(bytes);
    }
}

/// A change of the membership, as a client asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// A new member, voting or not.
    Add {
        /// Its id.
        id: u64,
        /// Whether it joins as a learner.
        learner: bool,
    },
    /// A learner made a voter.
    Promote(u64),
    /// A member removed.
    Remove(u64),
}

impl MemberChange {
    /// The single-node change of raft that makes it (the inverse of
    /// [`KvState::change_of`]).
    pub fn conf_change_type(self) -> ConfChangeType {
        match self {
            MemberChange::Add { learner: true, .. } => ConfChangeType::ConfChangeAddLearnerNode,
            MemberChange::Add { learner: false, .. } | MemberChange::Promote(_) => {
                ConfChangeType::ConfChangeAddNode
            }
            MemberChange::Remove(_) => ConfChangeType::ConfChangeRemoveNode,
        }
    }

    /// The member it changes.
    pub fn id(self) -> u64 {
        match self {
            MemberChange::Add { id, .. } | MemberChange::Promote(id) | MemberChange::Remove(id) => {
                id
            }
        }
    }
}

/// Why a membership change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    /// Ids are never reused.
    #[error("member {0} was removed from the cluster; ids are never reused")]
    Removed(u64),
    /// The id is taken.
    #[error("member {0} already exists")]
    Exists(u64),
    /// No such member.
    #[error("member {0} not found")]
    NotFound(u64),
    /// No such member any more.
    #[error("member {0} not found: it was removed from the cluster")]
    Gone(u64),
    /// Promoting a voter.
    #[error("member {0} is already a voter")]
    AlreadyVoter(u64),
    /// Raft refuses a configuration without voters.
    #[error("member {0} is the last voter")]
    LastVoter(u64),
}

/// A snapshot payload that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("snapshot data does not decode: {0}")]
pub struct BadSnapshot(#[from] prost::DecodeError);

impl KvState {
    /// Applies a command; says whether the key existed before.
    pub fn apply(&mut self, cmd: Command) -> bool {
        match cmd.op() {
            Op::Put => {
                let key_len = cmd.key.len();
                self.bytes += key_len + cmd.value.len();
                match self.data.insert(cmd.key, cmd.value) {
                    Some(old) => {
                        self.bytes -= key_len + old.len();
                        true
                    }
                    None => false,
                }
            }
            Op::Delete => match self.data.remove(&cmd.key) {
                Some(old) => {
                    self.bytes -= cmd.key.len() + old.len();
                    true
                }
                None => false,
            },
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.data.get(key).cloned()
    }

    /// Up to `limit` pairs whose key starts with `prefix` (and comes after
    /// `after`, if given), in key order, of at most `max_bytes` of keys and
    /// values (but at least one pair), and whether more follow.
    pub fn range(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> (Vec<(String, Bytes)>, bool) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let pairs = self
            .data
            .range::<_, str>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let (mut out, mut bytes) = (Vec::new(), 0);
        for (k, v) in pairs {
            let size = k.len() + v.len();
            if out.len() == limit || (!out.is_empty() && bytes + size > max_bytes) {
                return (out, true);
            }
            bytes += size;
            out.push((k.clone(), v.clone()));
        }
        (out, false)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The members, by id.
    pub fn members(&self) -> &BTreeMap<u64, Member> {
        &self.members
    }

    /// Adds or updates a member (a promotion keeps the known URL when the
    /// change carries none).
    pub fn set_member(&mut self, id: u64, peer_url: Option<String>, learner: bool) {
        let peer_url = peer_url
            .or_else(|| self.members.get(&id).map(|m| m.peer_url.clone()))
            .unwrap_or_default();
        self.members.insert(id, Member { id, peer_url, learner });
    }

    /// Removes a member, for good.
    pub fn remove_member(&mut self, id: u64) {
        self.members.remove(&id);
        self.removed.insert(id);
    }

    /// The ids of the members that vote, in order.
    pub fn voters(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.values().filter(|m| !m.learner).map(|m| m.id)
    }

    /// Raft's configuration as this membership implies it (keel-kv makes
    /// only single-node changes, so never a joint one).
    pub fn conf_state(&self) -> ConfState {
        let learners = self.members.values().filter(|m| m.learner).map(|m| m.id).collect();
        ConfState { voters: self.voters().collect(), learners, ..ConfState::default() }
    }

    /// Whether `change` may be made to the membership as it stands. The
    /// same answer on every member at the same applied index: it reads only
    /// the replicated state.
    pub fn check_change(&self, change: MemberChange) -> Result<(), ChangeRefused> {
        let id = change.id();
        let removed = self.removed.contains(&id);
        let member = self.members.get(&id);
        match (change, member) {
            (MemberChange::Add { .. }, _) if removed => Err(ChangeRefused::Removed(id)),
            (MemberChange::Add { .. }, Some(_)) => Err(ChangeRefused::Exists(id)),
            (MemberChange::Promote(_) | MemberChange::Remove(_), None) if removed => {
                Err(ChangeRefused::Gone(id))
            }
            (MemberChange::Promote(_) | MemberChange::Remove(_), None) => {
                Err(ChangeRefused::NotFound(id))
            }
            (MemberChange::Promote(_), Some(m)) if !m.learner => {
                Err(ChangeRefused::AlreadyVoter(id))
            }
            (MemberChange::Remove(_), Some(m)) if !m.learner && self.voters().count() == 1 => {
                Err(ChangeRefused::LastVoter(id))
            }
            _ => Ok(()),
        }
    }

    /// What a committed single-node change of raft does to the membership
    /// here (an `AddNode` of a learner is its promotion).
    pub fn change_of(&self, change_type: ConfChangeType, id: u64) -> Option<MemberChange> {
        match change_type {
            ConfChangeType::ConfChangeAddNode => match self.members.get(&id) {
                Some(m) if m.learner => Some(MemberChange::Promote(id)),
                _ => Some(MemberChange::Add { id, learner: false }),
            },
            ConfChangeType::ConfChangeAddLearnerNode => {
                Some(MemberChange::Add { id, learner: true })
            }
            ConfChangeType::ConfChangeRemoveNode => Some(MemberChange::Remove(id)),
            ConfChangeType::ConfChangeUpdateNode => None,
        }
    }

    /// The snapshot payload of this state: a `SnapshotRecord`, with the
    /// pairs written straight from the map into a buffer of the exact size
    /// (a record built first would copy every key once more), then the
    /// members as prost encodes them.
    pub fn encode(&self) -> Bytes {
        let members = SnapshotRecord {
            pairs: Vec::new(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    id: m.id,
                    peer_url: m.peer_url.clone(),
                    learner: m.learner,
                })
                .collect(),
            removed: self.removed.iter().copied().collect(),
        }
        .encode_to_vec();
        let pairs: usize = self.data.iter().map(|(k, v)| field_len(pair_len(k, v))).sum();
        let mut buf = Vec::with_capacity(pairs + members.len());
        for (k, v) in &self.data {
            put_len(&mut buf, FIELD_1, pair_len(k, v));
            put_field(&mut buf, FIELD_1, k.as_bytes());
            put_field(&mut buf, FIELD_2, v);
        }
        buf.extend_from_slice(&members);
        Bytes::from(buf)
    }

    /// The state a snapshot payload holds.
    pub fn decode(data: &[u8]) -> Result<KvState, BadSnapshot> {
        let record = SnapshotRecord::decode(data)?;
        let mut state = KvState::default();
        for p in record.pairs {
            let key_len = p.key.len();
            state.bytes += key_len + p.value.len();
            // Encoded from a map, a payload names each key once; one that
            // repeats a key (not ours) keeps the last value, counted once.
            if let Some(old) = state.data.insert(p.key, p.value) {
                state.bytes -= key_len + old.len();
            }
        }
        for m in record.members {
            state
                .members
                .insert(m.id, Member { id: m.id, peer_url: m.peer_url, learner: m.learner });
        }
        state.removed = record.removed.into_iter().collect();
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &'static [u8]) -> Command {
        Command { id: 1, op: Op::Put as i32, key: key.into(), value: Bytes::from_static(value) }
    }

    #[test]
    fn snapshot_round_trips_data_and_members() {
        let mut s = KvState::default();
        assert!(!s.apply(put("a", b"1")));
        assert!(s.apply(put("a", b"22")));
        s.apply(put("b/c", b"3"));
        s.set_member(1, Some("http://127.0.0.1:1".into()), false);
        s.set_member(4, Some("http://127.0.0.1:4".into()), true);
        s.set_member(5, Some("http://127.0.0.1:5".into()), true);
        s.remove_member(5);
        let back = KvState::decode(&s.encode()).unwrap();
        assert_eq!(back.get("a").as_deref(), Some(&b"22"[..]));
        assert_eq!(back.members(), s.members());
        assert_eq!(back.removed, [5].into());
        assert_eq!(back.bytes(), s.bytes());
        assert_eq!(back.bytes(), (1 + 2) + (3 + 1));
    }

    #[test]
    fn a_clone_keeps_its_contents_while_the_original_is_written() {
        let mut s = KvState::default();
        s.apply(put("a", b"1"));
        s.apply(put("b", b"2"));
        let frozen = s.clone();
        s.apply(put("a", b"changed"));
        s.apply(put("c", b"new"));
        let del = Command { id: 2, op: Op::Delete as i32, key: "b".into(), value: Bytes::new() };
        s.apply(del);
        assert_eq!(frozen.get("a").as_deref(), Some(&b"1"[..]));
        assert_eq!(frozen.get("b").as_deref(), Some(&b"2"[..]));
        assert_eq!(frozen.get("c"), None);
        let back = KvState::decode(&frozen.encode()).unwrap();
        assert_eq!((back.len(), back.bytes()), (2, frozen.bytes()));
        assert_eq!((s.len(), s.get("a").as_deref()), (2, Some(&b"changed"[..])));
    }

    #[test]
    fn the_payload_is_what_prost_encodes_for_the_record() {
        let mut s = KvState::default();
        let big = Bytes::from(vec![b'x'; 300]);
        s.apply(Command { id: 1, op: Op::Put as i32, key: "big".into(), value: big.clone() });
        s.apply(put("empty", b""));
        s.apply(put("k", b"v"));
        s.set_member(2, Some("http://127.0.0.1:2".into()), true);
        let record = SnapshotRecord {
            pairs: [("big", big), ("empty", Bytes::new()), ("k", Bytes::from_static(b"v"))]
                .into_iter()
                .map(|(key, value)| PairRecord { key: key.into(), value })
                .collect(),
            members: vec![MemberRecord {
                id: 2,
                peer_url: "http://127.0.0.1:2".into(),
                learner: true,
            }],
            removed: vec![],
        };
        assert_eq!(s.encode(), record.encode_to_vec());
        assert_eq!(KvState::default().encode(), SnapshotRecord::default().encode_to_vec());
    }

    #[test]
    fn range_is_prefix_bounded_and_limited() {
        let mut s = KvState::default();
        for k in ["a", "b/1", "b/2", "b/3", "c"] {
            s.apply(put(k, b"v"));
        }
        let (got, more) = s.range("b/", None, 2, usize::MAX);
        assert_eq!(got.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b/1", "b/2"]);
        assert!(more);
        let (got, more) = s.range("b/", None, 10, usize::MAX);
        assert_eq!(got.len(), 3);
        assert!(!more);
        // Bounded by bytes too (each pair is 4), and never empty.
        assert_eq!(s.range("b/", None, 10, 9), (got[..2].to_vec(), true));
        assert_eq!(s.range("b/", None, 10, 1), (got[..1].to_vec(), true));
        // The next page starts after the last key of this one.
        assert_eq!(s.range("b/", Some("b/2"), 10, 9), (got[2..].to_vec(), false));
        assert_eq!(s.range("b/", Some("a"), 10, 9), (got[..2].to_vec(), true));
    }

    #[test]
    fn delete_reports_existence_and_garbage_is_refused() {
        let mut s = KvState::default();
        s.apply(put("k", b"v"));
        let del = Command { id: 2, op: Op::Delete as i32, key: "k".into(), value: Bytes::new() };
        assert!(s.apply(del.clone()));
        assert!(!s.apply(del));
        assert_eq!(s.bytes(), 0);
        assert!(KvState::decode(&[0xff, 0xff, 0xff]).is_err());
        let pair = |value: &'static [u8]| PairRecord { key: "k".into(), value: value.into() };
        let repeated =
            SnapshotRecord { pairs: vec![pair(b"12345"), pair(b"1")], ..Default::default() };
        let back = KvState::decode(&repeated.encode_to_vec()).unwrap();
        assert_eq!((back.len(), back.bytes(), back.get("k").as_deref()), (1, 2, Some(&b"1"[..])));
        assert!(Command::decode(&[0x10, 0x07]).is_none(), "unknown op");
    }

    #[test]
    fn membership_changes_are_checked_against_the_members_and_the_removed() {
        let mut s = KvState::default();
        s.set_member(1, Some("http://a:1".into()), false);
        s.set_member(2, Some("http://a:2".into()), true);
        s.remove_member(3);
        let check = |c| s.check_change(c);
        let add = |id, learner| MemberChange::Add { id, learner };
        assert_eq!(check(add(4, true)), Ok(()));
        assert_eq!(check(add(2, false)), Err(ChangeRefused::Exists(2)));
        assert_eq!(check(add(3, true)), Err(ChangeRefused::Removed(3)));
        assert_eq!(check(MemberChange::Promote(2)), Ok(()));
        assert_eq!(check(MemberChange::Promote(1)), Err(ChangeRefused::AlreadyVoter(1)));
        assert_eq!(check(MemberChange::Promote(4)), Err(ChangeRefused::NotFound(4)));
        assert_eq!(check(MemberChange::Remove(2)), Ok(()));
        assert_eq!(check(MemberChange::Remove(1)), Err(ChangeRefused::LastVoter(1)));
        assert_eq!(check(MemberChange::Remove(3)), Err(ChangeRefused::Gone(3)));
        // Raft's AddNode is a promotion for a learner, an addition otherwise.
        let add_node = ConfChangeType::ConfChangeAddNode;
        assert_eq!(s.change_of(add_node, 2), Some(MemberChange::Promote(2)));
        assert_eq!(s.change_of(add_node, 1), Some(add(1, false)));
        assert_eq!(s.change_of(ConfChangeType::ConfChangeUpdateNode, 1), None);
        let cs = s.conf_state();
        assert_eq!((cs.voters, cs.learners, cs.voters_outgoing), (vec![1], vec![2], vec![]));
    }
}
