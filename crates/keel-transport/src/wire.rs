//! The wire format: a fixed-size handshake, then length-prefixed frames.
//!
//! Handshake (client to server, 32 bytes): `b"KEEL"`, protocol version (u8),
//! connection kind (u8), cluster id, sender id, expected receiver id (u64 big
//! endian each), the sender's listening port (u16 big endian; 0 if unknown).
//! The server answers one [`Verdict`] byte. Frames: a u32 big
//! endian length, then that many bytes of a prost-encoded `Message`.

use std::fmt;

use bytes::BytesMut;
use keel::raftpb::Message;
use prost::Message as _;
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

/// Reads one frame; `Ok(None)` on a clean close between frames. The length is
/// checked against `max` before `buf` grows.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
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
    if len > max {
        return Err(WireError::FrameTooLarge { len: u64::from(len), max: u64::from(max) });
    }
    buf.clear();
    buf.resize(len as usize, 0);
    read_exact(reader, buf).await?;
    Ok(Some(Message::decode(&buf[..])?))
}

/// Reads the frames of a long-lived stream through one buffer: a `read` call
/// fetches as many frames as the socket holds, so small frames cost no
/// syscall each. A frame's length is checked against `max` before the buffer
/// grows for it; the buffer holds at most one frame beyond `chunk` bytes.
pub(crate) struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max: u32,
    chunk: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(reader: R, max: u32, chunk: usize) -> FrameReader<R> {
        FrameReader { reader, buf: BytesMut::with_capacity(chunk), max, chunk }
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
            let mut bytes = 0;
            while let Some(len) = self.buffered_frame()? {
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
        if len > self.max {
            return Err(WireError::FrameTooLarge { len: u64::from(len), max: u64::from(self.max) });
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
        let err = read_frame(&mut &bytes[..], 1 << 20, &mut buf).await;
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
            read_frame(&mut &cut[..], 1024, &mut buf).await,
            Err(WireError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &frame[..2], 1024, &mut buf).await,
            Err(WireError::Truncated)
        ));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &garbage[..], 1024, &mut buf).await,
            Err(WireError::Decode(_))
        ));
        assert!(matches!(read_frame(&mut &[][..], 1024, &mut buf).await, Ok(None)));
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
            let mut r = FrameReader::new(Trickle { bytes: &stream, step }, 1 << 20, 1024);
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
        let mut r = FrameReader::new(&huge[..], 1 << 20, 1024);
        let mut out = Vec::new();
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::FrameTooLarge { .. })));
        assert!(r.buf.capacity() < 4096, "no allocation from the bad length");

        let mut frame = Vec::new();
        let msg = Message { to: 1, from: 2, ..Default::default() };
        put_frame(&mut frame, &msg, msg.encoded_len());
        let cut = &frame[..frame.len() - 1];
        let mut r = FrameReader::new(cut, 1024, 64);
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::Truncated)));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        let mut r = FrameReader::new(&garbage[..], 1024, 64);
        assert!(matches!(r.next_batch(&mut out).await, Err(WireError::Decode(_))));
        let mut r = FrameReader::new(&[][..], 1024, 64);
        assert!(matches!(r.next_batch(&mut out).await, Ok(None)));
        assert!(out.is_empty());
    }
}
