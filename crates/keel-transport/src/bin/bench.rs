//! Throughput of the transport over loopback, against a raw tokio TCP stream
//! carrying the same bytes (the ceiling), in the same run.
//!
//! Run: `cargo run --release -p keel-transport --bin keel-transport-bench`
//! (`-- --quick` for a short run; `-- --small` or `-- --large` for one case,
//! e.g. under `valgrind --tool=callgrind`).
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel::raftpb::{Message, MessageType};
use keel_transport::{Config, Event, Limits, Transport};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Case {
    name: &'static str,
    payload_bytes: usize,
    count: usize,
}

fn message(payload: &Bytes, i: u64) -> Message {
    Message {
        msg_type: MessageType::MsgApp as i32,
        from: 1,
        to: 2,
        term: 3,
        index: i,
        context: payload.clone().into(),
        ..Default::default()
    }
}

fn limits() -> Limits {
    Limits {
        queue_msgs_max: 1 << 21,
        queue_bytes_max: 1 << 30,
        incoming_msgs_max: 1 << 16,
        incoming_bytes_max: 1 << 30,
        ..Limits::default()
    }
}

/// Events the receiver takes per call at most.
const RECV_LIMIT: usize = 4096;

/// Messages/s and bytes/s through two transports.
fn run_transport(case: &Case) -> (f64, f64) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut ca = Config::new(1, 1, any);
    ca.limits = limits();
    let mut cb = Config::new(2, 1, any);
    cb.limits = limits();
    let (a, _a_events) = Transport::start_with_runtime(ca).expect("start a");
    let (b, mut b_events) = Transport::start_with_runtime(cb).expect("start b");
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    let payload = Bytes::from(vec![7u8; case.payload_bytes]);
    // Warm the connection up so the dial is not measured.
    a.send(vec![message(&payload, 0)]);
    while !matches!(b_events.blocking_recv(), Some(Event::Message(_))) {}
    let frame_bytes = message(&payload, 1).encoded_len() + 4;
    let mut events = Vec::with_capacity(RECV_LIMIT);
    let start = Instant::now();
    let chunk = 1024;
    let mut sent = 0;
    let mut received = 0;
    while received < case.count {
        if sent < case.count {
            let n = chunk.min(case.count - sent);
            a.send((sent..sent + n).map(|i| message(&payload, i as u64 + 1)).collect());
            sent += n;
        }
        // Drain what is ready, so the sender never runs far ahead of the
        // receiver; everything queued comes in one call, as a raft loop takes it.
        loop {
            events.clear();
            let n = if sent < case.count {
                b_events.try_recv_many(&mut events, RECV_LIMIT)
            } else {
                b_events.blocking_recv_many(&mut events, RECV_LIMIT)
            };
            received += events.iter().filter(|e| matches!(e, Event::Message(_))).count();
            if n == 0
                || received == case.count
                || (sent < case.count && received + 8 * chunk > sent)
            {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let dropped: u64 = a.stats().peers.iter().map(|p| p.msgs_dropped).sum();
    assert_eq!(dropped, 0, "the bench must not overflow the queue");
    let dropped: u64 = b.stats().peers.iter().map(|p| p.msgs_received_dropped).sum();
    assert_eq!(dropped, 0, "the bench must not overflow the receiver's queue");
    (case.count as f64 / secs, (case.count * frame_bytes) as f64 / secs)
}

/// Bytes/s of a raw tokio TCP stream writing the same bytes in 256 KiB writes.
fn run_ceiling(case: &Case) -> f64 {
    let payload = Bytes::from(vec![7u8; case.payload_bytes]);
    let frame_bytes = message(&payload, 1).encoded_len() + 4;
    let total = frame_bytes * case.count;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 256 << 10];
            let mut got = 0;
            while got < total {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed early");
                got += n;
            }
        });
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let block = vec![7u8; 256 << 10];
        let start = Instant::now();
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            s.write_all(&block[..n]).await.expect("write");
            left -= n;
        }
        s.flush().await.expect("flush");
        reader.await.expect("reader");
        total as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let small_only = std::env::args().any(|a| a == "--small");
    let large_only = std::env::args().any(|a| a == "--large");
    let cases = [
        Case { name: "128 B messages", payload_bytes: 112, count: 2_000_000 / scale },
        Case { name: "64 KiB messages", payload_bytes: 64 << 10, count: 8_192 / scale },
    ];
    println!(
        "{:<18} {:>14} {:>12} {:>14} {:>8}",
        "case", "msgs/s", "MB/s", "raw TCP MB/s", "ratio"
    );
    for (i, case) in cases.iter().enumerate() {
        if (small_only && i != 0) || (large_only && i != 1) {
            continue;
        }
        let (msgs, bytes) = run_transport(case);
        std::thread::sleep(Duration::from_millis(100));
        let ceiling = run_ceiling(case);
        println!(
            "{:<18} {:>14.0} {:>12.1} {:>14.1} {:>7.0}%",
            case.name,
            msgs,
            bytes / 1e6,
            ceiling / 1e6,
            100.0 * bytes / ceiling
        );
    }
}
