//! Gemini `streamGenerateContent?alt=sse` → IR stream events.
//!
//! Each SSE `data:` is a whole `GenerateContentResponse` holding the next
//! parts. Gemini has no terminal marker: the chunk carrying `finishReason`
//! (with the final `usageMetadata`) is the last, so `Done` follows it at
//! once; a stream that ends without one was cut off.

use super::{stop_reason_from_gemini, tool_call_id, usage_from_gemini};
use crate::ir::{upstream_error, StopReason, StreamEvent};
use crate::sse::SseEvent;
use crate::usage::Usage;
use serde_json::Value;

/// Decodes a Gemini SSE stream into IR events.
#[derive(Debug)]
pub struct StreamDecoder {
    fallback_id: Option<String>,
    seed: String,
    started: bool,
    calls: usize,
    usage: Usage,
    done: bool,
}

impl StreamDecoder {
    /// A decoder; `fallback_id` seeds generated tool call ids when Gemini
    /// sends no `responseId`.
    pub fn new(fallback_id: Option<String>) -> StreamDecoder {
        StreamDecoder {
            fallback_id,
            seed: String::new(),
            started: false,
            calls: 0,
            usage: Usage::default(),
            done: false,
        }
    }

    /// Decodes one SSE event (one response chunk).
    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        if self.done || ev.data.trim().is_empty() {
            return;
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                out.push(StreamEvent::Malformed("a stream event is not valid JSON".to_string()));
                return;
            }
        };
        // Errors arrive as `{"error":{...}}`, sometimes wrapped in a list.
        let err = v.get("error").or_else(|| v.pointer("/0/error"));
        if let Some(e) = err {
            self.done = true;
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error")
                .to_string();
            out.push(StreamEvent::Error(upstream_error(
                msg,
                e.get("status").and_then(Value::as_str),
            )));
            return;
        }
        let response_id = v.get("responseId").and_then(Value::as_str).unwrap_or("");
        let usage = v.get("usageMetadata").map(usage_from_gemini);
        if !self.started {
            self.started = true;
            self.seed = if response_id.is_empty() {
                self.fallback_id.clone().unwrap_or_default()
            } else {
                response_id.to_string()
            };
            out.push(StreamEvent::Start {
                id: response_id.to_string(),
                model: v.get("modelVersion").and_then(Value::as_str).unwrap_or("").to_string(),
                usage: usage.unwrap_or_default(),
            });
            self.usage = usage.unwrap_or_default();
        }
        let cand = v.pointer("/candidates/0");
        if let Some(Value::Array(parts)) = cand.and_then(|c| c.pointer("/content/parts")) {
            for p in parts {
                if let Some(fc) = p.get("functionCall") {
                    let ir = self.calls;
                    self.calls += 1;
                    let sig = p.get("thoughtSignature").and_then(Value::as_str);
                    let fid = fc.get("id").and_then(Value::as_str);
                    out.push(StreamEvent::ToolCallStart {
                        index: ir,
                        id: tool_call_id(fid, &self.seed, ir, sig),
                        name: fc.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    });
                    let args = fc.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into());
                    out.push(StreamEvent::ToolCallArgs {
                        index: ir,
                        fragment: args,
                    });
                    out.push(StreamEvent::BlockStop);
                } else if let Some(t) = p.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        out.push(StreamEvent::Thinking(t.to_string()));
                    } else {
                        out.push(StreamEvent::Text(t.to_string()));
                    }
                }
            }
        }
        if let Some(u) = usage {
            if u != self.usage {
                self.usage = u;
                out.push(StreamEvent::Usage(u));
            }
        }
        let finish = cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str);
        let blocked = cand.is_none() && v.pointer("/promptFeedback/blockReason").is_some();
        if finish.is_some() || blocked {
            let mut r = match finish {
                Some(f) => stop_reason_from_gemini(f),
                None => StopReason::ContentFilter,
            };
            if self.calls > 0 && r == StopReason::EndTurn {
                r = StopReason::ToolUse;
            }
            out.push(StreamEvent::Stop(r));
            out.push(StreamEvent::Done);
            self.done = true;
        }
    }

    /// End of input: nothing to add (a stream without `finishReason` was cut
    /// off, and the translator reports it).
    pub fn finish(&mut self, _out: &mut [StreamEvent]) {}
}
