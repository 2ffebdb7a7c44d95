//! The state machine: the key-value map and the membership, with the
//! snapshot format that carries both.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;

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
#[derive(Debug, Default)]
pub struct KvState {
    data: BTreeMap<String, Bytes>,
    members: BTreeMap<u64, Member>,
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

    /// Up to `limit` pairs whose key starts with `prefix`, in key order, and
    /// whether more follow.
    pub fn range(&self, prefix: &str, limit: usize) -> (Vec<(String, Bytes)>, bool) {
        let mut it = self
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()));
        let out: Vec<_> = it.by_ref().take(limit).collect();
        let more = it.next().is_some();
        (out, more)
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

    /// Removes a member.
    pub fn remove_member(&mut self, id: u64) {
        self.members.remove(&id);
    }

    /// The snapshot payload of this state.
    pub fn encode(&self) -> Bytes {
        let record = SnapshotRecord {
            pairs: self
                .data
                .iter()
                .map(|(k, v)| PairRecord { key: k.clone(), value: v.clone() })
                .collect(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    id: m.id,
                    peer_url: m.peer_url.clone(),
                    learner: m.learner,
                })
                .collect(),
        };
        Bytes::from(record.encode_to_vec())
    }

    /// The state a snapshot payload holds.
    pub fn decode(data: &[u8]) -> Result<KvState, BadSnapshot> {
        let record = SnapshotRecord::decode(data)?;
        let mut state = KvState::default();
        for p in record.pairs {
            state.bytes += p.key.len() + p.value.len();
            state.data.insert(p.key, p.value);
        }
        for m in record.members {
            state
                .members
                .insert(m.id, Member { id: m.id, peer_url: m.peer_url, learner: m.learner });
        }
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
        let back = KvState::decode(&s.encode()).unwrap();
        assert_eq!(back.get("a").as_deref(), Some(&b"22"[..]));
        assert_eq!(back.members(), s.members());
        assert_eq!(back.bytes(), s.bytes());
        assert_eq!(back.bytes(), (1 + 2) + (3 + 1));
    }

    #[test]
    fn range_is_prefix_bounded_and_limited() {
        let mut s = KvState::default();
        for k in ["a", "b/1", "b/2", "b/3", "c"] {
            s.apply(put(k, b"v"));
        }
        let (got, more) = s.range("b/", 2);
        assert_eq!(got.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b/1", "b/2"]);
        assert!(more);
        let (got, more) = s.range("b/", 10);
        assert_eq!(got.len(), 3);
        assert!(!more);
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
        assert!(Command::decode(&[0x10, 0x07]).is_none(), "unknown op");
    }
}
