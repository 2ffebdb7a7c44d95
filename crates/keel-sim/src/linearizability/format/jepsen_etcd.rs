//! The Jepsen etcd logs (`jepsen/etcd_NNN.log` of Porcupine's test data), for
//! [`RegisterModel`].
//!
//! One event per line, in real-time order; the line number is the time. Fields are separated
//! by any whitespace:
//!
//! ```text
//! INFO  jepsen.util - <process> <type> <f> <value>
//! ```
//!
//! `<type>` is `:invoke`, `:ok`, `:fail` or `:info`; `<f>` is `:read`, `:write` or `:cas`;
//! `<value>` is `nil`, an integer, `[from to]` or `:timed-out`. Meanings:
//!
//! | line | meaning |
//! |---|---|
//! | `P :invoke :read nil` / `:write V` / `:cas [A B]` | call |
//! | `P :ok :read nil` / `:ok :read V` | the read returned nil / V |
//! | `P :ok :write V` | the write returned |
//! | `P :ok :cas [A B]` | the cas returned true: it swapped |
//! | `P :fail :cas [A B]` | the cas returned false: a definite result, the value was not `A` |
//! | `P :fail :read ...` | the read returned with an unknown result |
//! | `P :fail :write ...`, `P :fail :cas :timed-out` | did not happen: left out of the history |
//! | `P :info <f> ...` | indeterminate: the operation never returns (may or may not happen) |
//!
//! Lines whose process is `:nemesis` are not client operations and are skipped. A return must
//! repeat its call's function and arguments.

use super::{HistoryBuilder, ParseError, ParseErrorKind, line_time, numbered_lines};
use crate::linearizability::Operation;
use crate::linearizability::models::{RegisterInput, RegisterOutput};

#[cfg(doc)]
use crate::linearizability::models::RegisterModel;

/// The `<value>` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Nil,
    Int(i64),
    Pair(i64, i64),
    TimedOut,
}

/// Parses a Jepsen etcd log into register operations.
pub fn parse(text: &str) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ParseError> {
    let mut history = HistoryBuilder::new();
    for (line, content) in numbered_lines(text) {
        let fields: Vec<&str> = content.split_whitespace().collect();
        if fields.len() < 7 || fields[..3] != ["INFO", "jepsen.util", "-"] {
            return Err(ParseError::syntax(
                line,
                "expected `INFO jepsen.util - <process> <type> <f> <value>`",
            ));
        }
        if fields[3] == ":nemesis" {
            continue;
        }
        let process: u64 = fields[3].parse().map_err(|_| {
            ParseError::syntax(
                line,
                format!("process `{}` is not a non-negative integer", fields[3]),
            )
        })?;
        let f = fields[5];
        if !matches!(f, ":read" | ":write" | ":cas") {
            return Err(ParseError::syntax(
                line,
                format!("function `{f}` is not :read, :write or :cas"),
            ));
        }
        let value = parse_value(line, &fields[6..].join(" "))?;
        let time = line_time(line);
        match fields[4] {
            ":invoke" => history.invoke(line, process, invocation(line, f, value)?, time)?,
            ":ok" => {
                let output = ok_output(line, &history, process, f, value)?;
                history.complete(line, process, Some(output), time);
            }
            ":fail" => {
                let (input, open) = history.open_call(line, process)?;
                check_function(open.line, line, input, f)?;
                match (*input, value) {
                    (RegisterInput::Read, _) => history.complete(line, process, None, time),
                    (RegisterInput::Cas { from, to }, Value::Pair(a, b)) => {
                        check_args(open.line, line, (from, to) == (a, b))?;
                        history.complete(line, process, Some(RegisterOutput::Cas(false)), time);
                    }
                    (RegisterInput::Write(v), Value::Int(w)) => {
                        check_args(open.line, line, v == w)?;
                        history.drop_open(process);
                    }
                    (_, Value::TimedOut) => history.drop_open(process),
                    _ => return Err(mismatch(open.line, line, "unexpected value for :fail")),
                }
            }
            ":info" => {
                let (input, open) = history.open_call(line, process)?;
                check_function(open.line, line, input, f)?;
                history.abandon(process);
            }
            other => {
                return Err(ParseError::syntax(
                    line,
                    format!("type `{other}` is not :invoke, :ok, :fail or :info"),
                ));
            }
        }
    }
    Ok(history.finish())
}

fn parse_value(line: usize, text: &str) -> Result<Value, ParseError> {
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| ParseError::syntax(line, format!("value `{text}` is not understood")))
    };
    match text {
        "nil" => Ok(Value::Nil),
        ":timed-out" => Ok(Value::TimedOut),
        _ => match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(inner) => {
                let parts: Vec<&str> = inner.split_whitespace().collect();
                match parts[..] {
                    [a, b] => Ok(Value::Pair(int(a)?, int(b)?)),
                    _ => Err(ParseError::syntax(line, format!("`{text}` is not `[from to]`"))),
                }
            }
            None => int(text).map(Value::Int),
        },
    }
}

fn invocation(line: usize, f: &str, value: Value) -> Result<RegisterInput, ParseError> {
    match (f, value) {
        (":read", Value::Nil) => Ok(RegisterInput::Read),
        (":write", Value::Int(v)) => Ok(RegisterInput::Write(v)),
        (":cas", Value::Pair(from, to)) => Ok(RegisterInput::Cas { from, to }),
        _ => Err(ParseError::syntax(line, format!("bad argument for an :invoke of {f}"))),
    }
}

fn ok_output(
    line: usize,
    history: &HistoryBuilder<RegisterInput, RegisterOutput>,
    process: u64,
    f: &str,
    value: Value,
) -> Result<RegisterOutput, ParseError> {
    let (input, open) = history.open_call(line, process)?;
    check_function(open.line, line, input, f)?;
    match (*input, value) {
        (RegisterInput::Read, Value::Nil) => Ok(RegisterOutput::Read(None)),
        (RegisterInput::Read, Value::Int(v)) => Ok(RegisterOutput::Read(Some(v))),
        (RegisterInput::Write(v), Value::Int(w)) => {
            check_args(open.line, line, v == w)?;
            Ok(RegisterOutput::Written)
        }
        (RegisterInput::Cas { from, to }, Value::Pair(a, b)) => {
            check_args(open.line, line, (from, to) == (a, b))?;
            Ok(RegisterOutput::Cas(true))
        }
        _ => Err(mismatch(open.line, line, "unexpected value for :ok")),
    }
}

fn check_function(
    invoke_line: usize,
    line: usize,
    input: &RegisterInput,
    f: &str,
) -> Result<(), ParseError> {
    let called = match input {
        RegisterInput::Read => ":read",
        RegisterInput::Write(_) => ":write",
        RegisterInput::Cas { .. } => ":cas",
    };
    if called == f {
        Ok(())
    } else {
        Err(mismatch(invoke_line, line, &format!("function {f}, but {called} was called")))
    }
}

fn check_args(invoke_line: usize, line: usize, same: bool) -> Result<(), ParseError> {
    if same { Ok(()) } else { Err(mismatch(invoke_line, line, "other arguments")) }
}

fn mismatch(invoke_line: usize, line: usize, detail: &str) -> ParseError {
    ParseError { line, kind: ParseErrorKind::Mismatch { invoke_line, detail: detail.to_owned() } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("INFO  jepsen.util - {l}\n")).collect()
    }

    #[test]
    fn pairs_events_and_reads_values() {
        let text = log(&[
            "0\t:invoke\t:write\t3",
            "1\t:invoke\t:cas\t[3 4]",
            "0\t:ok\t:write\t3",
            "1   :fail   :cas   [3 4]",
            "2\t:invoke\t:read\tnil",
            "2\t:ok\t:read\tnil",
            "3\t:invoke\t:cas\t[1 2]",
            "3\t:info\t:cas\t:timed-out",
            "4\t:invoke\t:read\tnil",
            "4\t:fail\t:read\t:timed-out",
        ]);
        let ops = parse(&text).unwrap();
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[0].input, RegisterInput::Write(3));
        assert_eq!((ops[0].call_time, ops[0].return_time), (1, Some(3)));
        assert_eq!(ops[1].output, Some(RegisterOutput::Cas(false)));
        assert_eq!(ops[2].output, Some(RegisterOutput::Read(None)));
        assert_eq!((ops[3].output, ops[3].return_time), (None, None));
        assert_eq!((ops[4].output, ops[4].return_time), (None, Some(10)));
    }

    #[test]
    fn failed_write_is_left_out() {
        let text = log(&["0 :invoke :write 1", "0 :fail :write 1", "1 :invoke :read nil"]);
        let ops = parse(&text).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].input, RegisterInput::Read);
        assert_eq!(ops[0].return_time, None);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let cases: &[(&str, usize)] = &[
            ("INFO jepsen.util - 0 :invoke :read nil\nhello\n", 2),
            ("INFO jepsen.util - x :invoke :read nil\n", 1),
            ("INFO jepsen.util - 0 :invoke :read nil\nINFO jepsen.util - 0 :ok :write 1\n", 2),
            ("INFO jepsen.util - 0 :invoke :cas [1 2]\nINFO jepsen.util - 0 :ok :cas [1 3]\n", 2),
            ("INFO jepsen.util - 0 :ok :read nil\n", 1),
            ("\nINFO jepsen.util - 0 :invoke :read 1\n", 2),
            ("INFO jepsen.util - 0 :invoke :cas [1 2 3]\n", 1),
            ("INFO jepsen.util - 0 :invoke :read nil\nINFO jepsen.util - 0 :invoke :read nil", 2),
            ("INFO jepsen.util - 0 :begin :read nil\n", 1),
        ];
        for (text, line) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err}");
        }
    }
}
