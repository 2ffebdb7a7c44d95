//! The workload: clients running get/put/delete/cas operations (recorded as
//! a history for the linearizability check), and the operator's membership
//! changes and leadership transfers.
//!
//! A client has one operation outstanding. It sends it to the node it
//! believes leads (sometimes to another one, which forwards it); writes and
//! "log reads" are proposed, ReadIndex reads wait for their read index to be
//! applied. An operation the client gives up on (timeout, crashed node) is
//! recorded as never returned: it may or may not have taken effect. A
//! proposal the core refuses (`ProposalDropped`) had no effect and is left
//! out; so are reads that never returned (they cannot have an effect).

use bytes::{BufMut, Bytes, BytesMut};
use keel::StateType;
use keel::raftpb::{
    AnyConfChange, ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType,
    ConfChangeV2, ConfState,
};

use super::cluster::{Cluster, Ev, RunPhase, describe_cs};
use super::invariants::Checked;
use super::node::{PendingRead, Phase, members};
use crate::kv::Request;
use crate::linearizability::Operation;
use crate::linearizability::models::{KvInput, KvOutput};

/// The recorded operations (`None`: left out of the check).
pub(crate) type History = Vec<Option<Operation<KvInput, KvOutput>>>;

/// What a client is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Idle,
    /// Waiting for operation `op` (an index into the history).
    Waiting {
        op: usize,
        is_read: bool,
    },
}

/// One client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    seq: u64,
    state: ClientState,
    /// The node that answered last (where the client believes the leader is).
    hint: u64,
}

impl Client {
    /// Client number `id`, idle.
    pub(crate) fn new() -> Client {
        Client { seq: 0, state: ClientState::Idle, hint: 0 }
    }
}

/// The ReadIndex request context of a client's operation.
pub(crate) fn read_ctx(client: usize, op: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    b.put_u64_le(client as u64);
    b.put_u64_le(op as u64);
    b.freeze()
}

impl Cluster {
    pub(crate) fn client_event(&mut self, c: usize, token: usize) -> Checked {
        match (self.clients[c].state, token) {
            (ClientState::Idle, 0) => {
                if self.phase == RunPhase::Faulty {
                    self.invoke(c)?;
                }
                Ok(())
            }
            (ClientState::Waiting { op, is_read }, t) if t == op + 1 => {
                // Timed out.
                self.clients[c].state = ClientState::Idle;
                self.clients[c].hint = 0;
                self.stats.ops_timed_out += 1;
                if is_read {
                    self.history[op] = None;
                }
                self.note_with(0, || format!("client {c} gives up on op {op}"));
                self.schedule_next_op(c);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn schedule_next_op(&mut self, c: usize) {
        let d = self.rng.range(0, self.o.think_max_us);
        self.schedule(d, Ev::Client(c, 0));
    }

    /// The node a client sends to: usually the leader, sometimes any node.
    fn pick_target(&mut self, c: usize) -> u64 {
        let hint = self.clients[c].hint;
        let hint_ok = hint != 0 && self.nodes.get(&hint).is_some_and(|n| n.is_up());
        if self.rng.chance(200) || (!hint_ok && self.leader().is_none()) {
            let ids = self.member_ids();
            return *self.rng.pick(&ids);
        }
        if let Some(l) = self.leader()
            && self.rng.chance(800)
        {
            return l;
        }
        if hint_ok { hint } else { self.leader().unwrap_or(1) }
    }

    fn invoke(&mut self, c: usize) -> Checked {
        self.clients[c].seq += 1;
        let seq = self.clients[c].seq;
        let key = format!("k{}", self.rng.below(self.o.keys as u64));
        let value = format!("{c}.{seq}");
        let roll = self.rng.below(100);
        let (input, read_index) = match roll {
            0..=29 => (KvInput::Put { key, value }, false),
            30..=44 => {
                let expected = self.guess_value(&key);
                (KvInput::Cas { key, expected, new: value }, false)
            }
            45..=54 => (KvInput::Delete { key }, false),
            55..=89 => (KvInput::Get { key }, true),
            _ => (KvInput::Get { key }, false),
        };
        let target = self.pick_target(c);
        let op = self.history.len();
        self.history.push(Some(Operation {
            client_id: c as u64,
            input: input.clone(),
            call_time: self.now,
            output: None,
            return_time: None,
        }));
        self.commands.push((c as u64, seq));
        self.stats.ops_invoked += 1;
        let is_read = matches!(input, KvInput::Get { .. });
        self.clients[c].state = ClientState::Waiting { op, is_read };
        let timeout = self.o.client_timeout_us;
        self.schedule(timeout, Ev::Client(c, op + 1));
        self.note_with(target, || {
            format!(
                "client {c} op {op}: {}{}",
                describe_input(&input),
                if read_index { " (ReadIndex)" } else { "" }
            )
        });
        // A paused node answers nothing: the request is lost, as to a
        // crashed one, and the client times out.
        if self.paused(target) {
            return Ok(());
        }
        let Some(live) = self.live(target) else { return Ok(()) };
        let res = if read_index {
            let KvInput::Get { key } = input else { unreachable!("reads are gets") };
            let st = live.raw.basic_status();
            let local_term =
                if st.soft_state.raft_state == StateType::Leader { st.hard_state.term } else { 0 };
            let ctx = read_ctx(c, op);
            let floor = self.inv.commit_floor();
            let read = PendingRead { client: c, op, key, local_term, floor };
            let live = self.live(target).expect("up");
            live.reads.insert(ctx.clone(), read);
            // A refused read stays pending until the client's timeout, as a
            // dropped one did before `read_index` said so: refusing it at once
            // lets clients with no think time spin on a leaderless node and
            // spend the run's steps there (the Figure 8 planted bug then goes
            // uncaught). Retrying with a backoff is the better client.
            let _ = live.raw.read_index(ctx);
            Ok(())
        } else {
            let req = Request { client: c as u64, seq, input };
            let res = live.raw.propose(req.encode());
            if res.is_ok() {
                live.proposals.insert((c as u64, seq), op);
            }
            res.map(drop)
        };
        if let Err(err) = res {
            // Refused: no effect. Leave it out and move on.
            self.history[op] = None;
            self.clients[c].state = ClientState::Idle;
            self.clients[c].hint = 0;
            self.stats.ops_refused += 1;
            self.note_with(target, || format!("client {c} op {op} refused: {err}"));
            self.schedule_next_op(c);
        }
        self.after(target)
    }

    /// A value a cas may expect: often the current one as some replica
    /// sees it, so that swaps succeed now and then.
    fn guess_value(&mut self, key: &str) -> Option<String> {
        if self.rng.chance(200) {
            return None;
        }
        let leader = self.leader()?;
        self.nodes[&leader].live.as_ref()?.kv.get(key)
    }

    /// Operation `op` of client `c` returned `out`.
    pub(crate) fn complete(&mut self, c: usize, op: usize, out: KvOutput) {
        let ClientState::Waiting { op: waiting, .. } = self.clients[c].state else { return };
        if waiting != op {
            return;
        }
        if let Some(Some(rec)) = self.history.get_mut(op) {
            rec.output = Some(out);
            rec.return_time = Some(self.now);
        }
        self.stats.ops_ok += 1;
        self.clients[c].state = ClientState::Idle;
        self.note_with(0, || format!("client {c} op {op} returns"));
        self.schedule_next_op(c);
    }

    /// A read returned `value`; `unverifiable` when served under an expired
    /// lease (left out of the check, see the `sim` module docs).
    pub(crate) fn complete_read(
        &mut self,
        c: usize,
        op: usize,
        value: Option<String>,
        unverifiable: bool,
    ) {
        let ClientState::Waiting { op: waiting, .. } = self.clients[c].state else { return };
        if waiting != op {
            return;
        }
        if unverifiable {
            self.history[op] = None;
            self.stats.ops_ok += 1;
            self.clients[c].state = ClientState::Idle;
            self.note_with(0, || format!("client {c} op {op} returns (lease window, unchecked)"));
            self.schedule_next_op(c);
            return;
        }
        self.complete(c, op, KvOutput::Get(value));
    }

    // ----- the operator -----------------------------------------------------

    pub(crate) fn conf_change_event(&mut self) -> Checked {
        match self.phase {
            RunPhase::Faulty => {
                let every = self.o.conf_change_every_us;
                let next = self.rng.range(every / 2, every * 3 / 2);
                self.schedule(next, Ev::ConfChange);
            }
            RunPhase::Liveness { .. } => {
                let et = self.o.election_timeout_us();
                self.schedule(et, Ev::ConfChange);
            }
        }
        let Some(leader) = self.leader() else { return Ok(()) };
        let cs =
            self.nodes[&leader].live.as_ref().map(|l| l.conf_state.clone()).unwrap_or_default();
        let change = if !cs.voters_outgoing.is_empty() {
            // Joint: an explicit one needs the operator to leave it. An
            // automatic one is left by the leader when it applies the change,
            // but only then: if that proposal was refused (a leadership
            // transfer was under way) nothing retries it until another entry
            // is applied, so after the faults the operator leaves it too.
            if cs.auto_leave && self.phase == RunPhase::Faulty {
                return Ok(());
            }
            Some(AnyConfChange::V2(ConfChangeV2::default()))
        } else if self.phase == RunPhase::Faulty {
            self.pick_conf_change(&cs)
        } else {
            None
        };
        let Some(change) = change else { return Ok(()) };
        // New members are started before they are added, as an operator
        // starts a new server and then adds it.
        for id in added_ids(&change) {
            if self.nodes[&id].phase == Phase::Unstarted {
                self.start(id, None)?;
            }
        }
        let live = self.live(leader).expect("leader is up");
        let res = live.raw.propose_conf_change(change.clone());
        self.stats.conf_changes_proposed += 1;
        self.note_with(leader, || {
            format!(
                "operator proposes {} -> {res:?} (config {})",
                describe_change(&change),
                describe_cs(&cs)
            )
        });
        self.after(leader)
    }

    /// A membership change that is valid against `cs` (a simple config).
    fn pick_conf_change(&mut self, cs: &ConfState) -> Option<AnyConfChange> {
        let member_ids = members(cs);
        let fresh: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| {
                !member_ids.contains(&n.id)
                    && !self.removed.contains(&n.id)
                    && n.phase != Phase::Decommissioned
            })
            .map(|n| n.id)
            .collect();
        let voters = cs.voters.clone();
        let learners = cs.learners.clone();
        use ConfChangeType::*;
        let mut choices: Vec<Vec<(ConfChangeType, u64)>> = Vec::new();
        if let Some(&new) = fresh.first() {
            choices.push(vec![(ConfChangeAddLearnerNode, new)]);
            choices.push(vec![(ConfChangeAddNode, new)]);
            if voters.len() >= 3 {
                let old = *self.rng.pick(&voters);
                choices.push(vec![(ConfChangeAddNode, new), (ConfChangeRemoveNode, old)]);
            }
        }
        if !learners.is_empty() {
            let l = *self.rng.pick(&learners);
            choices.push(vec![(ConfChangeAddNode, l)]);
            choices.push(vec![(ConfChangeRemoveNode, l)]);
        }
        // Removals and demotions keep three voters: with two, a voter that
        // lags behind the change (and so still counts removed nodes as its
        // peers) can outbid the other's elections for a long time.
        if voters.len() > 3 {
            let v = *self.rng.pick(&voters);
            choices.push(vec![(ConfChangeRemoveNode, v)]);
            choices.push(vec![(ConfChangeAddLearnerNode, v)]);
        }
        if choices.is_empty() {
            return None;
        }
        let changes = self.rng.pick(&choices).clone();
        // V1 carries one change (a demotion is fine: one voter changes).
        if changes.len() == 1 && self.rng.chance(500) {
            let (t, id) = changes[0];
            return Some(AnyConfChange::V1(ConfChange {
                change_type: t as i32,
                node_id: id,
                ..ConfChange::default()
            }));
        }
        // Auto is a simple change for one node and joint (left
        // automatically) for more; the other two are always joint.
        let transition = *self.rng.pick(&[
            ConfChangeTransition::ConfChangeTransitionAuto,
            ConfChangeTransition::ConfChangeTransitionJointImplicit,
            ConfChangeTransition::ConfChangeTransitionJointExplicit,
        ]);
        Some(AnyConfChange::V2(ConfChangeV2 {
            transition: transition as i32,
            changes: changes
                .into_iter()
                .map(|(t, id)| ConfChangeSingle { change_type: t as i32, node_id: id })
                .collect(),
            context: Bytes::new(),
        }))
    }

    pub(crate) fn transfer_event(&mut self) -> Checked {
        if self.phase != RunPhase::Faulty {
            return Ok(());
        }
        let every = self.o.transfer_every_us;
        let next = self.rng.range(every / 2, every * 3 / 2);
        self.schedule(next, Ev::Transfer);
        let Some(leader) = self.leader() else { return Ok(()) };
        let live = self.live(leader).expect("leader is up");
        let others: Vec<u64> =
            live.conf_state.voters.iter().copied().filter(|&v| v != leader).collect();
        if others.is_empty() {
            return Ok(());
        }
        let to = *self.rng.pick(&others);
        let live = self.live(leader).expect("leader is up");
        live.raw.transfer_leader(to);
        let ticks = live.ticks;
        live.transfer_ticks.push(ticks);
        self.stats.transfers += 1;
        self.note_with(leader, || format!("operator asks {leader} to transfer leadership to {to}"));
        self.after(leader)
    }
}

fn added_ids(change: &AnyConfChange) -> Vec<u64> {
    let v2 = change.as_v2();
    v2.changes
        .iter()
        .filter(|c| c.change_type != ConfChangeType::ConfChangeRemoveNode as i32)
        .map(|c| c.node_id)
        .collect()
}

fn describe_change(change: &AnyConfChange) -> String {
    match change {
        AnyConfChange::V1(cc) => {
            format!("v1 {:?} {}", ConfChangeType::try_from(cc.change_type), cc.node_id)
        }
        AnyConfChange::V2(cc) => {
            let parts: Vec<String> = cc
                .changes
                .iter()
                .map(|c| format!("{:?} {}", ConfChangeType::try_from(c.change_type), c.node_id))
                .collect();
            format!("v2 {:?} [{}]", ConfChangeTransition::try_from(cc.transition), parts.join(", "))
        }
    }
}

fn describe_input(input: &KvInput) -> String {
    match input {
        KvInput::Get { key } => format!("get({key})"),
        KvInput::Put { key, value } => format!("put({key}, {value})"),
        KvInput::Delete { key } => format!("delete({key})"),
        KvInput::Cas { key, expected, new } => format!("cas({key}, {expected:?} -> {new})"),
    }
}
