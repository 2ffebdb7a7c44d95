//! [`Message`]'s protobuf encoding, written out by hand, and the two
//! out-of-line field types ([`Context`], [`Responses`]) that keep the struct
//! small.
//!
//! prost's derive can box only message-typed fields, and `context` (bytes)
//! and `responses` (repeated) are not; so the encoding that the derive would
//! generate is spelled out here, field for field: the same presence rules
//! (scalars always written, `context` when non-empty, `snapshot` when set),
//! ascending tag order, and the same decode errors. `tests/raftpb_wire.rs`
//! checks the bytes against golden vectors and a model of etcd's Go code.

use super::{Entry, Message, MessageType, Snapshot};
use bytes::{Buf, BufMut, Bytes};
use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// `Message.context`: opaque bytes, stored out of line because almost every
/// message leaves them empty. Derefs to [`Bytes`] (empty when unset).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(Option<Box<Bytes>>);

static EMPTY_BYTES: Bytes = Bytes::new();

impl Context {
    /// The bytes, taking them out (and leaving the context empty).
    pub fn take(&mut self) -> Bytes {
        self.0.take().map_or_else(Bytes::new, |b| *b)
    }
}

impl Deref for Context {
    type Target = Bytes;
    #[inline]
    fn deref(&self) -> &Bytes {
        self.0.as_deref().unwrap_or(&EMPTY_BYTES)
    }
}

impl From<Bytes> for Context {
    /// Empty bytes are stored as unset: they encode the same (not at all).
    fn from(b: Bytes) -> Context {
        if b.is_empty() { Context(None) } else { Context(Some(Box::new(b))) }
    }
}

impl From<Context> for Bytes {
    fn from(mut c: Context) -> Bytes {
        c.take()
    }
}

impl PartialEq<Bytes> for Context {
    fn eq(&self, other: &Bytes) -> bool {
        **self == *other
    }
}

impl PartialEq<Context> for Bytes {
    fn eq(&self, other: &Context) -> bool {
        *self == **other
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// `Message.responses`: the messages a storage thread delivers once its work
/// is done; stored out of line because only storage messages carry any.
/// Derefs to a `Vec<Message>` (empty when unset); mutable access allocates
/// the vector on first use.
#[derive(Clone, Default, PartialEq)]
#[allow(
    clippy::box_collection,
    reason = "the point: one pointer in every message instead of a 24-byte vector"
)]
pub struct Responses(Option<Box<Vec<Message>>>);

static NO_MESSAGES: Vec<Message> = Vec::new();

impl Responses {
    /// The messages, taking them out (and leaving no responses).
    pub fn take(&mut self) -> Vec<Message> {
        self.0.take().map_or_else(Vec::new, |v| *v)
    }
}

impl Deref for Responses {
    type Target = Vec<Message>;
    #[inline]
    fn deref(&self) -> &Vec<Message> {
        self.0.as_deref().unwrap_or(&NO_MESSAGES)
    }
}

impl DerefMut for Responses {
    fn deref_mut(&mut self) -> &mut Vec<Message> {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Vec<Message>> for Responses {
    /// An empty vector is stored as unset: it encodes the same (not at all).
    fn from(v: Vec<Message>) -> Responses {
        if v.is_empty() { Responses(None) } else { Responses(Some(Box::new(v))) }
    }
}

impl From<Responses> for Vec<Message> {
    fn from(mut r: Responses) -> Vec<Message> {
        r.take()
    }
}

impl IntoIterator for Responses {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(mut self) -> Self::IntoIter {
        self.take().into_iter()
    }
}

impl<'a> IntoIterator for &'a Responses {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Responses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As prost's derive prints it: the type by name when it is a known one.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct MsgType(i32);
        impl fmt::Debug for MsgType {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match MessageType::try_from(self.0) {
                    Ok(t) => fmt::Debug::fmt(&t, f),
                    Err(_) => fmt::Debug::fmt(&self.0, f),
                }
            }
        }
        f.debug_struct("Message")
            .field("msg_type", &MsgType(self.msg_type))
            .field("to", &self.to)
            .field("from", &self.from)
            .field("term", &self.term)
            .field("log_term", &self.log_term)
            .field("index", &self.index)
            .field("entries", &self.entries)
            .field("commit", &self.commit)
            .field("vote", &self.vote)
            .field("snapshot", &self.snapshot)
            .field("reject", &self.reject)
            .field("reject_hint", &self.reject_hint)
            .field("context", &self.context)
            .field("responses", &self.responses)
            .finish()
    }
}

impl prost::Message for Message {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::int32::encode(1, &self.msg_type, buf);
        encoding::uint64::encode(2, &self.to, buf);
        encoding::uint64::encode(3, &self.from, buf);
        encoding::uint64::encode(4, &self.term, buf);
        encoding::uint64::encode(5, &self.log_term, buf);
        encoding::uint64::encode(6, &self.index, buf);
        encoding::message::encode_repeated(7, &self.entries, buf);
        encoding::uint64::encode(8, &self.commit, buf);
        if let Some(snapshot) = &self.snapshot {
            encoding::message::encode(9, &**snapshot, buf);
        }
        encoding::bool::encode(10, &self.reject, buf);
        encoding::uint64::encode(11, &self.reject_hint, buf);
        if !self.context.is_empty() {
            encoding::bytes::encode(12, &*self.context, buf);
        }
        encoding::uint64::encode(13, &self.vote, buf);
        encoding::message::encode_repeated(14, &self.responses, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let named = |field: &'static str| {
            move |mut error: DecodeError| {
                error.push("Message", field);
                error
            }
        };
        match tag {
            1 => encoding::int32::merge(wire_type, &mut self.msg_type, buf, ctx)
                .map_err(named("msg_type")),
            2 => encoding::uint64::merge(wire_type, &mut self.to, buf, ctx).map_err(named("to")),
            3 => {
                encoding::uint64::merge(wire_type, &mut self.from, buf, ctx).map_err(named("from"))
            }
            4 => {
                encoding::uint64::merge(wire_type, &mut self.term, buf, ctx).map_err(named("term"))
            }
            5 => encoding::uint64::merge(wire_type, &mut self.log_term, buf, ctx)
                .map_err(named("log_term")),
            6 => encoding::uint64::merge(wire_type, &mut self.index, buf, ctx)
                .map_err(named("index")),
            7 => encoding::message::merge_repeated::<Entry>(wire_type, &mut self.entries, buf, ctx)
                .map_err(named("entries")),
            8 => encoding::uint64::merge(wire_type, &mut self.commit, buf, ctx)
                .map_err(named("commit")),
            9 => {
                let snapshot = self.snapshot.get_or_insert_with(Box::<Snapshot>::default);
                encoding::message::merge(wire_type, &mut **snapshot, buf, ctx)
                    .map_err(named("snapshot"))
            }
            10 => encoding::bool::merge(wire_type, &mut self.reject, buf, ctx)
                .map_err(named("reject")),
            11 => encoding::uint64::merge(wire_type, &mut self.reject_hint, buf, ctx)
                .map_err(named("reject_hint")),
            12 => {
                let mut value = self.context.take();
                let res = encoding::bytes::merge(wire_type, &mut value, buf, ctx);
                self.context = value.into();
                res.map_err(named("context"))
            }
            13 => {
                encoding::uint64::merge(wire_type, &mut self.vote, buf, ctx).map_err(named("vote"))
            }
            14 => {
                let mut value = self.responses.take();
                let res = encoding::message::merge_repeated(wire_type, &mut value, buf, ctx);
                self.responses = value.into();
                res.map_err(named("responses"))
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    #[inline]
    fn encoded_len(&self) -> usize {
        let mut len = encoding::int32::encoded_len(1, &self.msg_type)
            + encoding::uint64::encoded_len(2, &self.to)
            + encoding::uint64::encoded_len(3, &self.from)
            + encoding::uint64::encoded_len(4, &self.term)
            + encoding::uint64::encoded_len(5, &self.log_term)
            + encoding::uint64::encoded_len(6, &self.index)
            + encoding::message::encoded_len_repeated(7, &self.entries)
            + encoding::uint64::encoded_len(8, &self.commit)
            + encoding::bool::encoded_len(10, &self.reject)
            + encoding::uint64::encoded_len(11, &self.reject_hint)
            + encoding::uint64::encoded_len(13, &self.vote)
            + encoding::message::encoded_len_repeated(14, &self.responses);
        if let Some(snapshot) = &self.snapshot {
            len += encoding::message::encoded_len(9, &**snapshot);
        }
        if !self.context.is_empty() {
            len += encoding::bytes::encoded_len(12, &*self.context);
        }
        len
    }

    fn clear(&mut self) {
        *self = Message::default();
    }
}

// The point of the out-of-line fields: a message the compiler moves inline.
const _: () = assert!(std::mem::size_of::<Message>() <= 128);

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn out_of_line_fields_read_as_their_values() {
        let mut m = Message::new(MessageType::MsgApp);
        assert!(m.context.is_empty());
        assert!(m.responses.is_empty());
        assert_eq!(m.context, Bytes::new());
        m.context = Bytes::from_static(b"ctx").into();
        assert_eq!(&m.context[..], b"ctx");
        assert_eq!(m.context.take(), Bytes::from_static(b"ctx"));
        assert!(m.context.is_empty());
        // Empty values are stored unset.
        assert_eq!(Context::from(Bytes::new()), Context::default());
        assert_eq!(Responses::from(Vec::new()), Responses::default());

        m.responses.push(Message::new(MessageType::MsgAppResp));
        assert_eq!(m.responses.len(), 1);
        let inner: Vec<Message> = m.responses.take();
        assert_eq!(inner.len(), 1);
        assert!(m.responses.is_empty());
        m.responses = inner.into();
        assert_eq!(m.responses.into_iter().count(), 1);
    }

    #[test]
    fn debug_names_the_type() {
        let m =
            Message { msg_type: 3, context: Bytes::from_static(b"c").into(), ..Message::default() };
        let text = format!("{m:?}");
        assert!(text.starts_with("Message { msg_type: MsgApp, to: 0,"), "{text}");
        assert!(text.contains("context: b\"c\", responses: [] }"), "{text}");
        let unknown = format!("{:?}", Message { msg_type: 99, ..Message::default() });
        assert!(unknown.starts_with("Message { msg_type: 99,"), "{unknown}");
    }

    #[test]
    fn clear_and_merge_reset_everything() {
        let mut m = Message {
            msg_type: 8,
            to: 2,
            context: Bytes::from_static(b"x").into(),
            responses: vec![Message::new(MessageType::MsgAppResp)].into(),
            snapshot: Some(Box::default()),
            ..Message::default()
        };
        let bytes = m.encode_to_vec();
        assert_eq!(bytes.len(), m.encoded_len());
        assert_eq!(Message::decode(&bytes[..]).unwrap(), m);
        m.clear();
        assert_eq!(m, Message::default());
    }
}
