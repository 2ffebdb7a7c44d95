//! One `Node`, bootstrapped as a single-voter cluster, proposing and applying
//! ten writes. Run with `cargo run -p keel --example single_node`.

#![allow(clippy::print_stdout, reason = "an example prints what it did")]

use bytes::Bytes;
use keel::raftpb::EntryType;
use keel::{Config, MemoryStorage, Node, Peer, Ready, StateType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let storage = MemoryStorage::new();
    let node = Node::start(&Config::new(1), storage.clone(), &[Peer { id: 1, ..Peer::default() }])?;

    let handle = |rd: &Ready| -> Result<Vec<Bytes>, keel::StorageError> {
        // Persist first (snapshot, hard state, entries), then apply.
        if let Some(snap) = &rd.snapshot {
            storage.apply_snapshot(snap.clone())?;
        }
        if let Some(hs) = rd.hard_state {
            storage.set_hard_state(hs);
        }
        storage.append(&rd.entries)?;
        Ok(rd
            .committed_entries
            .iter()
            .filter(|e| e.entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect())
    };

    // The first Ready holds the bootstrap configuration; once it is applied
    // the node may campaign.
    let rd = node.ready()?;
    handle(&rd)?;
    node.advance()?;
    node.campaign()?;
    while node.status()?.basic.soft_state.raft_state != StateType::Leader {
        let rd = node.ready()?;
        handle(&rd)?;
        node.advance()?;
    }

    for i in 0..10 {
        node.propose(Bytes::from(format!("write {i}")))?;
    }
    let mut applied = Vec::new();
    while applied.len() < 10 {
        let rd = node.ready()?;
        applied.extend(handle(&rd)?);
        node.advance()?;
    }
    for data in &applied {
        println!("applied {}", String::from_utf8_lossy(data));
    }
    println!("commit index {}", node.status()?.basic.hard_state.commit);
    node.stop();
    Ok(())
}
