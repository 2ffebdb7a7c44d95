//! Commands that drive one node: `campaign`, `tick-election`,
//! `tick-heartbeat`, `transfer-leadership`, `forget-leader`,
//! `report-unreachable`, `set-randomized-election-timeout`,
//! `send-snapshot` and `compact`.

use keel::describe::describe_message;
use keel::raftpb::{Message, MessageType};
use keel::storage::Storage;

use super::{
    CmdResult, Env, fatal, first_as_node_idx, go_atoi, go_parse_u64, node_idxs, output_err,
    scan_arg,
};
use crate::datadriven::TestData;

impl Env {
    pub(crate) fn handle_campaign(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let n = self.nodes.len();
        let node = self
            .nodes
            .get_mut(idx)
            .ok_or_else(|| output_err(format!("node index {idx} out of range [0, {n})")))?;
        node.raw.campaign().map_err(output_err)
    }

    pub(crate) fn handle_tick_election(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let ticks = self.node(idx)?.config.election_tick;
        self.tick(idx, ticks)
    }

    pub(crate) fn handle_tick_heartbeat(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let ticks = self.node(idx)?.config.heartbeat_tick;
        self.tick(idx, ticks)
    }

    fn tick(&mut self, idx: usize, ticks: usize) -> CmdResult {
        let node = self.node_mut(idx)?;
        for _ in 0..ticks {
            node.raw.tick();
        }
        Ok(())
    }

    pub(crate) fn handle_transfer_leadership(&mut self, d: &TestData) -> CmdResult {
        let from = go_parse_u64(scan_arg(d, "from")?).map_err(fatal)?;
        let to = go_parse_u64(scan_arg(d, "to")?).map_err(fatal)?;
        let n = self.nodes.len() as u64;
        if from == 0 || from > n {
            return Err(fatal("expected valid \"from\" argument"));
        }
        if to == 0 || to > n {
            return Err(fatal("expected valid \"to\" argument"));
        }
        self.node_mut((from - 1) as usize)?.raw.transfer_leader(to);
        Ok(())
    }

    pub(crate) fn handle_forget_leader(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        // etcd ignores the error.
        let _ = self.node_mut(idx)?.raw.forget_leader();
        Ok(())
    }

    pub(crate) fn handle_report_unreachable(&mut self, d: &TestData) -> CmdResult {
        let sl = node_idxs(d)?;
        if sl.len() != 2 {
            return Err(output_err(
                "must specify exactly two node indexes: node on which to report, and reported node",
            ));
        }
        let id = self.node(sl[1])?.config.id;
        self.node_mut(sl[0])?.raw.report_unreachable(id);
        Ok(())
    }

    pub(crate) fn handle_set_randomized_election_timeout(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let timeout = go_atoi(scan_arg(d, "timeout")?).map_err(fatal)?;
        if timeout == 0 {
            return Err(fatal("Should not be zero"));
        }
        let timeout = usize::try_from(timeout).map_err(fatal)?;
        self.node_mut(idx)?.raw.set_randomized_election_timeout(timeout);
        Ok(())
    }

    pub(crate) fn handle_send_snapshot(&mut self, d: &TestData) -> CmdResult {
        let idxs = node_idxs(d)?;
        if idxs.len() != 2 {
            return Err(fatal(format!("expected 2 node ids, got {}", idxs.len())));
        }
        let (from_idx, to_idx) = (idxs[0], idxs[1]);
        let from = self.node(from_idx)?;
        let snap = from.raw.storage().snapshot().map_err(output_err)?;
        let msg = Message {
            term: from.raw.basic_status().hard_state.term,
            from: from_idx as u64 + 1,
            to: to_idx as u64 + 1,
            snapshot: Some(Box::new(snap)),
            ..Message::new(MessageType::MsgSnap)
        };
        self.output.write(&describe_message(&msg, None));
        self.messages.push(msg);
        Ok(())
    }

    pub(crate) fn handle_compact(&mut self, d: &TestData) -> CmdResult {
        let idx = first_as_node_idx(d)?;
        let arg = d.cmd_args.get(1).ok_or_else(|| fatal("index out of range [1] with length 1"))?;
        let new_first_index = go_parse_u64(&arg.key).map_err(output_err)?;
        self.node(idx)?.storage.compact(new_first_index).map_err(output_err)?;
        self.raft_log(idx)
    }
}
