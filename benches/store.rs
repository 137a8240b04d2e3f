//! Scale proof for the usage store (issue 4): writes 1,000,000 realistic
//! usage records through `write_batch` (batches of 1,000, 60 days, 20 models,
//! 50 user paths, 5 providers), then times the roll-up queries behind
//! `/admin/usage/summary` and `/admin/usage/daily` over 30 days and reports
//! the disk bytes per record.
//!
//! `cargo bench --bench store` (release). Optional args: record count, data
//! dir (`-` or absent: a temp dir, removed afterwards), records per write. Targets: each query
//! ≤ 200 ms, ≤ 300 bytes per record.
//!
//! `cargo bench --bench store -- audit [requests] [per write] [bodies]`
//! instead measures what audit entries cost the recorder: the same requests
//! (10,000 per second lasting 0.1 to 5 s, so written in completion order,
//! batches of 4,096 as the recorder's `MAX_BATCH`, a flush after each) written as usage only, audit only and both; thread CPU
//! per request in `write_batch` and in `flush`, disk and key bytes per audit
//! entry, RSS growth, and the audit read paths.

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

/// Times `f` with [`time`] and prints `what` with its first and median time.
fn timed<T>(what: &str, f: impl Fn() -> T) -> T {
    let (cold, med, first) = time(f);
    println!(
        "  {what:<48} first {:>7.2} ms, median {:>7.2} ms",
        cold.as_secs_f64() * 1e3,
        med.as_secs_f64() * 1e3
    );
    first
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
    let page = timed(&format!("[{label}] usage log, first page of 100"), || {
        s.usage_log(&LogFilter::default(), None, 100).expect("log")
    });
    let f = LogFilter {
        model: Some(synth::model_name(3)),
        to_ms: Some(T0 + 20 * DAY_MS),
        ..Default::default()
    };
    timed(&format!("[{label}] usage log, filtered deep page"), || {
        s.usage_log(&f, page.next.as_ref(), 100).expect("log")
    });
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().is_some_and(|a| a == "audit") {
        audit_bench(&args[1..]);
        return;
    }
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

/// CPU time of the calling thread: the recorder's cost, without sled's
/// background flusher.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Resident set size of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[derive(Clone, Copy, PartialEq)]
enum Mix {
    Usage,
    Audit,
    Both,
}

/// Writes `n` requests as the recorder would; prints and returns the thread
/// CPU per request spent in `write_batch`.
fn audit_run(n: u64, per_write: usize, bodies: bool, mix: Mix) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store::sled::SledStore::open(dir.path()).expect("open");
    let empty = s.disk_bytes().expect("size");
    let rss0 = rss();
    let (mut write, mut flush) = (Duration::ZERO, Duration::ZERO);
    // Requests start 10,000 a second and end after their duration: the
    // recorder gets them in completion order, so ids are not in order.
    let mut done: Vec<(u64, u64)> = (0..n)
        .map(|j| (T0 + j / 10 + u64::from(synth::record(j, 0).duration_ms), j))
        .collect();
    done.sort_unstable();
    let mut ids = Vec::new();
    for batch in done.chunks(per_write) {
        let usage: Vec<record::UsageRecord> = batch.iter().map(|&(ts, j)| synth::record(j, ts)).collect();
        let audit: Vec<record::AuditEntry> = if mix == Mix::Usage {
            Vec::new()
        } else {
            usage.iter().map(|r| synth::audit_for(r, bodies)).collect()
        };
        let usage = if mix == Mix::Audit { Vec::new() } else { usage };
        ids.extend(audit.iter().step_by(97).map(|a| a.request_id.clone()));
        let t = thread_cpu();
        s.write_batch(&usage, &audit).expect("write");
        let t1 = thread_cpu();
        s.flush().expect("flush");
        write += t1 - t;
        flush += thread_cpu() - t1;
    }
    let grew = rss().saturating_sub(rss0);
    let disk = s.disk_bytes().expect("size").saturating_sub(empty);
    let (mut keys, mut kv) = (0u64, 0u64);
    for (p, (k, b)) in s.prefix_sizes().expect("sizes") {
        if b"aAbBiI".contains(&p) {
            keys += k;
            kv += b;
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let name = match mix {
        Mix::Usage => "usage only",
        Mix::Audit => "audit only",
        Mix::Both => "usage + audit",
    };
    println!(
        "  {name:<14} write_batch {:>6.2} µs/request, flush {:>5.2} µs/request (thread CPU); RSS +{:.1} MiB; disk {:.0} bytes/request",
        us(write),
        us(flush),
        grew as f64 / (1024.0 * 1024.0),
        disk as f64 / n as f64
    );
    if mix == Mix::Audit {
        println!(
            "  {:<14} {:.3} audit keys/entry, {:.0} key+value bytes/entry",
            "",
            keys as f64 / n as f64,
            kv as f64 / n as f64
        );
        let page = timed("audit log, first page of 100", || {
            s.audit_log(&store::LogFilter::default(), None, 100).expect("log")
        });
        let f = store::LogFilter {
            status: Some(store::StatusFilter::Exact(500)),
            ..Default::default()
        };
        timed("audit log, filtered page (status 500)", || {
            s.audit_log(&f, page.next.as_ref(), 100).expect("log")
        });
        let t = Instant::now();
        for id in &ids {
            assert!(s.audit_get(id).expect("get").is_some(), "{id} not found");
        }
        println!(
            "  {:<14} audit_get: {:.1} µs each ({} ids)",
            "",
            t.elapsed().as_secs_f64() * 1e6 / ids.len() as f64,
            ids.len()
        );
    }
    us(write)
}

fn audit_bench(args: &[String]) {
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let per_write: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4096).max(1);
    let bodies = args.get(2).is_some_and(|a| a == "bodies");
    // `audit-run MIX …`: one mix in this process (the parent's children).
    if let Some(mix) = args.get(3) {
        let mix = match mix.as_str() {
            "usage" => Mix::Usage,
            "audit" => Mix::Audit,
            _ => Mix::Both,
        };
        println!("write_batch_us={}", audit_run(n, per_write, bodies, mix));
        return;
    }
    println!("{n} requests at 10,000/s, {per_write} per write, bodies {bodies}");
    // One process per mix, so one run's freed memory does not hide the
    // next one's RSS growth.
    let mut cost = Vec::new();
    for mix in ["usage", "audit", "both"] {
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "audit",
                &n.to_string(),
                &per_write.to_string(),
                if bodies { "bodies" } else { "-" },
                mix,
            ])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            match line.strip_prefix("write_batch_us=") {
                Some(us) => cost.push(us.parse::<f64>().unwrap_or(f64::NAN)),
                None => println!("{line}"),
            }
        }
        assert!(out.status.success(), "{mix}: {}", String::from_utf8_lossy(&out.stderr));
    }
    if let [usage, _, both] = cost[..] {
        println!("audit entries add {:.2} µs/request to write_batch", both - usage);
    }
}
