//! `POST /v1/embeddings` for OpenAI-compatible and Gemini providers,
//! honouring `encoding_format` exactly (the Node OpenAI SDK asks for base64
//! by default and silently makes garbage of a float answer).

use super::{build_request, upstream_path, with_provider, Op, MAX_RESPONSE};
use crate::config::Snapshot;
use crate::error::GatewayError;
use crate::proxy::{respond_error, respond_json, Gateway, RequestCtx};
use bytes::Bytes;
use pingora_proxy::Session;
use switchyard_filters::error::Dialect;
use switchyard_filters::gemini::{embeddings_request, embeddings_response};
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::{fix_embeddings_encoding, inspect_embeddings, response_usage, JsonObject};

/// Serves one embeddings request.
pub async fn embeddings(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_embeddings(&obj)?;
    let route = super::route_for(g, ctx, snap, &head.model, &mut obj)?;
    let p = route.provider.clone();
    let (out, gemini_meta) = match p.kind.wire() {
        WireDialect::OpenAi => {
            let model =
                serde_json::value::to_raw_value(&route.upstream_model).map_err(|e| GatewayError::InvalidRequest {
                    message: format!("model name cannot be encoded: {e}"),
                    param: Some("model".into()),
                })?;
            obj.set_raw("model", model);
            (obj.to_vec(), None)
        }
        WireDialect::Gemini => {
            drop(obj);
            let (out, meta) = embeddings_request(&body, &route.upstream_model)?;
            (out, Some(meta))
        }
        WireDialect::Anthropic => {
            return Err(GatewayError::InvalidRequest {
                message: format!(
                    "provider `{}` (anthropic) has no embeddings API; route this model to an embeddings provider",
                    p.name
                ),
                param: Some("model".into()),
            })
        }
    };
    let path = upstream_path(&p, Op::Embeddings, &route.upstream_model);
    let req = build_request(&p, "POST", &path, out.len(), false, &[])?;
    let mut ex = g.upstream.send(&p, req, Bytes::from(out)).await?;
    ctx.upstream_status = Some(ex.status());
    if ex.status() >= 300 {
        let (e, headers) = super::upstream_failure(g, &p, ex).await;
        ctx.error = Some(e.kind());
        respond_error(session, ctx, &e, Dialect::OpenAi, &headers, false).await;
        return Ok(());
    }
    let raw = ex.read_all(MAX_RESPONSE).await?;
    let headers = ex.passthrough_headers();
    g.upstream.release(ex).await;
    let bad = |detail: String| GatewayError::UpstreamProtocol {
        provider: p.name.clone(),
        detail: format!("embeddings response: {detail}"),
    };
    let (body, usage) = match gemini_meta {
        Some(meta) => {
            let (b, u) = embeddings_response(&raw, &meta).map_err(|e| bad(e.message))?;
            (b, Some(u))
        }
        None => {
            let b = match fix_embeddings_encoding(&raw, head.encoding) {
                Ok(Some(fixed)) => fixed,
                Ok(None) => raw,
                Err(e) => return Err(bad(e.to_string())),
            };
            let u = response_usage(&b);
            (b, u)
        }
    };
    ctx.usage = usage;
    respond_json(session, ctx, 200, body, &with_provider(headers, &p)).await;
    Ok(())
}
