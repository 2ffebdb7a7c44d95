//! Checks every history listed in `EXPECTED.tsv` of `$KEEL_PORCUPINE_HISTORIES` (default
//! `../shared/porcupine-histories`, beside the checkout) against its expected verdict: real
//! Jepsen and Porcupine histories that no one here wrote. Rows added to `EXPECTED.tsv` run
//! too. A missing directory prints a loud SKIP line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_sim::linearizability::format::{jepsen_etcd, porcupine_kv};
use keel_sim::linearizability::models::{AppendKvModel, RegisterModel};
use keel_sim::linearizability::{CheckOptions, Verdict, check};

fn histories_dir() -> PathBuf {
    match std::env::var_os("KEEL_PORCUPINE_HISTORIES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/porcupine-histories"),
    }
}

#[test]
fn every_expected_verdict_is_reached() {
    let dir = histories_dir();
    let Ok(expected) = std::fs::read_to_string(dir.join("EXPECTED.tsv")) else {
        println!(
            "SKIP: no {}/EXPECTED.tsv; the Porcupine histories were NOT checked",
            dir.display()
        );
        return;
    };
    // Generous: each takes milliseconds; a budget keeps a regression from hanging the run.
    let options =
        CheckOptions { timeout: Some(Duration::from_secs(60)), ..CheckOptions::default() };
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = row.split('\t').collect();
        let [path, model, verdict] = fields[..] else {
            panic!("bad EXPECTED.tsv row: {row:?}");
        };
        let text = std::fs::read_to_string(dir.join(path))
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let got = match model {
            "etcd-register" => check(&RegisterModel, &jepsen_etcd::parse(&text).unwrap(), &options),
            "kv-get-put-append" => {
                check(&AppendKvModel, &porcupine_kv::parse(&text).unwrap(), &options)
            }
            _ => panic!("unknown model {model:?} in EXPECTED.tsv"),
        };
        let ok = match (verdict, &got) {
            ("ok", Verdict::Linearizable) => true,
            ("illegal", Verdict::NotLinearizable { .. }) => true,
            ("ok" | "illegal", _) => false,
            _ => panic!("unknown verdict {verdict:?} in EXPECTED.tsv"),
        };
        if !ok {
            failures.push(format!("{path}: expected {verdict}, got {got}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} of {checked} wrong:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 55, "only {checked} histories listed");
    println!("checked {checked} Porcupine histories");
}
