//! Real `keel-kv serve` processes on 127.0.0.1 with OS-chosen ports. Every
//! wait is bounded; only the processes started here are killed (by their
//! `Child` handle, that is by pid), also when a test fails.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]
#![allow(clippy::disallowed_methods, reason = "waits are bounded in real time")]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::Value;

/// A port the OS just handed out (bound, then released for the member).
/// Never the same one twice in this test process: the OS may hand a just
/// released port out again, and tests run in parallel.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Member {
    pub id: u64,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

impl Member {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    pub http: Client,
    /// `RUST_LOG` of members started from now on (default: `KEEL_TEST_LOG`,
    /// or `warn`).
    pub log_filter: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    /// Starts `n` members with `extra` flags for each, and waits for a leader.
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        Cluster::start_in(tempfile::tempdir().unwrap(), n, extra)
    }

    /// As [`Cluster::start`], with the data directories under `dir`.
    pub fn start_in(dir: tempfile::TempDir, n: u64, extra: &[&str]) -> Cluster {
        let members = (1..=n)
            .map(|id| Member {
                id,
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{id}")),
                child: None,
                extra: extra.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        let http = Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
        let log_filter = std::env::var("KEEL_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut c = Cluster { dir, members, http, log_filter };
        for i in 0..c.members.len() {
            c.spawn(i, false);
        }
        c.wait_leader(&[]);
        c
    }

    pub fn initial_cluster(&self) -> String {
        let parts: Vec<String> =
            self.members.iter().map(|m| format!("{}={}", m.id, m.peer_url())).collect();
        parts.join(",")
    }

    pub fn index_of(&self, id: u64) -> usize {
        self.members.iter().position(|m| m.id == id).unwrap()
    }

    /// Starts (or restarts) member `i` on its data directory.
    pub fn spawn(&mut self, i: usize, join: bool) {
        let initial = self.initial_cluster();
        self.spawn_with(i, join, &initial);
    }

    /// [`Cluster::spawn`] with the `--initial-cluster` given (as an operator
    /// restarting a member with its first flags would).
    pub fn spawn_with(&mut self, i: usize, join: bool, initial: &str) {
        let log_path = self.log_path(i);
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} is running", m.id);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel-kv"));
        cmd.args(["serve", "--id", &m.id.to_string(), "--initial-cluster", initial])
            .args(["--listen-client", &format!("127.0.0.1:{}", m.client_port)])
            .args(["--data-dir", m.data_dir.to_str().unwrap()])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(&m.extra)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let f = std::fs::OpenOptions::new().create(true).append(true).open(log_path).unwrap();
        cmd.stderr(f);
        if join {
            cmd.arg("--join");
        }
        m.child = Some(cmd.spawn().unwrap());
    }

    /// Where member `i` logs: `KEEL_TEST_LOG_DIR` if set (kept, for
    /// debugging a failure), else the cluster's temporary directory.
    fn log_path(&self, i: usize) -> PathBuf {
        let dir = std::env::var("KEEL_TEST_LOG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| self.dir.path().to_path_buf());
        dir.join(format!("member-{}.log", self.members[i].id))
    }

    /// What member `i` has logged so far (every start of it).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Adds a member entry (not started) with its own ports.
    pub fn add_slot(&mut self, id: u64, extra: &[&str]) -> usize {
        self.members.push(Member {
            id,
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: self.dir.path().join(format!("m{id}")),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        });
        self.members.len() - 1
    }

    pub fn kill(&mut self, i: usize) {
        let mut c = self.members[i].child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Waits for member `i` to exit on its own.
    pub fn wait_exit(&mut self, i: usize, limit: Duration) -> ExitStatus {
        let child = self.members[i].child.as_mut().unwrap();
        let status = wait_for(limit, "the member to exit", || child.try_wait().unwrap());
        self.members[i].child = None;
        status
    }

    pub fn get(&self, i: usize, path: &str) -> Response {
        self.http.get(self.members[i].url(path)).send().unwrap()
    }

    /// The status code of a GET, `None` while the member does not answer.
    pub fn try_status(&self, i: usize, path: &str) -> Option<u16> {
        let r = self.http.get(self.members[i].url(path)).timeout(Duration::from_secs(2)).send();
        r.ok().map(|r| r.status().as_u16())
    }

    pub fn json(&self, i: usize, path: &str) -> Value {
        self.get(i, path).json().unwrap()
    }

    pub fn put(&self, i: usize, key: &str, value: &str) -> Response {
        self.http
            .put(self.members[i].url(&format!("/kv/{key}")))
            .body(value.to_string())
            .send()
            .unwrap()
    }

    /// A put that must succeed.
    pub fn put_ok(&self, i: usize, key: &str, value: &str) {
        let r = self.put(i, key, value);
        let status = r.status();
        assert!(status.is_success(), "PUT {key} on member {i}: {status} {}", r.text().unwrap());
    }

    /// The value of `key` on member `i` (`None`: 404).
    pub fn value(&self, i: usize, key: &str, serializable: bool) -> Option<String> {
        let q = if serializable { "?consistency=serializable" } else { "" };
        let r = self.get(i, &format!("/kv/{key}{q}"));
        match r.status().as_u16() {
            200 => Some(r.text().unwrap()),
            404 => None,
            s => panic!("GET {key} on member {i}: {s} {}", r.text().unwrap()),
        }
    }

    /// The leader every running member (but `except`) agrees on.
    pub fn wait_leader(&self, except: &[usize]) -> u64 {
        wait_for(Duration::from_secs(20), "an agreed leader", || {
            let mut leaders = Vec::new();
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() || except.contains(&i) {
                    continue;
                }
                let r = self.http.get(m.url("/status")).timeout(Duration::from_secs(2)).send();
                let lead = r.ok()?.json::<Value>().ok()?["leader"].as_u64()?;
                leaders.push(lead);
            }
            let first = *leaders.first()?;
            let dead = except.iter().any(|i| self.members[*i].id == first);
            (first != 0 && !dead && leaders.iter().all(|l| *l == first)).then_some(first)
        })
    }

    /// A metric's value on member `i`.
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self.get(i, "/metrics").text().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}
