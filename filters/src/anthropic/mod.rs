//! Anthropic Messages dialect: request ⇄ IR, response ⇄ IR, SSE ⇄ IR events.
//!
//! Usage semantics differ from OpenAI's: Anthropic's `input_tokens` EXCLUDES
//! prompt-cache reads and writes, which are reported separately as
//! `cache_read_input_tokens` / `cache_creation_input_tokens`. The IR (like
//! OpenAI's `prompt_tokens`) counts the whole prompt, so decoding adds them
//! and encoding subtracts them.

pub mod passthrough;
mod request;
mod request_encode;
mod response;
mod stream;

pub use request::{decode_map, decode_request, DEFAULT_MAX_TOKENS};
pub use request_encode::encode_request;
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::ir::StopReason;
use crate::jv;
use crate::usage::Usage;
use serde_json::{json, Value};

/// Anthropic `stop_reason` (+ `stop_sequence`) → IR.
pub fn stop_reason_from_anthropic(s: &str, stop_sequence: Option<&str>) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(stop_sequence.map(str::to_string)),
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

/// IR → Anthropic `stop_reason` and `stop_sequence`.
///
/// A turn that made tool calls is always `tool_use` (unless cut off by
/// `max_tokens`), and `tool_use` is never reported without a `tool_use`
/// block. `pause_turn` survives; other unknown reasons and provider errors
/// become `end_turn`; content filters become `refusal`.
pub fn stop_reason_to_anthropic(r: Option<&StopReason>, had_tool_calls: bool) -> (&'static str, Option<String>) {
    if had_tool_calls {
        return match r {
            Some(StopReason::MaxTokens) => ("max_tokens", None),
            Some(StopReason::ContentFilter) => ("refusal", None),
            _ => ("tool_use", None),
        };
    }
    match r {
        None | Some(StopReason::EndTurn) | Some(StopReason::ToolUse) | Some(StopReason::Error) => ("end_turn", None),
        Some(StopReason::MaxTokens) => ("max_tokens", None),
        Some(StopReason::StopSequence(s)) => ("stop_sequence", s.clone()),
        Some(StopReason::ContentFilter) => ("refusal", None),
        Some(StopReason::Other(o)) if o == "pause_turn" => ("pause_turn", None),
        Some(StopReason::Other(_)) => ("end_turn", None),
    }
}

/// Anthropic `usage` object → IR usage (prompt total includes cache tokens).
pub fn usage_from_anthropic(v: &Value) -> Usage {
    let cache_read = jv::count(v, "cache_read_input_tokens");
    let cache_write = jv::count(v, "cache_creation_input_tokens");
    Usage {
        input_tokens: jv::count(v, "input_tokens")
            .saturating_add(cache_read)
            .saturating_add(cache_write),
        output_tokens: jv::count(v, "output_tokens"),
        cached_input_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: 0,
    }
}

/// An Anthropic `usage` object read in one pass by a typed decoder, with no
/// map built: the same answer as [`usage_from_anthropic`] on its `Value`
/// (a missing or non-numeric count is 0, a repeated key's last value
/// counts), and anything but an object reads as absent (`None`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageIn(pub Option<Usage>);

impl<'de> serde::Deserialize<'de> for UsageIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The counters `usage_from_anthropic` reads.
        enum Key {
            Input,
            Output,
            CacheRead,
            CacheWrite,
            Other,
        }
        impl<'de> serde::Deserialize<'de> for Key {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct K;
                impl serde::de::Visitor<'_> for K {
                    type Value = Key;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key, E> {
                        Ok(match s {
                            "input_tokens" => Key::Input,
                            "output_tokens" => Key::Output,
                            "cache_read_input_tokens" => Key::CacheRead,
                            "cache_creation_input_tokens" => Key::CacheWrite,
                            _ => Key::Other,
                        })
                    }
                }
                d.deserialize_identifier(K)
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UsageIn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UsageIn, A::Error> {
                let (mut input, mut output, mut read, mut write) = (0, 0, 0, 0);
                while let Some(k) = map.next_key::<Key>()? {
                    let slot = match k {
                        Key::Input => &mut input,
                        Key::Output => &mut output,
                        Key::CacheRead => &mut read,
                        Key::CacheWrite => &mut write,
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<jv::Count>()?.0;
                }
                Ok(UsageIn(Some(Usage {
                    input_tokens: input.saturating_add(read).saturating_add(write),
                    output_tokens: output,
                    cached_input_tokens: read,
                    cache_write_tokens: write,
                    reasoning_tokens: 0,
                })))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UsageIn, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(UsageIn(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<UsageIn, E> {
                Ok(UsageIn(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// IR usage → Anthropic `usage` object (`input_tokens` without cache tokens).
pub fn usage_to_anthropic(u: &Usage) -> Value {
    let uncached = u
        .input_tokens
        .saturating_sub(u.cached_input_tokens)
        .saturating_sub(u.cache_write_tokens);
    json!({
        "input_tokens": uncached,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
        "output_tokens": u.output_tokens,
    })
}

/// The Anthropic-facing message id: the gateway's if given, else the
/// upstream's, prefixed `msg_` when it has another shape.
pub(crate) fn message_id(upstream: &str, opts: &crate::ir::ResponseOptions) -> String {
    match &opts.id {
        Some(id) => id.clone(),
        None if upstream.starts_with("msg_") => upstream.to_string(),
        None => format!("msg_{}", crate::openai::sanitize_id(upstream)),
    }
}

/// Tool arguments (JSON text) as the `input` object Anthropic requires.
/// Empty or non-object arguments (a truncated call) become `{}`.
pub(crate) fn args_to_input(args: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_cache_semantics_round_trip() {
        let v = json!({"input_tokens": 10, "cache_read_input_tokens": 100,
                       "cache_creation_input_tokens": 5, "output_tokens": 7});
        let u = usage_from_anthropic(&v);
        assert_eq!(u.input_tokens, 115);
        assert_eq!(u.cached_input_tokens, 100);
        assert_eq!(usage_to_anthropic(&u), v_sorted(&v));
    }

    #[test]
    fn typed_usage_reads_what_the_value_walk_reads() {
        for v in [
            json!({"input_tokens": 10, "cache_read_input_tokens": 100,
                   "cache_creation_input_tokens": 5, "output_tokens": 7, "service_tier": "standard",
                   "cache_creation": {"ephemeral_5m_input_tokens": 5}}),
            json!({"input_tokens": -3, "output_tokens": 2.5, "cache_read_input_tokens": "9"}),
            json!({"output_tokens": [1, 2], "input_tokens": {"n": 1}}),
            json!({}),
        ] {
            let typed: UsageIn = serde_json::from_str(&v.to_string()).unwrap();
            assert_eq!(typed.0, Some(usage_from_anthropic(&v)), "{v}");
        }
        // A repeated key: the last value counts, as in a `Value`.
        let typed: UsageIn = serde_json::from_str(r#"{"output_tokens": 1, "output_tokens": 4}"#).unwrap();
        assert_eq!(typed.0.map(|u| u.output_tokens), Some(4));
        for not_an_object in ["null", "3", "\"x\"", "[1]", "true"] {
            let typed: UsageIn = serde_json::from_str(not_an_object).unwrap();
            assert_eq!(typed.0, None, "{not_an_object}");
        }
    }

    fn v_sorted(v: &Value) -> Value {
        json!({
            "input_tokens": v["input_tokens"],
            "cache_creation_input_tokens": v["cache_creation_input_tokens"],
            "cache_read_input_tokens": v["cache_read_input_tokens"],
            "output_tokens": v["output_tokens"],
        })
    }

    #[test]
    fn tool_turns_are_tool_use() {
        assert_eq!(stop_reason_to_anthropic(Some(&StopReason::EndTurn), true).0, "tool_use");
        assert_eq!(
            stop_reason_to_anthropic(Some(&StopReason::ToolUse), false).0,
            "end_turn"
        );
        assert_eq!(
            stop_reason_to_anthropic(Some(&StopReason::StopSequence(Some("X".into()))), false),
            ("stop_sequence", Some("X".into()))
        );
    }
}
