//! One stream-processor API for every way a provider's SSE stream reaches a
//! caller, and every rule for how such a stream may end.
//!
//! The gateway relays three kinds of stream, and all of them go through
//! [`StreamProcessor`]:
//!
//! | caller ← provider | mode | what happens to the bytes |
//! |---|---|---|
//! | OpenAI ← OpenAI-compatible | [`openai::OpenAiPass`] | forwarded event by event, byte for byte (usage chunk stripped when the caller did not ask for it, repeated tool-call ids/names removed) |
//! | Anthropic ← Anthropic | [`anthropic::AnthropicPass`] | forwarded event by event, byte for byte |
//! | any other pair | [`translate::Translate`] | decoded into IR events, encoded in the caller's dialect |
//!
//! The processor, not the gateway, decides whether a stream completed. A
//! stream that does not complete — the connection was cut, the provider
//! closed it without its terminal event (`[DONE]` / `finish_reason`,
//! `message_stop`), an event was malformed or over the size cap, the
//! provider reported an error mid-stream, or the gateway gave up waiting —
//! ends with exactly one protocol-correct error event in the caller's
//! dialect, written on its own (a half-received event is dropped, never
//! glued to the error), and nothing after it. [`StreamProcessor::failure`]
//! then says why, in words that are the same as the error event's, so what
//! the caller saw and what the gateway records agree.
//!
//! Output depends only on the input bytes, never on how they were split
//! (tested at every byte boundary for every fixture, in every mode).

mod anthropic;
mod openai;
mod translate;

use crate::error::{Dialect, ErrorInfo};
use crate::estimate;
use crate::ir::ResponseOptions;
use crate::ir::WireDialect;
use crate::usage::Usage;
use std::fmt;

/// Where the usage figures of a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageSource {
    /// The provider reported them.
    #[default]
    Provider,
    /// The provider reported none (llama.cpp ignores
    /// `stream_options.include_usage`): the gateway estimated them from the
    /// request and the generated text (see [`crate::estimate`]).
    Estimated,
}

impl UsageSource {
    /// The label stored with usage records (`provider` / `estimated`).
    pub fn label(self) -> &'static str {
        match self {
            UsageSource::Provider => "provider",
            UsageSource::Estimated => "estimated",
        }
    }
}

/// How many input tokens the request had, for when the provider does not say.
///
/// Translated requests are already decoded, so their estimate is computed up
/// front ([`InputEstimate::Tokens`]); same-dialect requests are never decoded
/// on the fast path, so their body is kept and parsed only if the stream ends
/// without usage ([`InputEstimate::Request`]).
#[derive(Debug, Clone, Default)]
pub enum InputEstimate {
    /// Nothing known (the estimate reads 0).
    #[default]
    Unknown,
    /// Already estimated.
    Tokens(u64),
    /// Estimate from this request body, in this dialect, when needed.
    Request {
        /// Dialect the body is written in.
        dialect: WireDialect,
        /// The request body as the caller sent it.
        body: bytes::Bytes,
    },
}

impl InputEstimate {
    /// The estimate; a body is parsed at most once, then remembered.
    pub fn tokens(&mut self) -> u64 {
        match self {
            InputEstimate::Unknown => 0,
            InputEstimate::Tokens(n) => *n,
            InputEstimate::Request { dialect, body } => {
                let n = estimate::request_input_tokens(*dialect, body).unwrap_or(0);
                *self = InputEstimate::Tokens(n);
                n
            }
        }
    }
}

/// Why a stream did not complete. The error event the caller received was
/// rendered from [`StreamFailure::info`], so the same words reach the log,
/// the usage record and the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// The provider closed the stream cleanly before its terminal event.
    Truncated,
    /// An event was not what the protocol allows (not JSON, or out of order).
    Malformed(String),
    /// One event grew beyond the size cap.
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The provider reported an error inside the stream.
    Upstream(ErrorInfo),
    /// The gateway ended the stream: the connection failed or went idle. The
    /// info is the gateway's own error, passed to [`StreamProcessor::finish`].
    Interrupted(ErrorInfo),
}

impl StreamFailure {
    /// The caller-facing error, naming the provider instance.
    pub fn info(&self, provider: &str) -> ErrorInfo {
        let ours = |message: String, code: &'static str| ErrorInfo {
            message,
            kind: "api_error",
            param: None,
            code: Some(code),
            anthropic_kind: "api_error",
        };
        match self {
            StreamFailure::Truncated => ours(
                format!("Provider `{provider}` ended the stream before the response was complete"),
                "upstream_stream_truncated",
            ),
            StreamFailure::Malformed(detail) => ours(
                format!("Provider `{provider}` sent an invalid stream: {detail}"),
                "upstream_protocol_error",
            ),
            StreamFailure::TooLarge { limit } => ours(
                format!("Provider `{provider}` sent a stream event larger than {limit} bytes"),
                "upstream_protocol_error",
            ),
            StreamFailure::Upstream(e) => ErrorInfo {
                message: format!("Provider `{provider}` reported an error mid-stream: {}", e.message),
                ..e.clone()
            },
            StreamFailure::Interrupted(e) => e.clone(),
        }
    }

    /// Removes credentials from the provider text this failure carries.
    pub fn scrub(&mut self, s: &crate::scrub::Scrubber) {
        match self {
            StreamFailure::Malformed(detail) => s.scrub_in_place(detail),
            StreamFailure::Upstream(e) | StreamFailure::Interrupted(e) => s.scrub_in_place(&mut e.message),
            StreamFailure::Truncated | StreamFailure::TooLarge { .. } => {}
        }
    }

    /// A short machine label for logs, metrics and usage records.
    pub fn kind(&self) -> &'static str {
        match self {
            StreamFailure::Truncated => "upstream_truncated",
            StreamFailure::Malformed(_) | StreamFailure::TooLarge { .. } => "upstream_protocol",
            StreamFailure::Upstream(_) => "upstream_stream_error",
            StreamFailure::Interrupted(_) => "interrupted",
        }
    }
}

impl fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.info("upstream").message)
    }
}

/// What one step of a mode produced.
#[derive(Debug)]
enum Step {
    /// More input is expected.
    Continue,
    /// The stream is complete; its terminal event has been written.
    Complete,
    /// The stream failed; the processor writes the error event.
    Failed(StreamFailure),
}

/// What a stream processor needs to know about the exchange.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The provider's wire dialect.
    pub upstream: WireDialect,
    /// The caller's dialect.
    pub caller: Dialect,
    /// The provider instance, named in error events (`openai-east`).
    pub provider: String,
    /// Id, model and time to report when translating; `include_usage`: the
    /// OpenAI caller asked for the final usage chunk.
    pub options: ResponseOptions,
    /// Input tokens, for when the provider reports no usage.
    pub input: InputEstimate,
    /// Largest event accepted, in bytes.
    pub max_event_bytes: usize,
    /// Removes credentials the provider quotes from every error it reports
    /// (the caller's error event and [`StreamProcessor::failure`]).
    pub scrubber: Option<std::sync::Arc<crate::scrub::Scrubber>>,
}

impl StreamSpec {
    /// A spec with the default event cap and no input estimate.
    pub fn new(upstream: WireDialect, caller: Dialect, provider: impl Into<String>, options: ResponseOptions) -> Self {
        StreamSpec {
            upstream,
            caller,
            provider: provider.into(),
            options,
            input: InputEstimate::Unknown,
            max_event_bytes: crate::sse::DEFAULT_MAX_EVENT_BYTES,
            scrubber: None,
        }
    }
}

/// The per-mode state machines.
#[derive(Debug)]
enum Mode {
    OpenAi(Box<openai::OpenAiPass>),
    Anthropic(Box<anthropic::AnthropicPass>),
    Translate(Box<translate::Translate>),
}

/// Relays one provider stream to one caller: `push` bytes as they arrive,
/// `finish` once at the end; every call appends the caller's bytes to `out`.
#[derive(Debug)]
pub struct StreamProcessor {
    mode: Mode,
    caller: Dialect,
    provider: String,
    input: InputEstimate,
    ended: bool,
    failure: Option<StreamFailure>,
    scrubber: Option<std::sync::Arc<crate::scrub::Scrubber>>,
}

impl StreamProcessor {
    /// The processor for this exchange: a byte-for-byte relay when caller and
    /// provider speak the same dialect, a translator otherwise.
    pub fn new(spec: StreamSpec) -> StreamProcessor {
        let StreamSpec {
            upstream,
            caller,
            provider,
            options,
            mut input,
            max_event_bytes,
            scrubber,
        } = spec;
        let mode = match (upstream, caller) {
            (WireDialect::OpenAi, Dialect::OpenAi) => Mode::OpenAi(Box::new(openai::OpenAiPass::new(
                options.include_usage,
                max_event_bytes,
            ))),
            (WireDialect::Anthropic, Dialect::Anthropic) => {
                Mode::Anthropic(Box::new(anthropic::AnthropicPass::new(max_event_bytes)))
            }
            _ => {
                // A translator reports input tokens in its first event
                // (Anthropic `message_start`), so the estimate is needed now.
                let estimate = input.tokens();
                Mode::Translate(Box::new(translate::Translate::new(
                    upstream,
                    caller,
                    options,
                    estimate,
                    max_event_bytes,
                )))
            }
        };
        StreamProcessor {
            mode,
            caller,
            provider,
            input,
            ended: false,
            failure: None,
            scrubber,
        }
    }

    /// Feeds provider bytes; appends whatever caller bytes they complete.
    /// Input after the stream ended is ignored.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let step = match &mut self.mode {
            Mode::OpenAi(m) => m.push(bytes, out, &mut self.input),
            Mode::Anthropic(m) => m.push(bytes, out),
            Mode::Translate(m) => m.push(bytes, out),
        };
        self.apply(step, out);
    }

    /// Ends the stream. `interruption` is the gateway's reason when the
    /// provider's stream did not end by itself (a read error, an idle
    /// timeout): a half-received event is then dropped and the error event
    /// carries exactly that info. With `None` (the provider closed the body
    /// cleanly) a final event without its blank line is still delivered, and
    /// a stream without its terminal event becomes [`StreamFailure::Truncated`].
    /// Idempotent.
    pub fn finish(&mut self, interruption: Option<ErrorInfo>, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let Some(info) = interruption {
            self.fail(StreamFailure::Interrupted(info), out);
            return;
        }
        let step = match &mut self.mode {
            Mode::OpenAi(m) => m.end_of_input(out, &mut self.input),
            Mode::Anthropic(m) => m.end_of_input(out),
            Mode::Translate(m) => m.end_of_input(out),
        };
        match step {
            Step::Continue => self.fail(StreamFailure::Truncated, out),
            other => self.apply(other, out),
        }
    }

    fn apply(&mut self, step: Step, out: &mut Vec<u8>) {
        match step {
            Step::Continue => {}
            Step::Complete => self.ended = true,
            Step::Failed(f) => self.fail(f, out),
        }
    }

    fn fail(&mut self, mut failure: StreamFailure, out: &mut Vec<u8>) {
        if let Some(s) = &self.scrubber {
            failure.scrub(s);
        }
        let info = failure.info(&self.provider);
        match &mut self.mode {
            Mode::OpenAi(_) => openai::write_error(&info, out),
            Mode::Anthropic(_) => anthropic::write_error(&info, out),
            Mode::Translate(m) => m.write_error(info, out),
        }
        self.failure = Some(failure);
        self.ended = true;
    }

    /// Whether the caller's stream is over (complete or failed).
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// Why the stream did not complete, once it ended; `None` while running
    /// and after a complete stream.
    pub fn failure(&self) -> Option<&StreamFailure> {
        self.failure.as_ref()
    }

    /// Whether any generated content (text, thinking, a tool call) has been
    /// written, for time to first token.
    pub fn first_token_seen(&self) -> bool {
        match &self.mode {
            Mode::OpenAi(m) => m.first_token_seen(),
            Mode::Anthropic(m) => m.first_token_seen(),
            Mode::Translate(m) => m.first_token_seen(),
        }
    }

    /// The caller's dialect.
    pub fn caller(&self) -> Dialect {
        self.caller
    }

    /// Usage of the stream: what the provider reported, or — when it
    /// reported nothing — the estimate from the request and the generated
    /// text. Complete once the stream ended.
    pub fn usage(&mut self) -> (Usage, UsageSource) {
        let (reported, chars) = match &self.mode {
            Mode::OpenAi(m) => (m.usage(), m.output_chars()),
            Mode::Anthropic(m) => (m.usage(), m.output_chars()),
            Mode::Translate(m) => (m.reported_usage(), m.output_chars()),
        };
        match reported {
            Some(u) => (u, UsageSource::Provider),
            None => (
                Usage {
                    input_tokens: self.input.tokens(),
                    output_tokens: estimate::text_tokens(chars),
                    ..Usage::default()
                },
                UsageSource::Estimated,
            ),
        }
    }
}

/// A whole response replayed as a stream in the caller's dialect, with the
/// spec-exact event sequence a live stream of it would have had: for a
/// provider that answered JSON to a streamed request, and for stored answers.
pub fn replay(resp: &crate::ir::ChatResponse, caller: Dialect, options: ResponseOptions) -> Vec<u8> {
    translate::replay(resp, caller, options)
}

/// Appends `raw` (an event's exact bytes) to `out`, adding the blank line a
/// final event may lack, so whatever follows starts on its own line.
fn forward_terminated(raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(raw);
    if !(raw.ends_with(b"\n\n") || raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\r\r")) {
        if raw.ends_with(b"\n") || raw.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// Counts the characters of a JSON string without keeping it; anything that
/// is not a string counts 0. For output-token estimates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TextLen(u64);

impl<'de> serde::Deserialize<'de> for TextLen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TextLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TextLen, E> {
                Ok(TextLen(s.chars().count() as u64))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextLen, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TextLen(0))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TextLen, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(TextLen(0))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
