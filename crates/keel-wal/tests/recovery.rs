//! Recovery on the power-loss file system: synced data survives, torn tails
//! are truncated, corruption elsewhere is a typed error.

use keel::Storage as _;
use keel::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use keel_wal::{DiskOptions, DiskStorage, MemFs, PersistRequest, WalError};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

fn opts() -> DiskOptions {
    let mut o = DiskOptions::new(1, 7);
    o.wal.segment_size = 4096;
    o.cache_bytes = 256;
    o
}

fn ent(index: u64, term: u64) -> Entry {
    Entry { index, term, data: vec![index as u8; 40].into(), ..Default::default() }
}

fn open(fs: &Arc<MemFs>) -> Result<DiskStorage, WalError> {
    DiskStorage::open(fs.clone(), Path::new("/d"), opts())
}

/// Why opening fails (empty if it does not).
fn open_error(fs: &Arc<MemFs>) -> String {
    open(fs).err().map(|e| e.to_string()).unwrap_or_default()
}

fn log(s: &DiskStorage) -> Vec<(u64, u64)> {
    let (lo, hi) = (s.first_index().unwrap_or(1), s.last_index().unwrap_or(0));
    if lo > hi {
        return vec![];
    }
    s.entries_vec(lo, hi + 1, u64::MAX)
        .map(|v| v.iter().map(|e| (e.index, e.term)).collect())
        .unwrap_or_default()
}

#[test]
fn reopen_restores_everything_and_cuts_and_releases_segments() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    for i in 1..=200 {
        let hs = HardState { term: 1, vote: 1, commit: i - 1 };
        s.persist(PersistRequest { hard_state: Some(hs), entries: &[ent(i, 1)], snapshot: None })?;
    }
    assert!(s.segment_count() > 2);
    let cs = ConfState { voters: vec![1, 2, 3], ..Default::default() };
    s.create_snapshot(150, cs.clone(), "state".into())?;
    s.compact(150)?;
    let segments = s.segment_count();
    drop(s);
    fs.power_loss(1, true);
    let s = open(&fs)?;
    assert!(s.segment_count() <= segments);
    assert_eq!(s.first_index().ok(), Some(151));
    assert_eq!(s.last_index().ok(), Some(200));
    let (hs, conf) = s.initial_state().map_err(|e| WalError::Invalid(e.to_string()))?;
    assert_eq!(hs, HardState { term: 1, vote: 1, commit: 199 });
    assert_eq!(conf, cs);
    assert_eq!(s.snapshot().map(|s| s.data).ok(), Some("state".into()));
    // Entries beyond the cache are read back from disk.
    let got = s.entries_vec(151, 201, u64::MAX).map_err(|e| WalError::Invalid(e.to_string()))?;
    assert_eq!(got, (151..=200).map(|i| ent(i, 1)).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn overwrite_conflicting_suffix_survives_reopen() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    s.persist(PersistRequest {
        entries: &[ent(1, 1), ent(2, 1), ent(3, 1)],
        ..Default::default()
    })?;
    s.persist(PersistRequest { entries: &[ent(2, 2)], ..Default::default() })?;
    drop(s);
    fs.power_loss(2, true);
    assert_eq!(log(&open(&fs)?), vec![(1, 1), (2, 2)]);
    Ok(())
}

#[test]
fn another_nodes_directory_is_refused() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    drop(open(&fs)?);
    let mut other = opts();
    other.wal.node_id = 2;
    let err = DiskStorage::open(fs.clone(), Path::new("/d"), other).err();
    assert!(matches!(err, Some(WalError::Identity { found_node: 1, node: 2, .. })), "{err:?}");
    Ok(())
}

fn first_segment(fs: &MemFs) -> std::path::PathBuf {
    use keel_wal::FileSystem as _;
    let names = fs.list(Path::new("/d/wal")).unwrap_or_default();
    Path::new("/d/wal").join(names.first().cloned().unwrap_or_default())
}

/// A file system holding a WAL of entries 1..=`n`, persisted one by one.
fn filled(n: u64) -> Result<Arc<MemFs>, WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    for i in 1..=n {
        s.persist(PersistRequest { entries: &[ent(i, 1)], ..Default::default() })?;
    }
    Ok(fs)
}

#[test]
fn a_flipped_bit_mid_segment_names_file_and_offset() -> Result<(), WalError> {
    let fs = filled(5)?;
    let seg = first_segment(&fs);
    // Record 2 (the first entry) starts after the header and the hard state.
    fs.corrupt(&seg, 48 + 12 + 40, &[0xff]).map_err(|e| WalError::Invalid(e.to_string()))?;
    match open(&fs) {
        Err(WalError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert!(offset >= 48);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_huge_length_field_is_corruption_not_an_allocation() -> Result<(), WalError> {
    let fs = filled(5)?;
    let seg = first_segment(&fs);
    fs.corrupt(&seg, 48 + 4, &(1u64 << 40).to_le_bytes()[..4])
        .map_err(|e| WalError::Invalid(e.to_string()))?;
    fs.corrupt(&seg, 48 + 4, &[0, 0, 0, 0x80]).map_err(|e| WalError::Invalid(e.to_string()))?;
    assert!(matches!(open(&fs), Err(WalError::Corrupt { .. })));
    Ok(())
}

#[test]
fn garbage_wrong_magic_and_empty_segments_are_typed_errors() -> Result<(), WalError> {
    for bytes in
        [&b""[..], b"not a wal at all, just garbage bytes that go on for a while.....", b"KEELWAL2"]
    {
        let fs = filled(5)?;
        let seg = first_segment(&fs);
        use keel_wal::FileSystem as _;
        fs.set_len(&seg, 0).map_err(|e| WalError::Invalid(e.to_string()))?;
        fs.corrupt(&seg, 0, bytes).map_err(|e| WalError::Invalid(e.to_string()))?;
        fs.power_loss(0, false);
        assert!(matches!(open(&fs), Err(WalError::Corrupt { offset: 0, .. })), "{bytes:?}");
    }
    Ok(())
}

#[test]
fn truncated_snapshot_is_refused_when_the_wal_needs_it() -> Result<(), WalError> {
    use keel_wal::FileSystem as _;
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    s.persist(PersistRequest { entries: &[ent(1, 1), ent(2, 1)], ..Default::default() })?;
    s.create_snapshot(2, ConfState::default(), "x".into())?;
    drop(s);
    let snap =
        Path::new("/d/snap").join(fs.list(Path::new("/d/snap")).unwrap_or_default().remove(0));
    let len = fs.len(&snap).unwrap_or(0);
    fs.set_len(&snap, len - 1).map_err(|e| WalError::Invalid(e.to_string()))?;
    assert!(matches!(open(&fs), Err(WalError::MissingSnapshot { index: 2, term: 1 })));
    // The bad file is kept for inspection under another name, never loaded again.
    let names = fs.list(Path::new("/d/snap")).unwrap_or_default();
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(".snap.broken"), "{names:?}");
    Ok(())
}

#[test]
fn a_missing_first_segment_is_refused() -> Result<(), WalError> {
    use keel_wal::FileSystem as _;
    let fs = filled(200)?;
    assert!(fs.list(Path::new("/d/wal")).map_err(invalid)?.len() > 2);
    let first = first_segment(&fs);
    fs.remove(&first).map_err(invalid)?;
    fs.sync_dir(Path::new("/d/wal")).map_err(invalid)?;
    // Without it, the log would start at the second segment's first entry
    // and every index would be read at the wrong place.
    let err = open_error(&fs);
    assert!(err.contains("a segment is missing"), "{err}");
    Ok(())
}

/// A snapshot file whose WAL marker never became durable (a crash between
/// the two) neither costs the durable snapshot's file nor outlives the next
/// snapshot, even when only one file is kept.
#[test]
fn only_durable_snapshots_count_towards_the_files_kept() -> Result<(), WalError> {
    use keel_wal::FileSystem as _;
    let fs = Arc::new(MemFs::new());
    let mut o = opts();
    o.snapshots_kept = 1;
    let open1 = || DiskStorage::open(fs.clone(), Path::new("/d"), o.clone());
    let s = open1()?;
    s.persist(PersistRequest {
        entries: &(1..=9).map(|i| ent(i, 1)).collect::<Vec<_>>(),
        ..Default::default()
    })?;
    s.create_snapshot(3, cs(), "s3".into())?;
    drop(s);
    // What saving snapshot 9 does before its marker is written; then power fails.
    let store = keel_wal::snap::SnapStore::open(fs.clone(), Path::new("/d/snap"), 1)?;
    let metadata = SnapshotMetadata { conf_state: cs(), index: 9, term: 1 };
    store.save(&Snapshot { data: "s9".into(), metadata })?;
    fs.power_loss(0, false);
    let s = open1()?;
    assert_eq!(s.snapshot().map(|s| s.data).ok(), Some("s3".into()));
    s.create_snapshot(5, cs(), "s5".into())?;
    let names = fs.list(Path::new("/d/snap")).map_err(invalid)?;
    assert_eq!(names, ["0000000000000001-0000000000000005.snap"]);
    drop(s);
    fs.power_loss(0, false);
    assert_eq!(open1()?.snapshot().map(|s| s.data).ok(), Some("s5".into()));
    Ok(())
}

/// After a failed sync the storage takes no more writes (a later sync could
/// acknowledge entries written after lost ones); reopened, it goes on.
#[test]
fn a_failed_sync_stops_all_later_writes() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    s.persist(PersistRequest { entries: &[ent(1, 1)], ..Default::default() })?;
    fs.set_fail_syncs(true);
    assert!(s.persist(PersistRequest { entries: &[ent(2, 1)], ..Default::default() }).is_err());
    fs.set_fail_syncs(false);
    let again = s.persist(PersistRequest { entries: &[ent(2, 1)], ..Default::default() });
    assert!(matches!(again, Err(WalError::Failed)), "{again:?}");
    assert!(matches!(s.compact(0), Err(WalError::Failed)));
    assert!(matches!(s.create_snapshot(1, cs(), "s".into()), Err(WalError::Failed)));
    drop(s);
    fs.power_loss(0, true);
    let s = open(&fs)?;
    s.persist(PersistRequest { entries: &[ent(2, 2)], ..Default::default() })?;
    assert_eq!(log(&s), [(1, 1), (2, 2)]);
    Ok(())
}

/// Snapshot files without a WAL: the WAL was lost (a directory entry never
/// synced, an operator's mistake), and starting empty would forget votes.
#[test]
fn snapshot_files_without_a_wal_are_refused() -> Result<(), WalError> {
    use keel_wal::FileSystem as _;
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    s.persist(PersistRequest { entries: &[ent(1, 1), ent(2, 1)], ..Default::default() })?;
    s.create_snapshot(2, cs(), "s".into())?;
    drop(s);
    for name in fs.list(Path::new("/d/wal")).map_err(invalid)? {
        fs.remove(&Path::new("/d/wal").join(name)).map_err(invalid)?;
    }
    let err = open_error(&fs);
    assert!(err.contains("no WAL segment, but snapshot files"), "{err}");
    Ok(())
}

#[test]
fn a_record_over_the_limit_is_refused_before_it_is_written() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    s.persist(PersistRequest { entries: &[ent(1, 1)], ..Default::default() })?;
    let big = Entry {
        index: 2,
        term: 1,
        data: vec![7u8; keel_wal::record::MAX_RECORD as usize].into(),
        ..Default::default()
    };
    let res = s.persist(PersistRequest { entries: &[big], ..Default::default() });
    assert!(matches!(res, Err(WalError::Invalid(_))), "{res:?}");
    assert_eq!(s.last_index().ok(), Some(1));
    drop(s);
    assert_eq!(log(&open(&fs)?), [(1, 1)]);
    Ok(())
}

/// Indexes read from a checksummed but hostile segment are checked before
/// any arithmetic on them.
#[test]
fn indexes_at_the_end_of_the_range_are_corruption_not_a_panic() -> Result<(), WalError> {
    use keel_wal::record::{self, RecordType, SegmentHeader};
    use prost::Message as _;
    for (marker, entry) in [(u64::MAX, 5), (3, u64::MAX)] {
        let fs = Arc::new(MemFs::new());
        let header = SegmentHeader { node_id: 1, cluster_id: 7, seq: 0, first_index: 1 };
        let mut buf = header.encode().to_vec();
        let m = SnapshotMetadata { conf_state: cs(), index: marker, term: 1 };
        record::encode(&mut buf, RecordType::Snapshot, &m.encode_to_vec());
        record::encode(&mut buf, RecordType::Entry, &ent(entry, 1).encode_to_vec());
        let path = Path::new("/d/wal/0000000000000000-0000000000000001.wal");
        fs.corrupt(path, 0, &buf).map_err(invalid)?;
        assert!(matches!(open(&fs), Err(WalError::Corrupt { .. })), "{marker} {entry}");
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    /// Append entries from `at` (clamped to the log) with `n` entries.
    Append { back: u64, n: u64, hs: bool },
    /// A persist whose sync fails, then power loss.
    FailedAppend { n: u64, seed: u64 },
    /// Power loss with nothing pending.
    Crash { seed: u64 },
    /// The application snapshots the entry `back` before the last.
    Snapshot { back: u64 },
    /// The log is compacted to `back` before the snapshot.
    Compact { back: u64 },
    /// A snapshot from the leader, `ahead` past the log, replaces it.
    Install { ahead: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u64, 1..20u64, any::<bool>())
            .prop_map(|(back, n, hs)| Op::Append { back, n, hs }),
        1 => (1..20u64, any::<u64>()).prop_map(|(n, seed)| Op::FailedAppend { n, seed }),
        1 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => (0..30u64).prop_map(|back| Op::Snapshot { back }),
        1 => (0..10u64).prop_map(|back| Op::Compact { back }),
        1 => (1..5u64).prop_map(|ahead| Op::Install { ahead }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// After any crash, every synced entry is there with its term, nothing
    /// from a failed batch beyond its prefix, the snapshot and compaction
    /// hold, and the hard state never goes back; segments are cut (4 KiB)
    /// between, before and after snapshots and compactions.
    #[test]
    fn synced_data_survives_power_loss(ops in proptest::collection::vec(op(), 1..40)) {
        let fs = Arc::new(MemFs::new());
        let mut s = open(&fs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The log from `base + 1` on, and the snapshot (index, term).
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut base = 0;
        let mut snap = (0, 0);
        let mut term = 1;
        let mut hs = HardState::default();
        let fail = |e: WalError| TestCaseError::fail(e.to_string());
        for op in ops {
            let last = base + model.len() as u64;
            match op {
                Op::Append { back, n, hs: with_hs } => {
                    term += 1;
                    // Never below the snapshot, which covers committed entries.
                    let from = (last + 1).saturating_sub(back).max(snap.0 + 1);
                    let ents: Vec<Entry> = (from..from + n).map(|i| ent(i, term)).collect();
                    let new_hs = HardState { term, vote: 1, commit: hs.commit };
                    let req = PersistRequest {
                        hard_state: with_hs.then_some(new_hs),
                        entries: &ents,
                        snapshot: None,
                    };
                    s.persist(req).map_err(fail)?;
                    model.truncate((from - base - 1) as usize);
                    model.extend(ents.iter().map(|e| (e.index, e.term)));
                    if with_hs { hs = new_hs; }
                }
                Op::Snapshot { back } => {
                    let index = last.saturating_sub(back);
                    if index > snap.0 && index > base {
                        s.create_snapshot(index, cs(), "local".into()).map_err(fail)?;
                        snap = (index, model[(index - base - 1) as usize].1);
                    }
                }
                Op::Compact { back } => {
                    let to = snap.0.saturating_sub(back);
                    if to > base {
                        s.compact(to).map_err(fail)?;
                        model.drain(..(to - base) as usize);
                        base = to;
                    }
                }
                Op::Install { ahead } => {
                    term += 1;
                    let metadata = SnapshotMetadata { conf_state: cs(), index: last + ahead, term };
                    let received = Snapshot { data: "received".into(), metadata };
                    hs = HardState { term, vote: 0, commit: last + ahead };
                    let req = PersistRequest {
                        hard_state: Some(hs),
                        entries: &[],
                        snapshot: Some(&received),
                    };
                    s.persist(req).map_err(fail)?;
                    model.clear();
                    base = last + ahead;
                    snap = (base, term);
                }
                Op::FailedAppend { n, seed } => {
                    term += 1;
                    let from = last + 1;
                    let ents: Vec<Entry> = (from..from + n).map(|i| ent(i, term)).collect();
                    fs.set_fail_syncs(true);
                    let res = s.persist(PersistRequest { entries: &ents, ..Default::default() });
                    fs.set_fail_syncs(false);
                    prop_assert!(res.is_err());
                    drop(s);
                    fs.power_loss(seed, true);
                    s = open(&fs).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    reopened(&mut model, &mut base, &mut hs, snap);
                    let got = log(&s);
                    prop_assert!(got.len() >= model.len());
                    prop_assert_eq!(&got[..model.len()], &model[..]);
                    prop_assert!(got[model.len()..].iter().all(|(_, t)| *t == term));
                    model = got;
                }
                Op::Crash { seed } => {
                    drop(s);
                    fs.power_loss(seed, true);
                    s = open(&fs).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    reopened(&mut model, &mut base, &mut hs, snap);
                    prop_assert_eq!(log(&s), model.clone());
                }
            }
            prop_assert_eq!(s.first_index().ok(), Some(base + 1));
            let got = s.snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!((got.metadata.index, got.metadata.term), snap);
            prop_assert_eq!(s.hard_state(), hs);
        }
    }
}

/// A reopened log starts after its snapshot, and its commit index is at
/// least the snapshot's.
fn reopened(model: &mut Vec<(u64, u64)>, base: &mut u64, hs: &mut HardState, snap: (u64, u64)) {
    hs.commit = hs.commit.max(snap.0);
    if snap.0 > *base {
        model.drain(..(snap.0 - *base) as usize);
        *base = snap.0;
    }
}

fn cs() -> ConfState {
    ConfState { voters: vec![1], ..ConfState::default() }
}

fn invalid(e: impl std::fmt::Display) -> WalError {
    WalError::Invalid(e.to_string())
}

/// A node with asynchronous storage writes persists through the typed view
/// of its `MsgStorageAppend`s; what it acknowledged survives a reopen.
#[test]
fn a_raw_node_persists_its_storage_appends() -> Result<(), WalError> {
    use keel::{Config, Peer, Proposed, RawNode, StorageAppend, StorageApply, StorageResponses};
    let fs = Arc::new(MemFs::new());
    let config = Config { async_storage_writes: true, ..Config::new(1) };
    let mut rn = RawNode::new(&config, open(&fs)?).map_err(invalid)?;
    rn.bootstrap(&[Peer { id: 1, ..Peer::default() }]).map_err(invalid)?;
    let mut proposed = None;
    for round in 0..20 {
        if round == 2 {
            rn.campaign().map_err(invalid)?;
        }
        if round == 10 {
            proposed = Some(rn.propose("x".into()).map_err(invalid)?);
        }
        let rd = rn.ready();
        for mut m in rd.messages {
            if let Some(append) = StorageAppend::new(&m) {
                rn.storage().persist(PersistRequest::from_storage_append(append))?;
            } else {
                assert!(StorageApply::new(&m).is_some(), "one voter sends nothing");
            }
            for r in StorageResponses::take(&mut m).local {
                rn.step_local(r).map_err(invalid)?;
            }
        }
    }
    let Some(Proposed::Appended(id)) = proposed else { panic!("not appended: {proposed:?}") };
    assert!(rn.storage().hard_state().commit >= id.index, "committed before the power loss");
    drop(rn);
    fs.power_loss(1, true);
    let s = open(&fs)?;
    assert_eq!(s.last_index().ok(), Some(id.index));
    let got = s.entries_vec(id.index, id.index + 1, u64::MAX).map_err(invalid)?;
    assert_eq!((got[0].term, got[0].data.clone()), (id.term, "x".into()));
    // The term and vote survive; the commit index need not (it was written
    // without a sync, and the leader hands it out again).
    let (hs, _) = s.initial_state().map_err(invalid)?;
    assert_eq!((hs.term, hs.vote), (id.term, 1));
    Ok(())
}

/// etcd's `MustSync`: entries, a snapshot, a new term or a new vote are
/// synced; a hard state that only moves the commit index is written
/// without a sync, and becomes durable with the next one.
#[test]
fn only_a_commit_index_is_written_without_a_sync() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    let hs = |term, vote, commit| HardState { term, vote, commit };
    let persist = |hard_state: Option<HardState>, entries: &[Entry]| {
        let before = fs.sync_count();
        s.persist(PersistRequest { hard_state, entries, snapshot: None })?;
        Ok::<_, WalError>(fs.sync_count() - before)
    };
    let entry = |index| Entry { index, term: 1, data: "v".into(), ..Entry::default() };
    assert_eq!(persist(Some(hs(1, 0, 0)), &[])?, 1, "a new term is synced");
    assert_eq!(persist(Some(hs(1, 2, 0)), &[])?, 1, "a vote is synced");
    assert_eq!(persist(None, &[entry(1), entry(2)])?, 1, "entries are synced");
    assert_eq!(persist(Some(hs(1, 2, 2)), &[])?, 0, "a commit index alone is not");
    assert_eq!(s.hard_state(), hs(1, 2, 2));
    assert_eq!(persist(Some(hs(1, 2, 2)), &[entry(3)])?, 1);
    drop(s);
    // Every write so far was covered by the last sync.
    fs.power_loss(7, true);
    let s = open(&fs)?;
    assert_eq!(s.hard_state(), hs(1, 2, 2));
    assert_eq!(s.last_index().map_err(invalid)?, 3);
    Ok(())
}

/// An apply thread may snapshot an entry before the append thread writes the
/// commit index that covers it; reopened, the commit index is at least the
/// snapshot's, which raft requires of a restart.
#[test]
fn the_commit_index_reopens_at_least_at_the_snapshot() -> Result<(), WalError> {
    let fs = Arc::new(MemFs::new());
    let s = open(&fs)?;
    let entries: Vec<Entry> =
        (1..=3).map(|index| Entry { index, term: 1, ..Entry::default() }).collect();
    let hard_state = Some(HardState { term: 1, vote: 1, commit: 1 });
    s.persist(PersistRequest { hard_state, entries: &entries, snapshot: None })?;
    s.create_snapshot(3, ConfState { voters: vec![1], ..ConfState::default() }, "s".into())?;
    drop(s);
    fs.power_loss(3, true);
    let s = open(&fs)?;
    let (hs, _) = s.initial_state().map_err(invalid)?;
    assert_eq!((hs.term, hs.vote, hs.commit), (1, 1, 3));
    Ok(())
}
