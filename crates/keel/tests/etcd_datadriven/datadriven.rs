//! A datadriven test-file runner with the semantics of Go's
//! `github.com/cockroachdb/datadriven` (v1.0.x), which etcd-raft's test
//! files are written for. (The crates.io `datadriven` crate keeps arguments
//! in a hash map; etcd's files depend on their order.)
//!
//! A file is a sequence of cases:
//!
//! ```text
//! # a comment
//! cmd arg key=val key=(v1, v2) \
//!     more-args
//! input lines
//! ----
//! expected output, up to the first blank line
//! ```
//!
//! - Directive lines are trimmed; lines starting with `#` (outside input and
//!   expected output) are comments, blank lines are skipped, and a trailing
//!   `\` joins the next line (with one space).
//! - Arguments are an ordered list of [`CmdArg`]s: a bare word is a key with
//!   no values, `key=val` one value, `key=(a, b)` several (parentheses may
//!   nest inside a value).
//! - The input is everything up to a line that is exactly `----`, trimmed.
//! - The expected output runs to the first blank line; if the line after
//!   `----` is `----` again, it may contain blank lines and ends at a
//!   `----` line followed by another `----` line.
//! - The handler's output gets a newline appended if it lacks one, then must
//!   equal the expected output byte for byte. The first mismatch ends the
//!   file, as the Go library does.
//! - In rewrite mode the file is re-emitted verbatim except for the expected
//!   outputs, which become the actual ones (in the double-separator form iff
//!   the output contains a blank line).
//!
//! `subtest` directives are not special-cased (etcd's files have none).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// One argument of a directive: `key`, `key=val` or `key=(v1, v2, ...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CmdArg {
    pub(crate) key: String,
    pub(crate) vals: Vec<String>,
}

/// The Go library's `CmdArg.String`: `key`, `key=val`, `key=(a, b)`.
impl fmt::Display for CmdArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vals.len() {
            0 => f.write_str(&self.key),
            1 => write!(f, "{}={}", self.key, self.vals[0]),
            _ => write!(f, "{}=({})", self.key, self.vals.join(", ")),
        }
    }
}

/// One test case of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TestData {
    /// `file:line` of the directive, for messages.
    pub(crate) pos: String,
    /// The directive as written (continuation lines joined).
    pub(crate) directive: String,
    /// The command: the first word of the directive.
    pub(crate) cmd: String,
    /// The arguments, in order.
    pub(crate) cmd_args: Vec<CmdArg>,
    /// The lines between the directive and `----`, trimmed.
    pub(crate) input: String,
    /// The expected output (each line newline-terminated).
    pub(crate) expected: String,
}

impl TestData {
    /// The first argument named `key`.
    pub(crate) fn arg(&self, key: &str) -> Option<&CmdArg> {
        self.cmd_args.iter().find(|arg| arg.key == key)
    }

    /// The Go library's `ScanArgs` for one boolean destination: the first
    /// argument named `key` must exist and have exactly one value, parsed
    /// as Go's `strconv.ParseBool` does.
    pub(crate) fn scan_bool_arg(&self, key: &str) -> Result<bool, String> {
        let arg = self.arg(key).ok_or_else(|| format!("missing argument: {key}"))?;
        if arg.vals.len() != 1 {
            return Err(format!("{key}: got 1 destinations, but {} values", arg.vals.len()));
        }
        parse_go_bool(&arg.vals[0])
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: decimal digits only.
pub(crate) fn parse_go_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse().map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// A test case from a directive line and its input, for the handlers'
/// unit tests.
#[cfg(test)]
pub(crate) fn test_case(directive: &str, input: &str) -> TestData {
    let (cmd, cmd_args) = parse_line(directive).expect("a valid directive");
    TestData { cmd, cmd_args, input: input.to_string(), ..TestData::default() }
}

/// Parses a directive line into its command and arguments. An empty line
/// gives an empty command.
pub(crate) fn parse_line(line: &str) -> Result<(String, Vec<CmdArg>), String> {
    let orig = line.trim();
    let mut rest = orig;
    if rest.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let fail = |rest: &str| {
        let column = orig.len() - rest.len() + 1;
        Err(format!("cannot parse directive at column {column}: {orig}"))
    };
    let (cmd, after) = split_at_any(rest, &[' ']);
    rest = after.trim();
    let mut args = Vec::new();
    while !rest.is_empty() {
        let (key, after) = split_at_any(rest, &[' ', '=']);
        if key.is_empty() {
            return fail(rest);
        }
        rest = after;
        let mut arg = CmdArg { key: key.to_string(), vals: Vec::new() };
        if let Some(after_eq) = rest.strip_prefix('=') {
            rest = after_eq;
            if rest.is_empty() || rest.starts_with(' ') {
                arg.vals.push(String::new());
            } else if let Some(after_paren) = rest.strip_prefix('(') {
                rest = after_paren;
                loop {
                    let Some(end) = value_end(rest) else {
                        return fail(rest);
                    };
                    arg.vals.push(rest[..end].to_string());
                    let done = rest.as_bytes()[end] == b')';
                    rest = rest[end + 1..].trim();
                    if done {
                        break;
                    }
                }
            } else {
                let (val, after) = split_at_any(rest, &[' ']);
                arg.vals.push(val.to_string());
                rest = after;
            }
        }
        args.push(arg);
        rest = rest.trim();
    }
    Ok((cmd.to_string(), args))
}

/// Splits `s` before the first of `chars` (or at its end).
fn split_at_any<'a>(s: &'a str, chars: &[char]) -> (&'a str, &'a str) {
    let idx = s.find(chars).unwrap_or(s.len());
    s.split_at(idx)
}

/// The byte offset of the `,` or `)` that ends the value at the start of
/// `s`, skipping balanced parentheses; `None` if there is none.
fn value_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            ')' | ',' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Lines as Go's `bufio.Scanner` splits them: on `\n`, without a trailing
/// `\r`, and without an empty last line after a final newline.
fn scan_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> =
        text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect();
    if text.is_empty() || text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// Whether some line of `s` is blank (the Go library's `hasBlankLine`).
fn has_blank_line(s: &str) -> bool {
    scan_lines(s).iter().any(|line| line.trim().is_empty())
}

/// Reads the cases of one file, re-emitting what it reads when rewriting.
struct Reader<'a> {
    source_name: &'a str,
    lines: Vec<&'a str>,
    /// Index of the next line to scan.
    next_line: usize,
    rewrite: Option<String>,
}

impl<'a> Reader<'a> {
    fn new(source_name: &'a str, text: &'a str, rewrite: bool) -> Reader<'a> {
        Reader {
            source_name,
            lines: scan_lines(text),
            next_line: 0,
            rewrite: rewrite.then(String::new),
        }
    }

    fn scan(&mut self) -> Option<&'a str> {
        let line = self.lines.get(self.next_line).copied()?;
        self.next_line += 1;
        Some(line)
    }

    fn emit(&mut self, s: &str) {
        if let Some(out) = &mut self.rewrite {
            out.push_str(s);
            out.push('\n');
        }
    }

    /// The next case, `None` at the end of the file.
    fn next_case(&mut self) -> Result<Option<TestData>, String> {
        while let Some(first) = self.scan() {
            self.emit(first);
            let pos = format!("{}:{}", self.source_name, self.next_line);
            let mut line = first.trim().to_string();
            if line.starts_with('#') {
                continue;
            }
            while line.ends_with('\\') {
                let Some(next) = self.scan() else { break };
                self.emit(next);
                line.pop();
                line.push(' ');
                line.push_str(next.trim());
            }
            let (cmd, cmd_args) = parse_line(&line).map_err(|e| format!("{pos}: {e}"))?;
            if cmd.is_empty() {
                continue;
            }
            let mut input = String::new();
            let mut separator = false;
            while let Some(line) = self.scan() {
                if line == "----" {
                    separator = true;
                    break;
                }
                self.emit(line);
                input.push_str(line);
                input.push('\n');
            }
            let expected = if separator { self.read_expected() } else { String::new() };
            let input = input.trim().to_string();
            return Ok(Some(TestData { pos, directive: line, cmd, cmd_args, input, expected }));
        }
        Ok(None)
    }

    fn read_expected(&mut self) -> String {
        let mut buf = String::new();
        let first = self.scan();
        if first == Some("----") {
            // Blank lines allowed: ends at "----" followed by "----".
            while let Some(line) = self.scan() {
                if line == "----"
                    && let Some(line2) = self.scan()
                {
                    if line2 == "----" {
                        break;
                    }
                    buf.push_str(line);
                    buf.push('\n');
                    buf.push_str(line2);
                    buf.push('\n');
                    continue;
                }
                buf.push_str(line);
                buf.push('\n');
            }
        } else {
            // Ends at the first blank line (which is consumed).
            let mut line = first;
            while let Some(l) = line {
                if l.trim().is_empty() {
                    break;
                }
                buf.push_str(l);
                buf.push('\n');
                line = self.scan();
            }
        }
        buf
    }
}

/// Why a file failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CaseFailure {
    /// A directive line could not be parsed.
    Parse(String),
    /// A case's output differs from the expected one.
    Mismatch { case: TestData, actual: String },
    /// The handler reported an error (Go's `t.Fatal`) or panicked.
    Error { case: TestData, message: String },
}

/// The outcome of running one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileRun {
    /// Cases run (including a failing one).
    pub(crate) cases: usize,
    /// The first failure, which ended the run.
    pub(crate) failure: Option<CaseFailure>,
    /// In rewrite mode, the new file text (unless a failure ended the run).
    pub(crate) rewritten: Option<String>,
}

/// The handler of a suite: given a case, the actual output, or an error that
/// fails the file (Go's `t.Fatalf`). One handler serves one file, so it can
/// keep state between cases.
pub(crate) type Handler = Box<dyn FnMut(&TestData) -> Result<String, String>>;

/// Runs the cases of `text` (from the file `source_name`) through `handler`.
pub(crate) fn run_test(
    source_name: &str,
    text: &str,
    rewrite: bool,
    handler: &mut Handler,
) -> FileRun {
    let mut reader = Reader::new(source_name, text, rewrite);
    let mut run = FileRun { cases: 0, failure: None, rewritten: None };
    loop {
        let case = match reader.next_case() {
            Ok(Some(case)) => case,
            Ok(None) => break,
            Err(e) => {
                run.failure = Some(CaseFailure::Parse(e));
                return run;
            }
        };
        run.cases += 1;
        let result = catch_unwind(AssertUnwindSafe(|| handler(&case)));
        let mut actual = match result {
            Ok(Ok(actual)) => actual,
            Ok(Err(message)) => {
                run.failure = Some(CaseFailure::Error { case, message });
                return run;
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                run.failure =
                    Some(CaseFailure::Error { case, message: format!("panic: {message}") });
                return run;
            }
        };
        if !actual.ends_with('\n') {
            actual.push('\n');
        }
        if reader.rewrite.is_some() {
            reader.emit("----");
            if has_blank_line(&actual) {
                reader.emit("----");
                if let Some(out) = &mut reader.rewrite {
                    out.push_str(&actual);
                }
                reader.emit("----");
                reader.emit("----");
            } else {
                reader.emit(&actual);
            }
        } else if case.expected != actual {
            run.failure = Some(CaseFailure::Mismatch { case, actual });
            return run;
        }
    }
    if let Some(mut data) = reader.rewrite.take() {
        if data.len() > 2 && data.ends_with("\n\n") {
            data.pop();
        }
        run.rewritten = Some(data);
    }
    run
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        let (_, args) = parse_line(line).unwrap();
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parse_line_forms() {
        let (cmd, a) = parse_line("  committed cfg=(1, 2,3) idx=(_,5) bare x=y  e= ").unwrap();
        assert_eq!(cmd, "committed");
        assert_eq!(
            a,
            vec![
                CmdArg { key: "cfg".into(), vals: vec!["1".into(), "2".into(), "3".into()] },
                CmdArg { key: "idx".into(), vals: vec!["_".into(), "5".into()] },
                CmdArg { key: "bare".into(), vals: vec![] },
                CmdArg { key: "x".into(), vals: vec!["y".into()] },
                CmdArg { key: "e".into(), vals: vec!["".into()] },
            ]
        );
        // Order is kept, duplicates too.
        assert_eq!(args("deliver-msgs 3 1 drop=(2) 1"), vec!["3", "1", "drop=2", "1"]);
        assert_eq!(parse_line("   ").unwrap(), (String::new(), vec![]));
        assert_eq!(parse_line("cmd").unwrap(), ("cmd".to_string(), vec![]));
    }

    #[test]
    fn parse_line_values() {
        // Nested parentheses stay inside one value; spaces after a comma
        // are dropped, before it kept.
        assert_eq!(args("c exprs=(a + (b + c), d + f)"), vec!["exprs=(a + (b + c), d + f)"]);
        let (_, a) = parse_line("c k=(x ,y) v=(())").unwrap();
        assert_eq!(a[0].vals, vec!["x ", "y"]);
        assert_eq!(a[1].vals, vec!["()"]);
        let (_, a) = parse_line("c k=()").unwrap();
        assert_eq!(a[0].vals, vec![""]);
        // A value glued to the next key.
        let (_, a) = parse_line("c k=(1)j=2").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].to_string(), "j=2");
        let (_, a) = parse_line("c k=v=w").unwrap();
        assert_eq!(a[0].vals, vec!["v=w"]);
    }

    #[test]
    fn parse_line_errors() {
        assert_eq!(parse_line("cmd =x").unwrap_err(), "cannot parse directive at column 5: cmd =x");
        assert_eq!(
            parse_line("cmd k=(1, 2").unwrap_err(),
            "cannot parse directive at column 11: cmd k=(1, 2"
        );
        assert_eq!(
            parse_line("cmd k=((1)").unwrap_err(),
            "cannot parse directive at column 8: cmd k=((1)"
        );
    }

    #[test]
    fn go_scalar_parsers() {
        assert_eq!(parse_go_bool("True"), Ok(true));
        assert_eq!(parse_go_bool("0"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
        assert_eq!(parse_go_u64("42"), Ok(42));
        assert_eq!(
            parse_go_u64("+1").unwrap_err(),
            "strconv.ParseUint: parsing \"+1\": invalid syntax"
        );
        assert!(parse_go_u64("99999999999999999999").unwrap_err().ends_with("value out of range"));
    }

    fn cases(text: &str) -> Vec<TestData> {
        let mut r = Reader::new("f.txt", text, false);
        let mut out = Vec::new();
        while let Some(case) = r.next_case().unwrap() {
            out.push(case);
        }
        out
    }

    #[test]
    fn reader_splits_cases() {
        let text = "# comment\n\
                    \n\
                    cmd a=1 \\\n   b=(2, 3)\n\
                    \x20 input line\n\
                    \n\
                    more input  \n\
                    ----\n\
                    out1\n\
                    out2\n\
                    \n\
                    \x20 # indented comment\n\
                    next\n\
                    ----\n\
                    ----\n\
                    x\n\
                    \n\
                    y\n\
                    ----\n\
                    z\n\
                    ----\n\
                    ----\n\
                    last\n\
                    ----\n";
        let cs = cases(text);
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0].pos, "f.txt:3");
        assert_eq!(cs[0].directive, "cmd a=1  b=(2, 3)");
        assert_eq!(cs[0].cmd_args.len(), 2);
        assert_eq!(cs[0].input, "input line\n\nmore input");
        assert_eq!(cs[0].expected, "out1\nout2\n");
        assert_eq!(cs[1].pos, "f.txt:13");
        // A lone "----" inside a double-separator block is kept.
        assert_eq!(cs[1].expected, "x\n\ny\n----\nz\n");
        assert_eq!(cs[1].input, "");
        // Expected output at the end of the file, no blank line.
        assert_eq!(cs[2].cmd, "last");
        assert_eq!(cs[2].expected, "");
    }

    #[test]
    fn reader_edge_cases() {
        // No separator at all: no expected output.
        let cs = cases("cmd\ninput");
        assert_eq!((cs[0].input.as_str(), cs[0].expected.as_str()), ("input", ""));
        // Windows line endings and a final line without a newline.
        let cs = cases("cmd\r\n----\r\nok");
        assert_eq!(cs[0].expected, "ok\n");
        // A "----" with trailing space is not a separator.
        let cs = cases("cmd\n---- \n----\nok\n");
        assert_eq!(cs[0].input, "----");
        assert_eq!(cs[0].expected, "ok\n");
        // A double separator running to the end of the file.
        let cs = cases("cmd\n----\n----\na\n\nb\n----\n");
        assert_eq!(cs[0].expected, "a\n\nb\n----\n");
        // Continuation at end of file.
        let cs = cases("cmd a \\");
        assert_eq!(cs[0].directive, "cmd a \\");
        assert!(
            Reader::new("g.txt", "cmd k=(\n----\n", false)
                .next_case()
                .unwrap_err()
                .starts_with("g.txt:1: cannot parse")
        );
    }

    fn echo_handler() -> Handler {
        Box::new(|d: &TestData| match d.cmd.as_str() {
            "echo" => Ok(d.input.clone()),
            "args" => Ok(d.cmd_args.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")),
            "fail" => Err("boom".to_string()),
            // `resume_unwind` skips the panic hook, keeping the test quiet.
            "panic" => std::panic::resume_unwind(Box::new("handler panicked")),
            other => Ok(format!("unknown {other}")),
        })
    }

    #[test]
    fn run_compares_with_newline_appended() {
        let text = "echo\nhello\n----\nhello\n\nargs b a=(1, 2)\n----\nb a=(1, 2)\n";
        let run = run_test("t.txt", text, false, &mut echo_handler());
        assert_eq!((run.cases, run.failure), (2, None));
        let run =
            run_test("t.txt", "echo\nhi\n----\nho\n\necho\n----\n\n", false, &mut echo_handler());
        assert_eq!(run.cases, 1);
        match run.failure {
            Some(CaseFailure::Mismatch { case, actual }) => {
                assert_eq!(case.pos, "t.txt:1");
                assert_eq!((case.expected.as_str(), actual.as_str()), ("ho\n", "hi\n"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn run_reports_errors_and_panics() {
        let run = run_test("t.txt", "fail\n----\n\necho\n----\n\n", false, &mut echo_handler());
        assert!(
            matches!(run.failure, Some(CaseFailure::Error { ref message, .. }) if message == "boom")
        );
        assert_eq!(run.cases, 1);
        let run = run_test("t.txt", "panic\n----\n", false, &mut echo_handler());
        assert!(matches!(
            run.failure,
            Some(CaseFailure::Error { ref message, .. }) if message == "panic: handler panicked"
        ));
        let run = run_test("t.txt", "x k=(\n", false, &mut echo_handler());
        assert!(matches!(run.failure, Some(CaseFailure::Parse(_))));
    }

    #[test]
    fn rewrite_replaces_expected_outputs() {
        let text = concat!(
            "# head\necho\na\n----\nstale\nstale\n\n",
            "\necho\nx\n\ny\n----\n----\nold\n----\n----\n",
            "\n# tail\necho\n----\n",
        );
        let run = run_test("t.txt", text, true, &mut echo_handler());
        assert_eq!(run.failure, None);
        let want = concat!(
            "# head\necho\na\n----\na\n\n",
            "\necho\nx\n\ny\n----\n----\nx\n\ny\n----\n----\n",
            "\n# tail\necho\n----\n----\n\n----\n----\n",
        );
        assert_eq!(run.rewritten.as_deref(), Some(want));
        // Rewriting a file that is up to date changes nothing.
        let text = "echo\na\n----\na\n\necho\nb\n----\nb\n";
        let run = run_test("t.txt", text, true, &mut echo_handler());
        assert_eq!(run.rewritten.as_deref(), Some(text));
        assert_eq!(run_test("t.txt", want, false, &mut echo_handler()).failure, None);
    }

    #[test]
    fn blank_line_detection() {
        assert!(has_blank_line("\n"));
        assert!(has_blank_line("a\n  \nb\n"));
        assert!(!has_blank_line("a\nb\n"));
        assert!(!has_blank_line(""));
        assert_eq!(scan_lines("a\r\nb"), vec!["a", "b"]);
    }
}
