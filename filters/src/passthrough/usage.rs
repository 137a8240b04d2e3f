//! Usage of non-streamed OpenAI-compatible responses (chat and embeddings),
//! read without building a tree.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{skip_ws, JsonObject, Key};
use crate::usage::Usage;

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

/// Token usage of a non-streamed chat or embeddings response (its top-level
/// `usage`), or `None` when there is none or the body is not a JSON object.
///
/// Everything but `usage` is skipped without being stored, so a 30 MiB batch
/// of embeddings costs one scan. Same semantics as
/// [`Usage::from_openai_value`] (tested against it).
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    usage_from_raw(serde_json::from_slice::<TopUsage>(body).ok()?.0?)
}

/// What a successful non-streamed response of an OpenAI-compatible endpoint
/// must contain at its top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// `chat.completion`: a `choices` array.
    Chat,
    /// Embeddings list: a `data` array.
    Embeddings,
}

/// Checks a successful same-dialect response and reads its usage, in one
/// pass over the body. `Err` says what is wrong (the gateway answers 502
/// naming the provider rather than relaying a broken body as a success).
pub fn checked_response_usage(body: &[u8], kind: ResponseKind) -> Result<Option<Usage>, String> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        usage: Option<&'a RawValue>,
        #[serde(borrow, default)]
        choices: Option<&'a RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
    }
    if skip_ws(body).first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => "the response body is not a JSON object".to_string(),
            Err(e) => format!("the response body is not valid JSON ({e})"),
        });
    }
    let top: Top<'_> =
        serde_json::from_slice(body).map_err(|e| format!("the response body is not valid JSON ({e})"))?;
    let (field, value) = match kind {
        ResponseKind::Chat => ("choices", top.choices),
        ResponseKind::Embeddings => ("data", top.data),
    };
    if !value.is_some_and(|v| v.get().starts_with('[')) {
        return Err(format!("the response has no `{field}` array"));
    }
    Ok(top.usage.and_then(usage_from_raw))
}

/// Usage from a raw `usage` value; `None` unless it is an object. Missing or
/// non-integer counts read as zero, like `Usage::from_openai_value`. The
/// object is small, so reading it as raw entries costs next to nothing.
pub(crate) fn usage_from_raw(raw: &RawValue) -> Option<Usage> {
    let u = JsonObject::parse_raw(raw).ok()?;
    let prompt_details = u
        .get("prompt_tokens_details")
        .and_then(|d| JsonObject::parse_raw(d).ok());
    let completion_details = u
        .get("completion_tokens_details")
        .and_then(|d| JsonObject::parse_raw(d).ok());
    let detail = |d: &Option<JsonObject<'_>>, k: &str| d.as_ref().map_or(0, |d| count(d.get(k)));
    let input = count(u.get("prompt_tokens"));
    let total = count(u.get("total_tokens"));
    let mut output = count(u.get("completion_tokens"));
    if output == 0 && total > input {
        output = total - input;
    }
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: detail(&prompt_details, "cached_tokens"),
        cache_write_tokens: detail(&prompt_details, "cache_creation_tokens"),
        reasoning_tokens: detail(&completion_details, "reasoning_tokens"),
    })
}

/// A token count: the raw text of a non-negative integer that fits in u64
/// (what `Value::as_u64` accepts); anything else, `1.0` included, is zero.
fn count(raw: Option<&RawValue>) -> u64 {
    raw.and_then(|r| r.get().parse().ok()).unwrap_or(0)
}

/// The top level of a response, keeping only `usage` (borrowed, raw).
struct TopUsage<'a>(Option<&'a RawValue>);

impl<'de> Deserialize<'de> for TopUsage<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopUsage<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a response object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut usage = None;
                while let Some(Key(k)) = map.next_key()? {
                    if k == "usage" {
                        usage = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(TopUsage(usage))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ----- usage -----

    #[test]
    fn response_usage_matches_from_openai_value() {
        let samples = [
            json!({"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64,"cache_creation_tokens":5},"completion_tokens_details":{"reasoning_tokens":8}}}),
            json!({"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":7,"total_tokens":7}}),
            json!({"usage":{"prompt_tokens":5,"total_tokens":9}}),
            json!({"usage":{"prompt_tokens":"5","completion_tokens":2.0,"total_tokens":-1,"prompt_tokens_details":null,"completion_tokens_details":[1]}}),
            json!({"usage":{}}),
        ];
        for s in samples {
            let want = Usage::from_openai_value(&s["usage"]);
            assert!(want.is_some());
            assert_eq!(response_usage(s.to_string().as_bytes()), want, "{s}");
        }
        assert_eq!(response_usage(br#"{"usage":null}"#), None);
        assert_eq!(response_usage(br#"{"usage":[1]}"#), None);
        assert_eq!(response_usage(br#"{"id":"x"}"#), None);
        assert_eq!(response_usage(b"[1]"), None);
        assert_eq!(response_usage(b"not json"), None);
    }

    #[test]
    fn checked_responses_name_what_is_missing() {
        let ok = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(
            checked_response_usage(ok, ResponseKind::Chat).map(|u| u.map(|u| u.input_tokens)),
            Ok(Some(3))
        );
        let no_choices = checked_response_usage(br#"{"id":"x"}"#, ResponseKind::Chat).unwrap_err();
        assert!(no_choices.contains("`choices`"), "{no_choices}");
        assert!(checked_response_usage(b"<html>", ResponseKind::Chat)
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(checked_response_usage(b"[1]", ResponseKind::Chat)
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(checked_response_usage(br#"{"data":[{"embedding":[1]}]}"#, ResponseKind::Embeddings).is_ok());
        assert!(checked_response_usage(br#"{"choices":"x"}"#, ResponseKind::Chat).is_err());
    }
}
