//! The `single_node` loop from tokio tasks: one task drives the Ready loop
//! with `ready_async`, another ticks, and the main task awaits proposals.
//! Nothing blocks the runtime. Run with `cargo run -p keel --example async_node`.

#![allow(clippy::print_stdout, reason = "an example prints what it did")]

use std::time::Duration;

use bytes::Bytes;
use keel::raftpb::EntryType;
use keel::{Config, Error, MemoryStorage, Node, Peer, StateType};
use tokio::sync::mpsc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let storage = MemoryStorage::new();
    let node = Node::start(&Config::new(1), storage.clone(), &[Peer { id: 1, ..Peer::default() }])?;
    let (applied_tx, mut applied_rx) = mpsc::unbounded_channel();

    // The Ready loop: persist, apply, advance.
    let driver = tokio::spawn({
        let node = node.clone();
        async move {
            loop {
                let rd = match node.ready_async().await {
                    Ok(rd) => rd,
                    Err(Error::Stopped) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if let Some(hs) = rd.hard_state {
                    storage.set_hard_state(hs);
                }
                storage.append(&rd.entries)?;
                for e in &rd.committed_entries {
                    if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                        let _ = applied_tx.send(e.data.clone());
                    }
                }
                node.advance_async().await?;
            }
        }
    });
    // The clock: a single voter elects itself at its first election timeout.
    let ticker = tokio::spawn({
        let node = node.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(5));
            while node.tick_async().await.is_ok() {
                every.tick().await;
            }
        }
    });

    while node.status_async().await?.basic.soft_state.raft_state != StateType::Leader {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..10 {
        node.propose_async(Bytes::from(format!("write {i}"))).await?;
    }
    for _ in 0..10 {
        let data = tokio::time::timeout(Duration::from_secs(5), applied_rx.recv())
            .await?
            .ok_or("the driver stopped")?;
        println!("applied {}", String::from_utf8_lossy(&data));
    }
    node.stop();
    driver.await??;
    ticker.await?;
    Ok(())
}
