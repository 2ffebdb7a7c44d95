//! Commands that print state: `raft-log`, `raft-state`, `status`, and
//! `log-level`, which sets what is printed.

use keel::describe::describe_entries;
use keel::storage::Storage;

use super::{CmdResult, Env, LEVEL_NAMES, fatal, first_as_node_idx, level_by_index, output_err};
use crate::datadriven::TestData;

impl Env {
    pub(crate) fn handle_raft_log(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        self.raft_log(idx)
    }

    /// Prints the node's stable log.
    pub(crate) fn raft_log(&mut self, idx: usize) -> CmdResult {
        let s = &self.node(idx)?.storage;
        let fi = s.first_index().map_err(output_err)?;
        let li = s.last_index().map_err(output_err)?;
        if li < fi {
            self.output.write(&format!("log is empty: first index={fi}, last index={li}"));
            return Ok(());
        }
        let ents = s.entries_vec(fi, li + 1, u64::MAX).map_err(output_err)?;
        self.output.write(&describe_entries(&ents, None));
        Ok(())
    }

    /// Prints each node's role, membership, term and leader, as it sees them.
    pub(crate) fn handle_raft_state(&mut self) -> CmdResult {
        for n in &self.nodes {
            let st = n.raw.status();
            let voter = st.config.voters().contains(st.basic.id);
            let voter_status = if voter { "(Voter)" } else { "(Non-Voter)" };
            self.output.write(&format!(
                "{}: {} {} Term:{} Lead:{}\n",
                st.basic.id,
                st.basic.soft_state.raft_state,
                voter_status,
                st.basic.hard_state.term,
                st.basic.soft_state.lead
            ));
        }
        Ok(())
    }

    /// Prints the progress the node tracks (empty unless it leads).
    pub(crate) fn handle_status(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let st = self.node(idx)?.raw.status();
        let mut out = String::new();
        for (id, pr) in &st.progress {
            out.push_str(&format!("{id}: {pr}\n"));
        }
        self.output.write(&out);
        Ok(())
    }

    pub(crate) fn handle_log_level(&mut self, d: &TestData) -> CmdResult {
        let arg =
            d.cmd_args.first().ok_or_else(|| fatal("index out of range [0] with length 0"))?;
        self.set_log_level(&arg.key)
    }

    /// Sets the output level by name (case-insensitive).
    pub(crate) fn set_log_level(&mut self, name: &str) -> CmdResult {
        match LEVEL_NAMES.iter().position(|l| l.eq_ignore_ascii_case(name)) {
            Some(i) => {
                self.output.logger.set_level(level_by_index(i));
                Ok(())
            }
            None => {
                Err(output_err(format!("log levels must be either of [{}]", LEVEL_NAMES.join(" "))))
            }
        }
    }
}
