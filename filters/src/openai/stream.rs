//! OpenAI `chat.completion.chunk` streams ⇄ IR stream events.

use super::response::openai_id;
use super::{stop_reason_to_openai, usage_to_openai};
use crate::error::render_openai;
use crate::ir::ResponseOptions;
use crate::ir::{upstream_error, StopReason, StreamEvent};
use crate::sse::{write_event, SseEvent};
use crate::usage::Usage;
use serde_json::{json, Value};

/// One upstream tool call being assembled (OpenAI streams the id and name in
/// the first fragment, but some compatible servers send the name late).
#[derive(Debug)]
struct ToolSlot {
    oa_index: u64,
    ir_index: Option<usize>,
    id: Option<String>,
    name: Option<String>,
    pending_args: String,
}

/// Decodes an OpenAI-compatible chunk stream into IR events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    chunk_id: String,
    tools: Vec<ToolSlot>,
    next_tool: usize,
    stop_seen: bool,
    refused: bool,
    done: bool,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    fn ensure_start(&mut self, chunk: Option<&Value>, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let s = |k: &str| {
            chunk
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        self.chunk_id = s("id");
        out.push(StreamEvent::Start {
            id: s("id"),
            model: s("model"),
            usage: Usage::default(),
        });
    }

    /// Decodes one SSE event.
    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        let data = ev.data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.ensure_start(None, out);
            self.flush_unstarted_tools(out);
            out.push(StreamEvent::Done);
            self.done = true;
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                self.done = true;
                out.push(StreamEvent::Malformed("a stream event is not valid JSON".to_string()));
                return;
            }
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            self.done = true;
            let (msg, kind) = match err {
                Value::String(s) => (s.clone(), None),
                _ => (
                    err.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("upstream error")
                        .to_string(),
                    err.get("type").or_else(|| err.get("code")).and_then(Value::as_str),
                ),
            };
            out.push(StreamEvent::Error(upstream_error(msg, kind)));
            return;
        }
        self.ensure_start(Some(&v), out);
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue; // n > 1 is not translated
                }
                if let Some(d) = c.get("delta") {
                    self.decode_delta(d, out);
                }
                if let Some(fr) = c.get("finish_reason").and_then(Value::as_str) {
                    self.flush_unstarted_tools(out);
                    self.stop_seen = true;
                    let r = match fr {
                        "stop" if self.refused => StopReason::ContentFilter,
                        _ => super::finish_reason(fr, c.get("stop_reason")),
                    };
                    out.push(StreamEvent::Stop(r));
                }
            }
        }
        if let Some(u) = v.get("usage").and_then(Usage::from_openai_value) {
            out.push(StreamEvent::Usage(u));
        }
    }

    fn decode_delta(&mut self, d: &Value, out: &mut Vec<StreamEvent>) {
        let reasoning = d
            .get("reasoning_content")
            .and_then(Value::as_str)
            .or_else(|| d.get("reasoning").and_then(Value::as_str));
        if let Some(r) = reasoning.filter(|s| !s.is_empty()) {
            out.push(StreamEvent::Thinking(r.to_string()));
        }
        if let Some(Value::Array(tb)) = d.get("thinking_blocks") {
            for b in tb {
                match b.get("type").and_then(Value::as_str) {
                    Some("thinking") => {
                        if let Some(s) = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                            out.push(StreamEvent::ThinkingSignature(s.to_string()));
                        }
                    }
                    Some("redacted_thinking") => {
                        if let Some(s) = b.get("data").and_then(Value::as_str) {
                            out.push(StreamEvent::RedactedThinking(s.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = d.get("content").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            out.push(StreamEvent::Text(t.to_string()));
        }
        if let Some(t) = d.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.refused = true;
            out.push(StreamEvent::Text(t.to_string()));
        }
        if let Some(Value::Array(calls)) = d.get("tool_calls") {
            for (pos, tc) in calls.iter().enumerate() {
                self.decode_tool_fragment(tc, pos as u64, out);
            }
        }
    }

    fn decode_tool_fragment(&mut self, tc: &Value, pos: u64, out: &mut Vec<StreamEvent>) {
        let oa_index = tc.get("index").and_then(Value::as_u64).unwrap_or(pos);
        let slot_i = match self.tools.iter().position(|s| s.oa_index == oa_index) {
            Some(i) => i,
            None => {
                self.tools.push(ToolSlot {
                    oa_index,
                    ir_index: None,
                    id: None,
                    name: None,
                    pending_args: String::new(),
                });
                self.tools.len() - 1
            }
        };
        let f = tc.get("function");
        let id = tc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let args = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("");
        let slot = &mut self.tools[slot_i];
        if slot.id.is_none() {
            slot.id = id.map(str::to_string);
        }
        if slot.name.is_none() {
            slot.name = name.map(str::to_string);
        }
        match slot.ir_index {
            Some(ir) => {
                if !args.is_empty() {
                    out.push(StreamEvent::ToolCallArgs {
                        index: ir,
                        fragment: args.to_string(),
                    });
                }
            }
            None => {
                slot.pending_args.push_str(args);
                if slot.name.is_some() {
                    self.start_tool(slot_i, out);
                }
            }
        }
    }

    fn start_tool(&mut self, slot_i: usize, out: &mut Vec<StreamEvent>) {
        let ir = self.next_tool;
        self.next_tool += 1;
        let chunk_id = self.chunk_id.clone();
        let slot = &mut self.tools[slot_i];
        slot.ir_index = Some(ir);
        let id = slot
            .id
            .clone()
            .unwrap_or_else(|| format!("call_{}_{ir}", sanitize_id(&chunk_id)));
        out.push(StreamEvent::ToolCallStart {
            index: ir,
            id,
            name: slot.name.clone().unwrap_or_default(),
        });
        if !slot.pending_args.is_empty() {
            out.push(StreamEvent::ToolCallArgs {
                index: ir,
                fragment: std::mem::take(&mut slot.pending_args),
            });
        }
    }

    /// Tool calls whose name never arrived are still reported (with an empty
    /// name) rather than silently dropping their arguments.
    fn flush_unstarted_tools(&mut self, out: &mut Vec<StreamEvent>) {
        for i in 0..self.tools.len() {
            if self.tools[i].ir_index.is_none() {
                self.start_tool(i, out);
            }
        }
    }

    /// End of upstream input. A stream that reported its finish reason but
    /// omitted `[DONE]` (some compatible servers) is complete; anything else
    /// gets no `Done`, so the translator reports truncation.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done && self.stop_seen {
            self.done = true;
            out.push(StreamEvent::Done);
        }
    }
}

/// Keeps `[A-Za-z0-9_-]` so generated ids are valid everywhere (Anthropic
/// tool ids must match `^[a-zA-Z0-9_-]+$`).
pub(crate) fn sanitize_id(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Encodes IR stream events as OpenAI `chat.completion.chunk` SSE.
#[derive(Debug)]
pub struct StreamEncoder {
    opts: ResponseOptions,
    id: String,
    model: String,
    started: bool,
    finish_sent: bool,
    had_tool_calls: bool,
    stop: Option<StopReason>,
    usage: Usage,
    ended: bool,
}

impl StreamEncoder {
    /// An encoder reporting the given id/model/created.
    pub fn new(opts: ResponseOptions) -> StreamEncoder {
        StreamEncoder {
            opts,
            id: String::new(),
            model: String::new(),
            started: false,
            finish_sent: false,
            had_tool_calls: false,
            stop: None,
            usage: Usage::default(),
            ended: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.opts.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        });
        if self.opts.include_usage {
            c["usage"] = Value::Null;
        }
        write_event(out, None, &c.to_string());
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = openai_id(id, &self.opts);
        self.model = self.opts.model.clone().unwrap_or_else(|| model.to_string());
        self.chunk(json!({"role": "assistant", "content": ""}), None, out);
    }

    fn send_finish(&mut self, out: &mut Vec<u8>) {
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        let fr = stop_reason_to_openai(self.stop.as_ref(), self.had_tool_calls);
        self.chunk(json!({}), Some(fr), out);
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
        if !matches!(ev, StreamEvent::Error(_) | StreamEvent::Malformed(_)) {
            self.start("", "", out);
        }
        match ev {
            StreamEvent::Start { .. } => {}
            StreamEvent::Text(t) if !t.is_empty() => self.chunk(json!({"content": t}), None, out),
            StreamEvent::Thinking(t) if !t.is_empty() => self.chunk(json!({"reasoning_content": t}), None, out),
            StreamEvent::ThinkingSignature(s) => self.chunk(
                json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": s}]}),
                None,
                out,
            ),
            StreamEvent::RedactedThinking(d) => self.chunk(
                json!({"thinking_blocks": [{"type": "redacted_thinking", "data": d}]}),
                None,
                out,
            ),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.had_tool_calls = true;
                self.chunk(
                    json!({"tool_calls": [{
                        "index": index,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                    out,
                )
            }
            StreamEvent::ToolCallArgs { index, fragment } if !fragment.is_empty() => self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                None,
                out,
            ),
            // The finish chunk waits for `Done` (it follows at once in every
            // dialect) so late content is never reported after it.
            StreamEvent::Stop(r) => self.stop = Some(r.clone()),
            StreamEvent::Usage(u) => self.usage = *u,
            StreamEvent::Error(e) => {
                self.ended = true;
                write_event(out, None, &String::from_utf8_lossy(&render_openai(e)));
            }
            StreamEvent::Done => {
                self.send_finish(out);
                if self.opts.include_usage {
                    let c = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.opts.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_to_openai(&self.usage),
                    });
                    write_event(out, None, &c.to_string());
                }
                write_event(out, None, "[DONE]");
                self.ended = true;
            }
            _ => {}
        }
    }
}
