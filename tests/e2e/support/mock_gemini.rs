//! A mock Google Gemini provider (generativelanguage.googleapis.com's native REST wire format)
//! for end-to-end tests.
//!
//! [`gemini()`] starts a [`MockUpstream`] running [`gemini_handler`]; see that function for exactly
//! what it answers. Point the gateway at `<base_url>/v1beta`. Bodies look like Google's: JSON
//! responses pretty-printed with two-space indentation, SSE events as `data: <JSON>\r\n\r\n` with
//! Google's odd spacing (`{"key": value,"next": value}`), streams sent as many small HTTP chunks cut
//! inside multi-byte UTF-8 characters and inside the `\r\n\r\n` separator
//! ([`super::mock_anthropic::split_body`]).
//!
//! Validation mirrors the real API's where a translating gateway can go wrong: unknown fields
//! (top level, `generationConfig`, `thinkingConfig`, parts, function parameter schemas such as
//! `additionalProperties`) are rejected like Google's proto JSON parser does, roles must be
//! `user`/`model`, an OBJECT schema needs properties, function responses must match the calls of
//! the model turn before them, and — like Gemini 3 — the function calls of the current turn must
//! come back with the exact `thoughtSignature` this mock issued.

// A helper library for many tests: not every item is used by every build of the test binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::mock::{
    mock_embedding, mock_pieces, mock_token_count, Handler, MockResponse, MockUpstream, RecordedRequest, Step,
    MOCK_EMBED_DIMS,
};
use super::mock_anthropic::{echo_or, mock_tool_input, split_body, TOOL_RESULT_PREFIX};

/// Default text of the mock's answers (when the last user text does not start with `echo:`).
pub const GEMINI_MOCK_REPLY: &str = "Hello from Gemini mock";

/// The `thought: true` part the mock puts first when `thinkingConfig.includeThoughts` is true
/// (Gemini's thought summaries start with a bold title). `→` makes it multi-byte.
pub const GEMINI_MOCK_THOUGHT: &str = "**Planning the reply**\nThe user wants a short answer → reply briefly.";

/// The placeholder Gemini accepts instead of a thought signature for function calls it never
/// made (history from another provider).
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// `(id, displayName, supportedGenerationMethods, inputTokenLimit, outputTokenLimit, thinking)`.
pub type GeminiModel = (&'static str, &'static str, &'static [&'static str], u64, u64, bool);

/// The models listed at `GET /v1beta/models`.
pub const GEMINI_MOCK_MODELS: &[GeminiModel] = &[
    (
        "gemini-2.5-flash",
        "Gemini 2.5 Flash",
        &[
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        1_048_576,
        65_536,
        true,
    ),
    (
        "gemini-2.5-pro",
        "Gemini 2.5 Pro",
        &[
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        1_048_576,
        65_536,
        true,
    ),
    (
        "gemini-embedding-001",
        "Gemini Embedding 001",
        &[
            "embedContent",
            "countTextTokens",
            "countTokens",
            "asyncBatchEmbedContent",
        ],
        2_048,
        1,
        false,
    ),
];

/// Object keys in the order Google writes them; keys not listed follow alphabetically.
#[rustfmt::skip]
pub const GEMINI_KEY_ORDER: &[&str] = &[
    "candidates", "content", "parts", "text", "thought", "inlineData", "functionCall",
    "functionResponse", "id", "name", "args", "response", "thoughtSignature", "role",
    "finishReason", "avgLogprobs", "safetyRatings", "index", "usageMetadata", "promptTokenCount",
    "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount", "promptTokensDetails",
    "modality", "tokenCount", "thoughtsTokenCount", "modelVersion", "responseId", "models",
    "version", "displayName", "description", "inputTokenLimit", "outputTokenLimit",
    "supportedGenerationMethods", "temperature", "topP", "topK", "maxTemperature", "thinking",
    "nextPageToken", "embeddings", "embedding", "values", "totalTokens", "error", "code",
    "message", "status", "details", "@type", "reason", "domain", "metadata", "service",
];

const TOP_LEVEL_FIELDS: &[&str] = &[
    "model",
    "contents",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "systemInstruction",
    "system_instruction",
    "generationConfig",
    "generation_config",
    "cachedContent",
    "cached_content",
];

#[rustfmt::skip]
const GENERATION_CONFIG_FIELDS: &[&str] = &[
    "stopSequences", "stop_sequences", "responseMimeType", "response_mime_type", "responseSchema",
    "response_schema", "responseJsonSchema", "response_json_schema", "_responseJsonSchema",
    "responseModalities", "response_modalities", "candidateCount", "candidate_count",
    "maxOutputTokens", "max_output_tokens", "temperature", "topP", "top_p", "topK", "top_k", "seed",
    "presencePenalty", "presence_penalty", "frequencyPenalty", "frequency_penalty",
    "responseLogprobs", "response_logprobs", "logprobs", "enableEnhancedCivicAnswers",
    "speechConfig", "speech_config", "thinkingConfig", "thinking_config", "imageConfig",
    "image_config", "mediaResolution", "media_resolution",
];

const THINKING_CONFIG_FIELDS: &[&str] = &[
    "includeThoughts",
    "include_thoughts",
    "thinkingBudget",
    "thinking_budget",
    "thinkingLevel",
    "thinking_level",
];

#[rustfmt::skip]
const PART_FIELDS: &[&str] = &[
    "text", "inlineData", "inline_data", "fileData", "file_data", "functionCall", "function_call",
    "functionResponse", "function_response", "executableCode", "executable_code",
    "codeExecutionResult", "code_execution_result", "thought", "thoughtSignature",
    "thought_signature", "videoMetadata", "video_metadata", "partMetadata", "part_metadata",
    "mediaResolution", "media_resolution",
];

/// The data fields of a part (a `oneof`: exactly one must be set).
const PART_DATA_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "inline_data",
    "fileData",
    "file_data",
    "functionCall",
    "function_call",
    "functionResponse",
    "function_response",
    "executableCode",
    "executable_code",
    "codeExecutionResult",
    "code_execution_result",
];

/// Fields of Gemini's OpenAPI-subset `Schema` (function `parameters`).
#[rustfmt::skip]
const SCHEMA_FIELDS: &[&str] = &[
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "max_items",
    "minItems", "min_items", "properties", "required", "minProperties", "min_properties",
    "maxProperties", "max_properties", "minLength", "min_length", "maxLength", "max_length",
    "pattern", "example", "anyOf", "any_of", "propertyOrdering", "property_ordering", "default",
    "items", "minimum", "maximum",
];

/// Starts a mock Gemini provider ([`gemini_handler`]). Point the gateway at
/// `format!("{}/v1beta", mock.base_url())`.
pub async fn gemini() -> MockUpstream {
    MockUpstream::start(gemini_handler()).await
}

#[derive(Default)]
struct State {
    generations: AtomicU64,
    /// Every thought signature issued on a function call: signature → (name, args).
    signatures: Mutex<HashMap<String, (String, Value)>>,
}

/// The handler behind [`gemini()`]. It behaves like generativelanguage.googleapis.com (`/v1beta`
/// and `/v1` paths alike):
///
/// - **Auth first**: no (or an empty) `x-goog-api-key` header → 403 `PERMISSION_DENIED`
///   ("Method doesn't allow unregistered callers …"; a `?key=` query parameter is deliberately not
///   accepted, to prove the gateway sends the header); a key starting with `bad`, `gm-bad` or
///   equal to `invalid` → 400 `INVALID_ARGUMENT` "API key not valid. Please pass a valid API key."
///   with an `API_KEY_INVALID` ErrorInfo detail.
/// - `POST models/{model}:generateContent` and `:streamGenerateContent` (`?alt=sse` → SSE; without
///   it a JSON array of the chunks, like the real API): validated (see the module docs); a model
///   starting with `no-such-` → 404 `NOT_FOUND`. The candidate's parts:
///   1. with `generationConfig.thinkingConfig.includeThoughts: true`, a `{"text":
///      GEMINI_MOCK_THOUGHT, "thought": true}` part first (streamed in two chunks);
///   2. if the last content has `functionResponse` parts: text [`TOOL_RESULT_PREFIX`] + each
///      response's `result` (or `output`, `content`, `error`; else the response as JSON) joined
///      with `"; "` — but first, every model turn since the last user text must carry, on its
///      first `functionCall` part, the `thoughtSignature` this mock issued for that call (400
///      `INVALID_ARGUMENT` "Function call is missing a thought_signature …" or "Corrupted thought
///      signature." otherwise; [`SKIP_THOUGHT_SIGNATURE`] passes only for calls this mock never
///      made);
///   3. else if the request declares functions (and `functionCallingConfig.mode` is not `NONE`):
///      one `functionCall` part for the first function (or the first `allowedFunctionNames`; or,
///      when the last user text starts with `parallel:`, one part per function, in order), args
///      made up from its schema ([`mock_tool_input`], strings
///      [`MOCK_TOOL_STRING`](super::mock_anthropic::MOCK_TOOL_STRING)); the first part carries a
///      fresh `thoughtSignature` (standard base64 with `+`, `/` and `=`), the others none (as
///      Gemini does for parallel calls);
///   4. else text: what follows `echo:` in the last user text, or [`GEMINI_MOCK_REPLY`], cut to
///      `maxOutputTokens` words with `finishReason: MAX_TOKENS`. With thoughts, the first text
///      part carries a `thoughtSignature` and, streamed, a last chunk `{"text": ""}` carries the
///      finishReason (as Gemini 2.5 does).
///
///   `finishReason` is `STOP` otherwise (function calls included). Usage: `promptTokenCount` =
///   words of the system instruction and all text/function-response parts, `candidatesTokenCount`
///   = answer words (a function call: 1 + its args JSON bytes / 8), `thoughtsTokenCount` = thought
///   words, `totalTokenCount` the sum; `modelVersion` is the model, `responseId` `gmMock<N>`.
///   Streamed, every chunk has `usageMetadata` (prompt and total only until the last chunk, which
///   has the finishReason and full counts); text arrives two words per chunk.
///   A last user text starting with `fail: <status>` answers that status with the matching Google
///   status; `fail-stream:` (streaming only) sends one text chunk then a `data: {"error": {…503
///   UNAVAILABLE}}` event and ends.
/// - `POST models/{model}:batchEmbedContents` (each request's `model` must be `models/{model}`)
///   and `:embedContent`: [`mock_embedding`] of the parts' text, `outputDimensionality` values
///   (default [`MOCK_EMBED_DIMS`]).
/// - `POST models/{model}:countTokens`: `{"totalTokens": N, …}` counted as above.
/// - `GET models` (`pageSize`, `pageToken`): the [`GEMINI_MOCK_MODELS`]; `GET models/{model}`.
/// - Anything else: 404 `NOT_FOUND`.
pub fn gemini_handler() -> Handler {
    let state = Arc::new(State::default());
    Arc::new(move |req: &RecordedRequest| with_headers(route(req, &state)))
}

fn with_headers(resp: MockResponse) -> MockResponse {
    let extra = [
        ("vary", "Origin, X-Origin, Referer"),
        ("server", "scaffolding on HTTPServer2"),
        ("server-timing", "gfet4t7; dur=412"),
        ("x-xss-protection", "0"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-content-type-options", "nosniff"),
    ];
    let add = |headers: &mut Vec<(String, String)>| {
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
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
// JSON in Google's styles
// ---------------------------------------------------------------------------------------------

/// How Google formats a JSON body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoogleStyle {
    /// Two-space indented, `"key": value` (non-streamed responses and errors).
    Pretty,
    /// One line, `{"key": value,"next": value}` (SSE events).
    Sse,
}

/// `v` in Google's formatting, keys in [`GEMINI_KEY_ORDER`].
pub fn to_google_json(v: &Value, style: GoogleStyle) -> Vec<u8> {
    let mut out = Vec::new();
    write_google(v, style, 0, &mut out);
    out
}

fn write_google(v: &Value, style: GoogleStyle, depth: usize, out: &mut Vec<u8>) {
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    GEMINI_KEY_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX),
                    k.as_str(),
                )
            });
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if style == GoogleStyle::Pretty {
                    newline(out, depth + 1);
                }
                serde_json::to_writer(&mut *out, k).expect("serialise JSON key");
                out.extend_from_slice(b": ");
                write_google(&map[k], style, depth + 1, out);
            }
            if style == GoogleStyle::Pretty {
                newline(out, depth);
            }
            out.push(b'}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if style == GoogleStyle::Pretty {
                    newline(out, depth + 1);
                }
                write_google(item, style, depth + 1, out);
            }
            if style == GoogleStyle::Pretty {
                newline(out, depth);
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other).expect("serialise JSON"),
    }
}

/// One Gemini SSE event: `data: <JSON>\r\n\r\n`.
pub fn gemini_sse(v: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend(to_google_json(v, GoogleStyle::Sse));
    out.extend_from_slice(b"\r\n\r\n");
    out
}

fn json_response(status: u16, body: &Value) -> MockResponse {
    MockResponse::Json {
        status,
        body: to_google_json(body, GoogleStyle::Pretty),
        headers: vec![("content-type".into(), "application/json; charset=UTF-8".into())],
    }
}

/// The canonical Google status name for an HTTP status.
pub fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Google's error envelope: `{"error":{"code","message","status"}}`.
pub fn gemini_error_body(code: u16, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": google_status(code)}})
}

fn error(code: u16, message: &str) -> MockResponse {
    json_response(code, &gemini_error_body(code, message))
}

fn invalid(message: impl AsRef<str>) -> MockResponse {
    error(400, message.as_ref())
}

fn unknown_field(name: &str, at: Option<&str>) -> MockResponse {
    invalid(match at {
        Some(at) => format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."),
        None => {
            format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
        }
    })
}

/// A field in camelCase or snake_case (proto JSON accepts both).
fn field<'a>(obj: &'a Value, camel: &str, snake: &str) -> &'a Value {
    match obj.get(camel) {
        Some(v) => v,
        None => obj.get(snake).unwrap_or(&Value::Null),
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

fn route(req: &RecordedRequest, state: &State) -> MockResponse {
    let key = req.header("x-goog-api-key").map(str::trim).filter(|k| !k.is_empty());
    let Some(key) = key else {
        return error(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
    };
    if key.starts_with("bad") || key.starts_with("gm-bad") || key == "invalid" {
        return json_response(
            400,
            &json!({"error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}
                ]
            }}),
        );
    }
    let path = req.path_only();
    let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let Some(rest) = path.strip_prefix("/v1beta/").or_else(|| path.strip_prefix("/v1/")) else {
        return error(404, &format!("Not Found: {path}"));
    };
    match (req.method.as_str(), rest) {
        ("GET", "models") => list_models(param("pageSize"), param("pageToken")),
        ("GET", m) if m.starts_with("models/") && !m.contains(':') => {
            let id = &m["models/".len()..];
            match GEMINI_MOCK_MODELS.iter().find(|x| x.0 == id) {
                Some(x) => json_response(200, &model_object(x)),
                None => error(404, &format!("models/{id} is not found for API version v1beta, or is not supported for get. Call ListModels to see the list of available models and their supported methods.")),
            }
        }
        ("POST", m) if m.starts_with("models/") && m.contains(':') => {
            let (model, method) = m["models/".len()..].rsplit_once(':').unwrap_or(("", ""));
            if model.starts_with("no-such-") || model.is_empty() {
                return error(404, &format!("models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."));
            }
            let body: Value = match serde_json::from_slice(&req.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return invalid("Invalid JSON payload received. Unexpected token."),
            };
            match method {
                "generateContent" => generate(state, model, &body, None),
                "streamGenerateContent" => generate(state, model, &body, Some(param("alt").as_deref() == Some("sse"))),
                "batchEmbedContents" => batch_embed(model, &body),
                "embedContent" => embed_one(model, &body),
                "countTokens" => count_tokens(&body),
                other => error(404, &format!("Method not found: {other}")),
            }
        }
        _ => error(404, &format!("Not Found: {} {path}", req.method)),
    }
}

fn model_object(m: &GeminiModel) -> Value {
    let (id, name, methods, input, output, thinking) = *m;
    let mut v = json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": name,
        "description": format!("Mock of {name}"),
        "inputTokenLimit": input,
        "outputTokenLimit": output,
        "supportedGenerationMethods": methods,
    });
    if thinking {
        v["temperature"] = json!(1);
        v["topP"] = json!(0.95);
        v["topK"] = json!(64);
        v["maxTemperature"] = json!(2);
        v["thinking"] = json!(true);
    }
    v
}

fn list_models(page_size: Option<String>, page_token: Option<String>) -> MockResponse {
    let size = page_size
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(50);
    let start = page_token.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let page: Vec<Value> = GEMINI_MOCK_MODELS
        .iter()
        .skip(start)
        .take(size)
        .map(model_object)
        .collect();
    let mut body = json!({"models": page});
    if start + size < GEMINI_MOCK_MODELS.len() {
        body["nextPageToken"] = json!((start + size).to_string());
    }
    json_response(200, &body)
}

/// The text of a content's `text` parts (thoughts excluded).
fn parts_text(content: &Value) -> String {
    content["parts"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["thought"] != true)
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// What a `functionResponse.response` says: its `result`, `output`, `content` or `error` string,
/// else the whole response as JSON.
fn function_response_text(response: &Value) -> String {
    for key in ["result", "output", "content", "error"] {
        if let Some(s) = response.get(key).and_then(Value::as_str) {
            return s.to_string();
        }
    }
    response.to_string()
}

/// Words of every text part (thoughts excluded) and function response of a content.
fn count_parts(content: &Value) -> u64 {
    let mut n = 0;
    for p in content["parts"].as_array().into_iter().flatten() {
        if p["thought"] == true {
            continue;
        }
        if let Some(t) = p["text"].as_str() {
            n += mock_token_count(t);
        }
        let fr = field(p, "functionResponse", "function_response");
        if !fr.is_null() {
            n += mock_token_count(&function_response_text(&fr["response"]));
        }
    }
    n
}

fn count_prompt(body: &Value) -> u64 {
    let mut n = count_parts(field(body, "systemInstruction", "system_instruction"));
    for c in field(body, "contents", "contents").as_array().into_iter().flatten() {
        n += count_parts(c);
    }
    n.max(1)
}

fn count_tokens(body: &Value) -> MockResponse {
    let inner = field(body, "generateContentRequest", "generate_content_request");
    let n = count_prompt(if inner.is_null() { body } else { inner });
    json_response(
        200,
        &json!({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}),
    )
}

fn embed_values(model: &str, request: &Value, at: &str) -> Result<Value, MockResponse> {
    if let Some(m) = request.get("model").and_then(Value::as_str) {
        if m != format!("models/{model}") {
            return Err(invalid(format!("* BatchEmbedContentsRequest.{at}.model: Model \"{m}\" in the request does not match the model \"models/{model}\" of the URL\n")));
        }
    }
    let content = &request["content"];
    if content["parts"].as_array().is_none_or(Vec::is_empty) {
        return Err(invalid(format!(
            "* BatchEmbedContentsRequest.{at}.content.parts: contents.parts must not be empty.\n"
        )));
    }
    let dims = field(request, "outputDimensionality", "output_dimensionality")
        .as_u64()
        .map_or(MOCK_EMBED_DIMS, |d| d as usize);
    Ok(json!({"values": mock_embedding(&parts_text(content), dims)}))
}

fn batch_embed(model: &str, body: &Value) -> MockResponse {
    let Some(requests) = body["requests"].as_array().filter(|r| !r.is_empty()) else {
        return invalid("* BatchEmbedContentsRequest.requests: requests must not be empty.\n");
    };
    let mut embeddings = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        match embed_values(model, r, &format!("requests[{i}]")) {
            Ok(v) => embeddings.push(v),
            Err(resp) => return resp,
        }
    }
    json_response(200, &json!({"embeddings": embeddings}))
}

fn embed_one(model: &str, body: &Value) -> MockResponse {
    match embed_values(model, body, "content") {
        Ok(v) => json_response(200, &json!({"embedding": v})),
        Err(resp) => resp,
    }
}

// ---------------------------------------------------------------------------------------------
// generateContent
// ---------------------------------------------------------------------------------------------

fn validate_schema(schema: &Value, at: &str) -> Result<(), MockResponse> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    for k in obj.keys() {
        if !SCHEMA_FIELDS.contains(&k.as_str()) {
            return Err(unknown_field(k, Some(at)));
        }
    }
    let is_object = obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("object"));
    let props = obj.get("properties").and_then(Value::as_object);
    if is_object && props.is_none_or(|p| p.is_empty()) {
        return Err(invalid(format!(
            "* GenerateContentRequest.{at}.properties: should be non-empty for OBJECT type\n"
        )));
    }
    for (i, (_, p)) in props.into_iter().flatten().enumerate() {
        validate_schema(p, &format!("{at}.properties[{i}].value"))?;
    }
    if let Some(items) = obj.get("items") {
        validate_schema(items, &format!("{at}.items"))?;
    }
    for (i, alt) in field(schema, "anyOf", "any_of")
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_schema(alt, &format!("{at}.any_of[{i}]"))?;
    }
    Ok(())
}

/// The function declarations of a request, validated.
fn declarations(body: &Value) -> Result<Vec<Value>, MockResponse> {
    let mut out = Vec::new();
    for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
        let decls = field(tool, "functionDeclarations", "function_declarations");
        for (j, d) in decls.as_array().into_iter().flatten().enumerate() {
            let at = format!("tools[{i}].function_declarations[{j}]");
            let name_ok = d["name"].as_str().is_some_and(|n| {
                let mut cs = n.chars();
                n.len() <= 64
                    && cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && cs.all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
            });
            if !name_ok {
                return Err(invalid(format!("* GenerateContentRequest.{at}.name: Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64.\n")));
            }
            if let Some(params) = d.get("parameters") {
                validate_schema(params, &format!("{at}.parameters"))?;
            }
            out.push(d.clone());
        }
    }
    Ok(out)
}

fn validate(body: &Value) -> Result<(), MockResponse> {
    let obj = body.as_object().expect("checked by the caller");
    for k in obj.keys() {
        if !TOP_LEVEL_FIELDS.contains(&k.as_str()) {
            return Err(unknown_field(k, None));
        }
    }
    let gc = field(body, "generationConfig", "generation_config");
    if let Some(gc) = gc.as_object() {
        for k in gc.keys() {
            if !GENERATION_CONFIG_FIELDS.contains(&k.as_str()) {
                return Err(unknown_field(k, Some("generation_config")));
            }
        }
    }
    match field(gc, "stopSequences", "stop_sequences") {
        Value::Null => {}
        Value::Array(a) if a.iter().all(Value::is_string) && a.len() <= 5 => {}
        other => {
            return Err(invalid(format!(
                "Invalid value at 'generation_config.stop_sequences' (TYPE_STRING), {other}"
            )))
        }
    }
    let schema = field(gc, "responseSchema", "response_schema");
    if !schema.is_null() {
        validate_schema(schema, "generation_config.response_schema")?;
    }
    let tc = field(gc, "thinkingConfig", "thinking_config");
    if let Some(tc) = tc.as_object() {
        for k in tc.keys() {
            if !THINKING_CONFIG_FIELDS.contains(&k.as_str()) {
                return Err(unknown_field(k, Some("generation_config.thinking_config")));
            }
        }
    }
    let contents = match body.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ))
        }
    };
    for (i, c) in contents.iter().enumerate() {
        match c.get("role").and_then(Value::as_str) {
            None | Some("user" | "model") => {}
            Some(_) => return Err(invalid("Please use a valid role: user, model.")),
        }
        let parts = match c["parts"].as_array() {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(invalid(format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                )))
            }
        };
        for (j, p) in parts.iter().enumerate() {
            let Some(po) = p.as_object() else {
                return Err(invalid("Invalid JSON payload received. Expected an object."));
            };
            for k in po.keys() {
                if !PART_FIELDS.contains(&k.as_str()) {
                    return Err(unknown_field(k, Some(&format!("contents[{i}].parts[{j}]"))));
                }
            }
            let data = po.keys().filter(|k| PART_DATA_FIELDS.contains(&k.as_str())).count();
            if data != 1 {
                return Err(invalid(format!("* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field\n")));
            }
            let inline = field(p, "inlineData", "inline_data");
            if !inline.is_null() {
                if field(inline, "mimeType", "mime_type")
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    return Err(invalid(format!("* GenerateContentRequest.contents[{i}].parts[{j}].inline_data.mime_type: required field is not set\n")));
                }
                if !inline["data"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty() && STANDARD.decode(d).is_ok())
                {
                    return Err(invalid(format!("Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), Base64 decoding failed")));
                }
            }
            let file = field(p, "fileData", "file_data");
            if !file.is_null() && field(file, "fileUri", "file_uri").as_str().is_none_or(str::is_empty) {
                return Err(invalid(format!(
                    "* GenerateContentRequest.contents[{i}].parts[{j}].file_data.file_uri: required field is not set\n"
                )));
            }
        }
        // A turn of function responses answers every call of the model turn before it.
        let responses = parts
            .iter()
            .filter(|p| !field(p, "functionResponse", "function_response").is_null())
            .count();
        if responses > 0 {
            let calls = i
                .checked_sub(1)
                .and_then(|p| contents[p]["parts"].as_array())
                .map_or(0, |ps| {
                    ps.iter()
                        .filter(|p| !field(p, "functionCall", "function_call").is_null())
                        .count()
                });
            if calls != responses {
                return Err(invalid("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."));
            }
        }
    }
    let fcc = field(
        field(body, "toolConfig", "tool_config"),
        "functionCallingConfig",
        "function_calling_config",
    );
    if let Some(mode) = fcc.get("mode") {
        if !matches!(
            mode.as_str(),
            Some("AUTO" | "ANY" | "NONE" | "VALIDATED" | "MODE_UNSPECIFIED")
        ) {
            return Err(invalid(format!("Invalid value at 'tool_config.function_calling_config.mode' ({mode}), expected one of AUTO, ANY, NONE, VALIDATED")));
        }
    }
    Ok(())
}

/// Checks the thought signatures of the current turn's function calls (see [`gemini_handler`]).
fn check_signatures(state: &State, contents: &[Value]) -> Result<(), MockResponse> {
    let is_function_response = |c: &Value| {
        c["parts"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| !field(p, "functionResponse", "function_response").is_null())
        })
    };
    let turn_start = contents
        .iter()
        .rposition(|c| c["role"] != "model" && !is_function_response(c))
        .map_or(0, |i| i + 1);
    let issued = state.signatures.lock().unwrap_or_else(|e| e.into_inner());
    for (i, c) in contents.iter().enumerate().skip(turn_start) {
        if c["role"] != "model" {
            continue;
        }
        let parts = c["parts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let Some((j, first)) = parts
            .iter()
            .enumerate()
            .find(|(_, p)| !field(p, "functionCall", "function_call").is_null())
        else {
            continue;
        };
        let call = field(first, "functionCall", "function_call");
        let name = call["name"].as_str().unwrap_or("");
        let args = call.get("args").cloned().unwrap_or(json!({}));
        match field(first, "thoughtSignature", "thought_signature").as_str() {
            None | Some("") => {
                return Err(invalid(format!("Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.", j + 1)));
            }
            Some(SKIP_THOUGHT_SIGNATURE) => {
                if issued.values().any(|(n, a)| n == name && *a == args) {
                    return Err(invalid(format!("Corrupted thought signature. (contents[{i}].parts[{j}]: the placeholder was sent for function call `{name}`, which this model made with a real signature)")));
                }
            }
            Some(sig) => match issued.get(sig) {
                Some((n, _)) if n == name => {}
                _ => return Err(invalid("Corrupted thought signature.")),
            },
        }
    }
    Ok(())
}

fn usage(prompt: u64, candidates: Option<u64>, thoughts: u64) -> Value {
    let mut u = json!({
        "promptTokenCount": prompt,
        "totalTokenCount": prompt + candidates.unwrap_or(0) + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    });
    if let Some(c) = candidates {
        u["candidatesTokenCount"] = json!(c);
    }
    if thoughts > 0 {
        u["thoughtsTokenCount"] = json!(thoughts);
    }
    u
}

fn response(model: &str, id: &str, parts: Vec<Value>, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": id})
}

fn new_signature(state: &State, n: u64, name: &str, args: &Value) -> String {
    // "CiQB" + "++++" + "////", then the request number and name: standard base64 with every
    // character a URL-safe re-encoding would change, and padding.
    let mut bytes = vec![0x0a, 0x24, 0x01, 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff];
    bytes.extend_from_slice(&n.to_be_bytes());
    bytes.extend_from_slice(name.as_bytes());
    while bytes.len() % 3 != 1 {
        bytes.push(0x2a);
    }
    let sig = STANDARD.encode(&bytes);
    state
        .signatures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(sig.clone(), (name.to_string(), args.clone()));
    sig
}

fn generate(state: &State, model: &str, body: &Value, stream: Option<bool>) -> MockResponse {
    if let Err(resp) = validate(body) {
        return resp;
    }
    let decls = match declarations(body) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let contents = body["contents"].as_array().expect("validated");
    let n = state.generations.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("gmMock{n:06}Xq");
    let gc = field(body, "generationConfig", "generation_config");
    let tc = field(gc, "thinkingConfig", "thinking_config");
    let include_thoughts = field(tc, "includeThoughts", "include_thoughts") == true;
    let max_tokens = field(gc, "maxOutputTokens", "max_output_tokens").as_u64();
    let prompt = count_prompt(body);

    let last = contents.last().expect("validated");
    let user_text = if last["role"] == "model" {
        String::new()
    } else {
        parts_text(last)
    };
    if let Some(rest) = user_text.strip_prefix("fail:") {
        let code = rest.trim().parse::<u16>().unwrap_or(500);
        let message = match code {
            429 => "Resource has been exhausted (e.g. check quota).",
            503 => "The model is overloaded. Please try again later.",
            _ => "mock failure",
        };
        return error(code, message);
    }
    let function_responses: Vec<String> = last["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| field(p, "functionResponse", "function_response"))
        .filter(|fr| !fr.is_null())
        .map(|fr| function_response_text(&fr["response"]))
        .collect();
    let fcc = field(
        field(body, "toolConfig", "tool_config"),
        "functionCallingConfig",
        "function_calling_config",
    );
    let chosen: Vec<&Value> = if fcc["mode"] == "NONE" {
        Vec::new()
    } else {
        match field(fcc, "allowedFunctionNames", "allowed_function_names")
            .as_array()
            .and_then(|a| a.first())
        {
            Some(name) => decls.iter().filter(|d| &d["name"] == name).take(1).collect(),
            None if user_text.starts_with("parallel:") => decls.iter().collect(),
            None => decls.iter().take(1).collect(),
        }
    };

    let thoughts = if include_thoughts {
        mock_token_count(GEMINI_MOCK_THOUGHT)
    } else {
        0
    };
    // (answer parts without thoughts, candidate tokens, finish reason, streamed text pieces)
    let (answer, candidates, finish, text): (Value, u64, &str, Option<String>);
    if !function_responses.is_empty() {
        if let Err(resp) = check_signatures(state, contents) {
            return resp;
        }
        let t = format!("{TOOL_RESULT_PREFIX}{}", function_responses.join("; "));
        candidates = mock_pieces(&t).len() as u64;
        answer = json!({"text": t});
        finish = "STOP";
        text = Some(t);
    } else if !chosen.is_empty() {
        // Parallel calls: only the first carries the signature, as with Gemini 3.
        let mut calls = Vec::new();
        let mut tokens = 0;
        for (i, decl) in chosen.into_iter().enumerate() {
            let name = decl["name"].as_str().unwrap_or("");
            let schema = match decl.get("parameters") {
                Some(p) => p.clone(),
                None => field(decl, "parametersJsonSchema", "parameters_json_schema").clone(),
            };
            let args = mock_tool_input(&schema);
            tokens += 1 + (args.to_string().len() as u64) / 8;
            let mut part = json!({"functionCall": {"name": name, "args": args}});
            if i == 0 {
                part["thoughtSignature"] = json!(new_signature(state, n, name, &args));
            }
            calls.push(part);
        }
        answer = Value::Array(calls);
        candidates = tokens;
        finish = "STOP";
        text = None;
    } else {
        let reply = echo_or(&user_text, GEMINI_MOCK_REPLY);
        let pieces = mock_pieces(&reply);
        let (t, f) = match max_tokens {
            Some(m) if (pieces.len() as u64) > m => (pieces[..m as usize].concat(), "MAX_TOKENS"),
            _ => (reply.clone(), "STOP"),
        };
        candidates = mock_pieces(&t).len() as u64;
        answer = json!({"text": t});
        finish = f;
        text = Some(t);
    }
    let thought_signature =
        (include_thoughts && text.is_some()).then(|| STANDARD.encode(format!("mock-text-signature:{n}")));
    let full_usage = usage(prompt, Some(candidates), thoughts);

    let Some(sse) = stream else {
        let mut parts = Vec::new();
        if include_thoughts {
            parts.push(json!({"text": GEMINI_MOCK_THOUGHT, "thought": true}));
        }
        match answer {
            Value::Array(calls) => parts.extend(calls),
            mut answer => {
                if let Some(sig) = &thought_signature {
                    answer["thoughtSignature"] = json!(sig);
                }
                parts.push(answer);
            }
        }
        return json_response(200, &response(model, &id, parts, Some(finish), full_usage));
    };

    let partial_usage = usage(prompt, None, thoughts);
    let mut chunks = Vec::new();
    if include_thoughts {
        let cut = GEMINI_MOCK_THOUGHT.find('\n').map_or(0, |i| i + 1);
        for piece in [&GEMINI_MOCK_THOUGHT[..cut], &GEMINI_MOCK_THOUGHT[cut..]] {
            chunks.push(response(
                model,
                &id,
                vec![json!({"text": piece, "thought": true})],
                None,
                partial_usage.clone(),
            ));
        }
    }
    match &text {
        None => chunks.push(response(
            model,
            &id,
            answer.as_array().cloned().unwrap_or_default(),
            Some(finish),
            full_usage.clone(),
        )),
        Some(t) => {
            let pieces = mock_pieces(t);
            let groups: Vec<String> = pieces.chunks(2).map(|g| g.concat()).collect();
            for (i, g) in groups.iter().enumerate() {
                let mut part = json!({"text": g});
                if i == 0 {
                    if let Some(sig) = &thought_signature {
                        part["thoughtSignature"] = json!(sig);
                    }
                }
                let last = i + 1 == groups.len() && !include_thoughts;
                chunks.push(if last {
                    response(model, &id, vec![part], Some(finish), full_usage.clone())
                } else {
                    response(model, &id, vec![part], None, partial_usage.clone())
                });
                if i == 0 && user_text.starts_with("fail-stream:") {
                    let mut body: Vec<u8> = chunks.iter().flat_map(gemini_sse).collect();
                    body.extend(gemini_sse(&gemini_error_body(
                        503,
                        "The model is overloaded. Please try again later.",
                    )));
                    return sse_response(split_body(&body));
                }
            }
            if include_thoughts {
                chunks.push(response(
                    model,
                    &id,
                    vec![json!({"text": ""})],
                    Some(finish),
                    full_usage.clone(),
                ));
            }
        }
    }
    if sse {
        let body: Vec<u8> = chunks.iter().flat_map(gemini_sse).collect();
        sse_response(split_body(&body))
    } else {
        // Without alt=sse: one JSON array, pretty-printed and streamed.
        let body = to_google_json(&Value::Array(chunks), GoogleStyle::Pretty);
        MockResponse::Stream {
            status: 200,
            headers: vec![("content-type".into(), "application/json; charset=UTF-8".into())],
            steps: split_body(&body),
        }
    }
}

fn sse_response(steps: Vec<Step>) -> MockResponse {
    MockResponse::Stream {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::super::mock_anthropic::MOCK_TOOL_STRING;
    use super::*;
    use std::time::Duration;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn post(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}/v1beta/{path}", mock.base_url()))
            .header("x-goog-api-key", "gm-test")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    fn sse_chunks(body: &str) -> Vec<Value> {
        assert!(body.ends_with("\r\n\r\n"), "{body:?}");
        body.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("data: line")).unwrap())
            .collect()
    }

    fn weather_tools() -> Value {
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}])
    }

    #[tokio::test]
    async fn auth_errors_use_googles_shape() {
        let mock = gemini().await;
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        let resp = client()
            .post(format!(
                "{}/v1beta/models/gemini-2.5-flash:generateContent?key=gm-test",
                mock.base_url()
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], 403);
        assert_eq!(err["error"]["status"], "PERMISSION_DENIED");
        let resp = client()
            .post(format!(
                "{}/v1beta/models/gemini-2.5-flash:generateContent",
                mock.base_url()
            ))
            .header("x-goog-api-key", "bad-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["details"][0]["reason"], "API_KEY_INVALID");
        let resp = post(&mock, "models/no-such-model:generateContent", &body).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["status"], "NOT_FOUND");
    }

    #[tokio::test]
    async fn generate_content_text() {
        let mock = gemini().await;
        let resp = post(
            &mock,
            "models/gemini-2.5-flash:generateContent",
            &json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "Say hi please"}]}]}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json; charset=UTF-8");
        let text = resp.text().await.unwrap();
        assert!(
            text.starts_with("{\n  \"candidates\": [\n    {\n      \"content\": {"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let c = &v["candidates"][0];
        assert_eq!(c["content"]["role"], "model");
        assert_eq!(c["content"]["parts"], json!([{"text": GEMINI_MOCK_REPLY}]));
        assert_eq!(c["finishReason"], "STOP");
        assert_eq!(v["usageMetadata"]["promptTokenCount"], 5);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 4);
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 9);
        assert_eq!(v["modelVersion"], "gemini-2.5-flash");
        assert!(v["responseId"].is_string());

        let v: Value = post(
            &mock,
            "models/gemini-2.5-flash:generateContent",
            &json!({
            "contents": [{"role": "user", "parts": [{"text": "echo: a b c"}]}],
            "generationConfig": {"maxOutputTokens": 2}}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "a b ");
        assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    }

    #[tokio::test]
    async fn stream_generate_content_sse() {
        let mock = gemini().await;
        let resp = post(
            &mock,
            "models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &json!({
            "contents": [{"role": "user", "parts": [{"text": "echo: Grüße 世界 🚀 one two"}]}]}),
        )
        .await;
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let body = resp.text().await.unwrap();
        assert!(
            body.starts_with("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "),
            "{body}"
        );
        let chunks = sse_chunks(&body);
        assert_eq!(chunks.len(), 3);
        let text: String = chunks
            .iter()
            .map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Grüße 世界 🚀 one two");
        assert!(chunks[..2]
            .iter()
            .all(|c| c["candidates"][0]["finishReason"].is_null()
                && c["usageMetadata"]["candidatesTokenCount"].is_null()));
        assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 5);

        // Without alt=sse: a JSON array of the same chunks.
        let v: Value = post(
            &mock,
            "models/gemini-2.5-flash:streamGenerateContent",
            &json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn thoughts_come_first() {
        let mock = gemini().await;
        let req = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}}});
        let v: Value = post(&mock, "models/gemini-2.5-flash:generateContent", &req)
            .await
            .json()
            .await
            .unwrap();
        let parts = &v["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0], json!({"text": GEMINI_MOCK_THOUGHT, "thought": true}));
        assert_eq!(parts[1]["text"], GEMINI_MOCK_REPLY);
        assert!(parts[1]["thoughtSignature"].is_string());
        assert_eq!(
            v["usageMetadata"]["thoughtsTokenCount"],
            mock_token_count(GEMINI_MOCK_THOUGHT)
        );

        let chunks = sse_chunks(
            &post(&mock, "models/gemini-2.5-flash:streamGenerateContent?alt=sse", &req)
                .await
                .text()
                .await
                .unwrap(),
        );
        let thought: String = chunks
            .iter()
            .map(|c| &c["candidates"][0]["content"]["parts"][0])
            .filter(|p| p["thought"] == true)
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        assert_eq!(thought, GEMINI_MOCK_THOUGHT);
        assert_eq!(chunks[0]["candidates"][0]["content"]["parts"][0]["thought"], true);
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["content"]["parts"], json!([{"text": ""}]));
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    }

    #[tokio::test]
    async fn function_call_round_trip_needs_the_signature() {
        let mock = gemini().await;
        let first =
            json!({"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}], "tools": weather_tools()});
        let chunks = sse_chunks(
            &post(&mock, "models/gemini-2.5-flash:streamGenerateContent?alt=sse", &first)
                .await
                .text()
                .await
                .unwrap(),
        );
        assert_eq!(chunks.len(), 1);
        let part = &chunks[0]["candidates"][0]["content"]["parts"][0];
        assert_eq!(
            part["functionCall"],
            json!({"name": "get_weather", "args": {"city": MOCK_TOOL_STRING}})
        );
        assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");
        let sig = part["thoughtSignature"].as_str().unwrap().to_string();
        assert!(sig.contains('+') && sig.contains('/') && sig.ends_with('='), "{sig}");

        let answer = |signature: Option<&str>| {
            let mut call = json!({"functionCall": {"name": "get_weather", "args": {"city": MOCK_TOOL_STRING}}});
            if let Some(s) = signature {
                call["thoughtSignature"] = json!(s);
            }
            json!({"contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {"role": "model", "parts": [call]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18°C and sunny"}}}]}
            ], "tools": weather_tools()})
        };
        let v: Value = post(&mock, "models/gemini-2.5-flash:generateContent", &answer(Some(&sig)))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            "The tool said: 18°C and sunny"
        );

        for (signature, needle) in [
            (None, "missing a thought_signature"),
            (Some("AAAA"), "Corrupted thought signature"),
            (Some(SKIP_THOUGHT_SIGNATURE), "Corrupted thought signature"),
        ] {
            let resp = post(&mock, "models/gemini-2.5-flash:generateContent", &answer(signature)).await;
            assert_eq!(resp.status(), 400, "{signature:?}");
            let err: Value = resp.json().await.unwrap();
            assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
            assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{err}");
        }
        // The placeholder is fine for a call this mock never made.
        let mut foreign = answer(Some(SKIP_THOUGHT_SIGNATURE));
        foreign["contents"][1]["parts"][0]["functionCall"]["args"]["city"] = json!("Lyon");
        assert_eq!(
            post(&mock, "models/gemini-2.5-flash:generateContent", &foreign)
                .await
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn parallel_function_calls_sign_the_first_only() {
        let mock = gemini().await;
        let tools = json!([{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}]}]);
        let first = json!({"contents": [{"role": "user", "parts": [{"text": "parallel: both"}]}], "tools": tools});
        let v: Value = post(&mock, "models/gemini-2.5-flash:generateContent", &first)
            .await
            .json()
            .await
            .unwrap();
        let parts = v["candidates"][0]["content"]["parts"].as_array().unwrap().clone();
        assert_eq!(parts.len(), 2);
        assert!(parts[0]["thoughtSignature"].is_string());
        assert!(parts[1].get("thoughtSignature").is_none());
        assert_eq!(
            parts[1]["functionCall"],
            json!({"name": "get_time", "args": {"tz": MOCK_TOOL_STRING}})
        );

        let mut second = json!({"contents": [
            {"role": "user", "parts": [{"text": "parallel: both"}]},
            {"role": "model", "parts": parts},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"error": "noon"}}}]}
        ], "tools": tools});
        let v: Value = post(&mock, "models/gemini-2.5-flash:generateContent", &second)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["text"],
            "The tool said: sunny; noon"
        );
        second["contents"][2]["parts"].as_array_mut().unwrap().pop();
        assert_eq!(
            post(&mock, "models/gemini-2.5-flash:generateContent", &second)
                .await
                .status(),
            400
        );
    }

    #[tokio::test]
    async fn validation_matches_the_real_api() {
        let mock = gemini().await;
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        let cases = [
            (json!({"messages": []}), "Unknown name \"messages\""),
            (
                json!({"generationConfig": {"max_tokens": 5}}),
                "Unknown name \"max_tokens\" at 'generation_config'",
            ),
            (json!({"generationConfig": {"stopSequences": "END"}}), "stop_sequences"),
            (
                json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
                "valid role",
            ),
            (json!({"contents": []}), "contents is not specified"),
            (
                json!({"contents": [{"role": "user", "parts": []}]}),
                "must not be empty",
            ),
            (
                json!({"tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object",
                "properties": {"a": {"type": "string"}}, "additionalProperties": false}}]}]}),
                "Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters'",
            ),
            (
                json!({"tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}]}),
                "should be non-empty for OBJECT type",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "x"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
                "number of function response parts",
            ),
        ];
        for (patch, needle) in cases {
            let mut r = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                r[k] = v.clone();
            }
            let resp = post(&mock, "models/gemini-2.5-flash:generateContent", &r).await;
            assert_eq!(resp.status(), 400, "{patch}");
            let err: Value = resp.json().await.unwrap();
            assert!(
                err["error"]["message"].as_str().unwrap().contains(needle),
                "{patch} → {err}"
            );
        }
    }

    #[tokio::test]
    async fn embeddings_models_and_count_tokens() {
        let mock = gemini().await;
        let v: Value = post(&mock, "models/gemini-embedding-001:batchEmbedContents", &json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello world"}]}},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}, "outputDimensionality": 3}
        ]})).await.json().await.unwrap();
        let floats: Vec<f32> = v["embeddings"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(floats, mock_embedding("hello world", MOCK_EMBED_DIMS));
        assert_eq!(v["embeddings"][1]["values"].as_array().unwrap().len(), 3);
        let resp = post(
            &mock,
            "models/gemini-embedding-001:batchEmbedContents",
            &json!({"requests": [
            {"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
        )
        .await;
        assert_eq!(resp.status(), 400);

        let v: Value = post(
            &mock,
            "models/gemini-2.5-flash:countTokens",
            &json!({"contents": [{"parts": [{"text": "a b c"}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(v["totalTokens"], 3);

        let get = |path: String| {
            client()
                .get(format!("{}/v1beta/{path}", mock.base_url()))
                .header("x-goog-api-key", "gm-test")
                .send()
        };
        let list: Value = get("models".into()).await.unwrap().json().await.unwrap();
        assert_eq!(list["models"][0]["name"], "models/gemini-2.5-flash");
        assert!(list["models"][0]["supportedGenerationMethods"]
            .as_array()
            .unwrap()
            .contains(&json!("generateContent")));
        assert!(list.get("nextPageToken").is_none());
        let page: Value = get("models?pageSize=2".into()).await.unwrap().json().await.unwrap();
        assert_eq!(page["models"].as_array().unwrap().len(), 2);
        assert_eq!(page["nextPageToken"], "2");
        let page: Value = get("models?pageSize=2&pageToken=2".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["models"][0]["name"], "models/gemini-embedding-001");
        assert_eq!(get("models/gemini-2.5-pro".into()).await.unwrap().status(), 200);
        assert_eq!(get("models/nope".into()).await.unwrap().status(), 404);
    }

    #[tokio::test]
    async fn midstream_error() {
        let mock = gemini().await;
        let body = post(
            &mock,
            "models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &json!({
            "contents": [{"role": "user", "parts": [{"text": "fail-stream: a b c d"}]}]}),
        )
        .await
        .text()
        .await
        .unwrap();
        let chunks = sse_chunks(&body);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["error"]["status"], "UNAVAILABLE");
    }

    #[test]
    fn google_json_styles() {
        let v = json!({"responseId": "r", "candidates": [{"index": 0, "content": {"parts": [], "role": "model"}}]});
        assert_eq!(
            String::from_utf8(to_google_json(&v, GoogleStyle::Sse)).unwrap(),
            r#"{"candidates": [{"content": {"parts": [],"role": "model"},"index": 0}],"responseId": "r"}"#
        );
        assert_eq!(
            String::from_utf8(to_google_json(
                &json!({"error": {"code": 1, "details": []}}),
                GoogleStyle::Pretty
            ))
            .unwrap(),
            "{\n  \"error\": {\n    \"code\": 1,\n    \"details\": []\n  }\n}"
        );
    }
}
