//! Gemini `GenerateContentResponse` → IR.

use super::{stop_reason_from_gemini, tool_call_id, usage_from_gemini};
use crate::ir::CodecError;
use crate::ir::{ChatResponse, Part, StopReason, ToolCall};
use serde_json::Value;

/// Decodes a non-streamed Gemini response (first candidate).
///
/// Parts with `thought: true` become thinking, `functionCall` parts tool
/// calls (ids from [`tool_call_id`], carrying the thought signature), and a
/// turn with function calls finishes as tool use. A prompt blocked by
/// `promptFeedback.blockReason` is an empty, content-filtered answer.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, CodecError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::body(format!("upstream body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(CodecError::body("upstream body is not a JSON object"));
    }
    if !v.get("candidates").is_some_and(Value::is_array) && v.get("promptFeedback").is_none() {
        return Err(CodecError::body(
            "upstream body is not a Gemini response (no `candidates` or `promptFeedback`)",
        ));
    }
    let id = v.get("responseId").and_then(Value::as_str).unwrap_or("").to_string();
    let mut content = Vec::new();
    let mut calls = 0usize;
    let cand = v.pointer("/candidates/0");
    if let Some(Value::Array(parts)) = cand.and_then(|c| c.pointer("/content/parts")) {
        for p in parts {
            if let Some(fc) = p.get("functionCall") {
                let sig = p.get("thoughtSignature").and_then(Value::as_str);
                let fid = fc.get("id").and_then(Value::as_str);
                content.push(Part::ToolCall(ToolCall {
                    id: tool_call_id(fid, &id, calls, sig),
                    name: fc.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    arguments: fc.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                }));
                calls += 1;
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    content.push(Part::Thinking {
                        text: t.to_string(),
                        signature: None,
                    });
                } else if !t.is_empty() {
                    content.push(Part::text(t));
                }
            }
        }
    }
    let mut stop_reason = cand
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str)
        .map(stop_reason_from_gemini);
    if calls > 0 && matches!(stop_reason, None | Some(StopReason::EndTurn)) {
        stop_reason = Some(StopReason::ToolUse);
    }
    if cand.is_none() && v.pointer("/promptFeedback/blockReason").is_some() {
        stop_reason = Some(StopReason::ContentFilter);
    }
    Ok(ChatResponse {
        id,
        model: v.get("modelVersion").and_then(Value::as_str).unwrap_or("").to_string(),
        created: 0,
        content,
        stop_reason,
        usage: v.get("usageMetadata").map(usage_from_gemini).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_calls_finish_as_tool_use_with_signed_ids() {
        let body = br#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"plan","thought":true},
            {"functionCall":{"name":"f","args":{"x":1}},"thoughtSignature":"U0lH"},
            {"functionCall":{"name":"g","args":{}}}]},"finishReason":"STOP"}],
            "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":3,"totalTokenCount":10},
            "modelVersion":"gemini-2.5-flash","responseId":"abc"}"#;
        let r = decode_response(body).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert!(matches!(&r.content[0], Part::Thinking { .. }));
        match &r.content[1] {
            Part::ToolCall(c) => assert_eq!(super::super::signature_from_id(&c.id).as_deref(), Some("U0lH")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&r.content[2], Part::ToolCall(c) if c.id == "call_abc_1"));
        assert_eq!(r.usage.output_tokens, 5);
    }

    #[test]
    fn blocked_prompt_is_content_filter() {
        let r =
            decode_response(br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4}}"#)
                .unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ContentFilter));
        assert!(r.content.is_empty());
    }
}
