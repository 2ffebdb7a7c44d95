//! The on-disk encoding of WAL records and segment headers.
//!
//! A record is `crc32c: u32 | len: u32 | type: u8 | 3 zero bytes | payload`
//! (little endian); the checksum covers bytes 4..12 and the payload. A header
//! of all zeros marks the end of the written part of a preallocated segment.

/// Bytes before a record's payload.
pub const RECORD_HEADER: usize = 12;
/// The largest payload accepted from disk; longer lengths are corruption.
pub const MAX_RECORD: u32 = 256 << 20;
/// Bytes of a segment header.
pub const SEGMENT_HEADER: usize = 48;
/// First bytes of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"KEELWAL1";

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    /// A raftpb `Entry` (prost).
    Entry = 1,
    /// A raftpb `HardState` (prost).
    HardState = 2,
    /// A raftpb `SnapshotMetadata` (prost): a snapshot file with this index
    /// and term is durable, and the log before it may be dropped.
    Snapshot = 3,
}

impl RecordType {
    fn from_u8(b: u8) -> Option<RecordType> {
        match b {
            1 => Some(RecordType::Entry),
            2 => Some(RecordType::HardState),
            3 => Some(RecordType::Snapshot),
            _ => None,
        }
    }
}

/// Appends one encoded record to `out`.
pub fn encode(out: &mut Vec<u8>, ty: RecordType, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[ty as u8, 0, 0, 0]);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one record whose payload is `msg`, encoded in place (the same
/// bytes as [`encode`] of `msg.encode_to_vec()`, without the copy).
pub fn encode_message(out: &mut Vec<u8>, ty: RecordType, msg: &impl prost::Message) {
    let len = msg.encoded_len();
    out.reserve(RECORD_HEADER_LEN + len);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[ty as u8, 0, 0, 0]);
    msg.encode_raw(out);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes of a record before its payload: checksum, length, type.
const RECORD_HEADER_LEN: usize = 12;

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record and its total encoded length.
    Record(RecordType, &'a [u8], usize),
    /// A zero header: nothing was written from here on.
    End,
    /// Not a valid record; `extent` is how far the bad record claims to reach.
    Bad {
        /// Why.
        reason: &'static str,
        /// Bytes from the offset that the record claims (bounded by the buffer).
        extent: usize,
    },
}

/// Decodes the record at the start of `buf`. Never reads or allocates from
/// an unchecked length.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER {
        if buf.iter().all(|b| *b == 0) {
            return Decoded::End;
        }
        return Decoded::Bad { reason: "partial record header", extent: buf.len() };
    }
    let header = &buf[..RECORD_HEADER];
    if header.iter().all(|b| *b == 0) {
        return Decoded::End;
    }
    let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let total = RECORD_HEADER as u64 + u64::from(len);
    if len > MAX_RECORD || total > buf.len() as u64 {
        return Decoded::Bad {
            reason: "record length beyond the end of the segment",
            extent: RECORD_HEADER,
        };
    }
    let total = total as usize;
    if crc32c::crc32c(&buf[4..total]) != crc {
        return Decoded::Bad { reason: "record checksum mismatch", extent: total };
    }
    match RecordType::from_u8(header[8]) {
        Some(ty) if header[9..12] == [0, 0, 0] => {
            Decoded::Record(ty, &buf[RECORD_HEADER..total], total)
        }
        _ => Decoded::Bad { reason: "unknown record type", extent: total },
    }
}

/// The fixed header at the start of each segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The node the WAL belongs to.
    pub node_id: u64,
    /// The cluster it belongs to.
    pub cluster_id: u64,
    /// Position of the segment in the WAL (0, 1, ...).
    pub seq: u64,
    /// Index of the first entry appended after the segment was cut.
    pub first_index: u64,
}

impl SegmentHeader {
    /// The 48 header bytes: magic, version, checksum, then the four ids.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER] {
        let mut b = [0; SEGMENT_HEADER];
        b[..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        for (i, v) in [self.node_id, self.cluster_id, self.seq, self.first_index].iter().enumerate()
        {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let crc = header_crc(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a header, or says what is wrong with it.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, &'static str> {
        if b.len() < SEGMENT_HEADER {
            return Err("segment shorter than its header");
        }
        if &b[..8] != SEGMENT_MAGIC {
            return Err("bad segment magic");
        }
        if b[8..12] != 1u32.to_le_bytes() {
            return Err("unsupported segment version");
        }
        if b[12..16] != header_crc(b).to_le_bytes() {
            return Err("segment header checksum mismatch");
        }
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[16 + 8 * i..24 + 8 * i]);
            u64::from_le_bytes(w)
        };
        Ok(SegmentHeader {
            node_id: word(0),
            cluster_id: word(1),
            seq: word(2),
            first_index: word(3),
        })
    }
}

fn header_crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[..12]), &b[16..SEGMENT_HEADER])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_encoded_in_place_is_the_same_record() {
        use prost::Message as _;
        let e = keel::raftpb::Entry::new(3, 7, bytes::Bytes::from_static(b"payload"));
        let (mut a, mut b) = (vec![1, 2], vec![1, 2]);
        encode(&mut a, RecordType::Entry, &e.encode_to_vec());
        encode_message(&mut b, RecordType::Entry, &e);
        assert_eq!(a, b);
    }

    #[test]
    fn roundtrip_and_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, RecordType::Entry, b"hello");
        assert_eq!(decode(&buf), Decoded::Record(RecordType::Entry, b"hello", 17));
        let mut flipped = buf.clone();
        flipped[14] ^= 1;
        assert!(matches!(
            decode(&flipped),
            Decoded::Bad { reason: "record checksum mismatch", .. }
        ));
        let mut huge = buf.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Decoded::Bad { .. }));
        assert!(matches!(decode(&buf[..5]), Decoded::Bad { reason: "partial record header", .. }));
        assert_eq!(decode(&[0; 20]), Decoded::End);
        let h = SegmentHeader { node_id: 1, cluster_id: 2, seq: 3, first_index: 4 };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[30] ^= 1;
        assert!(SegmentHeader::decode(&bad).is_err());
    }
}
