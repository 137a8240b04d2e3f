//! Segment files as the store uses them: values leave the tree, retention
//! deletes whole files, a crash leaves nothing a reader trips over, damage
//! is reported, and stores written before segments stay readable.

use super::super::tests::{audit, open, reopen, T0};
use super::super::SledStore;
use super::{Loc, REF};
use crate::record::UsageRecord;
use crate::store::encode::encode_block;
use crate::store::query::DAY_MS;
use crate::store::{synth, LogFilter, Store, StoreError};

fn log(s: &SledStore) -> Vec<UsageRecord> {
    s.usage_log(&LogFilter::default(), None, 100_000).expect("log").items
}

#[test]
fn the_tree_holds_references_and_the_bytes_are_in_files() {
    let (_d, s) = open();
    let recs = synth::records(2_000, T0, DAY_MS);
    s.write_batch(&recs, &[audit("a1", T0, 200)]).expect("write");
    for kv in s.db.scan_prefix(b"u").chain(s.db.scan_prefix(b"A")) {
        let (_, v) = kv.expect("kv");
        assert_eq!(v.first(), Some(&REF));
        assert!(v.len() < 64, "a reference, not a block: {} bytes", v.len());
    }
    assert_eq!(log(&s).len(), recs.len());
    assert!(s.audit_get("a1").expect("get").is_some());
    assert!(
        s.usage.files.disk_bytes() > 2_000 * 20,
        "the records' bytes are in the files"
    );
}

#[test]
fn retention_deletes_files_whose_items_all_expired() {
    let (dir, s) = open();
    s.usage.files.set_max_bytes(1); // a new file for every block
    for day in 0..8 {
        // Half an hour of records: one block a day.
        let recs = synth::records(50, T0 + day * DAY_MS, DAY_MS / 48);
        s.write_batch(&recs, &[]).expect("write");
    }
    assert_eq!(s.usage.files.files_on_disk().len(), 8);
    let now = T0 + 10 * DAY_MS;
    let (deleted, _) = s.enforce_retention(now, 5, 0).expect("retention");
    assert_eq!(deleted, 250, "days 0 to 4");
    let cutoff = now - 5 * DAY_MS;
    let left = s.usage.files.files_on_disk();
    assert_eq!(left, vec![6, 7, 8], "the files of days 5, 6 and 7");
    let kept = log(&s);
    assert_eq!(kept.len(), 150);
    assert!(kept.iter().all(|r| r.ts_ms >= cutoff));
    drop(s);
    let s = reopen(dir.path());
    assert_eq!(log(&s).len(), 150, "what retention kept survives a restart");
    assert_eq!(s.usage.files.files_on_disk(), left);
}

#[test]
fn a_file_no_committed_batch_refers_to_is_deleted_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recs = synth::records(100, T0, DAY_MS);
    {
        let s = SledStore::open(dir.path()).expect("open");
        s.write_batch(&recs, &[]).expect("write");
        // As if a process appended and died before its batch committed.
        let orphan = s.usage.files.file_path(0xff);
        std::fs::write(&orphan, b"half a block").expect("orphan");
    }
    let s = reopen(dir.path());
    assert_eq!(s.usage.files.files_on_disk(), vec![1], "the orphan is gone");
    assert_eq!(log(&s).len(), recs.len());
    // Appends go to a file after every id seen, never into an old one.
    s.write_batch(&synth::records(10, T0 + DAY_MS, 1_000), &[])
        .expect("write");
    assert_eq!(s.usage.files.files_on_disk(), vec![1, 0x100]);
    assert_eq!(log(&s).len(), recs.len() + 10);
}

#[test]
fn a_damaged_file_is_reported_corrupt() {
    let (_d, s) = open();
    s.write_batch(&synth::records(100, T0, DAY_MS), &[]).expect("write");
    let path = s.usage.files.file_path(1);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).expect("damage");
    match s.usage_log(&LogFilter::default(), None, 1000) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("checksum"), "{m}"),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn inline_blocks_from_older_versions_are_still_read() {
    let (_d, s) = open();
    let old = synth::records(30, T0, 60_000);
    // An inline block, as versions before segments wrote it.
    let refs: Vec<&UsageRecord> = old.iter().collect();
    let dict = s.dict();
    let mut pend = super::super::Pending::new(&dict);
    let block = encode_block(&refs, &mut pend);
    let new_strings = std::mem::take(&mut pend.new);
    drop(pend);
    drop(dict);
    let mut batch = sled::Batch::default();
    for (i, st) in new_strings.iter().enumerate() {
        batch.insert(super::super::prefixed(b'd', &(i as u32).to_be_bytes()), st.as_bytes());
    }
    let max_ts = old.iter().map(|r| r.ts_ms).max().unwrap_or(T0);
    batch.insert(s.usage.key(max_ts, 1), block);
    s.apply(batch).expect("inline");
    s.commit_dict(new_strings);
    assert_eq!(
        Loc::parse(&s.db.get(s.usage.key(max_ts, 1)).expect("get").expect("v")).expect("p"),
        None
    );
    let new = synth::records(20, T0 + DAY_MS, 60_000);
    s.write_batch(&new, &[]).expect("write");
    assert_eq!(log(&s).len(), 50);
    // Retention handles both kinds.
    let (deleted, _) = s
        .enforce_retention(T0 + DAY_MS + 2 * DAY_MS - 1, 2, 0)
        .expect("retention");
    assert_eq!(deleted, 30);
    assert_eq!(log(&s).len(), 20);
}
