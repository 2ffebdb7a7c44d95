//! The `keel-sim` command: `check-history`, the soak and the replay; output and exit codes,
//! run as a built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn keel_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel-sim")).args(args).output().expect("runs keel-sim")
}

fn check_history(format: &str, file: &str, extra: &[&str]) -> (i32, String, String) {
    let path = data(file);
    let mut args = vec!["check-history", "--format", format];
    args.extend_from_slice(extra);
    args.push(path.to_str().expect("utf-8 path"));
    let output = keel_sim(&args);
    (
        output.status.code().expect("exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn linearizable_exits_0() {
    for (format, file) in [("keel", "keel-ok.jsonl"), ("jepsen-etcd", "jepsen-ok.log")] {
        let (code, stdout, _) = check_history(format, file, &[]);
        assert_eq!((code, stdout.as_str()), (0, "linearizable\n"), "{file}");
    }
}

#[test]
fn keel_is_the_default_format() {
    let path = data("keel-ok.jsonl");
    let output = keel_sim(&["check-history", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn not_linearizable_exits_1_with_a_counterexample() {
    let (code, stdout, _) = check_history("keel", "keel-stale-read.jsonl", &[]);
    assert_eq!(code, 1);
    let expected = "not linearizable
partition: key \"k\" (3 operations)
longest linearizable prefix: 2 operations
  op 0 (client 1, t=1..6): put(\"k\", \"v\") -> ok
  op 1 (client 2, t=2..3): get(\"k\") -> \"v\"
state after the prefix: \"v\"
one of these must come next, and none is possible in that state:
  op 2 (client 3, t=4..5): get(\"k\") -> absent
";
    assert_eq!(stdout, expected);
    for (format, file) in
        [("jepsen-etcd", "jepsen-bad.log"), ("porcupine-kv", "porcupine-kv-bad.txt")]
    {
        let (code, stdout, _) = check_history(format, file, &[]);
        assert_eq!(code, 1, "{file}");
        assert!(stdout.starts_with("not linearizable\npartition: "), "{file}: {stdout}");
    }
}

#[test]
fn a_spent_budget_exits_2() {
    let (code, stdout, _) = check_history("keel", "keel-ok.jsonl", &["--timeout-secs", "0"]);
    assert_eq!(code, 2);
    assert!(stdout.starts_with("unknown: time budget of 0.000s ran out"), "{stdout}");
    let (code, stdout, _) = check_history("keel", "keel-ok.jsonl", &["--max-cache-mib", "0"]);
    assert_eq!(code, 2);
    assert!(stdout.starts_with("unknown: search cache limit of 0 MiB reached"), "{stdout}");
}

#[test]
fn a_malformed_file_exits_3_naming_the_line() {
    let (code, stdout, stderr) = check_history("keel", "keel-malformed.jsonl", &[]);
    assert_eq!(code, 3);
    assert_eq!(stdout, "");
    assert!(stderr.contains("line 3: process 1 returns but has no open operation"), "{stderr}");
    // The right file in the wrong format.
    let (code, _, stderr) = check_history("jepsen-etcd", "keel-ok.jsonl", &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("line 1: expected `INFO jepsen.util"), "{stderr}");
    let (code, _, stderr) = check_history("porcupine-kv", "jepsen-ok.log", &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("line 1: expected an EDN map"), "{stderr}");
}

#[test]
fn a_missing_file_exits_3() {
    let (code, _, stderr) = check_history("keel", "no-such-file.jsonl", &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_eq!(keel_sim(&["check-history"]).status.code(), Some(64));
    assert_eq!(keel_sim(&["check-history", "--format", "xml", "f"]).status.code(), Some(64));
    let path = data("keel-ok.jsonl");
    let path = path.to_str().expect("utf-8 path");
    assert_eq!(keel_sim(&["check-history", "--timeout-secs", "-1", path]).status.code(), Some(64));
    assert_eq!(keel_sim(&[]).status.code(), Some(64));
    let help = keel_sim(&["check-history", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--format"));
}

#[test]
fn a_soak_prints_its_rate_and_exits_0_when_every_seed_passes() {
    let out = keel_sim(&["--seeds", "3", "--steps", "300"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("3 seeds in ") && stdout.contains("seeds/s"), "{stdout}");
    assert!(stdout.contains("safety violations: 0, liveness failures: 0"), "{stdout}");
}

#[test]
fn a_soak_that_finds_a_bug_exits_1_and_prints_the_seed() {
    // Seed 0 with asynchronous writes catches a planted early acknowledgement.
    let out = keel_sim(&["--seeds", "1", "--mode", "async", "--plant-bug", "ack-before-persist"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("seed=0 SAFETY VIOLATION: durable before acknowledged"), "{stdout}");
    assert!(stdout.contains("options: nodes=") && stdout.contains("last 40 events:"), "{stdout}");
    assert!(stdout.contains("failing seeds: [0]"), "{stdout}");
}

#[test]
fn a_replay_prints_one_line_per_event() {
    let out = keel_sim(&["--seed", "1", "--steps", "200"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("seed=1 options: nodes="), "{stdout}");
    assert!(stdout.lines().filter(|l| l.contains("ms #")).count() >= 200, "{stdout}");
    assert!(stdout.trim_end().ends_with("seed=1 passed"), "{stdout}");
}
