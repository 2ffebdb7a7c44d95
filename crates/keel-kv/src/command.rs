//! What the replicated log carries: client commands in normal entries, and
//! the member's peer URL in the context of a configuration change.

use bytes::Bytes;
use prost::Message as _;

/// The operation of a [`Command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Op {
    /// Set `key` to `value`.
    Put = 0,
    /// Remove `key`.
    Delete = 1,
}

/// One client write, as proposed. `id` is unique for all time (random base,
/// per-process counter) so that the member that proposed it can find the
/// waiting request when the entry is applied, whatever index it lands at.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// Request id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The operation.
    #[prost(enumeration = "Op", tag = "2")]
    pub op: i32,
    /// The key.
    #[prost(string, tag = "3")]
    pub key: String,
    /// The value (puts only).
    #[prost(bytes = "bytes", tag = "4")]
    pub value: Bytes,
}

impl Command {
    /// The encoded entry data.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// Decodes entry data; `None` for bytes that are not a command (the entry
    /// is then skipped, identically on every member).
    pub fn decode(data: &[u8]) -> Option<Command> {
        let cmd = <Command as prost::Message>::decode(data).ok()?;
        Op::try_from(cmd.op).ok()?;
        Some(cmd)
    }
}
