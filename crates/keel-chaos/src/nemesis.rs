//! The nemesis: faults with weights and durations, a quiet period between
//! them, and membership changes on a track of their own.
//!
//! The first round injects one fault of every enabled kind (in a seeded
//! order), so that even a short run exercises them all; after that, faults
//! are drawn by weight. Every fault is healed before the next one starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_sim::sim::rng::Rng;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, ProcState};
use crate::proxy::LinkFault;

/// A family of faults, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kind {
    /// `kill -9` of a member (random or the leader), restarted on its data.
    Kill,
    /// SIGSTOP, then SIGCONT (a long GC pause).
    Pause,
    /// Partitions through the link proxies.
    Partition,
    /// Slow and lossy links.
    Link,
    /// Remove a member and add a fresh one (learner, then promoted).
    Membership,
}

/// One fault of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillRandom,
    KillLeader,
    PauseRandom,
    PauseLeader,
    IsolateOne,
    IsolateLeader,
    MajorityMinority,
    OneWay,
    Bridge,
    Slow,
    Lossy,
}

impl Fault {
    const ALL: [Fault; 11] = [
        Fault::KillRandom,
        Fault::KillLeader,
        Fault::PauseRandom,
        Fault::PauseLeader,
        Fault::IsolateOne,
        Fault::IsolateLeader,
        Fault::MajorityMinority,
        Fault::OneWay,
        Fault::Bridge,
        Fault::Slow,
        Fault::Lossy,
    ];

    fn kind(self) -> Kind {
        match self {
            Fault::KillRandom | Fault::KillLeader => Kind::Kill,
            Fault::PauseRandom | Fault::PauseLeader => Kind::Pause,
            Fault::Slow | Fault::Lossy => Kind::Link,
            _ => Kind::Partition,
        }
    }

    /// Relative frequency after the first round.
    fn weight(self) -> u64 {
        match self {
            Fault::KillRandom | Fault::KillLeader => 3,
            Fault::PauseRandom | Fault::PauseLeader => 2,
            Fault::IsolateLeader | Fault::MajorityMinority => 3,
            Fault::IsolateOne | Fault::OneWay | Fault::Bridge => 2,
            Fault::Slow | Fault::Lossy => 2,
        }
    }
}

/// The nemesis's timing.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Kinds to inject.
    pub kinds: BTreeSet<Kind>,
    /// How long each fault lasts (drawn uniformly in this range).
    pub fault: (Duration, Duration),
    /// The quiet period between faults (drawn uniformly in this range).
    pub quiet: (Duration, Duration),
}

/// One injected fault, for the summary.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// Its kind.
    pub kind: Kind,
    /// What was done, e.g. `kill leader 3`.
    pub what: String,
    /// Seconds since the start of the run.
    pub start_s: f64,
    /// Seconds since the start of the run.
    pub end_s: f64,
}

impl FaultRecord {
    /// As JSON, for the summary file.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "kind": format!("{:?}", self.kind).to_lowercase(),
            "what": self.what,
            "start_s": self.start_s,
            "end_s": self.end_s,
        })
    }
}

/// Shared between the fault track and the membership track, so that they
/// never act on the same member at once.
#[derive(Default)]
pub struct Busy(Mutex<BTreeSet<u64>>);

impl Busy {
    fn claim(&self, id: u64) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id)
    }
    fn release(&self, id: u64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
    fn contains(&self, id: u64) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(&id)
    }
}

fn draw(rng: &mut Rng, (lo, hi): (Duration, Duration)) -> Duration {
    let (lo, hi) = (lo.as_millis() as u64, hi.as_millis().max(lo.as_millis()) as u64);
    Duration::from_millis(rng.range(lo, hi))
}

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// The fault track: runs until `until`, then heals and returns what it did.
pub async fn run_faults(
    cluster: Arc<Cluster>,
    busy: Arc<Busy>,
    schedule: Schedule,
    mut rng: Rng,
    start: Instant,
    until: Instant,
) -> Vec<FaultRecord> {
    let enabled: Vec<Fault> =
        Fault::ALL.into_iter().filter(|f| schedule.kinds.contains(&f.kind())).collect();
    let mut done = Vec::new();
    if enabled.is_empty() {
        tokio::time::sleep_until(until).await;
        return done;
    }
    // First round: one fault of each kind, kinds in a seeded order.
    let mut first: Vec<Fault> = Vec::new();
    let mut kinds: Vec<Kind> = enabled.iter().map(|f| f.kind()).collect();
    kinds.dedup();
    while !kinds.is_empty() {
        let k = kinds.remove(rng.below(kinds.len() as u64) as usize);
        let of_kind: Vec<Fault> = enabled.iter().copied().filter(|f| f.kind() == k).collect();
        first.push(*rng.pick(&of_kind));
    }
    let total: u64 = enabled.iter().map(|f| f.weight()).sum();
    let mut round = first.into_iter();
    loop {
        tokio::time::sleep(draw(&mut rng, schedule.quiet)).await;
        if Instant::now() >= until {
            break;
        }
        let fault = round.next().unwrap_or_else(|| {
            let mut x = rng.below(total);
            *enabled
                .iter()
                .find(|f| {
                    if x < f.weight() {
                        return true;
                    }
                    x -= f.weight();
                    false
                })
                .unwrap_or(&enabled[0])
        });
        let hold = draw(&mut rng, schedule.fault)
            .min(until.saturating_duration_since(Instant::now()) + Duration::from_millis(500));
        let t0 = secs(start);
        let Some((what, heal)) = inject(&cluster, &busy, fault, &mut rng).await else {
            continue;
        };
        tracing::info!("nemesis: {what} for {hold:?}");
        tokio::time::sleep(hold).await;
        heal.run(&cluster, &busy);
        tracing::info!("nemesis: healed {what}");
        done.push(FaultRecord { kind: fault.kind(), what, start_s: t0, end_s: secs(start) });
    }
    done
}

/// How to undo a fault.
enum Heal {
    Restart(u64),
    Resume(u64),
    Links,
}

impl Heal {
    fn run(self, cluster: &Cluster, busy: &Busy) {
        match self {
            Heal::Restart(id) => {
                if let Err(e) = cluster.start(id) {
                    tracing::error!("nemesis: cannot restart member {id}: {e}");
                }
                busy.release(id);
            }
            Heal::Resume(id) => {
                cluster.resume(id);
                busy.release(id);
            }
            Heal::Links => cluster.proxies.heal_all(),
        }
    }
}

/// A running member the membership track is not working on.
fn pick_member(cluster: &Cluster, busy: &Busy, rng: &mut Rng) -> Option<u64> {
    let free: Vec<u64> = cluster.running().into_iter().filter(|id| !busy.contains(*id)).collect();
    (!free.is_empty()).then(|| *rng.pick(&free))
}

async fn pick_leader(cluster: &Cluster, busy: &Busy, rng: &mut Rng) -> Option<(u64, bool)> {
    match cluster.leader().await {
        Some(l) if !busy.contains(l) && cluster.state(l) == ProcState::Running => Some((l, true)),
        _ => pick_member(cluster, busy, rng).map(|id| (id, false)),
    }
}

fn shuffled(mut ids: Vec<u64>, rng: &mut Rng) -> Vec<u64> {
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    ids
}

/// Blocks every link between the two sides, both ways.
fn split(cluster: &Cluster, a: &[u64], b: &[u64]) {
    let blocked = LinkFault { blocked: true, ..LinkFault::HEALTHY };
    for &x in a {
        for &y in b {
            cluster.proxies.set(x, y, blocked);
            cluster.proxies.set(y, x, blocked);
        }
    }
}

/// Applies `fault`; says what it did and how to undo it.
async fn inject(
    cluster: &Cluster,
    busy: &Busy,
    fault: Fault,
    rng: &mut Rng,
) -> Option<(String, Heal)> {
    let all = cluster.all_ids();
    let members: Vec<u64> = cluster.config().into_iter().collect();
    let role = |leader: bool| if leader { "leader" } else { "member (no leader known)" };
    match fault {
        Fault::KillRandom | Fault::KillLeader => {
            let (id, leader) = if fault == Fault::KillLeader {
                pick_leader(cluster, busy, rng).await?
            } else {
                (pick_member(cluster, busy, rng)?, false)
            };
            busy.claim(id).then_some(())?;
            cluster.kill(id, ProcState::Killed);
            let what = if fault == Fault::KillLeader {
                format!("kill -9 {} {id}", role(leader))
            } else {
                format!("kill -9 member {id}")
            };
            Some((what, Heal::Restart(id)))
        }
        Fault::PauseRandom | Fault::PauseLeader => {
            let (id, leader) = if fault == Fault::PauseLeader {
                pick_leader(cluster, busy, rng).await?
            } else {
                (pick_member(cluster, busy, rng)?, false)
            };
            busy.claim(id).then_some(())?;
            cluster.pause(id);
            let what = if fault == Fault::PauseLeader {
                format!("SIGSTOP {} {id}", role(leader))
            } else {
                format!("SIGSTOP member {id}")
            };
            Some((what, Heal::Resume(id)))
        }
        Fault::IsolateOne | Fault::IsolateLeader => {
            let (id, leader) = if fault == Fault::IsolateLeader {
                match cluster.leader().await {
                    Some(l) => (l, true),
                    None => (*rng.pick(&members), false),
                }
            } else {
                (*rng.pick(&members), false)
            };
            let rest: Vec<u64> = all.iter().copied().filter(|x| *x != id).collect();
            split(cluster, &[id], &rest);
            let what = if fault == Fault::IsolateLeader {
                format!("isolate {} {id}", role(leader))
            } else {
                format!("isolate member {id}")
            };
            Some((what, Heal::Links))
        }
        Fault::MajorityMinority => {
            let order = shuffled(members.clone(), rng);
            let minority = &order[..order.len() / 2];
            let majority: Vec<u64> =
                all.iter().copied().filter(|x| !minority.contains(x)).collect();
            split(cluster, minority, &majority);
            Some((format!("split minority {minority:?} from the rest"), Heal::Links))
        }
        Fault::OneWay => {
            // Cut the leader's messages to one follower (or the reverse):
            // one side hears the other but cannot answer.
            let leader = cluster.leader().await.unwrap_or(*rng.pick(&members));
            let others: Vec<u64> = members.iter().copied().filter(|x| *x != leader).collect();
            if others.is_empty() {
                return None;
            }
            let other = *rng.pick(&others);
            let (from, to) = if rng.chance(500) { (leader, other) } else { (other, leader) };
            cluster.proxies.set(from, to, LinkFault { blocked: true, ..LinkFault::HEALTHY });
            Some((format!("one-way partition: {from} -> {to} cut"), Heal::Links))
        }
        Fault::Bridge => {
            // Two halves that cannot talk, and one member that talks to both.
            let order = shuffled(members.clone(), rng);
            let bridge = order[0];
            let rest = &order[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            let mut b = b.to_vec();
            // Slots not in the configuration go with the second half.
            b.extend(all.iter().copied().filter(|x| !members.contains(x)));
            split(cluster, a, &b);
            Some((
                format!("bridge {bridge} between {a:?} and {:?}", &order[1 + a.len()..]),
                Heal::Links,
            ))
        }
        Fault::Slow | Fault::Lossy => {
            let fault_of = if fault == Fault::Slow {
                let delay = Duration::from_millis(rng.range(20, 200));
                LinkFault { delay, ..LinkFault::HEALTHY }
            } else {
                LinkFault { loss_per_mille: rng.range(100, 500) as u32, ..LinkFault::HEALTHY }
            };
            // All links of one member, or of every member.
            let target = rng.chance(500).then(|| *rng.pick(&members));
            for &x in &all {
                for &y in &all {
                    if x != y && target.is_none_or(|t| t == x || t == y) {
                        cluster.proxies.set(x, y, fault_of);
                    }
                }
            }
            let scope = target.map_or("every link".to_string(), |t| format!("links of member {t}"));
            let what = if fault == Fault::Slow {
                format!("slow {scope}: +{:?} per chunk", fault_of.delay)
            } else {
                format!("lossy {scope}: {}‰ of connections dropped", fault_of.loss_per_mille)
            };
            Some((what, Heal::Links))
        }
    }
}

/// The membership track: until `until`, removes a member and adds a fresh
/// one as a learner, then promotes it, waiting a quiet period in between.
pub async fn run_membership(
    cluster: Arc<Cluster>,
    busy: Arc<Busy>,
    quiet: (Duration, Duration),
    mut rng: Rng,
    start: Instant,
    until: Instant,
) -> Vec<FaultRecord> {
    let mut done = Vec::new();
    loop {
        tokio::time::sleep(draw(&mut rng, quiet)).await;
        if Instant::now() >= until {
            return done;
        }
        // A member is removed only when a fresh one can replace it: a run
        // that used up its spare ids keeps its size instead of shrinking.
        if !cluster.has_fresh_id() {
            tracing::info!("membership: no fresh ids left; no more changes");
            return done;
        }
        let t0 = secs(start);
        let Some(victim) = pick_member(&cluster, &busy, &mut rng) else { continue };
        if !busy.claim(victim) {
            continue;
        }
        let removed = remove(&cluster, victim).await;
        busy.release(victim);
        let Some(removed) = removed else { continue };
        done.push(FaultRecord {
            kind: Kind::Membership,
            what: removed,
            start_s: t0,
            end_s: secs(start),
        });
        let t1 = secs(start);
        let Some(fresh) = cluster.take_fresh_id() else { return done };
        busy.claim(fresh);
        let added = add(&cluster, fresh).await;
        busy.release(fresh);
        done.push(FaultRecord {
            kind: Kind::Membership,
            what: added,
            start_s: t1,
            end_s: secs(start),
        });
    }
}

/// Sends a membership request to running members in turn until one gives
/// an answer `accept` takes, for at most `limit`.
async fn membership_request(
    cluster: &Cluster,
    limit: Duration,
    mut request: impl FnMut(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    accept: impl Fn(u16, &str) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let leader = cluster.leader().await;
        let targets: Vec<u64> = leader.into_iter().chain(cluster.running()).collect();
        for id in targets {
            let base = format!("http://{}", cluster.slot(id).client);
            let Ok(r) = request(&cluster.http, &base).send().await else { continue };
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if accept(status, &body) {
                return true;
            }
            tracing::debug!("membership request on {id}: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

async fn remove(cluster: &Cluster, victim: u64) -> Option<String> {
    let ok = membership_request(
        cluster,
        Duration::from_secs(20),
        |http, base| http.delete(format!("{base}/members/{victim}")),
        // 404: an earlier try that looked failed went through.
        |status, _| status == 200 || status == 404,
    )
    .await;
    if !ok {
        tracing::warn!("membership: could not remove member {victim}");
        return None;
    }
    cluster.config_remove(victim);
    // A removed member stops on its own once it applies its removal; one
    // that never hears of it (cut off) is stopped by the tester.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.exited(victim) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = cluster.exited(victim);
    cluster.kill(victim, ProcState::Removed);
    Some(if exited {
        format!("removed member {victim} (it exited on its own)")
    } else {
        format!("removed member {victim} (killed: it had not exited after 10 s)")
    })
}

async fn add(cluster: &Cluster, id: u64) -> String {
    let peer_url = cluster.slot(id).peer_url();
    let body = json!({ "id": id, "peer_url": peer_url, "learner": true }).to_string();
    let added = membership_request(
        cluster,
        Duration::from_secs(20),
        |http, base| {
            http.post(format!("{base}/members"))
                .header("content-type", "application/json")
                .body(body.clone())
        },
        |status, body| status == 201 || (status == 409 && body.contains("already exists")),
    )
    .await;
    if !added {
        return format!("could not add member {id} as a learner");
    }
    cluster.prepare_join(id);
    cluster.config_add(id);
    if let Err(e) = cluster.start(id) {
        return format!("added member {id}, but could not start it: {e}");
    }
    let promoted = membership_request(
        cluster,
        Duration::from_secs(30),
        |http, base| http.post(format!("{base}/members/{id}/promote")),
        |status, body| status == 200 || (status == 409 && body.contains("already a voter")),
    )
    .await;
    if promoted {
        format!("added member {id} as a learner and promoted it")
    } else {
        format!("added member {id} as a learner (promotion refused for 30 s)")
    }
}

/// Faults injected, by kind, for the summary.
pub fn by_kind(faults: &[FaultRecord]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in faults {
        *out.entry(format!("{:?}", f.kind).to_lowercase()).or_insert(0) += 1;
    }
    out
}
