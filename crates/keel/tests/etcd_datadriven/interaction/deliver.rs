//! `deliver-msgs` and `stabilize`: moving messages between nodes, and
//! running every node until nothing is left to do.

use keel::describe::{describe_message, message_type_name};
use keel::raftpb::Message;
use keel::testing::is_local_msg_target;

use super::process::Thread;
use super::{CmdError, CmdResult, Env, fatal, go_parse_u64, node_idxs, scan_u64};
use crate::datadriven::TestData;

/// A node to deliver messages to, or to drop its messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recipient {
    pub(crate) id: u64,
    pub(crate) drop: bool,
}

/// The message type named `name` (its proto name), if any.
fn message_type_by_name(name: &str) -> Option<i32> {
    (0..64)
        .find(|&t| keel::raftpb::MessageType::try_from(t).is_ok() && message_type_name(t) == name)
}

/// Messages that need reliable delivery: to or from the node itself or its
/// local storage threads. They are never dropped.
fn is_local_msg(m: &Message) -> bool {
    m.from == m.to || is_local_msg_target(m.from) || is_local_msg_target(m.to)
}

/// Splits `msgs` into those to `to` (of type `typ`, if given; local messages
/// are kept back when dropping) and the rest, keeping the order of both.
fn split_msgs(
    msgs: Vec<Message>,
    to: u64,
    typ: Option<i32>,
    drop: bool,
) -> (Vec<Message>, Vec<Message>) {
    msgs.into_iter().partition(|m| {
        m.to == to && !(drop && is_local_msg(m)) && typ.is_none_or(|t| m.msg_type == t)
    })
}

impl Env {
    pub(crate) fn handle_deliver_msgs(&mut self, d: &TestData) -> CmdResult {
        let mut typ = None;
        let mut rs: Vec<Recipient> = Vec::new();
        for arg in &d.cmd_args {
            if arg.vals.is_empty() {
                let id = go_parse_u64(&arg.key).map_err(fatal)?;
                rs.push(Recipient { id, drop: false });
            }
            for i in 0..arg.vals.len() {
                match arg.key.as_str() {
                    "drop" => {
                        let id = scan_u64(arg, i)?;
                        if rs.iter().any(|r| r.id == id) {
                            return Err(fatal(format!("can't both deliver and drop msgs to {id}")));
                        }
                        rs.push(Recipient { id, drop: true });
                    }
                    "type" => {
                        let name = &arg.vals[i];
                        typ = Some(
                            message_type_by_name(name)
                                .ok_or_else(|| fatal(format!("unknown message type {name}")))?,
                        );
                    }
                    _ => {}
                }
            }
        }
        if self.deliver_msgs(typ, &rs)? == 0 {
            self.output.write("no messages\n");
        }
        Ok(())
    }

    /// Delivers (or drops) the queued messages to each recipient in turn,
    /// printing each; returns how many were handled.
    pub(crate) fn deliver_msgs(
        &mut self,
        typ: Option<i32>,
        rs: &[Recipient],
    ) -> Result<usize, CmdError> {
        let mut n = 0;
        for r in rs {
            let (msgs, rest) = split_msgs(std::mem::take(&mut self.messages), r.id, typ, r.drop);
            self.messages = rest;
            n += msgs.len();
            for msg in msgs {
                if r.drop {
                    self.output.write("dropped: ");
                }
                self.output.writeln(&describe_message(&msg, None));
                if r.drop {
                    // Messages to nodes that do not exist yet may be dropped.
                    continue;
                }
                let to = msg.to;
                let node = usize::try_from(to.wrapping_sub(1))
                    .ok()
                    .and_then(|i| self.nodes.get_mut(i))
                    .ok_or_else(|| fatal(format!("message to unknown node {to}")))?;
                // The storage threads' responses and a node's own
                // self-addressed responses go in through `step_local`.
                let local = is_local_msg_target(msg.from) || msg.from == msg.to;
                let res = if local { node.raw.step_local(msg) } else { node.raw.step(msg) };
                if let Err(e) = res {
                    self.output.writeln(&e.to_string());
                }
            }
        }
        Ok(n)
    }

    pub(crate) fn handle_stabilize(&mut self, d: &TestData) -> CmdResult {
        let idxs = node_idxs(d)?;
        let old_level = self.output.logger.level();
        let mut restore = false;
        for arg in &d.cmd_args {
            for i in 0..arg.vals.len() {
                if arg.key == "log-level" {
                    restore = true;
                    if let Err(e) = self.set_log_level(&arg.vals[i]) {
                        self.output.logger.set_level(old_level);
                        return Err(e);
                    }
                }
            }
        }
        let res = self.stabilize(&idxs);
        if restore {
            self.output.logger.set_level(old_level);
        }
        res
    }

    /// Handles `Ready`s, delivers messages and runs the storage threads of
    /// the given nodes (all if none) until none of them has anything to do.
    pub(crate) fn stabilize(&mut self, idxs: &[usize]) -> CmdResult {
        let idxs: Vec<usize> =
            if idxs.is_empty() { (0..self.nodes.len()).collect() } else { idxs.to_vec() };
        for &idx in &idxs {
            self.node(idx)?;
        }
        loop {
            let mut done = true;
            for &idx in &idxs {
                if self.nodes[idx].raw.has_ready() {
                    let id = self.nodes[idx].raw.id();
                    self.output.write(&format!("> {id} handling Ready\n"));
                    let i = (id - 1) as usize;
                    self.with_indent(|env| env.process_ready(i))?;
                    done = false;
                }
            }
            for &idx in &idxs {
                let id = self.nodes[idx].raw.id();
                if self.messages.iter().any(|m| m.to == id) {
                    self.output.write(&format!("> {id} receiving messages\n"));
                    self.with_indent(|env| {
                        env.deliver_msgs(None, &[Recipient { id, drop: false }])
                    })?;
                    done = false;
                }
            }
            for thread in [Thread::Append, Thread::Apply] {
                for &idx in &idxs {
                    let id = self.nodes[idx].raw.id();
                    let i = (id - 1) as usize;
                    if thread.work(&mut self.nodes[idx]).is_empty() {
                        continue;
                    }
                    self.output.write(&format!("> {id} processing {} thread\n", thread.name()));
                    while !thread.work(&mut self.nodes[idx]).is_empty() {
                        let res = self.with_indent(|env| env.process_thread(i, thread));
                        match (thread, res) {
                            (_, Ok(())) => {}
                            // etcd ignores the apply thread's errors here (but
                            // not its panics).
                            (Thread::Apply, Err(CmdError::Output(_))) => {}
                            (_, Err(e)) => return Err(e),
                        }
                    }
                    done = false;
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}
