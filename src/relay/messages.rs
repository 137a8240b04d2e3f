//! `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic callers)
//! for every provider dialect.
//!
//! Anthropic providers take the native fast path: the body is forwarded
//! verbatim except `model`, `anthropic-version` / `anthropic-beta` are
//! preserved, and the stream passes through unchanged. Other providers get
//! the request decoded into the IR and the response encoded as a spec-exact
//! Anthropic event sequence.

use super::{build_request, exchange, upstream_path, Mode, Op};
use crate::config::Snapshot;
use crate::error::GatewayError;
use crate::proxy::{respond_json, Gateway, RequestCtx};
use bytes::Bytes;
use pingora_proxy::Session;
use switchyard_filters::anthropic::passthrough::inspect_messages;
use switchyard_filters::codec::{decode_request, encode_request};
use switchyard_filters::error::Dialect;
use switchyard_filters::estimate::input_tokens as estimate_input_tokens;
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::JsonObject;

/// Caller headers an Anthropic provider understands.
fn anthropic_headers(session: &Session) -> Vec<(&'static str, String)> {
    let h = &session.req_header().headers;
    let mut out = Vec::new();
    if let Some(v) = h.get("anthropic-version").and_then(|v| v.to_str().ok()) {
        out.push(("anthropic-version", v.to_string()));
    }
    for v in h.get_all("anthropic-beta") {
        if let Ok(v) = v.to_str() {
            out.push(("anthropic-beta", v.to_string()));
        }
    }
    out
}

fn model_json(model: &str) -> Result<Box<serde_json::value::RawValue>, GatewayError> {
    serde_json::value::to_raw_value(model).map_err(|e| GatewayError::InvalidRequest {
        message: format!("model name cannot be encoded: {e}"),
        param: Some("model".into()),
    })
}

/// Serves one Messages request.
pub async fn messages(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_messages(&obj)?;
    let route = super::route_for(g, ctx, snap, &head.model, &mut obj)?;
    let p = route.provider.clone();
    let wire = p.kind.wire();
    let (out, mode, passthrough) = if wire == WireDialect::Anthropic {
        obj.set_raw("model", model_json(&route.upstream_model)?);
        (obj.to_vec(), Mode::AnthropicPass, anthropic_headers(session))
    } else {
        let rewritten = route.defaults.as_ref().map(|_| obj.to_vec());
        drop(obj);
        let mut ir = decode_request(WireDialect::Anthropic, rewritten.as_deref().unwrap_or(&body))?;
        ir.model = route.upstream_model.clone();
        let out = encode_request(wire, &ir)?;
        let mode = Mode::Translate {
            upstream: wire,
            caller: Dialect::Anthropic,
            include_usage: false,
        };
        (out, mode, Vec::new())
    };
    let path = upstream_path(&p, Op::Chat { stream: head.stream }, &route.upstream_model);
    let req = build_request(&p, "POST", &path, out.len(), head.stream, &passthrough)?;
    exchange(g, session, ctx, &p, req, Bytes::from(out), mode).await
}

/// Counts input tokens: Anthropic providers answer themselves; for every
/// other provider the answer is the documented estimate of
/// [`estimate_input_tokens`] (about 4 characters per token plus fixed
/// per-message, per-tool and per-image overheads), flagged with the response
/// header `x-switchyard-token-count: estimate`.
pub async fn count_tokens(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_messages(&obj)?;
    let route = super::route_for(g, ctx, snap, &head.model, &mut obj)?;
    let p = route.provider.clone();
    if p.kind.wire() == WireDialect::Anthropic {
        obj.set_raw("model", model_json(&route.upstream_model)?);
        let out = obj.to_vec();
        let path = upstream_path(&p, Op::CountTokens, &route.upstream_model);
        let req = build_request(&p, "POST", &path, out.len(), false, &anthropic_headers(session))?;
        let mode = Mode::AnthropicPass;
        return exchange(g, session, ctx, &p, req, Bytes::from(out), mode).await;
    }
    drop(obj);
    let ir = decode_request(WireDialect::Anthropic, &body)?;
    let n = estimate_input_tokens(&ir);
    let out = serde_json::json!({"input_tokens": n}).to_string().into_bytes();
    let headers = vec![
        ("x-switchyard-token-count".to_string(), "estimate".to_string()),
        ("x-switchyard-provider".to_string(), p.name.clone()),
    ];
    respond_json(session, ctx, 200, out, &headers).await;
    Ok(())
}
