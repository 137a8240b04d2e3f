//! Conformance of translated traffic with the official Python SDKs: the gateway in front of the
//! three mock providers (OpenAI, Anthropic, Gemini) is called by
//!
//! - `tests/python/test_anthropic_sdk.py` — the `anthropic` SDK on `/v1/messages`, served by
//!   every provider, and
//! - `tests/python/test_openai_sdk_translated.py` — the `openai` SDK on `/v1/chat/completions` and
//!   `/v1/embeddings`, served by the Anthropic and Gemini providers,
//!
//! then checks what reached each provider: its own credential in its own header (never the
//! caller's key), the native paths, and the translated tool history.
//!
//! The interpreter is chosen by [`pytest::python`].

use serde_json::Value;

use crate::support::gateway::Gateway;
use crate::support::mock::{MockUpstream, RecordedRequest};
use crate::support::mock_anthropic::anthropic;
use crate::support::mock_gemini::gemini;
use crate::support::pytest;

/// The key callers present to the gateway.
const MASTER_KEY: &str = "sk-switchyard-translated-sdk-master";
/// The gateway's credentials for the mock providers.
const OPENAI_KEY: &str = "sk-mock-openai-translated";
const ANTHROPIC_KEY: &str = "sk-ant-test";
const GEMINI_KEY: &str = "gm-test";
const OPENAI_MODEL: &str = "gpt-4o-mini";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
const GEMINI_MODEL: &str = "gemini-2.5-flash";
const PYTEST_FILES: &[&str] = &[
    "tests/python/test_anthropic_sdk.py",
    "tests/python/test_openai_sdk_translated.py",
];
fn no_master_key(mock: &str, requests: &[RecordedRequest]) {
    for r in requests {
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(MASTER_KEY)),
            "the caller's key leaked to the {mock} provider on {} {}: {:?}",
            r.method,
            r.path,
            r.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_python_sdk_conformance() {
    let openai_mock = MockUpstream::openai().await;
    let anthropic_mock = anthropic().await;
    let gemini_mock = gemini().await;
    let gateway = Gateway::start(&[
        ("OPENAI_API_KEY", OPENAI_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai_mock.base_url())),
        ("OPENAI_MODELS", OPENAI_MODEL.to_string()),
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_string()),
        ("ANTHROPIC_BASE_URL", anthropic_mock.base_url()),
        ("ANTHROPIC_MODELS", ANTHROPIC_MODEL.to_string()),
        ("GEMINI_API_KEY", GEMINI_KEY.to_string()),
        ("GEMINI_BASE_URL", format!("{}/v1beta", gemini_mock.base_url())),
        ("GEMINI_MODELS", GEMINI_MODEL.to_string()),
        ("SWITCHYARD_MASTER_KEY", MASTER_KEY.to_string()),
    ])
    .await;

    pytest::run(
        &gateway,
        PYTEST_FILES,
        &[
            ("SWITCHYARD_BASE_URL", gateway.base_url.clone()),
            ("SWITCHYARD_API_KEY", MASTER_KEY.to_string()),
            ("SWITCHYARD_MODEL_OPENAI", OPENAI_MODEL.to_string()),
            ("SWITCHYARD_MODEL_ANTHROPIC", ANTHROPIC_MODEL.to_string()),
            ("SWITCHYARD_MODEL_GEMINI", GEMINI_MODEL.to_string()),
        ],
    )
    .await;

    // Anthropic: native path, x-api-key with the gateway's provider key, a version header.
    let requests = anthropic_mock.requests();
    assert!(
        requests.iter().any(|r| r.path_only() == "/v1/messages"),
        "the Anthropic mock never received /v1/messages"
    );
    for r in &requests {
        assert_eq!(
            r.header("x-api-key"),
            Some(ANTHROPIC_KEY),
            "{} {} reached Anthropic without the gateway's provider key",
            r.method,
            r.path
        );
        assert!(
            r.header("anthropic-version").is_some_and(|v| !v.is_empty()),
            "{} {} reached Anthropic without anthropic-version",
            r.method,
            r.path
        );
    }
    no_master_key("Anthropic", &requests);

    // Gemini: native paths under /v1beta, x-goog-api-key, the key never in the URL.
    let requests = gemini_mock.requests();
    for suffix in [":generateContent", ":streamGenerateContent", ":batchEmbedContents"] {
        assert!(
            requests
                .iter()
                .any(|r| r.path_only().starts_with(&format!("/v1beta/models/{GEMINI_MODEL}"))
                    && r.path_only().ends_with(suffix)),
            "the Gemini mock never received models/{GEMINI_MODEL}{suffix}"
        );
    }
    for r in &requests {
        assert_eq!(
            r.header("x-goog-api-key"),
            Some(GEMINI_KEY),
            "{} {} reached Gemini without the gateway's provider key",
            r.method,
            r.path
        );
        assert!(
            !r.path.contains("key="),
            "the Gemini key travelled in the URL: {}",
            r.path
        );
        if r.path_only().ends_with(":streamGenerateContent") {
            assert!(
                r.path.contains("alt=sse"),
                "a streamed Gemini call without alt=sse: {}",
                r.path
            );
        }
    }
    no_master_key("Gemini", &requests);

    // OpenAI: Bearer provider key; the Anthropic-dialect tool history arrived as tool_calls plus
    // a `tool` message answering them.
    let requests = openai_mock.requests();
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {OPENAI_KEY}").as_str()),
            "{} {} reached OpenAI without the gateway's provider key",
            r.method,
            r.path
        );
    }
    no_master_key("OpenAI", &requests);
    let history = requests
        .iter()
        .filter(|r| r.path_only() == "/v1/chat/completions")
        .map(RecordedRequest::json)
        .find(|body| {
            body["messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
        })
        .expect("no request with a `tool` message reached the OpenAI mock");
    let messages = history["messages"].as_array().unwrap();
    let call = messages
        .iter()
        .find(|m| m["role"] == "assistant")
        .and_then(|m| m["tool_calls"].get(0))
        .unwrap_or_else(|| panic!("no assistant tool_calls in {history}"));
    assert_eq!(call["type"], "function", "{history}");
    assert_eq!(call["function"]["name"], "get_weather", "{history}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("arguments are not a JSON string ({e}): {history}"));
    assert_eq!(args, serde_json::json!({"city": "Paris, Île-de-France"}));
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], call["id"], "{history}");
    let tool_text = match &tool["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        other => panic!("tool content {other}"),
    };
    assert_eq!(tool_text, "18°C and sunny", "{history}");
    assert_eq!(history["tools"][0]["function"]["name"], "get_weather", "{history}");
    drop(gateway);
}
