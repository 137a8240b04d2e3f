//! Anthropic `message` response ⇄ IR.

use super::{
    args_to_input, message_id, stop_reason_from_anthropic, stop_reason_to_anthropic, usage_to_anthropic, UsageIn,
};
use crate::ir::{ChatResponse, Part, ToolCall};
use crate::ir::{CodecError, ResponseOptions};
use crate::jv::LenientStr;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Decodes a non-streamed Anthropic message.
///
/// `tool_use` (and `server_tool_use`) blocks become tool calls with their
/// `input` serialized as the arguments string; thinking keeps its signature
/// (OpenAI callers find it in `thinking_blocks`).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, CodecError> {
    let m: MessageIn<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            CodecError::body(format!("upstream body is not a message ({e})"))
        } else {
            CodecError::body(format!("upstream body is not valid JSON: {e}"))
        }
    })?;
    let Some(blocks) = m.content else {
        return Err(CodecError::body("upstream body is not a message (no `content` array)"));
    };
    let mut content = Vec::with_capacity(blocks.len());
    for raw in blocks {
        // A block that is not an object is skipped like an unknown type.
        let Ok(b) = serde_json::from_str::<BlockIn<'_>>(raw.get()) else {
            continue;
        };
        match b.ty.or_empty() {
            "text" => content.push(Part::text(b.text.into_string())),
            "thinking" => content.push(Part::Thinking {
                text: b.thinking.into_string(),
                signature: b.signature.0.filter(|x| !x.is_empty()).map(|x| x.into_owned()),
            }),
            "redacted_thinking" => content.push(Part::RedactedThinking {
                data: b.data.into_string(),
            }),
            "tool_use" => content.push(Part::ToolCall(ToolCall {
                id: b.id.into_string(),
                name: b.name.into_string(),
                arguments: b.input.map_or_else(|| "{}".into(), |v| v.to_string()),
            })),
            _ => {} // server tool results, citations-only blocks, future types
        }
    }
    let stop_reason = m
        .stop_reason
        .0
        .as_deref()
        .map(|r| stop_reason_from_anthropic(r, m.stop_sequence.0.as_deref()));
    let usage = m.usage.0.unwrap_or_default();
    Ok(ChatResponse {
        id: m.id.into_string(),
        model: m.model.into_string(),
        created: 0,
        content,
        stop_reason,
        usage,
    })
}

/// A `message`, borrowed: only what the IR needs; anything else is skipped
/// without being built.
#[derive(serde::Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default)]
    id: LenientStr<'a>,
    #[serde(borrow, default)]
    model: LenientStr<'a>,
    #[serde(borrow, default)]
    content: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    stop_reason: LenientStr<'a>,
    #[serde(borrow, default)]
    stop_sequence: LenientStr<'a>,
    #[serde(default)]
    usage: UsageIn,
}

/// One content block, borrowed.
#[derive(serde::Deserialize)]
struct BlockIn<'a> {
    #[serde(borrow, default, rename = "type")]
    ty: LenientStr<'a>,
    #[serde(borrow, default)]
    text: LenientStr<'a>,
    #[serde(borrow, default)]
    thinking: LenientStr<'a>,
    #[serde(borrow, default)]
    signature: LenientStr<'a>,
    #[serde(borrow, default)]
    data: LenientStr<'a>,
    #[serde(borrow, default)]
    id: LenientStr<'a>,
    #[serde(borrow, default)]
    name: LenientStr<'a>,
    #[serde(default, deserialize_with = "crate::jv::present")]
    input: Option<Value>,
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
