//! etcd-raft's datadriven conformance files, run byte for byte against
//! Keel.
//!
//! Each suite runs every `*.txt` file of one directory under
//! `$KEEL_ETCD_TESTDATA` (default: the vendored copy in
//! `crates/keel/tests/testdata/etcd-raft`) and prints one line
//! `etcd-datadriven <suite>: P passed, F failed`. Run with
//!
//! ```sh
//! cargo test -p keel --test etcd_datadriven -- --nocapture
//! ```
//!
//! `KEEL_REWRITE=1` rewrites the files with the actual outputs instead of
//! comparing. Files expected to fail are listed in `expected_failures.txt`
//! beside this file (`<suite>/<file>` per line). Each suite is one
//! [`suite::Suite`] and one `#[test]` below: `quorum`, `confchange`, and
//! `interaction` (whole clusters driven through etcd's interaction DSL, see
//! the `interaction` module).

// The suites report on stdout (the summary lines are their output).
#![allow(clippy::print_stdout)]

mod confchange;
mod datadriven;
mod interaction;
mod quorum;
mod suite;

use suite::{Suite, run_suite};

/// etcd-raft's `quorum/testdata`: committed indexes and vote results.
const QUORUM: Suite =
    Suite { name: "quorum", dir: "quorum/testdata", new_handler: quorum::new_handler };

/// etcd-raft's `confchange/testdata`: simple and joint membership changes.
const CONFCHANGE: Suite =
    Suite { name: "confchange", dir: "confchange/testdata", new_handler: confchange::new_handler };

/// etcd-raft's `testdata`: whole clusters driven through the interaction DSL.
const INTERACTION: Suite =
    Suite { name: "interaction", dir: "testdata", new_handler: interaction::new_handler };

/// Runs a suite and fails the test with its report if any file had an
/// unexpected outcome.
fn check(suite: &Suite) {
    if let Err(report) = run_suite(suite) {
        panic!("etcd-datadriven {}: unexpected results\n{report}", suite.name);
    }
}

#[test]
fn etcd_quorum() {
    check(&QUORUM);
}

#[test]
fn etcd_confchange() {
    check(&CONFCHANGE);
}

#[test]
fn etcd_interaction() {
    check(&INTERACTION);
}
