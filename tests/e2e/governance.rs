//! Governance (issue 12): managed keys (`sk-sy-…`, shown once, stored as a
//! hash), their grants (models, endpoints, user path), per-key and
//! per-scope rate limits with OpenAI's headers, and budgets — each refusal
//! a 429/403/401 in the caller's dialect.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_stream_steps, MockResponse, MockUpstream, RecordedRequest, Step};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;

const MASTER: &str = "mk-governance-master";

async fn gateway(openai: &MockUpstream, yaml: Option<&str>) -> Gateway {
    let env = [
        ("SWITCHYARD_MASTER_KEY", MASTER.to_string()),
        ("OPENAI_API_KEY", "sk-openai-provider-secret".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini,gpt-4o".to_string()),
    ];
    Gateway::start_with(&env, yaml).await
}

async fn admin(gw: &Gateway, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{}{path}", gw.base_url))
        .bearer_auth(MASTER);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("send");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Creates a key through the admin API; returns (id, secret).
async fn create_key(gw: &Gateway, body: Value) -> (String, String) {
    let (s, v) = admin(gw, reqwest::Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().expect("secret shown once").to_string();
    assert!(key.starts_with("sk-sy-") && key.len() >= 6 + 43, "{key}");
    (v["id"].as_str().expect("id").to_string(), key)
}

async fn flush(gw: &Gateway) {
    let (s, v) = admin(gw, reqwest::Method::POST, "/admin/runtime/flush", None).await;
    assert_eq!(s, 200, "{v}");
}

async fn call(gw: &Gateway, key: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gw.base_url))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// The status of a chat request for `model` made with `key`.
async fn chat_status(gw: &Gateway, key: &str, model: &str) -> u16 {
    call(gw, key, "/v1/chat/completions", chat(model))
        .await
        .status()
        .as_u16()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

fn messages(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]})
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[tokio::test]
async fn the_sixth_request_in_a_minute_is_429_with_retry_after_in_each_dialect() {
    let mock = MockUpstream::openai().await;
    let gw = gateway(&mock, None).await;
    let (_, key) = create_key(&gw, json!({"name": "five-a-minute", "limits": {"rpm": 5}})).await;
    for i in 0..5 {
        let r = call(&gw, &key, "/v1/chat/completions", chat("gpt-4o-mini")).await;
        assert_eq!(r.status(), 200, "request {i}");
        // The gateway's own limit replaces the provider's headers.
        assert_eq!(header(&r, "x-ratelimit-limit-requests").as_deref(), Some("5"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests"),
            Some((4 - i).to_string()),
            "request {i}"
        );
        assert!(header(&r, "x-ratelimit-reset-requests").is_some_and(|v| v.ends_with('s')));
    }
    let r = call(&gw, &key, "/v1/chat/completions", chat("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=61).contains(&retry), "{retry}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "requests");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("five-a-minute")));

    // The Anthropic envelope on /v1/messages.
    let (_, key) = create_key(&gw, json!({"name": "one-a-minute", "limits": {"rpm": 1}})).await;
    assert_eq!(
        call(&gw, &key, "/v1/messages", messages("gpt-4o-mini")).await.status(),
        200
    );
    let r = call(&gw, &key, "/v1/messages", messages("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    // The refused requests never reached the provider: 5 + 1.
    assert_eq!(mock.requests().len(), 6);
}

#[tokio::test]
async fn a_key_may_use_only_its_models_and_endpoints() {
    let mock = MockUpstream::openai().await;
    let gw = gateway(&mock, None).await;
    let (_, key) = create_key(
        &gw,
        json!({"name": "mini-only", "models": ["openai/gpt-4o-mini"], "endpoints": ["chat", "models"]}),
    )
    .await;
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 200);
    let r = call(&gw, &key, "/v1/chat/completions", chat("gpt-4o")).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "model_not_allowed", "{v}");
    let r = call(&gw, &key, "/v1/messages", messages("gpt-4o-mini")).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    // The model list shows what the key may use.
    let v: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gw.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"openai/gpt-4o-mini") && !ids.iter().any(|i| i.contains("gpt-4o") && !i.contains("mini")),
        "{ids:?}"
    );
    // Only a key made with `admin: true` may use the admin API.
    let (_, ops) = create_key(&gw, json!({"name": "ops", "admin": true})).await;
    for (k, want) in [(&key, 401), (&ops, 200)] {
        let r = reqwest::Client::new()
            .get(format!("{}/admin/keys", gw.base_url))
            .bearer_auth(k)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), want);
    }
}

#[tokio::test]
async fn revoked_disabled_and_rotated_keys_change_at_once() {
    let mock = MockUpstream::openai().await;
    let gw = gateway(&mock, None).await;
    let (id, key) = create_key(&gw, json!({"name": "short-lived"})).await;
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 200);
    // Disabled: refused on the very next request.
    let (s, v) = admin(
        &gw,
        reqwest::Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((s, v["disabled"].clone()), (200, json!(true)), "{v}");
    let r = call(&gw, &key, "/v1/chat/completions", chat("gpt-4o-mini")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.contains("disabled")),
        "{v}"
    );
    admin(
        &gw,
        reqwest::Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 200);
    // Rotated with a grace period: both secrets work; without one, only the new.
    let (s, v) = admin(
        &gw,
        reqwest::Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        Some(json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let new_key = v["key"].as_str().expect("new secret").to_string();
    assert_ne!(new_key, key);
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 200);
    assert_eq!(chat_status(&gw, &new_key, "gpt-4o-mini").await, 200);
    let (_, v) = admin(&gw, reqwest::Method::POST, &format!("/admin/keys/{id}/rotate"), None).await;
    let newest = v["key"].as_str().expect("newest").to_string();
    assert_eq!(chat_status(&gw, &new_key, "gpt-4o-mini").await, 401);
    assert_eq!(chat_status(&gw, &newest, "gpt-4o-mini").await, 200);
    // Revoked.
    let (s, _) = admin(&gw, reqwest::Method::DELETE, &format!("/admin/keys/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(chat_status(&gw, &newest, "gpt-4o-mini").await, 401);
    let (s, _) = admin(&gw, reqwest::Method::GET, &format!("/admin/keys/{id}"), None).await;
    assert_eq!(s, 404);
    // Expired keys are refused too.
    let (_, old) = create_key(&gw, json!({"name": "expired", "expires_at": "2020-01-01"})).await;
    assert_eq!(chat_status(&gw, &old, "gpt-4o-mini").await, 401);
}

#[tokio::test]
async fn a_tiny_budget_is_spent_then_refused_and_stays_spent_after_a_restart() {
    let mock = MockUpstream::openai().await;
    // $1000 per million tokens: a short chat costs several thousandths.
    let yaml = "prices:\n  openai/gpt-4o-mini: {input: 1000, output: 1000}\n";
    let mut gw = gateway(&mock, Some(yaml)).await;
    let (_, key) = create_key(&gw, json!({"name": "tiny", "budget": {"usd": 0.001, "period": "day"}})).await;
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 200);
    // Spend is settled when the request's record is made (after its last
    // byte); the flush waits for that.
    flush(&gw).await;
    let r = call(&gw, &key, "/v1/chat/completions", chat("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=86_400).contains(&retry), "{retry}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "budget_exceeded");
    let m = v["error"]["message"].as_str().unwrap_or("");
    assert!(m.contains("tiny") && m.contains("day"), "{m}");
    // Anthropic callers get their envelope.
    let r = call(&gw, &key, "/v1/messages", messages("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["type"].clone(), v["error"]["type"].clone()),
        (json!("error"), json!("budget_exceeded"))
    );
    // The key sees its own spend.
    let u: Value = reqwest::Client::new()
        .get(format!("{}/v1/usage", gw.base_url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(u["spend_usd"].as_f64().is_some_and(|s| s > 0.001), "{u}");
    assert_eq!(u["budget"]["remaining_usd"], json!(0.0), "{u}");
    assert_eq!(u["key"]["name"], "tiny");
    // Spend survives a restart.
    let dir = gw.data_dir.clone();
    assert!(gw.signal_and_wait(libc::SIGTERM).await.success());
    let env = [
        ("SWITCHYARD_MASTER_KEY", MASTER.to_string()),
        ("OPENAI_API_KEY", "sk-openai-provider-secret".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
    ];
    let gw2 = Gateway::spawn(&env, Some(yaml), dir, None, &[]).await;
    let r = call(&gw2, &key, "/v1/chat/completions", chat("gpt-4o-mini")).await;
    assert_eq!(r.status(), 429, "the key and its spend came back");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn concurrency_two_admits_two_streams_at_a_time() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let mock = MockUpstream::start(Arc::new(move |_r: &RecordedRequest| {
        let mut steps = vec![Step::Wait(g.clone())];
        steps.extend(openai_stream_steps("gpt-4o-mini", &["slow", " reply"], false));
        MockResponse::sse(steps)
    }))
    .await;
    let gw = gateway(&mock, None).await;
    let (_, key) = create_key(&gw, json!({"name": "two-at-a-time", "limits": {"concurrency": 2}})).await;
    let stream = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (base, key, body) = (gw.base_url.clone(), key.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("send")
        }));
    }
    // Every head arrives while the two admitted streams are held open.
    let mut ok = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status().as_u16() {
            200 => ok.push(r),
            429 => {
                let v: Value = r.json().await.expect("json");
                assert!(
                    v["error"]["message"].as_str().is_some_and(|m| m.contains("in flight")),
                    "{v}"
                );
                refused += 1;
            }
            s => panic!("status {s}"),
        }
    }
    assert_eq!((ok.len(), refused), (2, 8));
    gate.close();
    for r in ok {
        let text = r.text().await.expect("body");
        assert!(text.contains("[DONE]"), "{text}");
    }
    // Both finished: there is room again (released in the logging phase,
    // which the flush waits for).
    admin(&gw, reqwest::Method::POST, "/admin/runtime/flush", None).await;
    let r = call(&gw, &key, "/v1/chat/completions", stream.clone()).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn config_keys_by_hash_narrow_user_paths_and_leave_no_secret_anywhere() {
    let mock = MockUpstream::openai().await;
    let secret = "sk-sy-declared-in-the-config-file-0123456789abcdef";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["keys", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(secret.as_bytes())?;
            c.wait_with_output()
        })
        .expect("keys hash");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf8").trim().to_string();
    assert!(hash.starts_with("sha256:") && !hash.contains(secret), "{hash}");
    let yaml = format!(
        "keys:\n  - {{name: checkout-app, hash: \"{hash}\", user_path: /acme/checkout, tags: {{app: checkout}}, limits: {{rpm: 600}}}}\n"
    );
    let gw = gateway(&mock, Some(&yaml)).await;
    assert_eq!(chat_status(&gw, secret, "gpt-4o-mini").await, 200);
    let narrow = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .bearer_auth(secret)
        .header("x-switchyard-user-path", "/acme/checkout/u1")
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .expect("send");
    assert_eq!(narrow.status(), 200);
    let wider = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .bearer_auth(secret)
        .header("x-switchyard-user-path", "/acme")
        .json(&chat("gpt-4o-mini"))
        .send()
        .await
        .expect("send");
    assert_eq!(wider.status(), 403);
    let v: Value = wider.json().await.expect("json");
    assert_eq!(v["error"]["code"], "user_path_not_allowed", "{v}");
    // A key declared in the file is changed in the file.
    let (s, list) = admin(&gw, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(s, 200);
    let id = list["data"][0]["id"].as_str().expect("id").to_string();
    assert_eq!(list["data"][0]["source"], "config");
    let (s, _) = admin(&gw, reqwest::Method::DELETE, &format!("/admin/keys/{id}"), None).await;
    assert_eq!(s, 409);
    // Usage records carry the key id, its name, its user path and tags.
    let (_, created) = create_key(&gw, json!({"name": "api-made"})).await;
    assert_eq!(chat_status(&gw, &created, "gpt-4o-mini").await, 200);
    admin(&gw, reqwest::Method::POST, "/admin/runtime/flush", None).await;
    let (_, log) = admin(&gw, reqwest::Method::GET, "/admin/usage/log?limit=10", None).await;
    let recs = log["data"].as_array().expect("records");
    assert_eq!(recs.len(), 3, "{log}");
    let by_name = |n: &str| recs.iter().filter(|r| r["key_name"] == n).count();
    assert_eq!((by_name("checkout-app"), by_name("api-made")), (2, 1), "{log}");
    assert!(recs
        .iter()
        .all(|r| r["key_id"].as_str().is_some_and(|k| k.starts_with("key_"))));
    assert!(recs.iter().any(|r| r["user_path"] == "/acme/checkout/u1"));
    assert!(recs
        .iter()
        .filter(|r| r["key_name"] == "checkout-app")
        .all(|r| r["tags"].to_string().contains("checkout")));
    // The admin change is audited.
    let (_, audit) = admin(&gw, reqwest::Method::GET, "/admin/audit/log?limit=50", None).await;
    assert!(audit.to_string().contains("key.create"), "{audit}");
    // No secret in any answer, file or log line.
    let (_, keys) = admin(&gw, reqwest::Method::GET, "/admin/keys", None).await;
    let keys = keys.to_string();
    for s in [secret, created.as_str(), MASTER, "sk-openai-provider-secret"] {
        assert!(!keys.contains(s), "admin list leaks {s}");
        assert!(!gw.log().contains(s), "log leaks {s}");
        for f in crate::support::walk(&gw.data_dir) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds {s}",
                f.display()
            );
        }
    }
    assert!(!keys.contains(&hash), "hashes stay inside");
}

#[tokio::test]
async fn scope_limits_and_path_budgets_from_yaml_and_the_admin_api() {
    let mock = MockUpstream::openai().await;
    let yaml = "limits:\n  models:\n    gpt-4o: {rpm: 1}\n  user_paths:\n    /team: {rpm: 2}\nprices:\n  openai/gpt-4o-mini: {input: 1000, output: 1000}\n";
    let gw = gateway(&mock, Some(yaml)).await;
    let post = |model: &str, path: Option<&str>| {
        let mut rb = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", gw.base_url))
            .bearer_auth(MASTER)
            .json(&chat(model));
        if let Some(p) = path {
            rb = rb.header("x-switchyard-user-path", p);
        }
        rb.send()
    };
    assert_eq!(post("gpt-4o", None).await.expect("send").status(), 200);
    assert_eq!(post("gpt-4o", None).await.expect("send").status(), 429, "model limit");
    // The subtree shares one counter.
    assert_eq!(post("gpt-4o-mini", Some("/team/a")).await.expect("send").status(), 200);
    assert_eq!(post("gpt-4o-mini", Some("/team/b")).await.expect("send").status(), 200);
    let r = post("gpt-4o-mini", Some("/team/c")).await.expect("send");
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.contains("/team")),
        "{v}"
    );
    // An admin budget on another subtree, with a soft threshold.
    let (s, b) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/budgets",
        Some(json!({"user_path": "/shop", "usd": 0.05, "period": "month", "soft": 0.5})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/budgets",
        Some(json!({"user_path": "/shop", "usd": 1, "period": "month"})),
    )
    .await;
    assert_eq!(s, 409, "one budget per path and period");
    // Spend until refused: each answer before the soft threshold has no
    // warning, each after it has one, then the budget refuses.
    let mut warned = 0;
    let mut served = 0;
    loop {
        let r = post("gpt-4o-mini", Some("/shop/u1")).await.expect("send");
        if r.status() == 429 {
            break;
        }
        assert_eq!(r.status(), 200);
        served += 1;
        if header(&r, "x-switchyard-budget-warning").is_some_and(|w| w.contains("/shop")) {
            warned += 1;
        } else {
            assert_eq!(warned, 0, "a warning, once given, is given until the budget is spent");
        }
        flush(&gw).await;
        assert!(served < 100, "the budget never refused");
    }
    assert!(served >= 2 && warned >= 1, "served {served}, warned {warned}");
    let (_, list) = admin(&gw, reqwest::Method::GET, "/admin/budgets", None).await;
    let shop = &list["data"][0];
    assert!(shop["spent_usd"].as_f64().is_some_and(|s| s >= 0.05), "{list}");
    let id = shop["id"].as_str().expect("id");
    let (s, _) = admin(&gw, reqwest::Method::DELETE, &format!("/admin/budgets/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(post("gpt-4o-mini", Some("/shop")).await.expect("send").status(), 200);
}

/// Load against one key whose limits fit it exactly: 32 clients at once,
/// 320 requests, `rpm: 320`, `concurrency: 32`. Not one is refused, each
/// admission sees its own count (the remaining-requests headers are
/// exactly 319 down to 0, each once), and the 321st is refused.
#[tokio::test]
async fn thirty_two_clients_at_a_limit_that_fits_get_no_spurious_429() {
    let mock = MockUpstream::openai().await;
    let gw = gateway(&mock, None).await;
    let body = json!({"name": "busy", "limits": {"rpm": 320, "tpm": 100_000_000, "concurrency": 32},
        "budget": {"usd": 1000, "period": "day"}});
    let (_, key) = create_key(&gw, body).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (url, key) = (format!("{}/v1/chat/completions", gw.base_url), key.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut seen = Vec::new();
                for _ in 0..10 {
                    let r = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&chat("gpt-4o-mini"))
                        .send()
                        .await
                        .expect("send");
                    let remaining = header(&r, "x-ratelimit-remaining-requests");
                    seen.push((r.status().as_u16(), remaining));
                    r.bytes().await.expect("body");
                }
                seen
            })
        })
        .collect();
    let mut remaining = Vec::new();
    for t in tasks {
        for (status, left) in t.await.expect("task") {
            assert_eq!(status, 200, "a spurious refusal (remaining {left:?})");
            remaining.push(
                left.and_then(|v| v.parse::<u32>().ok())
                    .expect("x-ratelimit-remaining-requests"),
            );
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..320).collect::<Vec<u32>>());
    assert_eq!(chat_status(&gw, &key, "gpt-4o-mini").await, 429);
    assert_eq!(mock.requests().len(), 320);
}
