//! Anthropic caller, Anthropic provider: the native fast path. Events are
//! forwarded as they complete, byte for byte; on the way the relay reads
//! usage (input from `message_start`, output from `message_delta`, merged —
//! a later count never replaces an earlier one with zero), the first token
//! and the generated text's length, and it holds the stream to the Messages
//! protocol: the first event (after pings) is `message_start`, every event
//! is a JSON object, and the stream is complete with `message_stop` (or, when
//! only that last event was lost, after `message_delta` — the relay then
//! writes the `message_stop` itself).

use super::{forward_terminated, Step, StreamFailure, TextLen};
use crate::anthropic::usage_from_anthropic;
use crate::error::{render_anthropic, ErrorInfo};
use crate::ir::upstream_error;
use crate::sse::{SseDecoder, SseEvent, SseItem};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The Anthropic same-dialect relay (see the module docs).
#[derive(Debug)]
pub(crate) struct AnthropicPass {
    decoder: SseDecoder,
    state: State,
}

#[derive(Debug, Default)]
struct State {
    started: bool,
    stop_reason_seen: bool,
    usage: Option<Usage>,
    first_token: bool,
    output_chars: u64,
}

enum Action {
    Forward,
    Stop,
    Fail(StreamFailure),
}

impl AnthropicPass {
    pub(crate) fn new(max_event_bytes: usize) -> Self {
        AnthropicPass {
            decoder: SseDecoder::with_max_event_bytes(max_event_bytes),
            state: State::default(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Step {
        // Anthropic events are small; one piece per 64 KiB keeps a big push
        // of many events from looking like one oversized event.
        for piece in bytes.chunks(64 * 1024) {
            if let Err(crate::sse::SseError::EventTooLarge { limit }) = self.decoder.push(piece) {
                return Step::Failed(StreamFailure::TooLarge { limit });
            }
            match self.drain(out) {
                Step::Continue => {}
                other => return other,
            }
        }
        Step::Continue
    }

    pub(crate) fn end_of_input(&mut self, out: &mut Vec<u8>) -> Step {
        self.decoder.finish();
        match self.drain(out) {
            Step::Continue if self.state.stop_reason_seen => {
                out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
                Step::Complete
            }
            other => other,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> Step {
        while let Some(item) = self.decoder.next_item() {
            let action = match &item {
                SseItem::Comment => Action::Forward,
                SseItem::Event(ev) => self.state.inspect(ev),
            };
            let raw = self.decoder.last_raw();
            match action {
                Action::Forward => forward_terminated(raw, out),
                Action::Stop => {
                    forward_terminated(raw, out);
                    return Step::Complete;
                }
                Action::Fail(f) => return Step::Failed(f),
            }
        }
        Step::Continue
    }

    pub(crate) fn usage(&self) -> Option<Usage> {
        self.state.usage
    }

    pub(crate) fn output_chars(&self) -> u64 {
        self.state.output_chars
    }

    pub(crate) fn first_token_seen(&self) -> bool {
        self.state.first_token
    }
}

/// `event: error` with Anthropic's error object.
pub(crate) fn write_error(info: &ErrorInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: error\ndata: ");
    out.extend_from_slice(&render_anthropic(info));
    out.extend_from_slice(b"\n\n");
}

/// One event, borrowed: only what the relay decides on.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, rename = "type")]
    ty: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<MessageStart<'a>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default)]
    text: TextLen,
    #[serde(default)]
    thinking: TextLen,
    #[serde(default)]
    partial_json: TextLen,
    #[serde(borrow, default)]
    stop_reason: Option<&'a RawValue>,
}

impl State {
    fn inspect(&mut self, ev: &SseEvent) -> Action {
        let e: Event<'_> = match serde_json::from_str(&ev.data) {
            Ok(e) => e,
            Err(err) => {
                return Action::Fail(StreamFailure::Malformed(format!(
                    "a stream event is not a JSON object ({err})"
                )))
            }
        };
        // The JSON `type` decides; the `event:` line is the fallback.
        let ty = e.ty.as_deref().or(ev.event.as_deref()).unwrap_or("");
        if ty == "error" {
            let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            let message = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error event");
            let kind = v.pointer("/error/type").and_then(Value::as_str);
            return Action::Fail(StreamFailure::Upstream(upstream_error(message.to_string(), kind)));
        }
        if ty == "ping" {
            return Action::Forward;
        }
        if !self.started && ty != "message_start" {
            return Action::Fail(StreamFailure::Malformed(format!(
                "the stream began with `{ty}` instead of message_start"
            )));
        }
        match ty {
            "message_start" => {
                self.started = true;
                if let Some(u) = e.message.and_then(|m| m.usage) {
                    self.merge(u);
                }
            }
            "content_block_delta" => {
                self.first_token = true;
                if let Some(d) = &e.delta {
                    self.output_chars += d.text.0 + d.thinking.0 + d.partial_json.0;
                }
            }
            "message_delta" => {
                if e.delta.as_ref().is_some_and(|d| d.stop_reason.is_some()) {
                    self.stop_reason_seen = true;
                }
                if let Some(u) = e.usage {
                    self.merge(u);
                }
            }
            "message_stop" => return Action::Stop,
            _ => {}
        }
        Action::Forward
    }

    /// Later non-zero counts win field by field: `message_delta` usage is
    /// cumulative, and may omit input counts that `message_start` had.
    fn merge(&mut self, raw: &RawValue) {
        let Ok(v) = serde_json::from_str::<Value>(raw.get()) else {
            return;
        };
        if !v.is_object() {
            return;
        }
        let u = usage_from_anthropic(&v);
        let old = self.usage.unwrap_or_default();
        let pick = |old: u64, new: u64| if new > 0 { new } else { old };
        self.usage = Some(Usage {
            input_tokens: pick(old.input_tokens, u.input_tokens),
            output_tokens: pick(old.output_tokens, u.output_tokens),
            cached_input_tokens: pick(old.cached_input_tokens, u.cached_input_tokens),
            cache_write_tokens: pick(old.cache_write_tokens, u.cache_write_tokens),
            reasoning_tokens: pick(old.reasoning_tokens, u.reasoning_tokens),
        });
    }
}
