//! The cluster under test: real `keel-kv serve` processes, their ports and
//! data directories, and the proxies on every peer link.
//!
//! Every member slot that may ever run (the initial members and the fresh
//! ids kept for membership changes) gets its client port, peer port and
//! proxies up front, so that a member is always started with the same
//! flags and restarts on the same ports. Only processes started here are
//! ever signalled, by their pid.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use socket2::{Domain, Socket, Type};

use crate::proxy::Proxies;

/// How to start `keel-kv`: a program and the arguments before `serve`.
#[derive(Clone, Debug)]
pub struct Program {
    /// The executable.
    pub exe: PathBuf,
    /// Arguments before `serve` (e.g. `["keel-kv"]` when the tester runs
    /// its own binary as the server).
    pub prefix: Vec<String>,
}

/// Where a member slot lives.
#[derive(Clone, Debug)]
pub struct Slot {
    /// The member id, unique for all time.
    pub id: u64,
    /// Client API address.
    pub client: SocketAddr,
    /// The member's own peer listener (proxies forward to it).
    pub peer: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Slot {
    /// The peer URL other members are told about.
    pub fn peer_url(&self) -> String {
        format!("http://{}", self.peer)
    }
}

/// What the process of a slot is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Never started (a fresh id not yet used).
    Unused,
    /// Running.
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Killed with SIGKILL, to be restarted on the same directory.
    Killed,
    /// Removed from the cluster; its process exited or was killed.
    Removed,
}

struct Proc {
    state: ProcState,
    child: Option<Child>,
    /// `--initial-cluster` of its first start, reused on every restart.
    initial_cluster: String,
    join: bool,
    starts: u32,
}

/// Errors of the harness itself (not of the system under test).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The cluster did not reach a required state in time.
    #[error("{0}")]
    Timeout(String),
    /// The output directory holds an earlier run, whose members' data
    /// would be restarted instead of a fresh cluster.
    #[error("{0} holds an earlier run (member data); remove it or choose another --out")]
    OutputInUse(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The cluster: slots, processes, proxies, and an HTTP client for them.
pub struct Cluster {
    program: Program,
    slots: BTreeMap<u64, Slot>,
    procs: Mutex<BTreeMap<u64, Proc>>,
    /// The members of the configuration, as far as the tester has changed it.
    config: Mutex<BTreeSet<u64>>,
    /// Fresh ids not yet used, in order.
    fresh: Mutex<Vec<u64>>,
    /// The proxies of every directed link between slots.
    pub proxies: Proxies,
    serve_flags: Vec<String>,
    log_dir: PathBuf,
    log_filter: String,
    /// Client of the tester's own requests (status, membership).
    pub http: reqwest::Client,
    /// Holds every slot's ports while its member is down (see `reserve_addr`).
    _reserved: Vec<Socket>,
}

/// A port the OS hands out, kept reserved for the whole run.
///
/// A member's port is free while the member is down, and the kernel may hand
/// it to any outgoing connection as its ephemeral local port (the proxies and
/// clients make thousands), after which the restart fails with "address in
/// use". A socket bound with `SO_REUSEADDR` but never listening holds the port:
/// Linux never picks an explicitly bound port for `connect`, yet a listener
/// that also sets `SO_REUSEADDR` (tokio's and std's both do) binds beside it.
fn reserve_addr(reserved: &mut Vec<Socket>) -> Result<SocketAddr, HarnessError> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io("opening a socket"))?;
    socket.set_reuse_address(true).map_err(io("setting SO_REUSEADDR"))?;
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&any.into()).map_err(io("reserving a free port"))?;
    let addr = socket.local_addr().map_err(io("reading a reserved port"))?.as_socket().ok_or_else(
        || HarnessError::Io {
            what: "reading a reserved port".into(),
            source: std::io::Error::other("not an IP address"),
        },
    )?;
    reserved.push(socket);
    Ok(addr)
}

/// How a cluster is laid out and started.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The server program.
    pub program: Program,
    /// Members at the start.
    pub nodes: u64,
    /// Fresh ids kept for members added during the run.
    pub spare_ids: u64,
    /// Data directories and member logs go here.
    pub dir: PathBuf,
    /// Extra `serve` flags for every member (timings, planted bugs).
    pub serve_flags: Vec<String>,
    /// `RUST_LOG` of the members.
    pub log_filter: String,
}

impl Cluster {
    /// Lays out the slots and proxies (inside a tokio runtime); starts nothing.
    pub async fn new(o: ClusterOptions) -> Result<Arc<Cluster>, HarnessError> {
        let mut reserved = Vec::new();
        let mut slots = BTreeMap::new();
        for id in 1..=o.nodes + o.spare_ids {
            let slot = Slot {
                id,
                client: reserve_addr(&mut reserved)?,
                peer: reserve_addr(&mut reserved)?,
                data_dir: o.dir.join(format!("member-{id}")),
            };
            slots.insert(id, slot);
        }
        let targets: HashMap<u64, SocketAddr> = slots.values().map(|s| (s.id, s.peer)).collect();
        let ids: Vec<u64> = slots.keys().copied().collect();
        let links =
            ids.iter().flat_map(|&a| ids.iter().filter(move |&&b| b != a).map(move |&b| (a, b)));
        let proxies = Proxies::start(links, &targets, o.nodes ^ 0x5eed)
            .await
            .map_err(io("starting the link proxies"))?;
        let initial: Vec<String> = slots
            .values()
            .take(o.nodes as usize)
            .map(|s| format!("{}={}", s.id, s.peer_url()))
            .collect();
        let initial = initial.join(",");
        let procs = slots
            .keys()
            .map(|&id| {
                let p = Proc {
                    state: ProcState::Unused,
                    child: None,
                    initial_cluster: if id <= o.nodes { initial.clone() } else { String::new() },
                    join: id > o.nodes,
                    starts: 0,
                };
                (id, p)
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| HarnessError::Io {
                what: "building the HTTP client".into(),
                source: std::io::Error::other(e),
            })?;
        Ok(Arc::new(Cluster {
            program: o.program,
            slots,
            procs: Mutex::new(procs),
            config: Mutex::new((1..=o.nodes).collect()),
            fresh: Mutex::new((o.nodes + 1..=o.nodes + o.spare_ids).rev().collect()),
            proxies,
            serve_flags: o.serve_flags,
            log_dir: o.dir,
            log_filter: o.log_filter,
            http,
            _reserved: reserved,
        }))
    }

    fn procs(&self) -> MutexGuard<'_, BTreeMap<u64, Proc>> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot of member `id`.
    pub fn slot(&self, id: u64) -> &Slot {
        &self.slots[&id]
    }

    /// Every slot id, used or not.
    pub fn all_ids(&self) -> Vec<u64> {
        self.slots.keys().copied().collect()
    }

    /// The members of the configuration (voters and learners the tester added).
    pub fn config(&self) -> BTreeSet<u64> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The process state of member `id`.
    pub fn state(&self, id: u64) -> ProcState {
        self.procs().get(&id).map_or(ProcState::Unused, |p| p.state)
    }

    /// Members of the configuration whose process is running.
    pub fn running(&self) -> Vec<u64> {
        let config = self.config();
        config.into_iter().filter(|id| self.state(*id) == ProcState::Running).collect()
    }

    /// Whether a fresh id is left (only the membership track takes them).
    pub fn has_fresh_id(&self) -> bool {
        !self.fresh.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Takes the next fresh id, if any is left.
    pub fn take_fresh_id(&self) -> Option<u64> {
        self.fresh.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Starts every initial member.
    pub fn start_all(&self) -> Result<(), HarnessError> {
        for id in self.config() {
            self.start(id)?;
        }
        Ok(())
    }

    /// Starts (or restarts) member `id` on its data directory.
    pub fn start(&self, id: u64) -> Result<(), HarnessError> {
        let slot = &self.slots[&id];
        let mut procs = self.procs();
        let p = procs.get_mut(&id).ok_or_else(|| HarnessError::Timeout(format!("no slot {id}")))?;
        if p.child.is_some() {
            return Ok(());
        }
        let log = self.log_dir.join(format!("member-{id}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let mut cmd = Command::new(&self.program.exe);
        cmd.args(&self.program.prefix)
            .arg("serve")
            .args(["--id", &id.to_string(), "--initial-cluster", &p.initial_cluster])
            .args(["--listen-client", &slot.client.to_string()])
            .args(["--listen-peer", &slot.peer.to_string()])
            .arg("--data-dir")
            .arg(&slot.data_dir);
        for other in self.slots.keys().filter(|o| **o != id) {
            if let Some(addr) = self.proxies.addr(id, *other) {
                cmd.args(["--peer-address", &format!("{other}={addr}")]);
            }
        }
        if p.join {
            cmd.arg("--join");
        }
        cmd.args(&self.serve_flags)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().map_err(io(format!("starting {}", self.program.exe.display())))?;
        p.child = Some(child);
        p.state = ProcState::Running;
        p.starts += 1;
        Ok(())
    }

    /// Prepares a fresh member's first start: it joins the current
    /// configuration (which must already list it).
    pub fn prepare_join(&self, id: u64) {
        let members: Vec<String> = self
            .config()
            .into_iter()
            .chain(std::iter::once(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|m| format!("{m}={}", self.slots[&m].peer_url()))
            .collect();
        if let Some(p) = self.procs().get_mut(&id) {
            p.initial_cluster = members.join(",");
            p.join = true;
        }
    }

    /// Adds `id` to the tester's view of the configuration.
    pub fn config_add(&self, id: u64) {
        self.config.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
    }

    /// Removes `id` from the tester's view of the configuration.
    pub fn config_remove(&self, id: u64) {
        self.config.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn pid(&self, id: u64) -> Option<Pid> {
        let procs = self.procs();
        let child = procs.get(&id)?.child.as_ref()?;
        i32::try_from(child.id()).ok().map(Pid::from_raw)
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&self, id: u64, then: ProcState) {
        let mut procs = self.procs();
        let Some(p) = procs.get_mut(&id) else { return };
        if let Some(mut child) = p.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        p.state = then;
    }

    /// SIGSTOP (the process keeps its sockets; requests to it hang).
    pub fn pause(&self, id: u64) {
        if let Some(pid) = self.pid(id)
            && signal::kill(pid, Signal::SIGSTOP).is_ok()
            && let Some(p) = self.procs().get_mut(&id)
        {
            p.state = ProcState::Paused;
        }
    }

    /// SIGCONT.
    pub fn resume(&self, id: u64) {
        if let Some(pid) = self.pid(id) {
            let _ = signal::kill(pid, Signal::SIGCONT);
        }
        if let Some(p) = self.procs().get_mut(&id)
            && p.state == ProcState::Paused
        {
            p.state = ProcState::Running;
        }
    }

    /// Whether member `id`'s process has exited on its own (reaping it).
    pub fn exited(&self, id: u64) -> bool {
        let mut procs = self.procs();
        let Some(p) = procs.get_mut(&id) else { return true };
        match p.child.as_mut().map(Child::try_wait) {
            None => true,
            Some(Ok(Some(_)) | Err(_)) => {
                p.child = None;
                true
            }
            Some(Ok(None)) => false,
        }
    }

    /// Members (of the configuration) whose process died without being killed.
    pub fn crashed(&self) -> Vec<u64> {
        self.config()
            .into_iter()
            .filter(|id| matches!(self.state(*id), ProcState::Running) && self.exited(*id))
            .collect()
    }

    /// Times each member was started.
    pub fn starts(&self) -> BTreeMap<u64, u32> {
        self.procs().iter().filter(|(_, p)| p.starts > 0).map(|(id, p)| (*id, p.starts)).collect()
    }

    /// Kills every process still running (the end of a run, or a failure).
    pub fn shutdown(&self) {
        let ids: Vec<u64> = self.procs().keys().copied().collect();
        for id in ids {
            self.resume(id);
            let state = self.state(id);
            self.kill(id, state);
        }
    }

    /// `GET path` on member `id`, as JSON; `None` on any failure.
    pub async fn get_json(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("http://{}{path}", self.slots[&id].client);
        let r = self.http.get(url).timeout(Duration::from_secs(1)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        serde_json::from_str(&r.text().await.ok()?).ok()
    }

    /// The leader that the running members report for the highest term.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.running() {
            let Some(st) = self.get_json(id, "/status").await else { continue };
            let (Some(term), Some(lead)) = (st["term"].as_u64(), st["leader"].as_u64()) else {
                continue;
            };
            if lead != 0 && best.is_none_or(|(t, _)| term > t) {
                best = Some((term, lead));
            }
        }
        best.map(|(_, lead)| lead).filter(|l| self.config().contains(l))
    }

    /// Where the member logs and data directories are.
    pub fn dir(&self) -> &Path {
        &self.log_dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
