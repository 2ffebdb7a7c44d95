//! Three `RawNode`s in one process, driven by hand: the Ready loop to copy.
//! Run with `cargo run -p keel --example three_nodes`; `cargo test` runs it
//! too (it is a test target) and fails unless every node ends in the same
//! state.
//!
//! The story: three voters elect a leader and apply proposals (one sent to
//! a follower, which forwards it). Node 3 crashes; while it is down every
//! node takes snapshots and compacts its log, so that when node 3 restarts
//! from its storage the leader no longer has the entries it lacks and sends
//! it a snapshot (`MsgSnap`). Node 4 joins with empty storage as a learner
//! (a conf change), catches up the same way, and is promoted to voter. At
//! the end all four nodes hold the same applied state.
//!
//! Everything is single-threaded and deterministic: time is `tick()`, the
//! network is a queue of messages delivered between rounds.
#![allow(clippy::print_stdout, reason = "an example prints what it did")]

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use keel::raftpb::{AnyConfChange, ConfChangeV2, ConfState, Entry, Message, MessageType, Snapshot};
use keel::{Config, MemoryStorage, Proposed, RawNode, Ready, SnapshotStatus, StateType, Storage};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A member takes a snapshot every this many applied entries...
const SNAPSHOT_EVERY: u64 = 8;
/// ...and then keeps this many entries before it, for followers that lag a
/// little (they catch up from the log instead of a snapshot).
const CATCHUP_ENTRIES: u64 = 2;

/// The replicated state machine: the list of applied values, and the index
/// and configuration it reflects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    values: Vec<Bytes>,
    applied: u64,
    conf_state: ConfState,
}

impl State {
    /// The state a snapshot carries (`data` is the values, one a line).
    fn from_snapshot(snap: &Snapshot) -> State {
        let values = snap
            .data
            .split(|&b| b == b'\n')
            .filter(|v| !v.is_empty())
            .map(Bytes::copy_from_slice)
            .collect();
        State { values, applied: snap.metadata.index, conf_state: snap.metadata.conf_state.clone() }
    }

    fn encode(&self) -> Bytes {
        Bytes::from(self.values.join(&b'\n'))
    }
}

/// One node: the raft state machine, its storage (the application's
/// "disk": it survives a crash) and the application's state (lost in a
/// crash, rebuilt from the storage's snapshot and the log).
struct Member {
    node: RawNode<MemoryStorage>,
    storage: MemoryStorage,
    state: State,
}

impl Member {
    /// Starts (or restarts) a node on `storage`. Its state starts from the
    /// storage's snapshot; raft hands the committed entries after it out
    /// again (`Config::applied` is left at 0, meaning the snapshot's index).
    fn start(id: u64, storage: MemoryStorage) -> Result<Member, Error> {
        let config = Config::new(id);
        let node = RawNode::new(&config, storage.clone())?;
        let state = State::from_snapshot(&storage.snapshot()?);
        Ok(Member { node, storage, state })
    }
}

/// The cluster: live members, the storage of crashed ones, and the network.
#[derive(Default)]
struct Cluster {
    members: BTreeMap<u64, Member>,
    crashed: BTreeMap<u64, MemoryStorage>,
    /// Messages sent and not yet delivered.
    network: VecDeque<Message>,
    /// How many snapshots were delivered, by recipient.
    snapshots_delivered: BTreeMap<u64, usize>,
}

impl Cluster {
    /// Handles every node's outstanding `Ready`s, then delivers the
    /// messages they sent; repeats until nothing is left to do.
    fn settle(&mut self) -> Result<(), Error> {
        for _ in 0..10_000 {
            let mut busy = false;
            for member in self.members.values_mut() {
                while member.node.has_ready() {
                    busy = true;
                    let rd = member.node.ready();
                    handle_ready(member, rd, &mut self.network)?;
                }
            }
            while let Some(m) = self.network.pop_front() {
                busy = true;
                self.deliver(m);
            }
            if !busy {
                return Ok(());
            }
        }
        Err("the cluster did not settle".into())
    }

    /// Delivers `m`, or drops it if its recipient is down. A leader learns
    /// how a snapshot went through `report_snapshot`, and that a peer is
    /// unreachable through `report_unreachable`.
    fn deliver(&mut self, m: Message) {
        let (from, to, is_snap) = (m.from, m.to, m.msg_type() == MessageType::MsgSnap);
        let delivered = match self.members.get_mut(&to) {
            // A refused message is logged by the core; a real transport
            // would count it and go on.
            Some(member) => member.node.step(m).is_ok(),
            None => false,
        };
        if is_snap && delivered {
            *self.snapshots_delivered.entry(to).or_default() += 1;
        }
        if let Some(sender) = self.members.get_mut(&from) {
            if is_snap {
                let status =
                    if delivered { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                sender.node.report_snapshot(to, status);
            } else if !delivered {
                sender.node.report_unreachable(to);
            }
        }
    }

    /// Ticks every node `n` times, settling after each tick.
    fn tick(&mut self, n: usize) -> Result<(), Error> {
        for _ in 0..n {
            for member in self.members.values_mut() {
                member.node.tick();
            }
            self.settle()?;
        }
        Ok(())
    }

    fn leader(&self) -> Option<u64> {
        self.members.iter().find_map(|(&id, m)| {
            (m.node.basic_status().soft_state.raft_state == StateType::Leader).then_some(id)
        })
    }

    /// Ticks until some node leads.
    fn wait_for_leader(&mut self) -> Result<u64, Error> {
        for _ in 0..100 {
            if let Some(id) = self.leader() {
                return Ok(id);
            }
            self.tick(1)?;
        }
        Err("no leader was elected".into())
    }

    fn member(&mut self, id: u64) -> Result<&mut Member, Error> {
        self.members.get_mut(&id).ok_or_else(|| format!("node {id} is not running").into())
    }

    /// Proposes `value` on node `id` and settles.
    fn propose(&mut self, id: u64, value: &str) -> Result<Proposed, Error> {
        let proposed = self.member(id)?.node.propose(Bytes::copy_from_slice(value.as_bytes()))?;
        self.settle()?;
        Ok(proposed)
    }

    /// Proposes a configuration change on the leader and ticks until every
    /// running node has applied it.
    fn change_membership(&mut self, cc: ConfChangeV2) -> Result<(), Error> {
        let leader = self.wait_for_leader()?;
        let Proposed::Appended(at) = self.member(leader)?.node.propose_conf_change(cc)? else {
            return Err("the leader forwarded its own conf change".into());
        };
        for _ in 0..100 {
            self.tick(1)?;
            if self.members.values().all(|m| m.state.applied >= at.index) {
                return Ok(());
            }
        }
        Err(format!("the conf change at {} was not applied everywhere", at.index).into())
    }

    /// Stops node `id`, keeping only its storage.
    fn crash(&mut self, id: u64) -> Result<(), Error> {
        let member = self.members.remove(&id).ok_or("crashing a node that is not running")?;
        self.crashed.insert(id, member.storage);
        Ok(())
    }

    /// Restarts node `id` from the storage it crashed with.
    fn restart(&mut self, id: u64) -> Result<(), Error> {
        let storage = self.crashed.remove(&id).ok_or("restarting a node that did not crash")?;
        self.members.insert(id, Member::start(id, storage)?);
        Ok(())
    }
}

/// The application's part of the loop, in the order etcd requires.
fn handle_ready(
    member: &mut Member,
    mut rd: Ready,
    network: &mut VecDeque<Message>,
) -> Result<(), Error> {
    // 1. Persist. A snapshot goes to storage first (it replaces the log),
    //    then the entries, then the hard state; a real disk syncs here when
    //    `rd.must_sync`. The state machine restores the snapshot too.
    if let Some(snap) = rd.snapshot.take() {
        member.state = State::from_snapshot(&snap);
        member.storage.apply_snapshot(snap)?;
    }
    member.storage.append(&rd.entries)?;
    if let Some(hs) = rd.hard_state {
        member.storage.set_hard_state(hs);
    }
    // 2. Send, only now that what the messages promise is durable.
    network.extend(rd.messages.drain(..));
    // 3. Apply the committed entries, in order.
    for entry in &rd.committed_entries {
        apply(member, entry)?;
    }
    // 4. Snapshot and compact now and then.
    maybe_snapshot(member)?;
    // 5. Tell raft this Ready is done.
    member.node.advance();
    Ok(())
}

fn apply(member: &mut Member, entry: &Entry) -> Result<(), Error> {
    if entry.index <= member.state.applied {
        // Already in the state (a snapshot restored past it): skip it, and
        // above all do not apply a conf change again.
        return Ok(());
    }
    if let Some(cc) = AnyConfChange::from_entry(entry)? {
        member.state.conf_state = member.node.apply_conf_change(&cc)?;
    } else if !entry.data.is_empty() {
        // An empty normal entry is the one a new leader appends.
        member.state.values.push(entry.data.clone());
    }
    member.state.applied = entry.index;
    Ok(())
}

fn maybe_snapshot(member: &mut Member) -> Result<(), Error> {
    let state = &member.state;
    let last_snapshot = member.storage.snapshot()?.metadata.index;
    if state.applied < last_snapshot + SNAPSHOT_EVERY {
        return Ok(());
    }
    member.storage.create_snapshot(state.applied, Some(&state.conf_state), state.encode())?;
    let compact_to = state.applied - CATCHUP_ENTRIES;
    if compact_to > member.storage.first_index()? {
        member.storage.compact(compact_to)?;
    }
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(format!("check failed: {what}").into()) }
}

/// The whole story; `Err` if any node ends up different.
fn run() -> Result<(), Error> {
    let mut cluster = Cluster::default();
    let voters = ConfState { voters: vec![1, 2, 3], ..ConfState::default() };
    for id in 1..=3 {
        let storage = MemoryStorage::new_with_conf_state(voters.clone());
        cluster.members.insert(id, Member::start(id, storage)?);
    }
    cluster.member(1)?.node.campaign()?;
    cluster.settle()?;
    let leader = cluster.wait_for_leader()?;
    println!("node {leader} leads");

    let mut expected = Vec::new();
    for i in 0..5 {
        let value = format!("a{i}");
        let proposed = cluster.propose(leader, &value)?;
        check(matches!(proposed, Proposed::Appended(_)), "a leader appends")?;
        expected.push(value);
    }
    let follower = if leader == 2 { 3 } else { 2 };
    let proposed = cluster.propose(follower, "from-a-follower")?;
    check(proposed == Proposed::Forwarded, "a follower forwards")?;
    expected.push("from-a-follower".to_owned());
    println!("{} values applied on three nodes", expected.len());

    // Node 3 crashes; the others go on, snapshot and compact.
    let lagging = if leader == 3 { 2 } else { 3 };
    cluster.crash(lagging)?;
    for i in 0..3 * SNAPSHOT_EVERY {
        let value = format!("b{i}");
        cluster.propose(leader, &value)?;
        expected.push(value);
    }
    let first = cluster.member(leader)?.storage.first_index()?;
    let behind = cluster.crashed[&lagging].last_index()?;
    check(first > behind + 1, "the leader compacted what the crashed node lacks")?;
    println!("node {lagging} is down at index {behind}; the leader's log starts at {first}");

    // It restarts from its storage and catches up through a snapshot.
    cluster.restart(lagging)?;
    cluster.tick(5)?;
    check(cluster.snapshots_delivered.get(&lagging) == Some(&1), "one MsgSnap to the restart")?;

    // Node 4 joins with empty storage: a learner first, then a voter.
    cluster.members.insert(4, Member::start(4, MemoryStorage::new())?);
    cluster.change_membership(ConfChangeV2::add_learner(4))?;
    check(cluster.snapshots_delivered.get(&4) == Some(&1), "one MsgSnap to the learner")?;
    cluster.change_membership(ConfChangeV2::add_voter(4))?;
    let leader = cluster.wait_for_leader()?;
    for i in 0..3 {
        let value = format!("c{i}");
        cluster.propose(leader, &value)?;
        expected.push(value);
    }
    cluster.tick(3)?;

    // Every node applied the same values in the same order, up to the same
    // index, with the same configuration.
    let expected: Vec<Bytes> = expected.into_iter().map(Bytes::from).collect();
    let reference = &cluster.member(leader)?.state.clone();
    check(reference.values == expected, "the leader applied every value once, in order")?;
    check(reference.conf_state.voters == [1, 2, 3, 4], "four voters")?;
    for (id, member) in &cluster.members {
        check(member.state == *reference, &format!("node {id} converged"))?;
        let status = member.node.basic_status();
        check(status.applied == reference.applied, &format!("node {id} told raft it applied"))?;
    }
    println!(
        "4 nodes agree: {} values, applied index {}, snapshots delivered {:?}",
        reference.values.len(),
        reference.applied,
        cluster.snapshots_delivered
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_nodes_converge() {
        if let Err(err) = super::run() {
            panic!("{err}");
        }
    }
}
