//! Shared helpers for the codec integration tests: fixture discovery,
//! translation drivers and protocol validators for both caller dialects.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use switchyard_filters::codec::ResponseOptions;
use switchyard_filters::error::Dialect;
use switchyard_filters::ir::WireDialect;
use switchyard_filters::sse::{SseDecoder, SseItem};
use switchyard_filters::stream::{StreamProcessor, StreamSpec};

/// Repository root (fixtures and goldens live there, shared with e2e tests).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Upstream providers with fixtures, by directory name.
pub const PROVIDERS: [(&str, WireDialect); 3] = [
    ("openai", WireDialect::OpenAi),
    ("anthropic", WireDialect::Anthropic),
    ("gemini", WireDialect::Gemini),
];

/// Caller dialects.
pub const CALLERS: [(&str, Dialect); 2] = [("openai", Dialect::OpenAi), ("anthropic", Dialect::Anthropic)];

/// `(case name, path)` of every fixture of `provider` ending in `suffix`.
pub fn fixtures(provider: &str, suffix: &str) -> Vec<(String, PathBuf)> {
    let dir = repo_root().join("tests/fixtures").join(provider);
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(suffix).map(|case| (case.to_string(), e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Fixed options so outputs are reproducible.
pub fn options(include_usage: bool) -> ResponseOptions {
    ResponseOptions {
        model: None,
        id: None,
        created: 1_700_000_000,
        include_usage,
    }
}

/// The provider name the processors put in error events.
pub const PROVIDER: &str = "provider";

/// Relays `chunks` (fed in order) through the production stream processor
/// for this dialect pair — byte-for-byte relay for same-dialect pairs,
/// translation otherwise — and finishes.
pub fn translate_chunks(
    up: WireDialect,
    caller: Dialect,
    chunks: &[&[u8]],
    include_usage: bool,
) -> (Vec<u8>, StreamProcessor) {
    let mut t = StreamProcessor::new(StreamSpec::new(up, caller, PROVIDER, options(include_usage)));
    let mut out = Vec::new();
    for c in chunks {
        t.push(c, &mut out);
    }
    t.finish(None, &mut out);
    (out, t)
}

/// Whether this pair is relayed byte for byte (the output then carries the
/// provider's own events, pings and comments included).
pub fn is_relay(up: WireDialect, caller: Dialect) -> bool {
    WireDialect::from(caller) == up
}

/// Parses SSE output into `(event line, data)` pairs.
pub fn parse_sse(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    let mut d = SseDecoder::new();
    d.push(bytes).expect("output within limits");
    d.finish();
    let mut out = Vec::new();
    while let Some(item) = d.next_item() {
        if let SseItem::Event(e) = item {
            out.push((e.event, e.data));
        }
    }
    out
}

/// Whether the output has a data-less block (comments: only a relay may
/// forward the provider's).
pub fn has_comment_blocks(bytes: &[u8]) -> bool {
    let mut d = SseDecoder::new();
    d.push(bytes).expect("output within limits");
    d.finish();
    std::iter::from_fn(|| d.next_item()).any(|i| i == SseItem::Comment)
}

/// Checks the Anthropic Messages streaming rules; returns the stop reason
/// (or `error:<type>` when the stream ended with an error event).
///
/// `allow_late_tool_args` tolerates the one documented deviation: an
/// `input_json_delta` for an already-closed `tool_use` block, which happens
/// only when an OpenAI upstream interleaves parallel tool-call fragments.
/// `ping` events are allowed anywhere (the API sends them); events of
/// unknown types (which the API may add) are allowed only in `relayed`
/// output, as is a `message_delta` that reports output tokens only (what the
/// API itself sends).
pub fn validate_anthropic(bytes: &[u8], allow_late_tool_args: bool) -> Result<String, String> {
    validate_anthropic_as(bytes, allow_late_tool_args, false)
}

/// [`validate_anthropic`] for relayed (same-dialect) output.
pub fn validate_anthropic_relay(bytes: &[u8]) -> Result<String, String> {
    validate_anthropic_as(bytes, false, true)
}

fn validate_anthropic_as(bytes: &[u8], allow_late_tool_args: bool, relayed: bool) -> Result<String, String> {
    if !relayed && has_comment_blocks(bytes) {
        return Err("translator output has a data-less block".into());
    }
    let events = parse_sse(bytes);
    if events.is_empty() {
        return Err("empty stream".into());
    }
    let mut started = false;
    let mut next_index = 0u64;
    let mut open: Option<(u64, String)> = None;
    let mut tool_json: Vec<(u64, String)> = Vec::new();
    let mut had_tool = false;
    let mut delta_seen: Option<String> = None;
    let mut stopped = false;
    for (i, (ev, data)) in events.iter().enumerate() {
        let v: Value = serde_json::from_str(data).map_err(|e| format!("event {i}: data not JSON: {e}"))?;
        let ty = v["type"].as_str().ok_or(format!("event {i}: no type"))?;
        if ev.as_deref() != Some(ty) {
            return Err(format!("event {i}: event line {ev:?} != data type {ty}"));
        }
        if stopped {
            return Err(format!("event {i}: {ty} after message_stop"));
        }
        if ty == "error" {
            if i != events.len() - 1 {
                return Err("error event is not last".into());
            }
            let et = v["error"]["type"].as_str().ok_or("error without error.type")?;
            v["error"]["message"].as_str().ok_or("error without message")?;
            return Ok(format!("error:{et}"));
        }
        if ty == "ping" {
            continue;
        }
        if ty != "message_start" && !started {
            return Err(format!("event {i}: {ty} before message_start"));
        }
        match ty {
            "message_start" => {
                if started {
                    return Err("duplicate message_start".into());
                }
                started = true;
                let m = &v["message"];
                if m["type"] != "message" || m["role"] != "assistant" || !m["content"].is_array() {
                    return Err("message_start.message malformed".into());
                }
                if !m["usage"]["input_tokens"].is_u64() {
                    return Err("message_start without usage.input_tokens".into());
                }
            }
            "content_block_start" => {
                if delta_seen.is_some() {
                    return Err("block after message_delta".into());
                }
                if let Some((idx, _)) = &open {
                    return Err(format!("block {idx} still open at content_block_start"));
                }
                let idx = v["index"].as_u64().ok_or("start without index")?;
                if idx != next_index {
                    return Err(format!("block index {idx}, expected {next_index}"));
                }
                next_index += 1;
                let bt = v["content_block"]["type"]
                    .as_str()
                    .ok_or("block without type")?
                    .to_string();
                match bt.as_str() {
                    "text" | "thinking" | "redacted_thinking" => {}
                    "tool_use" => {
                        had_tool = true;
                        // Upstream ids pass through unchanged (the caller
                        // echoes them back to the same upstream); ids the
                        // gateway generates are checked in unit tests.
                        v["content_block"]["id"].as_str().ok_or("tool_use without id")?;
                        tool_json.push((idx, String::new()));
                    }
                    other => return Err(format!("unexpected block type {other}")),
                }
                open = Some((idx, bt));
            }
            "content_block_delta" => {
                let idx = v["index"].as_u64().ok_or("delta without index")?;
                let late_tool = open.as_ref().is_none_or(|(o, _)| *o != idx)
                    && v["delta"]["type"] == "input_json_delta"
                    && tool_json.iter().any(|(i, _)| *i == idx);
                if allow_late_tool_args && late_tool && delta_seen.is_none() {
                    let frag = v["delta"]["partial_json"].as_str().ok_or("no partial_json")?;
                    if let Some((_, s)) = tool_json.iter_mut().find(|(i, _)| *i == idx) {
                        s.push_str(frag);
                    }
                    continue;
                }
                let (oidx, bt) = open.as_ref().ok_or(format!("delta for {idx} with no open block"))?;
                if *oidx != idx {
                    return Err(format!("delta for {idx} while {oidx} open"));
                }
                let dt = v["delta"]["type"].as_str().ok_or("delta without type")?;
                let ok = matches!(
                    (bt.as_str(), dt),
                    ("text", "text_delta")
                        | ("thinking", "thinking_delta" | "signature_delta")
                        | ("tool_use", "input_json_delta")
                );
                if !ok {
                    return Err(format!("{dt} inside a {bt} block"));
                }
                if dt == "input_json_delta" {
                    let frag = v["delta"]["partial_json"].as_str().ok_or("no partial_json")?;
                    if let Some((_, s)) = tool_json.iter_mut().find(|(i, _)| *i == idx) {
                        s.push_str(frag);
                    }
                }
            }
            "content_block_stop" => {
                let idx = v["index"].as_u64().ok_or("stop without index")?;
                match open.take() {
                    Some((o, _)) if o == idx => {}
                    other => return Err(format!("stop for {idx} while open is {other:?}")),
                }
            }
            "message_delta" => {
                if open.is_some() {
                    return Err("message_delta with a block open".into());
                }
                if delta_seen.is_some() {
                    return Err("duplicate message_delta".into());
                }
                let r = v["delta"]["stop_reason"]
                    .as_str()
                    .ok_or("message_delta without stop_reason")?;
                if had_tool && r != "tool_use" && r != "max_tokens" && r != "refusal" {
                    return Err(format!("tool_use blocks but stop_reason {r}"));
                }
                if !had_tool && r == "tool_use" {
                    return Err("stop_reason tool_use without tool_use block".into());
                }
                let required: &[&str] = if relayed {
                    &["output_tokens"]
                } else {
                    &[
                        "input_tokens",
                        "output_tokens",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    ]
                };
                for k in required {
                    if !v["usage"][k].is_u64() {
                        return Err(format!("message_delta usage.{k} missing"));
                    }
                }
                delta_seen = Some(r.to_string());
            }
            "message_stop" => {
                if delta_seen.is_none() {
                    return Err("message_stop before message_delta".into());
                }
                stopped = true;
            }
            _ if relayed => {}
            other => return Err(format!("unexpected event type {other}")),
        }
    }
    if !stopped {
        return Err("stream ended without message_stop or error".into());
    }
    delta_seen.ok_or_else(|| "no message_delta".into())
}

/// The concatenated `input_json_delta` of each `tool_use` block, in order
/// (to check that no argument fragment was lost on the way).
pub fn anthropic_tool_inputs(bytes: &[u8]) -> Vec<String> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for (_, data) in parse_sse(bytes) {
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        let idx = v["index"].as_u64().unwrap_or(u64::MAX);
        if v["type"] == "content_block_start" && v["content_block"]["type"] == "tool_use" {
            out.push((idx, String::new()));
        }
        if v["type"] == "content_block_delta" && v["delta"]["type"] == "input_json_delta" {
            if let Some((_, s)) = out.iter_mut().find(|(i, _)| *i == idx) {
                s.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
            }
        }
    }
    out.into_iter().map(|(_, s)| s).collect()
}

/// Checks OpenAI chunk-stream rules; returns the finish reason (or
/// `error:<type>`).
pub fn validate_openai(bytes: &[u8], include_usage: bool) -> Result<String, String> {
    if has_comment_blocks(bytes) {
        return Err("translator output has a data-less block".into());
    }
    validate_openai_events(&parse_sse(bytes), include_usage, false)
}

/// [`validate_openai`] for relayed output: the provider's comments are
/// allowed, and usage may ride on the last choice chunk (DeepSeek does that)
/// instead of a chunk of its own.
pub fn validate_openai_relay(bytes: &[u8], include_usage: bool) -> Result<String, String> {
    validate_openai_events(&parse_sse(bytes), include_usage, true)
}

fn validate_openai_events(
    events: &[(Option<String>, String)],
    include_usage: bool,
    relayed: bool,
) -> Result<String, String> {
    let mut finish: Option<String> = None;
    let mut saw_usage = false;
    let mut tool_indexes: Vec<u64> = Vec::new();
    let mut id: Option<String> = None;
    for (i, (ev, data)) in events.iter().enumerate() {
        if ev.is_some() {
            return Err(format!("event {i}: OpenAI streams have no event lines"));
        }
        if data == "[DONE]" {
            if i != events.len() - 1 {
                return Err("[DONE] is not last".into());
            }
            if include_usage && !saw_usage {
                return Err("include_usage but no usage chunk".into());
            }
            let f = finish.ok_or("no finish_reason before [DONE]")?;
            if !tool_indexes.is_empty() && !matches!(f.as_str(), "tool_calls" | "length" | "content_filter") {
                return Err(format!("tool calls but finish_reason {f}"));
            }
            if tool_indexes.is_empty() && f == "tool_calls" {
                return Err("finish_reason tool_calls without tool calls".into());
            }
            return Ok(f);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("event {i}: {e}"))?;
        if let Some(e) = v.get("error") {
            if i != events.len() - 1 {
                return Err("error chunk is not last".into());
            }
            e["message"].as_str().ok_or("error without message")?;
            return Ok(format!("error:{}", e["type"].as_str().unwrap_or("")));
        }
        if v["object"] != "chat.completion.chunk" {
            return Err(format!("event {i}: object is {}", v["object"]));
        }
        let this_id = v["id"].as_str().ok_or("chunk without id")?.to_string();
        if id.get_or_insert(this_id.clone()) != &this_id {
            return Err("chunk ids differ".into());
        }
        let choices = v["choices"].as_array().ok_or("no choices array")?;
        if choices.is_empty() {
            if !include_usage {
                return Err("usage chunk although the caller did not ask".into());
            }
            v["usage"]["prompt_tokens"]
                .as_u64()
                .ok_or("usage chunk without prompt_tokens")?;
            saw_usage = true;
            continue;
        }
        if saw_usage {
            return Err("choice chunk after the usage chunk".into());
        }
        if relayed && include_usage && v["usage"].is_object() {
            saw_usage = true;
        }
        let c = &choices[0];
        if let Some(fr) = c["finish_reason"].as_str() {
            if finish.is_some() {
                return Err("two finish_reasons".into());
            }
            finish = Some(fr.to_string());
        } else if finish.is_some() {
            return Err("content after finish_reason".into());
        }
        if let Some(calls) = c["delta"]["tool_calls"].as_array() {
            for tc in calls {
                let idx = tc["index"].as_u64().ok_or("tool call without index")?;
                if tc.get("id").is_some() {
                    if idx as usize != tool_indexes.len() {
                        return Err(format!("tool call index {idx} not contiguous"));
                    }
                    tool_indexes.push(idx);
                } else if !tool_indexes.contains(&idx) {
                    return Err(format!("arguments for unannounced tool call {idx}"));
                }
            }
        }
    }
    Err("stream ended without [DONE] or error".into())
}
