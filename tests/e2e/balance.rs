//! Virtual models, circuit breakers, key cooldown and timeouts (issue 11):
//! a virtual model spreads traffic over its members by its strategy and
//! fails over inside the set; a provider with `circuit_breaker:` is skipped
//! while its circuit is open, probed after the cooldown and closed by a
//! success; a rate-limited key is set aside while rotation continues; a
//! provider slower than `first_byte_timeout_ms` fails over, and a stream
//! silent for `stream_idle_timeout_ms` ends with an error event.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, openai_handler, MockResponse, MockUpstream, RecordedRequest, Step};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two OpenAI-compatible providers, `a` and `b`, each with a model `m`,
/// and `yaml` after the providers block.
async fn two(a: &MockUpstream, b: &MockUpstream, providers_extra: &str, yaml: &str) -> Gateway {
    let cfg = format!(
        "providers:\n  a:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-a\n    models: [m]\n{providers_extra}  b:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-b\n    models: [m]\n{yaml}",
        a.base_url(),
        b.base_url()
    );
    Gateway::start_with(&[], Some(&cfg)).await
}

async fn chat(c: &reqwest::Client, gw: &Gateway, model: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rq = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    rq.send().await.expect("send")
}

fn served_by(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-switchyard-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn attempts(r: &reqwest::Response) -> Option<&str> {
    r.headers().get("x-switchyard-attempts").and_then(|v| v.to_str().ok())
}

/// A provider answering 503 while `down` is set, else like OpenAI.
async fn switchable(down: Arc<AtomicBool>) -> MockUpstream {
    let ok = openai_handler();
    MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if down.load(Ordering::SeqCst) {
            MockResponse::openai_error(503, "overloaded", "server_error", None, None)
        } else {
            ok(r)
        }
    }))
    .await
}

/// GET `path` on the gateway, as JSON.
async fn get_json(c: &reqwest::Client, gw: &Gateway, path: &str) -> Value {
    c.get(format!("{}{path}", gw.base_url))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

async fn status_of(c: &reqwest::Client, gw: &Gateway, provider: &str) -> Value {
    let v = get_json(c, gw, "/admin/providers/status").await;
    v["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == provider).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_weighted_virtual_model_splits_within_five_percent_over_2000_requests() {
    let (a, b) = (MockUpstream::openai().await, MockUpstream::openai().await);
    let vm = "virtual_models:\n  smart:\n    strategy: weighted\n    targets:\n      - {target: a/m, weight: 3}\n      - {target: b/m, weight: 1}\n";
    let gw = two(&a, &b, "", vm).await;
    let c = reqwest::Client::new();
    let mut served: HashMap<String, u32> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (c, url) = (c.clone(), gw.base_url.clone());
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..125 {
                let r = c
                    .post(format!("{url}/v1/chat/completions"))
                    .json(&json!({"model": "smart", "messages": [{"role": "user", "content": format!("w{w}")}]}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 200);
                mine.push(served_by(&r));
            }
            mine
        });
    }
    while let Some(done) = tasks.join_next().await {
        for p in done.expect("task") {
            *served.entry(p).or_default() += 1;
        }
    }
    let (na, nb) = (served["a"], served["b"]);
    assert_eq!(na + nb, 2000);
    assert_eq!((a.requests().len() as u32, b.requests().len() as u32), (na, nb));
    // Expected 1500 : 500; ±5 % of the expected share (±75 requests) is
    // nearly 4 standard deviations of a fair coin with these odds.
    assert!((1425..=1575).contains(&na), "a served {na}, b {nb}");
    assert_eq!(a.requests()[0].json()["model"], "m", "the member's model is sent");
}

#[tokio::test]
async fn round_robin_alternates_and_a_failing_member_fails_over_inside_the_set() {
    let down = Arc::new(AtomicBool::new(false));
    let (a, b) = (switchable(down.clone()).await, MockUpstream::openai().await);
    let vm = "virtual_models:\n  rr:\n    strategy: round_robin\n    targets: [{target: a/m}, {target: b/m}]\n";
    let gw = two(&a, &b, "", vm).await;
    let c = reqwest::Client::new();
    let mut order = Vec::new();
    for _ in 0..4 {
        let r = chat(&c, &gw, "rr", &[]).await;
        assert_eq!(r.status(), 200);
        order.push(served_by(&r));
    }
    assert_eq!(order, ["a", "b", "a", "b"]);
    down.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        let r = chat(&c, &gw, "rr", &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(served_by(&r), "b");
    }
    // The audit entry lists every attempt; the usage record bills `b`.
    let flushed = c
        .post(format!("{}/admin/runtime/flush", gw.base_url))
        .send()
        .await
        .expect("flush");
    assert_eq!(flushed.status(), 200);
    let v = get_json(&c, &gw, "/admin/audit/log?limit=4").await;
    let tried = |e: &Value| -> Vec<(Value, Value, Value)> {
        e["attempts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| (t["provider"].clone(), t["status"].clone(), t["error"].clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let a_failed = (json!("a"), json!(503), json!("upstream_status"));
    let b_served = (json!("b"), json!(200), Value::Null);
    let entries = v["data"].as_array().cloned().unwrap_or_default();
    // Turns 4..8: `a` was first in two of them.
    let both = entries
        .iter()
        .filter(|e| tried(e) == [a_failed.clone(), b_served.clone()])
        .count();
    let direct = entries.iter().filter(|e| tried(e) == [b_served.clone()]).count();
    assert_eq!((both, direct), (2, 2), "{v}");
    let v = get_json(&c, &gw, "/admin/usage/log?limit=1").await;
    assert_eq!(v["data"][0]["provider"], "b", "{v}");
    let v = get_json(&c, &gw, "/admin/usage/log?limit=4").await;
    let mut counts: Vec<u64> = v["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|r| r["attempts"].as_u64()).collect())
        .unwrap_or_default();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2, 2], "{v}");
    // The listing shows the virtual model.
    let v = get_json(&c, &gw, "/v1/models").await;
    assert!(
        v["data"].as_array().is_some_and(|d| d.iter().any(|m| m["id"] == "rr")),
        "{v}"
    );
}

#[tokio::test]
async fn a_sticky_header_keeps_each_session_on_one_member() {
    let (a, b) = (MockUpstream::openai().await, MockUpstream::openai().await);
    let vm = "virtual_models:\n  s:\n    strategy: round_robin\n    sticky: header:X-Session-Id\n    targets: [{target: a/m}, {target: b/m}]\n";
    let gw = two(&a, &b, "", vm).await;
    let c = reqwest::Client::new();
    let mut seen = HashSet::new();
    for k in 0..16 {
        let id = format!("session-{k}");
        let mut providers = HashSet::new();
        for _ in 0..4 {
            let r = chat(&c, &gw, "s", &[("x-session-id", &id)]).await;
            assert_eq!(r.status(), 200);
            providers.insert(served_by(&r));
        }
        assert_eq!(providers.len(), 1, "{id} moved between {providers:?}");
        seen.extend(providers);
    }
    assert_eq!(seen.len(), 2, "sessions spread over both members");
}

#[tokio::test]
async fn least_latency_measures_each_member_then_prefers_the_fast_one_and_cost_the_cheap_one() {
    let slow_ok = openai_handler();
    let slow = MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        MockResponse::Delayed(Duration::from_millis(80), Box::new(slow_ok(r)))
    }))
    .await;
    let fast = MockUpstream::openai().await;
    let vm = "virtual_models:\n  quick:\n    strategy: least_latency\n    targets: [{target: a/m}, {target: b/m}]\n  cheap:\n    strategy: cost\n    targets: [{target: b/gpt-4o}, {target: b/gpt-4o-mini}]\n";
    let gw = two(&slow, &fast, "", vm).await;
    let c = reqwest::Client::new();
    let mut order = Vec::new();
    for _ in 0..8 {
        let r = chat(&c, &gw, "quick", &[]).await;
        assert_eq!(r.status(), 200);
        order.push(served_by(&r));
    }
    assert_eq!(
        order[..2].iter().collect::<HashSet<_>>().len(),
        2,
        "both measured first: {order:?}"
    );
    assert!(order[2..].iter().all(|p| p == "b"), "{order:?}");
    for _ in 0..3 {
        assert_eq!(chat(&c, &gw, "cheap", &[]).await.status(), 200);
    }
    let models: Vec<Value> = fast.requests().iter().map(|r| r.json()["model"].clone()).collect();
    assert!(
        models.ends_with(&[json!("gpt-4o-mini"), json!("gpt-4o-mini"), json!("gpt-4o-mini")]),
        "{models:?}"
    );
}

#[tokio::test]
async fn a_breaker_opens_skips_half_opens_and_closes() {
    let down = Arc::new(AtomicBool::new(true));
    let (a, b) = (switchable(down.clone()).await, MockUpstream::openai().await);
    let breaker = "    circuit_breaker: {failures: 2, cooldown_seconds: 0.3}\n";
    let gw = two(&a, &b, breaker, "fallbacks:\n  a/m: [b/m]\n").await;
    let c = reqwest::Client::new();
    for _ in 0..2 {
        let r = chat(&c, &gw, "a/m", &[]).await;
        assert_eq!((r.status().as_u16(), attempts(&r)), (200, Some("2")));
    }
    // Open: `a` is not called at all.
    let r = chat(&c, &gw, "a/m", &[]).await;
    assert_eq!(
        (r.status().as_u16(), attempts(&r), served_by(&r).as_str()),
        (200, Some("1"), "b")
    );
    assert_eq!(a.requests().len(), 2);
    let st = status_of(&c, &gw, "a").await;
    assert_eq!(st["model_circuits"][0]["state"], "open", "{st}");
    assert_eq!(
        st["circuit"], "closed",
        "a 503 is the model's failure, not the instance's"
    );
    let metrics = c
        .get(format!("{}/metrics", gw.base_url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"switchyard_circuit_state{model="m",provider="a"} 2"#),
        "{metrics}"
    );
    // After the cooldown one probe goes; it succeeds and closes the circuit.
    down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&c, &gw, "a").await["model_circuits"][0]["state"] != "half_open" {
        assert!(Instant::now() < deadline, "never half-open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = chat(&c, &gw, "a/m", &[]).await;
    assert_eq!((r.status().as_u16(), served_by(&r).as_str()), (200, "a"));
    assert_eq!(status_of(&c, &gw, "a").await["model_circuits"][0]["state"], "closed");
    assert_eq!(chat(&c, &gw, "a/m", &[]).await.status(), 200);
    assert_eq!(a.requests().len(), 4);
}

#[tokio::test]
async fn every_circuit_open_is_a_503_naming_the_model_with_retry_after() {
    let a = MockUpstream::start(Arc::new(|_r: &RecordedRequest| {
        MockResponse::openai_error(500, "boom", "server_error", None, None)
    }))
    .await;
    let b = MockUpstream::openai().await;
    let gw = two(&a, &b, "    circuit_breaker: {failures: 1, cooldown_seconds: 60}\n", "").await;
    let c = reqwest::Client::new();
    assert_eq!(chat(&c, &gw, "a/m", &[]).await.status(), 500);
    let r = chat(&c, &gw, "a/m", &[]).await;
    assert_eq!(r.status(), 503);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "circuit_open", "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.contains("`a/m`")),
        "{v}"
    );
    // The Anthropic dialect gets its own envelope.
    let r = c
        .post(format!("{}/v1/messages", gw.base_url))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "a/m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("overloaded_error"))
    );
    assert_eq!(a.requests().len(), 1);
}

#[tokio::test]
async fn a_rate_limited_key_is_set_aside_and_rotation_continues() {
    let ok = openai_handler();
    let m = MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if r.header("authorization") == Some("Bearer sk-one") {
            MockResponse::Json {
                status: 429,
                body: br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.to_vec(),
                headers: vec![("retry-after".into(), "30".into())],
            }
        } else {
            ok(r)
        }
    }))
    .await;
    let cfg = format!(
        "providers:\n  openai:\n    base_url: {}/v1\n    api_keys: [sk-one, sk-two]\n    models: [m]\n",
        m.base_url()
    );
    let gw = Gateway::start_with(&[], Some(&cfg)).await;
    let c = reqwest::Client::new();
    let r = chat(&c, &gw, "m", &[]).await;
    assert_eq!(
        (r.status().as_u16(), attempts(&r)),
        (200, Some("2")),
        "the other key at once"
    );
    for _ in 0..4 {
        let r = chat(&c, &gw, "m", &[]).await;
        assert_eq!((r.status().as_u16(), attempts(&r)), (200, Some("1")));
    }
    let keys: Vec<String> = m
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(keys.iter().filter(|k| *k == "Bearer sk-one").count(), 1, "{keys:?}");
    let st = status_of(&c, &gw, "openai").await;
    assert_eq!((st["keys"].as_u64(), st["keys_cooling"].as_u64()), (Some(2), Some(1)));
}

#[tokio::test]
async fn a_slow_first_byte_fails_over_and_a_silent_stream_ends_with_an_error_event() {
    let stall = MockUpstream::start(Arc::new(|r: &RecordedRequest| {
        if r.json()["stream"] == true {
            // Head at once, then nothing: only the first-event deadline sees it.
            MockResponse::Stream {
                status: 200,
                headers: vec![],
                steps: vec![Step::Sleep(Duration::from_secs(30))],
            }
        } else {
            MockResponse::Stall
        }
    }))
    .await;
    let chunk = crate::support::mock::sse_data(&crate::support::mock::openai_chat_chunk(
        "m",
        json!({"role": "assistant", "content": "hel"}),
        None,
    ));
    let whole = openai_chat_completion("m", "hello", (3, 1));
    let idle = MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if r.json()["stream"] == true {
            MockResponse::Stream {
                status: 200,
                headers: vec![],
                steps: vec![Step::Send(chunk.clone()), Step::Sleep(Duration::from_secs(30))],
            }
        } else {
            MockResponse::json(200, &whole)
        }
    }))
    .await;
    let extra = "    first_byte_timeout_ms: 300\n";
    let cfg_b = "    stream_idle_timeout_ms: 300\n";
    let cfg = format!(
        "providers:\n  a:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-a\n    models: [m]\n{extra}  b:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-b\n    models: [m]\n{cfg_b}fallbacks:\n  a/m: [b/m]\n",
        stall.base_url(),
        idle.base_url()
    );
    let gw = Gateway::start_with(&[], Some(&cfg)).await;
    let c = reqwest::Client::new();
    // `a` never answers its head: after 300 ms `b` serves.
    let started = Instant::now();
    let r = chat(&c, &gw, "a/m", &[]).await;
    assert_eq!(
        (r.status().as_u16(), served_by(&r).as_str(), attempts(&r)),
        (200, "b", Some("2"))
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Streamed: `a` sends its head at once but no event within 300 ms.
    let started = Instant::now();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&json!({"model": "a/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        (r.status().as_u16(), served_by(&r).as_str(), attempts(&r)),
        (200, "b", Some("2"))
    );
    // `b` sends one event, then falls silent: the stream ends with an error
    // event after its idle timeout instead of hanging.
    let text = r.text().await.expect("text");
    let elapsed = started.elapsed();
    assert!(text.contains("\"hel\""), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(stall.requests().len(), 2);
}

#[tokio::test]
async fn a_reload_changes_the_set_and_keeps_what_the_breakers_learnt() {
    let a = MockUpstream::start(Arc::new(|_r: &RecordedRequest| {
        MockResponse::openai_error(500, "boom", "server_error", None, None)
    }))
    .await;
    let b = MockUpstream::openai().await;
    let cb = "    circuit_breaker: {failures: 1, cooldown_seconds: 60}\n";
    let vm = |to: &str| format!("virtual_models:\n  v:\n    targets: [{{target: {to}}}]\n");
    let gw = two(&a, &b, cb, &vm("a/m")).await;
    let c = reqwest::Client::new();
    assert_eq!(chat(&c, &gw, "v", &[]).await.status(), 500);
    assert_eq!(chat(&c, &gw, "v", &[]).await.status(), 503, "open after one failure");
    // Point `v` at `b`: the next request goes there.
    let text = std::fs::read_to_string(gw.data_dir.join("switchyard.yaml")).expect("read config");
    let text = text.replace(&vm("a/m"), &vm("b/m"));
    std::fs::write(gw.data_dir.join("switchyard.yaml"), text).expect("write config");
    let r = c
        .post(format!("{}/admin/runtime/refresh", gw.base_url))
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = chat(&c, &gw, "v", &[]).await;
    assert_eq!((r.status().as_u16(), served_by(&r).as_str()), (200, "b"));
    // `a/m`'s circuit, learnt before the reload, is still open.
    let r = chat(&c, &gw, "a/m", &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(a.requests().iter().filter(|r| r.method == "POST").count(), 1);
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_is_not_retried_or_failed_over() {
    let first = crate::support::mock::sse_data(&crate::support::mock::openai_chat_chunk(
        "m",
        json!({"role": "assistant", "content": "partial"}),
        None,
    ));
    let a = MockUpstream::start(Arc::new(move |_r: &RecordedRequest| MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: vec![Step::Send(first.clone()), Step::Abort],
    }))
    .await;
    let b = MockUpstream::openai().await;
    let retry = "    retry: {attempts: 3, backoff_ms: 1}\n";
    let gw = two(&a, &b, retry, "fallbacks:\n  a/m: [b/m]\n").await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&json!({"model": "a/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!((r.status().as_u16(), attempts(&r)), (200, Some("1")));
    let text = r.text().await.expect("text");
    assert!(text.contains("\"partial\""), "{text}");
    assert_eq!(text.matches("\"error\"").count(), 1, "one error event: {text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(a.requests().len(), 1, "no second attempt");
    assert!(b.requests().iter().all(|r| r.method != "POST"), "no fallback");
}
