//! Token estimates, for when a provider does not count: `count_tokens` on
//! providers without a counting endpoint, and usage of responses that carry
//! none (llama.cpp streams ignore `stream_options.include_usage`). Every
//! figure made here is reported as an estimate (`usage_source: estimated`,
//! `x-switchyard-token-count: estimate`), never passed off as the provider's.
//!
//! Heuristic (documented, deliberately simple and slightly pessimistic):
//! every text counts `ceil(chars / 4)`.

use crate::codec::decode_request;
use crate::ir::{ChatRequest, Part, WireDialect};

/// Tokens of `chars` characters of text: `ceil(chars / 4)`.
pub fn text_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

fn str_tokens(s: &str) -> u64 {
    text_tokens(s.chars().count() as u64)
}

/// Estimated input tokens of a decoded request: every text (messages,
/// thinking, tool arguments and results, tool names, descriptions and
/// serialized schemas, stop sequences) counts `ceil(chars / 4)`; each message
/// adds 4 (role and framing), each tool 8, each image a flat 1,000 (providers
/// charge 85–1,600 per image), plus 3 for the reply primer.
pub fn input_tokens(req: &ChatRequest) -> u64 {
    fn part_tokens(p: &Part) -> u64 {
        match p {
            Part::Text { text, .. } => str_tokens(text),
            Part::Image { .. } => 1000,
            Part::Thinking { text, .. } => str_tokens(text),
            Part::RedactedThinking { data } => str_tokens(data),
            Part::ToolCall(c) => str_tokens(&c.name) + str_tokens(&c.arguments),
            Part::ToolResult(r) => r.content.iter().map(part_tokens).sum(),
        }
    }
    let mut n = 3u64;
    for m in &req.messages {
        n += 4 + m.content.iter().map(part_tokens).sum::<u64>();
    }
    for t in &req.tools {
        n += 8 + str_tokens(&t.name);
        n += t.description.as_deref().map(str_tokens).unwrap_or(0);
        n += str_tokens(&t.parameters.to_string());
    }
    n += req.stop.iter().map(|s| str_tokens(s)).sum::<u64>();
    n
}

/// Estimated output tokens of a whole response (its text, thinking and
/// tool-call arguments), for a provider that reported no usage.
pub fn output_tokens(resp: &crate::ir::ChatResponse) -> u64 {
    let chars: u64 = resp
        .content
        .iter()
        .map(|p| match p {
            Part::Text { text, .. } | Part::Thinking { text, .. } => text.chars().count() as u64,
            Part::ToolCall(c) => (c.name.chars().count() + c.arguments.chars().count()) as u64,
            Part::RedactedThinking { .. } | Part::Image { .. } | Part::ToolResult(_) => 0,
        })
        .sum();
    text_tokens(chars)
}

/// Estimated input tokens of a request body in `dialect`; `None` when the
/// body does not decode. Parses the body: call it only when a provider
/// reported no usage (same-dialect bodies are otherwise never decoded).
pub fn request_input_tokens(dialect: WireDialect, body: &[u8]) -> Option<u64> {
    decode_request(dialect, body).ok().map(|r| input_tokens(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Message, Role, Tool};

    #[test]
    fn input_estimate_is_the_documented_heuristic() {
        let req = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: vec![Part::text("12345678")],
                name: None,
            }],
            tools: vec![Tool {
                name: "abcd".into(),
                description: None,
                parameters: serde_json::json!({}),
                strict: None,
                cache_control: None,
            }],
            ..ChatRequest::default()
        };
        // 3 primer + (4 + 2) message + (8 + 1 name + 1 "{}") tool.
        assert_eq!(input_tokens(&req), 19);
    }

    #[test]
    fn body_estimates_match_the_decoded_request() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"12345678"}]}"#;
        assert_eq!(request_input_tokens(WireDialect::OpenAi, body), Some(3 + 4 + 2));
        assert_eq!(request_input_tokens(WireDialect::OpenAi, b"not json"), None);
        assert_eq!(text_tokens(0), 0);
        assert_eq!(text_tokens(5), 2);
    }
}
