//! Anthropic `message` response ⇄ IR.

use super::{
    args_to_input, message_id, stop_reason_from_anthropic, stop_reason_to_anthropic, usage_from_anthropic,
    usage_to_anthropic,
};
use crate::ir::{ChatResponse, Part, ToolCall};
use crate::ir::{CodecError, ResponseOptions};
use serde_json::{json, Value};

/// Decodes a non-streamed Anthropic message.
///
/// `tool_use` (and `server_tool_use`) blocks become tool calls with their
/// `input` serialized as the arguments string; thinking keeps its signature
/// (OpenAI callers find it in `thinking_blocks`).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, CodecError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::body(format!("upstream body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(CodecError::body("upstream body is not a JSON object"));
    }
    if !v.get("content").is_some_and(Value::is_array) {
        return Err(CodecError::body("upstream body is not a message (no `content` array)"));
    }
    let mut content = Vec::new();
    if let Some(blocks) = v.get("content").and_then(Value::as_array) {
        for b in blocks {
            let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            match b.get("type").and_then(Value::as_str) {
                Some("text") => content.push(Part::text(s("text"))),
                Some("thinking") => content.push(Part::Thinking {
                    text: s("thinking"),
                    signature: Some(s("signature")).filter(|x| !x.is_empty()),
                }),
                Some("redacted_thinking") => content.push(Part::RedactedThinking { data: s("data") }),
                Some("tool_use") => content.push(Part::ToolCall(ToolCall {
                    id: s("id"),
                    name: s("name"),
                    arguments: b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                })),
                _ => {} // server tool results, citations-only blocks, future types
            }
        }
    }
    let stop_reason = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(|r| stop_reason_from_anthropic(r, v.get("stop_sequence").and_then(Value::as_str)));
    Ok(ChatResponse {
        id: v.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
        model: v.get("model").and_then(Value::as_str).unwrap_or("").to_string(),
        created: 0,
        content,
        stop_reason,
        usage: v.get("usage").map(usage_from_anthropic).unwrap_or_default(),
    })
}

/// Encodes the IR as an Anthropic `message` body.
///
/// Thinking from providers that do not sign it gets `signature: ""` (the
/// field is required by SDK types; such blocks are not sent back upstream).
pub fn encode_response(resp: &ChatResponse, opts: &ResponseOptions) -> Vec<u8> {
    let mut blocks = Vec::new();
    let mut had_calls = false;
    for p in &resp.content {
        match p {
            Part::Text { text, .. } => {
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
            }
            Part::Thinking { text, signature } => blocks.push(json!({
                "type": "thinking",
                "thinking": text,
                "signature": signature.as_deref().unwrap_or(""),
            })),
            Part::RedactedThinking { data } => blocks.push(json!({"type": "redacted_thinking", "data": data})),
            Part::ToolCall(c) => {
                had_calls = true;
                blocks.push(json!({
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": args_to_input(&c.arguments),
                }));
            }
            Part::Image { .. } | Part::ToolResult(_) => {}
        }
    }
    let (reason, seq) = stop_reason_to_anthropic(resp.stop_reason.as_ref(), had_calls);
    let body = json!({
        "id": message_id(&resp.id, opts),
        "type": "message",
        "role": "assistant",
        "model": opts.model.as_deref().unwrap_or(&resp.model),
        "content": blocks,
        "stop_reason": reason,
        "stop_sequence": seq,
        "usage": usage_to_anthropic(&resp.usage),
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::StopReason;

    #[test]
    fn decodes_blocks_and_usage() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
          "content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Hi"},
          {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],
          "stop_reason":"tool_use","stop_sequence":null,
          "usage":{"input_tokens":5,"cache_read_input_tokens":20,"cache_creation_input_tokens":0,"output_tokens":9}}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(r.usage.input_tokens, 25);
        assert!(matches!(&r.content[2], Part::ToolCall(c) if c.arguments == r#"{"a":1}"#));
        let out: Value = serde_json::from_slice(&encode_response(&r, &ResponseOptions::default())).unwrap();
        assert_eq!(out["content"][0]["signature"], "sig");
        assert_eq!(out["usage"]["input_tokens"], 5);
        assert_eq!(out["stop_reason"], "tool_use");
    }
}
