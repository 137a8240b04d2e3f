//! Retries and failover (issue 11): a provider's `retry:` tries it again
//! after a retryable failure (full-jitter backoff, or its `Retry-After` up
//! to the cap); a public model's `fallbacks:` are tried in order when its
//! target fails with a retryable error or does not know the model, through
//! translation when the fallback speaks another dialect, so the caller gets
//! the same shape it asked for. A request the provider refuses as invalid
//! is retried nowhere.

use crate::support::gateway::Gateway;
use crate::support::mock::{MockResponse, MockUpstream, RecordedRequest, Step};
use serde_json::{json, Value};
use std::sync::Arc;

fn fixture(path: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A provider replaying a recorded stream (7-byte pieces) or whole body.
async fn replay(dialect: &str) -> MockUpstream {
    let (s, w) = (
        fixture(&format!("{dialect}/text.stream.sse")),
        fixture(&format!("{dialect}/text.resp.json")),
    );
    MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["stream"] == true) {
            MockResponse::Stream {
                status: 200,
                headers: vec![],
                steps: s.chunks(7).map(|c| Step::Send(c.to_vec())).collect(),
            }
        } else {
            MockResponse::Json {
                status: 200,
                body: w.clone(),
                headers: vec![],
            }
        }
    }))
    .await
}

/// A provider answering every request with `status` and an error body.
async fn failing(status: u16) -> MockUpstream {
    MockUpstream::start(Arc::new(move |_r: &RecordedRequest| MockResponse::Json {
        status,
        body: br#"{"error":{"message":"not today","type":"server_error"}}"#.to_vec(),
        headers: vec![],
    }))
    .await
}

async fn gateway(openai: &MockUpstream, anthropic: &MockUpstream, fallbacks: &str) -> Gateway {
    let env = [
        ("OPENAI_API_KEY", "sk-openai-provider".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.base_url())),
        ("OPENAI_MODELS", "gpt-4o".to_string()),
        ("ANTHROPIC_API_KEY", "sk-ant-provider".to_string()),
        ("ANTHROPIC_BASE_URL", anthropic.base_url()),
        ("ANTHROPIC_MODELS", "claude-sonnet-4-5".to_string()),
    ];
    Gateway::start_with(&env, Some(&format!("fallbacks:\n{fallbacks}"))).await
}

async fn post(gw: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gw.base_url))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// A one-message Chat Completions request for `model`.
fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn header<'r>(r: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn an_openai_caller_is_served_by_an_anthropic_fallback_in_openai_shape() {
    let (openai, anthropic) = (failing(503).await, replay("anthropic").await);
    let gw = gateway(&openai, &anthropic, "  gpt-4o: [anthropic/claude-sonnet-4-5]\n").await;
    let body = chat("gpt-4o");
    let r = post(&gw, "/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-provider"), Some("anthropic"));
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("2"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    assert_eq!(openai.requests().len(), 1, "no retry of the failed target");
    assert_eq!(anthropic.requests()[0].json()["model"], "claude-sonnet-4-5");

    // Streamed: OpenAI chunks to the end, `[DONE]` last.
    let mut st = body;
    st["stream"] = json!(true);
    let r = post(&gw, "/v1/chat/completions", st).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("2"));
    let text = r.text().await.expect("text");
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"), "{text}");
    assert!(
        chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{text}"
    );
}

#[tokio::test]
async fn an_anthropic_caller_is_served_by_an_openai_fallback_in_anthropic_shape() {
    let (openai, anthropic) = (replay("openai").await, failing(529).await);
    let gw = gateway(&openai, &anthropic, "  claude-sonnet-4-5: [openai/gpt-4o]\n").await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-provider"), Some("openai"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"][0]["type"], "text", "{v}");
    assert_eq!(openai.requests()[0].json()["model"], "gpt-4o");
}

#[tokio::test]
async fn a_model_the_provider_does_not_know_fails_over() {
    let (openai, anthropic) = (failing(404).await, replay("anthropic").await);
    let gw = gateway(&openai, &anthropic, "  gpt-4o: [anthropic/claude-sonnet-4-5]\n").await;
    let r = post(&gw, "/v1/chat/completions", chat("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-provider"), Some("anthropic"));
}

#[tokio::test]
async fn an_invalid_request_fails_over_nowhere() {
    let (openai, anthropic) = (failing(400).await, replay("anthropic").await);
    let gw = gateway(&openai, &anthropic, "  gpt-4o: [anthropic/claude-sonnet-4-5]\n").await;
    let r = post(&gw, "/v1/chat/completions", chat("gpt-4o")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("1"));
    let v: Value = r.json().await.expect("json");
    assert!(v["error"]["message"].as_str().is_some(), "{v}");
    assert!(anthropic.requests().is_empty(), "a 400 would fail everywhere");
}

#[tokio::test]
async fn when_every_target_fails_the_caller_gets_the_last_error_and_the_count() {
    let (openai, anthropic) = (failing(503).await, failing(529).await);
    let gw = gateway(&openai, &anthropic, "  gpt-4o: [anthropic/claude-sonnet-4-5]\n").await;
    let r = post(&gw, "/v1/chat/completions", chat("gpt-4o")).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("2"));
    assert_eq!((openai.requests().len(), anthropic.requests().len()), (1, 1));
}

#[tokio::test]
async fn a_provider_refusing_the_gateways_key_fails_over() {
    let (openai, anthropic) = (failing(401).await, replay("anthropic").await);
    let gw = gateway(&openai, &anthropic, "  gpt-4o: [anthropic/claude-sonnet-4-5]\n").await;
    let r = post(&gw, "/v1/chat/completions", chat("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-provider"), Some("anthropic"));
}

/// A provider answering `first` (status, extra headers) to its first
/// `n` requests, then the recorded OpenAI text response.
async fn flaky(n: usize, status: u16, headers: Vec<(String, String)>) -> MockUpstream {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ok = fixture("openai/text.resp.json");
    MockUpstream::start(Arc::new(move |_r: &RecordedRequest| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
            MockResponse::Json {
                status,
                body: br#"{"error":{"message":"busy","type":"server_error"}}"#.to_vec(),
                headers: headers.clone(),
            }
        } else {
            MockResponse::Json {
                status: 200,
                body: ok.clone(),
                headers: vec![],
            }
        }
    }))
    .await
}

async fn retrying(mock: &MockUpstream, retry: &str) -> Gateway {
    let yaml = format!(
        "providers:\n  flaky:\n    type: openai\n    base_url: {}/v1\n    api_key: k\n    models: [m]\n    retry: {retry}\n",
        mock.base_url()
    );
    Gateway::start_with(&[], Some(&yaml)).await
}

#[tokio::test]
async fn a_provider_failing_twice_is_retried_to_success() {
    let mock = flaky(2, 503, vec![]).await;
    let gw = retrying(&mock, "{attempts: 3, backoff_ms: 1}").await;
    let r = post(&gw, "/v1/chat/completions", chat("m")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("3"));
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn retries_stop_at_the_configured_attempts() {
    let mock = flaky(5, 502, vec![]).await;
    let gw = retrying(&mock, "{attempts: 2, backoff_ms: 1}").await;
    let r = post(&gw, "/v1/chat/completions", chat("m")).await;
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("2"));
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let wait = vec![("retry-after".to_string(), "1".to_string())];
    let mock = flaky(1, 429, wait.clone()).await;
    let gw = retrying(&mock, "{attempts: 2, backoff_ms: 1, max_backoff_ms: 5000}").await;
    let started = std::time::Instant::now();
    let r = post(&gw, "/v1/chat/completions", chat("m")).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(mock.requests().len(), 2);

    // Asked for more than the cap: no wait, no retry; the caller sees the 429
    // and the provider's Retry-After.
    let long = vec![("retry-after".to_string(), "30".to_string())];
    let mock = flaky(1, 429, long).await;
    let gw = retrying(&mock, "{attempts: 3, backoff_ms: 1, max_backoff_ms: 1000}").await;
    let r = post(&gw, "/v1/chat/completions", chat("m")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("30"));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn an_invalid_request_is_not_retried() {
    let mock = flaky(5, 400, vec![]).await;
    let gw = retrying(&mock, "{attempts: 3, backoff_ms: 1}").await;
    let r = post(&gw, "/v1/chat/completions", chat("m")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_prompt_too_long_skips_to_a_fallback_with_a_larger_window() {
    let openai = MockUpstream::start(Arc::new(|_r: &RecordedRequest| MockResponse::Json {
        status: 400,
        body: br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 190000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#.to_vec(),
        headers: vec![],
    }))
    .await;
    let anthropic = replay("anthropic").await;
    // gpt-4o-mini has the same 128k window as gpt-4o, so it is skipped;
    // claude-sonnet-4-5's window is larger.
    let gw = gateway(
        &openai,
        &anthropic,
        "  gpt-4o: [openai/gpt-4o-mini, anthropic/claude-sonnet-4-5]\n",
    )
    .await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "a long prompt"}]});
    let r = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-provider"), Some("anthropic"));
    assert_eq!(header(&r, "x-switchyard-attempts"), Some("2"));
    assert_eq!(openai.requests().len(), 1, "the 128k fallback was skipped");
}

/// The official Python SDKs' stream helpers (and plain calls) accept an
/// answer a fallback gave in the other dialect (tests/python/test_failover_sdk.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdks_accept_answers_served_by_a_fallback_in_the_other_dialect() {
    use crate::support::mock_anthropic::anthropic;
    const KEY: &str = "sk-switchyard-failover-sdk";
    let (openai, ant) = (MockUpstream::openai().await, anthropic().await);
    let (openai_down, ant_down) = (failing(503).await, failing(529).await);
    let env = [
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("OPENAI_API_KEY", "sk-openai-provider".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.base_url())),
        ("OPENAI_DOWN_API_KEY", "sk-openai-down".to_string()),
        ("OPENAI_DOWN_BASE_URL", format!("{}/v1", openai_down.base_url())),
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_string()),
        ("ANTHROPIC_BASE_URL", ant.base_url()),
        ("ANTHROPIC_DOWN_API_KEY", "sk-ant-down".to_string()),
        ("ANTHROPIC_DOWN_BASE_URL", ant_down.base_url()),
    ];
    let yaml = "fallbacks:\n  openai-down/gpt-4o: [anthropic/claude-sonnet-4-5]\n  anthropic-down/claude-sonnet-4-5: [openai/gpt-4o-mini]\n";
    let gw = Gateway::start_with(&env, Some(yaml)).await;
    crate::support::pytest::run(
        &gw,
        &["tests/python/test_failover_sdk.py"],
        &[
            ("SWITCHYARD_BASE_URL", gw.base_url.clone()),
            ("SWITCHYARD_API_KEY", KEY.to_string()),
            ("SWITCHYARD_FAILOVER_OPENAI_MODEL", "openai-down/gpt-4o".to_string()),
            (
                "SWITCHYARD_FAILOVER_ANTHROPIC_MODEL",
                "anthropic-down/claude-sonnet-4-5".to_string(),
            ),
        ],
    )
    .await;
    // Every SDK call tried the failing provider first, then the fallback
    // (model discovery's GETs aside).
    let posts = |m: &MockUpstream| -> Vec<Value> {
        m.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.json()["model"].clone())
            .collect()
    };
    assert_eq!(posts(&openai_down), [json!("gpt-4o"), json!("gpt-4o")]);
    assert_eq!(
        posts(&ant_down),
        [json!("claude-sonnet-4-5"), json!("claude-sonnet-4-5")]
    );
    assert_eq!(posts(&ant).len(), 2);
    assert_eq!(posts(&openai), [json!("gpt-4o-mini"), json!("gpt-4o-mini")]);
}
