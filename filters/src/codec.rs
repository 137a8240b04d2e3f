//! Dialect dispatch: request decode/encode, non-stream response translation,
//! and the [`StreamTranslator`] state machine that turns an upstream SSE
//! stream into the caller's dialect chunk by chunk.
//!
//! Every function here is pure: bytes and options in, bytes out. Time and ids
//! are passed in by the gateway (no clocks, no randomness), so every output is
//! reproducible and testable.

use crate::error::{Dialect, ErrorInfo};
use crate::ir::{ChatRequest, ChatResponse, Part, StreamEvent, WireDialect};
use crate::sse::{SseDecoder, SseItem};
use crate::usage::Usage;
use crate::{anthropic, gemini, openai};
use std::fmt;

/// A request (or upstream body) the codecs cannot translate.
///
/// Carries the offending field so the gateway can answer 400 with OpenAI's
/// `param` and a message that says exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// What is wrong, for humans.
    pub message: String,
    /// The offending field as a JSON path (`messages[2].content`), if any.
    pub param: Option<String>,
}

impl CodecError {
    /// An invalid field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> CodecError {
        CodecError {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// A body-level problem (not JSON, wrong shape).
    pub fn body(message: impl Into<String>) -> CodecError {
        CodecError {
            message: message.into(),
            param: None,
        }
    }

    /// As an `invalid_request_error` for the caller (HTTP 400).
    pub fn to_error_info(&self) -> ErrorInfo {
        ErrorInfo {
            message: self.message.clone(),
            kind: "invalid_request_error",
            param: self.param.clone(),
            code: None,
            anthropic_kind: "invalid_request_error",
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} (param: {p})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CodecError {}

/// What the gateway knows about the caller-facing response that the upstream
/// body cannot say: the name the caller used, the id and time to report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseOptions {
    /// Model name to report (the caller's alias); `None` keeps the upstream's.
    pub model: Option<String>,
    /// Response id to report; `None` keeps the upstream's (or derives one).
    pub id: Option<String>,
    /// Unix seconds to report as OpenAI `created`.
    pub created: u64,
    /// OpenAI callers only: end the stream with a usage chunk
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Decodes a caller's chat request (OpenAI `/v1/chat/completions` or
/// Anthropic `/v1/messages` body), or a Gemini body for tests and tooling.
pub fn decode_request(dialect: WireDialect, body: &[u8]) -> Result<ChatRequest, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::decode_request(body),
        WireDialect::Anthropic => anthropic::decode_request(body),
        WireDialect::Gemini => gemini::decode_request(body),
    }
}

/// Encodes a request for a provider of the given dialect. The model name is
/// taken from `req.model` (routing rewrites it first). For Gemini the model
/// and stream flag go in the URL, not the body.
pub fn encode_request(dialect: WireDialect, req: &ChatRequest) -> Result<Vec<u8>, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::encode_request(req),
        WireDialect::Anthropic => anthropic::encode_request(req),
        WireDialect::Gemini => gemini::encode_request(req),
    }
}

/// Decodes a provider's non-streamed response body.
pub fn decode_response(dialect: WireDialect, body: &[u8]) -> Result<ChatResponse, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::decode_response(body),
        WireDialect::Anthropic => anthropic::decode_response(body),
        WireDialect::Gemini => gemini::decode_response(body),
    }
}

/// Encodes a response in a caller's dialect.
pub fn encode_response(dialect: Dialect, resp: &ChatResponse, opts: &ResponseOptions) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => openai::encode_response(resp, opts),
        Dialect::Anthropic => anthropic::encode_response(resp, opts),
    }
}

/// Translates a successful non-streamed upstream body into the caller's
/// dialect, returning the new body and the usage to record.
pub fn translate_response(
    upstream: WireDialect,
    caller: Dialect,
    body: &[u8],
    opts: &ResponseOptions,
) -> Result<(Vec<u8>, Usage), CodecError> {
    let resp = decode_response(upstream, body)?;
    Ok((encode_response(caller, &resp, opts), resp.usage))
}

/// Estimated input tokens of a request, for `/v1/messages/count_tokens` when
/// the provider has no counting endpoint.
///
/// Heuristic (documented, deliberately simple and slightly pessimistic):
/// every text (messages, thinking, tool arguments and results, tool names,
/// descriptions and serialized schemas, stop sequences) counts
/// `ceil(chars / 4)`; each message adds 4 (role and framing), each tool 8,
/// each image a flat 1,000 (providers charge 85–1,600 per image), plus 3 for
/// the reply primer.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    fn text_tokens(s: &str) -> u64 {
        (s.chars().count() as u64).div_ceil(4)
    }
    fn part_tokens(p: &Part) -> u64 {
        match p {
            Part::Text { text, .. } => text_tokens(text),
            Part::Image { .. } => 1000,
            Part::Thinking { text, .. } => text_tokens(text),
            Part::RedactedThinking { data } => text_tokens(data),
            Part::ToolCall(c) => text_tokens(&c.name) + text_tokens(&c.arguments),
            Part::ToolResult(r) => r.content.iter().map(part_tokens).sum(),
        }
    }
    let mut n = 3u64;
    for m in &req.messages {
        n += 4 + m.content.iter().map(part_tokens).sum::<u64>();
    }
    for t in &req.tools {
        n += 8 + text_tokens(&t.name);
        n += t.description.as_deref().map(text_tokens).unwrap_or(0);
        n += text_tokens(&t.parameters.to_string());
    }
    n += req.stop.iter().map(|s| text_tokens(s)).sum::<u64>();
    n
}

/// Per-dialect stream decoders (upstream SSE event → IR events).
#[derive(Debug)]
enum Decoder {
    OpenAi(openai::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
}

impl Decoder {
    fn decode(&mut self, ev: &crate::sse::SseEvent, out: &mut Vec<StreamEvent>) {
        match self {
            Decoder::OpenAi(d) => d.decode(ev, out),
            Decoder::Anthropic(d) => d.decode(ev, out),
            Decoder::Gemini(d) => d.decode(ev, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            Decoder::OpenAi(d) => d.finish(out),
            Decoder::Anthropic(d) => d.finish(out),
            Decoder::Gemini(d) => d.finish(out),
        }
    }
}

/// Per-dialect stream encoders (IR events → caller SSE bytes).
#[derive(Debug)]
enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl Encoder {
    fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.encode(ev, out),
            Encoder::Anthropic(e) => e.encode(ev, out),
        }
    }
}

/// Where the translator is in the stream's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forwarding events.
    Running,
    /// Output is complete (normal end or error event written); input after
    /// this is ignored.
    Ended,
}

/// Translates an upstream SSE stream into the caller's dialect.
///
/// An explicit state machine: SSE framing (`SseDecoder`) → dialect decoder →
/// IR [`StreamEvent`]s → dialect encoder. Output for each upstream event is
/// written the moment the event is complete, and depends only on the bytes,
/// never on how they were split (tested at every byte boundary).
///
/// Guarantees for the caller's stream:
/// * OpenAI callers get chunks, then a usage chunk only when they asked
///   (`include_usage`), then `data: [DONE]`; a failure is a final
///   `data: {"error":{…}}` (no `[DONE]`, so clients see an abnormal end).
/// * Anthropic callers get exactly one `message_start`, contiguous blocks,
///   one `message_delta`, one `message_stop`; a failure is `event: error`.
/// * An upstream that stops early (no terminal event) becomes an error event,
///   never a silently truncated "successful" stream.
///
/// The gateway should always ask OpenAI-compatible upstreams for
/// `stream_options.include_usage` (the encoders in this crate do) so usage is
/// known; whether the caller sees it is decided here.
#[derive(Debug)]
pub struct StreamTranslator {
    sse: SseDecoder,
    decoder: Decoder,
    encoder: Encoder,
    events: Vec<StreamEvent>,
    phase: Phase,
    usage: Usage,
    error: Option<ErrorInfo>,
    first_token: bool,
}

impl StreamTranslator {
    /// A translator from `upstream`'s stream format to `caller`'s.
    pub fn new(upstream: WireDialect, caller: Dialect, opts: ResponseOptions) -> StreamTranslator {
        let decoder = match upstream {
            WireDialect::OpenAi => Decoder::OpenAi(openai::StreamDecoder::new()),
            WireDialect::Anthropic => Decoder::Anthropic(anthropic::StreamDecoder::new()),
            WireDialect::Gemini => Decoder::Gemini(gemini::StreamDecoder::new(opts.id.clone())),
        };
        let encoder = match caller {
            Dialect::OpenAi => Encoder::OpenAi(openai::StreamEncoder::new(opts)),
            Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new(opts)),
        };
        StreamTranslator {
            sse: SseDecoder::new(),
            decoder,
            encoder,
            events: Vec::new(),
            phase: Phase::Running,
            usage: Usage::default(),
            error: None,
            first_token: false,
        }
    }

    /// Feeds upstream bytes; appends whatever caller bytes they complete.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.phase == Phase::Ended {
            return;
        }
        if let Err(e) = self.sse.push(bytes) {
            let info = crate::ir::upstream_error(e.to_string(), None);
            self.handle(StreamEvent::Error(info), out);
            return;
        }
        self.drain_sse(out);
    }

    /// Ends the stream: flushes a final unterminated event, and if the
    /// upstream never finished properly writes an error event in the caller's
    /// dialect. Idempotent.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Ended {
            return;
        }
        self.sse.finish();
        self.drain_sse(out);
        if self.phase == Phase::Ended {
            return;
        }
        let mut evs = std::mem::take(&mut self.events);
        self.decoder.finish(&mut evs);
        for ev in evs.drain(..) {
            self.handle(ev, out);
        }
        self.events = evs;
        if self.phase != Phase::Ended {
            let info = crate::ir::upstream_error(
                "upstream ended the stream before the response was complete".to_string(),
                None,
            );
            self.handle(StreamEvent::Error(info), out);
        }
    }

    /// Usage seen so far (complete after `finish`).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The error the stream ended with, if it did.
    pub fn error(&self) -> Option<&ErrorInfo> {
        self.error.as_ref()
    }

    /// Whether any content (text, thinking or a tool call) has been emitted,
    /// for time-to-first-token.
    pub fn first_token_seen(&self) -> bool {
        self.first_token
    }

    /// Whether the caller's stream is complete (normally or with an error).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Ended
    }

    fn drain_sse(&mut self, out: &mut Vec<u8>) {
        let mut evs = std::mem::take(&mut self.events);
        while let Some(item) = self.sse.next_item() {
            if let SseItem::Event(ev) = item {
                self.decoder.decode(&ev, &mut evs);
                for e in evs.drain(..) {
                    self.handle(e, out);
                    if self.phase == Phase::Ended {
                        break;
                    }
                }
                evs.clear();
                if self.phase == Phase::Ended {
                    break;
                }
            }
        }
        self.events = evs;
    }

    fn handle(&mut self, ev: StreamEvent, out: &mut Vec<u8>) {
        if self.phase == Phase::Ended {
            return;
        }
        match &ev {
            StreamEvent::Start { usage, .. } | StreamEvent::Usage(usage) if *usage != Usage::default() => {
                self.usage = *usage;
            }
            StreamEvent::Text(t) | StreamEvent::Thinking(t) if !t.is_empty() => {
                self.first_token = true;
            }
            StreamEvent::ToolCallStart { .. } => self.first_token = true,
            StreamEvent::Error(e) => {
                self.error = Some(e.clone());
                self.phase = Phase::Ended;
            }
            StreamEvent::Done => self.phase = Phase::Ended,
            _ => {}
        }
        self.encoder.encode(&ev, out);
    }
}

/// Small JSON accessors shared by the codecs: typed field reads that report
/// the offending `param` instead of panicking on unexpected input.
pub(crate) mod jv {
    use super::CodecError;
    use serde_json::{Map, Value};

    /// Parses a body as a JSON object.
    pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, CodecError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(CodecError::body("request body must be a JSON object")),
            Err(e) => Err(CodecError::body(format!("request body is not valid JSON: {e}"))),
        }
    }

    /// An optional string field; wrong type is an error.
    pub fn opt_str(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<String>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a string"))),
        }
    }

    /// An optional non-negative integer that fits u32.
    pub fn opt_u32(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<u32>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a non-negative integer"))),
        }
    }

    /// An optional number.
    pub fn opt_f64(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<f64>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a number"))),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a boolean"))),
        }
    }

    /// A field that must be an object.
    pub fn as_obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, CodecError> {
        v.as_object()
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an object")))
    }

    /// A field that must be an array.
    pub fn as_arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, CodecError> {
        v.as_array()
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an array")))
    }

    /// A required string inside an object.
    pub fn req_str<'a>(m: &'a Map<String, Value>, key: &str, param: &str) -> Result<&'a str, CodecError> {
        m.get(key)
            .and_then(|v| v.as_str())
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` is required and must be a string")))
    }

    /// Stop sequences: a string or an array of strings.
    pub fn stop_list(v: Option<&Value>, param: &str) -> Result<Vec<String>, CodecError> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must contain strings")))
                })
                .collect(),
            Some(_) => Err(CodecError::invalid(
                param,
                format!("`{param}` must be a string or an array of strings"),
            )),
        }
    }

    /// Reads a u64 at `key`, 0 when missing or not a number (usage counters).
    pub fn count(v: &Value, key: &str) -> u64 {
        v.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Message, Role, Tool};

    fn run(up: WireDialect, caller: Dialect, opts: ResponseOptions, input: &str) -> (String, StreamTranslator) {
        let mut t = StreamTranslator::new(up, caller, opts);
        let mut out = Vec::new();
        t.push(input.as_bytes(), &mut out);
        t.finish(&mut out);
        (String::from_utf8(out).unwrap(), t)
    }

    const OPENAI_TEXT: &str = "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
        data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
        data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn usage_chunk_only_when_asked_and_options_override_id_and_model() {
        let opts = ResponseOptions {
            model: Some("my-alias".into()),
            id: Some("chatcmpl-gw1".into()),
            created: 42,
            include_usage: false,
        };
        let (out, t) = run(WireDialect::OpenAi, Dialect::OpenAi, opts.clone(), OPENAI_TEXT);
        assert!(!out.contains("\"choices\":[]"), "{out}");
        assert!(!out.contains("\"usage\""), "{out}");
        assert!(out.contains("\"id\":\"chatcmpl-gw1\"") && out.contains("\"model\":\"my-alias\""));
        assert!(out.contains("\"created\":42"));
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert_eq!(t.usage().total(), 4, "usage is recorded even when hidden");
        let (out, _) = run(
            WireDialect::OpenAi,
            Dialect::OpenAi,
            ResponseOptions {
                include_usage: true,
                ..opts
            },
            OPENAI_TEXT,
        );
        assert!(out.contains("\"choices\":[],\"usage\":{\"prompt_tokens\":3"), "{out}");
    }

    #[test]
    fn first_token_and_input_after_end_are_handled() {
        let mut t = StreamTranslator::new(WireDialect::OpenAi, Dialect::Anthropic, ResponseOptions::default());
        let mut out = Vec::new();
        t.push(
            b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            &mut out,
        );
        assert!(!t.first_token_seen(), "an empty role chunk is not a token");
        t.push(
            b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n",
            &mut out,
        );
        assert!(t.first_token_seen());
        t.push(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", &mut out);
        assert!(t.is_finished() && t.error().is_none());
        let len = out.len();
        t.push(
            b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n",
            &mut out,
        );
        t.finish(&mut out);
        assert_eq!(out.len(), len, "nothing after message_stop");
    }

    #[test]
    fn empty_or_cut_upstream_is_an_error_not_success() {
        for up in [WireDialect::OpenAi, WireDialect::Anthropic, WireDialect::Gemini] {
            let (out, t) = run(up, Dialect::Anthropic, ResponseOptions::default(), "");
            assert!(out.starts_with("event: error\n"), "{out}");
            assert!(t.error().is_some());
            let (out, _) = run(up, Dialect::OpenAi, ResponseOptions::default(), ": keep-alive\n\n");
            assert!(out.starts_with("data: {\"error\":"), "{out}");
            assert!(!out.contains("[DONE]"));
        }
    }

    #[test]
    fn interleaved_openai_tool_fragments_are_not_lost() {
        let input = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}\n\n\
            data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n\
            data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n\
            data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
        let (out, _) = run(
            WireDialect::OpenAi,
            Dialect::Anthropic,
            ResponseOptions::default(),
            input,
        );
        assert!(
            out.contains("\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\":1}\"}"),
            "{out}"
        );
        assert!(out.contains("\"stop_reason\":\"tool_use\""));
    }

    #[test]
    fn token_estimate_is_documented_heuristic() {
        let req = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: vec![Part::text("12345678")],
                name: None,
            }],
            tools: vec![Tool {
                name: "abcd".into(),
                description: None,
                parameters: serde_json::json!({}),
                strict: None,
                cache_control: None,
            }],
            ..ChatRequest::default()
        };
        // 3 primer + (4 + 2) message + (8 + 1 name + 1 "{}") tool.
        assert_eq!(estimate_input_tokens(&req), 19);
    }
}
