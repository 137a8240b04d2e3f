//! Store durability (issue 10, item 13): the data dir fills up under load.
//! The disk is "full" through `RLIMIT_FSIZE` on the gateway process — the
//! kernel refuses writes past the limit with `EFBIG`, as it refuses them
//! on a full disk with `ENOSPC` — so no root or tmpfs is needed.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, MockResponse, MockUpstream, RecordedRequest};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

const KEY: &str = "sy-durability-master-01";

fn echo(r: &RecordedRequest) -> MockResponse {
    let model = r.json()["model"].as_str().unwrap_or("").to_string();
    MockResponse::json(200, &openai_chat_completion(&model, "ok", (30, 5)))
}

fn env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "sk-durability".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
        // Bodies make each record large, so the limit is reached quickly.
        ("SWITCHYARD_AUDIT_BODIES", "true".to_string()),
    ]
}

async fn admin(c: &reqwest::Client, gw: &Gateway, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = c
        .request(method, format!("{}{path}", gw.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("admin");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every record in the usage log, paged.
async fn log_count(c: &reqwest::Client, gw: &Gateway) -> u64 {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/admin/usage/log?limit=1000&cursor={c}"),
            None => "/admin/usage/log?limit=1000".to_string(),
        };
        let (s, v) = admin(c, gw, reqwest::Method::GET, &q).await;
        assert_eq!(s, 200, "{v}");
        n += v["data"].as_array().map_or(0, Vec::len) as u64;
        match v["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return n,
        }
    }
}

async fn summary_requests(c: &reqwest::Client, gw: &Gateway) -> (u16, Option<u64>) {
    let (s, v) = admin(c, gw, reqwest::Method::GET, "/admin/usage/summary").await;
    (s, v["totals"]["requests"].as_u64())
}

/// Text that does not compress, different per request.
fn filler(i: u64, len: usize) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn a_full_disk_stops_the_store_visibly_and_loses_nothing_reported_stored() {
    let mock = MockUpstream::start(Arc::new(echo)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let mut gw = Gateway::spawn_limited(&env(&mock), None, dir.clone(), None, &[], Some(3 << 20)).await;
    let c = reqwest::Client::new();

    // Load until a write fails; after each landed batch, note what the
    // admin API reports as stored.
    let mut reported = 0;
    let mut failed_at = None;
    for i in 0..2000u64 {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": filler(i, 16 * 1024)}]});
        let r = c
            .post(format!("{}/v1/chat/completions", gw.base_url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("chat");
        assert_eq!(r.status(), 200, "requests are served while the disk fills");
        let (s, _) = admin(&c, &gw, reqwest::Method::POST, "/admin/runtime/flush").await;
        if s != 200 {
            failed_at = Some(Instant::now());
            break;
        }
        let (s, n) = summary_requests(&c, &gw).await;
        assert_eq!(s, 200);
        reported = n.expect("summary total");
    }
    let failed_at = failed_at.expect("the size limit was reached: the store never failed a write");
    assert!(reported > 0, "some records landed before the disk filled");

    // The failure is visible at once: readiness, metrics, the admin API.
    let ready = c
        .get(format!("{}/health/ready", gw.base_url))
        .send()
        .await
        .expect("ready");
    assert!(failed_at.elapsed().as_secs_f64() < 1.0);
    assert_eq!(ready.status(), 503, "readiness fails with the store");
    let metrics = c.get(format!("{}/metrics", gw.base_url)).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("switchyard_store_up 0"), "{text}");
    let failures = text
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_store_write_failures_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(failures.is_some_and(|n| n >= 1), "write failures counted");
    let (s, state) = admin(&c, &gw, reqwest::Method::GET, "/admin/runtime/store").await;
    assert_eq!(s, 200);
    assert_eq!(state["state"], "failed", "{state}");
    assert!(state["error"].as_str().is_some_and(|e| !e.is_empty()), "{state}");
    // Nothing that might not be on disk is reported.
    let (s, _) = summary_requests(&c, &gw).await;
    assert_eq!(s, 503, "the admin API refuses to report from a failed store");
    // Requests are still answered (records queue in memory, bounded).
    let r = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .bearer_auth(KEY)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still here"}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);

    assert!(gw.signal_and_wait(libc::SIGTERM).await.success());

    // After a restart with room on the disk: everything reported is there,
    // and the roll-ups agree with the log.
    let again = Gateway::spawn(&env(&mock), None, dir, Some(tmp), &[]).await;
    let ready = c
        .get(format!("{}/health/ready", again.base_url))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let logged = log_count(&c, &again).await;
    let (s, total) = summary_requests(&c, &again).await;
    assert_eq!(s, 200);
    assert!(
        logged >= reported,
        "{logged} in the log, {reported} were reported stored"
    );
    assert_eq!(total, Some(logged), "roll-ups agree with the log after the restart");
}
