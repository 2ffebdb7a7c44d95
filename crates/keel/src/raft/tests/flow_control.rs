//! Flow control of appends to a replicating follower: the inflight window,
//! limited in messages and in bytes, how acknowledgements slide it and how
//! heartbeat responses let an empty append through a full window.

use bytes::Bytes;

use super::*;

fn replicating_leader() -> TestRaft {
    let mut r = new_test_raft(1, 5, 1, new_test_storage(&[1, 2], &[]));
    r.become_candidate();
    r.become_leader();
    r.pr_mut(2).become_replicate();
    r
}

/// Fills the inflight window to node 2 with one proposal per message.
fn fill_window(r: &mut TestRaft) {
    for _ in 0..r.trk.max_inflight {
        r.step(prop(1, 1, b"somedata")).unwrap();
        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgApp]);
    }
}

/// Appends fill the window until it is full; then no more go out.
#[test]
fn msg_app_flow_control_full() {
    let mut r = replicating_leader();
    fill_window(&mut r);
    assert!(r.pr(2).is_paused());
    for i in 0..10 {
        r.step(prop(1, 1, b"somedata")).unwrap();
        assert!(r.read_messages().is_empty(), "#{i}");
    }
}

/// An acknowledgement frees the window up to its index; stale ones free
/// nothing.
#[test]
fn msg_app_flow_control_move_forward() {
    let mut r = replicating_leader();
    fill_window(&mut r);

    // Index 1 is the empty entry; the first proposal (index 2) went with
    // it, so the messages end at 2, 3, 4, ...
    for tt in 2..r.trk.max_inflight as u64 {
        // Slide the window by one message...
        r.step(Message { index: tt, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
        r.read_messages();
        // ...which lets exactly one more through.
        r.step(prop(1, 1, b"somedata")).unwrap();
        let msgs = r.read_messages();
        assert_eq!(types(&msgs), vec![MessageType::MsgApp], "#{tt}");
        assert!(r.pr(2).is_paused(), "#{tt}");

        // Stale acknowledgements change nothing.
        for i in 0..tt {
            r.step(Message { index: i, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
            assert!(r.pr(2).is_paused(), "#{tt}.{i}");
        }
    }
}

/// With the window full, each heartbeat response lets one empty append
/// through (to carry the commit index and probe the follower), and the
/// window stays full.
#[test]
fn msg_app_flow_control_recv_heartbeat() {
    let mut r = replicating_leader();
    fill_window(&mut r);

    for tt in 1..5 {
        for i in 0..tt {
            assert!(r.pr(2).is_paused(), "#{tt}.{i}");
            r.step(msg(2, 1, MessageType::MsgHeartbeatResp)).unwrap();
            let msgs = r.read_messages();
            assert_eq!(types(&msgs), vec![MessageType::MsgApp], "#{tt}.{i}");
            assert!(msgs[0].entries.is_empty(), "#{tt}.{i}");
        }
        // Without heartbeat responses nothing goes out.
        for i in 0..10 {
            assert!(r.pr(2).is_paused(), "#{tt}.{i}");
            r.step(prop(1, 1, b"somedata")).unwrap();
            assert!(r.read_messages().is_empty(), "#{tt}.{i}");
        }
        r.step(msg(2, 1, MessageType::MsgHeartbeatResp)).unwrap();
        r.read_messages();
    }
}

/// Appends are cut by `max_size_per_msg`, and the window limits both the
/// number of messages and the bytes in flight: large entries fill it with
/// fewer messages.
#[test]
fn inflight_messages_and_bytes_limit_replication() {
    let mut cfg = new_test_config(1, 5, 1);
    cfg.max_inflight_msgs = 3;
    cfg.max_size_per_msg = 2048;
    // A little over three messages of the maximum size.
    cfg.max_inflight_bytes = 9000;
    let mut r = raft_with_config(&cfg, new_test_storage(&[1, 2], &[]));
    r.become_candidate();
    r.become_leader();
    r.read_messages();

    // Propose while 2 is probing: small entries, with a run of large ones.
    r.pr_mut(2).become_probe();
    let blob = Bytes::from(vec![b'a'; 1000]);
    let large = Bytes::from(vec![b'b'; 5000]);
    for i in 0..22 {
        let data = if (10..16).contains(&i) { large.clone() } else { blob.clone() };
        r.step(Message {
            entries: vec![Entry { data, ..Entry::default() }],
            ..msg(1, 1, MessageType::MsgProp)
        })
        .unwrap();
    }

    // Probing, only the first proposal went out, with the empty entry.
    let msgs = r.read_messages();
    assert_eq!(types(&msgs), vec![MessageType::MsgApp]);
    assert_eq!(msgs[0].entries.len(), 2);
    assert!(msgs[0].entries[0].data.is_empty());
    assert_eq!(msgs[0].entries[1].data.len(), 1000);

    // Acknowledges `index` and checks the appends that follow (their entry
    // counts); returns the last index sent.
    let mut ack_and_verify = |index: u64, want: &[usize]| -> u64 {
        r.step(Message { index, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
        let msgs = r.read_messages();
        let counts: Vec<usize> = msgs.iter().map(|m| m.entries.len()).collect();
        assert_eq!(counts, want, "after acknowledging {index}");
        assert!(msgs.iter().all(|m| m.msg_type() == MessageType::MsgApp));
        msgs.last().and_then(|m| m.entries.last()).map_or(index, |e| e.index)
    };

    // Replicating now: three messages of two entries each.
    let index = ack_and_verify(msgs[0].entries[1].index, &[2, 2, 2]);
    // The third message holds one large entry.
    let index = ack_and_verify(index, &[2, 1, 1]);
    // Two large entries overflow the byte limit: two messages only.
    let index = ack_and_verify(index, &[1, 1]);
    let index = ack_and_verify(index, &[1, 1]);
    // Small entries again.
    let index = ack_and_verify(index, &[1, 2, 2]);
    ack_and_verify(index, &[2]);
}

/// The byte limit alone (with room for many messages) throttles appends,
/// and acknowledging frees bytes for more.
#[test]
fn inflight_bytes_limit_alone_throttles_appends() {
    let mut cfg = new_test_config(1, 5, 1);
    cfg.max_size_per_msg = 1000;
    cfg.max_inflight_bytes = 2000;
    let mut r = raft_with_config(&cfg, new_test_storage(&[1, 2], &[]));
    r.become_candidate();
    r.become_leader();
    r.pr_mut(2).matched = 1;
    r.pr_mut(2).become_replicate();
    r.read_messages();

    let blob = Bytes::from(vec![b'a'; 800]);
    let mut sent = Vec::new();
    for _ in 0..6 {
        r.step(Message {
            entries: vec![Entry { data: blob.clone(), ..Entry::default() }],
            ..msg(1, 1, MessageType::MsgProp)
        })
        .unwrap();
        sent.extend(r.read_messages());
    }
    // 800 + 800 is below the limit, a third message takes it above: full.
    let indexes: Vec<u64> = sent.iter().flat_map(|m| m.entries.iter().map(|e| e.index)).collect();
    assert_eq!(indexes, vec![2, 3, 4]);
    let pr = r.pr(2);
    assert_eq!((pr.inflights.count(), pr.inflights.bytes()), (3, 2400));
    assert!(pr.inflights.full());
    assert!(pr.is_paused());

    // Acknowledging the first frees 800 bytes: one more goes out.
    r.step(Message { index: 2, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
    let msgs = r.read_messages();
    let indexes: Vec<u64> = msgs.iter().flat_map(|m| m.entries.iter().map(|e| e.index)).collect();
    assert_eq!(indexes, vec![5]);
    assert!(r.pr(2).is_paused());

    // Acknowledging everything sent lets the rest out.
    r.step(Message { index: 5, ..msg(2, 1, MessageType::MsgAppResp) }).unwrap();
    let msgs = r.read_messages();
    let indexes: Vec<u64> = msgs.iter().flat_map(|m| m.entries.iter().map(|e| e.index)).collect();
    assert_eq!(indexes, vec![6, 7]);
}
