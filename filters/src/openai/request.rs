//! OpenAI chat completions request ⇄ IR.

use crate::ir::CodecError;
use crate::ir::{
    ChatRequest, Effort, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice, ToolResult, WireDialect,
};
use crate::jv;
use serde_json::{json, Map, Value};

/// Top-level fields the IR models; everything else goes to `extra`.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "reasoning_effort",
    "thinking",
    "response_format",
    "user",
    "metadata",
    "stream",
    "stream_options",
];

/// Decodes an OpenAI `/v1/chat/completions` request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CodecError> {
    decode_map(jv::parse_object(body)?)
}

/// Decodes a request whose top-level object is already parsed (the gateway
/// parses each body once and hands the fields over).
pub fn decode_map(mut m: Map<String, Value>) -> Result<ChatRequest, CodecError> {
    let model = jv::req_str(&m, "model", "model")?.to_string();
    let msgs = m
        .get("messages")
        .ok_or_else(|| CodecError::invalid("messages", "`messages` is required"))?;
    let msgs = jv::as_arr(msgs, "messages")?;
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, v) in msgs.iter().enumerate() {
        messages.push(decode_message(v, i)?);
    }

    let mut tools = Vec::new();
    if let Some(t) = m.get("tools").filter(|v| !v.is_null()) {
        for (i, v) in jv::as_arr(t, "tools")?.iter().enumerate() {
            let p = format!("tools[{i}]");
            let o = jv::as_obj(v, &p)?;
            let f = o
                .get("function")
                .ok_or_else(|| CodecError::invalid(&p, "only `function` tools are supported"))?;
            tools.push(decode_function(f, &format!("{p}.function"))?);
        }
    } else if let Some(fs) = m.get("functions").filter(|v| !v.is_null()) {
        for (i, f) in jv::as_arr(fs, "functions")?.iter().enumerate() {
            tools.push(decode_function(f, &format!("functions[{i}]"))?);
        }
    }

    let tool_choice = match m.get("tool_choice").or_else(|| m.get("function_call")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" | "any" => ToolChoice::Required,
            _ => {
                return Err(CodecError::invalid(
                    "tool_choice",
                    "`tool_choice` must be auto, none, required or a function",
                ))
            }
        }),
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| CodecError::invalid("tool_choice", "`tool_choice.function.name` is required"))?;
            Some(ToolChoice::Named(name.to_string()))
        }
        Some(_) => return Err(CodecError::invalid("tool_choice", "invalid `tool_choice`")),
    };

    let max_tokens = match jv::opt_u32(&m, "max_completion_tokens", "max_completion_tokens")? {
        Some(n) => Some(n),
        None => jv::opt_u32(&m, "max_tokens", "max_tokens")?,
    };

    let mut reasoning = None;
    if let Some(e) = jv::opt_str(&m, "reasoning_effort", "reasoning_effort")? {
        let effort = Effort::parse(&e).ok_or_else(|| {
            CodecError::invalid(
                "reasoning_effort",
                "`reasoning_effort` must be none, minimal, low, medium or high",
            )
        })?;
        reasoning = Some(Reasoning {
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    // Anthropic-style `thinking` is accepted from OpenAI callers too.
    if let Some(t) = m.get("thinking").and_then(Value::as_object) {
        if t.get("type").and_then(Value::as_str) == Some("enabled") {
            let b = jv::opt_u32(t, "budget_tokens", "thinking.budget_tokens")?;
            let r = reasoning.get_or_insert_with(Reasoning::default);
            r.budget_tokens = b;
        }
    }

    let response_format = match m.get("response_format").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(decode_response_format(v)?),
    };

    let stream = jv::opt_bool(&m, "stream", "stream")?.unwrap_or(false);
    let include_usage = m
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let metadata = match m.get("metadata") {
        Some(Value::Object(o)) => Some(o.clone()),
        _ => None,
    };

    let req = ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: jv::opt_bool(&m, "parallel_tool_calls", "parallel_tool_calls")?,
        max_tokens,
        temperature: jv::opt_f64(&m, "temperature", "temperature")?,
        top_p: jv::opt_f64(&m, "top_p", "top_p")?,
        top_k: jv::opt_u32(&m, "top_k", "top_k")?,
        stop: jv::stop_list(m.get("stop"), "stop")?,
        reasoning,
        response_format,
        user: jv::opt_str(&m, "user", "user")?,
        metadata,
        stream,
        include_usage,
        extra: Extra::default(),
    };
    for k in KNOWN {
        m.remove(*k);
    }
    Ok(ChatRequest {
        extra: Extra {
            dialect: Some(WireDialect::OpenAi),
            fields: m,
        },
        ..req
    })
}

fn decode_function(f: &Value, p: &str) -> Result<Tool, CodecError> {
    let o = jv::as_obj(f, p)?;
    Ok(Tool {
        name: jv::req_str(o, "name", &format!("{p}.name"))?.to_string(),
        description: jv::opt_str(o, "description", &format!("{p}.description"))?,
        parameters: o
            .get("parameters")
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: jv::opt_bool(o, "strict", &format!("{p}.strict"))?,
        cache_control: o.get("cache_control").cloned(),
    })
}

fn decode_response_format(v: &Value) -> Result<ResponseFormat, CodecError> {
    let o = jv::as_obj(v, "response_format")?;
    match o.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let js = o.get("json_schema").and_then(Value::as_object).ok_or_else(|| {
                CodecError::invalid("response_format.json_schema", "`json_schema` object is required")
            })?;
            Ok(ResponseFormat::JsonSchema {
                name: js.get("name").and_then(Value::as_str).unwrap_or("response").to_string(),
                schema: js.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: js.get("strict").and_then(Value::as_bool),
            })
        }
        _ => Err(CodecError::invalid(
            "response_format.type",
            "`response_format.type` must be text, json_object or json_schema",
        )),
    }
}

fn decode_message(v: &Value, i: usize) -> Result<Message, CodecError> {
    let p = format!("messages[{i}]");
    let o = jv::as_obj(v, &p)?;
    let role = match jv::req_str(o, "role", &format!("{p}.role"))? {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "function" => Role::Tool,
        other => {
            return Err(CodecError::invalid(
                format!("{p}.role"),
                format!("unknown role `{other}`"),
            ))
        }
    };
    let name = jv::opt_str(o, "name", &format!("{p}.name"))?;
    let mut content = decode_content(o.get("content"), &format!("{p}.content"))?;

    match role {
        Role::Assistant => {
            let mut lead = Vec::new();
            if let Some(Value::Array(tb)) = o.get("thinking_blocks") {
                for b in tb {
                    match b.get("type").and_then(Value::as_str) {
                        Some("thinking") => lead.push(Part::Thinking {
                            text: b.get("thinking").and_then(Value::as_str).unwrap_or("").to_string(),
                            signature: b.get("signature").and_then(Value::as_str).map(str::to_string),
                        }),
                        Some("redacted_thinking") => lead.push(Part::RedactedThinking {
                            data: b.get("data").and_then(Value::as_str).unwrap_or("").to_string(),
                        }),
                        _ => {}
                    }
                }
            } else if let Some(r) = o
                .get("reasoning_content")
                .or_else(|| o.get("reasoning"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                lead.push(Part::Thinking {
                    text: r.to_string(),
                    signature: None,
                });
            }
            if !lead.is_empty() {
                lead.append(&mut content);
                content = lead;
            }
            if let Some(tc) = o.get("tool_calls").filter(|v| !v.is_null()) {
                for (j, c) in jv::as_arr(tc, &format!("{p}.tool_calls"))?.iter().enumerate() {
                    let cp = format!("{p}.tool_calls[{j}]");
                    let co = jv::as_obj(c, &cp)?;
                    let f = co
                        .get("function")
                        .and_then(Value::as_object)
                        .ok_or_else(|| CodecError::invalid(format!("{cp}.function"), "`function` is required"))?;
                    content.push(Part::ToolCall(ToolCall {
                        id: jv::req_str(co, "id", &format!("{cp}.id"))?.to_string(),
                        name: jv::req_str(f, "name", &format!("{cp}.function.name"))?.to_string(),
                        arguments: args_text(f.get("arguments")),
                    }));
                }
            } else if let Some(f) = o.get("function_call").and_then(Value::as_object) {
                let name = jv::req_str(f, "name", &format!("{p}.function_call.name"))?;
                content.push(Part::ToolCall(ToolCall {
                    id: name.to_string(),
                    name: name.to_string(),
                    arguments: args_text(f.get("arguments")),
                }));
            }
        }
        Role::Tool => {
            let id = match o.get("tool_call_id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                // Legacy `function` role answers by name.
                None => name
                    .clone()
                    .ok_or_else(|| CodecError::invalid(format!("{p}.tool_call_id"), "`tool_call_id` is required"))?,
            };
            content = vec![Part::ToolResult(ToolResult {
                tool_call_id: id,
                content,
                is_error: false,
            })];
        }
        Role::System | Role::User => {}
    }
    Ok(Message { role, content, name })
}

/// Tool-call arguments as JSON text (some clients send an object).
fn args_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

fn decode_content(v: Option<&Value>, p: &str) -> Result<Vec<Part>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() {
            Vec::new()
        } else {
            vec![Part::text(s.clone())]
        }),
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for (j, part) in a.iter().enumerate() {
                let pp = format!("{p}[{j}]");
                let o = jv::as_obj(part, &pp)?;
                match o.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") => out.push(Part::Text {
                        text: jv::req_str(o, "text", &format!("{pp}.text"))?.to_string(),
                        cache_control: o.get("cache_control").cloned(),
                    }),
                    Some("image_url") => {
                        let (url, detail) = match o.get("image_url") {
                            Some(Value::String(u)) => (u.as_str(), None),
                            Some(Value::Object(io)) => (
                                jv::req_str(io, "url", &format!("{pp}.image_url.url"))?,
                                io.get("detail").and_then(Value::as_str).map(str::to_string),
                            ),
                            _ => {
                                return Err(CodecError::invalid(
                                    format!("{pp}.image_url"),
                                    "`image_url` is required",
                                ))
                            }
                        };
                        out.push(Part::Image {
                            source: ImageSource::from_url(url),
                            detail,
                        });
                    }
                    // A refusal echoed back in history reads as text.
                    Some("refusal") => out.push(Part::text(
                        o.get("refusal").and_then(Value::as_str).unwrap_or("").to_string(),
                    )),
                    Some(other) => {
                        return Err(CodecError::invalid(
                            format!("{pp}.type"),
                            format!("content part type `{other}` is not supported by this gateway"),
                        ))
                    }
                    None => return Err(CodecError::invalid(format!("{pp}.type"), "`type` is required")),
                }
            }
            Ok(out)
        }
        Some(_) => Err(CodecError::invalid(
            p,
            "`content` must be a string or an array of parts",
        )),
    }
}

/// Whether a model needs `max_completion_tokens` (OpenAI reasoning models
/// reject `max_tokens`); other OpenAI-compatible servers mostly know only
/// `max_tokens`.
fn uses_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("gpt-5")
}

/// Encodes the IR as an OpenAI chat completions body.
///
/// Notes on lossy spots (documented choices):
/// * thinking parts of earlier assistant turns are not sent (OpenAI-compatible
///   servers differ on whether they accept them);
/// * tool results from Anthropic-style user messages become one `tool`
///   message each, placed before the rest of that user turn; images inside a
///   tool result (which `tool` messages cannot carry) follow in a user message;
/// * `max_tokens` is sent as `max_completion_tokens` for OpenAI reasoning
///   models (o1/o3/o4/gpt-5) or when reasoning is requested, else `max_tokens`;
/// * streams always ask for `stream_options.include_usage` so the gateway
///   can record usage; the translator hides the chunk from callers that did
///   not ask.
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, CodecError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    // `cache_control` hints are Anthropic's; they are forwarded to an
    // OpenAI-compatible server only when an OpenAI-dialect caller wrote them
    // (some compatible servers honour them), never invented from Anthropic's.
    let keep_cc = req.extra.dialect == Some(WireDialect::OpenAi);
    let mut msgs = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        encode_message(m, keep_cc, &mut msgs);
    }
    body.insert("messages".into(), Value::Array(msgs));

    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), t.parameters.clone());
                if let Some(s) = t.strict {
                    f.insert("strict".into(), json!(s));
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = &req.tool_choice {
        let v = match tc {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
        };
        body.insert("tool_choice".into(), v);
    }
    if let Some(p) = req.parallel_tool_calls {
        if !req.tools.is_empty() {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    let effort = req.reasoning.and_then(|r| match (r.budget_tokens, r.effort) {
        (Some(b), _) => Some(Effort::from_budget(b)),
        (None, e) => e,
    });
    if let Some(n) = req.max_tokens {
        let key = if effort.is_some() || uses_max_completion_tokens(&req.model) {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(key.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        body.insert("top_p".into(), json!(t));
    }
    if let Some(k) = req.top_k {
        // Not an OpenAI field (OpenAI rejects it): forwarded only when an
        // OpenAI-dialect caller sent it, i.e. knows its server takes it.
        if req.extra.dialect == Some(WireDialect::OpenAi) {
            body.insert("top_k".into(), json!(k));
        }
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if let Some(e) = effort {
        body.insert("reasoning_effort".into(), json!(e.as_str()));
    }
    if let Some(rf) = &req.response_format {
        let v = match rf {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => {
                let mut js = Map::new();
                js.insert("name".into(), json!(name));
                js.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    js.insert("strict".into(), json!(s));
                }
                json!({"type": "json_schema", "json_schema": js})
            }
        };
        body.insert("response_format".into(), v);
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), json!(u));
    }
    if let Some(md) = &req.metadata {
        body.insert("metadata".into(), Value::Object(md.clone()));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(extra) = req.extra.for_dialect(WireDialect::OpenAi) {
        for (k, v) in extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| CodecError::body(e.to_string()))
}

fn text_or_parts(parts: &[&Part], keep_cc: bool) -> Value {
    let simple = parts.iter().all(|p| match p {
        Part::Text { cache_control, .. } => cache_control.is_none() || !keep_cc,
        _ => false,
    });
    if simple {
        let mut s = String::new();
        for p in parts {
            if let Part::Text { text, .. } = p {
                s.push_str(text);
            }
        }
        return json!(s);
    }
    let arr: Vec<Value> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, cache_control } => {
                let mut o = json!({"type": "text", "text": text});
                if let Some(cc) = cache_control.as_ref().filter(|_| keep_cc) {
                    o["cache_control"] = cc.clone();
                }
                Some(o)
            }
            Part::Image { source, detail } => {
                let mut iu = json!({"url": source.to_url()});
                if let Some(d) = detail {
                    iu["detail"] = json!(d);
                }
                Some(json!({"type": "image_url", "image_url": iu}))
            }
            _ => None,
        })
        .collect();
    Value::Array(arr)
}

fn encode_message(m: &Message, keep_cc: bool, out: &mut Vec<Value>) {
    match m.role {
        Role::System | Role::User => {
            // Tool results (Anthropic/Gemini style) become `tool` messages first.
            let mut rest: Vec<&Part> = Vec::new();
            for p in &m.content {
                match p {
                    Part::ToolResult(r) => encode_tool_result(r, keep_cc, out),
                    Part::Text { .. } | Part::Image { .. } => rest.push(p),
                    _ => {}
                }
            }
            if rest.is_empty() {
                return;
            }
            let role = if m.role == Role::System { "system" } else { "user" };
            let content = if m.role == Role::System {
                // System messages take text only.
                let texts: Vec<&Part> = rest.into_iter().filter(|p| matches!(p, Part::Text { .. })).collect();
                text_or_parts(&texts, keep_cc)
            } else {
                text_or_parts(&rest, keep_cc)
            };
            let mut o = json!({"role": role, "content": content});
            if let Some(n) = &m.name {
                o["name"] = json!(n);
            }
            out.push(o);
        }
        Role::Assistant => {
            let texts: Vec<&Part> = m.content.iter().filter(|p| matches!(p, Part::Text { .. })).collect();
            let calls: Vec<Value> = m
                .content
                .iter()
                .filter_map(|p| match p {
                    Part::ToolCall(c) => Some(json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })),
                    _ => None,
                })
                .collect();
            // An assistant turn of only tool calls carries `content: ""`:
            // OpenAI accepts null too, but strict OpenAI-compatible servers
            // (llama.cpp's, pydantic-validated) reject null with HTTP 500.
            let content = if texts.is_empty() {
                json!("")
            } else {
                let mut s = String::new();
                for p in texts {
                    if let Part::Text { text, .. } = p {
                        s.push_str(text);
                    }
                }
                json!(s)
            };
            let mut o = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                o["tool_calls"] = Value::Array(calls);
            }
            if let Some(n) = &m.name {
                o["name"] = json!(n);
            }
            out.push(o);
        }
        Role::Tool => {
            for p in &m.content {
                if let Part::ToolResult(r) = p {
                    encode_tool_result(r, keep_cc, out);
                }
            }
        }
    }
}

fn encode_tool_result(r: &ToolResult, keep_cc: bool, out: &mut Vec<Value>) {
    let mut text = String::new();
    let mut images = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            Part::Image { .. } => images.push(p),
            _ => {}
        }
    }
    out.push(json!({"role": "tool", "tool_call_id": r.tool_call_id, "content": text}));
    if !images.is_empty() {
        out.push(json!({"role": "user", "content": text_or_parts(&images, keep_cc)}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_core_fields_and_keeps_unknown_ones() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"developer","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]}],
            "max_completion_tokens":100,"stop":"END","seed":7,"stream":true,"stream_options":{"include_usage":true},
            "reasoning_effort":"low","tool_choice":"required"}"#;
        let r = decode_request(body).unwrap();
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.max_tokens, Some(100));
        assert_eq!(r.stop, vec!["END"]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.tool_choice, Some(ToolChoice::Required));
        assert_eq!(r.reasoning.unwrap().effort, Some(Effort::Low));
        assert_eq!(r.extra.fields.get("seed"), Some(&json!(7)));
        assert!(matches!(
            &r.messages[1].content[1],
            Part::Image {
                source: ImageSource::Base64 { .. },
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_param() {
        let e = decode_request(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = decode_request(br#"{"model":"m","messages":[],"max_tokens":-1}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(decode_request(b"[1]").is_err());
    }

    #[test]
    fn round_trips_tool_loop() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"c\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
            "tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object"}}}]}"#;
        let r = decode_request(body).unwrap();
        let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(
            out["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{\"c\":\"Paris\"}"
        );
        assert_eq!(out["messages"][2]["role"], "tool");
        assert_eq!(out["messages"][2]["tool_call_id"], "call_1");
        assert_eq!(out["tools"][0]["function"]["name"], "get");
    }
}
