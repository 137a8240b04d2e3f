//! Stream and body integrity against hostile providers: every way a
//! provider's answer can break reaches the caller as a protocol-correct
//! error in its own dialect, and the usage record says the same thing.
//! (The official SDKs' view of the same failures: `tests/python/test_stream_integrity.py`.)

use crate::support::gateway::Gateway;
use crate::support::mock::{
    openai_chat_chunk, openai_chat_completion, sse_data, MockResponse, MockUpstream, RecordedRequest, Step,
};
use crate::support::pytest;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "sy-integrity-master";

/// One `data:` chunk of the hostile OpenAI provider's streams.
fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    sse_data(&openai_chat_chunk("m", delta, finish))
}

/// The hostile OpenAI-compatible provider: each model name is one failure.
fn hostile_openai(r: &RecordedRequest) -> MockResponse {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("");
    let hello = || {
        let mut b = chunk(json!({"role": "assistant", "content": ""}), None);
        b.extend(chunk(json!({"content": "Hel"}), None));
        b.extend(chunk(json!({"content": "lo"}), None));
        b
    };
    match model {
        // Closed cleanly after a few chunks: no finish_reason, no [DONE].
        "truncated" => MockResponse::sse(vec![Step::Send(hello())]),
        // Cut in the middle of an event, connection reset.
        "cut-mid-event" => MockResponse::sse(vec![
            Step::Send(hello()),
            Step::Send(b"data: {\"id\":\"chatcmpl-mock\",\"obj".to_vec()),
            Step::Abort,
        ]),
        "malformed-event" => MockResponse::sse(vec![
            Step::Send(hello()),
            Step::Send(b"data: {\"choices\": [oops\n\n".to_vec()),
            Step::Send(chunk(json!({"content": " never"}), Some("stop"))),
            Step::Send(b"data: [DONE]\n\n".to_vec()),
        ]),
        "not-json" => MockResponse::Json {
            status: 200,
            body: b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            headers: vec![("content-type".into(), "text/html".into())],
        },
        "no-choices" => MockResponse::json(200, &json!({"id": "chatcmpl-x", "object": "chat.completion"})),
        // A real stream, labelled as plain text.
        "text-plain" => {
            let mut b = hello();
            b.extend(chunk(json!({}), Some("stop")));
            b.extend_from_slice(b"data: [DONE]\n\n");
            MockResponse::Stream {
                status: 200,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                steps: vec![Step::Send(b)],
            }
        }
        // `stream: true` ignored: a whole completion comes back as JSON.
        "json-for-stream" => MockResponse::json(200, &openai_chat_completion("m", "Hello from JSON", (5, 3))),
        // Some chunks, then nothing (the provider's read timeout is short).
        "stall" => MockResponse::sse(vec![Step::Send(hello()), Step::Sleep(Duration::from_secs(60))]),
        // vLLM says which stop sequence matched.
        "vllm-stop" if body["stream"] == true => {
            let mut b = chunk(json!({"role": "assistant", "content": "one two"}), None);
            let mut fin = openai_chat_chunk("m", json!({}), Some("stop"));
            fin["choices"][0]["stop_reason"] = json!("THREE");
            b.extend(sse_data(&fin));
            b.extend_from_slice(b"data: [DONE]\n\n");
            MockResponse::sse(vec![Step::Send(b)])
        }
        "vllm-stop" => {
            let mut c = openai_chat_completion("m", "one two", (4, 2));
            c["choices"][0]["stop_reason"] = json!("THREE");
            MockResponse::json(200, &c)
        }
        _ => MockResponse::json(200, &openai_chat_completion("m", "fine", (3, 1))),
    }
}

fn anthropic_event(ty: &str, data: Value) -> String {
    format!("event: {ty}\ndata: {data}\n\n")
}

/// The hostile Anthropic provider.
fn hostile_anthropic(r: &RecordedRequest) -> MockResponse {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let start = anthropic_event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 1}}}),
    );
    let block = anthropic_event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ) + &anthropic_event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
    );
    match body["model"].as_str().unwrap_or("") {
        "claude-no-start" => MockResponse::sse(vec![Step::Send(block.into_bytes())]),
        "claude-truncated" => MockResponse::sse(vec![Step::Send((start + &block).into_bytes())]),
        "claude-broken" => MockResponse::json(200, &json!({"id": "msg_1"})),
        _ => MockResponse::json(
            400,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "unknown"}}),
        ),
    }
}

/// One gateway and one keep-alive client: Pingora records a request before
/// it reads the next one on the same connection, so a later admin call on
/// this client sees every earlier request's record.
struct Setup {
    gw: Gateway,
    c: reqwest::Client,
    _openai: MockUpstream,
    _anthropic: MockUpstream,
    _gemini: MockUpstream,
}

async fn setup() -> Setup {
    let openai = MockUpstream::start(Arc::new(hostile_openai)).await;
    let anthropic = MockUpstream::start(Arc::new(hostile_anthropic)).await;
    // A Gemini provider that answers with something that is not a Gemini body.
    let gemini = MockUpstream::start(Arc::new(|_r: &RecordedRequest| {
        MockResponse::json(200, &json!({"unexpected": true}))
    }))
    .await;
    let yaml = format!(
        "providers:\n  openai:\n    base_url: {}/v1\n    api_key: sk-hostile\n    read_timeout_ms: 800\n    models: [truncated, cut-mid-event, malformed-event, not-json, no-choices, text-plain, json-for-stream, stall, vllm-stop, mystery-model-x]\n",
        openai.base_url()
    );
    let gw = Gateway::start_with(
        &[
            ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
            ("ANTHROPIC_EAST_API_KEY", "sk-ant-hostile".into()),
            ("ANTHROPIC_EAST_BASE_URL", anthropic.base_url()),
            (
                "ANTHROPIC_EAST_MODELS",
                "claude-no-start,claude-truncated,claude-broken".into(),
            ),
            ("GEMINI_API_KEY", "gm-hostile".into()),
            ("GEMINI_BASE_URL", format!("{}/v1beta", gemini.base_url())),
            ("GEMINI_MODELS", "gemini-bad".into()),
        ],
        Some(&yaml),
    )
    .await;
    Setup {
        gw,
        c: reqwest::Client::new(),
        _openai: openai,
        _anthropic: anthropic,
        _gemini: gemini,
    }
}

async fn post(s: &Setup, path: &str, body: Value) -> reqwest::Response {
    s.c.post(format!("{}{path}", s.gw.base_url))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("send")
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

/// Every SSE block of `text` as (event line, parsed data). Panics if a
/// block's data is not JSON (`[DONE]` excepted): nothing may arrive glued.
fn blocks(text: &str) -> Vec<(Option<String>, Value)> {
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "the stream ends mid-block: {text:?}"
    );
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let event = b.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_string);
            let data: Vec<&str> = b
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
                .collect();
            let data = data.join("\n");
            let v = if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("block is not JSON ({e}): {b:?}\nin {text}"))
            };
            (event, v)
        })
        .collect()
}

fn content(blocks: &[(Option<String>, Value)]) -> String {
    blocks
        .iter()
        .filter_map(|(_, v)| v["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The usage record of the latest request for `model`.
async fn record(s: &Setup, model: &str) -> Value {
    let (gw, c) = (&s.gw, &s.c);
    let r = c
        .post(format!("{}/admin/runtime/flush", gw.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("flush");
    assert_eq!(r.status(), 200);
    let v: Value = c
        .get(format!("{}/admin/usage/log?model={model}&limit=1", gw.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    v["data"][0].clone()
}

#[tokio::test]
async fn an_openai_stream_closed_early_ends_with_an_error_and_is_recorded_as_failed() {
    let s = setup().await;
    let resp = post(&s, "/v1/chat/completions", chat("truncated", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    let b = blocks(&text);
    assert_eq!(content(&b), "Hello", "what arrived is delivered");
    let last = &b.last().expect("blocks").1;
    assert_eq!(
        last["error"]["message"], "Provider `openai` ended the stream before the response was complete",
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "a cut stream must not look complete");
    let rec = record(&s, "truncated").await;
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["error"], "upstream_truncated", "{rec}");
    assert_eq!(rec["partial"], true, "{rec}");
}

#[tokio::test]
async fn a_stream_cut_mid_event_gets_its_error_event_on_its_own() {
    let s = setup().await;
    let text = post(&s, "/v1/chat/completions", chat("cut-mid-event", true))
        .await
        .text()
        .await
        .expect("a complete chunked body, not a reset");
    assert!(!text.contains("\"objdata"), "the half-received event leaked: {text}");
    let b = blocks(&text);
    assert_eq!(content(&b), "Hello");
    assert!(b.last().expect("blocks").1["error"]["message"].is_string(), "{text}");
    let rec = record(&s, "cut-mid-event").await;
    assert!(
        rec["error"].as_str().is_some_and(|e| e.starts_with("upstream_")),
        "{rec}"
    );
    assert_eq!(rec["partial"], true);
}

#[tokio::test]
async fn broken_bodies_and_events_are_errors_naming_the_provider() {
    let s = setup().await;
    for model in ["not-json", "no-choices"] {
        let resp = post(&s, "/v1/chat/completions", chat(model, false)).await;
        assert_eq!(resp.status(), 502, "{model}");
        let v: Value = resp.json().await.expect("json");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| m.contains("`openai`")),
            "{model}: {v}"
        );
        assert_eq!(record(&s, model).await["status"], 502);
    }
    // Native Anthropic and Gemini bodies that are not what they claim.
    let resp = post(&s, "/v1/messages", messages("claude-broken", false)).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["type"], "error", "Anthropic envelope: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`anthropic-east`")),
        "{v}"
    );
    let resp = post(&s, "/v1/chat/completions", chat("gemini-bad", false)).await;
    assert_eq!(resp.status(), 502);
    // A malformed event inside a stream becomes an error event.
    let text = post(&s, "/v1/chat/completions", chat("malformed-event", true))
        .await
        .text()
        .await
        .expect("body");
    assert!(!text.contains("oops") && !text.contains("never"), "{text}");
    let b = blocks(&text);
    assert!(b.last().expect("blocks").1["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("`openai` sent an invalid stream")));
    assert_eq!(record(&s, "malformed-event").await["error"], "upstream_protocol");
}

#[tokio::test]
async fn a_requested_stream_is_relayed_as_sse_whatever_the_content_type() {
    let s = setup().await;
    let resp = post(&s, "/v1/chat/completions", chat("text-plain", true)).await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = resp.text().await.expect("body");
    let b = blocks(&text);
    assert_eq!(content(&b), "Hello");
    assert_eq!(b.last().expect("blocks").1, "[DONE]");
    // A provider that ignored `stream: true` and answered JSON: the answer
    // is replayed as the stream that was asked for.
    let resp = post(&s, "/v1/chat/completions", chat("json-for-stream", true)).await;
    assert!(resp.headers()["content-type"]
        .to_str()
        .is_ok_and(|c| c.starts_with("text/event-stream")));
    let text = resp.text().await.expect("body");
    let b = blocks(&text);
    assert_eq!(content(&b), "Hello from JSON", "{text}");
    assert_eq!(b.last().expect("blocks").1, "[DONE]");
    let rec = record(&s, "json-for-stream").await;
    assert_eq!(
        (rec["usage"]["input_tokens"].as_u64(), rec["error"].is_null()),
        (Some(5), true),
        "{rec}"
    );
}

#[tokio::test]
async fn native_anthropic_streams_are_held_to_the_protocol_and_name_the_instance() {
    let s = setup().await;
    let text = post(&s, "/v1/messages", messages("claude-no-start", true))
        .await
        .text()
        .await
        .expect("body");
    let b = blocks(&text);
    assert_eq!(b.len(), 1, "nothing before message_start is relayed: {text}");
    let (event, v) = &b[0];
    assert_eq!(event.as_deref(), Some("error"));
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("`anthropic-east`") && m.contains("message_start")));
    assert_eq!(record(&s, "claude-no-start").await["error"], "upstream_protocol");
    let text = post(&s, "/v1/messages", messages("claude-truncated", true))
        .await
        .text()
        .await
        .expect("body");
    let b = blocks(&text);
    assert_eq!(b[0].0.as_deref(), Some("message_start"));
    let (event, v) = b.last().expect("blocks");
    assert_eq!(event.as_deref(), Some("error"), "{text}");
    assert_eq!(
        v["error"]["message"],
        "Provider `anthropic-east` ended the stream before the response was complete"
    );
    let rec = record(&s, "claude-truncated").await;
    assert_eq!(
        (rec["error"].as_str(), rec["partial"].as_bool()),
        (Some("upstream_truncated"), Some(true))
    );
}

#[tokio::test]
async fn a_stalled_stream_tells_the_caller_what_the_record_says() {
    let s = setup().await;
    let text = post(&s, "/v1/chat/completions", chat("stall", true))
        .await
        .text()
        .await
        .expect("body");
    let b = blocks(&text);
    assert_eq!(content(&b), "Hello");
    let last = &b.last().expect("blocks").1;
    assert_eq!(
        last["error"]["message"], "Provider `openai` did not respond in time",
        "{text}"
    );
    assert_eq!(last["error"]["code"], "upstream_timeout");
    let rec = record(&s, "stall").await;
    assert_eq!(rec["error"], "upstream_timeout", "{rec}");
}

#[tokio::test]
async fn the_matched_stop_sequence_reaches_anthropic_callers() {
    let s = setup().await;
    let v: Value = post(&s, "/v1/messages", messages("vllm-stop", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (v["stop_reason"].as_str(), v["stop_sequence"].as_str()),
        (Some("stop_sequence"), Some("THREE")),
        "{v}"
    );
    let text = post(&s, "/v1/messages", messages("vllm-stop", true))
        .await
        .text()
        .await
        .expect("body");
    let delta = blocks(&text)
        .into_iter()
        .find(|(e, _)| e.as_deref() == Some("message_delta"))
        .expect("message_delta")
        .1;
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "THREE");
}

#[tokio::test]
async fn unknown_prices_stay_unknown_in_every_rollup() {
    let s = setup().await;
    for _ in 0..2 {
        assert_eq!(
            post(&s, "/v1/chat/completions", chat("mystery-model-x", false))
                .await
                .status(),
            200
        );
    }
    let rec = record(&s, "mystery-model-x").await;
    assert!(rec["cost_usd"].is_null(), "{rec}");
    let c = reqwest::Client::new();
    for path in [
        "/admin/usage/summary",
        "/admin/usage/models",
        "/admin/usage/daily?group_by=model",
    ] {
        let v: Value = c
            .get(format!("{}{path}", s.gw.base_url))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let text = v.to_string();
        assert!(text.contains("\"cost_usd\":null"), "{path}: {text}");
        assert!(!text.contains("\"cost_usd\":0.0"), "{path}: unknown shown as 0: {text}");
    }
}

/// The official SDKs see the failures as failures: the OpenAI SDK raises
/// instead of returning a truncated answer; the Anthropic SDK's stream
/// helper raises instead of building a message from a broken stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_raise_on_broken_streams() {
    let s = setup().await;
    pytest::run(
        &s.gw,
        &["tests/python/test_stream_integrity.py"],
        &[
            ("SWITCHYARD_BASE_URL", s.gw.base_url.clone()),
            ("SWITCHYARD_API_KEY", KEY.to_string()),
        ],
    )
    .await;
}
