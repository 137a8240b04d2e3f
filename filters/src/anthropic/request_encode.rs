//! IR → Anthropic Messages request, serialised straight from the IR: the
//! conversation is borrowed, never copied into a JSON tree.

use super::request::DEFAULT_MAX_TOKENS;
use crate::ir::{ChatRequest, CodecError, ImageSource, Part, ResponseFormat, Role, Tool, ToolChoice, WireDialect};
use serde::Serialize;
use serde_json::{Map, Value};

/// A content block.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Image {
        source: ImageOut<'a>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: ResultContent<'a>,
        #[serde(skip_serializing_if = "is_false")]
        is_error: bool,
    },
}

impl Block<'_> {
    fn is_tool_result(&self) -> bool {
        matches!(self, Block::ToolResult { .. })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(String),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(untagged)]
enum System<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

#[derive(Serialize)]
struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    format: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
struct JsonSchemaFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a Value,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

/// The request body, in Anthropic's key order.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<System<'a>>,
    messages: Vec<MessageOut<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

fn text_block<'a>(text: &'a str, cache_control: &'a Option<Value>) -> Block<'a> {
    Block::Text {
        text,
        cache_control: cache_control.as_ref(),
    }
}

/// Encodes one IR part as an Anthropic block (`None`: not representable or
/// empty, e.g. unsigned thinking, which Anthropic rejects).
fn encode_part(part: &Part, msg: usize) -> Result<Option<Block<'_>>, CodecError> {
    Ok(match part {
        Part::Text { text, cache_control } => (!text.is_empty()).then(|| text_block(text, cache_control)),
        Part::Image { source, .. } => Some(Block::Image {
            source: match source {
                ImageSource::Base64 { media_type, data } => ImageOut::Base64 { media_type, data },
                ImageSource::Url(url) => ImageOut::Url { url },
            },
        }),
        Part::Thinking { text, signature } => signature.as_deref().map(|signature| Block::Thinking {
            thinking: text,
            signature,
        }),
        Part::RedactedThinking { data } => Some(Block::RedactedThinking { data }),
        Part::ToolCall(c) => {
            let input = if c.arguments.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                match serde_json::from_str::<Value>(&c.arguments) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        return Err(CodecError::invalid(
                            format!("messages[{msg}].tool_calls"),
                            format!("tool call `{}` arguments are not a JSON object", c.id),
                        ))
                    }
                }
            };
            Some(Block::ToolUse {
                id: &c.id,
                name: &c.name,
                input,
            })
        }
        Part::ToolResult(r) => {
            let simple = r.content.iter().all(|c| {
                matches!(
                    c,
                    Part::Text {
                        cache_control: None,
                        ..
                    }
                )
            });
            let content = if simple {
                let texts: Vec<&str> = r
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        Part::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                ResultContent::Text(texts.join("\n"))
            } else {
                let mut blocks = Vec::new();
                for c in &r.content {
                    if let Some(b) = encode_part(c, msg)? {
                        blocks.push(b);
                    }
                }
                ResultContent::Blocks(blocks)
            };
            Some(Block::ToolResult {
                tool_use_id: &r.tool_call_id,
                content,
                is_error: r.is_error,
            })
        }
    })
}

/// Encodes the IR as an Anthropic Messages body.
///
/// Documented choices:
/// * every system message (wherever it appears) is hoisted, in order, into
///   top-level `system`;
/// * consecutive messages of the same role are merged (Anthropic requires
///   alternation); OpenAI `tool` messages become `tool_result` blocks in a
///   user message, placed before that message's other blocks;
/// * `max_tokens` defaults to [`DEFAULT_MAX_TOKENS`];
/// * reasoning → `thinking: {type: enabled, budget_tokens}` with the budget
///   from [`crate::ir::Effort::anthropic_budget`] (or the explicit budget).
///   `max_tokens` must exceed the budget: when the caller gave none it is
///   budget + 4096; when the caller's is ≤ the budget, the budget shrinks to
///   max(1024, max_tokens / 2); when the caller's is ≤ 1024 thinking is
///   left off. Thinking is also left off when tool use is forced (Anthropic
///   rejects that combination), and while it is on `temperature`/`top_k` are
///   dropped and `top_p` below 0.95 is dropped (Anthropic's rules);
/// * `temperature` is clamped to Anthropic's 0–1 range;
/// * `response_format: json_schema` → `output_config.format` (structured
///   outputs, GA); `json_object` has no equivalent and is dropped;
/// * `user` → `metadata.user_id`;
/// * unsigned thinking (from non-Anthropic providers) is not sent back.
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, CodecError> {
    let mut system: Vec<Block<'_>> = Vec::new();
    let mut msgs: Vec<(Role, Vec<Block<'_>>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        if m.role == Role::System {
            for part in &m.content {
                if let Part::Text { text, cache_control } = part {
                    if !text.is_empty() {
                        system.push(text_block(text, cache_control));
                    }
                }
            }
            continue;
        }
        let role = if m.role == Role::Assistant {
            Role::Assistant
        } else {
            Role::User
        };
        let mut results = Vec::new();
        let mut others = Vec::new();
        for part in &m.content {
            if let Some(b) = encode_part(part, i)? {
                if b.is_tool_result() {
                    results.push(b);
                } else {
                    others.push(b);
                }
            }
        }
        results.append(&mut others);
        if results.is_empty() {
            continue;
        }
        match msgs.last_mut() {
            Some((r, blocks)) if *r == role => {
                // Tool results must lead a user message.
                if role == Role::User && results.iter().any(Block::is_tool_result) {
                    let (mut merged, rest): (Vec<Block<'_>>, Vec<Block<'_>>) =
                        blocks.drain(..).chain(results).partition(Block::is_tool_result);
                    merged.extend(rest);
                    *blocks = merged;
                } else {
                    blocks.append(&mut results);
                }
            }
            _ => msgs.push((role, results)),
        }
    }
    let system = match system.as_slice() {
        [] => None,
        [Block::Text {
            text,
            cache_control: None,
        }] => Some(System::Text(text)),
        _ => Some(System::Blocks(system)),
    };
    let messages = msgs
        .into_iter()
        .map(|(r, content)| MessageOut {
            role: if r == Role::Assistant { "assistant" } else { "user" },
            content,
        })
        .collect();

    let forced_tool = matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Named(_)));
    let mut max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let mut budget = req
        .reasoning
        .and_then(|r| r.budget_tokens.or_else(|| r.effort.and_then(|e| e.anthropic_budget())))
        .filter(|b| *b > 0 && !forced_tool);
    if let Some(b) = budget {
        let b = b.max(1024);
        budget = match req.max_tokens {
            None => {
                max_tokens = b.saturating_add(DEFAULT_MAX_TOKENS);
                Some(b)
            }
            Some(n) if n <= 1024 => None,
            Some(n) if n <= b => Some((n / 2).max(1024)),
            Some(_) => Some(b),
        };
    }
    let stops: Vec<&str> = req
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let (tools, tool_choice) = tools_and_choice(req);
    let body = Body {
        model: &req.model,
        system,
        messages,
        max_tokens,
        thinking: budget.map(|b| Thinking {
            kind: "enabled",
            budget_tokens: b,
        }),
        temperature: req.temperature.filter(|_| budget.is_none()).map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p.filter(|t| budget.is_none() || *t >= 0.95),
        top_k: req.top_k.filter(|_| budget.is_none()),
        stop_sequences: (!stops.is_empty()).then_some(stops),
        tools,
        tool_choice,
        output_config: match &req.response_format {
            Some(ResponseFormat::JsonSchema { schema, .. }) => Some(OutputConfig {
                format: JsonSchemaFormat {
                    kind: "json_schema",
                    schema,
                },
            }),
            _ => None,
        },
        metadata: req.user.as_deref().map(|user_id| Metadata { user_id }),
        stream: req.stream.then_some(true),
    };
    let Some(extra) = req.extra.for_dialect(WireDialect::Anthropic) else {
        return serde_json::to_vec(&body).map_err(|e| CodecError::body(e.to_string()));
    };
    // Fields of an Anthropic request the IR does not model (rare: only an
    // Anthropic request re-encoded for Anthropic carries them).
    let Value::Object(mut out) = serde_json::to_value(&body).map_err(|e| CodecError::body(e.to_string()))? else {
        return Err(CodecError::body("request did not encode to an object"));
    };
    for (k, v) in extra {
        match (out.get_mut(k), v) {
            // Merge the caller's other `output_config` members with ours.
            (Some(Value::Object(ours)), Value::Object(theirs)) if k == "output_config" => {
                for (ik, iv) in theirs {
                    ours.entry(ik.clone()).or_insert_with(|| iv.clone());
                }
            }
            (Some(_), _) => {}
            (None, _) => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| CodecError::body(e.to_string()))
}

/// `tools` and `tool_choice`, when there are tools.
fn tools_and_choice(req: &ChatRequest) -> (Option<Vec<ToolOut<'_>>>, Option<ToolChoiceOut<'_>>) {
    if req.tools.is_empty() {
        return (None, None);
    }
    let tools = req
        .tools
        .iter()
        .map(|t: &Tool| ToolOut {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: &t.parameters,
            strict: t.strict,
            cache_control: t.cache_control.as_ref(),
        })
        .collect();
    let (kind, name) = match &req.tool_choice {
        None | Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::None) => ("none", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Named(n)) => ("tool", Some(n.as_str())),
    };
    let disable = req.parallel_tool_calls == Some(false) && req.tool_choice != Some(ToolChoice::None);
    let choice = (req.tool_choice.is_some() || disable).then_some(ToolChoiceOut {
        kind,
        name,
        disable_parallel_tool_use: disable.then_some(true),
    });
    (Some(tools), choice)
}
