//! The canonical intermediate representation every dialect converts to and from.
//!
//! Hub and spoke: a request arrives in the caller's dialect, is decoded into a
//! [`ChatRequest`], and is encoded for the provider; the provider's answer is
//! decoded into a [`ChatResponse`] (or a sequence of [`StreamEvent`]s) and
//! encoded in the caller's dialect. A new provider is then one codec, not one
//! converter per dialect pair.
//!
//! The IR is deliberately a little richer than any single dialect (thinking
//! signatures, redacted thinking, cache-control hints, tool-call signatures) so
//! nothing a dialect can express is lost on the way through.

use crate::error::ErrorInfo;
use crate::usage::Usage;
use serde_json::{Map, Value};
use std::fmt;

/// The wire dialects the codecs speak.
///
/// Callers speak OpenAI or Anthropic (see [`crate::error::Dialect`]); providers
/// additionally speak Gemini's native API, so the upstream side needs a third
/// variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireDialect {
    /// OpenAI chat completions, and every OpenAI-compatible server.
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini `generateContent` / `streamGenerateContent`.
    Gemini,
}

impl From<crate::error::Dialect> for WireDialect {
    fn from(d: crate::error::Dialect) -> Self {
        match d {
            crate::error::Dialect::OpenAi => WireDialect::OpenAi,
            crate::error::Dialect::Anthropic => WireDialect::Anthropic,
        }
    }
}

/// Who said a message. OpenAI's `developer` role decodes to `System`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions; Anthropic and Gemini carry them outside the message list.
    System,
    /// The end user (and, in Anthropic/Gemini, tool results).
    User,
    /// The model.
    Assistant,
    /// OpenAI's `tool` role: one tool result per message.
    Tool,
}

/// Where an image's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Inline bytes, already base64 (from a `data:` URL or a base64 block).
    Base64 {
        /// MIME type such as `image/png`.
        media_type: String,
        /// Base64 payload, not re-encoded.
        data: String,
    },
    /// A remote URL the provider fetches itself.
    Url(String),
}

impl ImageSource {
    /// Parses an OpenAI `image_url.url`: a `data:<mime>;base64,<data>` URL
    /// becomes inline bytes, anything else stays a URL.
    pub fn from_url(url: &str) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(mime) = meta.strip_suffix(";base64") {
                    return ImageSource::Base64 {
                        media_type: mime.to_string(),
                        data: data.to_string(),
                    };
                }
            }
        }
        ImageSource::Url(url.to_string())
    }

    /// The OpenAI spelling: a `data:` URL for inline bytes.
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Base64 { media_type, data } => {
                format!("data:{media_type};base64,{data}")
            }
            ImageSource::Url(u) => u.clone(),
        }
    }
}

/// One tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Provider-assigned (or gateway-generated) id the result must echo.
    pub id: String,
    /// Function name.
    pub name: String,
    /// JSON arguments as text, exactly as streamed (OpenAI semantics).
    pub arguments: String,
}

/// The result of one tool call, sent back by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// Id of the [`ToolCall`] this answers.
    pub tool_call_id: String,
    /// Result content: text and images.
    pub content: Vec<Part>,
    /// The tool failed (Anthropic `is_error`).
    pub is_error: bool,
}

/// One piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text, with an optional Anthropic `cache_control` hint.
    Text {
        /// The text.
        text: String,
        /// Anthropic prompt-cache breakpoint, carried verbatim.
        cache_control: Option<Value>,
    },
    /// An image input.
    Image {
        /// Inline or remote bytes.
        source: ImageSource,
        /// OpenAI `detail` (`low`/`high`/`auto`), kept for OpenAI targets.
        detail: Option<String>,
    },
    /// Visible reasoning, with the provider's signature when it gave one
    /// (Anthropic requires it back on multi-turn tool use).
    Thinking {
        /// Reasoning text.
        text: String,
        /// Opaque signature proving the text is the model's.
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted; only the opaque blob round-trips.
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
    /// A tool call made by the assistant.
    ToolCall(ToolCall),
    /// A tool result given by the caller.
    ToolResult(ToolResult),
}

impl Part {
    /// A text part without cache hints.
    pub fn text(s: impl Into<String>) -> Part {
        Part::Text {
            text: s.into(),
            cache_control: None,
        }
    }
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Ordered content.
    pub content: Vec<Part>,
    /// OpenAI's optional participant `name`.
    pub name: Option<String>,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON schema of the arguments object.
    pub parameters: Value,
    /// OpenAI `strict` / Anthropic `strict`.
    pub strict: Option<bool>,
    /// Anthropic prompt-cache breakpoint on the tool definition.
    pub cache_control: Option<Value>,
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (Anthropic `any`, Gemini `ANY`).
    Required,
    /// This specific function.
    Named(String),
}

/// Requested reasoning depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Reasoning off (`reasoning_effort: none`).
    None,
    /// OpenAI `minimal`.
    Minimal,
    /// OpenAI `low`.
    Low,
    /// OpenAI `medium`.
    Medium,
    /// OpenAI `high`.
    High,
}

impl Effort {
    /// Parses OpenAI's `reasoning_effort` spelling.
    pub fn parse(s: &str) -> Option<Effort> {
        Some(match s {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" | "xhigh" => Effort::High,
            _ => return None,
        })
    }

    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// Anthropic `budget_tokens` for an effort level (Anthropic's minimum
    /// budget is 1024). `None`/`Minimal` mean "no extended thinking".
    ///
    /// | effort | budget |
    /// |---|---|
    /// | low | 1024 |
    /// | medium | 4096 |
    /// | high | 16384 |
    pub fn anthropic_budget(self) -> Option<u32> {
        match self {
            Effort::None | Effort::Minimal => None,
            Effort::Low => Some(1024),
            Effort::Medium => Some(4096),
            Effort::High => Some(16384),
        }
    }

    /// The effort an explicit token budget corresponds to, for OpenAI targets:
    /// 0 → none, ≤ 2048 → low, ≤ 8192 → medium, above → high.
    pub fn from_budget(budget: u32) -> Effort {
        match budget {
            0 => Effort::None,
            1..=2048 => Effort::Low,
            2049..=8192 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

/// Reasoning request: an effort level (OpenAI), an explicit budget
/// (Anthropic `thinking.budget_tokens`, Gemini `thinkingBudget`), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasoning {
    /// Effort level, if the caller gave one.
    pub effort: Option<Effort>,
    /// Explicit token budget, if the caller gave one (wins over effort).
    pub budget_tokens: Option<u32>,
}

/// Output format constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name (OpenAI requires one).
        name: String,
        /// The JSON schema.
        schema: Value,
        /// OpenAI `strict`.
        strict: Option<bool>,
    },
}

/// Unknown top-level request fields, kept so a same-dialect target can carry
/// them (Postel).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra {
    /// Dialect the request was written in (set by every decoder).
    pub dialect: Option<WireDialect>,
    /// The fields themselves.
    pub fields: Map<String, Value>,
}

impl Extra {
    /// Fields to copy into a body of dialect `target` (empty when the fields
    /// came from another dialect, where they would mean nothing or worse).
    pub fn for_dialect(&self, target: WireDialect) -> Option<&Map<String, Value>> {
        (self.dialect == Some(target) && !self.fields.is_empty()).then_some(&self.fields)
    }
}

/// A chat request in canonical form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// Model name as the caller wrote it (routing rewrites it before encoding).
    pub model: String,
    /// Conversation, system messages included (in order).
    pub messages: Vec<Message>,
    /// Callable functions.
    pub tools: Vec<Tool>,
    /// Tool-use constraint.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Output token cap (OpenAI `max_completion_tokens`/`max_tokens`).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Reasoning effort / budget.
    pub reasoning: Option<Reasoning>,
    /// Output format constraint.
    pub response_format: Option<ResponseFormat>,
    /// End-user id for abuse tracking (Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// OpenAI `metadata` (string map).
    pub metadata: Option<Map<String, Value>>,
    /// The caller wants a stream.
    pub stream: bool,
    /// The caller asked for a final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Fields the IR does not model.
    pub extra: Extra,
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end (OpenAI `stop`, Anthropic `end_turn`, Gemini `STOP`).
    EndTurn,
    /// Output token cap reached.
    MaxTokens,
    /// The model called tools and waits for results.
    ToolUse,
    /// A stop sequence matched (which one, when the provider says).
    StopSequence(Option<String>),
    /// Safety/refusal/recitation filter.
    ContentFilter,
    /// The provider failed to produce a valid answer (e.g. malformed call).
    Error,
    /// Anything else, in the provider's spelling (e.g. `pause_turn`).
    Other(String),
}

/// A complete, non-streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Provider's response id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Unix seconds (0 when the provider gave none; the gateway fills it).
    pub created: u64,
    /// Content: text, thinking, tool calls.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub stop_reason: Option<StopReason>,
    /// Token counts.
    pub usage: Usage,
}

impl ChatResponse {
    /// The events a stream of this response would have carried, in order:
    /// how a whole answer (a provider that ignored `stream: true`, or a
    /// stored one) is replayed to a caller that asked for a stream.
    pub fn stream_events(&self) -> Vec<StreamEvent> {
        let mut out = Vec::with_capacity(self.content.len() * 2 + 4);
        out.push(StreamEvent::Start {
            id: self.id.clone(),
            model: self.model.clone(),
            usage: Usage {
                output_tokens: 0,
                reasoning_tokens: 0,
                ..self.usage
            },
        });
        let mut tools = 0usize;
        for p in &self.content {
            match p {
                Part::Text { text, .. } => out.push(StreamEvent::Text(text.clone())),
                Part::Thinking { text, signature } => {
                    out.push(StreamEvent::Thinking(text.clone()));
                    if let Some(s) = signature {
                        out.push(StreamEvent::ThinkingSignature(s.clone()));
                    }
                }
                Part::RedactedThinking { data } => out.push(StreamEvent::RedactedThinking(data.clone())),
                Part::ToolCall(c) => {
                    out.push(StreamEvent::ToolCallStart {
                        index: tools,
                        id: c.id.clone(),
                        name: c.name.clone(),
                    });
                    out.push(StreamEvent::ToolCallArgs {
                        index: tools,
                        fragment: c.arguments.clone(),
                    });
                    tools += 1;
                }
                Part::Image { .. } | Part::ToolResult(_) => {}
            }
        }
        if let Some(r) = &self.stop_reason {
            out.push(StreamEvent::Stop(r.clone()));
        }
        out.push(StreamEvent::Usage(self.usage));
        out.push(StreamEvent::Done);
        out
    }
}

/// What stream decoders emit and encoders consume.
///
/// Contract every decoder keeps (the encoders rely on it):
/// * `Start` comes first, exactly once (decoders synthesise it if the
///   upstream's first frame is something else);
/// * `ToolCallStart { index }` precedes every `ToolCallArgs { index }`;
///   indexes count tool calls in this message from 0;
/// * `Usage` carries the cumulative counts known so far (the decoder merges
///   its dialect's partial reports), so encoders keep only the latest;
/// * `Done` is emitted only when the upstream finished properly; a stream
///   that just stops has no `Done` and the translator turns that into an
///   error. After `Error`, `Malformed` or `Done` nothing follows.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The message begins.
    Start {
        /// Provider's message id.
        id: String,
        /// Provider's model name.
        model: String,
        /// Usage known at start (Anthropic reports input tokens here).
        usage: Usage,
    },
    /// Answer text appended.
    Text(String),
    /// Reasoning text appended.
    Thinking(String),
    /// Signature closing the current thinking block.
    ThinkingSignature(String),
    /// A complete redacted-thinking block.
    RedactedThinking(String),
    /// A tool call begins.
    ToolCallStart {
        /// Ordinal of the call within the message.
        index: usize,
        /// Call id.
        id: String,
        /// Function name.
        name: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallArgs {
        /// Ordinal of the call within the message.
        index: usize,
        /// Raw JSON text fragment.
        fragment: String,
    },
    /// The upstream closed its current content block (encoders that have
    /// blocks may close theirs early; others ignore it).
    BlockStop,
    /// Why generation stopped.
    Stop(StopReason),
    /// Cumulative usage so far.
    Usage(Usage),
    /// The upstream reported an error mid-stream.
    Error(ErrorInfo),
    /// The upstream broke its protocol (an event that is not valid JSON);
    /// the stream processor ends the stream with an error. Encoders never
    /// see it.
    Malformed(String),
    /// The upstream finished properly.
    Done,
}

/// Builds the `ErrorInfo` for an upstream failure reported inside a stream or
/// body, choosing Anthropic/OpenAI type names from the upstream's own kind.
pub fn upstream_error(message: String, upstream_kind: Option<&str>) -> ErrorInfo {
    let (kind, anthropic_kind, code): (&'static str, &'static str, Option<&'static str>) =
        match upstream_kind.unwrap_or("") {
            "overloaded_error" | "UNAVAILABLE" | "server_overloaded" => {
                ("server_error", "overloaded_error", Some("overloaded"))
            }
            "rate_limit_error" | "RESOURCE_EXHAUSTED" | "rate_limit_exceeded" => {
                ("rate_limit_error", "rate_limit_error", Some("rate_limit_exceeded"))
            }
            "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => {
                ("invalid_request_error", "invalid_request_error", None)
            }
            "authentication_error" | "UNAUTHENTICATED" => ("authentication_error", "authentication_error", None),
            "permission_error" | "PERMISSION_DENIED" => ("permission_error", "permission_error", None),
            "not_found_error" | "NOT_FOUND" => ("invalid_request_error", "not_found_error", None),
            "request_too_large" => ("invalid_request_error", "request_too_large", None),
            "timeout_error" | "DEADLINE_EXCEEDED" => ("server_error", "timeout_error", None),
            _ => ("server_error", "api_error", None),
        };
    ErrorInfo {
        message,
        kind,
        param: None,
        code,
        anthropic_kind,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_into_media_type_and_base64() {
        let s = ImageSource::from_url("data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(
            s,
            ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            }
        );
        assert_eq!(s.to_url(), "data:image/png;base64,iVBORw0KGgo=");
        let u = ImageSource::from_url("https://example.com/cat.jpg");
        assert_eq!(u, ImageSource::Url("https://example.com/cat.jpg".into()));
        // A data URL that is not base64 is passed on as a URL, not mangled.
        assert!(matches!(
            ImageSource::from_url("data:text/plain,hi"),
            ImageSource::Url(_)
        ));
    }

    #[test]
    fn effort_budget_mapping_round_trips_levels() {
        for e in [Effort::Low, Effort::Medium, Effort::High] {
            let b = e.anthropic_budget().unwrap();
            assert_eq!(Effort::from_budget(b), e);
        }
        assert_eq!(Effort::Minimal.anthropic_budget(), None);
    }

    #[test]
    fn extra_only_travels_to_its_own_dialect() {
        let mut x = Extra::default();
        x.fields.insert("seed".into(), Value::from(1));
        x.dialect = Some(WireDialect::OpenAi);
        assert!(x.for_dialect(WireDialect::OpenAi).is_some());
        assert!(x.for_dialect(WireDialect::Anthropic).is_none());
    }
}
