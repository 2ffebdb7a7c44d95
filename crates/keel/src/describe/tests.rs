//! Expected strings are lines of etcd-raft's interaction test files
//! (`testdata/*.txt`, file and line named in each case; the two-space indent
//! that `stabilize` adds is removed), or, for branches those files never reach,
//! what etcd's `util.go` writes for the same value.

use bytes::Bytes;

use super::*;
use crate::raftpb::{
    AnyConfChange, ConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    SnapshotMetadata, conf_changes_from_string,
};
use crate::state::StateType;

fn ent(term: u64, index: u64, data: &'static str) -> Entry {
    Entry::new(term, index, Bytes::from_static(data.as_bytes()))
}

fn conf_entry(term: u64, index: u64, cc: AnyConfChange) -> Entry {
    let (entry_type, data) = cc.to_entry_data();
    Entry { term, index, entry_type: Some(entry_type as i32), data }
}

fn v1_entry(term: u64, index: u64, change_type: ConfChangeType, node_id: u64) -> Entry {
    let cc = ConfChange { change_type: change_type as i32, node_id, ..ConfChange::default() };
    conf_entry(term, index, cc.into())
}

fn v2_entry(term: u64, index: u64, ops: &str) -> Entry {
    let cc =
        ConfChangeV2 { changes: conf_changes_from_string(ops).unwrap(), ..ConfChangeV2::default() };
    conf_entry(term, index, cc.into())
}

fn raw_entry(term: u64, index: u64, entry_type: i32, data: &'static [u8]) -> Entry {
    Entry { term, index, entry_type: Some(entry_type), data: Bytes::from_static(data) }
}

fn msg(t: MessageType, from: u64, to: u64, term: u64, log_term: u64, index: u64) -> Message {
    Message { from, to, term, log_term, index, ..Message::new(t) }
}

fn snapshot(index: u64, term: u64, voters: &[u64], outgoing: &[u64], auto_leave: bool) -> Snapshot {
    Snapshot {
        data: Bytes::new(),
        metadata: SnapshotMetadata {
            conf_state: ConfState {
                voters: voters.to_vec(),
                voters_outgoing: outgoing.to_vec(),
                auto_leave,
                ..ConfState::default()
            },
            index,
            term,
        },
    }
}

#[test]
fn targets() {
    assert_eq!(describe_target(0), "None");
    assert_eq!(describe_target(1), "1");
    assert_eq!(describe_target(10), "a");
    assert_eq!(describe_target(0xdead_beef), "deadbeef");
    assert_eq!(describe_target(LOCAL_APPEND_THREAD), "AppendThread");
    assert_eq!(describe_target(LOCAL_APPLY_THREAD), "ApplyThread");
    assert_eq!(describe_target(u64::MAX - 2), "fffffffffffffffd");
}

#[test]
fn hard_state_leaves_out_a_zero_vote() {
    // confchange_v2_add_double_auto.txt:90 and :21 (after "HardState ").
    let hs = HardState { term: 1, vote: 0, commit: 0 };
    assert_eq!(describe_hard_state(&hs), "Term:1 Commit:0");
    let hs = HardState { term: 1, vote: 1, commit: 2 };
    assert_eq!(describe_hard_state(&hs), "Term:1 Vote:1 Commit:2");
}

#[test]
fn soft_state() {
    // confchange_v2_add_double_auto.txt:20 and :45.
    let ss = SoftState { lead: 0, raft_state: StateType::Candidate };
    assert_eq!(describe_soft_state(&ss), "Lead:0 State:StateCandidate");
    let ss = SoftState { lead: 1, raft_state: StateType::Leader };
    assert_eq!(describe_soft_state(&ss), "Lead:1 State:StateLeader");
    let ss = SoftState { lead: 3, raft_state: StateType::PreCandidate };
    assert_eq!(describe_soft_state(&ss), "Lead:3 State:StatePreCandidate");
}

#[test]
fn conf_state_and_snapshot() {
    // confchange_v2_add_double_auto.txt:114 (after "Snapshot ").
    let snap = snapshot(4, 1, &[1, 2, 3], &[1], true);
    assert_eq!(
        describe_snapshot(&snap),
        "Index:4 Term:1 ConfState:Voters:[1 2 3] VotersOutgoing:[1] Learners:[] \
         LearnersNext:[] AutoLeave:true"
    );
    let cs = ConfState {
        voters: vec![1],
        learners: vec![4, 5],
        voters_outgoing: vec![1, 2],
        learners_next: vec![2],
        auto_leave: false,
    };
    assert_eq!(
        describe_conf_state(&cs),
        "Voters:[1] VotersOutgoing:[1 2] Learners:[4 5] LearnersNext:[2] AutoLeave:false"
    );
}

#[test]
fn read_states_print_as_go_v() {
    assert_eq!(describe_read_states(&[]), "[]");
    let rs = [
        ReadState { index: 1, request_ctx: Bytes::from_static(b"req") },
        ReadState { index: 12, request_ctx: Bytes::new() },
    ];
    assert_eq!(describe_read_states(&rs), "[{1 [114 101 113]} {12 []}]");
}

#[test]
fn normal_entries() {
    // async_storage_writes.txt:110, probe_and_replicate.txt:499.
    assert_eq!(describe_entry(&ent(1, 11, ""), None), r#"1/11 EntryNormal """#);
    assert_eq!(describe_entry(&ent(6, 20, "prop_6_20"), None), r#"6/20 EntryNormal "prop_6_20""#);
    assert_eq!(describe_entry(&ent(2, 3, "a\"b\n\u{7f}"), None), r#"2/3 EntryNormal "a\"b\n\x7f""#);
    // A formatter replaces the quoting; an empty rendering drops the space.
    let upper = |d: &[u8]| String::from_utf8_lossy(d).to_uppercase();
    assert_eq!(describe_entry(&ent(1, 2, "foo"), Some(&upper)), "1/2 EntryNormal FOO");
    assert_eq!(describe_entry(&ent(1, 2, ""), Some(&upper)), "1/2 EntryNormal");
}

#[test]
fn conf_change_entries() {
    // confchange_v1_add_single.txt:47, confchange_v1_remove_leader.txt:52.
    let add = v1_entry(1, 4, ConfChangeType::ConfChangeAddNode, 2);
    assert_eq!(describe_entry(&add, None), "1/4 EntryConfChange v2");
    let remove = v1_entry(1, 4, ConfChangeType::ConfChangeRemoveNode, 1);
    assert_eq!(describe_entry(&remove, None), "1/4 EntryConfChange r1");
    let learner = v1_entry(3, 9, ConfChangeType::ConfChangeAddLearnerNode, 12);
    assert_eq!(describe_entry(&learner, None), "3/9 EntryConfChange l12");
    let update = v1_entry(3, 9, ConfChangeType::ConfChangeUpdateNode, 5);
    assert_eq!(describe_entry(&update, None), "3/9 EntryConfChange u5");
    // An empty V1 payload is the zero ConfChange: add node 0.
    assert_eq!(
        describe_entry(&raw_entry(1, 4, EntryType::EntryConfChange as i32, b""), None),
        "1/4 EntryConfChange v0"
    );

    // confchange_v2_add_double_auto.txt:48, campaign_learner_must_vote.txt:121.
    assert_eq!(describe_entry(&v2_entry(1, 4, "v2 v3"), None), "1/4 EntryConfChangeV2 v2 v3");
    assert_eq!(describe_entry(&v2_entry(1, 4, "v3"), None), "1/4 EntryConfChangeV2 v3");
    assert_eq!(
        describe_entry(&v2_entry(2, 7, "r1 l2 u3 v4"), None),
        "2/7 EntryConfChangeV2 r1 l2 u3 v4"
    );
    // Leaving a joint configuration: nothing after the type
    // (confchange_v2_add_double_auto.txt:70). The context is not shown.
    assert_eq!(describe_entry(&v2_entry(1, 5, ""), None), "1/5 EntryConfChangeV2");
    let explicit = ConfChangeV2 {
        transition: ConfChangeTransition::ConfChangeTransitionJointExplicit as i32,
        changes: Vec::new(),
        context: Bytes::from_static(b"ctx"),
    };
    assert_eq!(describe_entry(&conf_entry(1, 6, explicit.into()), None), "1/6 EntryConfChangeV2");
    // The formatter is not used for configuration changes.
    let never = |_: &[u8]| String::from("formatted");
    assert_eq!(describe_entry(&add, Some(&never)), "1/4 EntryConfChange v2");
}

#[test]
fn undecodable_and_unknown_entries() {
    assert_eq!(
        describe_entry(&raw_entry(1, 4, EntryType::EntryConfChange as i32, b"\x18"), None),
        "1/4 EntryConfChange unexpected EOF"
    );
    assert_eq!(
        describe_entry(&raw_entry(1, 4, EntryType::EntryConfChangeV2 as i32, b"\x00"), None),
        "1/4 EntryConfChangeV2 proto: ConfChangeV2: illegal tag 0 (wire type 0)"
    );
    assert_eq!(
        describe_entry(
            &raw_entry(1, 4, EntryType::EntryConfChangeV2 as i32, b"\x12\x01\x0c"),
            None
        ),
        "1/4 EntryConfChangeV2 proto: ConfChangeSingle: wiretype end group for non-group"
    );
    // An unknown change type (Go prints "unknown" and the id).
    assert_eq!(
        describe_entry(
            &raw_entry(1, 4, EntryType::EntryConfChange as i32, b"\x10\x09\x18\x02"),
            None
        ),
        "1/4 EntryConfChange unknown2"
    );
    // An entry type outside the enum: Go prints its number and no payload.
    assert_eq!(describe_entry(&raw_entry(1, 4, 7, b"data"), None), "1/4 7");
}

#[test]
fn entries_end_each_line() {
    assert_eq!(describe_entries(&[], None), "");
    assert_eq!(
        describe_entries(&[ent(1, 3, ""), v2_entry(1, 4, "v2 v3")], None),
        "1/3 EntryNormal \"\"\n1/4 EntryConfChangeV2 v2 v3\n"
    );
}

#[test]
fn plain_messages() {
    // campaign.txt-style vote request; async_storage_writes.txt:30.
    let m = msg(MessageType::MsgVote, 1, 2, 1, 1, 10);
    assert_eq!(describe_message(&m, None), "1->2 MsgVote Term:1 Log:1/10");

    // campaign_learner_must_vote.txt:112: a rejection with its hint.
    let mut m = msg(MessageType::MsgAppResp, 3, 2, 2, 1, 4);
    m.reject = true;
    m.reject_hint = 3;
    assert_eq!(describe_message(&m, None), "3->2 MsgAppResp Term:2 Log:1/4 Rejected (Hint: 3)");

    // confchange_v1_add_single.txt:69: a hint of 0 is still shown.
    let mut m = msg(MessageType::MsgAppResp, 2, 1, 1, 0, 3);
    m.reject = true;
    assert_eq!(describe_message(&m, None), "2->1 MsgAppResp Term:1 Log:0/3 Rejected (Hint: 0)");

    // async_storage_writes.txt:154.
    let mut m = msg(MessageType::MsgApp, 1, 2, 1, 1, 11);
    m.commit = 11;
    assert_eq!(describe_message(&m, None), "1->2 MsgApp Term:1 Log:1/11 Commit:11");

    // async_storage_writes.txt:156: commit and vote, no responses.
    let mut m = msg(MessageType::MsgStorageAppend, 1, LOCAL_APPEND_THREAD, 1, 0, 0);
    m.commit = 11;
    m.vote = 1;
    assert_eq!(
        describe_message(&m, None),
        "1->AppendThread MsgStorageAppend Term:1 Log:0/0 Commit:11 Vote:1"
    );

    // async_storage_writes.txt:128: from the append thread.
    let m = msg(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, 1, 1, 1, 11);
    assert_eq!(describe_message(&m, None), "AppendThread->1 MsgStorageAppendResp Term:1 Log:1/11");

    // Hex ids, None, an unknown type.
    let m = msg(MessageType::MsgHeartbeat, 0x1f, 0, 3, 0, 0);
    assert_eq!(describe_message(&m, None), "1f->None MsgHeartbeat Term:3 Log:0/0");
    let m = Message { msg_type: 99, from: 1, to: 2, ..Message::default() };
    assert_eq!(describe_message(&m, None), "1->2 99 Term:0 Log:0/0");
}

#[test]
fn messages_with_entries() {
    // confchange_v1_add_single.txt:58: one entry stays inline.
    let mut m = msg(MessageType::MsgApp, 1, 2, 1, 1, 3);
    m.commit = 4;
    m.entries = vec![v1_entry(1, 4, ConfChangeType::ConfChangeAddNode, 2)];
    assert_eq!(
        describe_message(&m, None),
        "1->2 MsgApp Term:1 Log:1/3 Commit:4 Entries:[1/4 EntryConfChange v2]"
    );

    // confchange_disable_validation.txt:74.
    let mut m = msg(MessageType::MsgApp, 1, 2, 1, 1, 5);
    m.commit = 5;
    m.entries = vec![v2_entry(1, 6, "")];
    assert_eq!(
        describe_message(&m, None),
        "1->2 MsgApp Term:1 Log:1/5 Commit:5 Entries:[1/6 EntryConfChangeV2]"
    );

    // probe_and_replicate.txt:498-501: several entries, one per line.
    let mut m = msg(MessageType::MsgApp, 1, 2, 8, 6, 19);
    m.commit = 18;
    m.entries = vec![ent(6, 20, "prop_6_20"), ent(8, 21, "")];
    assert_eq!(
        describe_message(&m, None),
        "1->2 MsgApp Term:8 Log:6/19 Commit:18 Entries:[\n  6/20 EntryNormal \"prop_6_20\"\n  \
         8/21 EntryNormal \"\"\n]"
    );

    // campaign_learner_must_vote.txt:120-123.
    let mut m = msg(MessageType::MsgApp, 2, 3, 2, 1, 3);
    m.commit = 4;
    m.entries = vec![v2_entry(1, 4, "v3"), ent(2, 5, "")];
    assert_eq!(
        describe_message(&m, None),
        "2->3 MsgApp Term:2 Log:1/3 Commit:4 Entries:[\n  1/4 EntryConfChangeV2 v3\n  \
         2/5 EntryNormal \"\"\n]"
    );
}

#[test]
fn messages_with_snapshots() {
    // confchange_v2_add_double_auto.txt:102-103.
    let mut m = msg(MessageType::MsgSnap, 1, 2, 1, 0, 0);
    m.snapshot = Some(Box::new(snapshot(4, 1, &[1, 2, 3], &[1], true)));
    assert_eq!(
        describe_message(&m, None),
        "1->2 MsgSnap Term:1 Log:0/0\n  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2 3] \
         VotersOutgoing:[1] Learners:[] LearnersNext:[] AutoLeave:true"
    );
    // An empty snapshot (index 0) is not shown.
    let mut m = msg(MessageType::MsgApp, 1, 2, 1, 1, 1);
    m.snapshot = Some(Box::default());
    assert_eq!(describe_message(&m, None), "1->2 MsgApp Term:1 Log:1/1");
}

#[test]
fn messages_with_responses() {
    // async_storage_writes.txt:32-34.
    let mut m = msg(MessageType::MsgStorageAppend, 1, LOCAL_APPEND_THREAD, 1, 0, 0);
    m.commit = 10;
    m.vote = 1;
    m.responses = vec![msg(MessageType::MsgVoteResp, 1, 1, 1, 0, 0)].into();
    assert_eq!(
        describe_message(&m, None),
        "1->AppendThread MsgStorageAppend Term:1 Log:0/0 Commit:10 Vote:1 Responses:[\n  \
         1->1 MsgVoteResp Term:1 Log:0/0\n]"
    );

    // async_storage_writes.txt:92-95.
    let mut m = msg(MessageType::MsgStorageAppend, 1, LOCAL_APPEND_THREAD, 0, 0, 0);
    m.entries = vec![ent(1, 11, "")];
    m.responses = vec![
        msg(MessageType::MsgAppResp, 1, 1, 1, 0, 11),
        msg(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, 1, 1, 1, 11),
    ]
    .into();
    assert_eq!(
        describe_message(&m, None),
        "1->AppendThread MsgStorageAppend Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] \
         Responses:[\n  1->1 MsgAppResp Term:1 Log:0/11\n  \
         AppendThread->1 MsgStorageAppendResp Term:1 Log:1/11\n]"
    );

    // async_storage_writes.txt:157-159.
    let mut m = msg(MessageType::MsgStorageApply, 1, LOCAL_APPLY_THREAD, 0, 0, 0);
    m.entries = vec![ent(1, 11, "")];
    let mut resp = msg(MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, 1, 0, 0, 0);
    resp.entries = vec![ent(1, 11, "")];
    m.responses = vec![resp].into();
    assert_eq!(
        describe_message(&m, None),
        "1->ApplyThread MsgStorageApply Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] \
         Responses:[\n  ApplyThread->1 MsgStorageApplyResp Term:0 Log:0/0 \
         Entries:[1/11 EntryNormal \"\"]\n]"
    );
}

#[test]
fn nested_responses_indent_every_level() {
    // Not in the test files: a response with several entries, a snapshot and a
    // response of its own. Each level adds two spaces to every line it owns.
    let mut inner = msg(MessageType::MsgSnap, 2, 3, 4, 0, 0);
    inner.snapshot = Some(Box::new(snapshot(9, 4, &[1, 2], &[], false)));
    let mut middle = msg(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, 2, 4, 4, 12);
    middle.entries = vec![ent(4, 11, "x"), ent(4, 12, "y")];
    middle.responses = vec![inner].into();
    let mut outer = msg(MessageType::MsgStorageAppend, 2, LOCAL_APPEND_THREAD, 4, 0, 0);
    outer.entries = vec![ent(4, 11, "x"), ent(4, 12, "y")];
    outer.snapshot = Some(Box::new(snapshot(9, 4, &[1, 2], &[], false)));
    outer.responses = vec![middle, msg(MessageType::MsgAppResp, 2, 1, 4, 0, 12)].into();
    let want = "\
2->AppendThread MsgStorageAppend Term:4 Log:0/0 Entries:[
  4/11 EntryNormal \"x\"
  4/12 EntryNormal \"y\"
]
  Snapshot: Index:9 Term:4 ConfState:<CS> Responses:[
  AppendThread->2 MsgStorageAppendResp Term:4 Log:4/12 Entries:[
    4/11 EntryNormal \"x\"
    4/12 EntryNormal \"y\"
  ] Responses:[
    2->3 MsgSnap Term:4 Log:0/0
      Snapshot: Index:9 Term:4 ConfState:<CS>
  ]
  2->1 MsgAppResp Term:4 Log:0/12
]";
    let conf_state = "Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false";
    assert_eq!(describe_message(&outer, None), want.replace("<CS>", conf_state));
}

#[test]
fn empty_ready() {
    assert_eq!(describe_ready(&Ready::default(), None), "<empty Ready>");
    // MustSync alone does not make a Ready non-empty.
    let rd = Ready { must_sync: true, ..Ready::default() };
    assert_eq!(describe_ready(&rd, None), "<empty Ready>");
}

#[test]
fn ready_from_the_test_files() {
    // confchange_v2_add_double_auto.txt:44-48.
    let rd = Ready {
        soft_state: Some(SoftState { lead: 1, raft_state: StateType::Leader }),
        entries: vec![ent(1, 3, ""), v2_entry(1, 4, "v2 v3")].into(),
        must_sync: true,
        ..Ready::default()
    };
    assert_eq!(
        describe_ready(&rd, None),
        "Ready MustSync=true:\nLead:1 State:StateLeader\nEntries:\n1/3 EntryNormal \"\"\n\
         1/4 EntryConfChangeV2 v2 v3\n"
    );

    // async_storage_writes.txt:172-184.
    let mut append = msg(MessageType::MsgStorageAppend, 2, LOCAL_APPEND_THREAD, 1, 0, 0);
    append.commit = 11;
    append.vote = 1;
    append.responses = vec![msg(MessageType::MsgAppResp, 2, 1, 1, 0, 11)].into();
    let mut apply = msg(MessageType::MsgStorageApply, 2, LOCAL_APPLY_THREAD, 0, 0, 0);
    apply.entries = vec![ent(1, 11, "")];
    let mut apply_resp = msg(MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, 2, 0, 0, 0);
    apply_resp.entries = vec![ent(1, 11, "")];
    apply.responses = vec![apply_resp].into();
    let rd = Ready {
        hard_state: Some(HardState { term: 1, vote: 1, commit: 11 }),
        committed_entries: vec![ent(1, 11, "")].into(),
        messages: vec![append, apply],
        must_sync: false,
        ..Ready::default()
    };
    let want = "\
Ready MustSync=false:
HardState Term:1 Vote:1 Commit:11
CommittedEntries:
1/11 EntryNormal \"\"
Messages:
2->AppendThread MsgStorageAppend Term:1 Log:0/0 Commit:11 Vote:1 Responses:[
  2->1 MsgAppResp Term:1 Log:0/11
]
2->ApplyThread MsgStorageApply Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] Responses:[
  ApplyThread->2 MsgStorageApplyResp Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"]
]
";
    assert_eq!(describe_ready(&rd, None), want);

    // confchange_v1_add_single.txt:88-91 style: a follower applying a snapshot.
    let rd = Ready {
        hard_state: Some(HardState { term: 1, vote: 0, commit: 4 }),
        snapshot: Some(snapshot(4, 1, &[1, 2], &[], false)),
        must_sync: true,
        ..Ready::default()
    };
    assert_eq!(
        describe_ready(&rd, None),
        "Ready MustSync=true:\nHardState Term:1 Commit:4\nSnapshot Index:4 Term:1 \
         ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false\n"
    );
}

#[test]
fn ready_with_every_field_in_order() {
    let mut app = msg(MessageType::MsgApp, 1, 2, 2, 2, 5);
    app.entries = vec![ent(2, 6, "a"), ent(2, 7, "b")];
    let rd = Ready {
        soft_state: Some(SoftState { lead: 1, raft_state: StateType::Leader }),
        hard_state: Some(HardState { term: 2, vote: 1, commit: 5 }),
        read_states: vec![ReadState { index: 5, request_ctx: Bytes::from_static(b"req") }],
        entries: vec![ent(2, 6, "a"), ent(2, 7, "b")].into(),
        snapshot: Some(snapshot(3, 1, &[1], &[], false)),
        committed_entries: vec![ent(2, 5, "")].into(),
        messages: vec![app, msg(MessageType::MsgHeartbeat, 1, 3, 2, 0, 0)],
        must_sync: true,
    };
    let upper = |d: &[u8]| String::from_utf8_lossy(d).to_uppercase();
    let want = "\
Ready MustSync=true:
Lead:1 State:StateLeader
HardState Term:2 Vote:1 Commit:5
ReadStates [{5 [114 101 113]}]
Entries:
2/6 EntryNormal A
2/7 EntryNormal B
Snapshot Index:3 Term:1 ConfState:<CS>
CommittedEntries:
2/5 EntryNormal
Messages:
1->2 MsgApp Term:2 Log:2/5 Entries:[
  2/6 EntryNormal A
  2/7 EntryNormal B
]
1->3 MsgHeartbeat Term:2 Log:0/0
";
    let conf_state = "Voters:[1] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false";
    assert_eq!(describe_ready(&rd, Some(&upper)), want.replace("<CS>", conf_state));
}

#[test]
fn type_names() {
    assert_eq!(message_type_name(MessageType::MsgHup as i32), "MsgHup");
    assert_eq!(message_type_name(MessageType::MsgForgetLeader as i32), "MsgForgetLeader");
    assert_eq!(message_type_name(MessageType::MsgStorageApplyResp as i32), "MsgStorageApplyResp");
    assert_eq!(message_type_name(24), "24");
    assert_eq!(message_type_name(-1), "-1");
    assert_eq!(entry_type_name(EntryType::EntryNormal as i32), "EntryNormal");
    assert_eq!(entry_type_name(EntryType::EntryConfChangeV2 as i32), "EntryConfChangeV2");
    assert_eq!(entry_type_name(3), "3");
}
