//! The key-value state machine the simulated cluster replicates, and the
//! encoding of its commands in log entries and of its state in snapshots.
//!
//! Each command carries its client and a per-client sequence number. The
//! network may duplicate a forwarded proposal, so one command can be
//! committed twice; the state machine applies a client's command only if its
//! sequence number is above the last one applied for that client (a client
//! has one command outstanding at a time and never reuses a number), which
//! makes every command take effect at most once, as a real server's session
//! table would.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::linearizability::models::{KvInput, KvOutput};

/// Why bytes could not be decoded as a command or a snapshot. Entries and
/// snapshots are written by the simulator itself, so this is a simulator bug
/// (or corruption by the core) when it happens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} at byte {offset}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
    /// Where it went wrong.
    pub offset: usize,
}

/// A client command, as proposed to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client that issued it.
    pub client: u64,
    /// The client's sequence number for it; increasing, never reused.
    pub seq: u64,
    /// What to do. Gets go through the log too when the workload asks for a
    /// "log read" rather than a ReadIndex read.
    pub input: KvInput,
}

const TAG_GET: u8 = 1;
const TAG_PUT: u8 = 2;
const TAG_DELETE: u8 = 3;
const TAG_CAS: u8 = 4;

impl Request {
    /// The entry payload: a tag byte, client and sequence number (u64 LE),
    /// then length-prefixed (u32 LE) strings; a cas's expected value is
    /// preceded by a presence byte.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        let tag = match &self.input {
            KvInput::Get { .. } => TAG_GET,
            KvInput::Put { .. } => TAG_PUT,
            KvInput::Delete { .. } => TAG_DELETE,
            KvInput::Cas { .. } => TAG_CAS,
        };
        b.put_u8(tag);
        b.put_u64_le(self.client);
        b.put_u64_le(self.seq);
        put_str(&mut b, self.input.key());
        match &self.input {
            KvInput::Get { .. } | KvInput::Delete { .. } => {}
            KvInput::Put { value, .. } => put_str(&mut b, value),
            KvInput::Cas { expected, new, .. } => {
                match expected {
                    Some(v) => {
                        b.put_u8(1);
                        put_str(&mut b, v);
                    }
                    None => b.put_u8(0),
                }
                put_str(&mut b, new);
            }
        }
        b.freeze()
    }

    /// The inverse of [`Request::encode`].
    pub fn decode(data: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader { data, offset: 0, what: "command" };
        let tag = r.u8()?;
        let client = r.u64()?;
        let seq = r.u64()?;
        let key = r.string()?;
        let input = match tag {
            TAG_GET => KvInput::Get { key },
            TAG_PUT => KvInput::Put { key, value: r.string()? },
            TAG_DELETE => KvInput::Delete { key },
            TAG_CAS => {
                let expected = if r.u8()? == 1 { Some(r.string()?) } else { None };
                KvInput::Cas { key, expected, new: r.string()? }
            }
            _ => return Err(r.error()),
        };
        r.finish()?;
        Ok(Request { client, seq, input })
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u32_le(s.len() as u32);
    b.put_slice(s.as_bytes());
}

struct Reader<'a> {
    data: &'a [u8],
    offset: usize,
    what: &'static str,
}

impl Reader<'_> {
    fn error(&self) -> DecodeError {
        DecodeError { what: self.what, offset: self.offset }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.offset.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else { return Err(self.error()) };
        let out = &self.data[self.offset..end];
        self.offset = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let at = self.offset;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError { what: self.what, offset: at })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.offset == self.data.len() { Ok(()) } else { Err(self.error()) }
    }
}

/// The replicated map, with the session table that makes commands
/// idempotent, and the index of the last entry applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kv {
    data: BTreeMap<String, String>,
    /// Per client, the sequence number of its last applied command.
    sessions: BTreeMap<u64, u64>,
    applied: u64,
}

impl Kv {
    /// An empty map at index 0.
    pub fn new() -> Kv {
        Kv::default()
    }

    /// The index of the last entry applied (or of the snapshot restored).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Marks `index` applied: an entry with no command (the leader's empty
    /// entry, a configuration change) still moves the index.
    pub fn skip_to(&mut self, index: u64) {
        self.applied = self.applied.max(index);
    }

    /// Applies `req`, the command at log `index`. Returns the client's answer,
    /// or `None` when it is a duplicate of an applied command (no effect).
    pub fn apply(&mut self, index: u64, req: &Request) -> Option<KvOutput> {
        self.skip_to(index);
        let last = self.sessions.get(&req.client).copied().unwrap_or(0);
        if req.seq <= last {
            return None;
        }
        self.sessions.insert(req.client, req.seq);
        let out = match &req.input {
            KvInput::Get { key } => KvOutput::Get(self.data.get(key).cloned()),
            KvInput::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvOutput::Written
            }
            KvInput::Delete { key } => {
                self.data.remove(key);
                KvOutput::Written
            }
            KvInput::Cas { key, expected, new } => {
                if self.data.get(key) == expected.as_ref() {
                    self.data.insert(key.clone(), new.clone());
                    KvOutput::Cas(true)
                } else {
                    KvOutput::Cas(false)
                }
            }
        };
        Some(out)
    }

    /// The value of `key`, for reads served locally (ReadIndex).
    pub fn get(&self, key: &str) -> Option<String> {
        self.data.get(key).cloned()
    }

    /// The serialized state: applied index, sessions, then the map.
    pub fn snapshot(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u64_le(self.applied);
        b.put_u32_le(self.sessions.len() as u32);
        for (&client, &seq) in &self.sessions {
            b.put_u64_le(client);
            b.put_u64_le(seq);
        }
        b.put_u32_le(self.data.len() as u32);
        for (k, v) in &self.data {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        b.freeze()
    }

    /// The inverse of [`Kv::snapshot`]; empty data is the empty map.
    pub fn restore(data: &[u8]) -> Result<Kv, DecodeError> {
        if data.is_empty() {
            return Ok(Kv::new());
        }
        let mut r = Reader { data, offset: 0, what: "snapshot" };
        let applied = r.u64()?;
        let mut sessions = BTreeMap::new();
        for _ in 0..r.u32()? {
            let client = r.u64()?;
            sessions.insert(client, r.u64()?);
        }
        let mut map = BTreeMap::new();
        for _ in 0..r.u32()? {
            let k = r.string()?;
            map.insert(k, r.string()?);
        }
        r.finish()?;
        Ok(Kv { data: map, sessions, applied })
    }

    /// A digest of the whole state (FNV-1a over the snapshot encoding), to
    /// compare replicas at the same applied index cheaply.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in self.snapshot().iter() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(seq: u64, input: KvInput) -> Request {
        Request { client: 3, seq, input }
    }

    #[test]
    fn commands_round_trip() {
        let inputs = vec![
            KvInput::Get { key: "k".into() },
            KvInput::Put { key: "k".into(), value: "v".into() },
            KvInput::Delete { key: "k".into() },
            KvInput::Cas { key: "k".into(), expected: None, new: "n".into() },
            KvInput::Cas { key: "k".into(), expected: Some("o".into()), new: "n".into() },
        ];
        for (i, input) in inputs.into_iter().enumerate() {
            let r = req(i as u64 + 1, input);
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        assert!(Request::decode(&[9, 1]).is_err());
        let mut long = req(1, KvInput::Get { key: "k".into() }).encode().to_vec();
        long.push(0);
        assert!(Request::decode(&long).is_err());
    }

    #[test]
    fn duplicates_apply_once_and_snapshots_round_trip() {
        let mut kv = Kv::new();
        let put = req(1, KvInput::Put { key: "k".into(), value: "a".into() });
        assert_eq!(kv.apply(5, &put), Some(KvOutput::Written));
        assert_eq!(kv.apply(6, &put), None);
        let cas =
            req(2, KvInput::Cas { key: "k".into(), expected: Some("a".into()), new: "b".into() });
        assert_eq!(kv.apply(7, &cas), Some(KvOutput::Cas(true)));
        assert_eq!(kv.get("k").as_deref(), Some("b"));
        assert_eq!(kv.applied(), 7);
        let back = Kv::restore(&kv.snapshot()).unwrap();
        assert_eq!(back, kv);
        assert_eq!(back.digest(), kv.digest());
        assert_eq!(Kv::restore(&[]).unwrap(), Kv::new());
    }
}
