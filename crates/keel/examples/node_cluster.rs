//! Three `Node`s in one process, talking over channels: writes replicated to
//! all, a fourth member added (it catches up from the log), one removed.
//! Run with `cargo run -p keel --example node_cluster`.
//!
//! Each member has a driver thread (take a `Ready`, persist, send, apply,
//! `advance`), an inbox thread (step peers' messages) and a ticker.
#![allow(clippy::print_stdout, reason = "an example prints what it did")]
#![allow(clippy::disallowed_methods, reason = "an example runs in real time")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel::raftpb::{AnyConfChange, ConfChangeV2, EntryType, Message};
use keel::{Config, MemoryStorage, Node, NodeOptions, Peer, StateType};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Every member's inbox, by id; a message to an unknown id is dropped.
#[derive(Clone, Default)]
struct Net(Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>);

impl Net {
    fn send(&self, msgs: Vec<Message>) {
        let inboxes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for m in msgs {
            if let Some(tx) = inboxes.get(&m.to) {
                let _ = tx.send(m);
            }
        }
    }
}

struct Member {
    node: Node,
    applied: Arc<Mutex<Vec<Bytes>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Member {
    /// Starts member `id`: bootstrapped with `peers`, or (empty) joining.
    fn start(id: u64, peers: &[u64], net: &Net) -> Result<Member, Error> {
        let mut config = Config::new(id);
        config.election_tick = 10;
        config.heartbeat_tick = 1;
        let storage = MemoryStorage::new();
        // A call the loop cannot take in time fails instead of hanging.
        let opts = NodeOptions {
            request_timeout: Some(Duration::from_millis(50)),
            ..NodeOptions::default()
        };
        let node = if peers.is_empty() {
            Node::restart_with(&config, storage.clone(), opts)?
        } else {
            let peers: Vec<Peer> =
                peers.iter().map(|&p| Peer { id: p, ..Peer::default() }).collect();
            Node::start_with(&config, storage.clone(), &peers, opts)?
        };
        let (tx, rx) = mpsc::channel();
        net.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let applied = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (node, net, applied, stop) =
                (node.clone(), net.clone(), applied.clone(), stop.clone());
            std::thread::spawn(move || drive(&node, &storage, &net, &applied, &stop))
        };
        let inbox = {
            let (node, stop) = (node.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = rx.recv_timeout(Duration::from_millis(50)) {
                        // A refused message is logged by the core; go on.
                        let _ = node.step(m);
                    }
                }
            })
        };
        let ticker = {
            let (node, stop) = (node.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    let _ = node.tick();
                }
            })
        };
        Ok(Member { node, applied, stop, threads: vec![driver, inbox, ticker] })
    }

    fn applied(&self) -> Vec<Bytes> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.node.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The application's loop, in the order etcd's docs give: persist the
/// snapshot, hard state and entries; send the messages; apply the committed
/// entries (configuration changes through `apply_conf_change_at`); advance.
fn drive(
    node: &Node,
    storage: &MemoryStorage,
    net: &Net,
    applied: &Mutex<Vec<Bytes>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        // `ready` waits until there is one, or the node stops.
        let Ok(rd) = node.ready() else { return };
        if let Some(snap) = &rd.snapshot
            && storage.apply_snapshot(snap.clone()).is_err()
        {
            return;
        }
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        if storage.append(&rd.entries).is_err() {
            return;
        }
        net.send(rd.messages);
        for e in &rd.committed_entries {
            match AnyConfChange::from_entry(e) {
                Ok(Some(cc)) => {
                    let _ = node.apply_conf_change_at(e.index, cc);
                }
                Ok(None) if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() => {
                    applied.lock().unwrap_or_else(|p| p.into_inner()).push(e.data.clone());
                }
                _ => {}
            }
        }
        if node.advance().is_err() {
            return;
        }
    }
}

/// Waits (bounded) until `ok` holds.
fn wait(what: &str, mut ok: impl FnMut() -> bool) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn leader_of(m: &Member) -> u64 {
    m.node.status().map_or(0, |s| s.basic.soft_state.lead)
}

fn main() -> Result<(), Error> {
    let net = Net::default();
    let mut members: HashMap<u64, Member> = HashMap::new();
    for id in 1..=3 {
        members.insert(id, Member::start(id, &[1, 2, 3], &net)?);
    }
    // A member may campaign once its bootstrap configuration is applied; if
    // another wins first, it hands leadership over.
    wait("the bootstrap applied", || {
        members[&1].node.status().is_ok_and(|s| s.basic.applied >= 3)
    })?;
    members[&1].node.campaign()?;
    wait("a leader", || leader_of(&members[&1]) != 0)?;
    let first = leader_of(&members[&1]);
    if first != 1 {
        members[&first].node.transfer_leadership(1)?;
    }
    wait("member 1 to lead", || {
        members[&1].node.status().is_ok_and(|s| s.basic.soft_state.raft_state == StateType::Leader)
    })?;
    println!("member 1 leads");

    for w in ["a", "b", "c"] {
        let at = members[&1].node.propose(Bytes::from(w))?;
        println!("proposed {w:?}: {at:?}");
    }
    wait("three writes on every member", || members.values().all(|m| m.applied().len() == 3))?;
    println!("every member applied a, b, c");

    // Add member 4: the change commits, then the new member starts empty and
    // learns the log (and the configuration) from the leader.
    members[&1].node.propose_conf_change(ConfChangeV2::add_voter(4))?;
    wait("member 4 in the configuration", || {
        members[&1].node.status().is_ok_and(|s| s.config.voters().contains(4))
    })?;
    members.insert(4, Member::start(4, &[], &net)?);
    members[&1].node.propose(Bytes::from("d"))?;
    wait("member 4 to catch up", || members[&4].applied().len() == 4)?;
    println!("member 4 joined and applied {:?}", members[&4].applied());

    // Remove member 2, then stop it.
    members[&1].node.propose_conf_change(ConfChangeV2::remove(2))?;
    wait("member 2 out of the configuration", || {
        members[&1].node.status().is_ok_and(|s| !s.config.voters().contains(2))
    })?;
    if let Some(m) = members.remove(&2) {
        m.stop();
    }
    members[&1].node.propose(Bytes::from("e"))?;
    wait("e on members 1, 3 and 4", || members.values().all(|m| m.applied().len() == 5))?;
    let logs: Vec<Vec<Bytes>> = members.values().map(Member::applied).collect();
    assert!(logs.windows(2).all(|w| w[0] == w[1]), "the members disagree: {logs:?}");
    println!(
        "members 1, 3, 4 (leader {}) applied the same five writes: {:?}",
        leader_of(&members[&1]),
        logs[0]
    );
    for (_, m) in members.drain() {
        m.stop();
    }
    Ok(())
}
