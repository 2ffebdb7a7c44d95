//! The handler of etcd-raft's `confchange/testdata` files (a port of
//! `confchange/datadriven_test.go`).
//!
//! Each file starts from an empty tracker (inflight windows of 10) and a
//! last index of 0 that every command increments. Commands: `simple`,
//! `enter-joint [autoleave=bool]` and `leave-joint`; the input lists the
//! changes as `v1 l2 r3 u4`. The output is the new configuration and
//! progress map, or the error.

use keel::raftpb::conf_changes_from_string;
use keel::testing::{Changer, ProgressTracker};

use crate::datadriven::{Handler, TestData};

/// A fresh environment for one file.
pub(crate) fn new_handler() -> Handler {
    let mut env = Env { tracker: ProgressTracker::new(10, 0), last_index: 0 };
    Box::new(move |d| {
        let out = env.handle(d);
        env.last_index += 1;
        out
    })
}

struct Env {
    tracker: ProgressTracker,
    last_index: u64,
}

impl Env {
    fn handle(&mut self, d: &TestData) -> Result<String, String> {
        let ccs = match conf_changes_from_string(&d.input) {
            Ok(ccs) => ccs,
            // etcd's harness prints a bad token as the case's output.
            Err(e) => return Ok(e.to_string()),
        };
        let changer = Changer::new(&self.tracker, self.last_index);
        let result = match d.cmd.as_str() {
            "simple" => changer.simple(&ccs),
            "enter-joint" => {
                let auto_leave =
                    if d.cmd_args.is_empty() { false } else { d.scan_bool_arg("autoleave")? };
                changer.enter_joint(auto_leave, &ccs)
            }
            "leave-joint" if !ccs.is_empty() => {
                return Ok("this command takes no input\n".to_string());
            }
            "leave-joint" => changer.leave_joint(),
            _ => return Ok("unknown command".to_string()),
        };
        match result {
            Err(e) => Ok(format!("{e}\n")),
            Ok((config, progress)) => {
                self.tracker.install(config, progress);
                Ok(format!("{}\n{}", self.tracker.config(), self.tracker.progress()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadriven::test_case as case;

    #[test]
    fn last_index_counts_every_command() {
        let mut h = new_handler();
        assert_eq!(h(&case("bogus", "")).unwrap(), "unknown command");
        assert_eq!(h(&case("simple", "x1")).unwrap(), "unknown input: x1");
        assert_eq!(h(&case("simple", "v1")).unwrap(), "voters=(1)\n1: StateProbe match=0 next=2\n");
        assert_eq!(h(&case("leave-joint", "v2")).unwrap(), "this command takes no input\n");
        assert_eq!(
            h(&case("enter-joint autoleave=true", "v2")).unwrap(),
            "voters=(1 2)&&(1) autoleave\n\
             1: StateProbe match=0 next=2\n\
             2: StateProbe match=0 next=4\n"
        );
        assert_eq!(h(&case("enter-joint foo=1", "")).unwrap_err(), "missing argument: autoleave");
    }
}
