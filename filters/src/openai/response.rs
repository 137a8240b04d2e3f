//! OpenAI `chat.completion` response ⇄ IR.

use super::{stop_reason_to_openai, OpenAiUsage};
use crate::ir::{ChatResponse, Part, StopReason, ToolCall};
use crate::ir::{CodecError, ResponseOptions};
use crate::usage::Usage;
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Decodes a non-streamed OpenAI chat completion (first choice only; the
/// gateway does not translate `n > 1`).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, CodecError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::body(format!("upstream body is not valid JSON: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| CodecError::body("upstream body is not a JSON object"))?;
    let choice = o
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| CodecError::body("upstream response has no choices"))?;
    let empty = Map::new();
    let msg = choice.get("message").and_then(Value::as_object).unwrap_or(&empty);
    let mut content = Vec::new();
    match msg.get("thinking_blocks") {
        Some(Value::Array(tb)) => {
            for b in tb {
                match b.get("type").and_then(Value::as_str) {
                    Some("thinking") => content.push(Part::Thinking {
                        text: b.get("thinking").and_then(Value::as_str).unwrap_or("").to_string(),
                        signature: b.get("signature").and_then(Value::as_str).map(str::to_string),
                    }),
                    Some("redacted_thinking") => content.push(Part::RedactedThinking {
                        data: b.get("data").and_then(Value::as_str).unwrap_or("").to_string(),
                    }),
                    _ => {}
                }
            }
        }
        _ => {
            if let Some(r) = msg
                .get("reasoning_content")
                .or_else(|| msg.get("reasoning"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                content.push(Part::Thinking {
                    text: r.to_string(),
                    signature: None,
                });
            }
        }
    }
    // A refusal is reported as text with a content-filter stop (OpenAI says
    // `stop`; Anthropic callers expect `refusal`).
    let mut refused = false;
    if let Some(t) = msg.get("content").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        content.push(Part::text(t));
    } else if let Some(r) = msg.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        refused = true;
        content.push(Part::text(r));
    }
    if let Some(Value::Array(calls)) = msg.get("tool_calls") {
        for c in calls {
            let f = c.get("function");
            let args = match f.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            content.push(Part::ToolCall(ToolCall {
                id: c.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
                name: f
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                arguments: args,
            }));
        }
    }
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") if refused => Some(StopReason::ContentFilter),
        Some(fr) => Some(super::finish_reason(fr, choice.get("stop_reason"))),
        None => None,
    };
    let usage = o.get("usage").and_then(Usage::from_openai_value).unwrap_or_default();
    Ok(ChatResponse {
        id: o.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
        model: o.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
        created: o.get("created").and_then(Value::as_u64).unwrap_or(0),
        content,
        stop_reason,
        usage,
    })
}

/// The OpenAI-facing id: the gateway's if given, else the upstream's
/// (prefixed `chatcmpl-` when it has no OpenAI-looking prefix).
pub(super) fn openai_id(upstream: &str, opts: &ResponseOptions) -> String {
    match &opts.id {
        Some(id) => id.clone(),
        None if upstream.starts_with("chatcmpl") => upstream.to_string(),
        None => format!("chatcmpl-{upstream}"),
    }
}

/// Encodes the IR as an OpenAI `chat.completion` body.
///
/// All text parts are concatenated into `content`; thinking goes to
/// `reasoning_content` and, with signatures, `thinking_blocks`. Serialised
/// straight from the IR (borrowed), never through a JSON tree.
pub fn encode_response(resp: &ChatResponse, opts: &ResponseOptions) -> Vec<u8> {
    let mut text: Option<Cow<'_, str>> = None;
    let mut reasoning: Option<Cow<'_, str>> = None;
    let mut blocks = Vec::new();
    let mut calls = Vec::new();
    for p in &resp.content {
        match p {
            Part::Text { text: t, .. } => concat(&mut text, t),
            Part::Thinking { text: t, signature } => {
                concat(&mut reasoning, t);
                blocks.push(Block::Thinking {
                    thinking: t,
                    signature: signature.as_deref(),
                });
            }
            Part::RedactedThinking { data } => blocks.push(Block::RedactedThinking { data }),
            Part::ToolCall(c) => calls.push(Call {
                id: &c.id,
                kind: "function",
                function: Function {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            }),
            Part::Image { .. } | Part::ToolResult(_) => {}
        }
    }
    let signed = blocks.iter().any(|b| match b {
        Block::Thinking { signature, .. } => signature.is_some(),
        Block::RedactedThinking { .. } => true,
    });
    let had_calls = !calls.is_empty();
    let text = text.unwrap_or(Cow::Borrowed(""));
    let message = Message {
        role: "assistant",
        content: (!(text.is_empty() && had_calls)).then_some(text),
        reasoning_content: reasoning.filter(|r| !r.is_empty()),
        thinking_blocks: signed.then_some(blocks),
        tool_calls: had_calls.then_some(calls),
        refusal: (),
    };
    let body = Completion {
        id: openai_id(&resp.id, opts),
        object: "chat.completion",
        created: if opts.created != 0 { opts.created } else { resp.created },
        model: opts.model.as_deref().unwrap_or(&resp.model),
        choices: [Choice {
            index: 0,
            message,
            logprobs: (),
            finish_reason: stop_reason_to_openai(resp.stop_reason.as_ref(), had_calls),
        }],
        usage: OpenAiUsage::from(&resp.usage),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Appends `t` to an accumulated text, borrowing while there is one piece.
fn concat<'a>(acc: &mut Option<Cow<'a, str>>, t: &'a str) {
    match acc {
        None => *acc = Some(Cow::Borrowed(t)),
        Some(c) => c.to_mut().push_str(t),
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    /// Always `null`.
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_blocks: Option<Vec<Block<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Call<'a>>>,
    /// Always `null`.
    refusal: (),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking {
        thinking: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<&'a str>,
    },
    RedactedThinking {
        data: &'a str,
    },
}

#[derive(Serialize)]
struct Call<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_tool_calls_and_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"gpt-4o",
          "choices":[{"index":0,"message":{"role":"assistant","content":null,
          "tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{}"}}]},
          "finish_reason":"tool_calls"}],
          "usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(r.usage.cached_input_tokens, 4);
        assert!(matches!(&r.content[0], Part::ToolCall(c) if c.id == "call_a"));
        let out: Value = serde_json::from_slice(&encode_response(&r, &ResponseOptions::default())).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(out["usage"]["total_tokens"], 13);
    }
}
