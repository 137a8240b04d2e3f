//! Scale proof for the usage store (issue 4): writes 1,000,000 realistic
//! usage records through `write_batch` (batches of 1,000, 60 days, 20 models,
//! 50 user paths, 5 providers), then times the roll-up queries behind
//! `/admin/usage/summary` and `/admin/usage/daily` over 30 days and reports
//! the disk bytes per record.
//!
//! `cargo bench --bench store` (release). Optional args: record count, data
//! dir (`-` or absent: a temp dir, removed afterwards), records per write. Targets: each query
//! ≤ 200 ms, ≤ 300 bytes per record.

// The store modules are compiled into this bench as they are in the binary
// (the package has no library target); parts the bench does not call are
// dead code here.
// `clippy --all-targets` also builds benches with `cfg(test)` but without the
// test harness, so the modules' test imports are unused here.
#![allow(dead_code, unused_imports)]

#[path = "../src/record.rs"]
mod record;
#[path = "../src/store/mod.rs"]
mod store;
// The generator is part of `store` under `cfg(test)` only.
#[cfg(test)]
use store::synth;
#[cfg(not(test))]
#[path = "../src/store/synth.rs"]
mod synth;

use std::time::{Duration, Instant};
use store::query::{day_of, DAY_MS};
use store::{GroupBy, LogFilter, RollupQuery, Store};

const T0: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl Fn() -> T) -> (Duration, Duration, T) {
    let t = Instant::now();
    let first = f();
    let cold = t.elapsed();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(f());
        runs.push(t.elapsed());
    }
    (cold, median(runs), first)
}

fn queries(s: &store::sled::SledStore, label: &str) -> bool {
    let to_day = day_of(T0 + 60 * DAY_MS - 1);
    let from_day = to_day - 29;
    let blocks = s.blocks_read();
    let mut ok = true;
    let mut run = |name: &str, group_by: GroupBy, per_day: bool| {
        let q = RollupQuery {
            from_day,
            to_day,
            group_by,
            per_day,
        };
        let (cold, med, rows) = time(|| s.usage_rollup(&q).expect("query"));
        let requests: u64 = rows.iter().map(|r| r.counters.requests).sum();
        println!(
            "  [{label}] {name:<34} first {:>7.1} ms, median {:>7.1} ms ({} rows, {} requests)",
            cold.as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3,
            rows.len(),
            requests
        );
        ok &= cold <= Duration::from_millis(200) && med <= Duration::from_millis(200);
    };
    run("summary (group by model, 30 d)", GroupBy::Model, false);
    run("daily total (30 d)", GroupBy::Total, true);
    run("daily by model", GroupBy::Model, true);
    run("daily by provider", GroupBy::Provider, true);
    run("daily by user_path (ancestors)", GroupBy::UserPath, true);
    run("daily by tag", GroupBy::Tag, true);
    run("daily by key", GroupBy::Key, true);
    run("user-paths (30 d)", GroupBy::UserPath, false);
    assert_eq!(s.blocks_read(), blocks, "roll-up queries read raw records");
    let (cold, med, page) = time(|| s.usage_log(&LogFilter::default(), None, 100).expect("log"));
    println!(
        "  [{label}] {:<34} first {:>7.1} ms, median {:>7.1} ms",
        "usage log, first page of 100",
        cold.as_secs_f64() * 1e3,
        med.as_secs_f64() * 1e3
    );
    let f = LogFilter {
        model: Some(synth::model_name(3)),
        to_ms: Some(T0 + 20 * DAY_MS),
        ..Default::default()
    };
    let (cold, med, _) = time(|| s.usage_log(&f, page.next.as_ref(), 100).expect("log"));
    println!(
        "  [{label}] {:<34} first {:>7.1} ms, median {:>7.1} ms",
        "usage log, filtered deep page",
        cold.as_secs_f64() * 1e3,
        med.as_secs_f64() * 1e3
    );
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    // Third argument: records per write (default 1,000); small values mimic
    // a quiet gateway's one-second flushes.
    let per_write: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .get(1)
        .filter(|d| *d != "-")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let s = store::sled::SledStore::open(&dir).expect("open");
    let span = 60 * DAY_MS;
    let step = span / n;
    let mut rng = synth::Rng::new(7);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(synth::record(i, T0 + i * step + rng.below(step.max(1))));
        if batch.len() == per_write || i + 1 == n {
            s.write_batch(&batch, &[]).expect("write");
            batch.clear();
        }
    }
    s.flush().expect("flush");
    let took = t.elapsed();
    let bytes = s.disk_bytes().expect("size");
    let per = bytes as f64 / n as f64;
    println!(
        "wrote {n} records ({per_write} per write) in {:.1} s ({:.0} records/s); disk {:.1} MiB = {per:.1} bytes/record",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    let warm = queries(&s, "warm");
    drop(s);
    // Reopened: the page cache of the OS is warm but the store's is empty.
    let s = store::sled::SledStore::open(&dir).expect("reopen");
    let cold = queries(&s, "reopened");
    let ok = warm && cold && per <= 300.0;
    println!(
        "{}: queries ≤ 200 ms: {}, bytes/record ≤ 300: {}",
        if ok { "PASS" } else { "FAIL" },
        warm && cold,
        per <= 300.0
    );
    if !ok {
        std::process::exit(1);
    }
}
