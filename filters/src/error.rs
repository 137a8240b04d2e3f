//! Error envelopes of each caller dialect, and reading providers' error bodies.
//!
//! The gateway decides *which* error (and its HTTP status); this module only
//! knows how each API spells an error, so callers' SDKs raise their usual
//! typed exceptions with a readable message.

use serde_json::json;

/// The dialect a caller speaks; errors and streams are rendered in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI chat completions / embeddings.
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
}

/// A dialect-neutral error description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Human-readable message; must never contain secrets.
    pub message: String,
    /// OpenAI `type` (e.g. `invalid_request_error`).
    pub kind: &'static str,
    /// OpenAI `param`: the offending request field, if any.
    pub param: Option<String>,
    /// OpenAI `code` (e.g. `model_not_found`).
    pub code: Option<&'static str>,
    /// Anthropic `error.type` (e.g. `not_found_error`).
    pub anthropic_kind: &'static str,
}

/// Renders `{"error":{"message","type","param","code"}}`.
pub fn render_openai(e: &ErrorInfo) -> Vec<u8> {
    let v = json!({"error": {
        "message": e.message,
        "type": e.kind,
        "param": e.param,
        "code": e.code,
    }});
    v.to_string().into_bytes()
}

/// Renders `{"type":"error","error":{"type","message"}}`.
pub fn render_anthropic(e: &ErrorInfo) -> Vec<u8> {
    let v = json!({"type": "error", "error": {"type": e.anthropic_kind, "message": e.message}});
    v.to_string().into_bytes()
}

/// Renders in the given dialect.
pub fn render(dialect: Dialect, e: &ErrorInfo) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => render_openai(e),
        Dialect::Anthropic => render_anthropic(e),
    }
}

/// Pulls a readable message out of a provider's error body.
///
/// Understands the OpenAI family (`{"error":{"message"}}`, also used by
/// Gemini), Anthropic (`{"type":"error","error":{"message"}}`), `{"error":"…"}`
/// and `{"message":"…"}` / `{"detail":"…"}` (several OpenAI-compatible
/// servers). Falls back to the body's text, trimmed and capped.
pub fn upstream_error_message(body: &[u8]) -> String {
    const CAP: usize = 512;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("message"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return cap(s.trim(), CAP);
            }
        }
        // An array of errors (Gemini sometimes wraps in a list).
        if let Some(s) = v.pointer("/0/error/message").and_then(|m| m.as_str()) {
            return cap(s.trim(), CAP);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        cap(text, CAP)
    }
}

fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ErrorInfo {
        ErrorInfo {
            message: "The model `x` does not exist".into(),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            anthropic_kind: "not_found_error",
        }
    }

    #[test]
    fn openai_envelope() {
        let v: serde_json::Value = serde_json::from_slice(&render_openai(&info())).expect("json");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn anthropic_envelope() {
        let v: serde_json::Value = serde_json::from_slice(&render_anthropic(&info())).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
    }

    #[test]
    fn reads_provider_messages() {
        assert_eq!(upstream_error_message(br#"{"error":{"message":"bad key"}}"#), "bad key");
        assert_eq!(
            upstream_error_message(br#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#),
            "overloaded"
        );
        assert_eq!(upstream_error_message(br#"{"error":"nope"}"#), "nope");
        assert_eq!(upstream_error_message(b"  Bad Gateway "), "Bad Gateway");
        assert_eq!(upstream_error_message(b""), "(empty body)");
        let long = "é".repeat(600);
        assert!(upstream_error_message(long.as_bytes()).len() <= 516);
    }
}
