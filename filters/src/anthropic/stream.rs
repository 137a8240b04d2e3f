//! Anthropic Messages SSE ⇄ IR stream events.

use super::{
    message_id, stop_reason_from_anthropic, stop_reason_to_anthropic, usage_from_anthropic, usage_to_anthropic,
};
use crate::error::render_anthropic;
use crate::ir::ResponseOptions;
use crate::ir::{upstream_error, StopReason, StreamEvent};
use crate::sse::{write_event, SseEvent};
use crate::usage::Usage;
use serde_json::{json, Value};

/// What an upstream content block is, by its Anthropic index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Tool(usize),
    /// A block we do not translate (server tool results, future types):
    /// its deltas and stop are ignored.
    Other,
}

/// Decodes an Anthropic Messages event stream into IR events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Upstream blocks seen: (index, kind, still open).
    blocks: Vec<(u64, Kind, bool)>,
    next_tool: usize,
    usage: Usage,
    stop_seen: bool,
    done: bool,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    fn ensure_start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                usage: Usage::default(),
            });
        }
    }

    /// The kind of the open upstream block `index` (deltas for closed or
    /// unknown blocks are protocol violations and are ignored).
    fn open_kind(&self, index: u64) -> Option<Kind> {
        self.blocks
            .iter()
            .rev()
            .find(|(i, _, open)| *i == index && *open)
            .map(|(_, k, _)| *k)
    }

    /// Decodes one SSE event. The JSON `type` decides; the `event:` line is
    /// only a fallback. `ping` and unknown events are ignored.
    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        if self.done {
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
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        let str_at = |val: &Value, k: &str| val.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        match ty {
            "message_start" => {
                if self.started {
                    return; // a duplicated message_start is not forwarded
                }
                self.started = true;
                let m = v.get("message").cloned().unwrap_or(Value::Null);
                self.usage = m.get("usage").map(usage_from_anthropic).unwrap_or_default();
                out.push(StreamEvent::Start {
                    id: str_at(&m, "id"),
                    model: str_at(&m, "model"),
                    usage: self.usage,
                });
            }
            "content_block_start" => {
                self.ensure_start(out);
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block").cloned().unwrap_or(Value::Null);
                let kind = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = str_at(&b, "text");
                        if !t.is_empty() {
                            out.push(StreamEvent::Text(t));
                        }
                        Kind::Text
                    }
                    Some("thinking") => {
                        let t = str_at(&b, "thinking");
                        if !t.is_empty() {
                            out.push(StreamEvent::Thinking(t));
                        }
                        Kind::Thinking
                    }
                    Some("redacted_thinking") => {
                        out.push(StreamEvent::RedactedThinking(str_at(&b, "data")));
                        Kind::Other
                    }
                    Some("tool_use") => {
                        let ir = self.next_tool;
                        self.next_tool += 1;
                        out.push(StreamEvent::ToolCallStart {
                            index: ir,
                            id: str_at(&b, "id"),
                            name: str_at(&b, "name"),
                        });
                        if let Some(input) = b.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())) {
                            out.push(StreamEvent::ToolCallArgs {
                                index: ir,
                                fragment: input.to_string(),
                            });
                        }
                        Kind::Tool(ir)
                    }
                    _ => Kind::Other,
                };
                self.blocks.push((index, kind, true));
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(kind) = self.open_kind(index) else {
                    return;
                };
                let d = v.get("delta").cloned().unwrap_or(Value::Null);
                match (d.get("type").and_then(Value::as_str), kind) {
                    (Some("text_delta"), Kind::Text) => {
                        let t = str_at(&d, "text");
                        if !t.is_empty() {
                            out.push(StreamEvent::Text(t));
                        }
                    }
                    (Some("thinking_delta"), Kind::Thinking) => {
                        let t = str_at(&d, "thinking");
                        if !t.is_empty() {
                            out.push(StreamEvent::Thinking(t));
                        }
                    }
                    (Some("signature_delta"), Kind::Thinking) => {
                        out.push(StreamEvent::ThinkingSignature(str_at(&d, "signature")));
                    }
                    (Some("input_json_delta"), Kind::Tool(ir)) => {
                        let f = str_at(&d, "partial_json");
                        if !f.is_empty() {
                            out.push(StreamEvent::ToolCallArgs { index: ir, fragment: f });
                        }
                    }
                    _ => {} // citations and future delta types
                }
            }
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let kind = self.open_kind(index);
                if let Some(b) = self.blocks.iter_mut().rev().find(|(i, _, open)| *i == index && *open) {
                    b.2 = false;
                }
                if matches!(kind, Some(k) if k != Kind::Other) {
                    out.push(StreamEvent::BlockStop);
                }
            }
            "message_delta" => {
                self.ensure_start(out);
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    // Merge: message_delta's counts are cumulative, and fields
                    // it omits (or nulls) keep their message_start values.
                    let has = |k: &str| u.get(k).is_some_and(|x| x.is_u64());
                    let fresh = usage_from_anthropic(u);
                    if has("output_tokens") {
                        self.usage.output_tokens = fresh.output_tokens;
                    }
                    if has("input_tokens") || has("cache_read_input_tokens") || has("cache_creation_input_tokens") {
                        let old = self.usage;
                        let pick = |k: &str, new: u64, old: u64| if has(k) { new } else { old };
                        let read = pick(
                            "cache_read_input_tokens",
                            fresh.cached_input_tokens,
                            old.cached_input_tokens,
                        );
                        let write = pick(
                            "cache_creation_input_tokens",
                            fresh.cache_write_tokens,
                            old.cache_write_tokens,
                        );
                        let old_uncached = old
                            .input_tokens
                            .saturating_sub(old.cached_input_tokens)
                            .saturating_sub(old.cache_write_tokens);
                        let uncached = if has("input_tokens") {
                            u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0)
                        } else {
                            old_uncached
                        };
                        self.usage.cached_input_tokens = read;
                        self.usage.cache_write_tokens = write;
                        self.usage.input_tokens = uncached.saturating_add(read).saturating_add(write);
                    }
                    out.push(StreamEvent::Usage(self.usage));
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_seen = true;
                    let seq = v.pointer("/delta/stop_sequence").and_then(Value::as_str);
                    out.push(StreamEvent::Stop(stop_reason_from_anthropic(r, seq)));
                }
            }
            "message_stop" => {
                self.ensure_start(out);
                self.done = true;
                out.push(StreamEvent::Done);
            }
            "error" => {
                self.done = true;
                let e = v.get("error").cloned().unwrap_or(Value::Null);
                let msg = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_string();
                out.push(StreamEvent::Error(upstream_error(
                    msg,
                    e.get("type").and_then(Value::as_str),
                )));
            }
            _ => {} // ping and future event types
        }
    }

    /// End of input: a stream that delivered its `message_delta` stop reason
    /// but lost the final `message_stop` is treated as complete.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done && self.stop_seen {
            self.done = true;
            out.push(StreamEvent::Done);
        }
    }
}

/// The caller-side block currently open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Thinking(u32),
    Tool { ir: usize, idx: u32 },
}

/// Encodes IR events as a spec-exact Anthropic Messages stream: one
/// `message_start`, blocks with contiguous indexes from 0 (each
/// start → deltas → stop, one open at a time), one `message_delta` carrying
/// the stop reason and the full usage, one `message_stop`.
///
/// Thinking goes in `thinking` blocks (never in text), tool calls in
/// `tool_use` blocks with `input_json_delta`. If an upstream interleaves
/// argument fragments of parallel tool calls (OpenAI itself does not), a
/// fragment for an already-closed call is still delivered on that call's
/// index — Anthropic SDKs accumulate by index — rather than dropped.
#[derive(Debug)]
pub struct StreamEncoder {
    opts: ResponseOptions,
    started: bool,
    next_index: u32,
    open: Option<Open>,
    tools: Vec<(usize, u32)>,
    stop: Option<StopReason>,
    usage: Usage,
    ended: bool,
}

fn emit(out: &mut Vec<u8>, ty: &str, data: &Value) {
    write_event(out, Some(ty), &data.to_string());
}

impl StreamEncoder {
    /// An encoder reporting the given id/model.
    pub fn new(opts: ResponseOptions) -> StreamEncoder {
        StreamEncoder {
            opts,
            started: false,
            next_index: 0,
            open: None,
            tools: Vec::new(),
            stop: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let data = json!({
            "type": "message_start",
            "message": {
                "id": message_id(id, &self.opts),
                "type": "message",
                "role": "assistant",
                "model": self.opts.model.as_deref().unwrap_or(model),
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_to_anthropic(&self.usage),
            }
        });
        emit(out, "message_start", &data);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(o) = self.open.take() {
            let idx = match o {
                Open::Text(i) | Open::Thinking(i) | Open::Tool { idx: i, .. } => i,
            };
            emit(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": idx}),
            );
        }
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<u8>) -> u32 {
        self.close(out);
        let idx = self.next_index;
        self.next_index += 1;
        emit(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": idx, "content_block": block}),
        );
        idx
    }

    fn delta(out: &mut Vec<u8>, idx: u32, delta: Value) {
        emit(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": idx, "delta": delta}),
        );
    }

    /// Encodes one IR event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if let StreamEvent::Start { id, model, usage } = ev {
            self.usage = *usage;
            self.start(id, model, out);
            return;
        }
        if !matches!(
            ev,
            StreamEvent::Error(_) | StreamEvent::Malformed(_) | StreamEvent::Usage(_) | StreamEvent::Stop(_)
        ) {
            self.start("", "", out);
        }
        match ev {
            StreamEvent::Start { .. } => {}
            StreamEvent::Text(t) => {
                if t.is_empty() {
                    return;
                }
                let idx = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => {
                        let i = self.open_block(json!({"type": "text", "text": ""}), out);
                        self.open = Some(Open::Text(i));
                        i
                    }
                };
                Self::delta(out, idx, json!({"type": "text_delta", "text": t}));
            }
            StreamEvent::Thinking(t) => {
                if t.is_empty() {
                    return;
                }
                let idx = self.thinking_block(out);
                Self::delta(out, idx, json!({"type": "thinking_delta", "thinking": t}));
            }
            StreamEvent::ThinkingSignature(s) => {
                let idx = self.thinking_block(out);
                Self::delta(out, idx, json!({"type": "signature_delta", "signature": s}));
                self.close(out);
            }
            StreamEvent::RedactedThinking(d) => {
                self.open_block(json!({"type": "redacted_thinking", "data": d}), out);
                let idx = self.next_index - 1;
                emit(
                    out,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": idx}),
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let idx = self.open_block(json!({"type": "tool_use", "id": id, "name": name, "input": {}}), out);
                self.open = Some(Open::Tool { ir: *index, idx });
                self.tools.push((*index, idx));
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if fragment.is_empty() {
                    return;
                }
                let idx = match self.open {
                    Some(Open::Tool { ir, idx }) if ir == *index => Some(idx),
                    _ => self.tools.iter().rev().find(|(ir, _)| ir == index).map(|(_, i)| *i),
                };
                if let Some(idx) = idx {
                    Self::delta(out, idx, json!({"type": "input_json_delta", "partial_json": fragment}));
                }
            }
            StreamEvent::BlockStop => self.close(out),
            StreamEvent::Stop(r) => self.stop = Some(r.clone()),
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Error(e) => {
                self.ended = true;
                write_event(out, Some("error"), &String::from_utf8_lossy(&render_anthropic(e)));
            }
            // The stream processor turns it into an error before encoding.
            StreamEvent::Malformed(_) => {}
            StreamEvent::Done => {
                self.close(out);
                let (reason, seq) = stop_reason_to_anthropic(self.stop.as_ref(), !self.tools.is_empty());
                emit(
                    out,
                    "message_delta",
                    &json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": seq},
                        "usage": usage_to_anthropic(&self.usage),
                    }),
                );
                emit(out, "message_stop", &json!({"type": "message_stop"}));
                self.ended = true;
            }
        }
    }

    fn thinking_block(&mut self, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                let i = self.open_block(json!({"type": "thinking", "thinking": "", "signature": ""}), out);
                self.open = Some(Open::Thinking(i));
                i
            }
        }
    }
}
