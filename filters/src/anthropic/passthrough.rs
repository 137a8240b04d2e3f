//! Anthropic caller → Anthropic provider: the native fast path.
//!
//! The body is forwarded verbatim except `model`, and the stream is forwarded
//! event by event, unchanged; we only read usage on the way (input tokens from
//! `message_start`, output from `message_delta`, merged — a later count never
//! replaces an earlier one with zero) and note whether the stream completed.

use super::usage_from_anthropic;
use crate::passthrough::{BodyError, JsonObject};
use crate::sse::{SseDecoder, SseItem};
use crate::usage::Usage;
use serde_json::Value;

/// What the gateway needs from a Messages request before forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesHead {
    /// Requested model.
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
}

/// Validates the fields routing depends on (`model`, `messages`, `stream`);
/// the provider validates the rest.
pub fn inspect_messages(obj: &JsonObject<'_>) -> Result<MessagesHead, BodyError> {
    let model = match obj.get("model").map(|r| serde_json::from_str::<Value>(r.get())) {
        None | Some(Ok(Value::Null)) => return Err(BodyError::MissingField("model")),
        Some(Ok(Value::String(s))) if !s.is_empty() => s,
        _ => {
            return Err(BodyError::InvalidField {
                field: "model",
                expected: "a non-empty string",
            })
        }
    };
    match obj
        .get("messages")
        .map(|r| r.get().trim_start().as_bytes().first().copied())
    {
        None => return Err(BodyError::MissingField("messages")),
        Some(Some(b'[')) => {}
        _ => {
            return Err(BodyError::InvalidField {
                field: "messages",
                expected: "an array of messages",
            })
        }
    }
    let stream = match obj.get("stream").map(|r| r.get().trim()) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        _ => {
            return Err(BodyError::InvalidField {
                field: "stream",
                expected: "a boolean",
            })
        }
    };
    Ok(MessagesHead { model, stream })
}

/// Usage of a non-streamed Messages response.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Resp {
        usage: Option<Value>,
    }
    let r: Resp = serde_json::from_slice(body).ok()?;
    r.usage.map(|u| usage_from_anthropic(&u))
}

/// Forwards Anthropic SSE unchanged while reading usage and completion.
#[derive(Debug, Default)]
pub struct AnthropicStreamPassthrough {
    decoder: SseDecoder,
    usage: Usage,
    saw_usage: bool,
    stopped: bool,
    first_token: bool,
    error: Option<String>,
}

impl AnthropicStreamPassthrough {
    /// A fresh scanner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends every completed event's raw bytes to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if let Err(e) = self.decoder.push(bytes) {
            self.error = Some(e.to_string());
            return;
        }
        self.drain(out);
    }

    /// Flushes an unterminated final event.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.decoder.finish();
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        while let Some(item) = self.decoder.next_item() {
            if let SseItem::Event(ev) = &item {
                self.observe(ev.event.as_deref(), &ev.data);
            }
            out.extend_from_slice(self.decoder.last_raw());
        }
    }

    fn observe(&mut self, event: Option<&str>, data: &str) {
        match event {
            Some("content_block_delta") => self.first_token = true,
            Some("message_stop") => self.stopped = true,
            Some("message_start") | Some("message_delta") | Some("error") => {
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                match event {
                    Some("message_start") => {
                        if let Some(u) = v.pointer("/message/usage") {
                            self.merge(usage_from_anthropic(u));
                        }
                    }
                    Some("message_delta") => {
                        if let Some(u) = v.get("usage") {
                            self.merge(usage_from_anthropic(u));
                        }
                    }
                    _ => {
                        let msg = v.pointer("/error/message").and_then(Value::as_str);
                        self.error = Some(msg.unwrap_or("upstream error event").to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// Later non-zero counts win field by field: `message_delta` usage is
    /// cumulative, and may omit input counts that `message_start` had.
    fn merge(&mut self, u: Usage) {
        self.saw_usage = true;
        let pick = |old: u64, new: u64| if new > 0 { new } else { old };
        self.usage = Usage {
            input_tokens: pick(self.usage.input_tokens, u.input_tokens),
            output_tokens: pick(self.usage.output_tokens, u.output_tokens),
            cached_input_tokens: pick(self.usage.cached_input_tokens, u.cached_input_tokens),
            cache_write_tokens: pick(self.usage.cache_write_tokens, u.cache_write_tokens),
            reasoning_tokens: pick(self.usage.reasoning_tokens, u.reasoning_tokens),
        };
    }

    /// Usage seen so far, if any event carried it.
    pub fn usage(&self) -> Option<Usage> {
        self.saw_usage.then_some(self.usage)
    }

    /// `message_stop` arrived: the stream is complete.
    pub fn completed(&self) -> bool {
        self.stopped
    }

    /// A content delta has been forwarded (time to first token).
    pub fn first_token_seen(&self) -> bool {
        self.first_token
    }

    /// An `error` event's message, or a decoder failure.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hé😀\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, AnthropicStreamPassthrough) {
        let mut p = AnthropicStreamPassthrough::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        (out, p)
    }

    #[test]
    fn forwards_unchanged_and_merges_usage() {
        let (out, p) = run(&[STREAM.as_bytes()]);
        assert_eq!(out, STREAM.as_bytes());
        let u = p.usage().expect("usage");
        assert_eq!((u.input_tokens, u.cached_input_tokens, u.output_tokens), (125, 100, 15));
        assert!(p.completed() && p.first_token_seen());
    }

    #[test]
    fn byte_split_invariance() {
        let bytes = STREAM.as_bytes();
        let (whole, _) = run(&[bytes]);
        for cut in 0..bytes.len() {
            let (split, p) = run(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
            assert_eq!(p.usage().map(|u| u.output_tokens), Some(15));
        }
    }

    #[test]
    fn error_event_and_truncation_are_visible() {
        let (_, p) = run(&[b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"]);
        assert_eq!(p.error(), Some("Overloaded"));
        assert!(!p.completed());
    }

    #[test]
    fn inspects_requests() {
        let ok = JsonObject::parse(br#"{"model":"claude","max_tokens":5,"messages":[],"stream":true}"#).expect("json");
        assert_eq!(
            inspect_messages(&ok),
            Ok(MessagesHead {
                model: "claude".into(),
                stream: true
            })
        );
        let no_model = JsonObject::parse(br#"{"messages":[]}"#).expect("json");
        assert_eq!(inspect_messages(&no_model), Err(BodyError::MissingField("model")));
        let bad = JsonObject::parse(br#"{"model":"c","messages":{}}"#).expect("json");
        assert!(inspect_messages(&bad).is_err());
    }
}
