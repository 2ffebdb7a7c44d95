//! Regression tests of the loop's wake-ups, calls made while holding it,
//! and how it ends (each failed before its fix).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::*;
use crate::raftpb::{ConfState, Entry, HardState, MessageType};
use crate::storage::MemoryStorage;

fn peers(ids: &[u64]) -> Vec<Peer> {
    ids.iter().map(|&id| Peer { id, ..Peer::default() }).collect()
}

fn hb(commit: u64) -> Message {
    let mut m = Message::new(MessageType::MsgHeartbeat);
    (m.from, m.to, m.term, m.commit) = (2, 1, 1, commit);
    m
}

/// A follower whose storage queues were full when a Ready was due: the
/// storage thread takes the work (making room), and a hard-state-only append
/// has no response to step back, so only the room made can wake the loop for
/// the Ready it held (a heartbeat response to the leader), not a later tick.
#[test]
fn room_made_in_a_full_storage_queue_wakes_the_loop() {
    let storage = MemoryStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2, 3],
        ..ConfState::default()
    });
    let ents: Vec<Entry> =
        (1..=3).map(|i| Entry { term: 1, index: i, ..Entry::default() }).collect();
    storage.append(&ents).unwrap();
    storage.set_hard_state(HardState { term: 1, vote: 0, commit: 0 });
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let opts = NodeOptions {
        storage_queue_capacity: 1,
        request_timeout: Some(Duration::from_secs(5)),
        ..NodeOptions::default()
    };
    let node = Node::restart_with(&config, storage.clone(), opts).unwrap();
    node.step(hb(1)).unwrap();
    let rd1 = node.ready().unwrap();
    assert!(rd1.messages.iter().any(|m| m.msg_type() == MessageType::MsgHeartbeatResp));
    node.step(hb(2)).unwrap(); // its Ready is held: both queues are full
    std::thread::sleep(Duration::from_millis(100));
    assert!(node.try_ready().unwrap().is_none());
    let apply = node.apply_work().try_recv().unwrap().expect("apply of entry 1");
    for r in apply.into_parts().1 {
        node.step_local(r).unwrap();
    }
    let mut append = node.append_work().try_recv().unwrap().expect("commit-only append");
    storage.set_hard_state(append.hard_state().unwrap());
    let resp = append.take_responses();
    assert!(resp.local.is_empty() && resp.peers.is_empty(), "nothing to step back");
    // Both queues now have room and nothing else holds the Ready back.
    std::thread::sleep(Duration::from_millis(300));
    let got = node.try_ready().unwrap();
    let woken_by_tick = got.is_none() && {
        node.tick().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        node.try_ready().unwrap().is_some()
    };
    node.stop();
    assert!(!woken_by_tick, "the Ready came only after an unrelated tick (lost wake-up)");
    assert!(got.is_some());
}

/// A ReadyHandler calls `advance` (allowed: it waits for no answer) while
/// the request queue is full, which only the handler's own thread (the
/// loop's holder) could drain: the call goes on the holder's own queue.
#[test]
fn advance_from_a_ready_handler_with_a_full_queue_returns() {
    let cell: Arc<OnceLock<Node>> = Arc::new(OnceLock::new());
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<Result<()>>();
    let go_rx = Mutex::new(go_rx);
    let first = AtomicBool::new(true);
    let handler = {
        let cell = Arc::clone(&cell);
        ReadyHandler::new(move |_rd| {
            if !first.swap(false, SeqCst) {
                return;
            }
            let _ = entered_tx.send(());
            go_rx.lock().unwrap().recv().unwrap();
            let node = loop {
                if let Some(n) = cell.get() {
                    break n;
                }
                std::thread::yield_now();
            };
            let _ = done_tx.send(node.advance());
        })
    };
    let opts = NodeOptions { queue_capacity: 1, on_ready: Some(handler), ..NodeOptions::default() };
    let node = Node::start_with(&Config::new(1), MemoryStorage::new(), &peers(&[1]), opts).unwrap();
    let _ = cell.set(node.clone());
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    node.tick().unwrap(); // queued behind the handler: the queue is now full
    go.send(()).unwrap();
    let res = done.recv_timeout(Duration::from_secs(2));
    let hung = res.is_err();
    std::mem::forget(node); // If the loop were wedged, stop() would block too.
    assert!(!hung, "advance() in the ReadyHandler never returned (deadlock)");
}

/// `stop()` from a ReadyHandler run inline by a blocking caller returns: it
/// must not join the node's thread, which waits for the lock the caller holds.
#[test]
fn stop_from_an_inline_ready_handler_returns() {
    let cell: Arc<OnceLock<Node>> = Arc::new(OnceLock::new());
    let stop_now = Arc::new(AtomicBool::new(false));
    let (rd_tx, rd_rx) = mpsc::channel::<Ready>();
    let rd_tx = Mutex::new(rd_tx);
    let handler = {
        let (cell, stop_now) = (Arc::clone(&cell), Arc::clone(&stop_now));
        ReadyHandler::new(move |rd| {
            if stop_now.load(SeqCst) {
                cell.get().unwrap().stop();
            } else {
                let _ = rd_tx.lock().unwrap().send(rd);
            }
        })
    };
    let opts = NodeOptions { on_ready: Some(handler), ..NodeOptions::default() };
    let storage = MemoryStorage::new();
    let node = Node::start_with(&Config::new(1), storage.clone(), &peers(&[1]), opts).unwrap();
    let _ = cell.set(node.clone());
    let rd = rd_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    storage.set_hard_state(rd.hard_state.unwrap());
    storage.append(&rd.entries).unwrap();
    node.advance().unwrap();
    std::thread::sleep(Duration::from_millis(200)); // the node's thread is idle
    stop_now.store(true, SeqCst);
    let (done_tx, done) = mpsc::channel();
    let n2 = node.clone();
    std::thread::spawn(move || {
        let _ = n2.campaign(); // runs inline here; its Ready goes to the handler here
        let _ = done_tx.send(());
    });
    let hung = done.recv_timeout(Duration::from_secs(2)).is_err();
    std::mem::forget(node);
    assert!(!hung, "stop() from the ReadyHandler never returned (deadlock)");
}

/// Storage work that blocks until released, to hold the loop.
struct Gate {
    block: AtomicBool,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
    storage: MemoryStorage,
}

impl InlineStorage for Gate {
    fn append(&self, mut w: AppendWork) -> std::result::Result<Vec<Message>, AppendWork> {
        if self.block.load(SeqCst)
            && let Some(tx) = self.entered.lock().unwrap().take()
        {
            let _ = tx.send(());
            let _ = self.release.lock().unwrap().recv();
        }
        if let Some(s) = w.snapshot() {
            self.storage.apply_snapshot(s.clone()).unwrap();
        }
        if let Some(hs) = w.hard_state() {
            self.storage.set_hard_state(hs);
        }
        self.storage.append(w.entries()).unwrap();
        Ok(w.take_responses().local)
    }
    fn apply(&self, w: ApplyWork) -> std::result::Result<Vec<Message>, ApplyWork> {
        Ok(w.into_parts().1)
    }
}

/// Asynchronous storage writes: `ready()` with the loop held and the request
/// queue full still returns the `Ready` it took (it once queued a request to
/// say so, which timed out and dropped the `Ready`).
#[test]
fn a_blocking_ready_keeps_the_ready_it_took() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let storage = MemoryStorage::new();
    let gate = Arc::new(Gate {
        block: AtomicBool::new(false),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
        storage: storage.clone(),
    });
    let mut config = Config::new(1);
    config.async_storage_writes = true;
    let inline: Arc<dyn InlineStorage> = gate.clone();
    let opts = NodeOptions {
        queue_capacity: 1,
        request_timeout: Some(Duration::from_millis(200)),
        inline_storage: Some(inline),
        ..NodeOptions::default()
    };
    let node = Node::start_with(&config, storage, &peers(&[1]), opts).unwrap();
    for _ in 0..500 {
        if node.status().unwrap().basic.applied >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    gate.block.store(true, SeqCst);
    let n2 = node.clone();
    let campaigner = std::thread::spawn(move || n2.campaign());
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    node.tick().unwrap();
    assert_eq!(node.inner.readies.len(), 1, "a Ready is waiting");
    let r = node.ready();
    let left = node.try_ready();
    release.send(()).unwrap();
    let _ = campaigner.join();
    node.stop();
    assert!(
        r.is_ok() || matches!(left, Ok(Some(_))),
        "ready() returned {r:?} and the Ready it took is gone ({left:?})"
    );
}

/// A `MsgStorageApplyResp` for entries never committed is refused at the
/// gateway (raft would panic on it), and the node goes on.
#[test]
fn an_apply_response_beyond_the_commit_index_is_refused() {
    let node = Node::start_with(
        &Config::new(1),
        MemoryStorage::new(),
        &peers(&[1]),
        NodeOptions::default(),
    )
    .unwrap();
    let bogus = Message {
        from: crate::LOCAL_APPLY_THREAD,
        to: 1,
        entries: vec![Entry { term: 1, index: 100, ..Entry::default() }],
        ..Message::new(MessageType::MsgStorageApplyResp)
    };
    node.step_local(bogus).unwrap();
    assert!(node.status().is_ok(), "the node still answers");
    node.stop();
}

/// A panic on the loop's thread (here a `ReadyHandler`'s) ends the node as
/// a stop does: queued and later calls are answered `Stopped`, none hangs.
#[test]
fn a_panic_in_the_loop_stops_the_node_and_answers_every_caller() {
    let handler = ReadyHandler::new(|_rd| panic!("a handler that fails"));
    let opts = NodeOptions { on_ready: Some(handler), ..NodeOptions::default() };
    let node = Node::start_with(&Config::new(1), MemoryStorage::new(), &peers(&[1]), opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    // Queued, so that the node's thread runs it (and its Ready).
    let _ = rt.block_on(node.campaign_async());
    let answered = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(Error::Stopped) = node.status_async().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    });
    assert!(answered.is_ok(), "a call after the panic was never answered Stopped");
    assert!(matches!(node.status(), Err(Error::Stopped)));
    node.stop();
}
