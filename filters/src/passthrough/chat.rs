//! Chat completions: validating and rewriting a request's head.

use serde_json::value::RawValue;

use super::{encode_error, is_null, required_string, skip_ws, BodyError, JsonObject};

// ---------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------

/// What the gateway needs to know about a chat request before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHead {
    /// The model the caller asked for (an alias the router resolves).
    pub model: String,
    /// `stream: true`: the response is SSE.
    pub stream: bool,
    /// The caller itself set `stream_options.include_usage: true`, so the
    /// usage chunk must reach it; otherwise the gateway injects the option
    /// for its own accounting and strips that chunk again.
    pub client_include_usage: bool,
}

/// Validates the fields the gateway relies on and returns them.
///
/// Checks that `model` is a non-empty string, `messages` a non-empty array
/// whose first element is an object, `stream` a boolean (or null/absent),
/// `stream_options` an object (or null/absent) whose `include_usage` is a
/// boolean if present. Later messages and their contents are left to the
/// provider: checking them would mean scanning the big part of the body a
/// second time (measured: it nearly doubles the cost of a 1 MiB image
/// request), while the byte checks here are O(1).
pub fn inspect_chat(obj: &JsonObject<'_>) -> Result<ChatHead, BodyError> {
    let model = required_string(obj, "model")?;
    check_messages(obj)?;
    let stream = optional_bool(obj.get("stream"), "stream")?;
    let client_include_usage = match obj.get("stream_options") {
        None => false,
        Some(raw) if is_null(raw) => false,
        Some(raw) => {
            let so = JsonObject::parse_raw(raw).map_err(|_| BodyError::InvalidField {
                field: "stream_options",
                expected: "an object",
            })?;
            optional_bool(so.get("include_usage"), "stream_options.include_usage")?
        }
    };
    Ok(ChatHead {
        model,
        stream,
        client_include_usage,
    })
}

/// Rewrites a validated chat request for the provider: `model` becomes the
/// provider's model id; when `stream` is true, `stream_options.include_usage`
/// is set to true (other `stream_options` keys of the caller are kept), so
/// the gateway can account tokens. Everything else, key order included, is
/// left as the caller sent it.
///
/// Fails only when `stream_options` is not an object (which
/// [`inspect_chat`] would already have reported).
pub fn rewrite_chat(obj: &mut JsonObject<'_>, upstream_model: &str, stream: bool) -> Result<(), BodyError> {
    let model = serde_json::value::to_raw_value(upstream_model).map_err(encode_error)?;
    obj.set_raw("model", model);
    if !stream {
        return Ok(());
    }
    let merged = match obj.get("stream_options") {
        Some(raw) if !is_null(raw) => {
            let mut so = JsonObject::parse_raw(raw).map_err(|_| BodyError::InvalidField {
                field: "stream_options",
                expected: "an object",
            })?;
            if so.get("include_usage").map(RawValue::get) == Some("true") {
                None
            } else {
                so.set_raw("include_usage", RawValue::TRUE.to_owned());
                Some(raw_from_vec(so.to_vec())?)
            }
        }
        _ => Some(raw_from_vec(br#"{"include_usage":true}"#.to_vec())?),
    };
    if let Some(m) = merged {
        obj.set_raw("stream_options", m);
    }
    Ok(())
}

fn raw_from_vec(v: Vec<u8>) -> Result<Box<RawValue>, BodyError> {
    let s = String::from_utf8(v).map_err(encode_error)?;
    RawValue::from_string(s).map_err(encode_error)
}

fn optional_bool(raw: Option<&RawValue>, field: &'static str) -> Result<bool, BodyError> {
    match raw.map(RawValue::get) {
        None | Some("null") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(BodyError::InvalidField {
            field,
            expected: "a boolean",
        }),
    }
}

fn check_messages(obj: &JsonObject<'_>) -> Result<(), BodyError> {
    let invalid = BodyError::InvalidField {
        field: "messages",
        expected: "a non-empty array of message objects",
    };
    let raw = match obj.get("messages") {
        Some(raw) if !is_null(raw) => raw,
        _ => return Err(BodyError::MissingField("messages")),
    };
    // Cheap byte checks: an array whose first element is an object. The
    // remaining elements are the provider's to validate; scanning them would
    // re-read megabytes of images we already validated as JSON.
    match raw.get().as_bytes().split_first() {
        Some((b'[', rest)) if skip_ws(rest).first() == Some(&b'{') => Ok(()),
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passthrough::tests::obj;

    const CHAT: &str = r#"{"model":"fast","temperature":0.2,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false},"user":"u1"}"#;

    #[test]
    fn inspect_chat_reads_head() {
        let head = inspect_chat(&obj(CHAT)).unwrap();
        assert_eq!(
            head,
            ChatHead {
                model: "fast".into(),
                stream: true,
                client_include_usage: false
            }
        );
        let head = inspect_chat(&obj(
            r#"{"model":"m","messages":[{}],"stream":null,"stream_options":{"include_usage":true}}"#,
        ))
        .unwrap();
        assert!(!head.stream);
        assert!(head.client_include_usage);
        let head = inspect_chat(&obj(
            r#"{"messages":[ {"role":"user"} ],"model":"m","stream_options":null}"#,
        ))
        .unwrap();
        assert!(!head.stream && !head.client_include_usage);
    }

    #[test]
    fn inspect_chat_rejects_bad_fields() {
        let cases: &[(&str, BodyError)] = &[
            (r#"{"messages":[{}]}"#, BodyError::MissingField("model")),
            (r#"{"model":null,"messages":[{}]}"#, BodyError::MissingField("model")),
            (r#"{"model":"m"}"#, BodyError::MissingField("messages")),
            (
                r#"{"model":7,"messages":[{}]}"#,
                BodyError::InvalidField {
                    field: "model",
                    expected: "a non-empty string",
                },
            ),
            (
                r#"{"model":"","messages":[{}]}"#,
                BodyError::InvalidField {
                    field: "model",
                    expected: "a non-empty string",
                },
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":{"role":"user"}}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":["hi"]}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream":"yes"}"#,
                BodyError::InvalidField {
                    field: "stream",
                    expected: "a boolean",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream_options":[true]}"#,
                BodyError::InvalidField {
                    field: "stream_options",
                    expected: "an object",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":1}}"#,
                BodyError::InvalidField {
                    field: "stream_options.include_usage",
                    expected: "a boolean",
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&inspect_chat(&obj(body)).unwrap_err(), want, "{body}");
        }
    }

    #[test]
    fn rewrite_chat_sets_model_and_merges_stream_options_in_place() {
        let mut o = obj(CHAT);
        rewrite_chat(&mut o, "gpt-4o-\"mini\"", true).unwrap();
        assert_eq!(
            String::from_utf8(o.to_vec()).unwrap(),
            r#"{"model":"gpt-4o-\"mini\"","temperature":0.2,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"user":"u1"}"#
        );
    }

    #[test]
    fn rewrite_chat_stream_options_cases() {
        let base = r#"{"model":"a","messages":[{}],"stream":true"#;
        let run = |extra: &str, stream: bool| {
            let body = format!("{base}{extra}}}");
            let mut o = JsonObject::parse(body.as_bytes()).unwrap();
            rewrite_chat(&mut o, "b", stream).unwrap();
            String::from_utf8(o.to_vec()).unwrap()
        };
        // Absent: appended at the end.
        assert_eq!(
            run("", true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        // Null: replaced in place.
        assert_eq!(
            run(r#","stream_options":null,"n":1"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true},"n":1}"#
        );
        // Explicit false: flipped, position of the key kept.
        assert_eq!(
            run(r#","stream_options":{"include_usage":false,"x":1}"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true,"x":1}}"#
        );
        // Already true: left byte-identical.
        assert_eq!(
            run(r#","stream_options":{ "include_usage" : true }"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{ "include_usage" : true }}"#
        );
        // Not streaming: stream_options untouched.
        assert_eq!(
            run(r#","stream_options":{"x":1}"#, false),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"x":1}}"#
        );
        let mut o = obj(r#"{"model":"a","stream_options":3}"#);
        assert_eq!(
            rewrite_chat(&mut o, "b", true).unwrap_err().param(),
            Some("stream_options")
        );
    }

    #[test]
    fn rewrite_keeps_big_values_byte_identical() {
        let image = "A".repeat(300_000);
        let body = format!(
            r#"{{"model":"x","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}]}}"#
        );
        let mut o = JsonObject::parse(body.as_bytes()).unwrap();
        inspect_chat(&o).unwrap();
        rewrite_chat(&mut o, "y", false).unwrap();
        let out = o.to_vec();
        assert_eq!(out.len(), body.len());
        assert_eq!(&out[..13], br#"{"model":"y","#);
        assert_eq!(&out[13..], &body.as_bytes()[13..]);
    }
}
