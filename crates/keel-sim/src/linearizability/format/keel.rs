//! Keel's own history format: JSON lines, one event per line, for [`KvModel`].
//!
//! ```text
//! {"process":1,"type":"invoke","op":"put","key":"k","value":"v","time":100}
//! {"process":2,"type":"invoke","op":"get","key":"k","time":105}
//! {"process":1,"type":"ok","time":110}
//! {"process":2,"type":"ok","value":"v","time":120}
//! {"process":3,"type":"invoke","op":"cas","key":"k","expected":"v","value":"w","time":130}
//! {"process":3,"type":"ok","swapped":true,"time":140}
//! {"process":4,"type":"invoke","op":"delete","key":"k","time":150}
//! {"process":4,"type":"info","time":160}
//! ```
//!
//! Fields (unknown fields are an error, so typos do not pass silently):
//!
//! - `process` (every line): the client id, a non-negative integer; it pairs a return with
//!   its call.
//! - `type` (every line): `invoke`; `ok` (returned with a result); `fail` (definitely did not
//!   take effect: the operation is left out); `info` (indeterminate: it may or may not have
//!   taken effect, and never returns).
//! - `op` (on `invoke`; optional on returns): `get`, `put`, `delete` or `cas`. A return that
//!   gives it must repeat its call's.
//! - `key` (on `invoke`; optional on returns): a string. A return that gives it must repeat
//!   its call's.
//! - `value`: on the `invoke` of a `put` or `cas`, the value written (a string); on the `ok`
//!   of a `get`, the value read (a string, or `null` if the key was absent). Nowhere else.
//! - `expected` (on the `invoke` of a `cas`): the value the key must hold for the swap (a
//!   string, or `null`: the key must be absent).
//! - `swapped` (on the `ok` of a `cas`): `true` if it swapped, `false` if the key did not
//!   hold `expected`. (A cas that found another value is `ok` with `swapped: false`, not
//!   `fail`.)
//! - `time` (on every line, or on none): when the event happened, a non-negative integer in
//!   any unit; without it the line number is the time.
//!
//! An operation still open at the end of the file never returned (as after `info`): its
//! result is unknown and it may or may not have taken effect. A process may invoke again
//! after its `info` line. Events with explicit times need not be in time order across
//! processes, but a return may not precede its call. Blank lines are skipped.

use serde::{Deserialize, Deserializer};

use super::{HistoryBuilder, ParseError, ParseErrorKind, line_time, numbered_lines};
use crate::linearizability::Operation;
use crate::linearizability::models::{KvInput, KvOutput};

#[cfg(doc)]
use crate::linearizability::models::KvModel;

/// One line, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    process: u64,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    op: Option<OpName>,
    #[serde(default)]
    key: Option<String>,
    /// Outer `None`: field absent; `Some(None)`: `null`.
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    expected: Option<Option<String>>,
    #[serde(default)]
    swapped: Option<bool>,
    #[serde(default)]
    time: Option<u64>,
}

/// Tells a field given as `null` from a missing one.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpName {
    Get,
    Put,
    Delete,
    Cas,
}

impl OpName {
    fn of(input: &KvInput) -> Self {
        match input {
            KvInput::Get { .. } => OpName::Get,
            KvInput::Put { .. } => OpName::Put,
            KvInput::Delete { .. } => OpName::Delete,
            KvInput::Cas { .. } => OpName::Cas,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpName::Get => "get",
            OpName::Put => "put",
            OpName::Delete => "delete",
            OpName::Cas => "cas",
        }
    }
}

/// Parses a `keel` JSON-lines history into key-value operations.
pub fn parse(text: &str) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    let mut history = HistoryBuilder::new();
    let mut timed: Option<bool> = None;
    for (line, content) in numbered_lines(text) {
        let event: Event = serde_json::from_str(content)
            .map_err(|e| ParseError::syntax(line, json_error_message(&e)))?;
        let has_time = event.time.is_some();
        if *timed.get_or_insert(has_time) != has_time {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Time(
                    "`time` must be given on every line or on none".to_owned(),
                ),
            });
        }
        let time = event.time.unwrap_or_else(|| line_time(line));
        if event.kind == EventType::Invoke {
            history.invoke(line, event.process, invocation(line, &event)?, time)?;
            continue;
        }
        let (input, open) = history.open_call(line, event.process)?;
        let op = OpName::of(input);
        if event.op.is_some_and(|given| given != op) {
            return Err(mismatch(open.line, line, "another `op`"));
        }
        if event.key.as_deref().is_some_and(|key| key != input.key()) {
            return Err(mismatch(open.line, line, "another `key`"));
        }
        let call_time = history.ops[open.op].as_ref().map_or(0, |o| o.call_time);
        if time < call_time {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Time(format!(
                    "returns at time {time}, before its call at time {call_time} (line {})",
                    open.line
                )),
            });
        }
        match event.kind {
            EventType::Fail => {
                no_fields(line, &event, "a fail line")?;
                history.drop_open(event.process);
            }
            EventType::Info => {
                no_fields(line, &event, "an info line")?;
                history.abandon(event.process);
            }
            _ => {
                let output = result(line, op, &event)?;
                history.complete(line, event.process, Some(output), time);
            }
        }
    }
    Ok(history.finish())
}

fn invocation(line: usize, event: &Event) -> Result<KvInput, ParseError> {
    let op = event.op.ok_or_else(|| ParseError::syntax(line, "an invoke needs `op`"))?;
    let key = event.key.clone().ok_or_else(|| ParseError::syntax(line, "an invoke needs `key`"))?;
    if event.swapped.is_some() {
        return Err(ParseError::syntax(line, "`swapped` belongs on the return of a cas"));
    }
    let value = || match &event.value {
        Some(Some(value)) => Ok(value.clone()),
        _ => Err(ParseError::syntax(line, format!("a {} needs a string `value`", op.name()))),
    };
    if op != OpName::Cas && event.expected.is_some() {
        return Err(ParseError::syntax(line, "only a cas has `expected`"));
    }
    if matches!(op, OpName::Get | OpName::Delete) && event.value.is_some() {
        return Err(ParseError::syntax(line, format!("a {} invoke has no `value`", op.name())));
    }
    Ok(match op {
        OpName::Get => KvInput::Get { key },
        OpName::Delete => KvInput::Delete { key },
        OpName::Put => KvInput::Put { key, value: value()? },
        OpName::Cas => {
            let expected = event.expected.clone().ok_or_else(|| {
                ParseError::syntax(line, "a cas needs `expected` (a string, or null for absent)")
            })?;
            KvInput::Cas { key, expected, new: value()? }
        }
    })
}

fn result(line: usize, op: OpName, event: &Event) -> Result<KvOutput, ParseError> {
    if event.expected.is_some() {
        return Err(ParseError::syntax(line, "`expected` belongs on the invoke of a cas"));
    }
    match op {
        OpName::Get => {
            if event.swapped.is_some() {
                return Err(ParseError::syntax(line, "a get returns no `swapped`"));
            }
            let value = event.value.clone().ok_or_else(|| {
                ParseError::syntax(line, "a get's ok needs `value` (a string, or null if absent)")
            })?;
            Ok(KvOutput::Get(value))
        }
        OpName::Put | OpName::Delete => {
            if event.value.is_some() || event.swapped.is_some() {
                return Err(ParseError::syntax(
                    line,
                    format!("a {}'s ok has no `value` or `swapped`", op.name()),
                ));
            }
            Ok(KvOutput::Written)
        }
        OpName::Cas => {
            if event.value.is_some() {
                return Err(ParseError::syntax(line, "a cas's ok has no `value`"));
            }
            let swapped = event
                .swapped
                .ok_or_else(|| ParseError::syntax(line, "a cas's ok needs `swapped`"))?;
            Ok(KvOutput::Cas(swapped))
        }
    }
}

fn no_fields(line: usize, event: &Event, what: &str) -> Result<(), ParseError> {
    if event.value.is_some() || event.expected.is_some() || event.swapped.is_some() {
        return Err(ParseError::syntax(line, format!("{what} has no result fields")));
    }
    Ok(())
}

fn mismatch(invoke_line: usize, line: usize, detail: &str) -> ParseError {
    ParseError { line, kind: ParseErrorKind::Mismatch { invoke_line, detail: detail.to_owned() } }
}

/// serde_json's message without its "at line 1 column N" (each line is parsed alone), with
/// the column kept.
fn json_error_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => &message,
    };
    format!("invalid event: {message} (column {})", error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_event() {
        let text = r#"
{"process":1,"type":"invoke","op":"put","key":"k","value":"v","time":100}
{"process":2,"type":"invoke","op":"get","key":"k","time":105}
{"process":1,"type":"ok","op":"put","time":110}
{"process":2,"type":"ok","value":null,"time":120}
{"process":3,"type":"invoke","op":"cas","key":"k","expected":null,"value":"w","time":130}
{"process":3,"type":"ok","swapped":false,"time":140}
{"process":4,"type":"invoke","op":"delete","key":"k","time":150}
{"process":4,"type":"info","time":160}
{"process":4,"type":"invoke","op":"put","key":"j","value":"x","time":170}
{"process":4,"type":"fail","time":180}
{"process":5,"type":"invoke","op":"get","key":"k","time":190}
"#;
        let ops = parse(text).unwrap();
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[0].input, KvInput::Put { key: "k".into(), value: "v".into() });
        assert_eq!((ops[0].call_time, ops[0].return_time), (100, Some(110)));
        assert_eq!(ops[1].output, Some(KvOutput::Get(None)));
        assert_eq!(ops[2].input, KvInput::Cas { key: "k".into(), expected: None, new: "w".into() });
        assert_eq!(ops[2].output, Some(KvOutput::Cas(false)));
        assert_eq!((&ops[3].output, ops[3].return_time), (&None, None));
        assert_eq!(ops[4].input, KvInput::Get { key: "k".into() });
        assert_eq!(ops[4].return_time, None);
    }

    #[test]
    fn line_numbers_are_times_without_time_fields() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"op\":\"get\",\"key\":\"k\"}\n\n\
                    {\"process\":1,\"type\":\"ok\",\"value\":\"v\"}\n";
        let ops = parse(text).unwrap();
        assert_eq!((ops[0].call_time, ops[0].return_time), (1, Some(3)));
        assert_eq!(ops[0].output, Some(KvOutput::Get(Some("v".into()))));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let get = r#"{"process":1,"type":"invoke","op":"get","key":"k"}"#;
        let cases = [
            format!("{get}\nnot json"),
            format!("{get}\n{{\"process\":1,\"type\":\"ok\"}}"),
            format!("{get}\n{{\"process\":1,\"type\":\"ok\",\"value\":\"v\",\"op\":\"put\"}}"),
            format!("{get}\n{{\"process\":1,\"type\":\"ok\",\"value\":\"v\",\"key\":\"j\"}}"),
            format!("{get}\n{{\"process\":1,\"type\":\"ok\",\"value\":\"v\",\"time\":3}}"),
            format!("{get}\n{{\"process\":2,\"type\":\"ok\",\"value\":\"v\"}}"),
            format!("{get}\n{get}"),
            format!("{get}\n{{\"process\":1,\"type\":\"ok\",\"valeu\":\"v\"}}"),
            format!("{get}\n{{\"process\":1,\"type\":\"done\"}}"),
            "{\"process\":1,\"type\":\"invoke\",\"op\":\"put\",\"key\":\"k\"}".to_owned(),
            "{\"process\":1,\"type\":\"invoke\",\"op\":\"cas\",\"key\":\"k\",\"value\":\"v\"}"
                .to_owned(),
            "{\"process\":1,\"type\":\"invoke\",\"op\":\"get\",\"key\":\"k\",\"value\":\"v\"}"
                .to_owned(),
            "{\"process\":1,\"type\":\"invoke\",\"op\":\"get\"}".to_owned(),
            "{\"process\":-1,\"type\":\"invoke\",\"op\":\"get\",\"key\":\"k\"}".to_owned(),
        ];
        let lines = [2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1];
        for (text, line) in cases.iter().zip(lines) {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
    }

    #[test]
    fn a_call_before_the_same_process_returned_is_an_error() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"op\":\"put\",\"key\":\"k\",\
                    \"value\":\"a\",\"time\":10}\n\
                    {\"process\":1,\"type\":\"ok\",\"time\":20}\n\
                    {\"process\":1,\"type\":\"invoke\",\"op\":\"get\",\"key\":\"k\",\"time\":15}\n\
                    {\"process\":1,\"type\":\"ok\",\"value\":null,\"time\":25}";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.to_string().contains("before its previous operation returned"), "{err}");
    }

    #[test]
    fn a_return_before_its_call_is_an_error() {
        let text = "{\"process\":1,\"type\":\"invoke\",\"op\":\"get\",\"key\":\"k\",\"time\":9}\n\
                    {\"process\":1,\"type\":\"ok\",\"value\":null,\"time\":8}";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(matches!(err.kind, ParseErrorKind::Time(_)), "{err}");
    }
}
