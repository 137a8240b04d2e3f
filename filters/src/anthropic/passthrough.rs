//! Anthropic caller → Anthropic provider: the native fast path.
//!
//! The body is forwarded verbatim except `model`; the response body is checked
//! and its usage read. (The stream is relayed by
//! [`crate::stream::StreamProcessor`].)

use crate::passthrough::{BodyError, JsonObject};
use crate::usage::Usage;
use serde_json::Value;

/// What the gateway needs from a Messages request before forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesHead {
    /// Requested model.
    pub model: String,
    /// `"stream": true`.
    pub stream: bool,
}

/// Validates the fields routing depends on (`model`, `messages`, `stream`);
/// the provider validates the rest.
pub fn inspect_messages(obj: &JsonObject<'_>) -> Result<MessagesHead, BodyError> {
    let model = match obj.get("model").map(|r| serde_json::from_str::<Value>(r.get())) {
        None | Some(Ok(Value::Null)) => return Err(BodyError::MissingField("model")),
        Some(Ok(Value::String(s))) if !s.is_empty() => s,
        _ => {
            return Err(BodyError::InvalidField {
                field: "model",
                expected: "a non-empty string",
            })
        }
    };
    match obj
        .get("messages")
        .map(|r| r.get().trim_start().as_bytes().first().copied())
    {
        None => return Err(BodyError::MissingField("messages")),
        Some(Some(b'[')) => {}
        _ => {
            return Err(BodyError::InvalidField {
                field: "messages",
                expected: "an array of messages",
            })
        }
    }
    let stream = match obj.get("stream").map(|r| r.get().trim()) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        _ => {
            return Err(BodyError::InvalidField {
                field: "stream",
                expected: "a boolean",
            })
        }
    };
    Ok(MessagesHead { model, stream })
}

/// Usage of a non-streamed Messages response.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    checked_message_usage(body).ok().flatten()
}

/// Checks a successful Messages response (a JSON object with a `content`
/// array) and reads its usage in one pass; `Err` says what is wrong.
pub fn checked_message_usage(body: &[u8]) -> Result<Option<Usage>, String> {
    #[derive(serde::Deserialize)]
    struct Resp<'a> {
        #[serde(borrow, default)]
        content: Option<&'a serde_json::value::RawValue>,
        #[serde(default)]
        usage: super::UsageIn,
    }
    let r: Resp<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) if e.is_data() => return Err("the response body is not a JSON object".into()),
        Err(e) => return Err(format!("the response body is not valid JSON ({e})")),
    };
    if !r.content.is_some_and(|c| c.get().starts_with('[')) {
        return Err("the response has no `content` array".into());
    }
    Ok(r.usage.0)
}

/// Checks a `count_tokens` response (`{"input_tokens": N}`).
pub fn checked_count_tokens(body: &[u8]) -> Result<u64, String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
        .ok_or_else(|| "the response has no `input_tokens` count".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_messages_name_what_is_missing() {
        let ok = br#"{"id":"m","type":"message","content":[],"usage":{"input_tokens":3,"output_tokens":2}}"#;
        assert_eq!(
            checked_message_usage(ok).map(|u| u.map(|u| u.output_tokens)),
            Ok(Some(2))
        );
        assert!(checked_message_usage(br#"{"id":"m"}"#)
            .unwrap_err()
            .contains("`content`"));
        assert!(checked_message_usage(b"oops").unwrap_err().contains("not valid JSON"));
        assert_eq!(checked_count_tokens(br#"{"input_tokens":12}"#), Ok(12));
        assert!(checked_count_tokens(b"{}").is_err());
    }

    #[test]
    fn inspects_requests() {
        let ok = JsonObject::parse(br#"{"model":"claude","max_tokens":5,"messages":[],"stream":true}"#).expect("json");
        assert_eq!(
            inspect_messages(&ok),
            Ok(MessagesHead {
                model: "claude".into(),
                stream: true
            })
        );
        let no_model = JsonObject::parse(br#"{"messages":[]}"#).expect("json");
        assert_eq!(inspect_messages(&no_model), Err(BodyError::MissingField("model")));
        let bad = JsonObject::parse(br#"{"model":"c","messages":{}}"#).expect("json");
        assert!(inspect_messages(&bad).is_err());
    }
}
