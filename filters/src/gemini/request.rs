//! IR → Gemini `generateContent` request (and a tolerant reverse for tooling).

use super::{signature_from_id, SKIP_SIGNATURE};
use crate::ir::CodecError;
use crate::ir::{
    ChatRequest, Effort, Extra, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice, ToolResult, WireDialect,
};
use crate::jv;
use serde_json::{json, Map, Value};

/// Schema keywords Gemini's `Schema` object understands; everything else
/// (`additionalProperties`, `$schema`, `$ref`, `$defs`, `strict`, …) is
/// stripped because Gemini rejects unknown keywords.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Reduces a JSON schema to Gemini's OpenAPI subset: unsupported keywords
/// dropped, `type: [T, "null"]` → `type: T, nullable: true`, `const` →
/// one-value `enum`, recursively through properties, items and anyOf.
pub fn clean_schema(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in o {
        match k.as_str() {
            "type" => match val {
                Value::Array(ts) => {
                    let non_null: Vec<&Value> = ts.iter().filter(|t| t.as_str() != Some("null")).collect();
                    if non_null.len() < ts.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    if let Some(t) = non_null.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            // Gemini enums are string-only; other values (e.g. null) go.
            "const" | "enum" => {
                let vals: Vec<Value> = match val {
                    Value::Array(a) => a.iter().filter(|x| x.is_string()).cloned().collect(),
                    v if v.is_string() => vec![v.clone()],
                    _ => Vec::new(),
                };
                if !vals.is_empty() {
                    out.insert("enum".into(), Value::Array(vals));
                }
            }
            "properties" => {
                let props: Map<String, Value> = val
                    .as_object()
                    .map(|p| p.iter().map(|(pk, pv)| (pk.clone(), clean_schema(pv))).collect())
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), clean_schema(val));
            }
            "anyOf" => {
                let alts: Vec<Value> = val
                    .as_array()
                    .map(|a| a.iter().map(clean_schema).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(alts));
            }
            k if SCHEMA_KEYS.contains(&k) => {
                out.insert(k.to_string(), val.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// Thinking budget for Gemini: the explicit budget, else by effort
/// (none → 0 (off), minimal → 512, low → 1024, medium → 8192, high → 24576).
fn thinking_budget(r: &Reasoning) -> Option<u32> {
    r.budget_tokens.or(r.effort.map(|e| match e {
        Effort::None => 0,
        Effort::Minimal => 512,
        Effort::Low => 1024,
        Effort::Medium => 8192,
        Effort::High => 24576,
    }))
}

fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let ext = path.rsplit('.').next()?;
    Some(match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

fn image_part(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        ImageSource::Url(u) => match mime_from_url(u) {
            Some(m) => json!({"fileData": {"mimeType": m, "fileUri": u}}),
            None => json!({"fileData": {"fileUri": u}}),
        },
    }
}

/// Encodes the IR as a Gemini `generateContent` body (model and streaming
/// are chosen by the URL: `models/{model}:generateContent` or
/// `:streamGenerateContent?alt=sse`).
///
/// Documented choices: system messages → `systemInstruction`; assistant →
/// role `model`; tool results → `functionResponse` parts (name looked up from
/// the matching call; `response: {"result": text}` or `{"error": text}` when
/// `is_error`), consecutive same-role turns merged (parallel results share one
/// turn); thinking parts are not sent back; reasoning →
/// `thinkingConfig {thinkingBudget, includeThoughts: true}`; json_object →
/// `responseMimeType: application/json`, json_schema additionally
/// `responseSchema` ([`clean_schema`]); tool schemas cleaned the same way,
/// and an object schema without properties is omitted (Gemini rejects empty
/// OBJECT properties).
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, CodecError> {
    let mut body = Map::new();
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let call_name = |id: &str| -> Option<&str> {
        req.messages
            .iter()
            .flat_map(|m| m.content.iter())
            .find_map(|p| match p {
                Part::ToolCall(c) if c.id == id => Some(c.name.as_str()),
                _ => None,
            })
    };
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::System {
            for p in &m.content {
                if let Part::Text { text, .. } = p {
                    system.push(json!({"text": text}));
                }
            }
            continue;
        }
        let role = if m.role == Role::Assistant { "model" } else { "user" };
        let mut parts = Vec::new();
        let mut any_signature = false;
        for p in &m.content {
            match p {
                Part::Text { text, .. } => {
                    if !text.is_empty() {
                        parts.push(json!({"text": text}));
                    }
                }
                Part::Image { source, .. } => parts.push(image_part(source)),
                Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
                Part::ToolCall(c) => {
                    let args = if c.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str::<Value>(&c.arguments).map_err(|_| {
                            CodecError::invalid(
                                format!("messages[{i}].tool_calls"),
                                format!("tool call `{}` arguments are not valid JSON", c.id),
                            )
                        })?
                    };
                    let mut part = json!({"functionCall": {"name": c.name, "args": args}});
                    if let Some(sig) = signature_from_id(&c.id) {
                        any_signature = true;
                        part["thoughtSignature"] = json!(sig);
                    }
                    parts.push(part);
                }
                Part::ToolResult(r) => {
                    let name = call_name(&r.tool_call_id).ok_or_else(|| {
                        CodecError::invalid(
                            format!("messages[{i}].tool_call_id"),
                            format!("tool result `{}` does not match any earlier tool call", r.tool_call_id),
                        )
                    })?;
                    let mut text = String::new();
                    let mut images = Vec::new();
                    for c in &r.content {
                        match c {
                            Part::Text { text: t, .. } => {
                                if !text.is_empty() {
                                    text.push('\n');
                                }
                                text.push_str(t);
                            }
                            Part::Image { source, .. } => images.push(image_part(source)),
                            _ => {}
                        }
                    }
                    let key = if r.is_error { "error" } else { "result" };
                    parts.push(json!({"functionResponse": {"name": name, "response": {key: text}}}));
                    parts.extend(images);
                }
            }
        }
        if m.role == Role::Assistant && !any_signature {
            if let Some(first) = parts.iter_mut().find(|p| p.get("functionCall").is_some()) {
                first["thoughtSignature"] = json!(SKIP_SIGNATURE);
            }
        }
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((r, ps)) if *r == role => ps.append(&mut parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req.tools.iter().map(encode_tool).collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        if let Some(tc) = &req.tool_choice {
            let cfg = match tc {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
            };
            body.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
        }
    }
    let mut gc = Map::new();
    if let Some(n) = req.max_tokens {
        gc.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        gc.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        gc.insert("topP".into(), json!(t));
    }
    if let Some(k) = req.top_k {
        gc.insert("topK".into(), json!(k));
    }
    if !req.stop.is_empty() {
        gc.insert("stopSequences".into(), json!(req.stop));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            gc.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            gc.insert("responseMimeType".into(), json!("application/json"));
            gc.insert("responseSchema".into(), clean_schema(schema));
        }
        _ => {}
    }
    if let Some(b) = req.reasoning.as_ref().and_then(thinking_budget) {
        gc.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": b, "includeThoughts": b > 0}),
        );
    }
    if !gc.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gc));
    }
    if let Some(extra) = req.extra.for_dialect(WireDialect::Gemini) {
        for (k, v) in extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| CodecError::body(e.to_string()))
}

fn encode_tool(t: &Tool) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(t.name));
    if let Some(desc) = &t.description {
        d.insert("description".into(), json!(desc));
    }
    let schema = clean_schema(&t.parameters);
    let empty_object = schema
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("object"))
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| p.is_empty());
    if !empty_object {
        d.insert("parameters".into(), schema);
    }
    Value::Object(d)
}

const KNOWN: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
];

/// Decodes a Gemini `generateContent` body (tooling and tests; the gateway
/// does not accept Gemini-dialect callers). Function calls get ids equal to
/// their names and responses answer by name, which is how Gemini matches them.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CodecError> {
    decode_map(jv::parse_object(body)?)
}

/// Decodes a request whose top-level object is already parsed (the gateway
/// parses each body once and hands the fields over).
pub fn decode_map(mut m: Map<String, Value>) -> Result<ChatRequest, CodecError> {
    let mut messages = Vec::new();
    if let Some(si) = m.get("systemInstruction") {
        let content = decode_parts(si.get("parts"), "systemInstruction.parts")?;
        messages.push(Message {
            role: Role::System,
            content,
            name: None,
        });
    }
    if let Some(c) = m.get("contents") {
        for (i, c) in jv::as_arr(c, "contents")?.iter().enumerate() {
            let role = match c.get("role").and_then(Value::as_str) {
                Some("model") => Role::Assistant,
                _ => Role::User,
            };
            let content = decode_parts(c.get("parts"), &format!("contents[{i}].parts"))?;
            messages.push(Message {
                role,
                content,
                name: None,
            });
        }
    }
    let mut tools = Vec::new();
    if let Some(Value::Array(ts)) = m.get("tools") {
        for t in ts {
            if let Some(Value::Array(ds)) = t.get("functionDeclarations") {
                for d in ds {
                    tools.push(Tool {
                        name: d.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                        description: d.get("description").and_then(Value::as_str).map(str::to_string),
                        parameters: d
                            .get("parameters")
                            .cloned()
                            .unwrap_or_else(|| json!({"type": "object"})),
                        strict: None,
                        cache_control: None,
                    });
                }
            }
        }
    }
    let fcc = m
        .get("toolConfig")
        .and_then(|t| t.get("functionCallingConfig"))
        .cloned()
        .unwrap_or(Value::Null);
    let tool_choice = match fcc.get("mode").and_then(Value::as_str) {
        Some("AUTO") => Some(ToolChoice::Auto),
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") => match fcc.pointer("/allowedFunctionNames/0").and_then(Value::as_str) {
            Some(n) => Some(ToolChoice::Named(n.to_string())),
            None => Some(ToolChoice::Required),
        },
        _ => None,
    };
    let gc = m
        .get("generationConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let response_format = match gc.get("responseMimeType").and_then(Value::as_str) {
        Some("application/json") => Some(match gc.get("responseSchema") {
            Some(s) => ResponseFormat::JsonSchema {
                name: "response".into(),
                schema: s.clone(),
                strict: None,
            },
            None => ResponseFormat::JsonObject,
        }),
        _ => None,
    };
    let reasoning = gc
        .get("thinkingConfig")
        .and_then(|t| t.get("thinkingBudget"))
        .and_then(Value::as_u64)
        .map(|b| Reasoning {
            effort: None,
            budget_tokens: u32::try_from(b).ok(),
        });
    let req = ChatRequest {
        model: String::new(),
        messages,
        tools,
        tool_choice,
        max_tokens: jv::opt_u32(&gc, "maxOutputTokens", "generationConfig.maxOutputTokens")?,
        temperature: jv::opt_f64(&gc, "temperature", "generationConfig.temperature")?,
        top_p: jv::opt_f64(&gc, "topP", "generationConfig.topP")?,
        top_k: jv::opt_u32(&gc, "topK", "generationConfig.topK")?,
        stop: jv::stop_list(gc.get("stopSequences"), "generationConfig.stopSequences")?,
        reasoning,
        response_format,
        ..ChatRequest::default()
    };
    for k in KNOWN {
        m.remove(*k);
    }
    Ok(ChatRequest {
        extra: Extra {
            dialect: Some(WireDialect::Gemini),
            fields: m,
        },
        ..req
    })
}

fn decode_parts(v: Option<&Value>, p: &str) -> Result<Vec<Part>, CodecError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for part in jv::as_arr(v, p)? {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.push(Part::Thinking {
                    text: t.to_string(),
                    signature: None,
                });
            } else {
                out.push(Part::text(t));
            }
        } else if let Some(d) = part.get("inlineData") {
            out.push(Part::Image {
                source: ImageSource::Base64 {
                    media_type: d.get("mimeType").and_then(Value::as_str).unwrap_or("").to_string(),
                    data: d.get("data").and_then(Value::as_str).unwrap_or("").to_string(),
                },
                detail: None,
            });
        } else if let Some(d) = part.get("fileData") {
            out.push(Part::Image {
                source: ImageSource::Url(d.get("fileUri").and_then(Value::as_str).unwrap_or("").to_string()),
                detail: None,
            });
        } else if let Some(fc) = part.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            out.push(Part::ToolCall(ToolCall {
                id: name.clone(),
                name,
                arguments: fc.get("args").map(Value::to_string).unwrap_or_else(|| "{}".into()),
            }));
        } else if let Some(fr) = part.get("functionResponse") {
            let name = fr.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let resp = fr.get("response").cloned().unwrap_or(Value::Null);
            let (text, is_error) = match (resp.get("result"), resp.get("error")) {
                (Some(Value::String(s)), _) => (s.clone(), false),
                (_, Some(Value::String(s))) => (s.clone(), true),
                _ => (resp.to_string(), false),
            };
            out.push(Part::ToolResult(ToolResult {
                tool_call_id: name,
                content: vec![Part::text(text)],
                is_error,
            }));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_reduced_to_gemini_subset() {
        let s = json!({"$schema": "x", "type": "object", "additionalProperties": false,
            "properties": {"a": {"type": ["string", "null"], "const": "v"}, "b": {"type": "array", "items": {"type": "integer", "$ref": "#/x"}}},
            "required": ["a"]});
        assert_eq!(
            clean_schema(&s),
            json!({"type": "object", "properties": {
                "a": {"nullable": true, "type": "string", "enum": ["v"]},
                "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})
        );
    }

    #[test]
    fn tool_loop_reattaches_signature_and_names_results() {
        let id = super::super::tool_call_id(None, "r", 0, Some("SIG"));
        let body = json!({"model": "gemini", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": "get", "arguments": "{\"c\":1}"}},
                {"id": "other", "type": "function", "function": {"name": "put", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "r1"},
            {"role": "tool", "tool_call_id": "other", "content": "r2"}],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": {"c": {"type": "integer"}}, "additionalProperties": false}}},
                      {"type": "function", "function": {"name": "put", "parameters": {"type": "object", "properties": {}}}}],
            "reasoning_effort": "medium", "response_format": {"type": "json_object"}});
        let r = crate::openai::decode_request(body.to_string().as_bytes()).unwrap();
        let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(out["systemInstruction"], json!({"parts": [{"text": "sys"}]}));
        let c = out["contents"].as_array().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[1]["parts"][0]["thoughtSignature"], "SIG");
        assert!(c[1]["parts"][1].get("thoughtSignature").is_none());
        assert_eq!(
            c[2]["parts"][1]["functionResponse"],
            json!({"name": "put", "response": {"result": "r2"}})
        );
        assert_eq!(
            out["toolConfig"]["functionCallingConfig"],
            json!({"mode": "ANY", "allowedFunctionNames": ["get"]})
        );
        assert!(out["tools"][0]["functionDeclarations"][0]["parameters"]
            .get("additionalProperties")
            .is_none());
        assert!(out["tools"][0]["functionDeclarations"][1].get("parameters").is_none());
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 8192, "includeThoughts": true})
        );
        assert_eq!(out["generationConfig"]["responseMimeType"], "application/json");
    }

    #[test]
    fn unsigned_history_gets_placeholder_and_unknown_result_is_an_error() {
        let body = json!({"model": "g", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "x", "content": "ok"}]});
        let r = crate::openai::decode_request(body.to_string().as_bytes()).unwrap();
        let out: Value = serde_json::from_slice(&encode_request(&r).unwrap()).unwrap();
        assert_eq!(out["contents"][0]["parts"][0]["thoughtSignature"], SKIP_SIGNATURE);
        let bad = json!({"model": "g", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "ok"}]});
        let r = crate::openai::decode_request(bad.to_string().as_bytes()).unwrap();
        assert_eq!(
            encode_request(&r).unwrap_err().param.as_deref(),
            Some("messages[0].tool_call_id")
        );
    }
}
