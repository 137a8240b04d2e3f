//! Hardening (issue 10): hostile callers and providers at the edges —
//! credentials never echoed, attribution that cannot climb, case-insensitive
//! auth schemes, percent-encoded admin paths.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, MockResponse, MockUpstream, RecordedRequest};
use serde_json::{json, Value};
use std::sync::Arc;

const KEY: &str = "sy-hardening-master-0001";
const PROVIDER_KEY: &str = "sk-hardening-provider-9876";

/// A provider that quotes the credential it was sent for model `quote-key`,
/// and answers normally otherwise.
fn quoting_provider(r: &RecordedRequest) -> MockResponse {
    let model = r.json()["model"].as_str().unwrap_or("").to_string();
    if model == "quote-key" {
        let sent = r.header("authorization").unwrap_or("").to_string();
        return MockResponse::json(
            401,
            &json!({"error": {"message": format!("Incorrect API key provided: {sent}. Key {PROVIDER_KEY} is invalid."),
                "type": "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    MockResponse::json(200, &openai_chat_completion(&model, "fine", (3, 1)))
}

struct Setup {
    gw: Gateway,
    c: reqwest::Client,
    _mock: MockUpstream,
}

async fn setup() -> Setup {
    let mock = MockUpstream::start(Arc::new(quoting_provider)).await;
    let gw = Gateway::start(&[
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", PROVIDER_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "quote-key,gpt-4o-mini".to_string()),
    ])
    .await;
    Setup {
        gw,
        c: reqwest::Client::new(),
        _mock: mock,
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// Lands every queued record in the store, so the admin API sees it.
async fn flush(s: &Setup) {
    let r =
        s.c.post(format!("{}/admin/runtime/flush", s.gw.base_url))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 200);
}

async fn admin_get(s: &Setup, path: &str) -> Value {
    let r =
        s.c.get(format!("{}{path}", s.gw.base_url))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

#[tokio::test]
async fn a_provider_quoting_its_credential_never_reaches_the_caller_the_log_or_the_store() {
    let s = setup().await;
    let r =
        s.c.post(format!("{}/v1/chat/completions", s.gw.base_url))
            .bearer_auth(KEY)
            .json(&chat("quote-key"))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 502, "the gateway's own credential failed");
    let text = r.text().await.expect("body");
    assert!(text.contains("Incorrect API key provided"), "{text}");
    assert!(!text.contains(PROVIDER_KEY), "caller saw the key: {text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    flush(&s).await;
    let log = admin_get(&s, "/admin/usage/log").await;
    let audit = admin_get(&s, "/admin/audit/log").await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
    for stored in [log.to_string(), audit.to_string(), s.gw.log()] {
        assert!(!stored.contains(PROVIDER_KEY), "stored: {stored}");
        assert!(!stored.contains(KEY), "stored: {stored}");
    }
}

#[tokio::test]
async fn the_master_key_in_a_query_string_is_not_stored() {
    let s = setup().await;
    for q in [
        format!("x-api-key={KEY}"),
        format!("session=abc&note={KEY}"),
        "client_secret=hunter2".into(),
    ] {
        let r =
            s.c.post(format!("{}/v1/chat/completions?{q}", s.gw.base_url))
                .bearer_auth(KEY)
                .json(&chat("gpt-4o-mini"))
                .send()
                .await
                .expect("send");
        assert_eq!(r.status(), 200);
    }
    flush(&s).await;
    let audit = admin_get(&s, "/admin/audit/log").await;
    let paths: Vec<&str> = audit["data"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(paths.len(), 3, "{audit}");
    for p in &paths {
        assert!(!p.contains(KEY) && !p.contains("hunter2") && !p.contains("abc"), "{p}");
        assert!(p.contains("[REDACTED]"), "{p}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let s = setup().await;
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let r =
            s.c.post(format!("{}/v1/chat/completions", s.gw.base_url))
                .header("authorization", format!("{scheme} {KEY}"))
                .json(&chat("gpt-4o-mini"))
                .send()
                .await
                .expect("send");
        assert_eq!(r.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn user_paths_cannot_climb_and_attribution_is_sent_once() {
    let s = setup().await;
    for p in ["/../etc", "/acme/..", "/acme/./ml", "/."] {
        let r =
            s.c.post(format!("{}/v1/chat/completions", s.gw.base_url))
                .bearer_auth(KEY)
                .header("x-switchyard-user-path", p)
                .json(&chat("gpt-4o-mini"))
                .send()
                .await
                .expect("send");
        assert_eq!(r.status(), 400, "{p}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let r =
        s.c.post(format!("{}/v1/chat/completions", s.gw.base_url))
            .bearer_auth(KEY)
            .header("x-switchyard-user-path", "/acme/a")
            .header("x-switchyard-user-path", "/acme/b")
            .json(&chat("gpt-4o-mini"))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["param"], "x-switchyard-user-path", "{v}");
    let rows = admin_get(&s, "/admin/usage/user-paths").await;
    assert!(!rows.to_string().contains(".."), "{rows}");
}

#[tokio::test]
async fn admin_model_override_names_are_percent_decoded() {
    let s = setup().await;
    let r =
        s.c.put(format!("{}/admin/model-overrides/openai%2Fgpt-4o-mini", s.gw.base_url))
            .bearer_auth(KEY)
            .json(&json!({"disabled": true}))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 200);
    let v = admin_get(&s, "/admin/model-overrides").await;
    assert_eq!(v["overrides"]["openai/gpt-4o-mini"]["disabled"], true, "{v}");
    assert!(v["overrides"].get("openai%2Fgpt-4o-mini").is_none(), "{v}");
    let r =
        s.c.put(format!("{}/admin/model-overrides/bad%zz", s.gw.base_url))
            .bearer_auth(KEY)
            .json(&json!({"disabled": true}))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_data_dir_holds_a_pid_file_naming_the_serving_process() {
    let s = setup().await;
    let text = std::fs::read_to_string(s.gw.data_dir.join("switchyard.pid")).expect("pid file");
    assert_eq!(text.trim().parse::<u32>().ok(), Some(s.gw.pid()), "{text:?}");
}
