//! `propose ID DATA` and `propose-conf-change ID [v1=B] [transition=T]`
//! (the input lists the changes as `v2 l3 r4 u5`).

use bytes::Bytes;
use keel::raftpb::{
    AnyConfChange, ConfChange, ConfChangeTransition, ConfChangeV2, conf_changes_from_string,
};

use super::{CmdResult, Env, fatal, first_as_node_idx, go_parse_bool, output_err};
use crate::datadriven::TestData;

impl Env {
    pub(crate) fn handle_propose(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        if d.cmd_args.len() != 2 || !d.cmd_args[1].vals.is_empty() {
            let rest: Vec<String> = d.cmd_args[1..].iter().map(ToString::to_string).collect();
            return Err(fatal(format!(
                "expected exactly one key with no vals: [{}]",
                rest.join(" ")
            )));
        }
        let data = Bytes::from(d.cmd_args[1].key.clone());
        self.node_mut(idx)?.raw.propose(data).map(drop).map_err(output_err)
    }

    pub(crate) fn handle_propose_conf_change(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let mut v1 = false;
        let mut transition = ConfChangeTransition::ConfChangeTransitionAuto;
        for arg in &d.cmd_args[1..] {
            for val in &arg.vals {
                match arg.key.as_str() {
                    "v1" => v1 = go_parse_bool(val).map_err(output_err)?,
                    "transition" => {
                        transition = match val.as_str() {
                            "auto" => ConfChangeTransition::ConfChangeTransitionAuto,
                            "implicit" => ConfChangeTransition::ConfChangeTransitionJointImplicit,
                            "explicit" => ConfChangeTransition::ConfChangeTransitionJointExplicit,
                            _ => return Err(output_err(format!("unknown transition {val}"))),
                        }
                    }
                    key => return Err(output_err(format!("unknown command {key}"))),
                }
            }
        }
        let ccs = conf_changes_from_string(&d.input).map_err(output_err)?;
        let cc: AnyConfChange = if v1 {
            if ccs.len() > 1 || transition != ConfChangeTransition::ConfChangeTransitionAuto {
                return Err(output_err(
                    "v1 conf change can only have one operation and no transition",
                ));
            }
            // etcd indexes the first change unchecked: no change is a panic.
            let first = ccs.first().ok_or_else(|| fatal("index out of range [0] with length 0"))?;
            ConfChange {
                change_type: first.change_type,
                node_id: first.node_id,
                ..Default::default()
            }
            .into()
        } else {
            ConfChangeV2 { transition: transition as i32, changes: ccs, ..Default::default() }
                .into()
        };
        self.node_mut(idx)?.raw.propose_conf_change(cc).map(drop).map_err(output_err)
    }
}
