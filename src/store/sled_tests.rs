use super::*;
use crate::record::CostSource;
use crate::store::query::{path_ancestors, path_under, StatusFilter};
use crate::store::synth;
use std::collections::{BTreeMap, HashSet};

pub(super) const T0: u64 = 1_700_006_400_000; // 2023-11-15T00:00:00Z, a day boundary

pub(super) fn open() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SledStore::open(dir.path()).expect("open");
    (dir, s)
}

/// Opens the store in `dir` again after the last handle was dropped.
pub(super) fn reopen(dir: &Path) -> SledStore {
    // sled releases its file lock when its background flusher thread has
    // exited, which may lag the drop by a few milliseconds (the gateway's
    // StoreOpener waits the same way); wait for it, bounded.
    let mut reopened = SledStore::open(dir);
    for _ in 0..500 {
        if reopened.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        reopened = SledStore::open(dir);
    }
    reopened.expect("reopen")
}

/// Every page of a log, `limit` items a page, following the cursors.
pub(super) fn pages<T>(limit: usize, mut page: impl FnMut(Option<&Cursor>, usize) -> Page<T>) -> Vec<T> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = page(cursor.as_ref(), limit);
        assert!(p.items.len() <= limit);
        out.extend(p.items);
        match p.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn all_pages(s: &SledStore, f: &LogFilter, limit: usize) -> Vec<UsageRecord> {
    pages(limit, |c, n| s.usage_log(f, c, n).expect("log"))
}

fn newest_first(mut v: Vec<UsageRecord>) -> Vec<UsageRecord> {
    v.sort_by(|a, b| (b.ts_ms, &b.request_id).cmp(&(a.ts_ms, &a.request_id)));
    v
}

fn write(s: &SledStore, recs: &[UsageRecord], per_batch: usize) {
    for c in recs.chunks(per_batch) {
        s.write_batch(c, &[]).expect("write");
    }
}

#[test]
fn opens_and_is_healthy() {
    let (_d, s) = open();
    assert!(s.health().is_ok());
    assert!(s.flush().is_ok());
    assert!(s.disk_bytes().expect("size") > 0);
}

#[test]
fn log_returns_every_record_newest_first_across_pages() {
    let (_d, s) = open();
    let recs = synth::records(3_000, T0, 3 * DAY_MS);
    write(&s, &recs, 700);
    let got = all_pages(&s, &LogFilter::default(), 97);
    assert_eq!(got, newest_first(recs));
}

#[test]
fn overlapping_and_tiny_batches_keep_exact_order() {
    let (_d, s) = open();
    // Interleaved timestamps across batches, duplicates of ts, one-record
    // batches (low traffic).
    let mut recs = Vec::new();
    for i in 0..400u64 {
        recs.push(synth::record(i, T0 + (i % 50) * 1_000 + (i % 3)));
    }
    write(&s, &recs[..100], 1);
    write(&s, &recs[100..], 37);
    let got = all_pages(&s, &LogFilter::default(), 13);
    assert_eq!(got, newest_first(recs));
}

#[test]
fn pages_are_stable_while_new_records_arrive() {
    let (_d, s) = open();
    let recs = synth::records(500, T0, DAY_MS);
    write(&s, &recs, 100);
    let first = s.usage_log(&LogFilter::default(), None, 100).expect("page 1");
    let newer = synth::records(50, T0 + 2 * DAY_MS, 1000)
        .into_iter()
        .map(|mut r| {
            r.request_id = format!("new{}", r.request_id);
            r
        })
        .collect::<Vec<_>>();
    s.write_batch(&newer, &[]).expect("write newer");
    let rest = {
        let mut out = first.items.clone();
        let mut c = first.next.clone();
        while let Some(cur) = c {
            let p = s.usage_log(&LogFilter::default(), Some(&cur), 100).expect("page");
            out.extend(p.items);
            c = p.next;
        }
        out
    };
    assert_eq!(rest, newest_first(recs));
}

#[test]
fn filters_match_brute_force() {
    let (_d, s) = open();
    let recs = synth::records(2_000, T0, 2 * DAY_MS);
    write(&s, &recs, 500);
    let m = recs[7].model.clone();
    let filters = [
        LogFilter {
            model: Some(m.clone()),
            ..Default::default()
        },
        LogFilter {
            model: Some(format!("{}/{}", recs[7].provider, m)),
            ..Default::default()
        },
        LogFilter {
            provider: Some("groq".into()),
            status: Some(StatusFilter::Class(2)),
            ..Default::default()
        },
        LogFilter {
            user_path: Some("/acme/team-03".into()),
            ..Default::default()
        },
        LogFilter {
            status: Some(StatusFilter::Exact(429)),
            from_ms: Some(T0 + DAY_MS / 2),
            to_ms: Some(T0 + DAY_MS),
            ..Default::default()
        },
        LogFilter {
            from_ms: Some(T0 + 3 * DAY_MS),
            ..Default::default()
        },
    ];
    for f in &filters {
        let want: Vec<UsageRecord> = newest_first(
            recs.iter()
                .filter(|r| {
                    f.matches_usage(
                        r.ts_ms,
                        &r.provider,
                        &r.model,
                        &r.upstream_model,
                        &r.user_path,
                        r.status,
                    )
                })
                .cloned()
                .collect(),
        );
        assert_eq!(all_pages(&s, f, 50), want, "{f:?}");
    }
    // Sanity: the prefix filter is segment-wise and non-trivial.
    assert!(recs.iter().any(|r| path_under(&r.user_path, "/acme/team-03")));
}

/// Brute-force roll-up of `recs` for comparison.
fn expected(recs: &[UsageRecord], g: GroupBy, per_day: bool) -> BTreeMap<(Option<u32>, GroupKey), Counters> {
    let mut m: BTreeMap<(Option<u32>, GroupKey), Counters> = BTreeMap::new();
    for r in recs {
        let day = per_day.then(|| day_of(r.ts_ms));
        let keys: Vec<GroupKey> = match g {
            GroupBy::Total => vec![GroupKey::Total],
            GroupBy::Provider => vec![GroupKey::Provider(r.provider.clone())],
            GroupBy::Model => vec![GroupKey::Model {
                provider: r.provider.clone(),
                model: r.upstream_model.clone(),
            }],
            GroupBy::Key => vec![GroupKey::Key(r.key_id.clone())],
            GroupBy::UserPath => path_ancestors(&r.user_path)
                .map(|p| GroupKey::UserPath(p.to_string()))
                .collect(),
            GroupBy::Tag => r
                .tags
                .iter()
                .map(|(k, v)| GroupKey::Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        };
        for k in keys {
            m.entry((day, k)).or_default().add_record(r);
        }
    }
    m
}

fn close(a: &Counters, b: &Counters) -> bool {
    let mut x = *a;
    x.cost_usd = b.cost_usd;
    x == *b && (a.cost_usd - b.cost_usd).abs() < 1e-9 * (1.0 + b.cost_usd.abs())
}

#[test]
fn rollups_match_brute_force_for_every_grouping() {
    let (_d, s) = open();
    let mut recs = synth::records(5_000, T0, 5 * DAY_MS);
    recs[0].key_id = "key-1".into();
    recs[1].user_path = String::new();
    write(&s, &recs, 333);
    let before = s.blocks_read();
    for g in [
        GroupBy::Total,
        GroupBy::Provider,
        GroupBy::Model,
        GroupBy::Key,
        GroupBy::UserPath,
        GroupBy::Tag,
    ] {
        for per_day in [false, true] {
            let q = RollupQuery {
                from_day: day_of(T0),
                to_day: day_of(T0) + 10,
                group_by: g,
                per_day,
            };
            let rows = s.usage_rollup(&q).expect("rollup");
            let want = expected(&recs, g, per_day);
            assert_eq!(rows.len(), want.len(), "{g:?} {per_day}");
            for row in rows {
                let w = want.get(&(row.day, row.key.clone())).expect("group exists");
                assert!(
                    close(&row.counters, w),
                    "{g:?} {:?}: {:?} vs {w:?}",
                    row.key,
                    row.counters
                );
            }
        }
    }
    assert_eq!(s.blocks_read(), before, "roll-up queries must not read records");
    // Ancestors sum their subtree.
    let rows = s
        .usage_rollup(&RollupQuery {
            from_day: 0,
            to_day: u32::MAX,
            group_by: GroupBy::UserPath,
            per_day: false,
        })
        .expect("paths");
    let acme = rows
        .iter()
        .find(|r| r.key == GroupKey::UserPath("/acme".into()))
        .expect("/acme");
    assert_eq!(
        acme.counters.requests,
        recs.iter().filter(|r| !r.user_path.is_empty()).count() as u64
    );
    // A day range excludes other days.
    let one = s
        .usage_rollup(&RollupQuery {
            from_day: day_of(T0) + 1,
            to_day: day_of(T0) + 1,
            group_by: GroupBy::Total,
            per_day: false,
        })
        .expect("one day");
    let n = recs.iter().filter(|r| day_of(r.ts_ms) == day_of(T0) + 1).count() as u64;
    assert_eq!(one[0].counters.requests, n);
}

#[test]
fn unknown_prices_are_counted_not_zeroed() {
    let (_d, s) = open();
    let mut a = synth::record(1, T0);
    a.cost_usd = None;
    a.cost_source = CostSource::Unknown;
    let mut b = synth::record(2, T0 + 1);
    b.cost_usd = Some(0.5);
    b.cost_source = CostSource::Builtin;
    s.write_batch(&[a.clone(), b], &[]).expect("write");
    let rows = s
        .usage_rollup(&RollupQuery {
            from_day: day_of(T0),
            to_day: day_of(T0),
            group_by: GroupBy::Total,
            per_day: false,
        })
        .expect("rollup");
    assert_eq!(rows[0].counters.cost_unknown, 1);
    assert_eq!(rows[0].counters.cost_usd, 0.5);
    let log = s.usage_log(&LogFilter::default(), None, 10).expect("log");
    let back = log.items.iter().find(|r| r.request_id == a.request_id).expect("a");
    assert_eq!(back.cost_usd, None);
    assert_eq!(back.cost_source, CostSource::Unknown);
}

pub(super) fn audit(id: &str, ts: u64, status: u16) -> AuditEntry {
    AuditEntry {
        request_id: id.into(),
        ts_ms: ts,
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        client: "10.0.0.1:4444".into(),
        route: "openai/gpt-4o".into(),
        status,
        upstream_status: Some(status),
        duration_ms: 12,
        ttft_ms: Some(3),
        error: None,
        user_path: "/acme/x".into(),
        key_id: String::new(),
        request_headers: vec![("authorization".into(), "[REDACTED]".into())],
        request_body: Some("{\"model\":\"gpt-4o\"}".into()),
        response_body: Some("{}".into()),
        bodies_truncated: false,
        attempts: Vec::new(),
    }
}

#[test]
fn audit_by_id_listing_and_pagination() {
    let (_d, s) = open();
    let entries: Vec<AuditEntry> = (0..25)
        .map(|i| {
            audit(
                &format!("req-{i:03}"),
                T0 + (i / 2) * 10,
                if i % 5 == 0 { 500 } else { 200 },
            )
        })
        .collect();
    s.write_batch(&[], &entries).expect("write");
    let got = s.audit_get("req-007").expect("get").expect("exists");
    assert_eq!(got, entries[7]);
    assert_eq!(s.audit_get("nope").expect("get"), None);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.audit_log(&LogFilter::default(), cursor.as_ref(), 4).expect("list");
        for a in &p.items {
            assert_eq!(a.request_body, None, "listings omit bodies");
            seen.push(a.request_id.clone());
        }
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut want: Vec<&AuditEntry> = entries.iter().collect();
    want.sort_by(|a, b| (b.ts_ms, &b.request_id).cmp(&(a.ts_ms, &a.request_id)));
    assert_eq!(seen, want.iter().map(|a| a.request_id.clone()).collect::<Vec<_>>());
    let errors = s
        .audit_log(
            &LogFilter {
                status: Some(StatusFilter::Class(5)),
                ..Default::default()
            },
            None,
            100,
        )
        .expect("errors");
    assert_eq!(errors.items.len(), 5);
    let windowed = s
        .audit_log(
            &LogFilter {
                from_ms: Some(T0 + 20),
                to_ms: Some(T0 + 40),
                ..Default::default()
            },
            None,
            100,
        )
        .expect("window");
    assert_eq!(windowed.items.len(), 6);
}

#[test]
fn retention_deletes_old_records_rollups_and_audit() {
    let (_d, s) = open();
    // 10 days of records, one batch straddling the cutoff.
    let recs = synth::records(2_000, T0, 10 * DAY_MS);
    write(&s, &recs, 2_000);
    let entries: Vec<AuditEntry> = (0..10).map(|i| audit(&format!("a{i}"), T0 + i * DAY_MS, 200)).collect();
    s.write_batch(&[], &entries).expect("audit");
    let now = T0 + 12 * DAY_MS - DAY_MS / 3;
    let (u, a) = s.enforce_retention(now, 5, 3).expect("retention");
    let cutoff = now - 5 * DAY_MS;
    let kept: Vec<UsageRecord> = recs.iter().filter(|r| r.ts_ms >= cutoff).cloned().collect();
    assert_eq!(u, (recs.len() - kept.len()) as u64);
    assert_eq!(all_pages(&s, &LogFilter::default(), 500), newest_first(kept));
    let audit_cutoff = now - 3 * DAY_MS;
    let audit_kept = entries.iter().filter(|e| e.ts_ms >= audit_cutoff).count();
    assert_eq!(a, (entries.len() - audit_kept) as u64);
    assert_eq!(s.audit_get("a0").expect("get"), None);
    assert!(s.audit_get("a9").expect("get").is_some());
    // One block, one index key, one bodies key per entry kept (a day apart).
    let sizes = s.prefix_sizes().expect("sizes");
    for p in [b'A', b'I', b'b'] {
        assert_eq!(sizes.get(&p).map_or(0, |x| x.0), audit_kept as u64, "{}", p as char);
    }
    // Roll-up days before the cutoff's day are gone; later days stay.
    let rows = s
        .usage_rollup(&RollupQuery {
            from_day: 0,
            to_day: u32::MAX,
            group_by: GroupBy::Total,
            per_day: true,
        })
        .expect("rows");
    let days: HashSet<u32> = rows.iter().filter_map(|r| r.day).collect();
    assert!(days.iter().all(|d| *d >= day_of(cutoff)));
    assert!(days.contains(&day_of(cutoff)));
    for p in [GroupBy::UserPath, GroupBy::Tag] {
        let rows = s
            .usage_rollup(&RollupQuery {
                from_day: 0,
                to_day: day_of(cutoff) - 1,
                group_by: p,
                per_day: true,
            })
            .expect("rows");
        assert!(rows.is_empty(), "{p:?}");
    }
    // Running it again deletes nothing more.
    assert_eq!(s.enforce_retention(now, 5, 3).expect("again"), (0, 0));
}

#[test]
fn reopen_keeps_dictionary_and_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recs = synth::records(300, T0, DAY_MS);
    {
        let s = SledStore::open(dir.path()).expect("open");
        write(&s, &recs, 100);
        s.flush().expect("flush");
    }
    let s = reopen(dir.path());
    assert_eq!(all_pages(&s, &LogFilter::default(), 1000), newest_first(recs.clone()));
    // New strings after reopen get fresh ids and old ones still resolve.
    let mut r = synth::record(10_000, T0 + 5);
    r.model = "brand-new-model".into();
    r.upstream_model = r.model.clone();
    s.write_batch(&[r], &[]).expect("write");
    assert_eq!(all_pages(&s, &LogFilter::default(), 1000).len(), recs.len() + 1);
}

#[test]
fn overrides_crud() {
    let (_d, s) = open();
    assert!(s.overrides_list().expect("list").is_empty());
    let mut o = ModelOverride {
        target: Some("groq/llama".into()),
        ..Default::default()
    };
    o.defaults.insert("temperature".into(), serde_json::json!(0.2));
    s.override_put("fast", &o).expect("put");
    s.override_put(
        "off",
        &ModelOverride {
            disabled: true,
            ..Default::default()
        },
    )
    .expect("put");
    let l = s.overrides_list().expect("list");
    assert_eq!(l.len(), 2);
    assert_eq!(l[0], ("fast".to_string(), o));
    assert!(s.override_delete("fast").expect("del"));
    assert!(!s.override_delete("fast").expect("del again"));
    assert_eq!(s.overrides_list().expect("list").len(), 1);
}

/// The size bound on a small but realistic history: 20,000 records over 60
/// days in batches of 1,000, roll-ups and everything included.
#[test]
fn disk_bytes_per_record_within_bound() {
    let (_d, s) = open();
    let n = 20_000u64;
    let recs = synth::records(n, T0, 60 * DAY_MS);
    write(&s, &recs, 1_000);
    s.flush().expect("flush");
    let per = s.disk_bytes().expect("size") as f64 / n as f64;
    assert!(per <= 300.0, "{per:.1} bytes per record");
    let before = s.blocks_read();
    let q = RollupQuery {
        from_day: day_of(T0 + 30 * DAY_MS),
        to_day: day_of(T0 + 60 * DAY_MS),
        group_by: GroupBy::Model,
        per_day: true,
    };
    assert!(!s.usage_rollup(&q).expect("rollup").is_empty());
    assert_eq!(s.blocks_read(), before);
}

#[test]
#[ignore]
fn size_breakdown() {
    for (n, days) in [(20_000u64, 60u64), (20_000, 1)] {
        let (_d, s) = open();
        let e = s.disk_bytes().expect("size");
        let recs = synth::records(n, T0, days * DAY_MS);
        // As the gateway writes them: each request's audit entry with its record.
        for c in recs.chunks(1_000) {
            let audit: Vec<AuditEntry> = c.iter().map(|r| synth::audit_for(r, false)).collect();
            s.write_batch(c, &audit).expect("write");
        }
        s.flush().expect("flush");
        let by: Vec<(char, (u64, u64))> = s
            .prefix_sizes()
            .expect("sizes")
            .into_iter()
            .map(|(k, v)| (k as char, v))
            .collect();
        println!(
            "n={n} days={days} empty={e} total={} per={:.1} {:?}",
            s.disk_bytes().expect("size"),
            s.disk_bytes().expect("size") as f64 / n as f64,
            by
        );
    }
}
