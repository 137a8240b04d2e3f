//! Dialect dispatch: request decode/encode and non-stream response
//! translation. (Streams go through [`crate::stream::StreamProcessor`].)
//!
//! Every function here is pure: bytes and options in, bytes out. Time and ids
//! are passed in by the gateway (no clocks, no randomness), so every output is
//! reproducible and testable.

use crate::error::Dialect;
use crate::ir::{ChatRequest, ChatResponse, WireDialect};
pub use crate::ir::{CodecError, ResponseOptions};
use crate::passthrough::JsonObject;
use crate::usage::Usage;
use crate::{anthropic, gemini, openai};

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
    match dialect {
        WireDialect::OpenAi => openai::decode_fields(obj),
        WireDialect::Anthropic => anthropic::decode_map(fields_map(obj)?),
        WireDialect::Gemini => gemini::decode_map(fields_map(obj)?),
    }
}

/// The top-level fields of an already-parsed object as a JSON map, each raw
/// value decoded once.
pub fn fields_map(obj: &JsonObject<'_>) -> Result<serde_json::Map<String, serde_json::Value>, CodecError> {
    let mut m = serde_json::Map::with_capacity(obj.len());
    for (k, raw) in obj.iter() {
        let v: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|e| CodecError::invalid(k, format!("`{k}` is not valid JSON: {e}")))?;
        m.insert(k.to_string(), v);
    }
    Ok(m)
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
