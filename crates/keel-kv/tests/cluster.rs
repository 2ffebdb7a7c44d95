//! Multi-process tests of `keel-kv serve`: real processes, real disks, real
//! sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Cluster, wait_for};

#[test]
fn a_write_on_any_member_is_readable_on_all_and_follower_reads_are_linearizable() {
    let c = Cluster::start(3, &[]);
    for i in 0..3 {
        c.put_ok(i, &format!("from/{i}"), &format!("value {i}"));
    }
    for reader in 0..3 {
        for writer in 0..3 {
            assert_eq!(
                c.value(reader, &format!("from/{writer}"), false).as_deref(),
                Some(format!("value {writer}").as_str())
            );
        }
    }
    // A linearizable GET on a follower sees a write acknowledged just before,
    // over and over.
    let leader = c.index_of(c.wait_leader(&[]));
    let follower = (leader + 1) % 3;
    for n in 0..30 {
        c.put_ok(leader, "counter", &n.to_string());
        assert_eq!(c.value(follower, "counter", false), Some(n.to_string()));
    }
    let listing = c.json(follower, "/kv?prefix=from/&limit=2");
    assert_eq!(listing["kvs"].as_array().unwrap().len(), 2);
    assert_eq!(listing["more"], json!(true));
    assert_eq!(listing["kvs"][0], json!({"key": "from/0", "value": "value 0"}));
    let del: Value =
        c.http.delete(c.members[follower].url("/kv/from/0")).send().unwrap().json().unwrap();
    assert_eq!(del["deleted"], json!(true));
    assert_eq!(c.value(leader, "from/0", false), None);
    let status = c.json(leader, "/status");
    assert_eq!(status["progress"].as_object().unwrap().len(), 3);
    assert!(status["applied"].as_u64().unwrap() >= status["commit"].as_u64().unwrap() - 5);
    assert_eq!(c.get(follower, "/health").status(), 200);
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write_and_the_member_catches_up() {
    let mut c = Cluster::start(3, &[]);
    let mut acked = Vec::new();
    for n in 0..40 {
        c.put_ok(n % 3, &format!("k{n}"), &format!("v{n}"));
        acked.push(n);
    }
    let old = c.index_of(c.wait_leader(&[]));
    c.kill(old);
    let new = c.wait_leader(&[old]);
    assert_ne!(c.index_of(new), old);
    let live: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    for n in 40..60 {
        c.put_ok(live[n % 2], &format!("k{n}"), &format!("v{n}"));
        acked.push(n);
    }
    for n in &acked {
        assert_eq!(c.value(live[0], &format!("k{n}"), false), Some(format!("v{n}")));
    }
    c.spawn(old, false);
    wait_for(Duration::from_secs(20), "the restarted member to catch up", || {
        (c.try_status(old, "/kv/k59?consistency=serializable") == Some(200)).then_some(())
    });
    for n in &acked {
        assert_eq!(c.value(old, &format!("k{n}"), true), Some(format!("v{n}")), "k{n}");
    }
    assert!(c.metric(old, "keel_leader_changes_total") >= 1.0);
}

/// Starts a cluster with `flags`, writes `before` = `kill` on the leader,
/// kills a follower, then writes `{prefix}{n}` = `n` for `n` in `0..count`
/// without it; the cluster, the leader's index and the killed member's.
fn write_past_a_killed_member(flags: &[&str], prefix: &str, count: u32) -> (Cluster, usize, usize) {
    let mut c = Cluster::start(3, flags);
    let leader = c.index_of(c.wait_leader(&[]));
    let behind = (leader + 1) % 3;
    c.put_ok(leader, "before", "kill");
    c.kill(behind);
    for n in 0..count {
        c.put_ok(leader, &format!("{prefix}{n}"), &format!("{n}"));
    }
    (c, leader, behind)
}

#[test]
fn a_member_behind_the_compacted_log_catches_up_through_a_snapshot() {
    let flags = ["--snapshot-count", "10", "--snapshot-catchup-entries", "2"];
    let (mut c, leader, behind) = write_past_a_killed_member(&flags, "s", 60);
    assert!(c.metric(leader, "keel_snapshots_created_total") >= 1.0);
    c.spawn(behind, false);
    wait_for(Duration::from_secs(20), "the member to restore a snapshot", || {
        (c.try_status(behind, "/kv/s59?consistency=serializable") == Some(200)).then_some(())
    });
    assert!(c.metric(behind, "keel_snapshots_restored_total") >= 1.0);
    for n in 0..60 {
        assert_eq!(c.value(behind, &format!("s{n}"), true), Some(n.to_string()));
    }
    assert_eq!(c.value(behind, "before", true).as_deref(), Some("kill"));
    // Its own restart from the snapshot it received keeps the data.
    c.kill(behind);
    c.spawn(behind, false);
    wait_for(Duration::from_secs(20), "the member to restart", || {
        (c.try_status(behind, "/health") == Some(200)).then_some(())
    });
    assert_eq!(c.value(behind, "s30", false).as_deref(), Some("30"));
}

/// With a snapshot after every applied entry, the snapshot the leader sends
/// holds the last write and no entry follows it: once the cluster is idle,
/// nothing but the restore itself can publish the restored member's applied
/// index, which a linearizable read there waits for.
#[test]
fn a_linearizable_read_on_a_member_restored_from_a_snapshot_succeeds_while_idle() {
    let flags = ["--snapshot-count", "1", "--snapshot-catchup-entries", "2"];
    let (mut c, _, behind) = write_past_a_killed_member(&flags, "i", 20);
    // No write from here on.
    c.spawn(behind, false);
    wait_for(Duration::from_secs(20), "the member to restore a snapshot", || {
        (c.try_status(behind, "/kv/i19?consistency=serializable") == Some(200)).then_some(())
    });
    assert!(c.metric(behind, "keel_snapshots_restored_total") >= 1.0);
    // Bounded by --request-timeout (5 s): a read that waits for an applied
    // index nobody publishes gets a 503, and `value` fails the test.
    assert_eq!(c.value(behind, "i19", false).as_deref(), Some("19"));
    assert_eq!(c.value(behind, "before", false).as_deref(), Some("kill"));
}

#[test]
fn members_are_added_as_learners_promoted_and_removed() {
    let mut c = Cluster::start(3, &[]);
    c.put_ok(0, "early", "1");
    let four = c.add_slot(4, &[]);
    let body = json!({"id": 4, "peer_url": c.members[four].peer_url(), "learner": true});
    let r = c.http.post(c.members[0].url("/members")).json(&body).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    c.spawn(four, true);
    wait_for(Duration::from_secs(20), "the learner to catch up", || {
        let r =
            c.http.get(c.members[four].url("/kv/early?consistency=serializable")).send().ok()?;
        (r.status() == 200).then_some(())
    });
    let members = c.json(1, "/members");
    let learner = members["members"].as_array().unwrap().iter().find(|m| m["id"] == 4).cloned();
    assert_eq!(learner.unwrap()["learner"], json!(true));
    // Only the leader knows whether the learner has caught up: a follower
    // refuses the promotion and names the leader.
    let leader = c.index_of(c.wait_leader(&[]));
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let r = c.http.post(c.members[follower].url("/members/4/promote")).send().unwrap();
    assert_eq!(r.status(), 421);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "not_leader");
    assert!(body["message"].as_str().unwrap().contains(&c.members[leader].id.to_string()));
    let r = c.http.post(c.members[leader].url("/members/4/promote")).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let r = c.http.post(c.members[leader].url("/members/4/promote")).send().unwrap();
    assert_eq!(r.status(), 409, "promoting a voter again");
    // Remove member 1: a change of the voters, so made on the leader (which
    // alone knows who is in touch). It shuts down cleanly, the others go on.
    let r = c.http.delete(c.members[follower].url("/members/1")).send().unwrap();
    assert_eq!(r.status(), 421, "{}", r.text().unwrap());
    let r = c.http.delete(c.members[leader].url("/members/1")).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let status = c.wait_exit(0, Duration::from_secs(20));
    assert!(status.success(), "a removed member exits cleanly: {status}");
    c.wait_leader(&[0]);
    c.put_ok(four, "late", "2");
    assert_eq!(c.value(2, "late", false).as_deref(), Some("2"));
    let ids: Vec<u64> = c.json(2, "/members")["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4]);
    // Ids are never reused.
    let body = json!({"id": 1, "peer_url": c.members[0].peer_url(), "learner": true});
    let r = c.http.post(c.members[2].url("/members")).json(&body).send().unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("never reused"));
    // Removing it again is a 404, as a retried removal expects.
    let r = c.http.delete(c.members[2].url("/members/1")).send().unwrap();
    assert_eq!(r.status(), 404);
    // With one voter down, removing another would leave one of two in touch
    // with the leader: refused. Removing the one down is fine.
    let leader = c.index_of(c.wait_leader(&[0]));
    let mut others = [1, 2, four].into_iter().filter(|i| *i != leader);
    let (down, up) = (others.next().unwrap(), others.next().unwrap());
    c.kill(down);
    let down_id = c.members[down].id.to_string();
    wait_for(Duration::from_secs(20), "the leader to see the member down", || {
        let progress = &c.json(leader, "/status")["progress"][&down_id];
        (progress["recent_active"] == json!(false)).then_some(())
    });
    let up_id = c.members[up].id;
    let r = c.http.delete(c.members[leader].url(&format!("/members/{up_id}"))).send().unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().unwrap().contains("strict reconfiguration check"));
    let r = c.http.delete(c.members[leader].url(&format!("/members/{down_id}"))).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

/// A member down while the membership changed comes back knowing only the
/// old members, and the only other live voter is one it has never heard of.
/// It must let that stranger in (the stranger's handshake names its port) to
/// hear the log that names it; refusing it would leave the two without a
/// leader for good.
#[test]
fn a_member_restarted_with_a_stale_membership_lets_a_new_leader_in() {
    let mut c = Cluster::start(3, &[]);
    let first_flags = c.initial_cluster();
    let leader = c.index_of(c.wait_leader(&[]));
    let stale = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    c.put_ok(leader, "before", "1");
    c.kill(stale);
    // Member 4 joins as a learner and is promoted, then the leader is
    // removed: the voters are the stale member, `other` and 4.
    let four = c.add_slot(4, &[]);
    let body = json!({"id": 4, "peer_url": c.members[four].peer_url(), "learner": true});
    let r = c.http.post(c.members[leader].url("/members")).json(&body).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    c.spawn(four, true);
    wait_for(Duration::from_secs(20), "the learner to catch up", || {
        (c.try_status(four, "/kv/before?consistency=serializable") == Some(200)).then_some(())
    });
    let promote = |c: &Cluster| {
        let leader = c.index_of(c.wait_leader(&[]));
        c.http.post(c.members[leader].url("/members/4/promote")).send().unwrap().status()
    };
    wait_for(Duration::from_secs(20), "the promotion", || (promote(&c) == 200).then_some(()));
    let removed = c.members[leader].id;
    let r = c.http.delete(c.members[leader].url(&format!("/members/{removed}"))).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let status = c.wait_exit(leader, Duration::from_secs(20));
    assert!(status.success(), "the removed member exits cleanly: {status}");
    wait_for(Duration::from_secs(20), "a leader among the remaining members", || {
        (c.wait_leader(&[]) != removed).then_some(())
    });
    c.put_ok(four, "while-down", "2");
    // Only 4 and the stale member are left to make a quorum.
    c.kill(other);
    c.spawn_with(stale, false, &first_flags);
    let new_leader = c.wait_leader(&[]);
    assert!([c.members[stale].id, 4].contains(&new_leader));
    assert_eq!(c.value(stale, "while-down", false).as_deref(), Some("2"));
    c.put_ok(stale, "after", "3");
    assert_eq!(c.value(four, "after", false).as_deref(), Some("3"));
    let ids: Vec<u64> = c.json(stale, "/members")["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(ids.contains(&4) && !ids.contains(&removed), "{ids:?}");
}

fn error_kind(r: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().expect("errors are JSON");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn bad_input_gets_a_json_4xx_and_no_leader_gets_a_bounded_503() {
    let mut c = Cluster::start(3, &["--max-request-bytes", "1024", "--request-timeout", "1000"]);
    let m = &c.members[0];
    let big = "x".repeat(2048);
    assert_eq!(
        error_kind(c.http.put(m.url("/kv/big")).body(big).send().unwrap(), 413),
        "too_large"
    );
    assert_eq!(error_kind(c.put(0, "", "v"), 400), "bad_request");
    assert_eq!(error_kind(c.get(0, "/kv/nope"), 404), "not_found");
    assert_eq!(error_kind(c.get(0, "/kv/a?consistency=sometimes"), 400), "bad_request");
    assert_eq!(error_kind(c.get(0, "/kv?limit=0"), 400), "bad_request");
    assert_eq!(error_kind(c.get(0, "/no/such/route"), 404), "not_found");
    let post = |body: &str| {
        c.http
            .post(m.url("/members"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    assert_eq!(error_kind(post("{not json"), 400), "bad_request");
    assert_eq!(
        error_kind(post(r#"{"id": 0, "peer_url": "http://127.0.0.1:1"}"#), 400),
        "bad_request"
    );
    assert_eq!(error_kind(post(r#"{"id": 9, "peer_url": "nowhere"}"#), 400), "bad_request");
    assert_eq!(error_kind(post(r#"{"id": 2, "peer_url": "http://127.0.0.1:1"}"#), 409), "conflict");
    let del = c.http.delete(m.url("/members/99")).send().unwrap();
    assert_eq!(error_kind(del, 404), "not_found");
    let promote = c.http.post(m.url("/members/abc/promote")).send().unwrap();
    assert_eq!(error_kind(promote, 400), "bad_request");
    let big_member =
        format!(r#"{{"id": 9, "peer_url": "http://127.0.0.1:1", "x": "{}"}}"#, "y".repeat(2048));
    assert_eq!(error_kind(post(&big_member), 413), "too_large");
    let wrong_method = c.http.post(m.url("/kv/a")).send().unwrap();
    assert_eq!(error_kind(wrong_method, 405), "method_not_allowed");
    // A client that announces a body and sends two bytes of it holds nothing
    // for long: 408 at twice the request timeout, and the connection closes.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", m.client_port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = "PUT /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab";
    std::io::Write::write_all(&mut slow, head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut slow, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // Still serving after all that, and after idling longer than the
    // request timeout (the storage threads' waits time out and must go on).
    std::thread::sleep(Duration::from_millis(2500));
    c.put_ok(0, "fine", "yes");

    // Two of three members down: no leader, and a bounded 503.
    c.kill(1);
    c.kill(2);
    wait_for(Duration::from_secs(20), "member 1 to lose its leader", || {
        (c.json(0, "/status")["leader"] == 0).then_some(())
    });
    // Bounded by --request-timeout (the client's own timeout is 15 s).
    assert_eq!(error_kind(c.put(0, "lost", "v"), 503), "no_leader");
    assert_eq!(error_kind(c.get(0, "/kv/fine"), 503), "no_leader");
    assert_eq!(c.get(0, "/health").status(), 503);
    assert_eq!(c.value(0, "fine", true).as_deref(), Some("yes"), "serializable reads still work");

    // Requests wait for a leader without asking raft, which would drop
    // (and log) a proposal or read every retry: ~50 lines per request here.
    c.kill(0);
    c.log_filter = "warn,keel=info".into();
    c.spawn(0, false);
    wait_for(Duration::from_secs(20), "member 1 to serve again", || c.try_status(0, "/status"));
    assert_eq!(error_kind(c.put(0, "lost", "v"), 503), "no_leader");
    assert_eq!(error_kind(c.get(0, "/kv/fine"), 503), "no_leader");
    let log = c.log(0);
    assert!(log.contains("became follower"), "raft's info lines are not in the log:\n{log}");
    let dropped = log.lines().filter(|l| l.contains("no leader at term")).count();
    assert_eq!(dropped, 0, "requests without a leader reached raft:\n{log}");
}

/// Raft refuses to remove the last voter when the change is applied; asked
/// for it, a member answers at once rather than after its request timeout.
#[test]
fn removing_the_last_voter_is_a_conflict() {
    let c = Cluster::start(1, &[]);
    let m = &c.members[0];
    wait_for(Duration::from_secs(20), "a leader", || {
        (c.json(0, "/status")["leader"] == 1).then_some(())
    });
    let del = c.http.delete(m.url("/members/1")).send().unwrap();
    assert_eq!(error_kind(del, 409), "conflict");
}
