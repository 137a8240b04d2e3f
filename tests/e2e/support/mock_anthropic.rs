//! A mock Anthropic provider (api.anthropic.com's Messages API wire format) for end-to-end tests.
//!
//! [`anthropic()`] starts a [`MockUpstream`] running [`anthropic_handler`]; see that function for
//! exactly what it answers. Streams are spec-exact (`event:` line = data `type`, `message_start`,
//! content blocks with contiguous indexes, a `ping`, `message_delta`, `message_stop`) and are sent
//! as many small HTTP chunks cut at awkward byte positions ([`split_body`]): inside multi-byte
//! UTF-8 characters and inside the `\n\n` event separator.
//!
//! The request validation mirrors the real API's, so a gateway that translates another dialect
//! into Anthropic's gets the same 400s it would get in production: unknown top-level fields,
//! `system` as a message role, empty text blocks, a `tool_result` without its `tool_use` in the
//! previous message (or the reverse), thinking blocks with a signature this mock never issued,
//! thinking with a forced tool choice or a temperature other than 1, a final assistant tool-use
//! turn without its thinking block while thinking is enabled.

// A helper library for many tests: not every item is used by every build of the test binary.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::mock::{mock_pieces, mock_token_count, Handler, MockResponse, MockUpstream, RecordedRequest, Step};

/// Default text of the mock's answers (when the last user text does not start with `echo:`).
pub const ANTHROPIC_MOCK_REPLY: &str = "Hello from Anthropic mock";

/// The text of the `thinking` block the mock puts first when the request enables thinking. Its
/// `→` is a multi-byte character, so a streamed thinking block is always cut inside one.
pub const ANTHROPIC_MOCK_THINKING: &str = "The user wants a short answer → reply briefly.";

/// The text block the mock puts before a `tool_use` block (Claude usually says something first).
pub const ANTHROPIC_TOOL_PREAMBLE: &str = "Let me check that.";

/// Prefix of the answer to a turn whose last user message carries `tool_result` blocks; the
/// results' texts follow, joined with `"; "` (shared with the Gemini mock).
pub const TOOL_RESULT_PREFIX: &str = "The tool said: ";

/// The value the mock gives every string property of a tool input it makes up (non-ASCII, so a
/// streamed input is cut next to multi-byte characters and translations must keep them intact).
pub const MOCK_TOOL_STRING: &str = "Paris, Île-de-France";

/// `(id, display_name, created_at)` of the models listed at `GET /v1/models`, newest first.
pub const ANTHROPIC_MOCK_MODELS: &[(&str, &str, &str)] = &[
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
];

/// Object keys in the order api.anthropic.com writes them (`id` before `type` in a message, `type`
/// first in an event); keys not listed follow alphabetically.
#[rustfmt::skip]
pub const ANTHROPIC_KEY_ORDER: &[&str] = &[
    "id", "type", "index", "role", "model", "display_name", "created_at", "message",
    "content_block", "delta", "content", "text", "thinking", "signature", "data", "name", "input",
    "partial_json", "stop_reason", "stop_sequence", "usage", "input_tokens",
    "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
    "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens", "output_tokens", "service_tier",
    "has_more", "first_id", "last_id", "error", "request_id",
];

/// Top-level Messages API request fields the mock accepts; any other is rejected with
/// `<name>: Extra inputs are not permitted`, like the real API.
#[rustfmt::skip]
const KNOWN_FIELDS: &[&str] = &[
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "output_config", "output_format",
    "inference_geo", "cache_control", "diagnostics", "speed", "user_profile_id", "workspace_id",
];

/// Starts a mock Anthropic provider ([`anthropic_handler`]). Point the gateway at
/// [`MockUpstream::base_url`] (no `/v1`: the Anthropic convention).
pub async fn anthropic() -> MockUpstream {
    MockUpstream::start(anthropic_handler()).await
}

#[derive(Default)]
struct State {
    requests: AtomicU64,
    messages: AtomicU64,
    tool_uses: AtomicU64,
    /// Every thinking signature issued, with the thinking text it signs.
    signatures: Mutex<HashMap<String, String>>,
}

/// The handler behind [`anthropic()`]. It behaves like api.anthropic.com:
///
/// - **Auth first**: no (or an empty) `x-api-key` → 401 `authentication_error` "x-api-key header
///   is required" (an `Authorization: Bearer` header alone is not enough: this proves the gateway
///   sends Anthropic's credential header); a key starting with `sk-ant-bad` or equal to `invalid`
///   → 401 "invalid x-api-key". Then a missing `anthropic-version` → 400 `invalid_request_error`
///   "anthropic-version: header is required" (what the real API answers).
/// - `POST /v1/messages`: validated like the real API (see the module docs; required `model`,
///   `max_tokens`, `messages`), 404 `not_found_error` for a model starting with `no-such-`. The
///   answer's content blocks:
///   1. a `thinking` block ([`ANTHROPIC_MOCK_THINKING`], with a signature) first when `thinking`
///      is `enabled` or `adaptive`;
///   2. if the last user message has `tool_result` blocks: text [`TOOL_RESULT_PREFIX`] + their
///      texts joined with `"; "`, `stop_reason: end_turn`;
///   3. else if the request has `tools` (and `tool_choice` is not `none`): text
///      [`ANTHROPIC_TOOL_PREAMBLE`] then a `tool_use` block (`toolu_…` id) for the first tool (or
///      the one `tool_choice` names; or, when the last user text starts with `parallel:`, one
///      block per tool, in order) whose input has every required property of its schema (or,
///      with none required, its first property), strings [`MOCK_TOOL_STRING`], `stop_reason:
///      tool_use`;
///   4. else text: what follows `echo:` (one space dropped) in the last user message's text, or
///      [`ANTHROPIC_MOCK_REPLY`]; cut to `max_tokens` words with `stop_reason: max_tokens`, else
///      `end_turn`.
///
///   Usage: `input_tokens` = words of the system prompt, every text block and every tool result;
///   `output_tokens` = words of the answer's text pieces and thinking plus one per 8 bytes of
///   tool input JSON; both cache counts 0. Ids: `msg_01Mock<N>` (N counts messages requests).
///   With `"stream": true` the same answer as SSE (see [`split_body`] for the chunking): each
///   text piece one `text_delta`, thinking in two `thinking_delta`s then a `signature_delta`,
///   tool input as `input_json_delta`s (an empty one first, then the JSON in three pieces).
///   A last user text starting with `fail: <status>` answers that status with the matching
///   error type; `fail-stream:` (streaming only) sends a text delta, then an `error` event
///   (`overloaded_error`) and ends the stream, as the real API does when it fails mid-stream.
/// - `POST /v1/messages/count_tokens`: `{"input_tokens": N}` counted as above (no `max_tokens`).
/// - `GET /v1/models` (`limit`, `after_id` honoured): the [`ANTHROPIC_MOCK_MODELS`] with
///   `has_more`, `first_id`, `last_id`; `GET /v1/models/{id}`: that model, else 404.
/// - Anything else: 404 `not_found_error`.
///
/// Every answer carries `request-id: req_011CMock<N>` and `anthropic-organization-id`; errors use
/// `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn anthropic_handler() -> Handler {
    let state = Arc::new(State::default());
    Arc::new(move |req: &RecordedRequest| {
        let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let request_id = format!("req_011CMock{n:012}");
        let resp = route(req, &state, &request_id);
        with_headers(resp, &request_id)
    })
}

fn with_headers(resp: MockResponse, request_id: &str) -> MockResponse {
    let extra = [
        ("request-id", request_id.to_string()),
        (
            "anthropic-organization-id",
            "00000000-0000-4000-8000-000000000000".to_string(),
        ),
        ("anthropic-ratelimit-requests-limit", "4000".to_string()),
        ("anthropic-ratelimit-requests-remaining", "3999".to_string()),
        ("via", "1.1 google".to_string()),
    ];
    let add = |headers: &mut Vec<(String, String)>| {
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    };
    match resp {
        MockResponse::Json {
            status,
            body,
            mut headers,
        } => {
            add(&mut headers);
            MockResponse::Json { status, body, headers }
        }
        MockResponse::Stream {
            status,
            mut headers,
            steps,
        } => {
            add(&mut headers);
            MockResponse::Stream { status, headers, steps }
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Body builders
// ---------------------------------------------------------------------------------------------

/// The Anthropic error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic's error envelope: `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn anthropic_error_body(kind: &str, message: &str, request_id: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id})
}

fn error(status: u16, message: &str, request_id: &str) -> MockResponse {
    json_response(
        status,
        &anthropic_error_body(anthropic_error_type(status), message, request_id),
    )
}

fn invalid(message: impl AsRef<str>, request_id: &str) -> MockResponse {
    error(400, message.as_ref(), request_id)
}

fn json_response(status: u16, body: &Value) -> MockResponse {
    MockResponse::Json {
        status,
        body: to_anthropic_json(body),
        headers: Vec::new(),
    }
}

/// Compact JSON with keys in [`ANTHROPIC_KEY_ORDER`] (whatever order the `Value` keeps).
pub fn to_anthropic_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_ordered(v, ANTHROPIC_KEY_ORDER, &mut out);
    out
}

fn write_ordered(v: &Value, order: &[&str], out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (order.iter().position(|o| o == k).unwrap_or(usize::MAX), k.as_str()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("serialise JSON key");
                out.push(b':');
                write_ordered(&map[k], order, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ordered(item, order, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("serialise JSON"),
    }
}

/// One Anthropic SSE event: `event: <data.type>\ndata: <compact JSON>\n\n`.
pub fn anthropic_sse(v: &Value) -> Vec<u8> {
    let kind = v["type"].as_str().expect("an Anthropic event has a type");
    let mut out = format!("event: {kind}\ndata: ").into_bytes();
    write_ordered(v, ANTHROPIC_KEY_ORDER, &mut out);
    out.extend_from_slice(b"\n\n");
    out
}

/// The `ping` event exactly as api.anthropic.com sends it (note the space in its JSON).
pub const ANTHROPIC_PING: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

/// Cuts a stream body into [`Step::Send`]s of irregular sizes (1, 7, 2, 23, 5, 61, 3, 11, 37, 4
/// bytes, repeating), plus a cut inside the first and the last multi-byte UTF-8 character, after
/// the first `\r` and between the two newlines of the first `\n\n`, with a 1 ms pause after every
/// 16th chunk so the receiver sees many separate reads. Concatenated, the chunks are `body`.
pub fn split_body(body: &[u8]) -> Vec<Step> {
    const SIZES: [usize; 10] = [1, 7, 2, 23, 5, 61, 3, 11, 37, 4];
    let mut cuts = BTreeSet::new();
    let mut pos = 0;
    for i in 0.. {
        pos += SIZES[i % SIZES.len()];
        if pos >= body.len() {
            break;
        }
        cuts.insert(pos);
    }
    // Just after a lead byte is inside its character.
    if let Some(p) = body.iter().position(|b| *b >= 0xC0) {
        cuts.insert(p + 1);
    }
    if let Some(p) = body.iter().rposition(|b| *b >= 0xC0) {
        cuts.insert(p + 1);
    }
    if let Some(p) = body.iter().position(|b| *b == b'\r') {
        cuts.insert(p + 1);
    }
    if let Some(p) = body.windows(2).position(|w| w == b"\n\n") {
        cuts.insert(p + 1);
    }
    cuts.retain(|c| *c > 0 && *c < body.len());
    let mut steps = Vec::new();
    let mut start = 0;
    for (i, end) in cuts.into_iter().chain([body.len()]).enumerate() {
        if end > start {
            steps.push(Step::Send(body[start..end].to_vec()));
            start = end;
        }
        if i % 16 == 15 {
            steps.push(Step::Sleep(Duration::from_millis(1)));
        }
    }
    steps
}

/// The text of a `tool_result` block's `content`: a string, or its text blocks concatenated.
pub fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The text after `echo:` (one following space dropped), else `default`.
pub fn echo_or(text: &str, default: &str) -> String {
    match text.strip_prefix("echo:") {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_string(),
        None => default.to_string(),
    }
}

/// A made-up tool input for a JSON schema: every required property (or, with none required, the
/// first property), strings [`MOCK_TOOL_STRING`], numbers 1, booleans true, arrays and objects
/// empty. `{}` for a schema without properties.
pub fn mock_tool_input(schema: &Value) -> Value {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return json!({});
    };
    let mut names: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(props.keys().next().map(String::as_str));
    }
    let mut out = Map::new();
    for name in names {
        let ty = props
            .get(name)
            .and_then(|p| p.get("type"))
            .map(|t| match t {
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .unwrap_or("string")
                    .to_ascii_lowercase(),
                other => other.as_str().unwrap_or("string").to_ascii_lowercase(),
            })
            .unwrap_or_else(|| "string".into());
        let value = match ty.as_str() {
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => json!({}),
            _ => json!(MOCK_TOOL_STRING),
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Routing and validation
// ---------------------------------------------------------------------------------------------

fn route(req: &RecordedRequest, state: &State, rid: &str) -> MockResponse {
    let key = req.header("x-api-key").map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = key else {
        return error(401, "x-api-key header is required", rid);
    };
    if key.starts_with("sk-ant-bad") || key == "invalid" {
        return error(401, "invalid x-api-key", rid);
    }
    if req.header("anthropic-version").is_none_or(|v| v.trim().is_empty()) {
        return invalid("anthropic-version: header is required", rid);
    }
    let path = req.path_only();
    match (req.method.as_str(), path) {
        ("POST", "/v1/messages") => messages(req, state, rid),
        ("POST", "/v1/messages/count_tokens") => match parse(req, state, true, rid) {
            Ok(p) => json_response(200, &json!({"input_tokens": p.input_tokens})),
            Err(resp) => resp,
        },
        ("GET", "/v1/models") => list_models(req),
        ("GET", p) if p.starts_with("/v1/models/") => {
            let id = &p["/v1/models/".len()..];
            match ANTHROPIC_MOCK_MODELS.iter().find(|m| m.0 == id) {
                Some(m) => json_response(200, &model_object(m)),
                None => error(404, &format!("model: {id}"), rid),
            }
        }
        _ => error(404, "Not Found", rid),
    }
}

fn model_object((id, name, created): &(&str, &str, &str)) -> Value {
    json!({"type": "model", "id": id, "display_name": name, "created_at": created})
}

fn list_models(req: &RecordedRequest) -> MockResponse {
    let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20);
    let start = param("after_id")
        .and_then(|a| ANTHROPIC_MOCK_MODELS.iter().position(|m| m.0 == a))
        .map_or(0, |i| i + 1);
    let page: Vec<_> = ANTHROPIC_MOCK_MODELS.iter().skip(start).take(limit).collect();
    let has_more = start + page.len() < ANTHROPIC_MOCK_MODELS.len();
    json_response(
        200,
        &json!({
            "data": page.iter().map(|m| model_object(m)).collect::<Vec<_>>(),
            "has_more": has_more,
            "first_id": page.first().map(|m| m.0),
            "last_id": page.last().map(|m| m.0),
        }),
    )
}

/// A validated Messages request.
struct Parsed {
    model: String,
    max_tokens: u64,
    stream: bool,
    thinking: bool,
    /// Messages with `content` normalised to an array of blocks.
    messages: Vec<(String, Vec<Value>)>,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    input_tokens: u64,
}

const USER_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_result",
    "container_upload",
];
const ASSISTANT_BLOCKS: &[&str] = &[
    "text",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
];

fn parse(req: &RecordedRequest, state: &State, count_only: bool, rid: &str) -> Result<Parsed, MockResponse> {
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| invalid(format!("There was an error parsing the body of your request: {e}"), rid))?;
    let Some(obj) = body.as_object() else {
        return Err(invalid("Input should be a valid dictionary", rid));
    };
    for k in obj.keys() {
        let known = KNOWN_FIELDS.contains(&k.as_str());
        if !(known || count_only && k == "stream") {
            return Err(invalid(format!("{k}: Extra inputs are not permitted"), rid));
        }
    }
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(invalid("model: Input should be a valid string", rid)),
        None => return Err(invalid("model: Field required", rid)),
    };
    if model.starts_with("no-such-") {
        return Err(error(404, &format!("model: {model}"), rid));
    }
    let max_tokens = match obj.get("max_tokens") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => return Err(invalid("max_tokens: Input should be greater than or equal to 1", rid)),
        },
        None if count_only => 0,
        None => return Err(invalid("max_tokens: Field required", rid)),
    };
    if let Some(meta) = obj.get("metadata").filter(|m| !m.is_null()) {
        let Some(meta) = meta.as_object() else {
            return Err(invalid("metadata: Input should be a valid dictionary", rid));
        };
        if let Some(k) = meta.keys().find(|k| *k != "user_id") {
            return Err(invalid(format!("metadata.{k}: Extra inputs are not permitted"), rid));
        }
    }
    match obj.get("service_tier") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "auto" || t == "standard_only" => {}
        Some(_) => return Err(invalid("service_tier: Input should be 'auto' or 'standard_only'", rid)),
    }
    match obj.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(invalid("stop_sequences: Input should be a valid list", rid)),
    }
    for (name, max) in [("temperature", 1.0), ("top_p", 1.0)] {
        if let Some(v) = obj.get(name).filter(|v| !v.is_null()) {
            match v.as_f64() {
                Some(x) if (0.0..=max).contains(&x) => {}
                _ => {
                    return Err(invalid(
                        format!("{name}: Input should be less than or equal to {max}"),
                        rid,
                    ))
                }
            }
        }
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream: Input should be a valid boolean", rid)),
    };

    let mut input_tokens = 0u64;
    match obj.get("system") {
        None => {}
        Some(Value::String(s)) => input_tokens += mock_token_count(s),
        Some(Value::Array(blocks)) => {
            for (j, b) in blocks.iter().enumerate() {
                if b["type"] != "text" {
                    return Err(invalid(format!("system.{j}.type: Input should be 'text'"), rid));
                }
                let text = b["text"].as_str().unwrap_or("");
                if text.is_empty() {
                    return Err(invalid("system: text content blocks must be non-empty", rid));
                }
                input_tokens += mock_token_count(text);
            }
        }
        Some(_) => return Err(invalid("system: Input should be a valid string", rid)),
    }

    let Some(raw_messages) = obj.get("messages") else {
        return Err(invalid("messages: Field required", rid));
    };
    let Some(raw_messages) = raw_messages.as_array() else {
        return Err(invalid("messages: Input should be a valid list", rid));
    };
    if raw_messages.is_empty() {
        return Err(invalid("messages: at least one message is required", rid));
    }
    let mut messages = Vec::with_capacity(raw_messages.len());
    for (i, m) in raw_messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        let allowed = match role {
            "user" => USER_BLOCKS,
            "assistant" => ASSISTANT_BLOCKS,
            "system" => return Err(invalid(
                "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.",
                rid,
            )),
            _ => return Err(invalid(format!("messages.{i}.role: Input should be 'user' or 'assistant'"), rid)),
        };
        let blocks = match &m["content"] {
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            Value::Null => return Err(invalid(format!("messages.{i}.content: Field required"), rid)),
            _ => {
                return Err(invalid(
                    format!("messages.{i}.content: Input should be a valid list"),
                    rid,
                ))
            }
        };
        let is_final_assistant = role == "assistant" && i + 1 == raw_messages.len();
        if blocks.is_empty() && !is_final_assistant {
            return Err(invalid(
                format!("messages.{i}: all messages must have non-empty content except for the optional final assistant message"),
                rid,
            ));
        }
        for (j, b) in blocks.iter().enumerate() {
            let ty = b["type"].as_str().unwrap_or("");
            if !allowed.contains(&ty) {
                return Err(invalid(
                    format!("messages.{i}.content.{j}.type: Input tag '{ty}' found using 'type' does not match any of the expected tags: {}", allowed.join(", ")),
                    rid,
                ));
            }
            match ty {
                "text" => {
                    let text = b["text"].as_str().unwrap_or("");
                    if text.is_empty() {
                        return Err(invalid("messages: text content blocks must be non-empty", rid));
                    }
                    if text.trim().is_empty() {
                        return Err(invalid(
                            "messages: text content blocks must contain non-whitespace text",
                            rid,
                        ));
                    }
                    input_tokens += mock_token_count(text);
                }
                "image" => {
                    let src = &b["source"];
                    let ok = match src["type"].as_str() {
                        Some("base64") => {
                            if !matches!(
                                src["media_type"].as_str(),
                                Some("image/jpeg" | "image/png" | "image/gif" | "image/webp")
                            ) {
                                return Err(invalid(format!("messages.{i}.content.{j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"), rid));
                            }
                            src["data"]
                                .as_str()
                                .is_some_and(|d| !d.is_empty() && STANDARD.decode(d).is_ok())
                        }
                        Some("url") => src["url"].as_str().is_some_and(|u| u.starts_with("http")),
                        Some("file") => src["file_id"].is_string(),
                        _ => false,
                    };
                    if !ok {
                        return Err(invalid(
                            format!("messages.{i}.content.{j}.image.source: Invalid image source"),
                            rid,
                        ));
                    }
                }
                "tool_result" => {
                    if b["tool_use_id"].as_str().is_none_or(str::is_empty) {
                        return Err(invalid(
                            format!("messages.{i}.content.{j}.tool_result.tool_use_id: Field required"),
                            rid,
                        ));
                    }
                    input_tokens += mock_token_count(&tool_result_text(&b["content"]));
                }
                "tool_use" => {
                    let ok = b["id"].as_str().is_some_and(|id| {
                        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    });
                    if !ok {
                        return Err(invalid(
                            format!(
                                "messages.{i}.content.{j}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                            ),
                            rid,
                        ));
                    }
                    if !b["input"].is_object() {
                        return Err(invalid(
                            format!("messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary"),
                            rid,
                        ));
                    }
                }
                "thinking" => {
                    let sig = b["signature"].as_str().unwrap_or("");
                    let text = b["thinking"].as_str().unwrap_or("");
                    let issued = state.signatures.lock().unwrap_or_else(|e| e.into_inner());
                    if issued.get(sig).map(String::as_str) != Some(text) {
                        return Err(invalid(
                            format!("messages.{i}.content.{j}: Invalid `signature` in `thinking` block"),
                            rid,
                        ));
                    }
                }
                _ => {}
            }
        }
        messages.push((role.to_string(), blocks));
    }

    // Every tool_use must be answered in the next message, and every tool_result must answer a
    // tool_use of the previous message.
    for i in 0..messages.len() {
        let (role, blocks) = &messages[i];
        if role == "user" {
            let prev_ids: Vec<&str> = match i.checked_sub(1).map(|p| &messages[p]) {
                Some((r, b)) if r == "assistant" => b
                    .iter()
                    .filter(|x| x["type"] == "tool_use")
                    .filter_map(|x| x["id"].as_str())
                    .collect(),
                _ => Vec::new(),
            };
            for (j, b) in blocks.iter().enumerate() {
                if b["type"] == "tool_result" {
                    let id = b["tool_use_id"].as_str().unwrap_or("");
                    if !prev_ids.contains(&id) {
                        return Err(invalid(format!("messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."), rid));
                    }
                }
            }
        }
    }
    for i in 0..messages.len() {
        let (role, blocks) = &messages[i];
        if role != "assistant" {
            continue;
        }
        if let Some((_, next)) = messages.get(i + 1) {
            let answered: Vec<&str> = next
                .iter()
                .filter(|x| x["type"] == "tool_result")
                .filter_map(|x| x["tool_use_id"].as_str())
                .collect();
            let missing: Vec<&str> = blocks
                .iter()
                .filter(|x| x["type"] == "tool_use")
                .filter_map(|x| x["id"].as_str())
                .filter(|id| !answered.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(invalid(format!("messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i + 1, missing.join(", ")), rid));
            }
        }
    }

    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err(invalid("tools: Input should be a valid list", rid)),
    };
    for (i, t) in tools.iter().enumerate() {
        // Server tools (web_search_…, bash_…) carry a versioned type; custom tools need a schema.
        if t.get("type").is_some_and(|ty| ty != "custom") {
            continue;
        }
        let name_ok = t["name"].as_str().is_some_and(|n| {
            !n.is_empty() && n.len() <= 128 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !name_ok {
            return Err(invalid(
                format!("tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"),
                rid,
            ));
        }
        if t["input_schema"]["type"] != "object" {
            return Err(invalid(
                format!("tools.{i}.custom.input_schema.type: Input should be 'object'"),
                rid,
            ));
        }
    }
    let tool_choice = obj.get("tool_choice").filter(|v| !v.is_null()).cloned();
    if let Some(tc) = &tool_choice {
        match tc["type"].as_str() {
            Some("auto" | "any" | "none") => {}
            Some("tool") if tc["name"].is_string() => {}
            Some("tool") => return Err(invalid("tool_choice.tool.name: Field required", rid)),
            _ => return Err(invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", rid)),
        }
    }

    let thinking = match obj.get("thinking") {
        None | Some(Value::Null) => false,
        Some(t) => match t["type"].as_str() {
            Some("enabled") => {
                let Some(budget) = t["budget_tokens"].as_u64() else {
                    return Err(invalid("thinking.enabled.budget_tokens: Field required", rid));
                };
                if budget < 1024 {
                    return Err(invalid(
                        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                        rid,
                    ));
                }
                if !count_only && budget >= max_tokens {
                    return Err(invalid(
                        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                        rid,
                    ));
                }
                true
            }
            Some("adaptive") => true,
            Some("disabled") => false,
            _ => return Err(invalid("thinking: Input tag found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'", rid)),
        },
    };
    if thinking {
        if obj.get("temperature").and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
            return Err(invalid(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility",
                rid,
            ));
        }
        if obj.get("top_k").is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                "`top_k` must be unset when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility",
                rid,
            ));
        }
        if tool_choice
            .as_ref()
            .is_some_and(|tc| tc["type"] == "any" || tc["type"] == "tool")
        {
            return Err(invalid(
                "Thinking may not be enabled when tool_choice forces tool use.",
                rid,
            ));
        }
        // The assistant turn that made the tool calls being answered must start with its thinking.
        let n = messages.len();
        let answering_tools = messages
            .last()
            .is_some_and(|(r, b)| r == "user" && b.iter().any(|x| x["type"] == "tool_result"));
        if answering_tools && n >= 2 {
            let (_, prev) = &messages[n - 2];
            let first = prev.first().and_then(|b| b["type"].as_str()).unwrap_or("");
            if !matches!(first, "thinking" | "redacted_thinking") {
                return Err(invalid(format!("messages.{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking", n - 2), rid));
            }
        }
    }

    Ok(Parsed {
        model,
        max_tokens,
        stream,
        thinking,
        messages,
        tools,
        tool_choice,
        input_tokens: input_tokens.max(1),
    })
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

enum Block {
    Thinking { text: String, signature: String },
    Text(String),
    ToolUse { id: String, name: String, input: Value },
}

impl Block {
    fn to_json(&self) -> Value {
        match self {
            Block::Thinking { text, signature } => {
                json!({"type": "thinking", "thinking": text, "signature": signature})
            }
            Block::Text(t) => json!({"type": "text", "text": t}),
            Block::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        }
    }

    fn output_tokens(&self) -> u64 {
        match self {
            Block::Thinking { text, .. } => mock_token_count(text),
            Block::Text(t) => mock_pieces(t).len() as u64,
            Block::ToolUse { input, .. } => (input.to_string().len() as u64).div_ceil(8),
        }
    }
}

fn messages(req: &RecordedRequest, state: &State, rid: &str) -> MockResponse {
    let p = match parse(req, state, false, rid) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let n = state.messages.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("msg_01Mock{n:014}");

    let last_user: &[Value] = match p.messages.last() {
        Some((role, blocks)) if role == "user" => blocks,
        _ => &[],
    };
    let user_text: String = last_user
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    if let Some(rest) = user_text.strip_prefix("fail:") {
        let status = rest.trim().parse::<u16>().unwrap_or(500);
        let message = match status {
            529 => "Overloaded".to_string(),
            429 => "Number of request tokens has exceeded your per-minute rate limit".to_string(),
            _ => format!("mock failure {status}"),
        };
        return error(status, &message, rid);
    }
    let tool_results: Vec<String> = last_user
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| tool_result_text(&b["content"]))
        .collect();

    let mut blocks = Vec::new();
    if p.thinking {
        let text = ANTHROPIC_MOCK_THINKING.to_string();
        let signature = STANDARD.encode(format!("mock-signature:{n}:{:016x}", fnv1a(text.as_bytes()) ^ n));
        state
            .signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(signature.clone(), text.clone());
        blocks.push(Block::Thinking { text, signature });
    }
    let chosen_tools: Vec<&Value> = match p.tool_choice.as_ref().and_then(|tc| tc["type"].as_str()) {
        Some("none") => Vec::new(),
        Some("tool") => {
            let name = &p.tool_choice.as_ref().unwrap()["name"];
            p.tools.iter().filter(|t| &t["name"] == name).take(1).collect()
        }
        _ if user_text.starts_with("parallel:") => p.tools.iter().collect(),
        _ => p.tools.iter().take(1).collect(),
    };
    let stop_reason;
    if !tool_results.is_empty() {
        blocks.push(Block::Text(format!("{TOOL_RESULT_PREFIX}{}", tool_results.join("; "))));
        stop_reason = "end_turn";
    } else if !chosen_tools.is_empty() {
        blocks.push(Block::Text(ANTHROPIC_TOOL_PREAMBLE.to_string()));
        for tool in chosen_tools {
            let t = state.tool_uses.fetch_add(1, Ordering::SeqCst) + 1;
            blocks.push(Block::ToolUse {
                id: format!("toolu_01Mock{t:018}"),
                name: tool["name"].as_str().unwrap_or("tool").to_string(),
                input: mock_tool_input(&tool["input_schema"]),
            });
        }
        stop_reason = "tool_use";
    } else {
        let reply = echo_or(&user_text, ANTHROPIC_MOCK_REPLY);
        let pieces = mock_pieces(&reply);
        if pieces.len() as u64 > p.max_tokens {
            blocks.push(Block::Text(pieces[..p.max_tokens as usize].concat()));
            stop_reason = "max_tokens";
        } else {
            blocks.push(Block::Text(reply.clone()));
            stop_reason = "end_turn";
        }
    }
    let output_tokens: u64 = blocks.iter().map(Block::output_tokens).sum();
    let usage = json!({
        "input_tokens": p.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    });

    if !p.stream {
        return json_response(
            200,
            &json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": p.model,
                "content": blocks.iter().map(Block::to_json).collect::<Vec<_>>(),
                "stop_reason": stop_reason,
                "stop_sequence": null,
                "usage": usage,
            }),
        );
    }

    let fail_midstream = user_text.starts_with("fail-stream:");
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut body = anthropic_sse(&json!({
        "type": "message_start",
        "message": {
            "id": id, "type": "message", "role": "assistant", "model": p.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage,
        }
    }));
    for (index, block) in blocks.iter().enumerate() {
        let start = match block {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": ""}),
            Block::Text(_) => json!({"type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        body.extend(anthropic_sse(
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if index == 0 {
            body.extend_from_slice(ANTHROPIC_PING);
        }
        let mut deltas = Vec::new();
        match block {
            Block::Thinking { text, signature } => {
                let (a, b) = split_chars(text, 2);
                deltas.push(json!({"type": "thinking_delta", "thinking": a}));
                deltas.push(json!({"type": "thinking_delta", "thinking": b}));
                deltas.push(json!({"type": "signature_delta", "signature": signature}));
            }
            Block::Text(t) => {
                for piece in mock_pieces(t) {
                    deltas.push(json!({"type": "text_delta", "text": piece}));
                }
            }
            Block::ToolUse { input, .. } => {
                let json_text = input.to_string();
                deltas.push(json!({"type": "input_json_delta", "partial_json": ""}));
                let (a, rest) = split_chars(&json_text, 3);
                let (b, c) = split_chars(&rest, 2);
                for part in [a, b, c] {
                    if !part.is_empty() {
                        deltas.push(json!({"type": "input_json_delta", "partial_json": part}));
                    }
                }
            }
        }
        for delta in deltas {
            body.extend(anthropic_sse(
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
            if fail_midstream {
                body.extend(anthropic_sse(&json!({
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                    "request_id": rid,
                })));
                return stream_response(split_body(&body));
            }
        }
        body.extend(anthropic_sse(&json!({"type": "content_block_stop", "index": index})));
    }
    body.extend(anthropic_sse(&json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": output_tokens},
    })));
    body.extend(anthropic_sse(&json!({"type": "message_stop"})));
    stream_response(split_body(&body))
}

fn stream_response(steps: Vec<Step>) -> MockResponse {
    MockResponse::Stream {
        status: 200,
        headers: vec![
            (
                "content-type".to_string(),
                "text/event-stream; charset=utf-8".to_string(),
            ),
            ("cache-control".to_string(), "no-cache".to_string()),
        ],
        steps,
    }
}

/// Splits `s` at the char boundary nearest `len / parts` (first piece, rest).
fn split_chars(s: &str, parts: usize) -> (String, String) {
    let mut at = s.len() / parts.max(1);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    (s[..at].to_string(), s[at..].to_string())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", mock.base_url()))
            .header("x-api-key", "sk-ant-test")
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Parses an Anthropic SSE body, checking every event's `event:` line against its `type`.
    fn events(body: &str) -> Vec<Value> {
        body.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (event, data) = e.split_once('\n').expect("event and data lines");
                let kind = event.strip_prefix("event: ").expect("event: line");
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data: line")).unwrap();
                assert_eq!(v["type"], kind, "{e}");
                v
            })
            .collect()
    }

    fn weather_tool() -> Value {
        json!({"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
            "properties": {"unit": {"type": "string"}, "city": {"type": "string"}}, "required": ["city"]}})
    }

    #[tokio::test]
    async fn auth_and_version_are_required() {
        let mock = anthropic().await;
        let body =
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let resp = client()
            .post(format!("{}/v1/messages", mock.base_url()))
            .bearer_auth("sk-ant-test")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()["request-id"].to_str().unwrap().starts_with("req_"));
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "authentication_error");
        assert_eq!(err["error"]["message"], "x-api-key header is required");

        let resp = client()
            .post(format!("{}/v1/messages", mock.base_url()))
            .header("x-api-key", "sk-ant-test")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);

        let resp = client()
            .post(format!("{}/v1/messages", mock.base_url()))
            .header("x-api-key", "sk-ant-bad-1")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"]["message"],
            "invalid x-api-key"
        );
    }

    #[tokio::test]
    async fn text_message_non_stream() {
        let mock = anthropic().await;
        let resp = post(
            &mock,
            "/v1/messages",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "system": "be brief", "messages": [{"role": "user", "content": "Say hi please"}]}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let text = resp.text().await.unwrap();
        assert!(text.starts_with("{\"id\":\"msg_01Mock"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"], json!([{"type": "text", "text": ANTHROPIC_MOCK_REPLY}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["stop_sequence"].is_null());
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 4);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(v["usage"]["cache_creation_input_tokens"], 0);

        let v: Value = post(
            &mock,
            "/v1/messages",
            &json!({"model": "m", "max_tokens": 2,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "echo: a b c"}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(v["content"][0]["text"], "a b ");
        assert_eq!(v["stop_reason"], "max_tokens");
    }

    #[tokio::test]
    async fn text_stream_is_spec_exact_and_chunked_inside_utf8() {
        let mock = anthropic().await;
        let resp = post(
            &mock,
            "/v1/messages",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "echo: Grüße 世界 🚀 done"}]}),
        )
        .await;
        assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
        assert_eq!(resp.headers()["transfer-encoding"], "chunked");
        let text = resp.text().await.unwrap();
        let evs = events(&text);
        let kinds: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds[..3], ["message_start", "content_block_start", "ping"]);
        assert_eq!(
            kinds[kinds.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        let deltas: String = evs
            .iter()
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| e["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Grüße 世界 🚀 done");
        assert_eq!(evs[0]["message"]["usage"]["output_tokens"], 1);
        assert_eq!(evs[0]["message"]["content"], json!([]));
        let delta = &evs[evs.len() - 2];
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 4);
        assert!(text.contains("event: ping\ndata: {\"type\": \"ping\"}\n\n"));

        // The steps really cut inside a multi-byte character and inside "\n\n".
        let body = text.as_bytes();
        let steps = split_body(body);
        let sends: Vec<&Vec<u8>> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(b) => Some(b),
                _ => None,
            })
            .collect();
        assert!(sends.len() > 20);
        assert_eq!(sends.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>(), body);
        assert!(sends.iter().any(|b| std::str::from_utf8(b).is_err()));
        assert!(sends.iter().any(|b| b.ends_with(b"\n") && !b.ends_with(b"\n\n")));
    }

    #[tokio::test]
    async fn tool_use_then_tool_result() {
        let mock = anthropic().await;
        let tools = json!([weather_tool()]);
        let first = json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        let v: Value = post(&mock, "/v1/messages", &first).await.json().await.unwrap();
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            v["content"][0],
            json!({"type": "text", "text": ANTHROPIC_TOOL_PREAMBLE})
        );
        let call = &v["content"][1];
        assert_eq!(call["type"], "tool_use");
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["input"], json!({"city": MOCK_TOOL_STRING}));
        let id = call["id"].as_str().unwrap();
        assert!(id.starts_with("toolu_01"), "{id}");

        // Streamed: the input arrives as several input_json_delta fragments.
        let mut streamed = first.clone();
        streamed["stream"] = json!(true);
        let evs = events(&post(&mock, "/v1/messages", &streamed).await.text().await.unwrap());
        let starts: Vec<&Value> = evs.iter().filter(|e| e["type"] == "content_block_start").collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(starts[1]["index"], 1);
        assert_eq!(starts[1]["content_block"]["type"], "tool_use");
        assert_eq!(starts[1]["content_block"]["input"], json!({}));
        let fragments: Vec<&str> = evs
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert!(fragments.len() >= 3, "{fragments:?}");
        assert_eq!(fragments[0], "");
        let joined: Value = serde_json::from_str(&fragments.concat()).unwrap();
        assert_eq!(joined, json!({"city": MOCK_TOOL_STRING}));
        assert_eq!(evs[evs.len() - 2]["delta"]["stop_reason"], "tool_use");

        let follow_up = json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": tools,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": v["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
                "content": [{"type": "text", "text": "18°C and sunny"}]}]}
        ]});
        let v: Value = post(&mock, "/v1/messages", &follow_up).await.json().await.unwrap();
        assert_eq!(v["content"][0]["text"], "The tool said: 18°C and sunny");
        assert_eq!(v["stop_reason"], "end_turn");

        // A tool_result for an unknown id, or a tool_use left unanswered, is a 400.
        let mut bad = follow_up.clone();
        bad["messages"][2]["content"][0]["tool_use_id"] = json!("toolu_other");
        let resp = post(&mock, "/v1/messages", &bad).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains("unexpected `tool_use_id`"));
        let mut bad = follow_up.clone();
        bad["messages"][2]["content"] = json!("thanks");
        let resp = post(&mock, "/v1/messages", &bad).await;
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.unwrap().contains("without `tool_result` blocks"));
    }

    #[tokio::test]
    async fn thinking_blocks_and_signatures() {
        let mock = anthropic().await;
        let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 2048, "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Hi"}]});
        let evs = events(&post(&mock, "/v1/messages", &req).await.text().await.unwrap());
        assert_eq!(evs[1]["content_block"], json!({"type": "thinking", "thinking": ""}));
        let thinking: String = evs
            .iter()
            .filter(|e| e["delta"]["type"] == "thinking_delta")
            .map(|e| e["delta"]["thinking"].as_str().unwrap())
            .collect();
        assert_eq!(thinking, ANTHROPIC_MOCK_THINKING);
        let signature = evs
            .iter()
            .find(|e| e["delta"]["type"] == "signature_delta")
            .map(|e| e["delta"]["signature"].as_str().unwrap().to_string())
            .unwrap();
        let text_start = evs
            .iter()
            .find(|e| e["type"] == "content_block_start" && e["index"] == 1)
            .unwrap();
        assert_eq!(text_start["content_block"]["type"], "text");

        // Sending the thinking back works with the issued signature, not with another.
        let mut next = json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": ANTHROPIC_MOCK_THINKING, "signature": signature},
                    {"type": "text", "text": ANTHROPIC_MOCK_REPLY}]},
                {"role": "user", "content": "Again"}]});
        let v: Value = post(&mock, "/v1/messages", &next).await.json().await.unwrap();
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][1]["type"], "text");
        next["messages"][1]["content"][0]["signature"] = json!("forged");
        assert_eq!(post(&mock, "/v1/messages", &next).await.status(), 400);

        // Real-API constraints around thinking.
        for (patch, needle) in [
            (json!({"temperature": 0.5}), "temperature"),
            (json!({"max_tokens": 1024}), "max_tokens"),
            (
                json!({"tools": [weather_tool()], "tool_choice": {"type": "any"}}),
                "tool_choice",
            ),
        ] {
            let mut r = req.clone();
            for (k, v) in patch.as_object().unwrap() {
                r[k] = v.clone();
            }
            let resp = post(&mock, "/v1/messages", &r).await;
            assert_eq!(resp.status(), 400, "{patch}");
            assert!(resp.text().await.unwrap().contains(needle), "{patch}");
        }
    }

    #[tokio::test]
    async fn validation_matches_the_real_api() {
        let mock = anthropic().await;
        let base =
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let cases = [
            (
                json!({"stream_options": {"include_usage": true}}),
                400,
                "stream_options: Extra inputs are not permitted",
            ),
            (json!({"max_tokens": null}), 400, "max_tokens"),
            (
                json!({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}),
                400,
                "Unexpected role \"system\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
                400,
                "text content blocks must be non-empty",
            ),
            (
                json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}]}),
                400,
                "non-empty content",
            ),
            (json!({"model": "no-such-model"}), 404, "model: no-such-model"),
        ];
        for (patch, status, needle) in cases {
            let mut r = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    r.as_object_mut().unwrap().remove(k);
                } else {
                    r[k] = v.clone();
                }
            }
            let resp = post(&mock, "/v1/messages", &r).await;
            assert_eq!(resp.status().as_u16(), status, "{patch}");
            let err: Value = resp.json().await.unwrap();
            assert_eq!(err["error"]["type"], anthropic_error_type(status));
            assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{err}");
        }
        let resp = post(
            &mock,
            "/v1/messages",
            &json!({"model": "c", "max_tokens": 5,
            "messages": [{"role": "user", "content": "fail: 529"}]}),
        )
        .await;
        assert_eq!(resp.status(), 529);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "overloaded_error");
    }

    #[tokio::test]
    async fn midstream_error_event() {
        let mock = anthropic().await;
        let resp = post(
            &mock,
            "/v1/messages",
            &json!({"model": "c", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "fail-stream: now"}]}),
        )
        .await;
        let evs = events(&resp.text().await.unwrap());
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "error");
        assert_eq!(last["error"]["type"], "overloaded_error");
        assert_eq!(evs[evs.len() - 2]["type"], "content_block_delta");
    }

    #[tokio::test]
    async fn parallel_tool_use_and_results() {
        let mock = anthropic().await;
        let time_tool = json!({"name": "get_time", "input_schema": {"type": "object",
            "properties": {"tz": {"type": "string"}}, "required": ["tz"]}});
        let tools = json!([weather_tool(), time_tool]);
        let first = json!({"model": "c", "max_tokens": 300, "stream": true, "tools": tools,
            "messages": [{"role": "user", "content": "parallel: weather and time"}]});
        let evs = events(&post(&mock, "/v1/messages", &first).await.text().await.unwrap());
        let calls: Vec<&Value> = evs
            .iter()
            .filter(|e| e["type"] == "content_block_start" && e["content_block"]["type"] == "tool_use")
            .collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["index"], 1);
        assert_eq!(calls[1]["index"], 2);
        assert_eq!(calls[1]["content_block"]["name"], "get_time");
        let ids: Vec<&str> = calls
            .iter()
            .map(|c| c["content_block"]["id"].as_str().unwrap())
            .collect();

        let mut second = json!({"model": "c", "max_tokens": 300, "tools": tools, "messages": [
            {"role": "user", "content": "parallel: weather and time"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": ids[0], "name": "get_weather", "input": {"city": MOCK_TOOL_STRING}},
                {"type": "tool_use", "id": ids[1], "name": "get_time", "input": {"tz": MOCK_TOOL_STRING}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": ids[0], "content": "sunny"},
                {"type": "tool_result", "tool_use_id": ids[1], "content": [{"type": "text", "text": "noon"}], "is_error": true}]}
        ]});
        let v: Value = post(&mock, "/v1/messages", &second).await.json().await.unwrap();
        assert_eq!(v["content"][0]["text"], "The tool said: sunny; noon");
        // The results split over two user messages is what the real API rejects.
        let results = second["messages"][2]["content"].as_array().unwrap().clone();
        second["messages"][2]["content"] = json!([results[0]]);
        second["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "user", "content": [results[1]]}));
        assert_eq!(post(&mock, "/v1/messages", &second).await.status(), 400);
    }

    #[tokio::test]
    async fn count_tokens_and_models() {
        let mock = anthropic().await;
        let resp = post(
            &mock,
            "/v1/messages/count_tokens",
            &json!({"model": "claude-sonnet-4-5",
            "system": "one two", "messages": [{"role": "user", "content": "three four five"}]}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"input_tokens": 5}));

        let get = |path: &str| {
            client()
                .get(format!("{}{path}", mock.base_url()))
                .header("x-api-key", "k")
                .header("anthropic-version", "2023-06-01")
                .send()
        };
        let list: Value = get("/v1/models").await.unwrap().json().await.unwrap();
        assert_eq!(
            list["data"][0],
            json!({"type": "model", "id": "claude-sonnet-4-5",
            "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"})
        );
        assert_eq!(list["has_more"], false);
        assert_eq!(list["first_id"], "claude-sonnet-4-5");
        let page: Value = get("/v1/models?limit=1&after_id=claude-sonnet-4-5")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        assert_eq!(page["data"][0]["id"], "claude-haiku-4-5");
        assert_eq!(page["has_more"], true);
        assert_eq!(get("/v1/models/claude-haiku-4-5").await.unwrap().status(), 200);
        assert_eq!(get("/v1/models/nope").await.unwrap().status(), 404);
    }

    #[test]
    fn made_up_tool_inputs_follow_the_schema() {
        assert_eq!(mock_tool_input(&json!({"type": "object"})), json!({}));
        assert_eq!(
            mock_tool_input(&json!({"type": "object", "properties": {"location": {"type": "string"}}})),
            json!({"location": MOCK_TOOL_STRING})
        );
        assert_eq!(
            mock_tool_input(&json!({"type": "object", "properties": {"n": {"type": "integer"},
                "q": {"type": ["string", "null"]}, "x": {"type": "string"}}, "required": ["q", "n"]})),
            json!({"q": MOCK_TOOL_STRING, "n": 1})
        );
    }
}
