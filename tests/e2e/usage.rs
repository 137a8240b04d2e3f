//! Usage, cost, audit, live stream, admin API, metrics and model overrides,
//! through the running gateway and its sled store.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_chunk, sse_data, MockResponse, MockUpstream, RecordedRequest, Step};
use crate::support::{mock_anthropic, mock_gemini};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const KEY: &str = "sy-usage-master";
const PROVIDER_SECRET: &str = "sk-provider-secret-4242";

async fn gateway(extra: &[(&str, String)], yaml: Option<&str>) -> (MockUpstream, MockUpstream, MockUpstream, Gateway) {
    let oai = MockUpstream::openai().await;
    let ant = mock_anthropic::anthropic().await;
    let gem = mock_gemini::gemini().await;
    let mut env = vec![
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", PROVIDER_SECRET.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", oai.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini,mystery-model-x".to_string()),
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_string()),
        ("ANTHROPIC_BASE_URL", ant.base_url()),
        ("ANTHROPIC_MODELS", "claude-sonnet-4-5".to_string()),
        ("GEMINI_API_KEY", "gm-test".to_string()),
        ("GEMINI_BASE_URL", format!("{}/v1beta", gem.base_url())),
        ("GEMINI_MODELS", "gemini-2.5-flash".to_string()),
    ];
    env.extend(extra.iter().cloned());
    let gw = Gateway::start_with(&env, yaml).await;
    (oai, ant, gem, gw)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = client().request(m, format!("{}{path}", gw.base_url)).bearer_auth(KEY);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("send");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn flush(gw: &Gateway) {
    let (s, v) = admin(gw, "POST", "/admin/runtime/flush", None).await;
    assert_eq!(s, 200, "{v}");
}

async fn chat(gw: &Gateway, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = client()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .bearer_auth(KEY)
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.expect("send")
}

fn msg(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

async fn log_records(gw: &Gateway, query: &str) -> Vec<Value> {
    let (s, v) = admin(gw, "GET", &format!("/admin/usage/log?{query}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn usage_and_cost_for_every_dialect_streamed_or_not() {
    let (_o, _a, _g, gw) = gateway(&[], None).await;
    // OpenAI, non-stream and stream.
    assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    let mut s = msg("gpt-4o-mini");
    s["stream"] = json!(true);
    let text = chat(&gw, s, &[]).await.text().await.expect("stream");
    assert!(text.contains("[DONE]"));
    // Anthropic (native /v1/messages) and Gemini (translated), stream and not.
    for (model, stream) in [
        ("claude-sonnet-4-5", false),
        ("claude-sonnet-4-5", true),
        ("gemini-2.5-flash", true),
    ] {
        let r = client()
            .post(format!("{}/v1/messages", gw.base_url))
            .header("x-api-key", KEY)
            .json(&json!({"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    // A model with no known price.
    assert_eq!(chat(&gw, msg("mystery-model-x"), &[]).await.status(), 200);
    flush(&gw).await;
    let recs = log_records(&gw, "limit=100").await;
    assert_eq!(recs.len(), 6, "{recs:#?}");
    for r in &recs {
        assert!(r["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{r}");
        assert!(r["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{r}");
        if r["model"] == "mystery-model-x" {
            assert!(r["cost_usd"].is_null(), "unknown price is null, never 0: {r}");
            assert_eq!(r["cost_source"], "unknown");
        } else {
            assert!(r["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{r}");
            assert_eq!(r["cost_source"], "builtin", "{r}");
        }
    }
    let dialects: Vec<&str> = recs.iter().filter_map(|r| r["dialect"].as_str()).collect();
    assert!(dialects.contains(&"anthropic") && dialects.contains(&"openai"));
    let (s, sum) = admin(&gw, "GET", "/admin/usage/summary", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        sum["totals"]["requests"].as_u64().or(sum["requests"].as_u64()),
        Some(6),
        "{sum}"
    );
}

#[tokio::test]
async fn cached_tokens_are_recorded_and_priced() {
    let handler = Arc::new(|_r: &RecordedRequest| MockResponse::Json {
        status: 200,
        body: json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010,
                      "prompt_tokens_details": {"cached_tokens": 1024}}})
        .to_string()
        .into_bytes(),
        headers: vec![],
    });
    let mock = MockUpstream::start(handler).await;
    let gw = Gateway::start(&[
        ("SWITCHYARD_MASTER_KEY", KEY.into()),
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".into()),
    ])
    .await;
    assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    flush(&gw).await;
    let r = &log_records(&gw, "").await[0];
    assert_eq!(r["usage"]["cached_input_tokens"], 1024);
    // gpt-4o-mini list prices: 0.15 in, 0.075 cached, 0.60 out per Mtok.
    let want = (976.0 * 0.15 + 1024.0 * 0.075 + 10.0 * 0.60) / 1e6;
    let got = r["cost_usd"].as_f64().expect("cost");
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[tokio::test]
async fn user_paths_roll_up_tags_validate_and_filters_paginate() {
    let (_o, _a, _g, gw) = gateway(&[], None).await;
    for (path, tags) in [
        ("/acme/ml/alice", "env=prod"),
        ("/acme/web/bob", "env=dev"),
        ("/other/x", "env=prod"),
    ] {
        let r = chat(
            &gw,
            msg("gpt-4o-mini"),
            &[("x-switchyard-user-path", path), ("x-switchyard-tags", tags)],
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let r = chat(&gw, msg("gpt-4o-mini"), &[("x-switchyard-user-path", "no-slash")]).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["param"], "x-switchyard-user-path");
    let r = chat(&gw, msg("gpt-4o-mini"), &[("x-switchyard-tags", "a=1,a=2")]).await;
    assert_eq!(r.status(), 400);
    flush(&gw).await;
    let (s, v) = admin(&gw, "GET", "/admin/usage/user-paths", None).await;
    assert_eq!(s, 200, "{v}");
    let rows = v["user_paths"].as_array().expect("rows");
    let get = |p: &str| {
        rows.iter()
            .find(|r| r["user_path"] == p)
            .map(|r| r["requests"].as_u64())
    };
    assert_eq!(get("/acme"), Some(Some(2)), "ancestors roll up: {v}");
    assert_eq!(get("/acme/ml"), Some(Some(1)));
    assert_eq!(get("/acme/ml/alice"), Some(Some(1)));
    let (s, v) = admin(&gw, "GET", "/admin/usage/daily?group_by=tag", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains("env=prod"), "{v}");
    // Filters and pagination.
    let acme = log_records(&gw, "user_path=/acme").await;
    assert_eq!(acme.len(), 2);
    let (s, p1) = admin(&gw, "GET", "/admin/usage/log?limit=2", None).await;
    assert_eq!(s, 200);
    assert_eq!(p1["data"].as_array().map(Vec::len), Some(2));
    let cursor = p1["next_cursor"].as_str().expect("more pages");
    let (_, p2) = admin(&gw, "GET", &format!("/admin/usage/log?limit=2&cursor={cursor}"), None).await;
    assert_eq!(p2["data"].as_array().map(Vec::len), Some(1));
    let ids: std::collections::HashSet<String> = p1["data"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(p2["data"].as_array().into_iter().flatten())
        .filter_map(|r| r["request_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 3, "no duplicates across pages");
    let (s, v) = admin(&gw, "GET", "/admin/usage/log?limit=banana", None).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["param"], "limit");
    let (s, v) = admin(&gw, "GET", "/admin/usage/daily?group_by=planet", None).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["param"], "group_by");
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded_as_partial() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let mock = MockUpstream::start(Arc::new(move |_r: &RecordedRequest| MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: vec![
            Step::Send(sse_data(&openai_chat_chunk(
                "gpt-4o-mini",
                json!({"role": "assistant", "content": "part"}),
                None,
            ))),
            Step::Wait(g.clone()),
        ]
        .into_iter()
        // After the hang-up the gateway keeps writing until the kernel
        // reports the closed socket (the first write may still be buffered).
        .chain((0..200).flat_map(|_| {
            [
                Step::Send(sse_data(&openai_chat_chunk(
                    "gpt-4o-mini",
                    json!({"content": " more"}),
                    None,
                ))),
                Step::Sleep(Duration::from_millis(2)),
            ]
        }))
        .chain([Step::Send(b"data: [DONE]\n\n".to_vec())])
        .collect(),
    }))
    .await;
    let gw = Gateway::start(&[
        ("SWITCHYARD_MASTER_KEY", KEY.into()),
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".into()),
    ])
    .await;
    let mut body = msg("gpt-4o-mini");
    body["stream"] = json!(true);
    let r = chat(&gw, body, &[]).await;
    let mut stream = r.bytes_stream();
    let first = stream.next().await.expect("first").expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains("part"));
    let mut rx = gw.log_lines();
    drop(stream); // the client hangs up
    gate.add_permits(1); // the gateway's next writes fail
    Gateway::wait_log(&mut rx, "client_gone=true").await;
    flush(&gw).await;
    let recs = log_records(&gw, "").await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["partial"], true, "{}", recs[0]);
}

#[tokio::test]
async fn sigterm_loses_nothing_and_kill9_loses_at_most_the_unflushed() {
    let (_o, _a, _g, mut gw) = gateway(&[], None).await;
    for _ in 0..5 {
        assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    }
    let dir = gw.data_dir.clone();
    let status = gw.signal_and_wait(libc::SIGTERM).await;
    assert!(status.success());
    let env = [
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "k".to_string()),
    ];
    let mut gw2 = Gateway::spawn(&env, None, dir.clone(), None, &[]).await;
    assert_eq!(log_records(&gw2, "limit=1000").await.len(), 5, "SIGTERM lost records");
    // kill -9: flushed records survive; at most the unflushed ones are lost.
    let oai = MockUpstream::openai().await;
    let _ = gw2.signal_and_wait(libc::SIGTERM).await;
    let env = [
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "k".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", oai.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
    ];
    let mut gw3 = Gateway::spawn(&env, None, dir.clone(), None, &[]).await;
    for _ in 0..3 {
        assert_eq!(chat(&gw3, msg("gpt-4o-mini"), &[]).await.status(), 200);
    }
    flush(&gw3).await;
    for _ in 0..2 {
        assert_eq!(chat(&gw3, msg("gpt-4o-mini"), &[]).await.status(), 200);
    }
    let _ = gw3.signal_and_wait(libc::SIGKILL).await;
    let gw4 = Gateway::spawn(&env, None, dir, None, &[]).await;
    let n = log_records(&gw4, "limit=1000").await.len();
    assert!(
        (8..=10).contains(&n),
        "before kill -9: 8 flushed + 2 unflushed; after: {n}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_store_and_audit_keeps_bodies_when_asked() {
    let (_o, _a, _g, gw) = gateway(&[("SWITCHYARD_AUDIT_BODIES", "true".into())], None).await;
    let r = client()
        .post(format!("{}/v1/chat/completions?key=query-secret-77", gw.base_url))
        .bearer_auth(KEY)
        .header("cookie", "session=cookie-secret-99")
        .json(&msg("gpt-4o-mini"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id")
        .to_string();
    let _ = r.text().await;
    flush(&gw).await;
    let (s, a) = admin(&gw, "GET", &format!("/admin/audit/{id}"), None).await;
    assert_eq!(s, 200, "{a}");
    assert!(a.to_string().contains("hello there"), "request body kept: {a}");
    assert!(a.to_string().contains("chat.completion"), "response body kept: {a}");
    let (s, cfg) = admin(&gw, "GET", "/admin/runtime/config", None).await;
    assert_eq!(s, 200);
    let shown = format!("{a}{cfg}");
    for secret in [KEY, PROVIDER_SECRET, "query-secret-77", "cookie-secret-99"] {
        assert!(!shown.contains(secret), "{secret} shown by the admin API");
    }
    // Grep every file of the store for the secrets.
    let mut hits = Vec::new();
    for entry in crate::support::walk(&gw.data_dir.join("store")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for secret in [KEY, PROVIDER_SECRET, "query-secret-77", "cookie-secret-99"] {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                hits.push(format!("{secret} in {}", entry.display()));
            }
        }
    }
    assert!(hits.is_empty(), "{hits:?}");
}

#[tokio::test]
async fn admin_auth_and_loopback_rule() {
    let (_o, _a, _g, gw) = gateway(&[], None).await;
    let r = client()
        .get(format!("{}/admin/usage/summary", gw.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = client()
        .get(format!("{}/admin/usage/summary", gw.base_url))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Without a master key: loopback clients only (this test is loopback).
    let mock = MockUpstream::openai().await;
    let open = Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
    ])
    .await;
    let r = client()
        .get(format!("{}/admin/usage/summary", open.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(open.log().contains("SWITCHYARD_MASTER_KEY is not set"));
}

#[tokio::test]
async fn live_stream_delivers_and_resumes_after_reconnect() {
    let (_o, _a, _g, gw) = gateway(&[], None).await;
    let open_live = |last: Option<String>| {
        let mut rb = client()
            .get(format!("{}/admin/live/logs", gw.base_url))
            .bearer_auth(KEY);
        if let Some(l) = last {
            rb = rb.header("last-event-id", l);
        }
        rb.send()
    };
    let r = open_live(None).await.expect("live");
    assert_eq!(r.status(), 200);
    let mut s = r.bytes_stream();
    // Wait until subscribed (the ": connected" comment), then make traffic.
    let mut seen = String::new();
    while !seen.contains(": connected") {
        seen.push_str(&String::from_utf8_lossy(&s.next().await.expect("open").expect("chunk")));
    }
    assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    let first_id = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            seen.push_str(&String::from_utf8_lossy(
                &s.next().await.expect("event").expect("chunk"),
            ));
            if let Some(id) = seen.lines().find_map(|l| l.strip_prefix("id: ")) {
                if seen.contains("gpt-4o-mini") {
                    return id.to_string();
                }
            }
        }
    })
    .await
    .expect("live event");
    drop(s);
    // Two more requests while disconnected; reconnect with Last-Event-ID.
    for _ in 0..2 {
        assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    }
    // Events are published in the logging phase, after the last byte; the
    // flush waits for requests still there.
    let (s_flush, _) = admin(&gw, "POST", "/admin/runtime/flush", None).await;
    assert_eq!(s_flush, 200);
    let r = open_live(Some(first_id.clone())).await.expect("live");
    let mut s = r.bytes_stream();
    let mut text = String::new();
    while !text.contains(": connected") {
        text.push_str(&String::from_utf8_lossy(&s.next().await.expect("open").expect("chunk")));
    }
    let ids: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids.len(), 2, "replayed exactly the missed events: {text}");
    assert!(!ids.contains(&first_id.as_str()));
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn metrics_count_a_known_mix_exactly() {
    let fail = MockUpstream::start(Arc::new(|_r: &RecordedRequest| MockResponse::Json {
        status: 503,
        body: br#"{"error":{"message":"overloaded"}}"#.to_vec(),
        headers: vec![],
    }))
    .await;
    let yaml = format!(
        "providers:\n  broken:\n    type: openai\n    base_url: {}/v1\n    api_key: k\n    models: [bad-model]\n",
        fail.base_url()
    );
    let (_o, _a, _g, gw) = gateway(&[], Some(&yaml)).await;
    let scrape = || async {
        let r = client()
            .get(format!("{}/metrics", gw.base_url))
            .send()
            .await
            .expect("metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("text")
    };
    let before = scrape().await;
    for _ in 0..3 {
        assert_eq!(chat(&gw, msg("gpt-4o-mini"), &[]).await.status(), 200);
    }
    assert_eq!(chat(&gw, msg("bad-model"), &[]).await.status(), 503);
    let mut st = msg("gpt-4o-mini");
    st["stream"] = json!(true);
    let _ = chat(&gw, st, &[]).await.text().await;
    // The stream is counted in Pingora's logging phase, after its last byte
    // reached us; the flush waits for that before answering.
    flush(&gw).await;
    let after = scrape().await;
    let d = |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);
    assert_eq!(
        d("switchyard_requests_total", &["status=\"200\"", "endpoint=\"chat\""]),
        4.0,
        "{after}"
    );
    assert_eq!(d("switchyard_requests_total", &["status=\"503\""]), 1.0);
    assert_eq!(
        d(
            "switchyard_upstream_errors_total",
            &["provider=\"broken\"", "kind=\"status_5xx\""]
        ),
        1.0
    );
    assert_eq!(
        d("switchyard_request_duration_seconds_count", &["endpoint=\"chat\""]),
        5.0
    );
    assert_eq!(d("switchyard_ttft_seconds_count", &["endpoint=\"chat\""]), 1.0);
    assert!(d("switchyard_tokens_total", &["direction=\"output\""]) > 0.0);
    assert!(after.contains("switchyard_build_info"));
    // Every request above was answered and flushed; the scrape itself is
    // not model traffic, so nothing is in flight.
    assert_eq!(metric(&after, "switchyard_in_flight_requests", &[]), 0.0);
    // A rejected reload counts as a failure.
    std::fs::write(gw.data_dir.join("switchyard.yaml"), "bogus: [").expect("write");
    let (s, v) = admin(&gw, "POST", "/admin/runtime/refresh", None).await;
    assert_eq!(s, 400);
    assert!(v["errors"].as_array().is_some_and(|e| !e.is_empty()), "{v}");
    let after2 = scrape().await;
    assert!(metric(&after2, "switchyard_config_reloads_total", &["result=\"failure\""]) >= 1.0);
    assert_eq!(
        chat(&gw, msg("gpt-4o-mini"), &[]).await.status(),
        200,
        "old config keeps serving"
    );
}

#[tokio::test]
async fn model_overrides_alias_disable_pin_and_survive_restart() {
    let (oai, ant, _g, mut gw) = gateway(&[], None).await;
    let (s, v) = admin(
        &gw,
        "PUT",
        "/admin/model-overrides/smart",
        Some(json!({"target": "anthropic/claude-sonnet-4-5", "defaults": {"max_tokens": 77}})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = chat(&gw, msg("smart"), &[]).await;
    assert_eq!(r.status(), 200);
    let up = ant.requests().pop().expect("anthropic got it");
    assert_eq!(up.json()["max_tokens"], 77, "pinned default applied");
    let (s, _) = admin(
        &gw,
        "PUT",
        "/admin/model-overrides/gpt-4o-mini",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(s, 200);
    let r = chat(&gw, msg("gpt-4o-mini"), &[]).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "model_disabled");
    let (s, v) = admin(
        &gw,
        "PUT",
        "/admin/model-overrides/x",
        Some(json!({"target": "nowhere/m"})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["param"], "target");
    // Survives a restart.
    let dir = gw.data_dir.clone();
    assert!(gw.signal_and_wait(libc::SIGTERM).await.success());
    let env = [
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "k".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", oai.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
    ];
    let gw2 = Gateway::spawn(&env, None, dir, None, &[]).await;
    let (s, v) = admin(&gw2, "GET", "/admin/model-overrides", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["overrides"]["gpt-4o-mini"]["disabled"], true, "{v}");
    assert_eq!(chat(&gw2, msg("gpt-4o-mini"), &[]).await.status(), 403);
    let (s, _) = admin(&gw2, "DELETE", "/admin/model-overrides/gpt-4o-mini", None).await;
    assert_eq!(s, 200);
    assert_eq!(chat(&gw2, msg("gpt-4o-mini"), &[]).await.status(), 200);
}
