//! End-to-end tests over 127.0.0.1 with OS-chosen ports; every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use keel::raftpb::{Message, MessageType, Snapshot, SnapshotMetadata};
use keel_transport::{
    Config, Event, Events, Limits, PeerIdentity, SnapshotStatus, Stats, TlsConfig, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const CLUSTER: u64 = 7;
const WAIT: Duration = Duration::from_secs(10);

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn fast_limits() -> Limits {
    Limits {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        handshake_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

fn start(id: u64, cluster: u64, addr: SocketAddr) -> (Transport, Events) {
    let mut config = Config::new(id, cluster, addr);
    config.limits = fast_limits();
    Transport::start(config).expect("start")
}

/// Members 1 and 2 of `CLUSTER`, each the other's peer.
fn connected_pair() -> ((Transport, Events), (Transport, Events)) {
    let (a, b) = (start(1, CLUSTER, any_port()), start(2, CLUSTER, any_port()));
    a.0.add_peer(2, b.0.local_addr());
    b.0.add_peer(1, a.0.local_addr());
    (a, b)
}

fn heartbeat(from: u64, to: u64, commit: u64) -> Message {
    Message { msg_type: MessageType::MsgHeartbeat as i32, from, to, commit, ..Default::default() }
}

/// The next incoming message, skipping reports; panics after `WAIT`.
async fn next_message(events: &mut Events) -> Message {
    let wait = async {
        loop {
            match events.recv().await {
                Some(Event::Message(m)) => return m,
                Some(_) => continue,
                None => panic!("transport closed"),
            }
        }
    };
    timeout(WAIT, wait).await.expect("no message in time")
}

/// Waits for an event matching `pred`, returning the messages seen before it.
async fn wait_for(events: &mut Events, pred: impl Fn(&Event) -> bool) -> Vec<Message> {
    let mut seen = Vec::new();
    let wait = async {
        loop {
            match events.recv().await {
                Some(e) if pred(&e) => return,
                Some(Event::Message(m)) => seen.push(m),
                Some(_) => {}
                None => panic!("transport closed"),
            }
        }
    };
    timeout(WAIT, wait).await.expect("event did not arrive in time");
    seen
}

/// Polls `stats` until `pred` holds (bounded).
async fn eventually(transport: &Transport, pred: impl Fn(&Stats) -> bool) {
    let wait = async {
        while !pred(&transport.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(WAIT, wait).await.expect("condition not reached in time");
}

/// Nothing but reports has arrived.
fn assert_no_message(events: &mut Events) {
    while let Some(e) = events.try_recv() {
        assert!(!matches!(e, Event::Message(_)), "unexpected {e:?}");
    }
}

/// Delivery between every pair, and the order of each sender is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_transports_deliver_in_order() {
    let (transports, mut events): (Vec<Transport>, Vec<Events>) =
        (1..=3).map(|id| start(id, CLUSTER, any_port())).unzip();
    let addrs: Vec<SocketAddr> = transports.iter().map(Transport::local_addr).collect();
    for (i, t) in transports.iter().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            if i != j {
                t.add_peer(j as u64 + 1, *addr);
            }
        }
    }
    const N: u64 = 500;
    for (i, t) in transports.iter().enumerate() {
        let from = i as u64 + 1;
        for to in (1..=3).filter(|to| *to != from) {
            t.send((1..=N).map(|c| heartbeat(from, to, c)).collect());
        }
    }
    for (i, ev) in events.iter_mut().enumerate() {
        let to = i as u64 + 1;
        let mut next_commit = [1u64; 4];
        for _ in 0..2 * N {
            let m = next_message(ev).await;
            assert_eq!(m.to, to);
            assert_eq!(m.commit, next_commit[m.from as usize], "order from {}", m.from);
            next_commit[m.from as usize] += 1;
        }
        for from in (1..=3).filter(|f| *f != to) {
            assert_eq!(next_commit[from as usize], N + 1);
        }
    }
    let stats = transports[0].stats();
    let to2 = stats.peers.iter().find(|p| p.id == 2).expect("peer 2 stats");
    assert_eq!(to2.msgs_sent, N);
    assert_eq!(to2.msgs_received, N);
    assert_eq!(to2.msgs_dropped, 0);
}

/// Sends from a plain thread, as a raft loop does, with messages far larger
/// than a socket buffer among small ones: every message arrives whole and in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_from_a_thread_arrive_whole_and_in_order() {
    let ((t1, _e1), (_t2, mut e2)) = connected_pair();
    // One small message first, so that the connection is up and idle.
    t1.send(vec![heartbeat(1, 2, 1)]);
    assert_eq!(next_message(&mut e2).await.commit, 1);
    const N: u64 = 40;
    let payload = Bytes::from(vec![7u8; 3 << 20]);
    let sender = std::thread::spawn(move || {
        for c in 2..=N {
            let mut m = heartbeat(1, 2, c);
            m.msg_type = MessageType::MsgApp as i32;
            m.term = 1;
            // Every third send is large.
            if c % 3 == 0 {
                m.entries = vec![keel::raftpb::Entry {
                    index: c,
                    term: 1,
                    data: payload.clone(),
                    ..Default::default()
                }];
            }
            t1.send(vec![m]);
        }
        t1
    });
    for c in 2..=N {
        let m = next_message(&mut e2).await;
        assert_eq!(m.commit, c, "in order");
        let len = m.entries.first().map_or(0, |e| e.data.len());
        assert_eq!(len, if c % 3 == 0 { 3 << 20 } else { 0 }, "whole");
    }
    let t1 = sender.join().expect("sender");
    eventually(&t1, |s| s.peers.iter().any(|p| p.id == 2 && p.msgs_sent == N)).await;
    assert_eq!(t1.stats().peers.iter().find(|p| p.id == 2).map(|p| p.msgs_dropped), Some(0));
}

/// A peer that is down is reported unreachable; once it is back, delivery resumes
/// on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_down_then_up() {
    let (a, mut a_events) = start(1, CLUSTER, any_port());
    let (b, mut b_events) = start(2, CLUSTER, any_port());
    let b_addr = b.local_addr();
    a.add_peer(2, b_addr);
    b.add_peer(1, a.local_addr());
    a.send(vec![heartbeat(1, 2, 1)]);
    assert_eq!(next_message(&mut b_events).await.commit, 1);
    drop(b_events);
    drop(b);
    // Traffic to the dead peer: the stream breaks, or the redial fails.
    for c in 2..20 {
        a.send(vec![heartbeat(1, 2, c)]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_for(&mut a_events, |e| *e == Event::Unreachable(2)).await;
    let (b, mut b_events) = start(2, CLUSTER, b_addr);
    b.add_peer(1, a.local_addr());
    let wait = async {
        let mut c = 100;
        loop {
            a.send(vec![heartbeat(1, 2, c)]);
            c += 1;
            if let Ok(Some(Event::Message(m))) =
                timeout(Duration::from_millis(20), b_events.recv()).await
            {
                return m;
            }
        }
    };
    let m = timeout(WAIT, wait).await.expect("delivery did not resume");
    assert_eq!((m.from, m.to), (1, 2));
    let stats = a.stats();
    let to2 = stats.peers.iter().find(|p| p.id == 2).expect("peer 2 stats");
    assert!(to2.reconnects >= 1, "{to2:?}");
}

/// A full queue drops new messages, counts them and reports the peer unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drops_counts_and_reports() {
    let mut config = Config::new(1, CLUSTER, any_port());
    config.limits = Limits { queue_msgs_max: 4, ..fast_limits() };
    // Nobody listens on the discard port of 127.0.0.1 in the test environment;
    // even if something did, the handshake would fail and the queue stays full.
    config.peers = vec![(2, SocketAddr::from(([127, 0, 0, 1], 9)))];
    let (a, mut a_events) = Transport::start(config).expect("start");
    a.send((1..=10).map(|c| heartbeat(1, 2, c)).collect());
    wait_for(&mut a_events, |e| *e == Event::Unreachable(2)).await;
    let stats = a.stats();
    let to2 = stats.peers.iter().find(|p| p.id == 2).expect("peer 2 stats");
    assert!(to2.msgs_dropped >= 6, "{to2:?}");
    // A message for a peer that is not configured is dropped and reported too.
    a.send(vec![heartbeat(1, 9, 1)]);
    wait_for(&mut a_events, |e| *e == Event::Unreachable(9)).await;
}

/// Another cluster, a wrong receiver id, or a removed member: refused, and
/// nothing reaches raft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_mismatches_are_refused() {
    let (b, mut b_events) = start(2, CLUSTER, any_port());
    b.add_peer(1, any_port());
    b.add_peer(3, any_port());
    let (other_cluster, mut oc_events) = start(1, CLUSTER + 1, any_port());
    other_cluster.add_peer(2, b.local_addr());
    let (wrong_receiver, mut wr_events) = start(3, CLUSTER, any_port());
    wrong_receiver.add_peer(4, b.local_addr());
    let (stranger, mut st_events) = start(5, CLUSTER, any_port());
    stranger.add_peer(2, b.local_addr());
    other_cluster.send(vec![heartbeat(1, 2, 1)]);
    wrong_receiver.send(vec![heartbeat(3, 4, 1)]);
    stranger.send(vec![heartbeat(5, 2, 1)]);
    wait_for(&mut oc_events, |e| *e == Event::Unreachable(2)).await;
    wait_for(&mut wr_events, |e| *e == Event::Unreachable(4)).await;
    wait_for(&mut st_events, |e| *e == Event::Unreachable(2)).await;
    // Another protocol version, as a raw client writes it: the verdict says so.
    let mut raw = TcpStream::connect(b.local_addr()).await.expect("connect");
    let mut bytes = hello(0, CLUSTER, 1, 2);
    bytes[4] = 9;
    raw.write_all(&bytes).await.expect("write");
    let verdict = timeout(WAIT, raw.read_u8()).await.expect("verdict in time").expect("verdict");
    assert_eq!(verdict, keel_transport::Verdict::WrongVersion as u8);
    eventually(&b, |s| s.handshakes_refused >= 4).await;
    assert_no_message(&mut b_events);
}

/// A member that does not know the sender (it missed the sender's addition
/// while down) refuses it but reports it with the address it listens at;
/// once added, the sender's next dial is accepted and answers reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sender_is_reported_with_its_address_and_can_be_let_in() {
    let (stale, mut stale_events) = start(1, CLUSTER, any_port());
    let (newcomer, mut newcomer_events) = start(9, CLUSTER, any_port());
    newcomer.add_peer(1, stale.local_addr());
    newcomer.send(vec![heartbeat(9, 1, 1)]);
    let addr = newcomer.local_addr();
    wait_for(&mut stale_events, |e| *e == Event::UnknownPeer { id: 9, addr }).await;
    assert_no_message(&mut stale_events);
    stale.add_peer(9, addr);
    // The newcomer dials again after its backoff, and is let in.
    let got = async {
        for commit in 2.. {
            newcomer.send(vec![heartbeat(9, 1, commit)]);
            if let Ok(Some(Event::Message(m))) =
                timeout(Duration::from_millis(100), stale_events.recv()).await
            {
                return m;
            }
        }
        unreachable!()
    };
    let m = timeout(WAIT, got).await.expect("the newcomer's message in time");
    assert_eq!(m.from, 9);
    stale.send(vec![heartbeat(1, 9, 7)]);
    assert_eq!(next_message(&mut newcomer_events).await.commit, 7);
}

/// A removed member's connections are refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_is_refused() {
    let ((a, mut a_events), (b, mut b_events)) = connected_pair();
    a.send(vec![heartbeat(1, 2, 1)]);
    assert_eq!(next_message(&mut b_events).await.commit, 1);
    b.remove_peer(1);
    // The established stream is closed at its next message; the member dials
    // again (as a removed raft member keeps campaigning), is refused, and is
    // told it was removed: a removed follower may never hear of its removal
    // through raft, since the leader stops sending to it.
    let told = async {
        for commit in 2.. {
            a.send(vec![heartbeat(1, 2, commit)]);
            tokio::time::sleep(Duration::from_millis(20)).await;
            while let Some(e) = a_events.try_recv() {
                if e == (Event::Removed { by: 2 }) {
                    return;
                }
            }
        }
    };
    timeout(WAIT, told).await.expect("the removed member was not told");
    eventually(&b, |s| s.handshakes_refused >= 1).await;
    assert_eq!(next_message_now(&mut b_events), None);
}

fn next_message_now(events: &mut Events) -> Option<u64> {
    match events.try_recv() {
        Some(Event::Message(m)) if m.commit >= 2 => Some(m.commit),
        _ => None,
    }
}

/// A member that is merely unknown (not yet added) is refused without being
/// told it was removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_member_is_not_told_it_was_removed() {
    let (a, mut a_events) = start(1, CLUSTER, any_port());
    let (b, _b_events) = start(2, CLUSTER, any_port());
    a.add_peer(2, b.local_addr());
    a.send(vec![heartbeat(1, 2, 1)]);
    eventually(&b, |s| s.handshakes_refused >= 1).await;
    wait_for(&mut a_events, |e| *e == Event::Unreachable(2)).await;
    while let Some(e) = a_events.try_recv() {
        assert_ne!(e, Event::Removed { by: 2 });
    }
}

fn snapshot_message(from: u64, to: u64, data: Bytes) -> Message {
    let metadata = SnapshotMetadata { index: 10, term: 2, ..Default::default() };
    Message {
        msg_type: MessageType::MsgSnap as i32,
        from,
        to,
        term: 2,
        snapshot: Some(Box::new(Snapshot { data, metadata })),
        ..Default::default()
    }
}

/// A 64 MiB snapshot on its own connection, spilled to a file on the receiver
/// (whose assembly buffer stays at `snapshot_spill_bytes`), while heartbeats
/// keep flowing on the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_snapshot_streams_beside_heartbeats() {
    let ((a, mut a_events), (b, mut b_events)) = connected_pair();
    let data: Vec<u8> =
        (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let data = Bytes::from(data);
    a.send(vec![snapshot_message(1, 2, data.clone())]);
    const HEARTBEATS: u64 = 50;
    let mut heartbeats = 0;
    let mut snapshot = None;
    let mut c = 0;
    let wait = async {
        while snapshot.is_none() || heartbeats < HEARTBEATS {
            if c < HEARTBEATS {
                c += 1;
                a.send(vec![heartbeat(1, 2, c)]);
            }
            match timeout(Duration::from_millis(2), b_events.recv()).await {
                Ok(Some(Event::Message(m))) if m.msg_type == MessageType::MsgSnap as i32 => {
                    snapshot = Some(m)
                }
                Ok(Some(Event::Message(m))) => {
                    heartbeats += 1;
                    assert_eq!(m.commit, heartbeats, "heartbeats in order");
                }
                _ => {}
            }
        }
    };
    timeout(WAIT, wait).await.expect("snapshot and heartbeats in time");
    let snapshot = snapshot.expect("snapshot").snapshot.expect("snapshot body");
    assert_eq!(snapshot.metadata.index, 10);
    assert!(snapshot.data == data, "snapshot data differs");
    wait_for(&mut a_events, |e| {
        *e == Event::SnapshotStatus { to: 2, status: SnapshotStatus::Finished }
    })
    .await;
    let received = b.stats();
    let from1 = received.peers.iter().find(|p| p.id == 1).expect("peer 1 stats");
    assert_eq!((from1.snapshots_received, from1.snapshots_spilled), (1, 1));
    let sent = a.stats();
    assert_eq!(sent.peers.iter().find(|p| p.id == 2).map(|p| p.snapshots_sent), Some(1));
}

/// A snapshot to a peer that is not there fails and is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_to_a_down_peer_fails() {
    let mut config = Config::new(1, CLUSTER, any_port());
    config.limits = fast_limits();
    config.peers = vec![(2, SocketAddr::from(([127, 0, 0, 1], 9)))];
    let (a, mut a_events) = Transport::start(config).expect("start");
    a.send(vec![snapshot_message(1, 2, Bytes::from_static(b"state"))]);
    wait_for(&mut a_events, |e| {
        *e == Event::SnapshotStatus { to: 2, status: SnapshotStatus::Failed }
    })
    .await;
    assert_eq!(a.stats().peers.iter().find(|p| p.id == 2).map(|p| p.snapshots_failed), Some(1));
}

/// The documented handshake bytes, as a hostile or buggy client writes them.
fn hello(kind: u8, cluster: u64, from: u64, to: u64) -> Vec<u8> {
    let mut out = b"KEEL".to_vec();
    out.extend_from_slice(&[keel_transport::PROTOCOL_VERSION, kind]);
    for word in [cluster, from, to] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&0u16.to_be_bytes()); // No listening port.
    out
}

/// Writes `bytes` to the transport at `addr`, then checks that the transport
/// dropped the connection (bad-input counter) and still serves a real peer.
async fn check_bad_input(bytes: Vec<u8>, close_after: bool) {
    let ((a, _a_events), (b, mut b_events)) = connected_pair();
    // Member 1's own stream first: the raw one, claiming to be 1 too, then
    // replaces it (a newer stream wins) rather than being replaced.
    a.send(vec![heartbeat(1, 2, 0)]);
    assert_eq!(next_message(&mut b_events).await.commit, 0);
    let mut raw = TcpStream::connect(b.local_addr()).await.expect("connect");
    raw.write_all(&bytes).await.expect("write");
    if close_after {
        raw.shutdown().await.expect("shutdown");
    }
    eventually(&b, |s| s.connections_dropped_bad_input >= 1).await;
    // The server closed its end: reading reaches EOF (after any verdict byte).
    let mut rest = Vec::new();
    timeout(WAIT, raw.read_to_end(&mut rest)).await.expect("server closes").ok();
    assert!(rest.len() <= 1, "server wrote {rest:?}");
    a.send(vec![heartbeat(1, 2, 1)]);
    assert_eq!(next_message(&mut b_events).await.commit, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_garbage_bytes() {
    check_bad_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02\x03".to_vec(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_frame_length_u32_max() {
    let mut bytes = hello(0, CLUSTER, 1, 2);
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    check_bad_input(bytes, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_truncated_frame() {
    let mut bytes = hello(0, CLUSTER, 1, 2);
    bytes.extend_from_slice(&100u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 8, 8]);
    check_bad_input(bytes, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_frame_that_is_not_a_message() {
    let mut bytes = hello(0, CLUSTER, 1, 2);
    bytes.extend_from_slice(&4u32.to_be_bytes());
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    check_bad_input(bytes, false).await;
}

/// A well-addressed message of two million entries with no field (2 bytes
/// each on the wire): 4 MB, well within the frame limit, but over 100 MB
/// decoded, past the 64 MiB `incoming_bytes_max`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_frame_that_would_decode_to_many_times_its_size() {
    let mut body = vec![0x10, 2, 0x18, 1]; // to: 2, from: 1.
    body.extend_from_slice(&[0x3a, 0x00].repeat(2_000_000));
    let mut bytes = hello(0, CLUSTER, 1, 2);
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    check_bad_input(bytes, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_message_with_a_forged_sender() {
    use prost::Message as _;
    let mut bytes = hello(0, CLUSTER, 1, 2);
    let forged = heartbeat(3, 2, 1).encode_to_vec();
    bytes.extend_from_slice(&(forged.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&forged);
    check_bad_input(bytes, false).await;
}

/// A follower forwards a proposal, a read index request or a leadership
/// transfer to the leader with the first sender's id (the transferee's, for
/// a transfer): these arrive, on the same connection as what follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_raft_forwards_keep_their_first_sender() {
    let ((a, _a_events), (b, mut b_events)) = connected_pair();
    let forwarded =
        [MessageType::MsgProp, MessageType::MsgReadIndex, MessageType::MsgTransferLeader];
    let mut msgs: Vec<Message> = forwarded
        .iter()
        .map(|&t| Message { msg_type: t as i32, from: 3, to: 2, ..Default::default() })
        .collect();
    msgs.push(heartbeat(1, 2, 9));
    a.send(msgs);
    for t in forwarded {
        let m = next_message(&mut b_events).await;
        assert_eq!((m.msg_type(), m.from), (t, 3));
    }
    assert_eq!(next_message(&mut b_events).await.commit, 9);
    assert_eq!(b.stats().connections_dropped_bad_input, 0);
    assert_eq!(a.stats().peers.iter().map(|p| p.reconnects).sum::<u64>(), 0);
}

/// A sender has one stream at a time: a newer one replaces (closes) the
/// older, a connection the sender has given up (or one of many a hostile
/// peer opens), and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_stream_from_a_sender_replaces_the_older() {
    use prost::Message as _;
    let (b, mut b_events) = start(2, CLUSTER, any_port());
    b.add_peer(1, SocketAddr::from(([127, 0, 0, 1], 1))); // Known, never reached.
    let addr = b.local_addr();
    let stream = || async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        raw.write_all(&hello(0, CLUSTER, 1, 2)).await.expect("write");
        assert_eq!(timeout(WAIT, raw.read_u8()).await.expect("verdict").expect("verdict"), 0);
        raw
    };
    let mut older = stream().await;
    let mut newer = stream().await;
    let mut rest = Vec::new();
    timeout(WAIT, older.read_to_end(&mut rest)).await.expect("the older is closed").ok();
    assert!(rest.is_empty(), "{rest:?}");
    let frame = heartbeat(1, 2, 7).encode_to_vec();
    newer.write_all(&(frame.len() as u32).to_be_bytes()).await.expect("write");
    newer.write_all(&frame).await.expect("write");
    assert_eq!(next_message(&mut b_events).await.commit, 7);
    assert_eq!(b.stats().connections_dropped_bad_input, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_client_that_never_speaks() {
    // Connects and says nothing: the handshake timeout (500 ms here) drops it.
    check_bad_input(Vec::new(), false).await;
}

/// A snapshot connection's handshake, header frame and announced data length.
fn snapshot_preamble(total: u64) -> Vec<u8> {
    use prost::Message as _;
    let mut bytes = hello(1, CLUSTER, 1, 2);
    let head = snapshot_message(1, 2, Bytes::new()).encode_to_vec();
    bytes.extend_from_slice(&(head.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&total.to_be_bytes());
    bytes
}

/// One snapshot chunk: its length, its bytes, their crc32c.
fn snapshot_chunk(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32c::crc32c(data).to_be_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_snapshot_chunk_with_a_bad_checksum() {
    let mut bytes = snapshot_preamble(4);
    bytes.extend_from_slice(&snapshot_chunk(b"data"));
    *bytes.last_mut().expect("a checksum") ^= 1;
    check_bad_input(bytes, false).await;
}

/// A raw snapshot connection from member 1 that has announced 4 bytes of
/// data, once the handshake is accepted.
async fn snapshot_started(addr: SocketAddr) -> TcpStream {
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    raw.write_all(&snapshot_preamble(4)).await.expect("write");
    assert_eq!(timeout(WAIT, raw.read_u8()).await.expect("verdict").expect("verdict"), 0);
    raw
}

/// Sends the 4 bytes a [`snapshot_started`] connection announced; the
/// receiver's acknowledgement, then the snapshot it hands to raft.
async fn snapshot_finished(mut raw: TcpStream, events: &mut Events) {
    raw.write_all(&snapshot_chunk(b"data")).await.expect("write");
    assert_eq!(timeout(WAIT, raw.read_u8()).await.expect("ack").expect("ack"), 0);
    let m = next_message(events).await;
    assert_eq!(m.snapshot.map(|s| s.data), Some(Bytes::from_static(b"data")));
}

/// A member receives one snapshot at a time from each sender: a second one
/// while the first is in progress is dropped; the first still completes,
/// and the sender's next one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_snapshot_from_a_sender_is_refused_while_one_is_in_progress() {
    let ((_a, _a_events), (b, mut b_events)) = connected_pair();
    let first = snapshot_started(b.local_addr()).await;
    let mut second = snapshot_started(b.local_addr()).await;
    eventually(&b, |s| s.connections_dropped_bad_input == 1).await;
    let mut rest = Vec::new();
    timeout(WAIT, second.read_to_end(&mut rest)).await.expect("closed").ok();
    assert!(rest.is_empty(), "no acknowledgement: {rest:?}");
    snapshot_finished(first, &mut b_events).await;
    snapshot_finished(snapshot_started(b.local_addr()).await, &mut b_events).await;
    assert_eq!(b.stats().connections_dropped_bad_input, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_snapshot_larger_than_allowed() {
    check_bad_input(snapshot_preamble(u64::MAX), false).await;
}

struct Pki {
    ca_pem: String,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = params.self_signed(&ca_key).expect("ca cert");
        Pki { ca_pem: ca_cert.pem(), ca_cert, ca_key }
    }

    /// A member certificate for 127.0.0.1, signed by this CA, trusting `trust`.
    fn member(&self, trust: &Pki) -> TlsConfig {
        self.member_named(&["127.0.0.1"], trust)
    }

    /// A member certificate whose subject alternative names are `names`.
    fn member_named(&self, names: &[&str], trust: &Pki) -> TlsConfig {
        let key = rcgen::KeyPair::generate().expect("key");
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let params = rcgen::CertificateParams::new(names).expect("params");
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).expect("cert");
        TlsConfig::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            trust.ca_pem.as_bytes(),
        )
        .expect("tls config")
    }
}

fn start_tls(id: u64, tls: TlsConfig) -> (Transport, Events) {
    let mut config = Config::new(id, CLUSTER, any_port());
    config.limits = fast_limits();
    config.tls = Some(tls);
    Transport::start(config).expect("start")
}

/// Members with certificates from the trusted CA talk; one from another CA,
/// or a plain-TCP client, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_the_right_ca_and_refuses_another() {
    let (good, evil) = (Pki::new(), Pki::new());
    let (a, mut a_events) = start_tls(1, good.member(&good));
    let (b, mut b_events) = start_tls(2, good.member(&good));
    let (c, mut c_events) = start_tls(3, evil.member(&good));
    let mut plain_config = Config::new(4, CLUSTER, any_port());
    plain_config.limits = fast_limits();
    let (plain, mut plain_events) = Transport::start(plain_config).expect("start");
    for (id, addr) in [(1, a.local_addr()), (3, c.local_addr()), (4, plain.local_addr())] {
        b.add_peer(id, addr);
    }
    a.add_peer(2, b.local_addr());
    c.add_peer(2, b.local_addr());
    plain.add_peer(2, b.local_addr());
    a.send(vec![heartbeat(1, 2, 1)]);
    let m = next_message(&mut b_events).await;
    assert_eq!((m.from, m.commit), (1, 1));
    a_events.try_recv();
    c.send(vec![heartbeat(3, 2, 1)]);
    plain.send(vec![heartbeat(4, 2, 1)]);
    wait_for(&mut c_events, |e| *e == Event::Unreachable(2)).await;
    wait_for(&mut plain_events, |e| *e == Event::Unreachable(2)).await;
    eventually(&b, |s| s.connections_dropped_bad_input >= 2).await;
    // A TLS client that trusts the CA but presents no certificate.
    let tcp = TcpStream::connect(b.local_addr()).await.expect("connect");
    let no_cert = tokio_rustls::TlsConnector::from(no_cert_client(&good));
    let name = rustls_pki_types::ServerName::IpAddress(b.local_addr().ip().into());
    let refused = async {
        // TLS 1.3 finishes the client's side first; the refusal arrives on read.
        let mut tls = no_cert.connect(name, tcp).await?;
        tls.write_all(&hello(0, CLUSTER, 1, 2)).await?;
        tls.read_u8().await
    };
    assert!(timeout(WAIT, refused).await.expect("refused in time").is_err());
    eventually(&b, |s| s.connections_dropped_bad_input >= 3).await;
    // The other way round: b dials c, whose server certificate is from
    // another CA, and refuses it; c hears nothing.
    b.send(vec![heartbeat(2, 3, 1)]);
    wait_for(&mut b_events, |e| *e == Event::Unreachable(3)).await;
    assert_no_message(&mut b_events);
    assert_no_message(&mut c_events);
}

/// Member 1 (at 127.0.0.1, its certificate naming `names`) and a CA-signed
/// impostor whose certificate names `impostor_names` both claim id 1 to
/// member 2, which checks `identity`; whether the impostor's heartbeat
/// arrives (member 1's always must).
async fn impostor_gets_through(
    identity: PeerIdentity,
    names: &[&str],
    impostor_names: &[&str],
) -> bool {
    let pki = Pki::new();
    let checked = pki.member(&pki).with_peer_identity(identity).expect("identity");
    let (b, mut b_events) = start_tls(2, checked);
    let (a, _a_events) = start_tls(1, pki.member_named(names, &pki));
    let (impostor, _impostor_events) = start_tls(1, pki.member_named(impostor_names, &pki));
    b.add_peer(1, a.local_addr());
    a.add_peer(2, b.local_addr());
    impostor.add_peer(2, b.local_addr());
    a.send(vec![heartbeat(1, 2, 1)]);
    assert_eq!(next_message(&mut b_events).await.commit, 1);
    drop(a);
    impostor.send(vec![heartbeat(1, 2, 2)]);
    // The impostor may also lose a stream it was let in on to member 1's
    // newer one (each sender has one stream), and then dials again: only a
    // refused handshake says it was refused.
    let wait = async {
        loop {
            tokio::select! {
                m = next_message(&mut b_events) => return m.commit == 2,
                () = tokio::time::sleep(Duration::from_millis(5)) => {
                    if b.stats().handshakes_refused >= 1 {
                        return false;
                    }
                }
            }
        }
    };
    timeout(WAIT, wait).await.expect("impostor delivered or refused in time")
}

/// With `PeerIdentity::PeerAddress`, a CA-signed certificate that does not
/// name the claimed member's address is refused; without it, it gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_must_name_the_claimed_members_address_when_asked() {
    let (real, other) = (&["127.0.0.1"], &["127.0.0.3"]);
    assert!(!impostor_gets_through(PeerIdentity::PeerAddress, real, other).await);
    assert!(impostor_gets_through(PeerIdentity::AnyMember, real, other).await);
}

/// With `PeerIdentity::Hostname`, only certificates valid for that name get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_must_name_the_allowed_hostname_when_asked() {
    let allowed = PeerIdentity::Hostname("peer.keel.test".into());
    let real = &["127.0.0.1", "peer.keel.test"];
    assert!(!impostor_gets_through(allowed, real, &["127.0.0.1"]).await);
    let pki = Pki::new();
    let bad_name = PeerIdentity::Hostname("not a host name".into());
    assert!(pki.member(&pki).with_peer_identity(bad_name).is_err());
}

/// A rustls client that trusts `ca` and has no certificate of its own.
fn no_cert_client(ca: &Pki) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_cert.der().clone()).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// From a plain thread: the transport brings its own runtime.
#[test]
fn usable_from_a_plain_thread() {
    let (a, _a_events) =
        Transport::start_with_runtime(Config::new(1, CLUSTER, any_port())).expect("a");
    let (b, mut b_events) =
        Transport::start_with_runtime(Config::new(2, CLUSTER, any_port())).expect("b");
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    a.send(vec![heartbeat(1, 2, 42)]);
    // Reports may come first (b may dial a before a knows it).
    let first_message = move || loop {
        match b_events.blocking_recv() {
            Some(Event::Message(m)) => return Some(m),
            Some(_) => continue,
            None => return None,
        }
    };
    let got = std::thread::spawn(first_message).join().expect("thread");
    assert_eq!(got, Some(heartbeat(1, 2, 42)));
}

/// A peer that completes the handshake and then never reads (a hung process,
/// a host gone silent): once the socket buffers fill, the batch write times
/// out, the connection is dropped with its batch counted, the peer is
/// reported unreachable and the stream is dialled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_dropped_after_the_write_timeout() {
    let listener = tokio::net::TcpListener::bind(any_port()).await.expect("bind");
    let fake = listener.local_addr().expect("addr");
    let (redialled_tx, redialled_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut redialled = Some(redialled_tx);
        loop {
            let Some(s) = fake_peer_accept(&listener).await else { continue };
            if !held.is_empty()
                && let Some(tx) = redialled.take()
            {
                let _ = tx.send(());
            }
            held.push(s); // Kept open, never read.
        }
    });
    let mut config = Config::new(1, CLUSTER, any_port());
    config.limits = Limits { write_timeout: Duration::from_millis(300), ..fast_limits() };
    let (a, mut events) = Transport::start(config).expect("start");
    a.add_peer(2, fake);
    // 32 MiB: more than loopback's socket buffers on both sides hold.
    let payload = Bytes::from(vec![9u8; 64 << 10]);
    let big = |i: u64| Message { context: payload.clone().into(), index: i, ..heartbeat(1, 2, 0) };
    a.send((0..512).map(big).collect());
    wait_for(&mut events, |e| matches!(e, Event::Unreachable(2))).await;
    timeout(WAIT, redialled_rx).await.expect("no redial in time").expect("fake peer");
    let stats = a.stats();
    let peer = stats.peers.iter().find(|p| p.id == 2).expect("peer 2 stats");
    assert!(peer.msgs_dropped > 0, "the timed-out batch is counted: {peer:?}");
}

/// Accepts a connection as a fake peer: reads the handshake, accepts it.
async fn fake_peer_accept(listener: &tokio::net::TcpListener) -> Option<TcpStream> {
    let (mut s, _) = listener.accept().await.ok()?;
    let mut raw = [0u8; 32];
    s.read_exact(&mut raw).await.ok()?;
    s.write_all(&[0]).await.ok()?;
    Some(s)
}

/// A stream the peer closed is noticed before the next batch is written on
/// it (the kernel would take the batch, lost yet counted as sent): the batch
/// goes on the next connection instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_not_written_on_a_stream_the_peer_closed() {
    let listener = tokio::net::TcpListener::bind(any_port()).await.expect("bind");
    let fake = listener.local_addr().expect("addr");
    let (a, _events) = start(1, CLUSTER, any_port());
    a.add_peer(2, fake);
    let accept = async { fake_peer_accept(&listener).await.expect("first connection") };
    drop(timeout(WAIT, accept).await.expect("dialled"));
    // Time for the close to reach the writer's side.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.send(vec![heartbeat(1, 2, 5)]);
    let redialled = async {
        let mut s = fake_peer_accept(&listener).await.expect("second connection");
        let len = s.read_u32().await.expect("a frame");
        let mut frame = vec![0u8; len as usize];
        s.read_exact(&mut frame).await.expect("the frame");
        <Message as prost::Message>::decode(&frame[..]).expect("a message")
    };
    let got = timeout(WAIT, redialled).await.expect("the heartbeat on a new connection");
    assert_eq!(got.commit, 5);
    let peer_2 = |s: &Stats| s.peers.iter().find(|p| p.id == 2).cloned().unwrap_or_default();
    eventually(&a, |s| peer_2(s).msgs_sent == 1).await;
    assert_eq!(peer_2(&a.stats()).msgs_dropped, 0);
}

/// The raft loop takes every queued event in one call, and the limit holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_taken_in_batches() {
    let ((a, _a_events), (b, mut b_events)) = connected_pair();
    a.send((1..=100).map(|c| heartbeat(1, 2, c)).collect());
    // Counted once queued: all 100 wait in `Events` now.
    eventually(&b, |s| s.peers.iter().any(|p| p.id == 1 && p.msgs_received == 100)).await;
    let mut out = Vec::new();
    assert_eq!(b_events.recv_many(&mut out, 30).await, 30);
    assert_eq!(b_events.try_recv_many(&mut out, 1000), 70);
    let commits: Vec<u64> = out
        .iter()
        .map(|e| match e {
            Event::Message(m) => m.commit,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(commits, (1..=100).collect::<Vec<_>>());
    // Blocking, from a plain thread: waits for the next message.
    let waiter = std::thread::spawn(move || {
        let mut out = Vec::new();
        let n = b_events.blocking_recv_many(&mut out, 1000);
        (n, out)
    });
    a.send(vec![heartbeat(1, 2, 101)]);
    let (n, out) = waiter.join().expect("thread");
    assert_eq!((n, out), (1, vec![Event::Message(heartbeat(1, 2, 101))]));
}

/// A raft loop that falls behind: its message queue fills, new messages are
/// dropped and counted, but reports (a failed snapshot, an unreachable peer)
/// still arrive, coalesced, and a verified snapshot is still delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_never_lost_to_a_full_message_queue() {
    let (a, mut a_events) = start(1, CLUSTER, any_port());
    let mut config = Config::new(2, CLUSTER, any_port());
    config.limits = Limits { incoming_msgs_max: 8, ..fast_limits() };
    config.peers = vec![(1, a.local_addr()), (3, SocketAddr::from(([127, 0, 0, 1], 9)))];
    let (b, mut b_events) = Transport::start(config).expect("start");
    a.add_peer(2, b.local_addr());
    a.send((1..=100).map(|c| heartbeat(1, 2, c)).collect());
    let from1 = |s: &Stats| s.peers.iter().find(|p| p.id == 1).cloned().unwrap_or_default();
    eventually(&b, |s| from1(s).msgs_received == 100).await;
    assert_eq!(from1(&b.stats()).msgs_received_dropped, 92);
    // Reports from b's side while its queue is full.
    b.send(vec![snapshot_message(2, 3, Bytes::from_static(b"state"))]);
    for _ in 0..10 {
        b.send(vec![heartbeat(2, 9, 1)]);
    }
    // A snapshot from a is verified and queued past the bound.
    a.send(vec![snapshot_message(1, 2, Bytes::from_static(b"snap"))]);
    wait_for(&mut a_events, |e| {
        *e == Event::SnapshotStatus { to: 2, status: SnapshotStatus::Finished }
    })
    .await;
    let mut out = Vec::new();
    let failed = Event::SnapshotStatus { to: 3, status: SnapshotStatus::Failed };
    let wait = async {
        while !out.contains(&failed) {
            b_events.recv_many(&mut out, 1000).await;
        }
    };
    timeout(WAIT, wait).await.expect("the snapshot report arrives");
    out.extend(std::iter::from_fn(|| b_events.try_recv()));
    assert_eq!(out.iter().filter(|e| **e == Event::Unreachable(9)).count(), 1, "{out:?}");
    let messages: Vec<&Message> = out
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    let commits: Vec<u64> = messages.iter().take(8).map(|m| m.commit).collect();
    assert_eq!(commits, (1..=8).collect::<Vec<_>>());
    assert_eq!(messages.len(), 9, "8 heartbeats and the snapshot");
    assert_eq!(messages[8].msg_type, MessageType::MsgSnap as i32);
}

/// A peer whose connection is stuck (it stopped reading) delays nobody else:
/// heartbeats to another peer keep arriving in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_peer_never_delays_another() {
    let listener = tokio::net::TcpListener::bind(any_port()).await.expect("bind");
    let stuck = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut raw = [0u8; 32];
            if s.read_exact(&mut raw).await.is_ok() && s.write_all(&[0]).await.is_ok() {
                held.push(s); // Kept open, never read.
            }
        }
    });
    let mut config = Config::new(1, CLUSTER, any_port());
    // Long enough that the stuck stream stays stuck for the whole test.
    config.limits = Limits { write_timeout: Duration::from_secs(60), ..fast_limits() };
    let (a, _a_events) = Transport::start(config).expect("start");
    let (b, mut b_events) = start(2, CLUSTER, any_port());
    a.add_peer(2, b.local_addr());
    a.add_peer(3, stuck);
    b.add_peer(1, a.local_addr());
    let payload = Bytes::from(vec![9u8; 64 << 10]);
    let big = |i: u64| Message { context: payload.clone().into(), index: i, ..heartbeat(1, 3, 0) };
    // 32 MiB for peer 3: more than loopback's socket buffers hold.
    a.send((0..512).map(big).collect());
    for c in 1..=200 {
        a.send(vec![heartbeat(1, 2, c)]);
        assert_eq!(next_message(&mut b_events).await.commit, c);
    }
    let stats = a.stats();
    let to3 = stats.peers.iter().find(|p| p.id == 3).expect("peer 3 stats");
    assert!(to3.msgs_sent < 512, "peer 3 is stuck: {to3:?}");
}

/// A delivery hook takes incoming messages only while the receiver waits
/// with nothing in hand (so they come after everything it took); what it
/// gives back, and everything read while the receiver is busy, is queued.
/// Every message is counted once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_hook_takes_messages_only_while_the_receiver_waits() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Waker};

    let ((t1, _e1), (t2, mut e2)) = connected_pair();
    let taken = Arc::new(Mutex::new(Vec::new()));
    let accept = Arc::new(AtomicBool::new(true));
    t2.deliver_inline(Some(Arc::new({
        let (taken, accept) = (Arc::clone(&taken), Arc::clone(&accept));
        move |msgs: Vec<Message>| {
            if !accept.load(SeqCst) {
                return Err(msgs);
            }
            taken.lock().unwrap().extend(msgs.iter().map(|m| m.commit));
            Ok(())
        }
    })));
    let mut cx = Context::from_waker(Waker::noop());

    // The receiver waits (one poll registered its waker): the hook takes it.
    let mut waiting = Box::pin(e2.recv());
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    t1.send(vec![heartbeat(1, 2, 1)]);
    eventually(&t2, |s| s.peers.iter().any(|p| p.id == 1 && p.msgs_received == 1)).await;
    assert_eq!(*taken.lock().unwrap(), [1]);

    // Given back: queued, and the waiting receiver gets it.
    accept.store(false, SeqCst);
    t1.send(vec![heartbeat(1, 2, 2)]);
    let got = timeout(WAIT, waiting).await.expect("queued in time");
    assert!(matches!(got, Some(Event::Message(m)) if m.commit == 2));

    // Nobody waits now (the receiver is not polled until the message is
    // counted): queued without asking the hook.
    accept.store(true, SeqCst);
    t1.send(vec![heartbeat(1, 2, 3)]);
    eventually(&t2, |s| s.peers.iter().any(|p| p.id == 1 && p.msgs_received == 3)).await;
    assert!(matches!(e2.try_recv(), Some(Event::Message(m)) if m.commit == 3));
    assert_eq!(*taken.lock().unwrap(), [1]);
}

/// The next snapshot report; panics after `WAIT`.
async fn next_snapshot_status(events: &mut Events) -> Event {
    let wait = async {
        loop {
            match events.recv().await {
                Some(e @ Event::SnapshotStatus { .. }) => return e,
                Some(_) => continue,
                None => panic!("transport closed"),
            }
        }
    };
    timeout(WAIT, wait).await.expect("no snapshot report in time")
}

/// Raft waits for every snapshot's outcome (its progress stays in
/// `StateSnapshot` until then), a snapshot for a peer not (yet) known too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_for_an_unknown_peer_is_reported_failed() {
    let (a, mut events) = start(1, CLUSTER, any_port());
    a.send(vec![snapshot_message(1, 9, Bytes::from_static(b"state"))]);
    let failed = Event::SnapshotStatus { to: 9, status: SnapshotStatus::Failed };
    assert_eq!(next_snapshot_status(&mut events).await, failed);
}

/// A peer whose process hangs while its kernel still takes the bytes: the
/// transfer fails at its deadline rather than waiting for the answer for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_never_acknowledged_fails_at_its_deadline() {
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let peer = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut hello = [0u8; 32];
                if s.read_exact(&mut hello).await.is_ok() && s.write_all(&[0]).await.is_ok() {
                    let mut sink = vec![0u8; 1 << 16];
                    while s.read(&mut sink).await.unwrap_or(0) > 0 {}
                }
            });
        }
    });
    let mut config = Config::new(1, CLUSTER, any_port());
    config.limits = Limits { write_timeout: Duration::from_millis(500), ..fast_limits() };
    let (a, mut events) = Transport::start(config).expect("start");
    a.add_peer(2, peer);
    a.send(vec![snapshot_message(1, 2, Bytes::from_static(b"state"))]);
    let failed = Event::SnapshotStatus { to: 2, status: SnapshotStatus::Failed };
    assert_eq!(next_snapshot_status(&mut events).await, failed);
}

/// Storage-thread responses ride only on a node's own storage messages: a
/// peer's message with some is bad input (and would escape the inbox's byte
/// bound, which does not look inside them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_message_with_local_responses_is_refused() {
    let ((a, _a_events), (b, mut b_events)) = connected_pair();
    let inner = heartbeat(1, 2, 0);
    a.send(vec![Message { responses: vec![inner].into(), ..heartbeat(1, 2, 7) }]);
    eventually(&b, |s| s.connections_dropped_bad_input >= 1).await;
    // The sender learns of the close on a later write; raft sends again.
    let next = async {
        loop {
            a.send(vec![heartbeat(1, 2, 8)]);
            let got = timeout(Duration::from_millis(100), next_message(&mut b_events)).await;
            if let Ok(m) = got {
                return m;
            }
        }
    };
    let m = timeout(WAIT, next).await.expect("the stream is back");
    assert_eq!((m.commit, m.responses.len()), (8, 0), "nothing with responses arrives");
}

/// Recipient ids of dropped messages may come from the network (a forwarded
/// request's sender): they are counted in one counter, not one entry each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_unknown_peers_are_counted_without_an_entry_each() {
    let (a, _events) = start(1, CLUSTER, any_port());
    let resp = |to| Message {
        msg_type: MessageType::MsgReadIndexResp as i32,
        from: 1,
        to,
        term: 1,
        ..Default::default()
    };
    a.send((1000..21_000).map(resp).collect());
    let stats = a.stats();
    assert_eq!((stats.peers.len(), stats.msgs_dropped_unknown_peer), (0, 20_000));
}
