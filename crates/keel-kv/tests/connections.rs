//! Client connections of `keel-kv serve`: a client slow to send its headers
//! is disconnected, the number of connections is capped, and neither holds
//! up a stop. Raw sockets, so that a test controls every byte sent.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::blocking::Client;
use support::{Cluster, wait_for};

/// A connection to member `i` that has sent `bytes` and nothing more.
fn stalled(c: &Cluster, i: usize, bytes: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", c.members[i].client_port)).unwrap();
    s.write_all(bytes.as_bytes()).unwrap();
    s
}

/// What the server sends on `s` until it closes it, or `None` if it is
/// still open after `limit`.
fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        // Reset: closed with unread bytes.
        Err(_) => Some(String::from_utf8_lossy(&out).into_owned()),
    }
}

/// One `GET path` on a connection of its own; the whole answer.
fn get_alone(c: &Cluster, i: usize, path: &str) -> String {
    let mut s =
        stalled(c, i, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    until_closed(&mut s, Duration::from_secs(15)).expect("an answer")
}

/// `keel_client_connections` on member `i`, its own connection included.
fn open_connections(c: &Cluster, i: usize) -> f64 {
    let answer = get_alone(c, i, "/metrics");
    answer
        .lines()
        .find_map(|l| l.strip_prefix("keel_client_connections ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no keel_client_connections in {answer:?}"))
}

#[test]
fn a_client_that_stalls_before_its_headers_end_is_disconnected() {
    // A header timeout of 2 × 500 ms.
    let c = Cluster::start(1, &["--request-timeout", "500"]);
    let partial = [
        "",
        "GET /hea",
        "GET /health HTTP/1.1\r\nHost: x\r\n",
        // A finished request and then half of the next one.
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\n",
    ];
    let mut stalls: Vec<TcpStream> = partial.iter().map(|p| stalled(&c, 0, p)).collect();
    for (p, s) in partial.iter().zip(&mut stalls) {
        let answer = until_closed(s, Duration::from_secs(15));
        let answer = answer.unwrap_or_else(|| panic!("{p:?}: still open after 15 s"));
        assert_eq!(answer.matches(" 200 OK").count(), p.matches("\r\n\r\n").count(), "{p:?}");
    }
    assert_eq!(c.try_status(0, "/health"), Some(200));
}

#[test]
fn with_every_connection_slot_taken_a_new_client_waits_for_one_to_free() {
    // Headers may take a minute: only a client closing frees a slot here.
    let mut c = Cluster::start(1, &["--max-client-connections", "2", "--request-timeout", "30000"]);
    // The helpers' client keeps connections for reuse: close them.
    c.http = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    wait_for(Duration::from_secs(20), "only the metrics connection open", || {
        (open_connections(&c, 0) == 1.0).then_some(())
    });
    let first = stalled(&c, 0, "");
    wait_for(Duration::from_secs(20), "the first idle connection counted", || {
        (open_connections(&c, 0) == 2.0).then_some(())
    });
    // The second takes the last slot once the metrics connection closes.
    let _second = stalled(&c, 0, "");
    let mut third = stalled(&c, 0, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(until_closed(&mut third, Duration::from_secs(2)), None, "served past the cap");
    drop(first);
    let answer =
        until_closed(&mut third, Duration::from_secs(20)).expect("served once a slot frees");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(c.log(0).contains("--max-client-connections"), "the full table is logged");
}

#[test]
fn a_stop_is_prompt_with_a_stalled_client_connection_open() {
    let mut c = Cluster::start(1, &["--request-timeout", "1000"]);
    let _idle = stalled(&c, 0, "");
    let _partial = stalled(&c, 0, "PUT /kv/a HTTP/1.1\r\nHost: x\r\n");
    wait_for(Duration::from_secs(20), "both stalled connections counted", || {
        (open_connections(&c, 0) >= 3.0).then_some(())
    });
    let pid = c.members[0].child.as_ref().unwrap().id();
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let status = c.wait_exit(0, Duration::from_secs(20));
    assert!(status.success(), "a stopped member exits cleanly: {status}");
}
