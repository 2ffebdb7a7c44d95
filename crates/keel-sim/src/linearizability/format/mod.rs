//! Parsers for history files: one event per line, paired into [`Operation`]s by process.
//!
//! - [`keel`]: Keel's own JSON-lines format, for [`KvModel`](super::models::KvModel).
//! - [`jepsen_etcd`]: the Jepsen etcd logs, for [`RegisterModel`](super::models::RegisterModel).
//! - [`porcupine_kv`]: Porcupine's KV logs, for
//!   [`AppendKvModel`](super::models::AppendKvModel).
//!
//! All three share the pairing rules: a process has at most one open operation; a return
//! closes the open operation of its process and must agree with its call. An operation left
//! open at the end of the file (or closed by an indeterminate `info` line) never returned: its
//! output is unknown and it may or may not have taken effect. Operations are numbered in call
//! order. Malformed input is a [`ParseError`] naming the line; parsing never panics.

pub mod jepsen_etcd;
pub mod keel;
pub mod porcupine_kv;

use std::collections::BTreeMap;

use super::Operation;

/// A history file that cannot be read as its format says, and the line where that shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// The ways a history file can be malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The line does not match the format's grammar.
    #[error("{0}")]
    Syntax(String),
    /// A process called while its previous operation was still open.
    #[error("process {process} invokes while its operation from line {open_line} is still open")]
    InvokeWhileOpen {
        /// The process.
        process: u64,
        /// The line of the open call.
        open_line: usize,
    },
    /// A return (or `info`/`fail`) for a process with no open operation.
    #[error("process {process} returns but has no open operation")]
    ReturnWithoutInvoke {
        /// The process.
        process: u64,
    },
    /// A return that disagrees with its call (another function, key or argument).
    #[error("does not match the invocation on line {invoke_line}: {detail}")]
    Mismatch {
        /// The line of the call.
        invoke_line: usize,
        /// What differs.
        detail: String,
    },
    /// Bad or inconsistent times.
    #[error("{0}")]
    Time(String),
}

impl ParseError {
    fn syntax(line: usize, message: impl Into<String>) -> Self {
        ParseError { line, kind: ParseErrorKind::Syntax(message.into()) }
    }
}

/// An open operation: its index in the history being built and the line of its call.
#[derive(Debug, Clone, Copy)]
struct Open {
    op: usize,
    line: usize,
}

/// Pairs call and return lines by process into operations.
struct HistoryBuilder<I, O> {
    /// `None`: an operation that failed (did not happen) and is left out.
    ops: Vec<Option<Operation<I, O>>>,
    open: BTreeMap<u64, Open>,
    /// Each process's last return: time and line. A process has one operation open at
    /// a time, so its next call cannot come before.
    returned: BTreeMap<u64, (u64, usize)>,
}

impl<I, O> HistoryBuilder<I, O> {
    fn new() -> Self {
        HistoryBuilder { ops: Vec::new(), open: BTreeMap::new(), returned: BTreeMap::new() }
    }

    fn invoke(&mut self, line: usize, process: u64, input: I, time: u64) -> Result<(), ParseError> {
        if let Some(open) = self.open.get(&process) {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::InvokeWhileOpen { process, open_line: open.line },
            });
        }
        if let Some(&(returned, returned_line)) = self.returned.get(&process)
            && time < returned
        {
            return Err(ParseError {
                line,
                kind: ParseErrorKind::Time(format!(
                    "process {process} calls at time {time}, before its previous operation \
                     returned at time {returned} (line {returned_line})"
                )),
            });
        }
        self.open.insert(process, Open { op: self.ops.len(), line });
        self.ops.push(Some(Operation {
            client_id: process,
            input,
            call_time: time,
            output: None,
            return_time: None,
        }));
        Ok(())
    }

    /// The open operation of `process`, with the line of its call.
    fn open_call(&self, line: usize, process: u64) -> Result<(&I, Open), ParseError> {
        let open = self
            .open
            .get(&process)
            .copied()
            .ok_or(ParseError { line, kind: ParseErrorKind::ReturnWithoutInvoke { process } })?;
        let op = self.ops[open.op].as_ref().expect("open operations are never dropped");
        Ok((&op.input, open))
    }

    /// Closes the open operation of `process` (which must exist) with a return on `line`.
    fn complete(&mut self, line: usize, process: u64, output: Option<O>, time: u64) {
        if let Some(open) = self.open.remove(&process)
            && let Some(op) = self.ops[open.op].as_mut()
        {
            op.output = output;
            op.return_time = Some(time);
            self.returned.insert(process, (time, line));
        }
    }

    /// The open operation of `process` will never return: it stays indeterminate.
    fn abandon(&mut self, process: u64) {
        self.open.remove(&process);
    }

    /// The open operation of `process` failed and did not happen: it leaves the history.
    fn drop_open(&mut self, process: u64) {
        if let Some(open) = self.open.remove(&process) {
            self.ops[open.op] = None;
        }
    }

    fn finish(self) -> Vec<Operation<I, O>> {
        self.ops.into_iter().flatten().collect()
    }
}

/// Lines of `text`, numbered from 1, without blank ones.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line.trim())).filter(|(_, l)| !l.is_empty())
}

fn line_time(line: usize) -> u64 {
    line as u64
}
