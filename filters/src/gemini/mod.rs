//! Google Gemini native dialect (`generateContent`,
//! `streamGenerateContent?alt=sse`, `batchEmbedContents`): IR → request,
//! response → IR, stream chunks → IR events, OpenAI embeddings both ways.
//!
//! ## Thought signatures
//! Gemini 3 rejects a multi-turn tool loop unless each `functionCall` it
//! returned comes back with its `thoughtSignature`. Callers (OpenAI or
//! Anthropic dialect) only echo the tool call id, so the signature is carried
//! *inside the id*: `<base>__thought__<base64url(signature)>` (ids stay within
//! `[A-Za-z0-9_-]`, valid for Anthropic too). When such an id comes back in
//! the next request the signature is re-attached to the `functionCall` part.
//! A model turn whose function calls carry no signature at all (history from
//! another provider) gets Gemini's documented placeholder
//! `skip_thought_signature_validator` on its first call. Signatures Gemini
//! puts on plain text parts are not carried (they are optional to return).

mod embeddings;
mod request;
mod response;
mod stream;

pub use embeddings::{embeddings_request, embeddings_request_map, embeddings_response, EmbeddingsMeta};
pub use request::{clean_schema, decode_map, decode_request, encode_request};
pub use response::decode_response;
pub use stream::StreamDecoder;

use crate::ir::StopReason;
use crate::jv;
use crate::openai::sanitize_id;
use crate::usage::Usage;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// Separator between a tool call id and its embedded thought signature.
pub const SIGNATURE_SEPARATOR: &str = "__thought__";

/// Placeholder signature Gemini accepts for function calls whose real
/// signature is unknown (documented for migrating conversations).
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Builds the caller-facing id of the `n`-th function call of a response.
///
/// `call_id` is Gemini's own `functionCall.id` when it sent one; otherwise
/// the id is derived from the response id (`seed`) and `n`, so it is unique
/// and reproducible.
pub fn tool_call_id(call_id: Option<&str>, seed: &str, n: usize, signature: Option<&str>) -> String {
    let base = match call_id.map(sanitize_id).filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => {
            let seed = sanitize_id(seed);
            if seed.is_empty() {
                format!("call_{n}")
            } else {
                format!("call_{seed}_{n}")
            }
        }
    };
    let base = base.replace(SIGNATURE_SEPARATOR, "_");
    match signature.filter(|s| !s.is_empty()) {
        Some(sig) => format!("{base}{SIGNATURE_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(sig.as_bytes())),
        None => base,
    }
}

/// Recovers the thought signature embedded in a tool call id, if any.
pub fn signature_from_id(id: &str) -> Option<String> {
    let (_, enc) = id.split_once(SIGNATURE_SEPARATOR)?;
    let bytes = URL_SAFE_NO_PAD.decode(enc).ok()?;
    String::from_utf8(bytes).ok()
}

/// Gemini `finishReason` → IR. Safety-type reasons are content filters;
/// malformed function calls are provider errors.
pub fn stop_reason_from_gemini(s: &str) -> StopReason {
    match s {
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => StopReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => StopReason::Error,
        other => StopReason::Other(other.to_string()),
    }
}

/// Gemini `usageMetadata` → IR usage.
///
/// `promptTokenCount` already includes `cachedContentTokenCount`; tool-use
/// prompt tokens are input too; `thoughtsTokenCount` is not part of
/// `candidatesTokenCount`, so output = candidates + thoughts, with thoughts
/// as reasoning tokens.
pub fn usage_from_gemini(v: &Value) -> Usage {
    let thoughts = jv::count(v, "thoughtsTokenCount");
    Usage {
        input_tokens: jv::count(v, "promptTokenCount").saturating_add(jv::count(v, "toolUsePromptTokenCount")),
        output_tokens: jv::count(v, "candidatesTokenCount").saturating_add(thoughts),
        cached_input_tokens: jv::count(v, "cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signature_round_trips_through_the_id() {
        let sig = "CpMBAb4+9vv/long+signature==";
        let id = tool_call_id(None, "resp-1.x", 0, Some(sig));
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert!(id.starts_with("call_resp-1x_0__thought__"));
        assert_eq!(signature_from_id(&id).as_deref(), Some(sig));
        assert_eq!(tool_call_id(None, "", 2, None), "call_2");
        assert_eq!(signature_from_id("call_2"), None);
    }

    #[test]
    fn usage_counts_thoughts_as_output() {
        let u = usage_from_gemini(&json!({"promptTokenCount": 100, "cachedContentTokenCount": 60,
            "candidatesTokenCount": 10, "thoughtsTokenCount": 30, "totalTokenCount": 140}));
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (100, 40, 60, 30)
        );
        assert_eq!(u.total(), 140);
    }
}
