//! etcd-raft's human-readable text forms of Raft data (`DescribeReady`,
//! `DescribeMessage`, `DescribeEntry`, ... in etcd's `util.go`), byte for byte.
//!
//! Logs and the etcd conformance tests compare these strings exactly, so every
//! detail follows etcd: node ids in hex (`None` for 0, `AppendThread` and
//! `ApplyThread` for the local storage threads), fields left out when zero,
//! two-space indentation of nested responses and multi-entry lists, Go's `%q`
//! for entry payloads by default and Go's `%v` for slices.
//!
//! Configuration change entries are shown as their operations (`v2 l3 r4`,
//! see [`conf_changes_to_string`]); a payload that does not decode shows the
//! error text etcd's gogoproto decoder would give.

mod gogo;

use std::fmt::Write as _;

pub use crate::go_fmt::{GoQuoted, go_quote};

use crate::go_fmt::GoSlice;
use crate::raftpb::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, conf_changes_to_string,
};
use crate::raw_node::Ready;
use crate::state::{ReadState, SoftState};

use crate::util::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};

/// Renders an entry's payload (etcd's `EntryFormatter`). `None` where one is
/// taken means Go's `%q` of the bytes ([`go_quote`]).
pub type EntryFormatter<'a> = &'a dyn Fn(&[u8]) -> String;

/// Writing to a `String` cannot fail, so the `fmt::Result` carries nothing.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// A node id as messages show it: `None` for 0, `AppendThread` and
/// `ApplyThread` for the local storage threads, otherwise lower-case hex
/// (etcd's `describeTarget`).
pub fn describe_target(id: u64) -> String {
    let mut out = String::new();
    write_target(&mut out, id);
    out
}

/// `Term:T[ Vote:V] Commit:C`; the vote is left out when 0.
pub fn describe_hard_state(hs: &HardState) -> String {
    let mut out = String::new();
    write_hard_state(&mut out, hs);
    out
}

/// `Lead:L State:StateX`.
pub fn describe_soft_state(ss: &SoftState) -> String {
    format!("Lead:{} State:{}", ss.lead, ss.raft_state)
}

/// `Voters:[..] VotersOutgoing:[..] Learners:[..] LearnersNext:[..] AutoLeave:b`,
/// slices as Go's `%v` prints them.
pub fn describe_conf_state(cs: &ConfState) -> String {
    let mut out = String::new();
    write_conf_state(&mut out, cs);
    out
}

/// `Index:I Term:T ConfState:<describe_conf_state>`.
pub fn describe_snapshot(snap: &Snapshot) -> String {
    let mut out = String::new();
    write_snapshot(&mut out, snap);
    out
}

/// Go's `%v` of a `[]ReadState`: `[{index [ctx bytes in decimal]} ...]`, e.g.
/// `[{1 [114 101 113]}]`.
pub fn describe_read_states(read_states: &[ReadState]) -> String {
    let mut out = String::new();
    write_read_states(&mut out, read_states);
    out
}

/// `term/index EntryType[ payload]`: the payload is `f` of the data for normal
/// entries (Go's `%q` when `f` is `None`) and the operations of configuration
/// changes; nothing follows the type when the rendering is empty (as for the
/// empty change that leaves a joint configuration).
pub fn describe_entry(e: &Entry, f: Option<EntryFormatter<'_>>) -> String {
    let mut out = String::new();
    write_entry(&mut out, e, f);
    out
}

/// Each entry as [`describe_entry`] shows it, each followed by a newline.
pub fn describe_entries(ents: &[Entry], f: Option<EntryFormatter<'_>>) -> String {
    let mut out = String::new();
    write_entries(&mut out, ents, f);
    out
}

/// One message, as `from->to Type Term:T Log:LT/I` and the fields that are set
/// (etcd's `DescribeMessage`). A single entry is shown inline; several, a
/// snapshot and nested responses go on indented lines of their own, so the
/// result can span lines (without a trailing newline).
pub fn describe_message(m: &Message, f: Option<EntryFormatter<'_>>) -> String {
    let mut out = String::new();
    write_message(&mut out, 0, m, f);
    out
}

/// A whole `Ready`: `Ready MustSync=b:` and then one section per non-empty
/// field, each line ending in a newline; `<empty Ready>` when nothing is set.
pub fn describe_ready(rd: &Ready, f: Option<EntryFormatter<'_>>) -> String {
    let mut body = String::new();
    if let Some(ss) = &rd.soft_state {
        body.push_str(&describe_soft_state(ss));
        body.push('\n');
    }
    if let Some(hs) = &rd.hard_state {
        body.push_str("HardState ");
        write_hard_state(&mut body, hs);
        body.push('\n');
    }
    if !rd.read_states.is_empty() {
        body.push_str("ReadStates ");
        write_read_states(&mut body, &rd.read_states);
        body.push('\n');
    }
    if !rd.entries.is_empty() {
        body.push_str("Entries:\n");
        write_entries(&mut body, &rd.entries, f);
    }
    if let Some(snap) = &rd.snapshot {
        body.push_str("Snapshot ");
        write_snapshot(&mut body, snap);
        body.push('\n');
    }
    if !rd.committed_entries.is_empty() {
        body.push_str("CommittedEntries:\n");
        write_entries(&mut body, &rd.committed_entries, f);
    }
    if !rd.messages.is_empty() {
        body.push_str("Messages:\n");
        for m in &rd.messages {
            write_message(&mut body, 0, m, f);
            body.push('\n');
        }
    }
    if body.is_empty() {
        return "<empty Ready>".to_string();
    }
    format!("Ready MustSync={}:\n{body}", rd.must_sync)
}

/// The name Go's `String()` gives a message type: the proto name, or the
/// number for a value outside the enum.
pub fn message_type_name(msg_type: i32) -> String {
    let mut out = String::new();
    write_message_type(&mut out, msg_type);
    out
}

/// The name Go's `String()` gives an entry type, as [`message_type_name`].
pub fn entry_type_name(entry_type: i32) -> String {
    let mut out = String::new();
    write_entry_type(&mut out, entry_type);
    out
}

// The enums' variants carry etcd's proto names, so `Debug` prints them.
fn write_message_type(out: &mut String, raw: i32) {
    match MessageType::try_from(raw) {
        Ok(t) => put!(out, "{t:?}"),
        Err(_) => put!(out, "{raw}"),
    }
}

fn write_entry_type(out: &mut String, raw: i32) {
    match EntryType::try_from(raw) {
        Ok(t) => put!(out, "{t:?}"),
        Err(_) => put!(out, "{raw}"),
    }
}

fn write_target(out: &mut String, id: u64) {
    match id {
        0 => out.push_str("None"),
        LOCAL_APPEND_THREAD => out.push_str("AppendThread"),
        LOCAL_APPLY_THREAD => out.push_str("ApplyThread"),
        id => put!(out, "{id:x}"),
    }
}

fn write_hard_state(out: &mut String, hs: &HardState) {
    put!(out, "Term:{}", hs.term);
    if hs.vote != 0 {
        put!(out, " Vote:{}", hs.vote);
    }
    put!(out, " Commit:{}", hs.commit);
}

fn write_conf_state(out: &mut String, cs: &ConfState) {
    put!(
        out,
        "Voters:{} VotersOutgoing:{} Learners:{} LearnersNext:{} AutoLeave:{}",
        GoSlice(&cs.voters),
        GoSlice(&cs.voters_outgoing),
        GoSlice(&cs.learners),
        GoSlice(&cs.learners_next),
        cs.auto_leave
    );
}

fn write_snapshot(out: &mut String, snap: &Snapshot) {
    let m = &snap.metadata;
    put!(out, "Index:{} Term:{} ConfState:", m.index, m.term);
    write_conf_state(out, &m.conf_state);
}

fn write_read_states(out: &mut String, read_states: &[ReadState]) {
    out.push('[');
    for (i, rs) in read_states.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        put!(out, "{{{} {}}}", rs.index, GoSlice(&rs.request_ctx));
    }
    out.push(']');
}

fn write_entries(out: &mut String, ents: &[Entry], f: Option<EntryFormatter<'_>>) {
    for e in ents {
        write_entry(out, e, f);
        out.push('\n');
    }
}

fn write_entry(out: &mut String, e: &Entry, f: Option<EntryFormatter<'_>>) {
    put!(out, "{}/{} ", e.term, e.index);
    // An unset type reads as EntryNormal, as Go's GetType does.
    let raw_type = e.entry_type.unwrap_or_default();
    write_entry_type(out, raw_type);
    let formatted = match EntryType::try_from(raw_type) {
        Ok(EntryType::EntryNormal) => match f {
            Some(f) => f(&e.data),
            None => go_quote(&e.data),
        },
        Ok(EntryType::EntryConfChange) => match gogo::decode_conf_change_v1(&e.data) {
            Ok(single) => conf_changes_to_string(&[single]),
            Err(err) => err.to_string(),
        },
        Ok(EntryType::EntryConfChangeV2) => match gogo::decode_conf_change_v2(&e.data) {
            Ok(changes) => conf_changes_to_string(&changes),
            Err(err) => err.to_string(),
        },
        Err(_) => String::new(),
    };
    if !formatted.is_empty() {
        out.push(' ');
        out.push_str(&formatted);
    }
}

/// Pushes `depth` levels of two-space indentation.
fn push_indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_message(out: &mut String, depth: usize, m: &Message, f: Option<EntryFormatter<'_>>) {
    push_indent(out, depth);
    write_target(out, m.from);
    out.push_str("->");
    write_target(out, m.to);
    out.push(' ');
    write_message_type(out, m.msg_type);
    put!(out, " Term:{} Log:{}/{}", m.term, m.log_term, m.index);
    if m.reject {
        put!(out, " Rejected (Hint: {})", m.reject_hint);
    }
    if m.commit != 0 {
        put!(out, " Commit:{}", m.commit);
    }
    if m.vote != 0 {
        put!(out, " Vote:{}", m.vote);
    }
    match m.entries.as_slice() {
        [] => {}
        [e] => {
            out.push_str(" Entries:[");
            write_entry(out, e, f);
            out.push(']');
        }
        ents => {
            out.push_str(" Entries:[");
            for e in ents {
                out.push('\n');
                push_indent(out, depth + 1);
                write_entry(out, e, f);
            }
            out.push('\n');
            push_indent(out, depth);
            out.push(']');
        }
    }
    if let Some(snap) = m.snapshot.as_ref().filter(|s| !s.is_empty()) {
        out.push('\n');
        push_indent(out, depth + 1);
        out.push_str("Snapshot: ");
        write_snapshot(out, snap);
    }
    if !m.responses.is_empty() {
        out.push_str(" Responses:[");
        for r in &m.responses {
            out.push('\n');
            write_message(out, depth + 1, r, f);
        }
        out.push('\n');
        push_indent(out, depth);
        out.push(']');
    }
}

#[cfg(test)]
mod tests;
