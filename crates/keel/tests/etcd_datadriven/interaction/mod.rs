//! etcd-raft's interaction environment (`rafttest.InteractionEnv`): whole
//! clusters of `RawNode`s driven through the DSL of etcd's
//! `testdata/*.txt` files.
//!
//! The environment owns the nodes (each with a `MemoryStorage`, the queues of
//! its storage threads and the history of its applied state), the global
//! queue of in-flight messages, and one output buffer that the handlers and
//! the nodes' loggers share, so that log lines interleave with the printed
//! `Ready`s and messages exactly where they happen.
//!
//! # Layout (as etcd's `interaction_env_handler_*.go`)
//! - `mod.rs` (this file): the environment, its output, the dispatch of one
//!   command (`Handle`), and argument parsing shared by the handlers.
//! - `add_nodes`: `add-nodes` and the snapshot-overriding storage.
//! - `process`: `process-ready`, `process-append-thread`,
//!   `process-apply-thread`, and the "appender" state machine.
//! - `deliver`: `deliver-msgs` and `stabilize`.
//! - `propose`: `propose` and `propose-conf-change`.
//! - `node_ops`: `campaign`, `tick-*`, `transfer-leadership`,
//!   `forget-leader`, `report-unreachable`, `send-snapshot`, `compact`,
//!   `set-randomized-election-timeout`.
//! - `inspect`: `raft-log`, `raft-state`, `status`, `log-level`.
//!
//! Errors come in two kinds, as in etcd: a malformed directive fails the
//! file (Go's `t.Fatal`, [`CmdError::Fatal`]); an error from a node or its
//! storage is part of the output ([`CmdError::Output`]).

mod add_nodes;
mod deliver;
mod inspect;
mod node_ops;
mod process;
mod propose;

use std::sync::{Arc, Mutex, PoisonError};

use keel::raftpb::{Message, Snapshot};
use keel::storage::MemoryStorage;
use keel::{CaptureLogger, Config, Level, RawNode};

use crate::datadriven::{CmdArg, Handler, TestData};
use add_nodes::EnvStorage;
use process::Thread;

/// A fresh environment for one file.
pub(crate) fn new_handler() -> Handler {
    let mut env = Env::new();
    Box::new(move |d| env.handle(d))
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CmdError {
    /// A node or storage error: printed as part of the output.
    Output(String),
    /// A malformed directive (or a broken invariant in the harness): fails
    /// the file, as Go's `t.Fatal` (or a panic) does.
    Fatal(String),
}

/// What a command handler returns.
pub(crate) type CmdResult = Result<(), CmdError>;

/// An output error from anything printable.
pub(crate) fn output_err(e: impl std::fmt::Display) -> CmdError {
    CmdError::Output(e.to_string())
}

/// A fatal error from anything printable.
pub(crate) fn fatal(e: impl std::fmt::Display) -> CmdError {
    CmdError::Fatal(e.to_string())
}

/// One member of the group (etcd's `rafttest.Node`).
pub(crate) struct Node {
    pub(crate) raw: RawNode<EnvStorage>,
    /// The storage the node reads, shared with `raw`.
    pub(crate) storage: MemoryStorage,
    pub(crate) config: Config,
    /// `MsgStorageAppend` messages for the append thread, oldest first.
    pub(crate) append_work: Vec<Message>,
    /// `MsgStorageApply` messages for the apply thread, oldest first.
    pub(crate) apply_work: Vec<Message>,
    /// The applied states, oldest first; the storage's snapshot is the last.
    pub(crate) history: Arc<Mutex<Vec<Snapshot>>>,
}

impl Node {
    /// The latest applied state.
    pub(crate) fn last_snapshot(&self) -> Snapshot {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.last().cloned().unwrap_or_default()
    }

    pub(crate) fn push_history(&self, snap: Snapshot) {
        self.history.lock().unwrap_or_else(PoisonError::into_inner).push(snap);
    }
}

/// The output buffer (etcd's `RedirectLogger`): the nodes log into it, the
/// handlers print into it, and at level NONE it drops everything.
#[derive(Clone, Default)]
pub(crate) struct Output {
    pub(crate) logger: CaptureLogger,
}

impl Output {
    /// Whether the level is NONE, which silences all output.
    pub(crate) fn quiet(&self) -> bool {
        self.logger.level().is_none()
    }

    /// Prints `s` unless quiet.
    pub(crate) fn write(&self, s: &str) {
        if !self.quiet() {
            self.logger.write_str(s);
        }
    }

    /// Prints `s` and a newline unless quiet (Go's `Fprintln`).
    pub(crate) fn writeln(&self, s: &str) {
        if !self.quiet() {
            self.logger.write_str(s);
            self.logger.write_str("\n");
        }
    }
}

/// The names of the log levels, in order; NONE silences everything.
pub(crate) const LEVEL_NAMES: [&str; 6] = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE"];

/// The level of a name in [`LEVEL_NAMES`] (`None` inside for NONE).
pub(crate) fn level_by_index(i: usize) -> Option<Level> {
    match i {
        0 => Some(Level::Debug),
        1 => Some(Level::Info),
        2 => Some(Level::Warn),
        3 => Some(Level::Error),
        4 => Some(Level::Fatal),
        _ => None,
    }
}

/// The interaction environment.
pub(crate) struct Env {
    pub(crate) nodes: Vec<Node>,
    /// Messages in flight between nodes, in the order they were sent.
    pub(crate) messages: Vec<Message>,
    pub(crate) output: Output,
}

impl Env {
    fn new() -> Env {
        Env { nodes: Vec::new(), messages: Vec::new(), output: Output::default() }
    }

    /// Runs one directive and returns its output (etcd's `Handle`).
    fn handle(&mut self, d: &TestData) -> Result<String, String> {
        self.output.logger.take();
        let res = match d.cmd.as_str() {
            // A place to set a debugger breakpoint.
            "_breakpoint" => Ok(()),
            "add-nodes" => self.handle_add_nodes(d),
            "campaign" => self.handle_campaign(d),
            "compact" => self.handle_compact(d),
            "deliver-msgs" => self.handle_deliver_msgs(d),
            "process-ready" => self.handle_process_ready(d),
            "process-append-thread" => self.handle_process_thread(d, Thread::Append),
            "process-apply-thread" => self.handle_process_thread(d, Thread::Apply),
            "log-level" => self.handle_log_level(d),
            "raft-log" => self.handle_raft_log(d),
            "raft-state" => self.handle_raft_state(),
            "set-randomized-election-timeout" => self.handle_set_randomized_election_timeout(d),
            "stabilize" => self.handle_stabilize(d),
            "status" => self.handle_status(d),
            "tick-election" => self.handle_tick_election(d),
            "tick-heartbeat" => self.handle_tick_heartbeat(d),
            "transfer-leadership" => self.handle_transfer_leadership(d),
            "forget-leader" => self.handle_forget_leader(d),
            // etcd ignores this handler's error.
            "send-snapshot" => match self.handle_send_snapshot(d) {
                Err(CmdError::Fatal(e)) => Err(CmdError::Fatal(e)),
                _ => Ok(()),
            },
            "propose" => self.handle_propose(d),
            "propose-conf-change" => self.handle_propose_conf_change(d),
            "report-unreachable" => self.handle_report_unreachable(d),
            _ => Err(CmdError::Output("unknown command".to_string())),
        };
        match res {
            Ok(()) => {}
            Err(CmdError::Fatal(e)) => return Err(e),
            // Errors are printed even when everything else is silenced.
            Err(CmdError::Output(e)) if self.output.quiet() => return Ok(e),
            Err(CmdError::Output(e)) => self.output.write(&e),
        }
        let out = self.output.logger.take();
        if out.is_empty() { Ok("ok".to_string()) } else { Ok(out) }
    }

    /// Runs `f` and re-prints what it printed indented by two spaces (etcd's
    /// `withIndent`).
    pub(crate) fn with_indent<R>(&mut self, f: impl FnOnce(&mut Env) -> R) -> R {
        let orig = self.output.logger.take();
        let r = f(self);
        let inner = self.output.logger.take();
        self.output.logger.write_str(&orig);
        for line in scan_lines(&inner) {
            self.output.logger.write_str(&format!("  {line}\n"));
        }
        r
    }

    /// The node at 0-based `idx`; out of range is a broken directive.
    pub(crate) fn node(&self, idx: usize) -> Result<&Node, CmdError> {
        let n = self.nodes.len();
        self.nodes
            .get(idx)
            .ok_or_else(|| fatal(format!("index out of range [{idx}] with length {n}")))
    }

    /// The node at 0-based `idx`, to drive it.
    pub(crate) fn node_mut(&mut self, idx: usize) -> Result<&mut Node, CmdError> {
        let n = self.nodes.len();
        self.nodes
            .get_mut(idx)
            .ok_or_else(|| fatal(format!("index out of range [{idx}] with length {n}")))
    }
}

/// Lines as Go's `bufio.Scanner` yields them.
fn scan_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> =
        text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect();
    if text.is_empty() || text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// Go's `strconv.Atoi`.
pub(crate) fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {}: invalid syntax", go_str(s)));
    }
    s.parse().map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_str(s)))
}

/// Go's `%q` of a string.
pub(crate) fn go_str(s: &str) -> String {
    keel::describe::go_quote(s.as_bytes())
}

/// Go's `strconv.ParseUint(s, 10, 64)`.
pub(crate) fn go_parse_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", go_str(s)));
    }
    s.parse().map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", go_str(s)))
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_str(s))),
    }
}

/// The first argument as a number (etcd's `firstAsInt`).
pub(crate) fn first_as_int(d: &TestData) -> Result<i64, CmdError> {
    let arg = d.cmd_args.first().ok_or_else(|| fatal("index out of range [0] with length 0"))?;
    go_atoi(&arg.key).map_err(fatal)
}

/// The first argument as a 0-based node index (etcd's `firstAsNodeIdx`).
pub(crate) fn first_as_node_idx(d: &TestData) -> Result<usize, CmdError> {
    let n = first_as_int(d)?;
    usize::try_from(n - 1).map_err(|_| fatal(format!("invalid node id {n}")))
}

/// Every argument without values as a 0-based node index (etcd's
/// `nodeIdxs`).
pub(crate) fn node_idxs(d: &TestData) -> Result<Vec<usize>, CmdError> {
    let mut idxs = Vec::new();
    for arg in d.cmd_args.iter().filter(|arg| arg.vals.is_empty()) {
        let n = go_atoi(&arg.key).map_err(fatal)?;
        idxs.push(usize::try_from(n - 1).map_err(|_| fatal(format!("invalid node id {n}")))?);
    }
    Ok(idxs)
}

/// The datadriven library's `CmdArg.Scan` into a `u64`.
pub(crate) fn scan_u64(arg: &CmdArg, i: usize) -> Result<u64, CmdError> {
    go_parse_u64(&arg.vals[i]).map_err(fatal)
}

/// `CmdArg.Scan` into an `int`.
pub(crate) fn scan_int(arg: &CmdArg, i: usize) -> Result<i64, CmdError> {
    go_atoi(&arg.vals[i]).map_err(fatal)
}

/// `CmdArg.Scan` into a `bool`.
pub(crate) fn scan_bool(arg: &CmdArg, i: usize) -> Result<bool, CmdError> {
    go_parse_bool(&arg.vals[i]).map_err(fatal)
}

/// The datadriven library's `ScanArgs` for one value: the first argument
/// named `key` must exist and have exactly one value.
pub(crate) fn scan_arg<'a>(d: &'a TestData, key: &str) -> Result<&'a str, CmdError> {
    let arg = d.arg(key).ok_or_else(|| fatal(format!("missing argument: {key}")))?;
    if arg.vals.len() != 1 {
        return Err(fatal(format!("{key}: got 1 destinations, but {} values", arg.vals.len())));
    }
    Ok(&arg.vals[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadriven::test_case as case;

    #[test]
    fn errors_print_even_when_quiet_and_ok_when_silent() {
        let mut h = new_handler();
        assert_eq!(h(&case("_breakpoint", "")).unwrap(), "ok");
        assert_eq!(h(&case("bogus", "")).unwrap(), "unknown command");
        assert_eq!(
            h(&case("log-level foo", "")).unwrap(),
            "log levels must be either of [DEBUG INFO WARN ERROR FATAL NONE]"
        );
        assert_eq!(h(&case("log-level none", "")).unwrap(), "ok");
        // Output is silenced, errors are not.
        assert_eq!(h(&case("add-nodes 1 voters=(1) index=2", "")).unwrap(), "ok");
        assert_eq!(
            h(&case("report-unreachable 1", "")).unwrap(),
            "must specify exactly two node indexes: node on which to report, and reported node"
        );
        assert_eq!(h(&case("log-level INFO", "")).unwrap(), "ok");
        assert_eq!(h(&case("raft-state", "")).unwrap(), "1: StateFollower (Voter) Term:0 Lead:0\n");
        assert_eq!(h(&case("process-append-thread 1", "")).unwrap(), "no append work to perform");
    }

    #[test]
    fn malformed_directives_fail_the_file() {
        let mut h = new_handler();
        assert!(h(&case("propose 1", "")).is_err());
        assert!(h(&case("campaign x", "")).is_err());
        assert!(h(&case("transfer-leadership from=1 to=2", "")).is_err());
        assert!(h(&case("deliver-msgs 1 type=MsgBogus", "")).is_err());
    }

    #[test]
    fn stabilize_restores_the_log_level() {
        let mut h = new_handler();
        h(&case("add-nodes 1 voters=(1) index=2", "")).unwrap();
        h(&case("campaign 1", "")).unwrap();
        let out = h(&case("stabilize log-level=none", "")).unwrap();
        assert_eq!(out, "ok");
        let out = h(&case("raft-log 1", "")).unwrap();
        assert_eq!(out, "1/3 EntryNormal \"\"\n");
    }
}
