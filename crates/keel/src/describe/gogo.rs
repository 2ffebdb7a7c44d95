//! Decoding of configuration change payloads for display, accepting and
//! rejecting exactly what etcd's gogoproto-generated `Unmarshal` methods do and
//! failing with their error texts, because `DescribeEntry` prints the error of
//! a payload that does not decode.
//!
//! Only the operations are kept: the text form shows nothing else.

use std::fmt;

use crate::raftpb::{ConfChangeSingle, ConfChangeType};

/// Why a payload did not decode; `Display` gives gogoproto's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum GogoError {
    /// Go's `io.ErrUnexpectedEOF`.
    UnexpectedEof,
    /// A varint longer than ten bytes.
    IntOverflow,
    /// A length that is negative as a Go `int`.
    InvalidLength,
    /// An end-group tag with no open group while skipping.
    UnexpectedEndOfGroup,
    /// An end-group tag where a field was expected.
    EndGroupForNonGroup { message: &'static str },
    /// A field number of zero or less.
    IllegalTag { message: &'static str, field_num: i32, wire: u64 },
    /// A known field with the wrong wire type.
    WrongWireType { field: &'static str, wire_type: u64 },
    /// Wire type 6 or 7 in an unknown field.
    IllegalWireType(u64),
}

impl fmt::Display for GogoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GogoError::UnexpectedEof => f.write_str("unexpected EOF"),
            GogoError::IntOverflow => f.write_str("proto: integer overflow"),
            GogoError::InvalidLength => {
                f.write_str("proto: negative length found during unmarshaling")
            }
            GogoError::UnexpectedEndOfGroup => f.write_str("proto: unexpected end of group"),
            GogoError::EndGroupForNonGroup { message } => {
                write!(f, "proto: {message}: wiretype end group for non-group")
            }
            GogoError::IllegalTag { message, field_num, wire } => {
                write!(f, "proto: {message}: illegal tag {field_num} (wire type {wire})")
            }
            GogoError::WrongWireType { field, wire_type } => {
                write!(f, "proto: wrong wireType = {wire_type} for field {field}")
            }
            GogoError::IllegalWireType(wire_type) => {
                write!(f, "proto: illegal wireType {wire_type}")
            }
        }
    }
}

/// The operation of an `EntryConfChange` payload (a V1 `ConfChange`), as its
/// V2 form has it.
pub(super) fn decode_conf_change_v1(data: &[u8]) -> Result<ConfChangeSingle, GogoError> {
    let mut cc =
        ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id: 0 };
    for_each_field(data, "ConfChange", |field, r| match field {
        1 => r.varint_field("ID", |_| {}),
        2 => r.varint_field("Type", |v| cc.change_type = v as i32),
        3 => r.varint_field("NodeID", |v| cc.node_id = v),
        4 => {
            r.bytes_field("Context")?;
            Ok(())
        }
        _ => Err(FieldError::Unknown),
    })?;
    Ok(cc)
}

/// The operations of an `EntryConfChangeV2` payload.
pub(super) fn decode_conf_change_v2(data: &[u8]) -> Result<Vec<ConfChangeSingle>, GogoError> {
    let mut changes = Vec::new();
    for_each_field(data, "ConfChangeV2", |field, r| match field {
        1 => r.varint_field("Transition", |_| {}),
        2 => {
            let single = r.bytes_field("Changes")?;
            changes.push(decode_single(single)?);
            Ok(())
        }
        3 => {
            r.bytes_field("Context")?;
            Ok(())
        }
        _ => Err(FieldError::Unknown),
    })?;
    Ok(changes)
}

fn decode_single(data: &[u8]) -> Result<ConfChangeSingle, GogoError> {
    let mut cc =
        ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id: 0 };
    for_each_field(data, "ConfChangeSingle", |field, r| match field {
        1 => r.varint_field("Type", |v| cc.change_type = v as i32),
        2 => r.varint_field("NodeID", |v| cc.node_id = v),
        _ => Err(FieldError::Unknown),
    })?;
    Ok(cc)
}

/// What a field handler can fail with.
enum FieldError {
    /// The message does not decode.
    Gogo(GogoError),
    /// The handler does not know the field number: it is skipped as
    /// gogoproto's `skipRaft` does.
    Unknown,
}

impl From<GogoError> for FieldError {
    fn from(e: GogoError) -> Self {
        FieldError::Gogo(e)
    }
}

/// A cursor over one message's bytes. Positions are Go `int`s (`i64`) so that
/// overflows behave as in Go.
struct Reader<'a> {
    data: &'a [u8],
    pos: i64,
    wire_type: u64,
}

impl Reader<'_> {
    fn len(&self) -> i64 {
        self.data.len() as i64
    }

    /// Go's varint loop into a `uint64`: at most ten bytes, excess bits lost.
    fn varint(&mut self) -> Result<u64, GogoError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            if shift >= 64 {
                return Err(GogoError::IntOverflow);
            }
            if self.pos >= self.len() {
                return Err(GogoError::UnexpectedEof);
            }
            let b = self.data[self.pos as usize];
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// The same loop into a Go `int` (lengths), which may come out negative.
    fn varint_int(&mut self) -> Result<i64, GogoError> {
        self.varint().map(|v| v as i64)
    }

    fn varint_field(
        &mut self,
        field: &'static str,
        set: impl FnOnce(u64),
    ) -> Result<(), FieldError> {
        if self.wire_type != 0 {
            return Err(GogoError::WrongWireType { field, wire_type: self.wire_type }.into());
        }
        set(self.varint()?);
        Ok(())
    }

    fn bytes_field(&mut self, field: &'static str) -> Result<&[u8], GogoError> {
        if self.wire_type != 2 {
            return Err(GogoError::WrongWireType { field, wire_type: self.wire_type });
        }
        let len = self.varint_int()?;
        if len < 0 {
            return Err(GogoError::InvalidLength);
        }
        let end = self.pos.wrapping_add(len);
        if end < 0 {
            return Err(GogoError::InvalidLength);
        }
        if end > self.len() {
            return Err(GogoError::UnexpectedEof);
        }
        let bytes = &self.data[self.pos as usize..end as usize];
        self.pos = end;
        Ok(bytes)
    }
}

/// Walks the fields of one message as a generated `Unmarshal` does: reads each
/// tag, rejects end-group tags and field numbers below 1, hands known fields to
/// `handle` and skips unknown ones.
fn for_each_field<F>(data: &[u8], message: &'static str, mut handle: F) -> Result<(), GogoError>
where
    F: FnMut(i32, &mut Reader<'_>) -> Result<(), FieldError>,
{
    let mut r = Reader { data, pos: 0, wire_type: 0 };
    while r.pos < r.len() {
        let tag_start = r.pos;
        let wire = r.varint()?;
        // Go converts the field number to int32, dropping the high bits.
        let field_num = (wire >> 3) as u32 as i32;
        r.wire_type = wire & 0x7;
        if r.wire_type == 4 {
            return Err(GogoError::EndGroupForNonGroup { message });
        }
        if field_num <= 0 {
            return Err(GogoError::IllegalTag { message, field_num, wire });
        }
        match handle(field_num, &mut r) {
            Ok(()) => {}
            Err(FieldError::Gogo(e)) => return Err(e),
            Err(FieldError::Unknown) => {
                let skipped = skip_field(&data[tag_start as usize..])?;
                let end = tag_start.wrapping_add(skipped);
                if skipped < 0 || end < 0 {
                    return Err(GogoError::InvalidLength);
                }
                if end > r.len() {
                    return Err(GogoError::UnexpectedEof);
                }
                r.pos = end;
            }
        }
    }
    if r.pos > r.len() {
        return Err(GogoError::UnexpectedEof);
    }
    Ok(())
}

/// gogoproto's `skipRaft`: the length of the field (or group) at the start of
/// `data`, which may point past its end (the caller checks).
fn skip_field(data: &[u8]) -> Result<i64, GogoError> {
    let mut r = Reader { data, pos: 0, wire_type: 0 };
    let mut depth = 0u64;
    while r.pos < r.len() {
        let wire_type = r.varint()? & 0x7;
        match wire_type {
            0 => {
                r.varint()?;
            }
            1 => r.pos = r.pos.wrapping_add(8),
            2 => {
                let len = r.varint_int()?;
                if len < 0 {
                    return Err(GogoError::InvalidLength);
                }
                r.pos = r.pos.wrapping_add(len);
            }
            3 => depth += 1,
            4 => {
                if depth == 0 {
                    return Err(GogoError::UnexpectedEndOfGroup);
                }
                depth -= 1;
            }
            5 => r.pos = r.pos.wrapping_add(4),
            other => return Err(GogoError::IllegalWireType(other)),
        }
        if r.pos < 0 {
            return Err(GogoError::InvalidLength);
        }
        if depth == 0 {
            return Ok(r.pos);
        }
    }
    Err(GogoError::UnexpectedEof)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::raftpb::{ConfChange, ConfChangeV2, conf_changes_from_string};

    fn v1_err(data: &[u8]) -> String {
        decode_conf_change_v1(data).unwrap_err().to_string()
    }

    fn v2_err(data: &[u8]) -> String {
        decode_conf_change_v2(data).unwrap_err().to_string()
    }

    #[test]
    fn decodes_what_prost_encodes() {
        let cc = ConfChange {
            change_type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: 7,
            context: bytes::Bytes::from_static(b"ctx"),
            id: 99,
        };
        let single = decode_conf_change_v1(&cc.encode_to_vec()).unwrap();
        assert_eq!(single.change_type, ConfChangeType::ConfChangeRemoveNode as i32);
        assert_eq!(single.node_id, 7);

        let cc2 = ConfChangeV2 {
            transition: 2,
            changes: conf_changes_from_string("v1 l2 r3 u4").unwrap(),
            context: bytes::Bytes::from_static(b"x"),
        };
        assert_eq!(decode_conf_change_v2(&cc2.encode_to_vec()).unwrap(), cc2.changes);
        assert!(decode_conf_change_v2(&[]).unwrap().is_empty());
        assert_eq!(decode_conf_change_v1(&[]).unwrap().node_id, 0);
    }

    #[test]
    fn skips_unknown_fields() {
        // Field 5 varint, field 6 fixed64, field 7 bytes, field 8 fixed32, a
        // group (field 9) holding a varint, then NodeID 3.
        let mut data = vec![0x28, 0x01];
        data.extend([0x31, 0, 0, 0, 0, 0, 0, 0, 0]);
        data.extend([0x3a, 0x02, b'h', b'i']);
        data.extend([0x45, 0, 0, 0, 0]);
        data.extend([0x4b, 0x08, 0x05, 0x4c]);
        data.extend([0x18, 0x03]);
        assert_eq!(decode_conf_change_v1(&data).unwrap().node_id, 3);
    }

    #[test]
    fn errors_match_gogoproto() {
        assert_eq!(v1_err(&[0x80]), "unexpected EOF");
        assert_eq!(v1_err(&[0x18]), "unexpected EOF");
        assert_eq!(v1_err(&[0x18, 0x80]), "unexpected EOF");
        assert_eq!(
            v1_err(&[0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "proto: integer overflow"
        );
        assert_eq!(v1_err(&[0x00]), "proto: ConfChange: illegal tag 0 (wire type 0)");
        assert_eq!(v1_err(&[0x07]), "proto: ConfChange: illegal tag 0 (wire type 7)");
        assert_eq!(v1_err(&[0x0c]), "proto: ConfChange: wiretype end group for non-group");
        assert_eq!(v1_err(&[0x1a, 0x00]), "proto: wrong wireType = 2 for field NodeID");
        assert_eq!(v1_err(&[0x0a]), "proto: wrong wireType = 2 for field ID");
        assert_eq!(v1_err(&[0x10 | 5]), "proto: wrong wireType = 5 for field Type");
        assert_eq!(v1_err(&[0x20]), "proto: wrong wireType = 0 for field Context");
        assert_eq!(v1_err(&[0x22, 0x05, b'a']), "unexpected EOF");
        assert_eq!(
            v1_err(&[0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            "proto: negative length found during unmarshaling"
        );
        assert_eq!(v1_err(&[0x2e]), "proto: illegal wireType 6");
        assert_eq!(v1_err(&[0x29, 0x00]), "unexpected EOF");
        assert_eq!(v1_err(&[0x2b, 0x08]), "unexpected EOF");
        assert_eq!(v1_err(&[0x2b]), "unexpected EOF");
        // A tag whose field number truncates to a negative int32.
        assert_eq!(
            v1_err(&[0xf8, 0xff, 0xff, 0xff, 0x7f]),
            "proto: ConfChange: illegal tag -1 (wire type 34359738360)"
        );

        assert_eq!(v2_err(&[0x00]), "proto: ConfChangeV2: illegal tag 0 (wire type 0)");
        assert_eq!(v2_err(&[0x10]), "proto: wrong wireType = 0 for field Changes");
        assert_eq!(
            v2_err(&[0x12, 0x01, 0x00]),
            "proto: ConfChangeSingle: illegal tag 0 (wire type 0)"
        );
        assert_eq!(
            v2_err(&[0x12, 0x01, 0x0c]),
            "proto: ConfChangeSingle: wiretype end group for non-group"
        );
        assert_eq!(v2_err(&[0x12, 0x01, 0x08]), "unexpected EOF");
        assert_eq!(v2_err(&[0x0a]), "proto: wrong wireType = 2 for field Transition");
        assert_eq!(v2_err(&[0x18]), "proto: wrong wireType = 0 for field Context");
    }
}
