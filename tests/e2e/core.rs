//! Routing, credentials, body size, embeddings, models, keep-alive.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, MockResponse, MockUpstream};
use serde_json::{json, Value};
use std::sync::Arc;

pub const MASTER: &str = "sy-master-key";

/// Mock + gateway with one `openai` provider listing `gpt-4o-mini` and an
/// embedding model, master key required.
pub async fn setup(extra: &[(&str, String)]) -> (MockUpstream, Gateway) {
    let mock = MockUpstream::openai().await;
    let mut env = vec![
        ("OPENAI_API_KEY", "sk-provider-1".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini,text-embedding-3-small".to_string()),
        ("SWITCHYARD_MASTER_KEY", MASTER.to_string()),
    ];
    env.extend(extra.iter().cloned());
    let gw = Gateway::start(&env).await;
    (mock, gw)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

pub async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", gw.base_url))
        .bearer_auth(MASTER)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn bare_model_routes_and_provider_key_replaces_callers() {
    let (mock, gw) = setup(&[]).await;
    let (status, v) = post(&gw, "/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let reqs = mock.requests();
    let r = reqs.last().expect("upstream saw the request");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-provider-1"));
    assert!(
        !format!("{:?}", r.headers).contains(MASTER),
        "caller key leaked upstream"
    );
    assert_eq!(r.json()["model"], "gpt-4o-mini");
    assert!(
        r.json().get("stream_options").is_none(),
        "non-stream request must not get stream_options"
    );
}

#[tokio::test]
async fn prefix_alias_suffixed_instance_and_key_rotation() {
    let east = MockUpstream::openai().await;
    let main = MockUpstream::openai().await;
    let yaml = "aliases:\n  fast: openai-east/east-model\n";
    let env = vec![
        ("OPENAI_API_KEY", "sk-a".to_string()),
        ("OPENAI_API_KEY_2", "sk-b".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", main.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
        ("OPENAI_EAST_API_KEY", "sk-east".to_string()),
        ("OPENAI_EAST_BASE_URL", format!("{}/v1", east.base_url())),
        ("OPENAI_EAST_MODELS", "east-model".to_string()),
        ("SWITCHYARD_MASTER_KEY", MASTER.to_string()),
    ];
    let gw = Gateway::start_with(&env, Some(yaml)).await;

    // provider/model prefix selects the instance and strips the prefix.
    let (s, v) = post(&gw, "/v1/chat/completions", &chat("openai-east/any-model")).await;
    assert_eq!(s, 200, "{v}");
    let r = east.requests().pop().expect("east got it");
    assert_eq!(r.json()["model"], "any-model");
    assert_eq!(r.header("authorization"), Some("Bearer sk-east"));

    // Alias.
    let (s, _) = post(&gw, "/v1/chat/completions", &chat("fast")).await;
    assert_eq!(s, 200);
    assert_eq!(east.requests().pop().expect("east").json()["model"], "east-model");

    // Bare name of the suffixed instance.
    let (s, _) = post(&gw, "/v1/chat/completions", &chat("east-model")).await;
    assert_eq!(s, 200);
    assert_eq!(east.requests().len(), 3);

    // Key rotation on the main instance: consecutive requests alternate keys.
    for _ in 0..4 {
        let (s, _) = post(&gw, "/v1/chat/completions", &chat("gpt-4o-mini")).await;
        assert_eq!(s, 200);
    }
    let keys: Vec<String> = main
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(keys, ["Bearer sk-a", "Bearer sk-b", "Bearer sk-a", "Bearer sk-b"]);
}

#[tokio::test]
async fn five_mib_body_is_routed_by_model_and_proxied_whole() {
    let (mock, gw) = setup(&[]).await;
    let big = "x".repeat(5 * 1024 * 1024);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]});
    let (status, v) = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{v}");
    let r = mock.requests().pop().expect("upstream got it");
    let got = r.json();
    assert_eq!(
        got["messages"][0]["content"].as_str().map(str::len),
        Some(5 * 1024 * 1024)
    );
    assert_eq!(
        r.header("content-length").map(|c| c.parse::<usize>().ok()),
        Some(Some(r.body.len()))
    );
}

#[tokio::test]
async fn keep_alive_reuses_one_upstream_connection() {
    let (mock, gw) = setup(&[]).await;
    for _ in 0..5 {
        let (s, _) = post(&gw, "/v1/chat/completions", &chat("gpt-4o-mini")).await;
        assert_eq!(s, 200);
    }
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(mock.connections(), 1, "upstream connections must be pooled");
}

#[tokio::test]
async fn embeddings_honour_encoding_format_even_when_upstream_ignores_it() {
    // A provider that always answers floats, whatever was asked.
    let handler = Arc::new(|_r: &crate::support::mock::RecordedRequest| {
        MockResponse::Json {
        status: 200,
        body: json!({"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.25, 3.0]}], "usage": {"prompt_tokens": 3, "total_tokens": 3}})
            .to_string()
            .into_bytes(),
        headers: vec![],
    }
    });
    let mock = MockUpstream::start(handler).await;
    let gw = Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "e".into()),
        ("SWITCHYARD_MASTER_KEY", MASTER.into()),
    ])
    .await;
    let (s, v) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "e", "input": "hi", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let b64 = v["data"][0]["embedding"].as_str().expect("base64 string");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64");
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [0.5, -1.25, 3.0]);
    let (s, v) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "e", "input": ["a"], "encoding_format": "float"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["embedding"], json!([0.5, -1.25, 3.0]));
}

#[tokio::test]
async fn embeddings_float_and_base64_through_openai_mock() {
    let (mock, gw) = setup(&[]).await;
    let (s, f) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "hello"}),
    )
    .await;
    assert_eq!(s, 200, "{f}");
    assert!(f["data"][0]["embedding"].is_array());
    let (s, b) = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(b["data"][0]["embedding"].is_string());
    assert_eq!(mock.requests().last().expect("req").json()["encoding_format"], "base64");
}

#[tokio::test]
async fn models_lists_qualified_ids_aliases_and_discovered() {
    // Provider without _MODELS: its /models is fetched in the background
    // before the gateway reports ready, so bare names route at once.
    let disc = MockUpstream::openai().await;
    let listed = MockUpstream::openai().await;
    let yaml = "aliases:\n  smart: groq/llama-big\n";
    let gw = Gateway::start_with(
        &[
            ("OPENAI_API_KEY", "k".into()),
            ("OPENAI_BASE_URL", format!("{}/v1", disc.base_url())),
            ("GROQ_API_KEY", "g".into()),
            ("GROQ_BASE_URL", format!("{}/v1", listed.base_url())),
            ("GROQ_MODELS", "llama-big".into()),
        ],
        Some(yaml),
    )
    .await;
    let r = client()
        .get(format!("{}/v1/models", gw.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"groq/llama-big"), "{ids:?}");
    assert!(ids.contains(&"smart"), "{ids:?}");
    let discovered: Vec<&str> = ids.iter().copied().filter(|i| i.starts_with("openai/")).collect();
    assert!(!discovered.is_empty(), "discovered models missing: {ids:?}");
    // A discovered bare name routes to the discovering provider.
    let bare = discovered[0].trim_start_matches("openai/").to_string();
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat(&bare))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(disc.requests().iter().any(|r| r.path == "/v1/chat/completions"));
}

#[tokio::test]
async fn health_and_ready() {
    let (_mock, gw) = setup(&[]).await;
    for path in ["/health", "/health/ready"] {
        let r = client()
            .get(format!("{}{path}", gw.base_url))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn upstream_response_headers_and_content_pass_through() {
    let handler = Arc::new(|_r: &crate::support::mock::RecordedRequest| MockResponse::Json {
        status: 200,
        body: openai_chat_completion("m", "exact content ✓", (5, 7))
            .to_string()
            .into_bytes(),
        headers: vec![
            ("x-ratelimit-remaining-requests".into(), "99".into()),
            ("set-cookie".into(), "a=b".into()),
        ],
    });
    let mock = MockUpstream::start(handler).await;
    let gw = Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "m".into()),
    ])
    .await;
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat("m"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()
            .get("x-ratelimit-remaining-requests")
            .map(|v| v.to_str().ok()),
        Some(Some("99"))
    );
    assert!(
        r.headers().get("set-cookie").is_none(),
        "provider cookies must not leak"
    );
    assert_eq!(
        r.headers().get("x-switchyard-provider").map(|v| v.to_str().ok()),
        Some(Some("openai"))
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "exact content ✓");
    // The access log line carries model, provider, status and tokens.
    let log = log_after_previous_request(&gw, &c).await;
    let line = log
        .lines()
        .find(|l| l.contains("access") && l.contains("endpoint=chat"))
        .expect("access line");
    for want in [
        "model=m",
        "provider=openai",
        "status=200",
        "tokens_in=5",
        "tokens_out=7",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
}

/// The gateway log once every earlier request on `c`'s connection was logged:
/// Pingora runs `logging` before it reads the next request of a keep-alive
/// connection, so the access line of one more request on the same client is
/// written after theirs; once the log reader has seen it, the file has them.
pub async fn log_after_previous_request(gw: &Gateway, c: &reqwest::Client) -> String {
    let mut rx = gw.log_lines();
    let r = c.get(format!("{}/health", gw.base_url)).send().await.expect("send");
    assert_eq!(r.status(), 200);
    Gateway::wait_log(&mut rx, "endpoint=health").await;
    gw.log()
}
