//! The two limiter backends decide alike: one random sequence of
//! admissions and settlements (every kind of counter, refusals included)
//! runs against the in-process meters and against `lua/limiter.lua` on a
//! real `redis-server`, and every outcome and reading must match. The
//! admissions come in groups sent at once, so the script decides batches
//! (several requests on the same counters in one call) as well as single
//! requests.

use super::meters::{Admit, Check, Kind, Meters};
use super::redis::Target;
use super::shared::{OnError, Shared};
use super::window::Period;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A throwaway `redis-server` on a free port (killed on drop).
async fn redis_server(dir: &std::path::Path) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = tokio::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/deps.sh installs it)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("Ready to accept connections") {
                return true;
            }
        }
        false
    };
    let ok = tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .unwrap_or(false);
    assert!(ok, "redis-server did not become ready");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// A throwaway server and the shared backend on it, with one connection:
/// settlements (not awaited) stay in order with the admissions after
/// them.
async fn backend() -> ((tempfile::TempDir, tokio::process::Child), Shared) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, port) = redis_server(dir.path()).await;
    let target = Target::parse(&format!("redis://127.0.0.1:{port}")).expect("url");
    let shared = Shared::with_connections(target, OnError::FailClosed, Duration::from_secs(5), 1);
    ((dir, server), shared)
}

/// The counters the sequence draws from: (meter, kind, limit).
const COUNTERS: [(&str, Kind, i64); 6] = [
    ("k:rpm", Kind::Requests, 7),
    ("k:tpm", Kind::Tokens, 2_000),
    ("k:concurrency", Kind::Concurrency, 2),
    ("k:usd", Kind::Usd(Period::Hour), 10_000),
    ("k:tokens", Kind::BudgetTokens(Period::Rolling(120_000)), 3_000),
    ("path:/a:rpm", Kind::Requests, 1),
];

/// A random request: each counter with a chance of two in three.
fn random_checks(rng: &mut fastrand::Rng) -> Vec<Check> {
    let tokens = rng.i64(1..900);
    let usd = rng.i64(0..2_500);
    COUNTERS
        .iter()
        .filter(|_| rng.u8(0..3) != 0)
        .map(|&(meter, kind, limit)| Check {
            meter: meter.into(),
            kind,
            limit,
            amount: match kind {
                Kind::Tokens | Kind::BudgetTokens(_) => tokens,
                Kind::Usd(_) => usd,
                _ => 1,
            },
            scope: "key `k`".into(),
            soft: None,
        })
        .collect()
}

#[tokio::test]
async fn the_redis_script_decides_as_the_in_process_meters() {
    let (_server, shared) = backend().await;
    let meters = Meters::default();
    let mut rng = fastrand::Rng::with_seed(7);
    // Three minutes before the next hour: the sequence (about eight
    // minutes long) crosses into a new period of the hourly budget with
    // requests in flight from the old one. Expiries are set against the
    // server's clock, which this is never far from.
    let hour = 3_600_000;
    let mut now = (super::now_ms() / hour + 1) * hour - 180_000;
    let turn = now + 180_000;
    let mut open: Vec<(Vec<Check>, String, u64)> = Vec::new();
    let (mut admitted, mut refused) = ([0u32; 6], [0u32; 6]);
    for step in 0..800 {
        now += rng.u64(0..1_500);
        if !open.is_empty() && rng.u8(0..5) == 0 {
            let (checks, ticket, at) = open.swap_remove(rng.usize(0..open.len()));
            let (tokens, nano) = (rng.i64(0..800), rng.i64(0..600));
            meters.settle(&checks, at, now, tokens, nano);
            shared.settle(&checks, &ticket, at, now, tokens, nano);
            continue;
        }
        // A group of requests at the same moment: one script call.
        let group: Vec<(Vec<Check>, String)> = (0..rng.usize(1..=4))
            .map(|_| (random_checks(&mut rng), shared.ticket()))
            .filter(|(c, _)| !c.is_empty())
            .collect();
        let here: Vec<Admit> = group.iter().map(|(c, _)| meters.admit(c, now)).collect();
        let there = futures_util::future::join_all(group.iter().map(|(c, t)| shared.admit(c, now, t))).await;
        for (((checks, ticket), here), there) in group.into_iter().zip(here).zip(there) {
            let there = there.expect("redis answers");
            let which = |i: usize| COUNTERS.iter().position(|c| *c.0 == *checks[i].meter).unwrap_or(0);
            match (&here, &there) {
                (Admit::Yes(a), Admit::Yes(b)) => {
                    assert_eq!(a, b, "step {step}: readings of {checks:?}");
                    for i in 0..checks.len() {
                        admitted[which(i)] += 1;
                    }
                    open.push((checks, ticket, now));
                }
                (Admit::No(i, a), Admit::No(j, b)) => {
                    assert_eq!((i, a), (j, b), "step {step}: refusal of {checks:?}");
                    refused[which(*i)] += 1;
                }
                _ => panic!("step {step}: in-process {here:?}, Redis {there:?} for {checks:?}"),
            }
        }
    }
    // Every kind of counter both admitted and refused: the sequence tested
    // each rule, not only the easy side of it.
    for (i, c) in COUNTERS.iter().enumerate() {
        assert!(
            admitted[i] > 5 && refused[i] > 2,
            "{}: {admitted:?} admitted, {refused:?} refused",
            c.0
        );
    }
    // A group's first request goes at once and the rest together in the
    // next call (groups of 1–4 average 1.43 requests a call; one call per
    // request would be 1.0): batches were decided, not only single
    // requests.
    let (calls, requests) = shared.batching();
    assert!(requests * 4 >= calls * 5, "{requests} requests in {calls} calls");
    // The period turned mid-sequence, as meant.
    assert!(now > turn, "the sequence ended before the hour did");
    // And after the last settlements, the same state.
    shared.barrier().await.expect("redis answers");
    let items: Vec<(&str, Kind)> = COUNTERS.iter().map(|&(m, k, _)| (m, k)).collect();
    let there = shared.read(&items, now).await.expect("redis answers");
    let here: Vec<(i64, i64)> = items.iter().map(|&(m, k)| meters.read(m, k, now)).collect();
    assert_eq!(here, there);
}

#[tokio::test]
async fn a_bucket_settled_down_to_nothing_leaves_its_window_cleanly() {
    let (_server, shared) = backend().await;
    let tpm = |amount| Check {
        meter: "k:tpm".into(),
        kind: Kind::Tokens,
        limit: 1_000,
        amount,
        scope: "key `k`".into(),
        soft: None,
    };
    let now = super::now_ms();
    // An estimate of 40 tokens that used none: its bucket holds "0".
    let t = shared.ticket();
    let first = shared.admit(&[tpm(40)], now, &t).await.expect("redis answers");
    assert!(matches!(first, Admit::Yes(_)), "{first:?}");
    shared.settle(&[tpm(40)], &t, now, now, 0, 0);
    shared.barrier().await.expect("redis answers");
    // A minute later that bucket leaves the window, and the next admission
    // sees an empty one.
    let later = now + 61_000;
    let next = shared.admit(&[tpm(1_000)], later, &shared.ticket()).await;
    match next {
        Ok(Admit::Yes(r)) => assert_eq!(r[0].used, 0),
        other => panic!("{other:?}"),
    }
}
