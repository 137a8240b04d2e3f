//! OpenAI `chat.completion` response ⇄ IR.

use super::{stop_reason_to_openai, usage_to_openai};
use crate::ir::{ChatResponse, Part, StopReason, ToolCall};
use crate::ir::{CodecError, ResponseOptions};
use crate::usage::Usage;
use serde_json::{json, Map, Value};

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
/// `reasoning_content` and, with signatures, `thinking_blocks`.
pub fn encode_response(resp: &ChatResponse, opts: &ResponseOptions) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut blocks = Vec::new();
    let mut calls = Vec::new();
    for p in &resp.content {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, signature } => {
                reasoning.push_str(t);
                let mut b = json!({"type": "thinking", "thinking": t});
                if let Some(s) = signature {
                    b["signature"] = json!(s);
                }
                blocks.push(b);
            }
            Part::RedactedThinking { data } => {
                blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
            Part::ToolCall(c) => calls.push(json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            Part::Image { .. } | Part::ToolResult(_) => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            json!(text)
        },
    );
    if !reasoning.is_empty() {
        msg.insert("reasoning_content".into(), json!(reasoning));
    }
    let signed = blocks
        .iter()
        .any(|b| b.get("signature").is_some() || b["type"] == "redacted_thinking");
    if signed {
        msg.insert("thinking_blocks".into(), Value::Array(blocks));
    }
    let had_calls = !calls.is_empty();
    if had_calls {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    msg.insert("refusal".into(), Value::Null);
    let finish = stop_reason_to_openai(resp.stop_reason.as_ref(), had_calls);
    let body = json!({
        "id": openai_id(&resp.id, opts),
        "object": "chat.completion",
        "created": if opts.created != 0 { opts.created } else { resp.created },
        "model": opts.model.as_deref().unwrap_or(&resp.model),
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage_to_openai(&resp.usage),
    });
    body.to_string().into_bytes()
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
