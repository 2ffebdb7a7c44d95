//! Running a directory of datadriven files as a suite, with one summary
//! line, failure reports, and a checked-in list of files expected to fail.
//!
//! A suite names a directory under `$KEEL_ETCD_TESTDATA` and a handler
//! factory (one fresh handler, i.e. one fresh environment, per file). Every
//! `*.txt` file below the directory runs, sorted by name. The summary line
//! is exactly `etcd-datadriven <suite>: P passed, F failed` (P and F count
//! files). The suite fails if a file fails that is not listed in
//! `expected_failures.txt`, or if a listed file passes (so the list
//! shrinks as the port improves).
//!
//! A missing or empty directory is not a pass: the suite fails and says
//! which directory it tried to read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::datadriven::{CaseFailure, Handler, run_test};

/// A directory of test files and the handler that runs them.
pub(crate) struct Suite {
    /// The name in the summary line and in `expected_failures.txt`.
    pub(crate) name: &'static str,
    /// The directory, relative to the testdata root.
    pub(crate) dir: &'static str,
    /// Makes the handler for one file.
    pub(crate) new_handler: fn() -> Handler,
}

/// The workspace root (this crate is `crates/keel`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// `$KEEL_ETCD_TESTDATA`, or the vendored copy `crates/keel/tests/testdata/etcd-raft`.
/// A relative path is taken relative to the workspace root (the
/// test binary runs in the crate directory, which would surprise).
fn testdata_root() -> PathBuf {
    match std::env::var_os("KEEL_ETCD_TESTDATA") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/etcd-raft"),
    }
}

/// Whether `KEEL_REWRITE=1` asks to rewrite the files with actual outputs.
fn rewrite_mode() -> bool {
    std::env::var("KEEL_REWRITE").is_ok_and(|v| v == "1")
}

/// The entries of `expected_failures.txt` for `suite`: file paths relative
/// to the suite's directory.
fn expected_failures(suite: &str) -> Vec<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcd_datadriven/expected_failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    parse_expected_failures(&text, suite)
}

/// Lines `suite/file.txt`; `#` comments and blank lines are ignored.
fn parse_expected_failures(text: &str, suite: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix(suite)?.strip_prefix('/'))
        .map(str::to_string)
        .collect()
}

/// Every `*.txt` file below `dir` (skipping hidden entries), as paths
/// relative to `dir`, sorted by name at each level as Go's `Walk` visits
/// them.
fn test_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    let mut files = Vec::new();
    for (name, path) in entries {
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            for sub in test_files(&path)? {
                files.push(format!("{name}/{sub}"));
            }
        } else if name.ends_with(".txt") {
            files.push(name);
        }
    }
    Ok(files)
}

/// What happened to one file.
struct FileReport {
    name: String,
    passed: bool,
    expected_to_fail: bool,
    /// Why it failed (empty if it passed).
    details: String,
}

/// Runs the suite, prints its report and summary line, and returns an error
/// describing every unexpected outcome.
pub(crate) fn run_suite(suite: &Suite) -> Result<(), String> {
    let dir = testdata_root().join(suite.dir);
    let header = format!("etcd-datadriven {}", suite.name);
    let files = match test_files(&dir) {
        Ok(files) => files,
        Err(e) => {
            return Err(format!(
                "{header}: cannot read {} ({e}); check KEEL_ETCD_TESTDATA",
                dir.display()
            ));
        }
    };
    if files.is_empty() {
        return Err(format!("{header}: no *.txt files in {}", dir.display()));
    }
    let expected = expected_failures(suite.name);
    let rewrite = rewrite_mode();
    let mut reports = Vec::new();
    for name in &files {
        let path = dir.join(name);
        let mut report = FileReport {
            name: name.clone(),
            passed: false,
            expected_to_fail: expected.contains(name),
            details: String::new(),
        };
        match std::fs::read_to_string(&path) {
            Err(e) => report.details = format!("cannot read {}: {e}", path.display()),
            Ok(text) => {
                let run = run_test(name, &text, rewrite, &mut (suite.new_handler)());
                report.passed = run.failure.is_none();
                if let Some(failure) = &run.failure {
                    report.details = describe_failure(failure);
                }
                if let (Some(new_text), true) = (&run.rewritten, report.passed)
                    && *new_text != text
                    && let Err(e) = std::fs::write(&path, new_text)
                {
                    report.details = format!("cannot rewrite {}: {e}", path.display());
                    report.passed = false;
                }
            }
        }
        reports.push(report);
    }
    for listed in &expected {
        if !files.contains(listed) {
            println!(
                "note: {}/{listed} is listed in expected_failures.txt but not present",
                suite.name
            );
        }
    }

    let mut problems = String::new();
    for r in &reports {
        match (r.passed, r.expected_to_fail) {
            (true, false) => {}
            (false, true) => {
                println!("XFAIL {}/{} (listed in expected_failures.txt)", suite.name, r.name)
            }
            (true, true) => {
                let msg = format!(
                    "{}/{} passes but is listed in expected_failures.txt: remove it\n",
                    suite.name, r.name
                );
                print!("{msg}");
                problems.push_str(&msg);
            }
            (false, false) => {
                println!("FAIL {}/{}\n{}", suite.name, r.name, indent(&r.details));
                problems.push_str(&format!("{}/{} fails (report above)\n", suite.name, r.name));
            }
        }
    }
    let passed = reports.iter().filter(|r| r.passed).count();
    println!("{header}: {passed} passed, {} failed", reports.len() - passed);
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// The failing case, its position and directive, and a diff.
fn describe_failure(failure: &CaseFailure) -> String {
    let mut out = String::new();
    match failure {
        CaseFailure::Parse(message) => {
            let _ = writeln!(out, "{message}");
        }
        CaseFailure::Error { case, message } => {
            let _ = writeln!(out, "first failing case: {}: {}", case.pos, case.directive);
            if !case.input.is_empty() {
                let _ = writeln!(out, "input:\n{}", indent(&case.input).trim_end());
            }
            let _ = writeln!(out, "error: {message}");
        }
        CaseFailure::Mismatch { case, actual } => {
            let _ = writeln!(out, "first differing case: {}: {}", case.pos, case.directive);
            if !case.input.is_empty() {
                let _ = writeln!(out, "input:\n{}", indent(&case.input).trim_end());
            }
            let _ = writeln!(out, "diff (- expected, + actual):");
            out.push_str(&line_diff(&case.expected, actual));
        }
    }
    out
}

/// A line diff of `expected` and `actual` (longest common subsequence),
/// lines prefixed `  `, `- ` or `+ `.
pub(crate) fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] =
                if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the outputs differ in their final newline)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(d, "  a\n- b\n+ x\n  c\n+ d\n");
        assert_eq!(line_diff("a\n", "a\n"), "  a\n");
        assert!(line_diff("a\n", "a").ends_with("final newline)\n"));
    }

    #[test]
    fn expected_failures_are_per_suite() {
        let text = "# comment\n\nquorum/a.txt\n  interaction/b.txt  \n\
                    interaction/sub/c.txt\nquorumx/d.txt\n";
        assert_eq!(parse_expected_failures(text, "quorum"), vec!["a.txt"]);
        assert_eq!(parse_expected_failures(text, "interaction"), vec!["b.txt", "sub/c.txt"]);
        assert!(parse_expected_failures(text, "confchange").is_empty());
    }

    #[test]
    fn files_are_sorted_and_filtered() {
        let dir = std::env::temp_dir().join(format!("keel-dd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["b.txt", "a.txt", ".hidden.txt", "notes.md", "sub/c.txt"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let files = test_files(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(files, vec!["a.txt", "b.txt", "sub/c.txt"]);
        assert!(test_files(Path::new("/nonexistent/keel")).is_err());
    }
}
