//! `POST /v1/chat/completions` (OpenAI callers) for every provider dialect.
//!
//! OpenAI-compatible providers take the fast path: only `model` and the
//! injected `stream_options` change, bytes stream through untouched. Anthropic
//! and Gemini providers get the request decoded into the IR and re-encoded.

use super::{build_request, exchange, upstream_path, Mode, Op};
use crate::config::Snapshot;
use crate::error::GatewayError;
use crate::proxy::{Gateway, RequestCtx};
use bytes::Bytes;
use pingora_proxy::Session;
use switchyard_filters::codec::{decode_request, encode_request};
use switchyard_filters::error::Dialect;
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::{inspect_chat, rewrite_chat, JsonObject};

/// Serves one chat completion request.
pub async fn chat(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_chat(&obj)?;
    let route = super::route_for(g, ctx, snap, &head.model, &mut obj)?;
    let p = route.provider.clone();
    let wire = p.kind.wire();
    let (out, mode) = if wire == WireDialect::OpenAi {
        rewrite_chat(&mut obj, &route.upstream_model, head.stream)?;
        let out = obj.to_vec();
        (
            out,
            Mode::OpenAiPass {
                strip_usage: !head.client_include_usage,
            },
        )
    } else {
        let rewritten = route.defaults.as_ref().map(|_| obj.to_vec());
        drop(obj);
        let mut ir = decode_request(WireDialect::OpenAi, rewritten.as_deref().unwrap_or(&body))?;
        ir.model = route.upstream_model.clone();
        let out = encode_request(wire, &ir)?;
        (
            out,
            Mode::Translate {
                upstream: wire,
                caller: Dialect::OpenAi,
                include_usage: ir.include_usage,
            },
        )
    };
    let path = upstream_path(&p, Op::Chat { stream: head.stream }, &route.upstream_model);
    let req = build_request(&p, "POST", &path, out.len(), head.stream, &[])?;
    exchange(g, session, ctx, &p, req, Bytes::from(out), mode).await
}
