//! Decoding a request once: the body is parsed into its top-level fields
//! (validated, values kept as borrowed raw JSON) and the head the gateway
//! decides on is read from them. Nothing later parses the body again: a
//! same-dialect request is rewritten field by field, a translated one is
//! decoded into the IR from these same fields, once.

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::providers::CallerHeaders;
use bytes::Bytes;
use http::HeaderMap;
use switchyard_filters::anthropic::passthrough::inspect_messages;
use switchyard_filters::codec::decode_fields;
use switchyard_filters::error::Dialect;
use switchyard_filters::ir::{ChatRequest, WireDialect};
use switchyard_filters::passthrough::{inspect_chat, inspect_embeddings, EmbeddingEncoding, JsonObject};

/// What kind of call it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// OpenAI chat completions.
    Chat,
    /// Anthropic Messages.
    Messages,
    /// Anthropic token counting.
    CountTokens,
    /// OpenAI embeddings.
    Embeddings,
}

/// A decoded request.
pub struct Request<'b> {
    /// The kind of call.
    pub call: Call,
    /// The top-level fields (rewritten in place for the provider).
    pub obj: JsonObject<'b>,
    /// The body as the caller sent it.
    pub body: &'b Bytes,
    /// The model the caller asked for.
    pub model: String,
    /// The caller asked for a stream.
    pub stream: bool,
    /// OpenAI chat: the caller itself asked for the usage chunk.
    pub include_usage: bool,
    /// Embeddings: the vector encoding the caller expects.
    pub encoding: EmbeddingEncoding,
    /// Caller headers a provider may understand.
    pub caller_headers: CallerHeaders,
    ir: Option<ChatRequest>,
}

impl<'b> Request<'b> {
    /// Parses `body` for `endpoint` (a routed endpoint) and reads its head.
    pub fn decode(endpoint: Endpoint, body: &'b Bytes, headers: &HeaderMap) -> Result<Request<'b>, GatewayError> {
        let obj = JsonObject::parse(body)?;
        let call = match endpoint {
            Endpoint::Messages => Call::Messages,
            Endpoint::CountTokens => Call::CountTokens,
            Endpoint::Embeddings => Call::Embeddings,
            _ => Call::Chat,
        };
        let mut r = Request {
            call,
            obj,
            body,
            model: String::new(),
            stream: false,
            include_usage: false,
            encoding: EmbeddingEncoding::Float,
            caller_headers: CallerHeaders::default(),
            ir: None,
        };
        match call {
            Call::Chat => {
                let head = inspect_chat(&r.obj)?;
                r.model = head.model;
                r.stream = head.stream;
                r.include_usage = head.client_include_usage;
            }
            Call::Messages | Call::CountTokens => {
                let head = inspect_messages(&r.obj)?;
                r.model = head.model;
                r.stream = head.stream && call == Call::Messages;
                r.caller_headers = anthropic_headers(headers);
            }
            Call::Embeddings => {
                let head = inspect_embeddings(&r.obj)?;
                r.model = head.model;
                r.encoding = head.encoding;
            }
        }
        Ok(r)
    }

    /// The caller's dialect.
    pub fn dialect(&self) -> Dialect {
        match self.call {
            Call::Messages | Call::CountTokens => Dialect::Anthropic,
            Call::Chat | Call::Embeddings => Dialect::OpenAi,
        }
    }

    /// The request in canonical form, decoded from the parsed fields the
    /// first time a translating attempt needs it.
    pub fn ir(&mut self) -> Result<&ChatRequest, GatewayError> {
        if self.ir.is_none() {
            let dialect = WireDialect::from(self.dialect());
            self.ir = Some(decode_fields(dialect, &self.obj)?);
        }
        self.ir.as_ref().ok_or_else(|| GatewayError::InvalidRequest {
            message: "request could not be decoded".into(),
            param: None,
        })
    }

    /// [`Request::ir`], mutable (an attempt sets the upstream model on it for
    /// the encode, then puts the caller's back).
    pub fn ir_mut(&mut self) -> Result<&mut ChatRequest, GatewayError> {
        self.ir()?;
        self.ir.as_mut().ok_or_else(|| GatewayError::InvalidRequest {
            message: "request could not be decoded".into(),
            param: None,
        })
    }

    /// Fills parameters an operator override pins, where the caller did not
    /// set them (on the parsed fields: nothing is re-serialised).
    pub fn apply_defaults(&mut self, defaults: Option<&serde_json::Map<String, serde_json::Value>>) {
        let mut changed = false;
        for (k, v) in defaults.into_iter().flatten() {
            if self.obj.get(k).is_none() {
                if let Ok(raw) = serde_json::value::to_raw_value(v) {
                    self.obj.set_raw(k, raw);
                    changed = true;
                }
            }
        }
        if changed {
            self.ir = None;
        }
    }
}

/// `anthropic-version` and every `anthropic-beta` the caller sent.
fn anthropic_headers(h: &HeaderMap) -> CallerHeaders {
    CallerHeaders {
        anthropic_version: h
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        anthropic_beta: h
            .get_all("anthropic-beta")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_once_and_defaults_fill_only_what_is_missing() {
        let body =
            Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#);
        let mut r = Request::decode(Endpoint::Chat, &body, &HeaderMap::new()).expect("decodes");
        assert_eq!((r.model.as_str(), r.stream, r.dialect()), ("m", false, Dialect::OpenAi));
        let mut d = serde_json::Map::new();
        d.insert("temperature".into(), serde_json::json!(0.0));
        d.insert("max_tokens".into(), serde_json::json!(7));
        r.apply_defaults(Some(&d));
        assert_eq!(r.obj.get("temperature").map(|v| v.get()), Some("0.5"));
        assert_eq!(r.ir().expect("ir").max_tokens, Some(7));
        let bad = Bytes::from_static(b"{\"model\":");
        assert!(matches!(
            Request::decode(Endpoint::Chat, &bad, &HeaderMap::new()),
            Err(GatewayError::MalformedJson(_))
        ));
    }

    #[test]
    fn count_tokens_never_streams_and_keeps_anthropic_headers() {
        let body = Bytes::from_static(br#"{"model":"c","messages":[],"stream":true}"#);
        let mut h = HeaderMap::new();
        h.insert("anthropic-version", "2023-06-01".parse().expect("v"));
        let r = Request::decode(Endpoint::CountTokens, &body, &h).expect("decodes");
        assert!(!r.stream);
        assert_eq!(r.caller_headers.anthropic_version.as_deref(), Some("2023-06-01"));
    }
}
