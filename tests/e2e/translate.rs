//! Cross-dialect routes through the running gateway: recorded provider
//! streams (tests/fixtures) replayed by a mock in 7-byte pieces, checked for
//! protocol correctness in the caller's dialect; the native Anthropic path;
//! count_tokens; errors in the Anthropic envelope; Gemini embeddings.

use crate::support::gateway::Gateway;
use crate::support::mock::{MockResponse, MockUpstream, RecordedRequest, Step};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;

const KEY: &str = "sy-test-master";

fn fixture(path: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A provider replaying `stream` for streamed requests (split in 7-byte
/// pieces, mid-line and mid-character) and `whole` for the others.
async fn replay(stream: &str, whole: &str) -> MockUpstream {
    let (s, w) = (fixture(stream), fixture(whole));
    MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        let streamed =
            r.path.contains("stream") || serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["stream"] == true);
        // Anthropic-style response headers (other dialects just carry them too).
        let headers = vec![
            ("request-id".to_string(), "req_011CReplay".to_string()),
            ("anthropic-ratelimit-requests-remaining".to_string(), "3999".to_string()),
            (
                "anthropic-organization-id".to_string(),
                "00000000-0000-4000-8000-000000000000".to_string(),
            ),
        ];
        if streamed {
            MockResponse::Stream {
                status: 200,
                headers,
                steps: s.chunks(7).map(|c| Step::Send(c.to_vec())).collect(),
            }
        } else {
            MockResponse::Json {
                status: 200,
                body: w.clone(),
                headers,
            }
        }
    }))
    .await
}

async fn gateway(env: &[(&str, String)]) -> Gateway {
    let mut all = vec![("SWITCHYARD_MASTER_KEY", KEY.to_string())];
    all.extend(env.iter().cloned());
    Gateway::start(&all).await
}

fn anthropic_env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", "sk-ant-provider".into()),
        ("ANTHROPIC_BASE_URL", mock.base_url()),
        ("ANTHROPIC_MODELS", "claude-sonnet-4-5".into()),
    ]
}

fn gemini_env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("GEMINI_API_KEY", "gm-provider".into()),
        ("GEMINI_BASE_URL", mock.base_url()),
        ("GEMINI_MODELS", "gemini-2.5-flash,text-embedding-004".into()),
    ]
}

fn openai_env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_API_KEY", "sk-openai-provider".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o".into()),
    ]
}

async fn post(gw: &Gateway, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = reqwest::Client::new().post(format!("{}{path}", gw.base_url)).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.expect("send")
}

/// (event name, data JSON) pairs of an Anthropic SSE body.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

/// The Messages streaming rules every Anthropic SDK relies on.
fn assert_anthropic_sequence(events: &[(String, Value)]) {
    assert!(!events.is_empty());
    for (name, data) in events {
        assert_eq!(
            data["type"].as_str(),
            Some(name.as_str()),
            "event line must equal data.type"
        );
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(names.iter().filter(|n| **n == "message_start").count(), 1);
    assert_eq!(names.iter().filter(|n| **n == "message_delta").count(), 1);
    let mut open: Option<u64> = None;
    let mut next = 0u64;
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "blocks must not overlap");
                assert_eq!(data["index"].as_u64(), Some(next), "contiguous indexes");
                open = Some(next);
                next += 1;
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(open, None);
}

#[tokio::test]
async fn anthropic_caller_over_openai_provider_streams_tool_use_exactly() {
    let mock = replay("openai/parallel_tools.stream.sse", "openai/parallel_tools.resp.json").await;
    let gw = gateway(&openai_env(&mock)).await;
    let body = json!({
        "model": "gpt-4o", "max_tokens": 300, "stream": true,
        "system": "You are terse.",
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}},
                  {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}]
    });
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let events = anthropic_events(&text);
    assert_anthropic_sequence(&events);
    let tools: Vec<&Value> = events
        .iter()
        .filter(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(tools.len(), 2, "{text}");
    // Every argument fragment arrives: the concatenated input_json_delta parses.
    for (i, tool) in tools.iter().enumerate() {
        let idx = events
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["id"] == tool["id"])
            .map(|(_, d)| d["index"].clone())
            .expect("index");
        let json_text: String = events
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["index"] == idx)
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        let input: Value = serde_json::from_str(&json_text).unwrap_or_else(|_| panic!("tool {i}: {json_text}"));
        assert!(input.is_object());
    }
    let delta = &events.iter().find(|(n, _)| n == "message_delta").expect("delta").1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert!(delta["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0));
    // What the OpenAI provider received.
    let up = mock.requests().pop().expect("upstream");
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer sk-openai-provider"));
    let j = up.json();
    assert_eq!(j["messages"][0]["role"], "system");
    assert_eq!(j["stream_options"]["include_usage"], true);
    assert_eq!(j["tools"][0]["type"], "function");
}

#[tokio::test]
async fn openai_caller_over_anthropic_provider_keeps_thinking_out_of_content() {
    let mock = replay("anthropic/thinking.stream.sse", "anthropic/thinking.resp.json").await;
    let gw = gateway(&anthropic_env(&mock)).await;
    let body = json!({"model": "claude-sonnet-4-5", "stream": true, "stream_options": {"include_usage": true},
        "reasoning_effort": "low", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Think, then answer."}]});
    let r = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &format!("Bearer {KEY}"))],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let chunks: Vec<&str> = text.split("\n\n").filter_map(|b| b.strip_prefix("data: ")).collect();
    assert_eq!(chunks.last(), Some(&"[DONE]"), "{text}");
    let parsed: Vec<Value> = chunks.iter().filter_map(|c| serde_json::from_str(c).ok()).collect();
    let reasoning: String = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    let content: String = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!reasoning.is_empty() && !content.is_empty(), "{text}");
    assert!(!content.contains(&reasoning), "thinking leaked into content");
    let usage: Vec<&Value> = parsed.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1, "exactly one usage chunk: {text}");
    assert!(usage[0]["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n >= 40));
    let up = mock.requests().pop().expect("upstream");
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.header("x-api-key"), Some("sk-ant-provider"));
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    assert!(up.header("authorization").is_none());
    let j = up.json();
    assert_eq!(j["system"].as_str().map(|s| s.contains("Be brief")), Some(true), "{j}");
    assert!(j["max_tokens"].as_u64().is_some());
    assert_eq!(j["thinking"]["type"], "enabled");
}

#[tokio::test]
async fn openai_caller_over_gemini_provider_gets_tool_calls() {
    let mock = replay("gemini/parallel_tools.stream.sse", "gemini/parallel_tools.resp.json").await;
    let gw = gateway(&gemini_env(&mock)).await;
    let body = json!({"model": "gemini-2.5-flash", "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "additionalProperties": false}}},
                  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}],
        "messages": [{"role": "user", "content": "Weather in Paris and time in Tokyo"}]});
    let r = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("authorization", &format!("Bearer {KEY}"))],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let parsed: Vec<Value> = text
        .split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect();
    let calls: Vec<&Value> = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .filter(|tc| tc["id"].is_string())
        .collect();
    assert_eq!(calls.len(), 2, "{text}");
    assert!(calls.iter().all(|c| c["type"] == "function"));
    let finish: Vec<&str> = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
    assert!(!text.contains("\"choices\":[]"), "no usage chunk unless asked: {text}");
    let up = mock.requests().pop().expect("upstream");
    assert_eq!(up.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(up.header("x-goog-api-key"), Some("gm-provider"));
    let j = up.json();
    assert!(j["tools"][0]["functionDeclarations"].is_array(), "{j}");
    assert!(
        !j.to_string().contains("additionalProperties"),
        "unsupported schema keys stripped"
    );
}

#[tokio::test]
async fn non_streamed_translations_both_ways() {
    let ant = replay("anthropic/text.stream.sse", "anthropic/text.resp.json").await;
    let gem = replay("gemini/text.stream.sse", "gemini/text.resp.json").await;
    let mut env = anthropic_env(&ant);
    env.extend(gemini_env(&gem));
    let gw = gateway(&env).await;
    let auth = format!("Bearer {KEY}");
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0));
    let r = post(
        &gw,
        "/v1/messages",
        &json!({"model": "gemini-2.5-flash", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        gem.requests().pop().expect("gemini").path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
}

#[tokio::test]
async fn anthropic_native_path_forwards_bytes_and_headers() {
    let mock = replay("anthropic/text.stream.sse", "anthropic/text.resp.json").await;
    let gw = gateway(&anthropic_env(&mock)).await;
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 50, "stream": true, "some_future_field": {"kept": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(
        &gw,
        "/v1/messages",
        &body,
        &[
            ("x-api-key", KEY),
            ("anthropic-version", "2026-10-21"),
            ("anthropic-beta", "context-1m-2025-08-07"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    // What the SDK reports as `_request_id`, and the provider's rate limits;
    // not the gateway's provider account id.
    assert_eq!(h.get("request-id").map(|v| v.as_bytes()), Some(&b"req_011CReplay"[..]));
    assert_eq!(
        h.get("anthropic-ratelimit-requests-remaining").map(|v| v.as_bytes()),
        Some(&b"3999"[..])
    );
    assert!(h.get("anthropic-organization-id").is_none());
    let mut stream = r.bytes_stream();
    let mut got = Vec::new();
    while let Some(c) = stream.next().await {
        got.extend_from_slice(&c.expect("chunk"));
    }
    assert_eq!(
        got,
        fixture("anthropic/text.stream.sse"),
        "native stream must pass unchanged"
    );
    let up = mock.requests().pop().expect("upstream");
    assert_eq!(
        up.header("x-api-key"),
        Some("sk-ant-provider"),
        "provider key, never the caller's"
    );
    assert_eq!(up.header("anthropic-version"), Some("2026-10-21"));
    assert_eq!(up.header("anthropic-beta"), Some("context-1m-2025-08-07"));
    let j = up.json();
    assert_eq!(j["model"], "claude-sonnet-4-5");
    assert_eq!(j["some_future_field"]["kept"], true);
}

#[tokio::test]
async fn truncated_upstreams_end_with_an_error_in_the_callers_dialect() {
    let ant = replay("anthropic/truncated.stream.sse", "anthropic/text.resp.json").await;
    let oai = replay("openai/truncated.stream.sse", "openai/text.resp.json").await;
    let mut env = anthropic_env(&ant);
    env.extend(openai_env(&oai));
    let gw = gateway(&env).await;
    let auth = format!("Bearer {KEY}");
    let msg = json!({"role": "user", "content": "hi"});
    // OpenAI caller, Anthropic provider cut off.
    let r = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "claude-sonnet-4-5", "stream": true, "messages": [msg]}),
        &[("authorization", &auth)],
    )
    .await;
    let text = r.text().await.expect("text");
    assert!(!text.contains("[DONE]"), "{text}");
    let last = text
        .split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .last()
        .expect("chunks");
    assert!(
        serde_json::from_str::<Value>(last).expect("json")["error"]["message"].is_string(),
        "{text}"
    );
    // Anthropic caller, OpenAI provider cut off.
    let r = post(
        &gw,
        "/v1/messages",
        &json!({"model": "gpt-4o", "max_tokens": 10, "stream": true, "messages": [msg]}),
        &[("x-api-key", KEY)],
    )
    .await;
    let text = r.text().await.expect("text");
    let events = anthropic_events(&text);
    let (name, data) = events.last().expect("events");
    assert_eq!(name, "error", "{text}");
    assert_eq!(data["type"], "error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{text}");
    // Anthropic caller, Anthropic provider cut off (native path).
    let r = post(
        &gw,
        "/v1/messages",
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true, "messages": [msg]}),
        &[("x-api-key", KEY)],
    )
    .await;
    let text = r.text().await.expect("text");
    assert_eq!(
        anthropic_events(&text).last().map(|(n, _)| n.as_str()),
        Some("error"),
        "{text}"
    );
}

#[tokio::test]
async fn count_tokens_forwarded_or_estimated() {
    let ant = MockUpstream::start(Arc::new(|r: &RecordedRequest| MockResponse::Json {
        status: 200,
        body: if r.path == "/v1/messages/count_tokens" {
            br#"{"input_tokens":42}"#.to_vec()
        } else {
            b"{}".to_vec()
        },
        headers: vec![],
    }))
    .await;
    let oai = MockUpstream::openai().await;
    let mut env = anthropic_env(&ant);
    env.extend(openai_env(&oai));
    let gw = gateway(&env).await;
    let body =
        |m: &str| json!({"model": m, "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}]});
    let r = post(
        &gw,
        "/v1/messages/count_tokens",
        &body("claude-sonnet-4-5"),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), json!({"input_tokens": 42}));
    assert_eq!(
        ant.requests().pop().expect("forwarded").json()["model"],
        "claude-sonnet-4-5"
    );
    let r = post(&gw, "/v1/messages/count_tokens", &body("gpt-4o"), &[("x-api-key", KEY)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-switchyard-token-count").map(|v| v.to_str().ok()),
        Some(Some("estimate"))
    );
    let n = r.json::<Value>().await.expect("json")["input_tokens"]
        .as_u64()
        .expect("count");
    assert!((5..100).contains(&n), "{n}");
    assert!(oai.requests().is_empty(), "estimates never call the provider");
}

#[tokio::test]
async fn anthropic_callers_get_anthropic_error_envelopes() {
    let oai = MockUpstream::openai().await;
    let gw = gateway(&openai_env(&oai)).await;
    let msg = json!({"model": "nope-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    for (headers, body, want, kind) in [
        (vec![("x-api-key", KEY)], msg.clone(), 404, "not_found_error"),
        (vec![], msg.clone(), 401, "authentication_error"),
        (vec![("x-api-key", "wrong")], msg.clone(), 401, "authentication_error"),
        (
            vec![("x-api-key", KEY)],
            json!({"max_tokens": 5, "messages": []}),
            400,
            "invalid_request_error",
        ),
    ] {
        let r = post(&gw, "/v1/messages", &body, &headers).await;
        assert_eq!(r.status().as_u16(), want);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = reqwest::Client::new()
        .post(format!("{}/v1/messages", gw.base_url))
        .header("x-api-key", KEY)
        .body("{oops")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.expect("json")["type"], "error");
}

#[tokio::test]
async fn gemini_embeddings_honour_base64() {
    let gem = MockUpstream::start(Arc::new(|_r: &RecordedRequest| MockResponse::Json {
        status: 200,
        body: br#"{"embeddings":[{"values":[0.25,-0.5]},{"values":[1.0,2.0]}]}"#.to_vec(),
        headers: vec![],
    }))
    .await;
    let gw = gateway(&gemini_env(&gem)).await;
    let auth = format!("Bearer {KEY}");
    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-004", "input": ["a", "b"], "encoding_format": "base64"}),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().expect("base64"))
        .expect("decodes");
    let floats: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [0.25, -0.5]);
    assert_eq!(v["data"][1]["index"], 1);
    let up = gem.requests().pop().expect("upstream");
    assert_eq!(up.path, "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(up.json()["requests"].as_array().map(Vec::len), Some(2));
}
