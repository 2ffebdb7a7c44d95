//! The wire format: a fixed-size handshake, then length-prefixed frames.
//!
//! Handshake (client to server, 32 bytes): `b"KEEL"`, protocol version (u8),
//! connection kind (u8), cluster id, sender id, expected receiver id (u64 big
//! endian each), the sender's listening port (u16 big endian; 0 if unknown).
//! The server answers one [`Verdict`] byte. Frames: a u32 big
//! endian length, then that many bytes of a prost-encoded `Message`.
//!
//! A decoded message can hold far more memory than its frame (an empty
//! entry is 2 bytes on the wire, a `size_of::<Entry>()` struct once
//! decoded), so every frame's decoded [`footprint`] is worked out from its
//! bytes, without allocating, before it is decoded, and bounded as well as
//! its length ([`FrameBounds`]).

use std::fmt;

use bytes::BytesMut;
use keel::raftpb::{Entry, Message, Snapshot};
use prost::Message as _;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::WireError;

/// The protocol version this build speaks; a peer with another is refused.
pub const PROTOCOL_VERSION: u8 = 2;
const MAGIC: [u8; 4] = *b"KEEL";
pub(crate) const HELLO_LEN: usize = 32;

/// What a connection carries after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// Long-lived stream of raft messages.
    Stream = 0,
    /// One snapshot, then close.
    Snapshot = 1,
}

/// The first bytes on every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u8,
    pub(crate) kind: ConnKind,
    pub(crate) cluster_id: u64,
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// Where the sender listens for peers, with the connection's source IP:
    /// a receiver that does not know the sender yet (it missed, while
    /// down, the sender's addition) can still answer it.
    pub(crate) listen_port: u16,
}

impl Hello {
    pub(crate) fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5] = self.kind as u8;
        out[6..14].copy_from_slice(&self.cluster_id.to_be_bytes());
        out[14..22].copy_from_slice(&self.from.to_be_bytes());
        out[22..30].copy_from_slice(&self.to.to_be_bytes());
        out[30..32].copy_from_slice(&self.listen_port.to_be_bytes());
        out
    }

    pub(crate) fn decode(raw: &[u8; HELLO_LEN]) -> Result<Hello, WireError> {
        let magic = [raw[0], raw[1], raw[2], raw[3]];
        if magic != MAGIC {
            return Err(WireError::BadMagic(magic));
        }
        let kind = match raw[5] {
            0 => ConnKind::Stream,
            1 => ConnKind::Snapshot,
            other => return Err(WireError::BadKind(other)),
        };
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Hello {
            version: raw[4],
            kind,
            cluster_id: word(6),
            from: word(14),
            to: word(22),
            listen_port: u16::from_be_bytes([raw[30], raw[31]]),
        })
    }
}

/// The server's answer to a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The connection is accepted.
    Accept = 0,
    /// Another protocol version.
    WrongVersion = 1,
    /// Another cluster id.
    WrongCluster = 2,
    /// The client expected another member at this address.
    WrongReceiver = 3,
    /// The sender is not a member (perhaps not yet: a joining member is
    /// refused until the receiver applies its addition; the receiver reports
    /// it as [`Event::UnknownPeer`](crate::Event::UnknownPeer)).
    UnknownSender = 4,
    /// The sender was removed from the cluster (for good: ids are never
    /// reused).
    RemovedSender = 5,
    /// The sender's TLS certificate does not identify the member it claims
    /// to be ([`PeerIdentity`](crate::tls::PeerIdentity)).
    WrongIdentity = 6,
}

impl Verdict {
    /// A refusal that membership changes bring about in normal operation
    /// (logged as a warning), rather than a misconfiguration (an error).
    pub(crate) fn is_membership(self) -> bool {
        matches!(self, Verdict::UnknownSender | Verdict::RemovedSender)
    }

    pub(crate) fn from_byte(b: u8) -> Result<Verdict, WireError> {
        Ok(match b {
            0 => Verdict::Accept,
            1 => Verdict::WrongVersion,
            2 => Verdict::WrongCluster,
            3 => Verdict::WrongReceiver,
            4 => Verdict::UnknownSender,
            5 => Verdict::RemovedSender,
            6 => Verdict::WrongIdentity,
            other => return Err(WireError::BadVerdict(other)),
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accepted",
            Verdict::WrongVersion => "protocol version mismatch",
            Verdict::WrongCluster => "cluster id mismatch",
            Verdict::WrongReceiver => "receiver id mismatch",
            Verdict::UnknownSender => "sender is not a member",
            Verdict::RemovedSender => "sender was removed from the cluster",
            Verdict::WrongIdentity => "sender's certificate does not identify it",
        })
    }
}

/// Appends one frame (length prefix and encoded message) to `buf`; `len` is
/// `msg.encoded_len()`, which the caller has already computed.
pub(crate) fn put_frame(buf: &mut Vec<u8>, msg: &Message, len: usize) {
    debug_assert_eq!(len, msg.encoded_len());
    // A message's encoded length fits u32: senders check frame_bytes_max first.
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    msg.encode_raw(buf);
}

/// What one frame may cost: its length, checked before any buffer grows for
/// it, and its decoded [`footprint`], checked before it is decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameBounds {
    /// `Limits::frame_bytes_max`.
    pub(crate) bytes: u32,
    /// `Limits::incoming_bytes_max`: a reader never holds more decoded
    /// messages than the inbox may (one batch at a time).
    pub(crate) decoded: usize,
}

impl FrameBounds {
    pub(crate) fn new(limits: &crate::Limits) -> FrameBounds {
        FrameBounds { bytes: limits.frame_bytes_max, decoded: limits.incoming_bytes_max }
    }

    /// The footprint of `frame` (a frame's bytes after its length prefix), if
    /// within the bound.
    fn check(&self, frame: &[u8]) -> Result<usize, WireError> {
        let decoded = encoded_footprint(frame)?;
        if decoded > self.decoded {
            return Err(WireError::DecodedTooLarge {
                len: frame.len(),
                decoded,
                max: self.decoded,
            });
        }
        Ok(decoded)
    }
}

/// The memory a decoded message holds, which the inbox's byte bound counts:
/// the struct, its entries and the payloads it owns, its snapshot's struct,
/// data and member ids, its responses. Payloads shared with the read buffer
/// (large frames lend theirs) count at their own length. (A `Vec` may hold
/// up to twice the room of its elements.)
pub(crate) fn footprint(m: &Message) -> usize {
    let entries: usize = m.entries.iter().map(|e| size_of::<Entry>() + e.data.len()).sum();
    let snapshot = m.snapshot.as_ref().map_or(0, |s| {
        let c = &s.metadata.conf_state;
        let ids = c.voters.len() + c.learners.len() + c.voters_outgoing.len();
        size_of::<Snapshot>() + s.data.len() + (ids + c.learners_next.len()) * size_of::<u64>()
    });
    let responses: usize = m.responses.iter().map(footprint).sum();
    size_of::<Message>() + entries + m.context.len() + snapshot + responses
}

/// [`footprint`] of the message that `bytes` decode to, read off the bytes
/// without decoding (an upper bound where a field repeats that decoding
/// replaces). A message with responses, which no peer sends, is refused here,
/// before they are decoded.
fn encoded_footprint(bytes: &[u8]) -> Result<usize, WireError> {
    let mut total = size_of::<Message>();
    let mut responses = 0;
    for_each_field(bytes, |tag, payload| {
        match (tag, payload) {
            (7, Some(entry)) => {
                total += size_of::<Entry>() + payload_len(entry, 4)?;
            }
            (9, Some(snapshot)) => {
                total += size_of::<Snapshot>() + payload_len(snapshot, 1)?;
                for_each_field(snapshot, |tag, metadata| match (tag, metadata) {
                    (2, Some(metadata)) => {
                        for_each_field(metadata, |tag, conf| match (tag, conf) {
                            (1, Some(conf)) => {
                                total += member_ids(conf)? * size_of::<u64>();
                                Ok(())
                            }
                            _ => Ok(()),
                        })
                    }
                    _ => Ok(()),
                })?;
            }
            (12, Some(context)) => total += context.len(),
            (14, Some(_)) => responses += 1,
            _ => {}
        }
        Ok(())
    })?;
    if responses > 0 {
        return Err(WireError::LocalResponses(responses));
    }
    Ok(total)
}

/// Calls `f` with each field's tag and, for a length-delimited one, its
/// payload; malformed bytes are prost's decode error.
fn for_each_field(
    mut buf: &[u8],
    mut f: impl FnMut(u32, Option<&[u8]>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        let field = buf;
        skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        if wire_type == WireType::LengthDelimited {
            // What was skipped: the payload's length, then the payload.
            let mut payload = &field[..field.len() - buf.len()];
            decode_varint(&mut payload)?;
            f(tag, Some(payload))?;
        } else {
            f(tag, None)?;
        }
    }
    Ok(())
}

/// The total length of the length-delimited fields `tag` of a message.
fn payload_len(message: &[u8], tag: u32) -> Result<usize, WireError> {
    let mut len = 0;
    for_each_field(message, |t, payload| {
        if let (true, Some(p)) = (t == tag, payload) {
            len += p.len();
        }
        Ok(())
    })?;
    Ok(len)
}

/// How many ids a `ConfState` holds (tags 1 to 4, each a varint or a packed
/// run of them, as prost accepts both).
fn member_ids(conf_state: &[u8]) -> Result<usize, WireError> {
    let mut ids = 0;
    for_each_field(conf_state, |tag, payload| {
        if (1..=4).contains(&tag) {
            // A packed run holds one varint per byte without the high bit.
            ids += payload.map_or(1, |p| p.iter().filter(|b| **b < 0x80).count());
        }
        Ok(())
    })?;
    Ok(ids)
}

/// Reads one frame; `Ok(None)` on a clean close between frames. The length is
/// checked before `buf` grows, the decoded footprint before decoding.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    bounds: FrameBounds,
    buf: &mut Vec<u8>,
) -> Result<Option<Message>, WireError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(WireError::Truncated) };
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix);
    if len > bounds.bytes {
        return Err(WireError::FrameTooLarge { len: u64::from(len), max: u64::from(bounds.bytes) });
    }
    buf.clear();
    buf.resize(len as usize, 0);
    read_exact(reader, buf).await?;
    bounds.check(buf)?;
    Ok(Some(Message::decode(&buf[..])?))
}

/// Reads the frames of a long-lived stream through one buffer: a `read` call
/// fetches as many frames as the socket holds, so small frames cost no
/// syscall each. A frame's length is checked before the buffer grows for it;
/// the buffer holds at most one frame beyond `chunk` bytes. A batch holds at
/// most `bounds.decoded` of decoded messages (but always one whole frame).
pub(crate) struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    bounds: FrameBounds,
    chunk: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(reader: R, bounds: FrameBounds, chunk: usize) -> FrameReader<R> {
        FrameReader { reader, buf: BytesMut::with_capacity(chunk), bounds, chunk }
    }

    /// Appends the message of every whole frame in the buffer to `out`,
    /// reading the socket first if there is none; returns the frames' total
    /// size, or `Ok(None)` on a clean close between frames. A bad frame fails
    /// the whole call: the connection is dropped anyway.
    pub(crate) async fn next_batch(
        &mut self,
        out: &mut Vec<Message>,
    ) -> Result<Option<usize>, WireError> {
        loop {
            let (mut bytes, mut decoded) = (0, 0);
            while let Some(len) = self.buffered_frame()? {
                let cost = self.bounds.check(&self.buf[4..4 + len])?;
                if bytes > 0 && decoded + cost > self.bounds.decoded {
                    break; // Left in the buffer for the next batch.
                }
                decoded += cost;
                let mut frame = self.buf.split_to(4 + len);
                out.push(if len >= self.chunk {
                    // A large frame lends its payloads to the message instead of
                    // copying them: it pins at most its own allocation, about its
                    // own size.
                    Message::decode(frame.split_off(4).freeze())?
                } else {
                    // Small ones are copied out, so that a message kept for long
                    // (an entry in raft's log) never pins a whole read buffer.
                    Message::decode(&frame[4..])?
                });
                bytes += 4 + len;
            }
            if bytes > 0 {
                return Ok(Some(bytes));
            }
            if self.buf.capacity() - self.buf.len() < self.chunk / 4 {
                self.buf.reserve(self.chunk);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(WireError::Truncated) };
            }
        }
    }

    /// The length of the frame at the head of the buffer once it is whole;
    /// reserves room for a partial one.
    fn buffered_frame(&mut self) -> Result<Option<usize>, WireError> {
        let Some(prefix) = self.buf.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let max = self.bounds.bytes;
        if len > max {
            return Err(WireError::FrameTooLarge { len: u64::from(len), max: u64::from(max) });
        }
        let whole = 4 + len as usize;
        if self.buf.len() >= whole {
            return Ok(Some(len as usize));
        }
        self.buf.reserve(whole - self.buf.len());
        Ok(None)
    }
}

/// `read_exact` that reports a close as [`WireError::Truncated`].
pub(crate) async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<(), WireError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WireError::Truncated),
        Err(e) => Err(WireError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds on the length only.
    fn bounds(bytes: u32) -> FrameBounds {
        FrameBounds { bytes, decoded: usize::MAX }
    }

    #[test]
    fn hello_round_trips() {
        let h = Hello {
            version: 1,
            kind: ConnKind::Snapshot,
            cluster_id: 7,
            from: 2,
            to: 3,
            listen_port: 2380,
        };
        assert_eq!(Hello::decode(&h.encode()).ok(), Some(h));
    }

    #[test]
    fn bad_magic_and_kind_are_typed_errors() {
        let mut raw = [0u8; HELLO_LEN];
        assert!(matches!(Hello::decode(&raw), Err(WireError::BadMagic(_))));
        raw[..4].copy_from_slice(b"KEEL");
        raw[5] = 9;
        assert!(matches!(Hello::decode(&raw), Err(WireError::BadKind(9))));
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_allocating() {
        let bytes = [0xffu8, 0xff, 0xff, 0xff];
        let mut buf = Vec::new();
        let err = read_frame(&mut &bytes[..], bounds(1 << 20), &mut buf).await;
        assert!(matches!(err, Err(WireError::FrameTooLarge { len: 4_294_967_295, .. })));
        assert_eq!(buf.capacity(), 0);
    }

    #[tokio::test]
    async fn truncated_frames_and_garbage_are_typed_errors() {
        let mut buf = Vec::new();
        let mut frame = Vec::new();
        let msg = Message { to: 1, from: 2, ..Default::default() };
        put_frame(&mut frame, &msg, msg.encoded_len());
        let cut = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut &cut[..], bounds(1024), &mut buf).await,
            Err(WireError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &frame[..2], bounds(1024), &mut buf).await,
            Err(WireError::Truncated)
        ));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &garbage[..], bounds(1024), &mut buf).await,
            Err(WireError::Decode(_))
        ));
        assert!(matches!(read_frame(&mut &[][..], bounds(1024), &mut buf).await, Ok(None)));
    }

    /// Hands out its bytes `step` at a time, so frames straddle reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.step.min(self.bytes.len()).min(out.remaining());
            out.put_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn frame_reader_splits_frames_across_any_read_boundary() {
        let big = bytes::Bytes::from(vec![5u8; 3000]);
        let msgs: Vec<Message> = (1..=40)
            .map(|i| Message {
                to: 1,
                from: 2,
                index: i,
                context: if i % 10 == 0 { big.clone() } else { bytes::Bytes::from(vec![1; 9]) }
                    .into(),
                ..Default::default()
            })
            .collect();
        let mut stream = Vec::new();
        for m in &msgs {
            put_frame(&mut stream, m, m.encoded_len());
        }
        // Chunk 1 KiB: the 3000-byte frames take the lending path.
        for step in [1, 7, 100, 4096, usize::MAX] {
            let mut r = FrameReader::new(Trickle { bytes: &stream, step }, bounds(1 << 20), 1024);
            let mut got = Vec::new();
            let mut batch = Vec::new();
            while let Some(size) = r.next_batch(&mut batch).await.expect("well-formed stream") {
                assert!(!batch.is_empty());
                assert_eq!(size, batch.iter().map(|m| m.encoded_len() + 4).sum::<usize>());
                got.append(&mut batch);
            }
            assert_eq!(got, msgs, "read {step} bytes at a time");
        }
    }

    #[tokio::test]
    async fn frame_reader_refuses_bad_input_with_typed_errors() {
        let huge = [0xffu8, 0xff, 0xff, 0xff];
        let mut r = FrameReader::new(&huge[..], bounds(1 << 20), 1024);
        let mut out = Vec::new();
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::FrameTooLarge { .. })));
        assert!(r.buf.capacity() < 4096, "no allocation from the bad length");

        let mut frame = Vec::new();
        let msg = Message { to: 1, from: 2, ..Default::default() };
        put_frame(&mut frame, &msg, msg.encoded_len());
        let cut = &frame[..frame.len() - 1];
        let mut r = FrameReader::new(cut, bounds(1024), 64);
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::Truncated)));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        let mut r = FrameReader::new(&garbage[..], bounds(1024), 64);
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::Decode(_))));
        let mut r = FrameReader::new(&[][..], bounds(1024), 64);
        assert!(matches!(r.next_batch(&mut out).await, Ok(None)));
        assert!(out.is_empty());
    }

    /// A message of `n` empty entries: 2 bytes each on the wire.
    fn empty_entries(n: usize) -> Message {
        Message { to: 1, from: 2, entries: vec![Entry::default(); n], ..Default::default() }
    }

    #[test]
    fn the_footprint_is_read_off_the_bytes_as_decoding_would_hold_it() {
        use keel::raftpb::{ConfState, SnapshotMetadata};
        let entry =
            |n: usize| Entry { term: 1, index: 2, data: vec![3; n].into(), ..Default::default() };
        let conf_state =
            ConfState { voters: vec![1, 2, 300], learners: vec![4], ..Default::default() };
        let snapshot = Snapshot {
            data: vec![9; 77].into(),
            metadata: SnapshotMetadata { conf_state, index: 5, term: 6 },
        };
        let msgs = [
            Message::default(),
            empty_entries(1000),
            Message { entries: vec![entry(0), entry(10), entry(1000)], ..Default::default() },
            Message { context: bytes::Bytes::from_static(b"ctx").into(), ..Default::default() },
            Message { snapshot: Some(Box::new(snapshot)), commit: 3, ..Default::default() },
        ];
        for m in &msgs {
            assert_eq!(encoded_footprint(&m.encode_to_vec()).ok(), Some(footprint(m)), "{m:?}");
        }
        let with_responses = Message { responses: vec![Message::default(); 2].into(), ..msg_a() };
        assert!(matches!(
            encoded_footprint(&with_responses.encode_to_vec()),
            Err(WireError::LocalResponses(2))
        ));
        assert!(matches!(encoded_footprint(&[0x3a, 0x05, 0x10]), Err(WireError::Decode(_))));
    }

    fn msg_a() -> Message {
        Message { to: 1, from: 2, ..Default::default() }
    }

    /// A crafted frame of entries with no field at all (2 bytes each: tag 7,
    /// length 0) would decode to 28 times its size: it is refused before it
    /// is decoded, on a stream and on a snapshot connection.
    #[tokio::test]
    async fn a_frame_that_would_decode_past_the_bound_is_refused_before_decoding() {
        let body = [0x3a, 0x00].repeat(50_000);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let decoded = Message::decode(&body[..]).expect("valid protobuf");
        assert_eq!(decoded.entries.len(), 50_000);
        assert!(footprint(&decoded) > 25 * frame.len());
        let bounds = FrameBounds { bytes: 1 << 20, decoded: 1 << 20 };
        let mut r = FrameReader::new(&frame[..], bounds, 1024);
        let mut out = Vec::new();
        let err = r.next_batch(&mut out).await;
        let want = footprint(&decoded);
        assert!(matches!(err, Err(WireError::DecodedTooLarge { decoded, .. }) if decoded == want));
        assert!(out.is_empty());
        let err = read_frame(&mut &frame[..], bounds, &mut Vec::new()).await;
        assert!(matches!(err, Err(WireError::DecodedTooLarge { .. })));
    }

    /// Frames that fit the bound one by one, not together, come in batches
    /// that each do.
    #[tokio::test]
    async fn a_batch_holds_at_most_the_bound_decoded() {
        let m = empty_entries(1000);
        let cost = footprint(&m);
        let mut stream = Vec::new();
        for _ in 0..5 {
            put_frame(&mut stream, &m, m.encoded_len());
        }
        let bounds = FrameBounds { bytes: 1 << 20, decoded: 2 * cost + cost / 2 };
        let mut r = FrameReader::new(&stream[..], bounds, 1 << 16);
        let mut sizes = Vec::new();
        let mut batch = Vec::new();
        while r.next_batch(&mut batch).await.expect("well-formed").is_some() {
            sizes.push(batch.len());
            batch.clear();
        }
        assert_eq!(sizes, [2, 2, 1]);
    }
}
