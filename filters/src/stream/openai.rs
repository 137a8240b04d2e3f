//! OpenAI caller, OpenAI-compatible provider: `chat.completion.chunk` events
//! are forwarded as they complete, each copied byte for byte (CRLFs
//! included), with three exceptions that keep the caller's stream what the
//! OpenAI API promises:
//!
//! * the usage-only chunk the gateway asked for (`stream_options` injected
//!   for accounting) is recorded but not forwarded when the caller did not
//!   ask for it — and when the caller did ask but the provider sent none
//!   (llama.cpp ignores the option), an estimated one is written before
//!   `[DONE]`;
//! * tool-call deltas that repeat the call's `id`, `type` and `function.name`
//!   (llama.cpp repeats them in every fragment, and its legacy
//!   `function_call.name` too) are rewritten so these come only with the
//!   first fragment of each call, as OpenAI sends them — the SDKs' stream
//!   helpers concatenate fragments and would build `get_weatherget_weather…`;
//! * a stream that ended after its `finish_reason` but without `[DONE]` gets
//!   its `[DONE]`.
//!
//! Every event is parsed once into a borrowed scan ([`Chunk`]): the parse is
//! the validity check (an event that is not a JSON object is a protocol
//! failure, not something to forward), and it yields usage, the first token,
//! the finish reason and the generated text's length (for estimates) without
//! building a tree.

use super::{forward_terminated, InputEstimate, Step, StreamFailure, TextLen};
use crate::error::{render_openai, upstream_error_message, ErrorInfo};
use crate::ir::upstream_error;
use crate::passthrough::usage_from_raw;
use crate::sse::{SseDecoder, SseEvent, SseItem};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Largest piece handed to the SSE decoder at once: the decoder caps its
/// buffer (unconsumed tail + new bytes), so one big `push` of many small
/// events must not look like one oversized event.
const DECODER_PIECE: usize = 64 * 1024;

/// What is kept of the first chunk, to write a usage chunk that matches it.
#[derive(Debug, Default)]
struct Head {
    id: Option<String>,
    created: Option<String>,
    model: Option<String>,
}

/// What was sent so far of one tool call (by its `index`).
#[derive(Debug, Clone, Copy)]
struct ToolSent {
    index: u64,
    id: bool,
    kind: bool,
    name: bool,
}

/// Everything but the decoder, so events borrowed from the decoder can be
/// inspected while this state changes.
#[derive(Debug, Default)]
struct State {
    /// The caller asked for the usage chunk.
    include_usage: bool,
    usage: Option<Usage>,
    finish_seen: bool,
    first_token: bool,
    output_chars: u64,
    tools: Vec<ToolSent>,
    /// The legacy `function_call.name` was sent (llama.cpp repeats it too).
    function_name_sent: bool,
    head: Head,
}

/// The OpenAI same-dialect relay (see the module docs).
#[derive(Debug)]
pub(crate) struct OpenAiPass {
    decoder: SseDecoder,
    state: State,
}

/// What to do with one event.
enum Action {
    /// Copy its raw bytes.
    Forward,
    /// Write this instead (a normalised chunk).
    Replace(Vec<u8>),
    /// Record only.
    Drop,
    /// `[DONE]`: the stream is complete.
    Done,
    /// End the stream with an error.
    Fail(StreamFailure),
}

impl OpenAiPass {
    /// `include_usage`: the caller asked for the usage chunk.
    pub(crate) fn new(include_usage: bool, max_event_bytes: usize) -> Self {
        OpenAiPass {
            decoder: SseDecoder::with_max_event_bytes(max_event_bytes),
            state: State {
                include_usage,
                ..State::default()
            },
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>, input: &mut InputEstimate) -> Step {
        for piece in bytes.chunks(DECODER_PIECE) {
            if let Err(crate::sse::SseError::EventTooLarge { limit }) = self.decoder.push(piece) {
                return Step::Failed(StreamFailure::TooLarge { limit });
            }
            match self.drain(out, input) {
                Step::Continue => {}
                other => return other,
            }
        }
        Step::Continue
    }

    /// The provider closed the body: deliver a final unterminated event, then
    /// complete the stream if its finish reason arrived.
    pub(crate) fn end_of_input(&mut self, out: &mut Vec<u8>, input: &mut InputEstimate) -> Step {
        self.decoder.finish();
        match self.drain(out, input) {
            Step::Continue if self.state.finish_seen => {
                self.state.write_estimated_usage(out, input);
                out.extend_from_slice(b"data: [DONE]\n\n");
                Step::Complete
            }
            other => other,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>, input: &mut InputEstimate) -> Step {
        while let Some(item) = self.decoder.next_item() {
            let action = match &item {
                SseItem::Comment => Action::Forward,
                SseItem::Event(ev) => self.state.inspect(ev),
            };
            let raw = self.decoder.last_raw();
            match action {
                Action::Forward => forward_terminated(raw, out),
                Action::Replace(bytes) => out.extend_from_slice(&bytes),
                Action::Drop => {}
                Action::Done => {
                    self.state.write_estimated_usage(out, input);
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

/// `data: {"error":{…}}` — what the OpenAI SDKs raise on mid-stream.
pub(crate) fn write_error(info: &ErrorInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&render_openai(info));
    out.extend_from_slice(b"\n\n");
}

/// One chunk, borrowed: only what the relay decides on.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    x_groq: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default)]
    content: TextLen,
    #[serde(default)]
    reasoning_content: TextLen,
    #[serde(default)]
    reasoning: TextLen,
    #[serde(default)]
    refusal: TextLen,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
    #[serde(borrow, default)]
    function_call: Option<FunctionDelta<'a>>,
    #[serde(borrow, default)]
    audio: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(default)]
    arguments: TextLen,
}

/// An already-sent field one fragment repeats.
#[derive(Debug, Clone, Copy)]
enum Repeat {
    /// `choices[choice].delta.tool_calls[call]`: its id, type, name.
    Tool {
        choice: usize,
        call: usize,
        id: bool,
        kind: bool,
        name: bool,
    },
    /// `choices[choice].delta.function_call.name`.
    FunctionName { choice: usize },
}

impl State {
    fn inspect(&mut self, ev: &SseEvent) -> Action {
        if ev.event.as_deref() == Some("error") {
            return Action::Fail(StreamFailure::Upstream(upstream_error(
                upstream_error_message(ev.data.as_bytes()),
                None,
            )));
        }
        let data = ev.data.trim_matches(|c: char| c.is_ascii_whitespace());
        if data.is_empty() {
            return Action::Forward;
        }
        if data == "[DONE]" {
            return Action::Done;
        }
        let chunk: Chunk<'_> = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return Action::Fail(StreamFailure::Malformed(format!(
                    "a stream event is not a chunk object ({e})"
                )))
            }
        };
        let is_error = chunk.error.is_some() || chunk.object.map(RawValue::get) == Some("\"error\"");
        if is_error {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            let kind = v
                .pointer("/error/type")
                .or_else(|| v.pointer("/error/code"))
                .or_else(|| v.get("type"))
                .and_then(Value::as_str);
            return Action::Fail(StreamFailure::Upstream(upstream_error(
                upstream_error_message(data.as_bytes()),
                kind,
            )));
        }
        if self.head.id.is_none() {
            let keep = |r: Option<&RawValue>| r.map(|r| r.get().to_string());
            self.head = Head {
                id: keep(chunk.id),
                created: keep(chunk.created),
                model: keep(chunk.model),
            };
        }
        let top_usage = chunk.usage.and_then(usage_from_raw);
        let usage = top_usage.or_else(|| {
            let groq: Value = serde_json::from_str(chunk.x_groq?.get()).ok()?;
            Usage::from_openai_value(groq.get("usage")?)
        });
        if usage.is_some() {
            self.usage = usage;
        }
        let mut repeats: Vec<Repeat> = Vec::new();
        let choices = chunk.choices.unwrap_or_default();
        for (ci, c) in choices.iter().enumerate() {
            if c.finish_reason.is_some() {
                self.finish_seen = true;
            }
            if let Some(d) = &c.delta {
                self.observe_delta(d, ci, &mut repeats);
            }
        }
        let usage_only = top_usage.is_some() && choices.is_empty();
        if usage_only && !self.include_usage {
            return Action::Drop;
        }
        if !repeats.is_empty() {
            return Action::Replace(without_repeats(ev, data, &repeats));
        }
        Action::Forward
    }

    fn observe_delta(&mut self, d: &Delta<'_>, choice: usize, repeats: &mut Vec<Repeat>) {
        let text = d.content.0 + d.reasoning_content.0 + d.reasoning.0 + d.refusal.0;
        self.output_chars += text;
        let calls = d.tool_calls.as_deref().unwrap_or_default();
        if text > 0 || !calls.is_empty() || d.function_call.is_some() || d.audio.is_some() {
            self.first_token = true;
        }
        if let Some(f) = &d.function_call {
            if calls.is_empty() {
                self.output_chars += f.arguments.0;
            }
            if f.name.is_some() {
                if self.function_name_sent {
                    repeats.push(Repeat::FunctionName { choice });
                }
                self.function_name_sent = true;
            }
        }
        for (pos, tc) in calls.iter().enumerate() {
            let f = tc.function.as_ref();
            self.output_chars += f.map_or(0, |f| f.arguments.0);
            let index = tc.index.unwrap_or(pos as u64);
            let has = (tc.id.is_some(), tc.kind.is_some(), f.is_some_and(|f| f.name.is_some()));
            match self.tools.iter_mut().find(|t| t.index == index) {
                Some(sent) => {
                    let repeat = (has.0 && sent.id, has.1 && sent.kind, has.2 && sent.name);
                    if repeat.0 || repeat.1 || repeat.2 {
                        repeats.push(Repeat::Tool {
                            choice,
                            call: pos,
                            id: repeat.0,
                            kind: repeat.1,
                            name: repeat.2,
                        });
                    }
                    sent.id |= has.0;
                    sent.kind |= has.1;
                    sent.name |= has.2;
                }
                None => self.tools.push(ToolSent {
                    index,
                    id: has.0,
                    kind: has.1,
                    name: has.2,
                }),
            }
        }
    }

    /// Before `[DONE]`: the usage chunk a caller asked for when the provider
    /// sent none, with the estimate.
    fn write_estimated_usage(&mut self, out: &mut Vec<u8>, input: &mut InputEstimate) {
        if !self.include_usage || self.usage.is_some() {
            return;
        }
        let prompt = input.tokens();
        let completion = crate::estimate::text_tokens(self.output_chars);
        let h = &self.head;
        out.extend_from_slice(b"data: {\"id\":");
        out.extend_from_slice(h.id.as_deref().unwrap_or("\"chatcmpl-switchyard\"").as_bytes());
        out.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        out.extend_from_slice(h.created.as_deref().unwrap_or("0").as_bytes());
        out.extend_from_slice(b",\"model\":");
        out.extend_from_slice(h.model.as_deref().unwrap_or("\"\"").as_bytes());
        out.extend_from_slice(
            format!(
                ",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{}}}}}\n\n",
                prompt + completion
            )
            .as_bytes(),
        );
    }
}

/// The chunk re-encoded without the tool-call fields it repeats (rare: only
/// servers that repeat them pay for this).
fn without_repeats(ev: &SseEvent, data: &str, repeats: &[Repeat]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_str::<Value>(data) else {
        return Vec::new();
    };
    for r in repeats {
        match *r {
            Repeat::Tool {
                choice,
                call,
                id,
                kind,
                name,
            } => {
                let Some(call) = v
                    .pointer_mut(&format!("/choices/{choice}/delta/tool_calls/{call}"))
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                if id {
                    call.remove("id");
                }
                if kind {
                    call.remove("type");
                }
                if name {
                    if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                        f.remove("name");
                    }
                }
            }
            Repeat::FunctionName { choice } => {
                if let Some(f) = v
                    .pointer_mut(&format!("/choices/{choice}/delta/function_call"))
                    .and_then(Value::as_object_mut)
                {
                    f.remove("name");
                }
            }
        }
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    if let Some(e) = &ev.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}
