use super::*;
use crate::store::query::{StatusFilter, DAY_MS};
use crate::store::sled::tests::{audit, open, pages, reopen, T0};
use crate::store::Store;

/// A gateway-style id: process prefix `p`, counter `n`.
fn gid(p: u64, n: u64) -> String {
    format!("{:016x}{:08x}", 0x5eed_0000_0000_0000u64 | p, n)
}

fn all_pages(s: &SledStore, f: &LogFilter, limit: usize) -> Vec<AuditEntry> {
    pages(limit, |c, n| s.audit_log(f, c, n).expect("log"))
}

/// What a listing returns: newest first, bodies left out.
fn listed(v: &[AuditEntry]) -> Vec<AuditEntry> {
    let mut v: Vec<AuditEntry> = v
        .iter()
        .map(|a| AuditEntry {
            request_body: None,
            response_body: None,
            ..a.clone()
        })
        .collect();
    v.sort_by(|a, b| (b.ts_ms, &b.request_id).cmp(&(a.ts_ms, &a.request_id)));
    v
}

fn count(s: &SledStore, prefix: u8) -> u64 {
    s.prefix_sizes().expect("sizes").get(&prefix).map_or(0, |x| x.0)
}

#[test]
fn pages_cross_blocks_with_equal_timestamps_exactly_once() {
    let (_d, s) = open();
    // One batch of 1,300 entries at three timestamps: three full blocks
    // whose timestamps are all equal, then small batches overlapping them.
    let mut all: Vec<AuditEntry> = (0..1300).map(|n| audit(&gid(1, n), T0 + (n % 3) * 10, 200)).collect();
    s.write_batch(&[], &all).expect("write");
    let more: Vec<AuditEntry> = (0..200).map(|n| audit(&gid(2, n), T0 + (n % 5) * 5, 200)).collect();
    for c in more.chunks(7) {
        s.write_batch(&[], c).expect("write");
    }
    all.extend(more);
    assert!(count(&s, b'A') >= 3 + 200 / 7, "{} blocks", count(&s, b'A'));
    let want = listed(&all);
    for limit in [7, 100, 512, 5000] {
        assert_eq!(all_pages(&s, &LogFilter::default(), limit), want, "limit {limit}");
    }
}

#[test]
fn pages_are_stable_while_new_entries_arrive() {
    let (_d, s) = open();
    let old: Vec<AuditEntry> = (0..600).map(|n| audit(&gid(1, n), T0 + n / 4, 200)).collect();
    s.write_batch(&[], &old).expect("write");
    let first = s.audit_log(&LogFilter::default(), None, 50).expect("page");
    assert_eq!(first.items, listed(&old)[..50]);
    // Newer entries, some at or before the cursor's time.
    let newer: Vec<AuditEntry> = (0..100).map(|n| audit(&gid(2, n), T0 + 140 - n % 30, 200)).collect();
    s.write_batch(&[], &newer).expect("write");
    let c = first.next.clone().expect("more");
    let mut got = Vec::new();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let p = s.audit_log(&LogFilter::default(), Some(&c), 64).expect("page");
        got.extend(p.items);
        cursor = p.next;
    }
    // The rest: everything now stored that is strictly older than the cursor.
    let mut now = old;
    now.extend(newer);
    let want: Vec<AuditEntry> = listed(&now)
        .into_iter()
        .filter(|a| (a.ts_ms, &a.request_id) < (c.ts_ms, &c.request_id))
        .collect();
    assert!(want.len() > 600 - 50, "some new entries are older than the cursor");
    assert_eq!(got, want);
}

#[test]
fn filters_match_brute_force() {
    let (_d, s) = open();
    let routes = ["openai/gpt-4o", "groq/llama-3", "anthropic/claude", ""];
    let all: Vec<AuditEntry> = (0..1500u64)
        .map(|n| {
            let mut a = audit(
                &gid(1, n),
                T0 + n * 997 % (3 * 3_600_000),
                [200, 429, 500, 200][(n % 4) as usize],
            );
            a.route = routes[(n % 7 % 4) as usize].into();
            a.user_path = format!("/acme/team-{}/u{}", n % 3, n % 11);
            a
        })
        .collect();
    for c in all.chunks(400) {
        s.write_batch(&[], c).expect("write");
    }
    let filters = [
        LogFilter {
            status: Some(StatusFilter::Class(5)),
            ..Default::default()
        },
        LogFilter {
            status: Some(StatusFilter::Exact(429)),
            from_ms: Some(T0 + 3_600_000),
            ..Default::default()
        },
        LogFilter {
            provider: Some("groq".into()),
            ..Default::default()
        },
        LogFilter {
            model: Some("openai/gpt-4o".into()),
            user_path: Some("/acme/team-1".into()),
            ..Default::default()
        },
        LogFilter {
            from_ms: Some(T0 + 1_000_000),
            to_ms: Some(T0 + 2_000_000),
            ..Default::default()
        },
        LogFilter {
            to_ms: Some(T0 - 1),
            ..Default::default()
        },
    ];
    for f in &filters {
        let want: Vec<AuditEntry> = listed(&all)
            .into_iter()
            .filter(|a| f.matches_audit(a.ts_ms, &a.route, &a.user_path, a.status))
            .collect();
        assert_eq!(all_pages(&s, f, 37), want, "{f:?}");
    }
}

#[test]
fn get_finds_ids_across_blocks_and_groups() {
    let (_d, s) = open();
    // Two processes, counters crossing a group boundary (0x1000), written
    // in batches whose blocks mix groups; every third entry has bodies.
    let mut all = Vec::new();
    for p in [1, 2] {
        for n in 0xf00..0x1100u64 {
            let mut a = audit(&gid(p, n), T0 + (n * 7919) % 100_000, 200);
            if n % 3 != 0 {
                a.request_body = None;
                a.response_body = None;
            }
            all.push(a);
        }
    }
    for c in all.chunks(300) {
        s.write_batch(&[], c).expect("write");
    }
    for a in &all {
        assert_eq!(s.audit_get(&a.request_id).expect("get").as_ref(), Some(a));
    }
    // Groups: 2 processes × 2; index keys: one per group per block.
    assert!(count(&s, b'I') <= 2 * count(&s, b'A'), "{} index keys", count(&s, b'I'));
    assert_eq!(
        count(&s, b'b'),
        all.iter().filter(|a| a.request_body.is_some()).count() as u64
    );
    for unknown in [gid(1, 0xeff), gid(1, 0x1100), gid(3, 0x1000), String::new(), "x".into()] {
        assert_eq!(s.audit_get(&unknown).expect("get"), None, "{unknown}");
    }
}

#[test]
fn get_reads_only_the_block_listing_the_id() {
    let (_d, s) = open();
    // One group spread over 64 blocks, as slow requests finishing late do.
    let all: Vec<AuditEntry> = (0..64).map(|n| audit(&gid(1, n * 61), T0 + n, 200)).collect();
    for a in &all {
        s.write_batch(&[], std::slice::from_ref(a)).expect("write");
    }
    assert_eq!(count(&s, b'I'), 64);
    for a in &all {
        let before = s.blocks_read();
        assert_eq!(s.audit_get(&a.request_id).expect("get").as_ref(), Some(a));
        assert_eq!(s.blocks_read() - before, 1);
    }
    let before = s.blocks_read();
    assert_eq!(s.audit_get(&gid(1, 1)).expect("get"), None);
    assert_eq!(s.blocks_read(), before, "an id no key lists reads no block");
}

#[test]
fn odd_ids_work_everywhere() {
    let (_d, s) = open();
    let ids = [
        "req-007",
        "x",
        "",
        "abc",
        "abcd",
        "ABCDEF0123456789ABC",
        "550e8400-e29b-41d4-a716-446655440000",
        "550e8400-e29b-41d4-a716-446655440001",
        "идентификатор-0123456789abc",
        "0123456789abcdef0123",
        "0123456789abcdef012",
        // A whole-id group that is also the group of a longer id.
        "0123456789abcdefxyz",
        "0123456789abcdefxyzabc",
    ];
    let all: Vec<AuditEntry> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| audit(id, T0 + (i as u64 % 4) * 1_000, 200))
        .collect();
    s.write_batch(&[], &all[..5]).expect("write");
    s.write_batch(&[], &all[5..]).expect("write");
    for a in &all {
        assert_eq!(
            s.audit_get(&a.request_id).expect("get").as_ref(),
            Some(a),
            "{}",
            a.request_id
        );
    }
    assert_eq!(s.audit_get("ab").expect("get"), None);
    assert_eq!(s.audit_get("req-00").expect("get"), None);
    assert_eq!(all_pages(&s, &LogFilter::default(), 3), listed(&all));
    assert_eq!(
        split_id("0123456789abcdef00000abc"),
        ("0123456789abcdef00000", Some(0xabc))
    );
    assert_eq!(
        split_id("550e8400-e29b-41d4-a716-446655440010"),
        ("550e8400-e29b-41d4-a716-446655440", Some(0x010))
    );
    assert_eq!(
        split_id("идентификатор-0123456789abc"),
        ("идентификатор-0123456789", Some(0xabc))
    );
    for whole in ["req-007", "abc", "", "ABCDEF0123456789ABC", "0123456789abcdeg"] {
        assert_eq!(split_id(whole), (whole, None));
    }
}

#[test]
fn retention_removes_blocks_index_and_bodies() {
    let (_d, s) = open();
    let cutoff = T0 + 5 * DAY_MS;
    // Eight days, a few entries an hour, one batch a day; and one batch
    // (one block, 50 minutes wide) straddling the cutoff.
    let mut all = Vec::new();
    for day in 0..8u64 {
        let batch: Vec<AuditEntry> = (0..48)
            .map(|i| audit(&gid(day, i), T0 + day * DAY_MS + i * 1_800_000 + 7, 200))
            .collect();
        s.write_batch(&[], &batch).expect("write");
        all.extend(batch);
    }
    let straddle: Vec<AuditEntry> = (0..50)
        .map(|i| audit(&gid(9, i), cutoff - 25 * 60_000 + i * 60_000, 200))
        .collect();
    s.write_batch(&[], &straddle).expect("write");
    all.extend(straddle);
    let (kept, gone): (Vec<AuditEntry>, Vec<AuditEntry>) = all.iter().cloned().partition(|a| a.ts_ms >= cutoff);
    let (_, deleted) = s.enforce_retention(cutoff + 3 * DAY_MS, 0, 3).expect("retention");
    assert_eq!(deleted, gone.len() as u64);
    assert_eq!(all_pages(&s, &LogFilter::default(), 100), listed(&kept));
    for a in &gone {
        assert_eq!(s.audit_get(&a.request_id).expect("get"), None);
    }
    for a in &kept {
        assert_eq!(s.audit_get(&a.request_id).expect("get").as_ref(), Some(a));
    }
    assert_eq!(count(&s, b'b'), kept.len() as u64, "bodies of deleted entries are gone");
    // Every index key left names a block and lists exactly the ids it still holds.
    for kv in s.db.scan_prefix([INDEX]) {
        let (k, v) = kv.expect("kv");
        let block = &k[k.len() - BLOCK_ID_LEN..];
        let stored = s.db.get(prefixed(b'A', block)).expect("get").expect("indexed block");
        let b = s.resolve(&s.audit, &stored).expect("read").expect("segment");
        let (h, views) = decode_audit_block(&b).expect("block");
        assert!(h.min_ts >= cutoff);
        let ids: Vec<String> = views.iter().map(|a| a.request_id.to_string_lossless()).collect();
        let want = index_entries(block, ids.iter().map(String::as_str));
        assert_eq!(want.get(k.as_ref()).map(Vec::as_slice), Some(v.as_ref()));
    }
    assert_eq!(s.enforce_retention(cutoff + 3 * DAY_MS, 0, 3).expect("again"), (0, 0));
    // Everything, at last.
    let (_, deleted) = s.enforce_retention(cutoff + 30 * DAY_MS, 0, 3).expect("all");
    assert_eq!(deleted, kept.len() as u64);
    for p in [b'A', b'I', b'b'] {
        assert_eq!(count(&s, p), 0, "{}", p as char);
    }
}

#[test]
fn reopen_keeps_entries_index_bodies_and_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One block 50 minutes wide: after reopen, a window ending near its
    // oldest entry still finds it (the block's span was persisted).
    let all: Vec<AuditEntry> = (0..600).map(|n| audit(&gid(1, n), T0 + n * 5_000, 200)).collect();
    {
        let s = SledStore::open(dir.path()).expect("open");
        s.write_batch(&[], &all).expect("write");
        s.flush().expect("flush");
    }
    let s = reopen(dir.path());
    assert_eq!(all_pages(&s, &LogFilter::default(), 250), listed(&all));
    let early = LogFilter {
        to_ms: Some(T0 + 60_000),
        ..Default::default()
    };
    assert_eq!(all_pages(&s, &early, 5).len(), 13);
    for a in all.iter().step_by(37) {
        assert_eq!(s.audit_get(&a.request_id).expect("get").as_ref(), Some(a));
    }
    let later = audit(&gid(2, 0), T0 + 1, 500);
    s.write_batch(&[], std::slice::from_ref(&later)).expect("write");
    assert_eq!(s.audit_get(&later.request_id).expect("get"), Some(later));
    assert_eq!(all_pages(&s, &LogFilter::default(), 1000).len(), all.len() + 1);
}
