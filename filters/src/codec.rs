//! Dialect dispatch: request decode/encode and non-stream response
//! translation. (Streams go through [`crate::stream::StreamProcessor`].)
//!
//! Every function here is pure: bytes and options in, bytes out. Time and ids
//! are passed in by the gateway (no clocks, no randomness), so every output is
//! reproducible and testable.

use crate::error::{Dialect, ErrorInfo};
use crate::ir::{ChatRequest, ChatResponse, WireDialect};
use crate::passthrough::JsonObject;
use crate::usage::Usage;
use crate::{anthropic, gemini, openai};
use std::fmt;

/// A request (or upstream body) the codecs cannot translate.
///
/// Carries the offending field so the gateway can answer 400 with OpenAI's
/// `param` and a message that says exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// What is wrong, for humans.
    pub message: String,
    /// The offending field as a JSON path (`messages[2].content`), if any.
    pub param: Option<String>,
}

impl CodecError {
    /// An invalid field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> CodecError {
        CodecError {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// A body-level problem (not JSON, wrong shape).
    pub fn body(message: impl Into<String>) -> CodecError {
        CodecError {
            message: message.into(),
            param: None,
        }
    }

    /// As an `invalid_request_error` for the caller (HTTP 400).
    pub fn to_error_info(&self) -> ErrorInfo {
        ErrorInfo {
            message: self.message.clone(),
            kind: "invalid_request_error",
            param: self.param.clone(),
            code: None,
            anthropic_kind: "invalid_request_error",
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} (param: {p})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CodecError {}

/// What the gateway knows about the caller-facing response that the upstream
/// body cannot say: the name the caller used, the id and time to report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseOptions {
    /// Model name to report (the caller's alias); `None` keeps the upstream's.
    pub model: Option<String>,
    /// Response id to report; `None` keeps the upstream's (or derives one).
    pub id: Option<String>,
    /// Unix seconds to report as OpenAI `created`.
    pub created: u64,
    /// OpenAI callers only: end the stream with a usage chunk
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Decodes a caller's chat request (OpenAI `/v1/chat/completions` or
/// Anthropic `/v1/messages` body), or a Gemini body for tests and tooling.
pub fn decode_request(dialect: WireDialect, body: &[u8]) -> Result<ChatRequest, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::decode_request(body),
        WireDialect::Anthropic => anthropic::decode_request(body),
        WireDialect::Gemini => gemini::decode_request(body),
    }
}

/// Decodes a caller's request from its already-parsed top level: each field's
/// raw value is decoded once, straight from the bytes the gateway validated
/// (the body is never parsed as a whole a second time).
pub fn decode_fields(dialect: WireDialect, obj: &JsonObject<'_>) -> Result<ChatRequest, CodecError> {
    let mut m = serde_json::Map::with_capacity(obj.len());
    for (k, raw) in obj.iter() {
        let v: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|e| CodecError::invalid(k, format!("`{k}` is not valid JSON: {e}")))?;
        m.insert(k.to_string(), v);
    }
    match dialect {
        WireDialect::OpenAi => openai::decode_map(m),
        WireDialect::Anthropic => anthropic::decode_map(m),
        WireDialect::Gemini => gemini::decode_map(m),
    }
}

/// Encodes a request for a provider of the given dialect. The model name is
/// taken from `req.model` (routing rewrites it first). For Gemini the model
/// and stream flag go in the URL, not the body.
pub fn encode_request(dialect: WireDialect, req: &ChatRequest) -> Result<Vec<u8>, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::encode_request(req),
        WireDialect::Anthropic => anthropic::encode_request(req),
        WireDialect::Gemini => gemini::encode_request(req),
    }
}

/// Decodes a provider's non-streamed response body.
pub fn decode_response(dialect: WireDialect, body: &[u8]) -> Result<ChatResponse, CodecError> {
    match dialect {
        WireDialect::OpenAi => openai::decode_response(body),
        WireDialect::Anthropic => anthropic::decode_response(body),
        WireDialect::Gemini => gemini::decode_response(body),
    }
}

/// Encodes a response in a caller's dialect.
pub fn encode_response(dialect: Dialect, resp: &ChatResponse, opts: &ResponseOptions) -> Vec<u8> {
    match dialect {
        Dialect::OpenAi => openai::encode_response(resp, opts),
        Dialect::Anthropic => anthropic::encode_response(resp, opts),
    }
}

/// Translates a successful non-streamed upstream body into the caller's
/// dialect, returning the new body and the usage to record.
pub fn translate_response(
    upstream: WireDialect,
    caller: Dialect,
    body: &[u8],
    opts: &ResponseOptions,
) -> Result<(Vec<u8>, Usage), CodecError> {
    let resp = decode_response(upstream, body)?;
    Ok((encode_response(caller, &resp, opts), resp.usage))
}

/// Small JSON accessors shared by the codecs: typed field reads that report
/// the offending `param` instead of panicking on unexpected input.
pub(crate) mod jv {
    use super::CodecError;
    use serde_json::{Map, Value};

    /// Parses a body as a JSON object.
    pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, CodecError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(CodecError::body("request body must be a JSON object")),
            Err(e) => Err(CodecError::body(format!("request body is not valid JSON: {e}"))),
        }
    }

    /// An optional string field; wrong type is an error.
    pub fn opt_str(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<String>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a string"))),
        }
    }

    /// An optional non-negative integer that fits u32.
    pub fn opt_u32(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<u32>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a non-negative integer"))),
        }
    }

    /// An optional number.
    pub fn opt_f64(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<f64>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a number"))),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, CodecError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a boolean"))),
        }
    }

    /// A field that must be an object.
    pub fn as_obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, CodecError> {
        v.as_object()
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an object")))
    }

    /// A field that must be an array.
    pub fn as_arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, CodecError> {
        v.as_array()
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an array")))
    }

    /// A required string inside an object.
    pub fn req_str<'a>(m: &'a Map<String, Value>, key: &str, param: &str) -> Result<&'a str, CodecError> {
        m.get(key)
            .and_then(|v| v.as_str())
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` is required and must be a string")))
    }

    /// Stop sequences: a string or an array of strings.
    pub fn stop_list(v: Option<&Value>, param: &str) -> Result<Vec<String>, CodecError> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must contain strings")))
                })
                .collect(),
            Some(_) => Err(CodecError::invalid(
                param,
                format!("`{param}` must be a string or an array of strings"),
            )),
        }
    }

    /// Reads a u64 at `key`, 0 when missing or not a number (usage counters).
    pub fn count(v: &Value, key: &str) -> u64 {
        v.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_from_parsed_fields_equals_decoding_the_body() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi \u00e9"}],"max_tokens":5,"seed":7}"#;
        let obj = JsonObject::parse(body).expect("object");
        assert_eq!(
            decode_fields(WireDialect::OpenAi, &obj),
            decode_request(WireDialect::OpenAi, body)
        );
        let a = br#"{"model":"c","max_tokens":9,"system":"s","messages":[{"role":"user","content":"x"}]}"#;
        let obj = JsonObject::parse(a).expect("object");
        assert_eq!(
            decode_fields(WireDialect::Anthropic, &obj),
            decode_request(WireDialect::Anthropic, a)
        );
    }
}
