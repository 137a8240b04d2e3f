//! OpenAI chat completions request ⇄ IR.

use crate::ir::CodecError;
use crate::ir::{
    ChatRequest, Effort, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice, ToolResult, WireDialect,
};
use crate::jv;
use crate::passthrough::{BodyError, JsonObject};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// Decodes an OpenAI `/v1/chat/completions` request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CodecError> {
    let obj = JsonObject::parse(body).map_err(|e| match e {
        BodyError::NotAnObject => CodecError::body("request body must be a JSON object"),
        BodyError::MalformedJson(e) => CodecError::body(format!("request body is not valid JSON: {e}")),
        other => CodecError::body(format!("request {other}")),
    })?;
    decode_fields(&obj)
}

/// The top-level fields the IR models, each decoded from its raw value;
/// `messages` stays raw (each message is read field by field, see
/// [`decode_message`]).
#[derive(Default)]
struct Top<'a> {
    messages: Option<&'a RawValue>,
    model: Option<Value>,
    tools: Option<Value>,
    functions: Option<Value>,
    tool_choice: Option<Value>,
    function_call: Option<Value>,
    parallel_tool_calls: Option<Value>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    top_k: Option<Value>,
    stop: Option<Value>,
    reasoning_effort: Option<Value>,
    thinking: Option<Value>,
    response_format: Option<Value>,
    user: Option<Value>,
    metadata: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<Value>,
}

impl Top<'_> {
    /// The slot of a field the IR models; `None` for any other (it goes to
    /// `extra`).
    fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        Some(match key {
            "model" => &mut self.model,
            "tools" => &mut self.tools,
            "functions" => &mut self.functions,
            "tool_choice" => &mut self.tool_choice,
            "function_call" => &mut self.function_call,
            "parallel_tool_calls" => &mut self.parallel_tool_calls,
            "max_tokens" => &mut self.max_tokens,
            "max_completion_tokens" => &mut self.max_completion_tokens,
            "temperature" => &mut self.temperature,
            "top_p" => &mut self.top_p,
            "top_k" => &mut self.top_k,
            "stop" => &mut self.stop,
            "reasoning_effort" => &mut self.reasoning_effort,
            "thinking" => &mut self.thinking,
            "response_format" => &mut self.response_format,
            "user" => &mut self.user,
            "metadata" => &mut self.metadata,
            "stream" => &mut self.stream,
            "stream_options" => &mut self.stream_options,
            _ => return None,
        })
    }
}

/// A raw value the body parser validated, as a `Value`.
fn value(key: &str, raw: &RawValue) -> Result<Value, CodecError> {
    serde_json::from_str(raw.get()).map_err(|e| CodecError::invalid(key, format!("`{key}` is not valid JSON: {e}")))
}

/// Decodes a request whose top-level object is already parsed (the gateway
/// parses each body once and hands the fields over). Fields are matched by
/// name as they come and decoded once each; no map of the request is built
/// (a map hashes every key on insert and on each of the ~40 lookups, which
/// cost more than the decoding itself on a 1 KB request).
pub fn decode_fields(obj: &JsonObject<'_>) -> Result<ChatRequest, CodecError> {
    let mut t = Top::default();
    let mut extra = Map::new();
    for (k, raw) in obj.iter() {
        if k == "messages" {
            t.messages = Some(raw);
            continue;
        }
        match t.slot(k) {
            Some(slot) => *slot = Some(value(k, raw)?),
            None => {
                extra.insert(k.to_string(), value(k, raw)?);
            }
        }
    }

    let model = match t.model.take() {
        Some(Value::String(s)) => s,
        _ => return Err(CodecError::invalid("model", "`model` is required and must be a string")),
    };
    let msgs = t
        .messages
        .ok_or_else(|| CodecError::invalid("messages", "`messages` is required"))?;
    let msgs: Vec<&RawValue> =
        serde_json::from_str(msgs.get()).map_err(|_| CodecError::invalid("messages", "`messages` must be an array"))?;
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, v) in msgs.into_iter().enumerate() {
        messages.push(decode_message(v, i)?);
    }

    let mut tools = Vec::new();
    if let Some(t) = t.tools.as_ref().filter(|v| !v.is_null()) {
        for (i, v) in jv::as_arr(t, "tools")?.iter().enumerate() {
            let p = format!("tools[{i}]");
            let o = jv::as_obj(v, &p)?;
            let f = o
                .get("function")
                .ok_or_else(|| CodecError::invalid(&p, "only `function` tools are supported"))?;
            tools.push(decode_function(f, &format!("{p}.function"))?);
        }
    } else if let Some(fs) = t.functions.as_ref().filter(|v| !v.is_null()) {
        for (i, f) in jv::as_arr(fs, "functions")?.iter().enumerate() {
            tools.push(decode_function(f, &format!("functions[{i}]"))?);
        }
    }

    let tool_choice = match t.tool_choice.as_ref().or(t.function_call.as_ref()) {
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

    let max_tokens = match jv::u32_value(t.max_completion_tokens.as_ref(), "max_completion_tokens")? {
        Some(n) => Some(n),
        None => jv::u32_value(t.max_tokens.as_ref(), "max_tokens")?,
    };

    let mut reasoning = None;
    if let Some(e) = jv::str_value(t.reasoning_effort.as_ref(), "reasoning_effort")? {
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
    if let Some(t) = t.thinking.as_ref().and_then(Value::as_object) {
        if t.get("type").and_then(Value::as_str) == Some("enabled") {
            let b = jv::opt_u32(t, "budget_tokens", "thinking.budget_tokens")?;
            let r = reasoning.get_or_insert_with(Reasoning::default);
            r.budget_tokens = b;
        }
    }

    let response_format = match t.response_format.as_ref().filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(decode_response_format(v)?),
    };

    let stream = jv::bool_value(t.stream.as_ref(), "stream")?.unwrap_or(false);
    let include_usage = t
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: jv::bool_value(t.parallel_tool_calls.as_ref(), "parallel_tool_calls")?,
        max_tokens,
        temperature: jv::f64_value(t.temperature.as_ref(), "temperature")?,
        top_p: jv::f64_value(t.top_p.as_ref(), "top_p")?,
        top_k: jv::u32_value(t.top_k.as_ref(), "top_k")?,
        stop: jv::stop_list(t.stop.as_ref(), "stop")?,
        reasoning,
        response_format,
        user: jv::str_value(t.user.as_ref(), "user")?,
        metadata: match t.metadata {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        },
        stream,
        include_usage,
        extra: Extra {
            dialect: Some(WireDialect::OpenAi),
            fields: extra,
        },
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

/// One message, read from its raw object field by field (a linear scan of
/// its few keys; only the fields present are decoded).
fn decode_message(raw: &RawValue, i: usize) -> Result<Message, CodecError> {
    let at = |field: &str| format!("messages[{i}]{field}");
    let o = JsonObject::parse_raw(raw).map_err(|_| {
        let p = at("");
        CodecError::invalid(&p, format!("`{p}` must be an object"))
    })?;
    let field = |k: &str| o.get(k).map(|r| value(k, r)).transpose();
    let role = match field("role")? {
        Some(Value::String(r)) => match r.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            other => return Err(CodecError::invalid(at(".role"), format!("unknown role `{other}`"))),
        },
        _ => {
            let p = at(".role");
            return Err(CodecError::invalid(
                &p,
                format!("`{p}` is required and must be a string"),
            ));
        }
    };
    let name = match field("name")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            let p = at(".name");
            return Err(CodecError::invalid(&p, format!("`{p}` must be a string")));
        }
    };
    let mut content = decode_content(field("content")?, || at(".content"))?;

    match role {
        Role::Assistant => {
            let mut lead = Vec::new();
            if let Some(Value::Array(tb)) = field("thinking_blocks")? {
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
            } else {
                let r = match field("reasoning_content")? {
                    Some(r) => Some(r),
                    None => field("reasoning")?,
                };
                if let Some(Value::String(r)) = r.filter(|r| r.as_str().is_some_and(|s| !s.is_empty())) {
                    lead.push(Part::Thinking {
                        text: r,
                        signature: None,
                    });
                }
            }
            if !lead.is_empty() {
                lead.append(&mut content);
                content = lead;
            }
            if let Some(tc) = field("tool_calls")?.filter(|v| !v.is_null()) {
                let p = at("");
                for (j, c) in jv::as_arr(&tc, &format!("{p}.tool_calls"))?.iter().enumerate() {
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
            } else if let Some(Value::Object(f)) = field("function_call")? {
                let name = jv::req_str(&f, "name", &at(".function_call.name"))?;
                content.push(Part::ToolCall(ToolCall {
                    id: name.to_string(),
                    name: name.to_string(),
                    arguments: args_text(f.get("arguments")),
                }));
            }
        }
        Role::Tool => {
            let id = match field("tool_call_id")? {
                Some(Value::String(id)) => id,
                // Legacy `function` role answers by name.
                _ => name
                    .clone()
                    .ok_or_else(|| CodecError::invalid(at(".tool_call_id"), "`tool_call_id` is required"))?,
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

/// A message's `content`: a string (moved, not copied) or an array of parts;
/// `param` names it, and is only built for an error.
fn decode_content(v: Option<Value>, param: impl Fn() -> String) -> Result<Vec<Part>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![Part::text(s)] }),
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            let p = param();
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
            param(),
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
#[path = "request_tests.rs"]
mod tests;
