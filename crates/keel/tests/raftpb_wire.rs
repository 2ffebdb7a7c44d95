//! Wire compatibility of `keel::raftpb` with etcd-raft's gogoproto-generated
//! `raftpb/raft.pb.go`, and robustness of every decoder against hostile bytes.
//!
//! There is no Go toolchain in the build, so compatibility is checked three
//! independent ways:
//! - golden byte vectors worked out by hand from `raft.proto` (the derivation
//!   is in the comments: key byte = field number << 3 | wire type, then a
//!   varint or a length-prefixed body);
//! - a small reference model of the generated Go code (`go_ref`): `go_size`
//!   follows the `Size()` formulas and `go_marshal` the field order and
//!   presence rules of `MarshalToSizedBuffer` (which fills its buffer from the
//!   end, so its output is in ascending field-number order); proptest compares
//!   both with prost on random values;
//! - round trips, truncations and mutations of random values.
//!
//! The one modelled difference: Go writes a byte field when the slice is
//! non-nil, Keel when it is non-empty. The model treats "nil" as "empty", which
//! is exactly the `bytes::Bytes` behaviour documented in `keel::raftpb`.

use bytes::Bytes;
use keel::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
use proptest::prelude::*;
use prost::Message as ProstMessage;
use std::fmt::Debug;

/// A reference model of the gogoproto code generated for `raft.proto`.
mod go_ref {
    use super::*;

    /// `sovRaft`: the length of `x` as a varint, `(bits.Len64(x|1) + 6) / 7`.
    pub(super) fn sov(x: u64) -> usize {
        (64 - (x | 1).leading_zeros() as usize).div_ceil(7)
    }

    /// Go converts an `int32` enum with `uint64(m.Type)`, which sign-extends;
    /// Rust's `as` does the same, so a negative value takes ten bytes.
    fn enum_u64(v: i32) -> u64 {
        v as u64
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A varint field: always written (gogo `nullable=false` scalars).
    fn put_u64(out: &mut Vec<u8>, key: u8, v: u64) {
        out.push(key);
        put_varint(out, v);
    }

    /// A bytes field: Go writes it when `!= nil`; modelled as non-empty.
    fn put_bytes(out: &mut Vec<u8>, key: u8, b: &[u8]) {
        if !b.is_empty() {
            out.push(key);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    }

    /// An embedded message: key, length, body.
    fn put_msg(out: &mut Vec<u8>, key: u8, m: &dyn GoWire) {
        let body = m.go_bytes();
        out.push(key);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(&body);
    }

    /// `1 + l + sov(l)`: the size of a length-delimited field of `l` bytes.
    fn len_field(l: usize) -> usize {
        1 + l + sov(l as u64)
    }

    /// Size of a bytes field written only when non-nil (here: non-empty).
    fn bytes_field(b: &[u8]) -> usize {
        if b.is_empty() { 0 } else { len_field(b.len()) }
    }

    pub(super) trait GoWire {
        /// The generated `Size()`.
        fn go_size(&self) -> usize;
        /// The generated `Marshal()`, field by field in output order.
        fn go_marshal(&self, out: &mut Vec<u8>);
        fn go_bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.go_marshal(&mut out);
            out
        }
    }

    impl GoWire for Entry {
        fn go_size(&self) -> usize {
            // protobuf-go (etcd-raft v3.7) writes Type only when it is set.
            self.entry_type.map_or(0, |t| 1 + sov(enum_u64(t)))
                + 1
                + sov(self.term)
                + 1
                + sov(self.index)
                + bytes_field(&self.data)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            if let Some(t) = self.entry_type {
                put_u64(out, 0x08, enum_u64(t)); // Type = 1, if set
            }
            put_u64(out, 0x10, self.term); // Term = 2
            put_u64(out, 0x18, self.index); // Index = 3
            put_bytes(out, 0x22, &self.data); // Data = 4, if non-nil
        }
    }

    impl GoWire for SnapshotMetadata {
        fn go_size(&self) -> usize {
            len_field(self.conf_state.go_size()) + 1 + sov(self.index) + 1 + sov(self.term)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_msg(out, 0x0a, &self.conf_state); // conf_state = 1, always
            put_u64(out, 0x10, self.index);
            put_u64(out, 0x18, self.term);
        }
    }

    impl GoWire for Snapshot {
        fn go_size(&self) -> usize {
            bytes_field(&self.data) + len_field(self.metadata.go_size())
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_bytes(out, 0x0a, &self.data); // data = 1, if non-nil
            put_msg(out, 0x12, &self.metadata); // metadata = 2, always
        }
    }

    impl GoWire for Message {
        fn go_size(&self) -> usize {
            let mut n = 1 + sov(enum_u64(self.msg_type));
            n += 1 + sov(self.to);
            n += 1 + sov(self.from);
            n += 1 + sov(self.term);
            n += 1 + sov(self.log_term);
            n += 1 + sov(self.index);
            n += self.entries.iter().map(|e| len_field(e.go_size())).sum::<usize>();
            n += 1 + sov(self.commit);
            // `*Snapshot`: written only when non-nil.
            n += self.snapshot.as_ref().map_or(0, |s| len_field(s.go_size()));
            n += 2; // reject: key and one byte
            n += 1 + sov(self.reject_hint);
            n += bytes_field(&self.context);
            n += 1 + sov(self.vote);
            n += self.responses.iter().map(|m| len_field(m.go_size())).sum::<usize>();
            n
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_u64(out, 0x08, enum_u64(self.msg_type));
            put_u64(out, 0x10, self.to);
            put_u64(out, 0x18, self.from);
            put_u64(out, 0x20, self.term);
            put_u64(out, 0x28, self.log_term);
            put_u64(out, 0x30, self.index);
            for e in &self.entries {
                put_msg(out, 0x3a, e);
            }
            put_u64(out, 0x40, self.commit);
            if let Some(s) = &self.snapshot {
                put_msg(out, 0x4a, s.as_ref());
            }
            put_u64(out, 0x50, u64::from(self.reject));
            put_u64(out, 0x58, self.reject_hint);
            put_bytes(out, 0x62, &self.context);
            // vote is field 13: declared before snapshot in the Go struct but
            // written by number, after context (12).
            put_u64(out, 0x68, self.vote);
            for m in &self.responses {
                put_msg(out, 0x72, m);
            }
        }
    }

    impl GoWire for HardState {
        fn go_size(&self) -> usize {
            1 + sov(self.term) + 1 + sov(self.vote) + 1 + sov(self.commit)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_u64(out, 0x08, self.term);
            put_u64(out, 0x10, self.vote);
            put_u64(out, 0x18, self.commit);
        }
    }

    impl GoWire for ConfState {
        fn go_size(&self) -> usize {
            let ids = |v: &[u64]| v.iter().map(|&id| 1 + sov(id)).sum::<usize>();
            ids(&self.voters)
                + ids(&self.learners)
                + ids(&self.voters_outgoing)
                + ids(&self.learners_next)
                + 2
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            // Unpacked: one key per element.
            for &id in &self.voters {
                put_u64(out, 0x08, id);
            }
            for &id in &self.learners {
                put_u64(out, 0x10, id);
            }
            for &id in &self.voters_outgoing {
                put_u64(out, 0x18, id);
            }
            for &id in &self.learners_next {
                put_u64(out, 0x20, id);
            }
            put_u64(out, 0x28, u64::from(self.auto_leave));
        }
    }

    impl GoWire for ConfChange {
        fn go_size(&self) -> usize {
            1 + sov(self.id)
                + 1
                + sov(enum_u64(self.change_type))
                + 1
                + sov(self.node_id)
                + bytes_field(&self.context)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            // ID is declared last in the struct but is field 1, written first.
            put_u64(out, 0x08, self.id);
            put_u64(out, 0x10, enum_u64(self.change_type));
            put_u64(out, 0x18, self.node_id);
            put_bytes(out, 0x22, &self.context);
        }
    }

    impl GoWire for ConfChangeSingle {
        fn go_size(&self) -> usize {
            1 + sov(enum_u64(self.change_type)) + 1 + sov(self.node_id)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_u64(out, 0x08, enum_u64(self.change_type));
            put_u64(out, 0x10, self.node_id);
        }
    }

    impl GoWire for ConfChangeV2 {
        fn go_size(&self) -> usize {
            1 + sov(enum_u64(self.transition))
                + self.changes.iter().map(|c| len_field(c.go_size())).sum::<usize>()
                + bytes_field(&self.context)
        }
        fn go_marshal(&self, out: &mut Vec<u8>) {
            put_u64(out, 0x08, enum_u64(self.transition));
            for c in &self.changes {
                put_msg(out, 0x12, c);
            }
            put_bytes(out, 0x1a, &self.context);
        }
    }
}

use go_ref::GoWire;

/// Checks a hand-derived vector: encode, decode, `encoded_len` and the Go
/// reference all agree with it.
fn check_golden<M>(name: &str, msg: &M, golden: &[u8])
where
    M: ProstMessage + GoWire + Default + PartialEq + Debug,
{
    assert_eq!(msg.encode_to_vec(), golden, "{name}: prost encoding");
    assert_eq!(msg.go_bytes(), golden, "{name}: Go reference encoding");
    assert_eq!(msg.encoded_len(), golden.len(), "{name}: encoded_len");
    assert_eq!(msg.go_size(), golden.len(), "{name}: Go Size()");
    let decoded = M::decode(golden).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(&decoded, msg, "{name}: decode");
}

fn cs(voters: &[u64]) -> ConfState {
    ConfState { voters: voters.to_vec(), ..ConfState::default() }
}

#[test]
fn sov_matches_the_varint_length() {
    for (v, n) in [(0, 1), (1, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (u64::MAX, 10)] {
        assert_eq!(go_ref::sov(v), n, "sov({v})");
        assert_eq!(prost::encoding::encoded_len_varint(v), n);
    }
}

#[test]
fn golden_entry_normal() {
    let e = Entry::new(5, 300, Bytes::from_static(b"hello"));
    #[rustfmt::skip]
    let golden = [
        0x08, 0x00,                         // Type  = 1, varint: EntryNormal (0)
        0x10, 0x05,                         // Term  = 2, varint: 5
        0x18, 0xac, 0x02,                   // Index = 3, varint: 300 = 0b10_0101100 -> ac 02
        0x22, 0x05, b'h', b'e', b'l', b'l', b'o', // Data = 4, len 5
    ];
    check_golden("entry normal", &e, &golden);
}

#[test]
fn golden_entry_conf_change() {
    // The payload is a ConfChange{ID 0, AddNode, NodeID 2, no context}:
    // id(1)=0 -> 08 00, type(2)=0 -> 10 00, node_id(3)=2 -> 18 02: 6 bytes.
    let cc = ConfChange { node_id: 2, ..ConfChange::default() };
    let payload = [0x08, 0x00, 0x10, 0x00, 0x18, 0x02];
    check_golden("conf change payload", &cc, &payload);
    let e = Entry {
        term: 2,
        index: 3,
        entry_type: Some(EntryType::EntryConfChange as i32),
        data: Bytes::copy_from_slice(&payload),
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x01,             // Type  = EntryConfChange (1)
        0x10, 0x02,             // Term  = 2
        0x18, 0x03,             // Index = 3
        0x22, 0x06,             // Data, len 6:
        0x08, 0x00, 0x10, 0x00, 0x18, 0x02,
    ];
    check_golden("entry conf change", &e, &golden);
}

#[test]
fn golden_entry_large_values_and_empty_data() {
    // u64::MAX needs ten 7-bit groups: nine full ones (ff) and a final 1.
    // 1<<63 is nine empty groups with the continuation bit (80) and a final 1.
    // Empty data is not written (nil in Go).
    let e = Entry {
        term: u64::MAX,
        index: 1 << 63,
        entry_type: Some(EntryType::EntryConfChangeV2 as i32),
        data: Bytes::new(),
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x02,
        0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ];
    check_golden("entry large", &e, &golden);
}

#[test]
fn golden_hard_state() {
    // term 128 = 0b1_0000000 -> 80 01; commit 16384 = 1<<14 -> 80 80 01.
    let hs = HardState { term: 128, vote: 3, commit: 16384 };
    let golden = [0x08, 0x80, 0x01, 0x10, 0x03, 0x18, 0x80, 0x80, 0x01];
    check_golden("hard state", &hs, &golden);
    // The zero value still writes all three fields.
    check_golden("zero hard state", &HardState::default(), &[0x08, 0, 0x10, 0, 0x18, 0]);
}

#[test]
fn golden_conf_state() {
    let cs = ConfState {
        voters: vec![1, 2, 300],
        learners: vec![5],
        voters_outgoing: vec![1, 2, 4],
        learners_next: vec![4],
        auto_leave: true,
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x01, 0x08, 0x02, 0x08, 0xac, 0x02, // voters = 1, unpacked: one key per id
        0x10, 0x05,                               // learners = 2
        0x18, 0x01, 0x18, 0x02, 0x18, 0x04,       // voters_outgoing = 3
        0x20, 0x04,                               // learners_next = 4
        0x28, 0x01,                               // auto_leave = 5, true
    ];
    check_golden("conf state", &cs, &golden);
    // auto_leave is always written, so the zero ConfState is two bytes.
    check_golden("zero conf state", &ConfState::default(), &[0x28, 0x00]);
}

#[test]
fn packed_conf_state_ids_are_accepted_on_decode() {
    // Go's Unmarshal accepts the packed form (wire type 2) too; so does prost.
    // 0a = field 1, wire type 2; length 3; ids 1, 2, 3.
    let decoded = ConfState::decode(&[0x0a, 0x03, 0x01, 0x02, 0x03, 0x08, 0x04][..]).unwrap();
    assert_eq!(decoded.voters, vec![1, 2, 3, 4]);
}

#[test]
fn golden_conf_change() {
    let cc = ConfChange {
        id: 7,
        change_type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: 3,
        context: Bytes::from_static(b"ctx"),
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x07,                   // id = 1 (declared last, written first)
        0x10, 0x01,                   // type = 2: RemoveNode
        0x18, 0x03,                   // node_id = 3
        0x22, 0x03, b'c', b't', b'x', // context = 4
    ];
    check_golden("conf change", &cc, &golden);
}

#[test]
fn golden_conf_change_single_unknown_type() {
    // An unknown negative enum value is sign-extended to 64 bits by both Go
    // (uint64(int32)) and prost: ten bytes.
    let ccs = ConfChangeSingle { change_type: -1, node_id: 1 };
    #[rustfmt::skip]
    let golden = [
        0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        0x10, 0x01,
    ];
    check_golden("conf change single -1", &ccs, &golden);
}

#[test]
fn golden_conf_change_v2() {
    let cc = ConfChangeV2 {
        transition: ConfChangeTransition::ConfChangeTransitionJointExplicit as i32,
        changes: vec![
            ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id: 2 },
            ConfChangeSingle {
                change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
                node_id: 5,
            },
        ],
        context: Bytes::from_static(b"ab"),
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x02,                         // transition = 1: JointExplicit
        0x12, 0x04, 0x08, 0x00, 0x10, 0x02, // changes = 2, len 4: {AddNode, 2}
        0x12, 0x04, 0x08, 0x03, 0x10, 0x05, // changes = 2, len 4: {AddLearnerNode, 5}
        0x1a, 0x02, b'a', b'b',             // context = 3
    ];
    check_golden("conf change v2", &cc, &golden);
    // The leave-joint change is the zero value: only the transition.
    check_golden("zero conf change v2", &ConfChangeV2::default(), &[0x08, 0x00]);
}

#[test]
fn golden_snapshot() {
    let meta = SnapshotMetadata { conf_state: cs(&[1]), index: 10, term: 2 };
    #[rustfmt::skip]
    let meta_golden = [
        0x0a, 0x04, 0x08, 0x01, 0x28, 0x00, // conf_state = 1, len 4: voters [1], auto_leave false
        0x10, 0x0a,                         // index = 2: 10
        0x18, 0x02,                         // term = 3: 2
    ];
    check_golden("snapshot metadata", &meta, &meta_golden);
    let snap = Snapshot { data: Bytes::from_static(b"snap"), metadata: meta };
    let mut golden = vec![0x0a, 0x04, b's', b'n', b'a', b'p']; // data = 1, len 4
    golden.extend_from_slice(&[0x12, 0x0a]); // metadata = 2, len 10
    golden.extend_from_slice(&meta_golden);
    check_golden("snapshot", &snap, &golden);
}

#[test]
fn golden_message_with_entries_snapshot_and_responses() {
    let m = Message {
        msg_type: MessageType::MsgStorageAppend as i32,
        to: 2,
        from: 1,
        term: 3,
        log_term: 2,
        index: 4,
        entries: vec![Entry::new(3, 5, Bytes::from_static(b"x")), Entry::new(3, 6, Bytes::new())],
        commit: 4,
        vote: 1,
        snapshot: Some(Box::new(Snapshot {
            data: Bytes::new(),
            metadata: SnapshotMetadata { conf_state: cs(&[1]), index: 4, term: 2 },
        })),
        reject: false,
        reject_hint: 0,
        context: Bytes::from_static(b"c").into(),
        responses: vec![Message {
            to: 1,
            from: 2,
            term: 3,
            index: 6,
            ..Message::new(MessageType::MsgAppResp)
        }]
        .into(),
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x13,       // type = 1: MsgStorageAppend (19)
        0x10, 0x02,       // to = 2
        0x18, 0x01,       // from = 3
        0x20, 0x03,       // term = 4
        0x28, 0x02,       // logTerm = 5
        0x30, 0x04,       // index = 6
        0x3a, 0x09,       // entries = 7, len 9:
            0x08, 0x00, 0x10, 0x03, 0x18, 0x05, 0x22, 0x01, b'x',
        0x3a, 0x06,       // entries = 7, len 6 (empty data not written):
            0x08, 0x00, 0x10, 0x03, 0x18, 0x06,
        0x40, 0x04,       // commit = 8
        0x4a, 0x0c,       // snapshot = 9, len 12 (no data):
            0x12, 0x0a,   //   metadata = 2, len 10:
                0x0a, 0x04, 0x08, 0x01, 0x28, 0x00, 0x10, 0x04, 0x18, 0x02,
        0x50, 0x00,       // reject = 10: false, still written
        0x58, 0x00,       // rejectHint = 11
        0x62, 0x01, b'c', // context = 12
        0x68, 0x01,       // vote = 13, after context: order is by field number
        0x72, 0x14,       // responses = 14, len 20: a MsgAppResp
            0x08, 0x04, 0x10, 0x01, 0x18, 0x02, 0x20, 0x03, 0x28, 0x00,
            0x30, 0x06, 0x40, 0x00, 0x50, 0x00, 0x58, 0x00, 0x68, 0x00,
    ];
    assert_eq!(golden.len(), 78);
    check_golden("message", &m, &golden);
}

#[test]
fn golden_zero_message() {
    // Every scalar is written, nothing else: ten two-byte fields.
    #[rustfmt::skip]
    let golden = [
        0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00, 0x28, 0x00,
        0x30, 0x00, 0x40, 0x00, 0x50, 0x00, 0x58, 0x00, 0x68, 0x00,
    ];
    check_golden("zero message", &Message::default(), &golden);
}

#[test]
fn golden_message_with_empty_snapshot_from_older_peer() {
    // Older etcd binaries send a non-nil, empty snapshot. It must survive:
    // Snapshot{} = metadata(12 08 [0a 02 28 00 | 10 00 | 18 00]).
    let m = Message { snapshot: Some(Box::default()), ..Message::new(MessageType::MsgApp) };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x03, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00, 0x28, 0x00, 0x30, 0x00, 0x40, 0x00,
        0x4a, 0x0a, 0x12, 0x08, 0x0a, 0x02, 0x28, 0x00, 0x10, 0x00, 0x18, 0x00,
        0x50, 0x00, 0x58, 0x00, 0x68, 0x00,
    ];
    check_golden("message with empty snapshot", &m, &golden);
}

#[test]
fn empty_but_present_bytes_decode_to_empty() {
    // Go writes a non-nil empty slice as key + zero length (22 00). Keel reads
    // it as empty and writes nothing back: the documented 2-byte difference.
    let with_empty_data = [0x08, 0x00, 0x10, 0x01, 0x18, 0x01, 0x22, 0x00];
    let e = Entry::decode(&with_empty_data[..]).unwrap();
    assert_eq!(e, Entry::new(1, 1, Bytes::new()));
    assert_eq!(e.encode_to_vec(), &with_empty_data[..6]);
    assert_eq!(e.encoded_len() + 2, with_empty_data.len());
}

#[test]
fn repeated_embedded_messages_merge_as_in_go() {
    // A non-repeated embedded message that appears twice is merged (Go's
    // generated Unmarshal decodes into the existing value); scalars and bytes
    // take the last value.
    #[rustfmt::skip]
    let bytes = [
        0x0a, 0x02, 0x08, 0x01, // conf_state: voters [1]
        0x10, 0x07,             // index 7
        0x0a, 0x02, 0x08, 0x02, // conf_state: voters [2]
        0x10, 0x09,             // index 9
    ];
    let meta = SnapshotMetadata::decode(&bytes[..]).unwrap();
    assert_eq!(meta, SnapshotMetadata { conf_state: cs(&[1, 2]), index: 9, term: 0 });
}

#[test]
fn unknown_fields_are_skipped() {
    // Field 15 varint (78 05) and field 16 bytes (82 01 01 ff) are unknown to
    // HardState; Go skips them (no XXX_unrecognized), and so does prost.
    let bytes = [0x08, 0x02, 0x78, 0x05, 0x82, 0x01, 0x01, 0xff, 0x18, 0x04];
    let hs = HardState::decode(&bytes[..]).unwrap();
    assert_eq!(hs, HardState { term: 2, vote: 0, commit: 4 });
}

// ---------------------------------------------------------------------------
// Strategies.

fn arb_u64() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        3 => 0..300u64,
        2 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(1u64 << 63),
    ]
}

/// An enum field: mostly known values, sometimes any raw `i32` (unknown and
/// negative values must survive a round trip, as in Go).
fn arb_enum(n_known: i32) -> impl Strategy<Value = i32> + Clone {
    prop_oneof![4 => 0..n_known, 1 => any::<i32>()]
}

fn arb_bytes() -> impl Strategy<Value = Bytes> + Clone {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..8),
        1 => prop::collection::vec(any::<u8>(), 120..260), // two-byte lengths
    ]
    .prop_map(Bytes::from)
}

fn arb_ids() -> impl Strategy<Value = Vec<u64>> + Clone {
    prop::collection::vec(arb_u64(), 0..5)
}

fn arb_entry() -> impl Strategy<Value = Entry> + Clone {
    (arb_u64(), arb_u64(), prop::option::of(arb_enum(3)), arb_bytes())
        .prop_map(|(term, index, entry_type, data)| Entry { term, index, entry_type, data })
}

fn arb_conf_state() -> impl Strategy<Value = ConfState> + Clone {
    (arb_ids(), arb_ids(), arb_ids(), arb_ids(), any::<bool>()).prop_map(
        |(voters, learners, voters_outgoing, learners_next, auto_leave)| ConfState {
            voters,
            learners,
            voters_outgoing,
            learners_next,
            auto_leave,
        },
    )
}

fn arb_snapshot_metadata() -> impl Strategy<Value = SnapshotMetadata> + Clone {
    (arb_conf_state(), arb_u64(), arb_u64())
        .prop_map(|(conf_state, index, term)| SnapshotMetadata { conf_state, index, term })
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> + Clone {
    (arb_bytes(), arb_snapshot_metadata()).prop_map(|(data, metadata)| Snapshot { data, metadata })
}

fn arb_hard_state() -> impl Strategy<Value = HardState> + Clone {
    (arb_u64(), arb_u64(), arb_u64()).prop_map(|(term, vote, commit)| HardState {
        term,
        vote,
        commit,
    })
}

fn arb_conf_change() -> impl Strategy<Value = ConfChange> + Clone {
    (arb_u64(), arb_enum(4), arb_u64(), arb_bytes()).prop_map(
        |(id, change_type, node_id, context)| ConfChange { id, change_type, node_id, context },
    )
}

fn arb_conf_change_single() -> impl Strategy<Value = ConfChangeSingle> + Clone {
    (arb_enum(4), arb_u64())
        .prop_map(|(change_type, node_id)| ConfChangeSingle { change_type, node_id })
}

fn arb_conf_change_v2() -> impl Strategy<Value = ConfChangeV2> + Clone {
    (arb_enum(3), prop::collection::vec(arb_conf_change_single(), 0..4), arb_bytes())
        .prop_map(|(transition, changes, context)| ConfChangeV2 { transition, changes, context })
}

/// A message without responses.
fn arb_message_flat() -> impl Strategy<Value = Message> + Clone {
    let header = (arb_enum(24), arb_u64(), arb_u64(), arb_u64(), arb_u64(), arb_u64());
    let body = (
        prop::collection::vec(arb_entry(), 0..4),
        arb_u64(),
        arb_u64(),
        prop::option::of(arb_snapshot()),
        any::<bool>(),
        arb_u64(),
        arb_bytes(),
    );
    (header, body).prop_map(
        |(
            (msg_type, to, from, term, log_term, index),
            (entries, commit, vote, snapshot, reject, reject_hint, context),
        )| Message {
            msg_type,
            to,
            from,
            term,
            log_term,
            index,
            entries,
            commit,
            vote,
            snapshot: snapshot.map(Box::new),
            reject,
            reject_hint,
            context: context.into(),
            responses: Default::default(),
        },
    )
}

/// A message with nested responses, at most three levels deep.
fn arb_message() -> impl Strategy<Value = Message> {
    arb_message_flat().prop_recursive(3, 12, 3, |inner| {
        (arb_message_flat(), prop::collection::vec(inner, 0..3)).prop_map(|(mut m, responses)| {
            m.responses = responses.into();
            m
        })
    })
}

// ---------------------------------------------------------------------------
// Round trips and the Go model.

/// Encodes `m` and checks it against the Go model and prost's decoder.
fn check_wire<M>(m: &M) -> Result<(), TestCaseError>
where
    M: ProstMessage + GoWire + Default + PartialEq + Debug,
{
    let bytes = m.encode_to_vec();
    prop_assert_eq!(&bytes, &m.go_bytes(), "prost and Go model differ");
    prop_assert_eq!(m.encoded_len(), bytes.len());
    prop_assert_eq!(m.go_size(), bytes.len());
    let decoded = M::decode(&bytes[..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, m);
    // Zero-copy decode from `Bytes` gives the same value.
    let decoded = M::decode(Bytes::from(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, m);
    Ok(())
}

proptest! {
    #[test]
    fn wire_entry(m in arb_entry()) { check_wire(&m)?; }
    #[test]
    fn wire_snapshot_metadata(m in arb_snapshot_metadata()) { check_wire(&m)?; }
    #[test]
    fn wire_snapshot(m in arb_snapshot()) { check_wire(&m)?; }
    #[test]
    fn wire_message(m in arb_message()) { check_wire(&m)?; }
    #[test]
    fn wire_hard_state(m in arb_hard_state()) { check_wire(&m)?; }
    #[test]
    fn wire_conf_state(m in arb_conf_state()) { check_wire(&m)?; }
    #[test]
    fn wire_conf_change(m in arb_conf_change()) { check_wire(&m)?; }
    #[test]
    fn wire_conf_change_single(m in arb_conf_change_single()) { check_wire(&m)?; }
    #[test]
    fn wire_conf_change_v2(m in arb_conf_change_v2()) { check_wire(&m)?; }
}

// ---------------------------------------------------------------------------
// Hostile input.

/// Decodes `bytes` as `M`. Must not panic; when it succeeds, re-encoding and
/// decoding again must give the same value (decoding is canonicalizing).
fn decode_checked<M>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    M: ProstMessage + Default + PartialEq + Debug,
{
    if let Ok(m) = M::decode(bytes) {
        let again = M::decode(&m.encode_to_vec()[..])
            .map_err(|e| TestCaseError::fail(format!("re-decode failed: {e}")))?;
        prop_assert_eq!(again, m);
    }
    Ok(())
}

/// Feeds `bytes` to every decoder.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_checked::<Entry>(bytes)?;
    decode_checked::<SnapshotMetadata>(bytes)?;
    decode_checked::<Snapshot>(bytes)?;
    decode_checked::<Message>(bytes)?;
    decode_checked::<HardState>(bytes)?;
    decode_checked::<ConfState>(bytes)?;
    decode_checked::<ConfChange>(bytes)?;
    decode_checked::<ConfChangeSingle>(bytes)?;
    decode_checked::<ConfChangeV2>(bytes)?;
    Ok(())
}

/// The error of decoding `bytes` as every type, `None` where it succeeded.
fn decode_errors(bytes: &[u8]) -> Vec<(&'static str, Option<String>)> {
    fn err<M: ProstMessage + Default>(bytes: &[u8]) -> Option<String> {
        M::decode(bytes).err().map(|e| e.to_string())
    }
    vec![
        ("Entry", err::<Entry>(bytes)),
        ("SnapshotMetadata", err::<SnapshotMetadata>(bytes)),
        ("Snapshot", err::<Snapshot>(bytes)),
        ("Message", err::<Message>(bytes)),
        ("HardState", err::<HardState>(bytes)),
        ("ConfState", err::<ConfState>(bytes)),
        ("ConfChange", err::<ConfChange>(bytes)),
        ("ConfChangeSingle", err::<ConfChangeSingle>(bytes)),
        ("ConfChangeV2", err::<ConfChangeV2>(bytes)),
    ]
}

/// Asserts every decoder rejects `bytes` with an error containing `needle`.
fn assert_all_reject(what: &str, bytes: &[u8], needle: &str) {
    for (ty, e) in decode_errors(bytes) {
        let e = e.unwrap_or_else(|| panic!("{what}: {ty} accepted {bytes:02x?}"));
        assert!(e.contains(needle), "{what}: {ty}: {e:?} lacks {needle:?}");
    }
}

#[test]
fn malformed_input_is_rejected_by_every_decoder() {
    // An empty needle: the error text differs between types (a truncated
    // varint for most, a wire-type mismatch where field 1 is a message).
    assert_all_reject("key without value", &[0x08], "");
    assert_all_reject("field number 0", &[0x00, 0x00], "invalid tag value: 0");
    assert_all_reject("wire type 7", &[0x0f], "invalid wire type value: 7");
    assert_all_reject("length past the end", &[0x7a, 0x05, 0x01], "buffer underflow");
    assert_all_reject("unterminated varint", &[0x78, 0x80, 0x80], "invalid varint");
    assert_all_reject(
        "eleven-byte varint",
        &[0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        "invalid varint",
    );
    assert_all_reject("stray end group", &[0x7c], "unexpected end group tag");
    assert_all_reject("unterminated group", &[0x7b, 0x78, 0x01], "");
    assert_all_reject("key above u32", &[0x80, 0x80, 0x80, 0x80, 0x10], "invalid key value");
}

#[test]
fn wrong_wire_type_for_a_known_field_is_rejected() {
    // Field 1 is a varint in every type but Snapshot and SnapshotMetadata
    // (and ConfState, which also accepts it packed); as bytes it must fail, as
    // Go's "wrong wireType" does.
    let as_bytes = [0x0a, 0x00];
    for (ty, e) in decode_errors(&as_bytes) {
        let expect_ok = matches!(ty, "Snapshot" | "SnapshotMetadata" | "ConfState");
        assert_eq!(e.is_none(), expect_ok, "{ty}: {e:?}");
    }
    // And a length-delimited field sent as a varint.
    assert!(Snapshot::decode(&[0x08, 0x01][..]).is_err());
    assert!(Message::decode(&[0x38, 0x01][..]).is_err()); // entries as varint
    assert!(Message::decode(&[0x70, 0x01][..]).is_err()); // responses as varint
}

#[test]
fn overlong_ten_byte_varint_is_rejected() {
    // Go's generated decoder accepts a tenth byte above 1 and drops the bits
    // past 64; prost rejects it. No encoder writes such a varint.
    let bytes = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let err = HardState::decode(&bytes[..]).unwrap_err();
    assert!(err.to_string().contains("invalid varint"), "{err}");
    // The canonical ten-byte form of u64::MAX is fine.
    let mut ok = bytes;
    ok[10] = 0x01;
    assert_eq!(HardState::decode(&ok[..]).unwrap().term, u64::MAX);
}

/// The offsets at which the top-level fields of a valid encoding end
/// (including 0): the only prefixes that are themselves valid encodings.
fn field_boundaries(bytes: &[u8]) -> Vec<usize> {
    fn varint(bytes: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = bytes[*pos];
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = vec![0];
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos);
        match key & 7 {
            0 => {
                varint(bytes, &mut pos);
            }
            2 => {
                let len = varint(bytes, &mut pos) as usize;
                pos += len;
            }
            w => panic!("unexpected wire type {w} in a valid encoding"),
        }
        out.push(pos);
    }
    assert_eq!(pos, bytes.len());
    out
}

/// Every prefix of a valid encoding decodes iff it ends on a field boundary;
/// cut anywhere inside a field, it is an error.
fn check_truncations<M>(m: &M) -> Result<(), TestCaseError>
where
    M: ProstMessage + Default + PartialEq + Debug,
{
    let bytes = m.encode_to_vec();
    let boundaries = field_boundaries(&bytes);
    for n in 0..bytes.len() {
        let res = M::decode(&bytes[..n]);
        prop_assert_eq!(
            res.is_ok(),
            boundaries.contains(&n),
            "prefix of {} of {} bytes: {:?}",
            n,
            bytes.len(),
            res
        );
    }
    Ok(())
}

#[test]
fn truncated_golden_message_is_an_error_mid_field() {
    let m = Message {
        entries: vec![Entry::new(3, 5, Bytes::from_static(b"payload"))],
        snapshot: Some(Box::default()),
        context: Bytes::from_static(b"ctx").into(),
        responses: vec![Message::new(MessageType::MsgAppResp)].into(),
        ..Message::new(MessageType::MsgStorageAppend)
    };
    check_truncations(&m).unwrap();
    // Cutting inside the entries field (after its key and length) fails.
    let bytes = m.encode_to_vec();
    let err = Message::decode(&bytes[..15]).unwrap_err();
    assert!(err.to_string().contains("buffer underflow"), "{err}");
}

proptest! {
    #[test]
    fn truncated_entry(m in arb_entry()) { check_truncations(&m)?; }
    #[test]
    fn truncated_snapshot(m in arb_snapshot()) { check_truncations(&m)?; }
    #[test]
    fn truncated_message(m in arb_message()) { check_truncations(&m)?; }
    #[test]
    fn truncated_conf_state(m in arb_conf_state()) { check_truncations(&m)?; }
    #[test]
    fn truncated_conf_change(m in arb_conf_change()) { check_truncations(&m)?; }
    #[test]
    fn truncated_conf_change_v2(m in arb_conf_change_v2()) { check_truncations(&m)?; }
    #[test]
    fn truncated_hard_state(m in arb_hard_state()) { check_truncations(&m)?; }
}

/// Bytes that look like protobuf: keys of our fields (all wire types), small
/// varints and lengths, continuation bytes, and anything else.
fn arb_wireish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => (1u8..16, 0u8..6).prop_map(|(field, wire)| field << 3 | wire),
        3 => 0u8..8,
        1 => 0x80u8..=0xff,
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..96)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn wireish_bytes_never_panic(bytes in arb_wireish_bytes()) {
        decode_all(&bytes)?;
    }
}

/// One corruption of an encoding.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, g)| Mutation::Insert(i, g)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::FlipBit(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::SetByte(i, b) => bytes[i.index(len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Insert(i, garbage) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, garbage.iter().copied());
            }
            Mutation::Remove(i) => {
                bytes.remove(i.index(len));
            }
        }
    }
    bytes
}

proptest! {
    #[test]
    fn mutated_messages_never_panic(
        m in arb_message(),
        mutations in prop::collection::vec(arb_mutation(), 1..5),
    ) {
        decode_all(&mutate(m.encode_to_vec(), &mutations))?;
    }

    #[test]
    fn mutated_snapshots_never_panic(
        m in arb_snapshot(),
        mutations in prop::collection::vec(arb_mutation(), 1..5),
    ) {
        decode_all(&mutate(m.encode_to_vec(), &mutations))?;
    }

    #[test]
    fn mutated_conf_changes_never_panic(
        v1 in arb_conf_change(),
        v2 in arb_conf_change_v2(),
        mutations in prop::collection::vec(arb_mutation(), 1..5),
    ) {
        decode_all(&mutate(v1.encode_to_vec(), &mutations))?;
        decode_all(&mutate(v2.encode_to_vec(), &mutations))?;
    }

    #[test]
    fn mutated_small_messages_never_panic(
        e in arb_entry(),
        hs in arb_hard_state(),
        cs in arb_conf_state(),
        mutations in prop::collection::vec(arb_mutation(), 1..5),
    ) {
        decode_all(&mutate(e.encode_to_vec(), &mutations))?;
        decode_all(&mutate(hs.encode_to_vec(), &mutations))?;
        decode_all(&mutate(cs.encode_to_vec(), &mutations))?;
    }
}

// ---------------------------------------------------------------------------
// Recursion bombs.

/// A `Message` whose `responses` nest `depth` levels deep, built from the
/// outside in (each level is `72 <len>` followed by the next), in O(depth).
fn nested_responses(depth: usize) -> Vec<u8> {
    // lens[k]: encoded length of the message at nesting level k from the
    // inside (the innermost, level 0, is the empty encoding).
    let mut lens = vec![0usize; depth + 1];
    for k in 1..=depth {
        lens[k] = 1 + go_ref::sov(lens[k - 1] as u64) + lens[k - 1];
    }
    let mut out = Vec::with_capacity(lens[depth]);
    for k in (1..=depth).rev() {
        out.push(0x72);
        prost::encoding::encode_varint(lens[k - 1] as u64, &mut out);
    }
    assert_eq!(out.len(), lens[depth]);
    out
}

fn response_depth(m: &Message) -> usize {
    m.responses.iter().map(|r| 1 + response_depth(r)).max().unwrap_or(0)
}

#[test]
fn deeply_nested_responses_hit_the_recursion_limit() {
    // prost allows 100 levels of nesting. Go has no such limit, but etcd
    // never nests responses more than one level.
    // The top-level message plus 100 nested levels decode; one more fails.
    let ok = Message::decode(&nested_responses(100)[..]).unwrap();
    assert_eq!(response_depth(&ok), 100);
    for depth in [101, 1_000, 200_000] {
        // Only the error text is printed: the Debug form of the error (or of a
        // wrongly decoded value) is enormous.
        match Message::decode(&nested_responses(depth)[..]) {
            Ok(m) => panic!("depth {depth} decoded to depth {}", response_depth(&m)),
            Err(e) => assert!(e.to_string().contains("recursion limit reached"), "depth {depth}"),
        }
    }
}

#[test]
fn deeply_nested_unknown_groups_hit_the_recursion_limit() {
    // Field 15, wire type 3 (start group) is unknown to every type; skipping
    // nested groups recurses and must stop at the same limit.
    assert_all_reject("group bomb", &[0x7b; 200_000], "recursion limit reached");
}

/// Entries written by etcd-raft v3.6 (gogoproto writes `Type` always, also
/// `EntryNormal`) decode with the type present and re-encode byte for byte;
/// an entry whose type is unset (a v3.7 proposal) omits the field.
#[test]
fn entry_type_presence_round_trips_both_versions() {
    // Type=EntryNormal, Term=1, Index=2, Data="x", as v3.6 writes it.
    let v36: &[u8] = &[0x08, 0x00, 0x10, 0x01, 0x18, 0x02, 0x22, 0x01, b'x'];
    let e = Entry::decode(v36).unwrap();
    assert_eq!(e.entry_type, Some(EntryType::EntryNormal as i32));
    assert_eq!(e.encode_to_vec(), v36);
    assert_eq!(e.encoded_len(), 9);
    // The same entry as v3.7 writes a proposal: no Type field.
    let v37 = &v36[2..];
    let e = Entry::decode(v37).unwrap();
    assert_eq!(e.entry_type, None);
    assert_eq!(e.entry_type(), EntryType::EntryNormal);
    assert_eq!(e.encode_to_vec(), v37);
    assert_eq!(e.encoded_len(), 7);
}
