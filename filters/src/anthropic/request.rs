//! Anthropic Messages request ⇄ IR.

use crate::ir::CodecError;
use crate::ir::{
    ChatRequest, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    ToolResult, WireDialect,
};
use crate::jv;
use serde_json::{json, Map, Value};

/// `max_tokens` sent to Anthropic when the caller gave none (Anthropic
/// requires it; OpenAI callers may omit it). 4096 is accepted by every
/// current Claude model (the smallest output cap among them is 4096).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

const KNOWN: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "stream",
    "output_config",
    "output_format",
];

/// Decodes an Anthropic `/v1/messages` request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CodecError> {
    decode_map(jv::parse_object(body)?)
}

/// Decodes a request whose top-level object is already parsed (the gateway
/// parses each body once and hands the fields over).
pub fn decode_map(mut m: Map<String, Value>) -> Result<ChatRequest, CodecError> {
    let model = jv::req_str(&m, "model", "model")?.to_string();
    let mut messages = Vec::new();
    match m.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                messages.push(Message {
                    role: Role::System,
                    content: vec![Part::text(s.clone())],
                    name: None,
                })
            }
        }
        Some(Value::Array(a)) => {
            let content = decode_blocks(a, "system", Role::System)?;
            if !content.is_empty() {
                messages.push(Message {
                    role: Role::System,
                    content,
                    name: None,
                });
            }
        }
        Some(_) => {
            return Err(CodecError::invalid(
                "system",
                "`system` must be a string or an array of text blocks",
            ))
        }
    }
    let msgs = m
        .get("messages")
        .ok_or_else(|| CodecError::invalid("messages", "`messages` is required"))?;
    for (i, v) in jv::as_arr(msgs, "messages")?.iter().enumerate() {
        let p = format!("messages.{i}");
        let o = jv::as_obj(v, &p)?;
        let role = match jv::req_str(o, "role", &format!("{p}.role"))? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(CodecError::invalid(
                    format!("{p}.role"),
                    format!("unknown role `{other}`"),
                ))
            }
        };
        let content = match o.get("content") {
            Some(Value::String(s)) => vec![Part::text(s.clone())],
            Some(Value::Array(a)) => decode_blocks(a, &format!("{p}.content"), role)?,
            _ => {
                return Err(CodecError::invalid(
                    format!("{p}.content"),
                    "`content` must be a string or an array of blocks",
                ))
            }
        };
        messages.push(Message {
            role,
            content,
            name: None,
        });
    }

    let mut tools = Vec::new();
    if let Some(t) = m.get("tools").filter(|v| !v.is_null()) {
        for (i, v) in jv::as_arr(t, "tools")?.iter().enumerate() {
            let p = format!("tools.{i}");
            let o = jv::as_obj(v, &p)?;
            match o.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(CodecError::invalid(
                        format!("{p}.type"),
                        format!("server tool `{other}` is not supported by this gateway"),
                    ))
                }
            }
            tools.push(Tool {
                name: jv::req_str(o, "name", &format!("{p}.name"))?.to_string(),
                description: jv::opt_str(o, "description", &format!("{p}.description"))?,
                parameters: o
                    .get("input_schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
                strict: jv::opt_bool(o, "strict", &format!("{p}.strict"))?,
                cache_control: o.get("cache_control").cloned(),
            });
        }
    }

    let mut parallel_tool_calls = None;
    let tool_choice = match m.get("tool_choice").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let o = jv::as_obj(v, "tool_choice")?;
            if o.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
                parallel_tool_calls = Some(false);
            }
            Some(match o.get("type").and_then(Value::as_str) {
                Some("auto") => ToolChoice::Auto,
                Some("any") => ToolChoice::Required,
                Some("none") => ToolChoice::None,
                Some("tool") => ToolChoice::Named(jv::req_str(o, "name", "tool_choice.name")?.to_string()),
                _ => {
                    return Err(CodecError::invalid(
                        "tool_choice.type",
                        "`tool_choice.type` must be auto, any, tool or none",
                    ))
                }
            })
        }
    };

    let reasoning = match m.get("thinking").and_then(Value::as_object) {
        Some(t) if t.get("type").and_then(Value::as_str) == Some("enabled") => Some(Reasoning {
            effort: None,
            budget_tokens: jv::opt_u32(t, "budget_tokens", "thinking.budget_tokens")?,
        }),
        _ => None,
    };
    // `enabled` is modelled; other modes (`disabled`, `adaptive`, future
    // ones) stay in `extra` so an Anthropic target still receives them.
    if reasoning.is_some() {
        m.remove("thinking");
    }

    let format = m
        .get("output_config")
        .and_then(|o| o.get("format"))
        .or_else(|| m.get("output_format"))
        .filter(|v| !v.is_null());
    let response_format = match format {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => Some(ResponseFormat::JsonSchema {
            name: "response".to_string(),
            schema: f.get("schema").cloned().unwrap_or_else(|| json!({})),
            strict: Some(true),
        }),
        _ => None,
    };
    // Keep other `output_config` members (e.g. effort) for Anthropic targets.
    if let Some(Value::Object(oc)) = m.get_mut("output_config") {
        oc.remove("format");
        if !oc.is_empty() {
            let oc = Value::Object(oc.clone());
            m.insert("__output_config".into(), oc);
        }
    }

    let user = m
        .get("metadata")
        .and_then(|md| md.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_string);

    let req = ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        max_tokens: jv::opt_u32(&m, "max_tokens", "max_tokens")?,
        temperature: jv::opt_f64(&m, "temperature", "temperature")?,
        top_p: jv::opt_f64(&m, "top_p", "top_p")?,
        top_k: jv::opt_u32(&m, "top_k", "top_k")?,
        stop: jv::stop_list(m.get("stop_sequences"), "stop_sequences")?,
        reasoning,
        response_format,
        user,
        metadata: None,
        stream: jv::opt_bool(&m, "stream", "stream")?.unwrap_or(false),
        include_usage: true,
        extra: Extra::default(),
    };
    for k in KNOWN {
        m.remove(*k);
    }
    if let Some(oc) = m.remove("__output_config") {
        m.insert("output_config".into(), oc);
    }
    Ok(ChatRequest {
        extra: Extra {
            dialect: Some(WireDialect::Anthropic),
            fields: m,
        },
        ..req
    })
}

fn decode_image(o: &Map<String, Value>, p: &str) -> Result<ImageSource, CodecError> {
    let src = o
        .get("source")
        .and_then(Value::as_object)
        .ok_or_else(|| CodecError::invalid(format!("{p}.source"), "`source` is required"))?;
    match src.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(ImageSource::Base64 {
            media_type: jv::req_str(src, "media_type", &format!("{p}.source.media_type"))?.to_string(),
            data: jv::req_str(src, "data", &format!("{p}.source.data"))?.to_string(),
        }),
        Some("url") => Ok(ImageSource::Url(
            jv::req_str(src, "url", &format!("{p}.source.url"))?.to_string(),
        )),
        _ => Err(CodecError::invalid(
            format!("{p}.source.type"),
            "image source must be base64 or url",
        )),
    }
}

fn decode_blocks(a: &[Value], p: &str, role: Role) -> Result<Vec<Part>, CodecError> {
    let mut out = Vec::with_capacity(a.len());
    for (j, b) in a.iter().enumerate() {
        let bp = format!("{p}.{j}");
        let o = jv::as_obj(b, &bp)?;
        let ty = jv::req_str(o, "type", &format!("{bp}.type"))?;
        let allowed = match (role, ty) {
            (_, "text") => true,
            (Role::System, _) => false,
            (_, "image") => true,
            (Role::User, "tool_result") => true,
            (Role::Assistant, "tool_use" | "thinking" | "redacted_thinking") => true,
            _ => false,
        };
        if !allowed {
            return Err(CodecError::invalid(
                format!("{bp}.type"),
                format!("content block type `{ty}` is not supported here by this gateway"),
            ));
        }
        out.push(match ty {
            "text" => Part::Text {
                text: jv::req_str(o, "text", &format!("{bp}.text"))?.to_string(),
                cache_control: o.get("cache_control").cloned(),
            },
            "image" => Part::Image {
                source: decode_image(o, &bp)?,
                detail: None,
            },
            "tool_use" => Part::ToolCall(ToolCall {
                id: jv::req_str(o, "id", &format!("{bp}.id"))?.to_string(),
                name: jv::req_str(o, "name", &format!("{bp}.name"))?.to_string(),
                arguments: o.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_string()),
            }),
            "tool_result" => {
                let content = match o.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => vec![Part::text(s.clone())],
                    Some(Value::Array(inner)) => decode_blocks(inner, &format!("{bp}.content"), Role::User)?,
                    Some(_) => {
                        return Err(CodecError::invalid(
                            format!("{bp}.content"),
                            "`content` must be a string or an array",
                        ))
                    }
                };
                if content
                    .iter()
                    .any(|c| !matches!(c, Part::Text { .. } | Part::Image { .. }))
                {
                    return Err(CodecError::invalid(
                        format!("{bp}.content"),
                        "tool results may hold text and images only",
                    ));
                }
                Part::ToolResult(ToolResult {
                    tool_call_id: jv::req_str(o, "tool_use_id", &format!("{bp}.tool_use_id"))?.to_string(),
                    content,
                    is_error: o.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                })
            }
            "thinking" => Part::Thinking {
                text: o.get("thinking").and_then(Value::as_str).unwrap_or("").to_string(),
                signature: o
                    .get("signature")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            },
            _ => Part::RedactedThinking {
                data: o.get("data").and_then(Value::as_str).unwrap_or("").to_string(),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::encode_request;
    use crate::ir::Effort;

    fn encode(v: Value) -> Value {
        let r = crate::openai::decode_request(v.to_string().as_bytes()).unwrap();
        serde_json::from_slice(&encode_request(&r).unwrap()).unwrap()
    }

    #[test]
    fn hoists_system_merges_roles_and_groups_tool_results() {
        let out = encode(json!({"model": "claude", "messages": [
            {"role": "system", "content": "A"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "tool", "tool_call_id": "t2", "content": "r2"},
            {"role": "user", "content": "thanks"},
            {"role": "system", "content": "B"}
        ], "stop": ["END", " "], "user": "u-1", "parallel_tool_calls": false,
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}));
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
        );
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][0]["input"], json!({"x": 1}));
        let user = msgs[2]["content"].as_array().unwrap();
        assert_eq!(user[0]["type"], "tool_result");
        assert_eq!(user[1]["tool_use_id"], "t2");
        assert_eq!(user[2], json!({"type": "text", "text": "thanks"}));
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"]["user_id"], "u-1");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn reasoning_effort_becomes_thinking_budget_below_max_tokens() {
        let out = encode(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "high", "temperature": 0.2}));
        assert_eq!(
            out["thinking"]["budget_tokens"],
            Effort::High.anthropic_budget().unwrap()
        );
        assert!(out["max_tokens"].as_u64().unwrap() > out["thinking"]["budget_tokens"].as_u64().unwrap());
        assert!(out.get("temperature").is_none());
        let out = encode(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "high", "max_tokens": 3000}));
        assert_eq!(out["thinking"]["budget_tokens"], 1500);
        assert_eq!(out["max_tokens"], 3000);
        let out = encode(json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": "low", "max_tokens": 500}));
        assert!(out.get("thinking").is_none());
    }

    #[test]
    fn decodes_anthropic_request() {
        let body = json!({"model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}, {"type": "text", "text": "what?"}]}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "thinking": {"type": "enabled", "budget_tokens": 2048}, "metadata": {"user_id": "u"}, "service_tier": "auto"});
        let r = decode_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.tool_choice, Some(ToolChoice::Required));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(r.reasoning.unwrap().budget_tokens, Some(2048));
        assert_eq!(r.user.as_deref(), Some("u"));
        assert_eq!(r.extra.fields.get("service_tier"), Some(&json!("auto")));
        // Same-dialect round trip keeps the cache hint and the unknown field.
        let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(out["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(out["service_tier"], "auto");
    }

    #[test]
    fn invalid_tool_arguments_name_the_message() {
        let r = crate::openai::decode_request(json!({"model": "c", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}).to_string().as_bytes()).unwrap();
        let e = encode_request(&r).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].tool_calls"));
    }
}

#[cfg(test)]
mod thinking_mode_tests {
    use super::*;
    use crate::anthropic::encode_request;

    #[test]
    fn unmodelled_thinking_modes_survive_same_dialect() {
        let body = json!({"model": "c", "max_tokens": 10, "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "x"}]});
        let r = decode_request(body.to_string().as_bytes()).unwrap();
        assert!(r.reasoning.is_none());
        let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(out["thinking"], json!({"type": "adaptive"}));
    }
}
