//! OpenAI chat completions dialect (and every OpenAI-compatible server):
//! request ⇄ IR, response ⇄ IR, `chat.completion.chunk` stream ⇄ IR events.
//!
//! Extensions beyond the official API, chosen to match what OpenAI-compatible
//! servers and clients already use:
//! * reasoning text travels as `reasoning_content` (DeepSeek, vLLM; `reasoning`
//!   is also read);
//! * thinking signatures and redacted thinking, which Anthropic needs back on
//!   the next turn, travel as `thinking_blocks: [{"type":"thinking",
//!   "thinking","signature"}|{"type":"redacted_thinking","data"}]` on the
//!   assistant message (and in stream deltas, where a signature arrives as
//!   its own `thinking_blocks` entry with empty `thinking`; a client rebuilds
//!   the block from the concatenated `reasoning_content` plus that signature);
//!   requests accept the same field back;
//! * `prompt_tokens_details.cache_creation_tokens` reports Anthropic cache
//!   writes (read back by [`crate::usage::Usage::from_openai_value`]).

mod request;
mod response;
mod stream;

pub use request::{decode_fields, decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub(crate) use stream::sanitize_id;
pub use stream::{StreamDecoder, StreamEncoder};

use crate::ir::StopReason;
use crate::usage::Usage;
use serde_json::Value;

/// OpenAI `finish_reason` → IR.
pub fn stop_reason_from_openai(s: &str) -> StopReason {
    match s {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

/// A choice's `finish_reason`, refined by vLLM's non-standard `stop_reason`:
/// a string there is the stop sequence that matched (a number is the token
/// id that ended generation — a natural end).
pub fn finish_reason(finish: &str, stop_reason: Option<&Value>) -> StopReason {
    match (finish, stop_reason.and_then(Value::as_str)) {
        ("stop", Some(seq)) => StopReason::StopSequence(Some(seq.to_string())),
        _ => stop_reason_from_openai(finish),
    }
}

/// IR → OpenAI `finish_reason`.
///
/// `had_tool_calls` fixes the classic bug of a tool-calling turn reported as a
/// plain stop (and the reverse: `tool_calls` without any call). Reasons OpenAI
/// has no word for (`pause_turn`, provider errors) become `stop`.
pub fn stop_reason_to_openai(r: Option<&StopReason>, had_tool_calls: bool) -> &'static str {
    if had_tool_calls {
        return match r {
            Some(StopReason::MaxTokens) => "length",
            Some(StopReason::ContentFilter) => "content_filter",
            _ => "tool_calls",
        };
    }
    match r {
        None | Some(StopReason::EndTurn) | Some(StopReason::StopSequence(_)) => "stop",
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::ToolUse) => "stop",
        Some(StopReason::ContentFilter) => "content_filter",
        Some(StopReason::Error) | Some(StopReason::Other(_)) => "stop",
    }
}

/// IR usage → OpenAI `usage` object (`prompt_tokens` includes cached tokens).
pub fn usage_to_openai(u: &Usage) -> Value {
    serde_json::to_value(OpenAiUsage::from(u)).unwrap_or(Value::Null)
}

/// OpenAI's `usage` object, serialised straight from the IR counts.
#[derive(Debug, serde::Serialize)]
pub(crate) struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Debug, serde::Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_creation_tokens: u64,
}

#[derive(Debug, serde::Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&Usage> for OpenAiUsage {
    fn from(u: &Usage) -> Self {
        OpenAiUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: u.cached_input_tokens,
                cache_creation_tokens: u.cache_write_tokens,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}
