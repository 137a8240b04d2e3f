//! Token usage as reported by providers, normalised to one shape.
//!
//! Every dialect reports usage differently (OpenAI's `usage` object, Anthropic's
//! `message_start` + `message_delta`, Gemini's `usageMetadata`); the gateway
//! records cost from this one struct, so every codec fills it.

use serde::{Deserialize, Serialize};

/// Normalised token counts for one request.
///
/// `input_tokens` includes cached and cache-write tokens (OpenAI semantics:
/// `prompt_tokens` is the whole prompt); `output_tokens` includes reasoning
/// tokens. Cost code prices the sub-counts separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// All generated tokens, reasoning ones included.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic).
    pub cache_write_tokens: u64,
    /// Generated tokens spent on hidden reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input plus output, as OpenAI's `total_tokens`.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Parses an OpenAI-style `usage` object (chat or embeddings).
    ///
    /// Missing fields count as zero; this never fails on extra fields because
    /// providers of the OpenAI family add their own.
    pub fn from_openai_value(v: &serde_json::Value) -> Option<Usage> {
        let obj = v.as_object()?;
        let n =
            |o: &serde_json::Map<String, serde_json::Value>, k: &str| o.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let input = n(obj, "prompt_tokens");
        let total = n(obj, "total_tokens");
        let mut output = n(obj, "completion_tokens");
        if output == 0 && total > input {
            output = total - input;
        }
        let details = |k: &str| obj.get(k).and_then(|d| d.as_object());
        let cached = details("prompt_tokens_details")
            .map(|d| n(d, "cached_tokens"))
            .unwrap_or(0);
        let cache_write = details("prompt_tokens_details")
            .map(|d| n(d, "cache_creation_tokens"))
            .unwrap_or(0);
        let reasoning = details("completion_tokens_details")
            .map(|d| n(d, "reasoning_tokens"))
            .unwrap_or(0);
        Some(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: cache_write,
            reasoning_tokens: reasoning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_usage_with_details() {
        let v = serde_json::json!({
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 8}
        });
        let u = Usage::from_openai_value(&v).expect("object");
        assert_eq!(u.input_tokens, 100);
        assert_eq!(u.output_tokens, 20);
        assert_eq!(u.cached_input_tokens, 64);
        assert_eq!(u.reasoning_tokens, 8);
        assert_eq!(u.total(), 120);
    }

    #[test]
    fn embeddings_usage_has_no_completion_tokens() {
        let v = serde_json::json!({"prompt_tokens": 7, "total_tokens": 7});
        let u = Usage::from_openai_value(&v).expect("object");
        assert_eq!((u.input_tokens, u.output_tokens), (7, 0));
    }

    #[test]
    fn null_is_not_usage() {
        assert_eq!(Usage::from_openai_value(&serde_json::Value::Null), None);
    }
}
