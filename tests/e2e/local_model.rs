//! Fidelity with a real OpenAI-compatible model server (llama.cpp via
//! llama-cpp-python, SmolLM2-135M): usage it does not report is estimated
//! and said to be, tool-call fragments it repeats are sent once, and an
//! Anthropic tool round trip is sent in the form it accepts. One server for
//! all scenarios (it is CPU-heavy), run one after another.

use crate::support::gateway::Gateway;
use crate::support::llama::{LlamaServer, ALIAS};
use crate::support::pytest;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sy-local-model-master";

fn model() -> String {
    format!("llamacpp/{ALIAS}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("client")
}

async fn post(c: &reqwest::Client, gw: &Gateway, path: &str, body: Value) -> reqwest::Response {
    c.post(format!("{}{path}", gw.base_url))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// The data payloads of an SSE body, `[DONE]` excluded.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|b| {
            let d: Vec<&str> = b
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|x| x.strip_prefix(' ').unwrap_or(x)))
                .collect();
            (!d.is_empty()).then(|| d.join("\n"))
        })
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}")))
        .collect()
}

/// The newest usage record. `c` must be the client that made the request:
/// Pingora records a request before it reads the next one on the same
/// keep-alive connection.
async fn last_record(c: &reqwest::Client, gw: &Gateway) -> Value {
    let r = c
        .post(format!("{}/admin/runtime/flush", gw.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("flush");
    assert_eq!(r.status(), 200);
    let v: Value = c
        .get(format!("{}/admin/usage/log?limit=1", gw.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    v["data"][0].clone()
}

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_cpp_server_through_the_gateway() {
    let llama = LlamaServer::start().await;
    let gw = Gateway::start(&[
        ("SWITCHYARD_MASTER_KEY", KEY.to_string()),
        ("LLAMACPP_BASE_URL", llama.base_url.clone()),
        ("LLAMACPP_MODELS", ALIAS.to_string()),
    ])
    .await;
    let c = client();
    let ask = |stream: bool| {
        json!({"model": model(), "stream": stream, "temperature": 0, "max_tokens": 12,
               "messages": [{"role": "user", "content": "Say hello in French"}]})
    };

    // Non-streamed answers carry the server's own usage.
    let v: Value = post(&c, &gw, "/v1/chat/completions", ask(false))
        .await
        .json()
        .await
        .expect("json");
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(last_record(&c, &gw).await["usage_source"], "provider");

    // Streams carry none (llama.cpp ignores stream_options.include_usage):
    // the gateway estimates, records that it did, and gives a caller that
    // asked for usage the estimate.
    let text = post(&c, &gw, "/v1/chat/completions", ask(true))
        .await
        .text()
        .await
        .expect("body");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !events(&text).iter().any(|e| e["usage"].is_object()),
        "not asked for: {text}"
    );
    let rec = last_record(&c, &gw).await;
    assert_eq!(rec["usage_source"], "estimated", "{rec}");
    assert!(rec["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{rec}");
    assert!(rec["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{rec}");
    let mut with_usage = ask(true);
    with_usage["stream_options"] = json!({"include_usage": true});
    let text = post(&c, &gw, "/v1/chat/completions", with_usage)
        .await
        .text()
        .await
        .expect("body");
    let usage = events(&text)
        .into_iter()
        .find(|e| e["usage"].is_object())
        .unwrap_or_else(|| panic!("asked for usage, got none: {text}"));
    assert!(
        usage["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
    assert!(usage["usage"]["completion_tokens"].as_u64().is_some_and(|n| n > 0));

    // An Anthropic caller never sees 0 tokens.
    let text = post(
        &c,
        &gw,
        "/v1/messages",
        json!({"model": model(), "stream": true, "max_tokens": 12, "temperature": 0,
               "messages": [{"role": "user", "content": "Say hello in French"}]}),
    )
    .await
    .text()
    .await
    .expect("body");
    let evs = events(&text);
    let start = evs
        .iter()
        .find(|e| e["type"] == "message_start")
        .expect("message_start");
    assert!(
        start["message"]["usage"]["input_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{text}"
    );
    let delta = evs
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert!(
        delta["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0),
        "{text}"
    );
    assert!(delta["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{text}");

    // Tool calls: llama.cpp repeats the id and name in every fragment; the
    // caller gets each once.
    let text = post(
        &c,
        &gw,
        "/v1/chat/completions",
        json!({"model": model(), "stream": true, "temperature": 0, "max_tokens": 40,
               "tools": weather_tool_openai(),
               "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
               "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}),
    )
    .await
    .text()
    .await
    .expect("body");
    let fragments: Vec<Value> = events(&text)
        .into_iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .cloned()
                .map(Value::Object)
        })
        .collect();
    assert!(fragments.len() > 1, "{text}");
    assert_eq!(fragments.iter().filter(|f| f.get("id").is_some()).count(), 1, "{text}");
    let names: String = fragments
        .iter()
        .filter_map(|f| f["function"]["name"].as_str())
        .collect();
    assert_eq!(names, "get_weather", "{text}");

    // An Anthropic tool_use → tool_result round trip (the assistant turn is
    // sent with `content: ""`, which strict servers accept).
    let resp = post(
        &c,
        &gw,
        "/v1/messages",
        json!({"model": model(), "max_tokens": 16, "temperature": 0,
               "tools": [{"name": "get_weather", "description": "Get the weather for a city",
                          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
               "messages": [
                   {"role": "user", "content": "What is the weather in Paris?"},
                   {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 degrees and sunny"}]}
               ]}),
    )
    .await;
    let status = resp.status();
    let v: Value = resp.json().await.expect("json");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message", "{v}");

    // The official SDKs' stream helpers over the same server.
    pytest::run(
        &gw,
        &["tests/python/test_local_model.py"],
        &[
            ("SWITCHYARD_BASE_URL", gw.base_url.clone()),
            ("SWITCHYARD_API_KEY", KEY.to_string()),
            ("SWITCHYARD_LOCAL_MODEL", model()),
        ],
    )
    .await;
}
