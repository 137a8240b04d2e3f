//! Streaming: chunks reach the client as they arrive (proved with gates, not
//! sleeps), lines split anywhere, injected usage stripped or kept, and a
//! mid-stream failure ends with an error event.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_chunk, sse_data, MockResponse, MockUpstream, RecordedRequest, Step};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Complete `data:` payloads parsed from an SSE text.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

fn content_of(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

async fn gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "m".into()),
    ])
    .await
}

fn stream_request(include_usage: Option<bool>) -> Value {
    let mut body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = include_usage {
        body["stream_options"] = json!({"include_usage": u});
    }
    body
}

/// Builds a stream whose events are split mid-line and gated: the piece
/// after each gate is only sent once the test saw the previous content.
fn gated_steps(gates: &[Arc<Semaphore>], with_usage_chunk: bool) -> Vec<Step> {
    let role = sse_data(&openai_chat_chunk(
        "m",
        json!({"role": "assistant", "content": ""}),
        None,
    ));
    let c1 = sse_data(&openai_chat_chunk("m", json!({"content": "Hél"}), None));
    let c2 = sse_data(&openai_chat_chunk("m", json!({"content": "lo 😀"}), None));
    let c3 = sse_data(&openai_chat_chunk("m", json!({"content": " world"}), None));
    let fin = sse_data(&openai_chat_chunk("m", json!({}), Some("stop")));
    let usage = sse_data(
        &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}),
    );
    let mut first = role.clone();
    first.extend_from_slice(&c1);
    // Split inside the first event's line, then inside c1 (mid multi-byte char).
    let cut_a = 9;
    let cut_b = role.len() + c1.windows(2).position(|w| w == "é".as_bytes()).expect("é") + 1;
    let mut tail = c3.clone();
    tail.extend_from_slice(&fin);
    if with_usage_chunk {
        tail.extend_from_slice(&usage);
    }
    tail.extend_from_slice(b"data: [DONE]\n\n");
    vec![
        Step::Send(first[..cut_a].to_vec()),
        Step::Sleep(Duration::from_millis(20)),
        Step::Send(first[cut_a..cut_b].to_vec()),
        Step::Send(first[cut_b..].to_vec()),
        Step::Wait(gates[0].clone()),
        Step::Send(c2[..c2.len() - 3].to_vec()),
        Step::Send(c2[c2.len() - 3..].to_vec()),
        Step::Wait(gates[1].clone()),
        Step::Send(tail),
    ]
}

/// Reads the stream, releasing gate i once content piece i arrived.
async fn read_gated(resp: reqwest::Response, gates: &[Arc<Semaphore>], pieces: &[&str]) -> String {
    let mut text = String::new();
    let mut raw = Vec::new();
    let mut released = 0;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a chunk was buffered by the gateway: the next one never came")
    {
        raw.extend_from_slice(&chunk.expect("chunk"));
        text = String::from_utf8_lossy(&raw).into_owned();
        let content = content_of(&events(&text));
        while released < gates.len() && content.ends_with(pieces[released]) {
            gates[released].add_permits(1);
            released += 1;
        }
    }
    assert_eq!(
        released,
        gates.len(),
        "not every piece arrived before the next was sent"
    );
    text
}

#[tokio::test]
async fn chunks_arrive_before_the_next_is_sent_and_usage_chunk_is_stripped() {
    let gates = vec![Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0))];
    let steps = Arc::new(Mutex::new(Some(gated_steps(&gates, true))));
    let handler = Arc::new(move |_r: &RecordedRequest| MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: steps.lock().expect("lock").take().unwrap_or_default(),
    });
    let mock = MockUpstream::start(handler).await;
    let gw = gateway(&mock).await;
    let c = reqwest::Client::new();
    let resp = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&stream_request(None))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let text = read_gated(resp, &gates, &["Hél", "lo 😀"]).await;
    let evs = events(&text);
    assert_eq!(content_of(&evs), "Héllo 😀 world", "{text}");
    assert_eq!(evs.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !evs.iter().any(|e| e.contains("\"choices\":[]")),
        "the injected usage chunk must not reach a client that did not ask: {text}"
    );
    let up = mock.requests().pop().expect("upstream request");
    assert_eq!(
        up.json()["stream_options"]["include_usage"],
        true,
        "usage must be requested upstream"
    );
    // Usage was still read from the stripped chunk.
    let log = crate::core::log_after_previous_request(&gw, &c).await;
    let line = log
        .lines()
        .find(|l| l.contains("endpoint=chat"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    assert!(line.contains("tokens_in=11") && line.contains("tokens_out=3"), "{line}");
    assert!(line.contains("ttft_ms=") && !line.contains("ttft_ms=-"), "{line}");
}

#[tokio::test]
async fn usage_chunk_kept_when_client_asks_and_other_options_preserved() {
    let gates = vec![Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0))];
    let steps = Arc::new(Mutex::new(Some(gated_steps(&gates, true))));
    let handler = Arc::new(move |_r: &RecordedRequest| MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: steps.lock().expect("lock").take().unwrap_or_default(),
    });
    let mock = MockUpstream::start(handler).await;
    let gw = gateway(&mock).await;
    let mut body = stream_request(Some(true));
    body["stream_options"]["include_obfuscation"] = json!(false);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&body)
        .send()
        .await
        .expect("send");
    let text = read_gated(resp, &gates, &["Hél", "lo 😀"]).await;
    let evs = events(&text);
    let usage: Vec<Value> = evs
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["usage"].is_object())
        .collect();
    assert_eq!(usage.len(), 1, "{text}");
    assert_eq!(usage[0]["usage"]["total_tokens"], 14);
    let up = mock.requests().pop().expect("upstream request").json();
    assert_eq!(
        up["stream_options"],
        json!({"include_usage": true, "include_obfuscation": false})
    );
}

#[tokio::test]
async fn mid_stream_failure_ends_with_an_error_event() {
    let first = sse_data(&openai_chat_chunk(
        "m",
        json!({"role": "assistant", "content": "partial"}),
        None,
    ));
    let handler = Arc::new(move |_r: &RecordedRequest| MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: vec![Step::Send(first.clone()), Step::Abort],
    });
    let mock = MockUpstream::start(handler).await;
    let gw = gateway(&mock).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&stream_request(None))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), resp.text())
        .await
        .expect("stream ends")
        .expect("complete chunked body, not a reset");
    let evs = events(&text);
    assert_eq!(content_of(&evs), "partial");
    let last: Value = serde_json::from_str(evs.last().expect("events")).expect("json");
    assert!(
        last["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(
        !evs.iter().any(|e| e == "[DONE]"),
        "a failed stream must not look successful"
    );
}
