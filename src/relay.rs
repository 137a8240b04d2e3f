//! Relaying LLM requests: validate and rewrite the body (filters crate), pick
//! the provider (route), run the upstream exchange, and hand the response back
//! — streamed chunk by chunk for SSE, never buffered.

use crate::config::{Provider, Snapshot};
use crate::error::GatewayError;
use crate::proxy::{respond_error, respond_json, Gateway, RequestCtx};
use crate::route::{public_models, resolve, Discovered};
use crate::upstream::Exchange;
use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use switchyard_filters::error::{render_openai, upstream_error_message, Dialect};
use switchyard_filters::passthrough::{
    fix_embeddings_encoding, inspect_chat, inspect_embeddings, response_usage, rewrite_chat,
    BodyError, JsonObject, OpenAiStreamPassthrough,
};

/// Largest non-streamed upstream response we accept (embeddings of big
/// batches are large; anything beyond this is a broken upstream).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// Largest upstream error body we read.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl From<BodyError> for GatewayError {
    fn from(e: BodyError) -> Self {
        match &e {
            BodyError::MalformedJson(m) => GatewayError::MalformedJson(m.clone()),
            _ => GatewayError::InvalidRequest {
                message: e.to_string(),
                param: e.param().map(str::to_string),
            },
        }
    }
}

/// `GET /v1/models` body: OpenAI list shape.
pub fn models_body(snap: &Snapshot, discovered: &Discovered) -> Vec<u8> {
    let data: Vec<serde_json::Value> = public_models(snap, discovered)
        .into_iter()
        .map(|(id, owner)| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    serde_json::json!({"object": "list", "data": data})
        .to_string()
        .into_bytes()
}

/// Path of an OpenAI-family operation at this provider.
fn upstream_path(p: &Provider, op: &str, model: &str) -> String {
    if p.azure_deployments() {
        let version = p.api_version.as_deref().unwrap_or("2024-10-21");
        format!(
            "{}/openai/deployments/{}/{op}?api-version={version}",
            p.base.path,
            encode_path_segment(model)
        )
    } else {
        format!("{}/{op}", p.base.path)
    }
}

fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The upstream request head: provider credential injected, the caller's never.
pub fn build_request(
    p: &Provider,
    method: &str,
    path: &str,
    body_len: usize,
    stream: bool,
) -> Result<RequestHeader, GatewayError> {
    let bad = |_| GatewayError::UpstreamProtocol {
        provider: p.name.clone(),
        detail: "could not build the upstream request".into(),
    };
    let mut req =
        RequestHeader::build(method, path.as_bytes(), Some(8 + p.headers.len())).map_err(bad)?;
    req.insert_header("host", p.base.host_header.as_str())
        .map_err(bad)?;
    req.insert_header(
        "user-agent",
        concat!("switchyard/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(bad)?;
    req.insert_header(
        "accept",
        if stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    )
    .map_err(bad)?;
    if method == "POST" {
        req.insert_header("content-type", "application/json")
            .map_err(bad)?;
        req.insert_header("content-length", body_len.to_string())
            .map_err(bad)?;
    }
    if let Some(key) = p.next_key() {
        let (name, value) = p.auth_style().header(key.expose());
        req.insert_header(name, value).map_err(bad)?;
    }
    for (k, v) in &p.headers {
        req.insert_header(k.clone(), v.as_str()).map_err(bad)?;
    }
    Ok(req)
}

/// Turns an upstream error status into our error (401/403 → 502: it is the
/// gateway's credential that failed, not the caller's).
async fn upstream_failure(
    g: &Gateway,
    p: &Provider,
    mut ex: Exchange,
) -> (GatewayError, Vec<(String, String)>) {
    let status = ex.status();
    let headers = ex.passthrough_headers();
    let body = ex.read_all(MAX_ERROR_BODY).await.unwrap_or_default();
    g.upstream.release(ex).await;
    let message = upstream_error_message(&body);
    let e = if status == 401 || status == 403 {
        GatewayError::UpstreamAuth {
            provider: p.name.clone(),
            status,
            message,
        }
    } else if (400..600).contains(&status) {
        GatewayError::UpstreamStatus {
            provider: p.name.clone(),
            status,
            message,
        }
    } else {
        GatewayError::UpstreamProtocol {
            provider: p.name.clone(),
            detail: format!("unexpected status {status}"),
        }
    };
    (e, headers)
}

/// `POST /v1/chat/completions` for OpenAI-compatible providers.
pub async fn chat(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_chat(&obj)?;
    ctx.model = Some(head.model.clone());
    let route = resolve(snap, &g.live.discovered(), &head.model)?;
    let p = route.provider.clone();
    ctx.provider = Some(p.name.clone());
    rewrite_chat(&mut obj, &route.upstream_model, head.stream)?;
    let out = Bytes::from(obj.to_vec());
    drop(obj);
    let path = upstream_path(&p, "chat/completions", &route.upstream_model);
    let req = build_request(&p, "POST", &path, out.len(), head.stream)?;
    let mut ex = g.upstream.send(&p, req, out).await?;
    if ex.status() >= 300 {
        let (e, headers) = upstream_failure(g, &p, ex).await;
        ctx.error = Some(e.kind());
        respond_error(session, ctx, &e, Dialect::OpenAi, &headers, false).await;
        return Ok(());
    }
    if ex.is_event_stream() {
        stream_openai(g, session, ctx, ex, !head.client_include_usage).await;
        return Ok(());
    }
    let body = ex.read_all(MAX_RESPONSE).await?;
    let headers = ex.passthrough_headers();
    g.upstream.release(ex).await;
    ctx.usage = response_usage(&body);
    respond_json(session, ctx, 200, body, &with_provider(headers, &p)).await;
    Ok(())
}

fn with_provider(mut headers: Vec<(String, String)>, p: &Provider) -> Vec<(String, String)> {
    headers.push(("x-switchyard-provider".into(), p.name.clone()));
    headers
}

/// Relays an OpenAI SSE stream: each completed event is written as soon as it
/// completes, in one write; usage is read on the way; the injected usage chunk
/// is removed when the client did not ask for it.
async fn stream_openai(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut ex: Exchange,
    strip_usage: bool,
) {
    let Some(p) = ctx.provider.clone() else {
        return;
    };
    let mut resp = match ResponseHeader::build(200, Some(6)) {
        Ok(r) => r,
        Err(_) => return,
    };
    let _ = resp.insert_header("content-type", "text/event-stream");
    let _ = resp.insert_header("cache-control", "no-cache");
    let _ = resp.insert_header("transfer-encoding", "chunked");
    let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
    let _ = resp.insert_header("x-switchyard-provider", p.as_str());
    for (k, v) in ex.passthrough_headers() {
        let _ = resp.append_header(k, v.as_str());
    }
    ctx.status = 200;
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
    {
        ctx.client_gone = true;
        return;
    }
    let mut pt = OpenAiStreamPassthrough::new(strip_usage);
    let mut out = Vec::with_capacity(8192);
    loop {
        out.clear();
        let end = match ex.read_chunk().await {
            Ok(Some(chunk)) => {
                pt.push(&chunk, &mut out);
                false
            }
            Ok(None) => {
                pt.finish(&mut out);
                true
            }
            Err(e) => {
                // Mid-stream failure: a protocol-correct error, then the end.
                pt.finish(&mut out);
                ctx.error = Some(e.kind());
                let body = render_openai(&e.info());
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\n\n");
                let _ = write_chunk(session, ctx, &out, true).await;
                ctx.usage = pt.usage();
                return;
            }
        };
        if ctx.ttft_ms.is_none() && pt.first_token_seen() {
            ctx.ttft_ms = Some(ctx.start.elapsed().as_secs_f64() * 1000.0);
        }
        if write_chunk(session, ctx, &out, end).await.is_err() {
            ctx.client_gone = true;
            ctx.usage = pt.usage();
            session.set_keepalive(None);
            return;
        }
        if end {
            break;
        }
    }
    ctx.usage = pt.usage();
    if let Some(m) = pt.error() {
        log::debug!("provider {p} sent an in-stream error: {m}");
        ctx.error = Some("upstream_stream_error");
    }
    g.upstream.release(ex).await;
}

async fn write_chunk(
    session: &mut Session,
    ctx: &mut RequestCtx,
    out: &[u8],
    end: bool,
) -> Result<(), ()> {
    if out.is_empty() && !end {
        return Ok(());
    }
    ctx.bytes_out += out.len();
    let data = if out.is_empty() {
        None
    } else {
        Some(Bytes::copy_from_slice(out))
    };
    session.write_response_body(data, end).await.map_err(|_| ())
}

/// `POST /v1/embeddings`, honouring `encoding_format` exactly.
pub async fn embeddings(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    body: Bytes,
) -> Result<(), GatewayError> {
    let mut obj = JsonObject::parse(&body)?;
    let head = inspect_embeddings(&obj)?;
    ctx.model = Some(head.model.clone());
    let route = resolve(snap, &g.live.discovered(), &head.model)?;
    let p = route.provider.clone();
    ctx.provider = Some(p.name.clone());
    let model_json = serde_json::value::to_raw_value(&route.upstream_model).map_err(|e| {
        GatewayError::InvalidRequest {
            message: format!("model name cannot be encoded: {e}"),
            param: Some("model".into()),
        }
    })?;
    obj.set_raw("model", model_json);
    let out = Bytes::from(obj.to_vec());
    drop(obj);
    let path = upstream_path(&p, "embeddings", &route.upstream_model);
    let req = build_request(&p, "POST", &path, out.len(), false)?;
    let mut ex = g.upstream.send(&p, req, out).await?;
    if ex.status() >= 300 {
        let (e, headers) = upstream_failure(g, &p, ex).await;
        ctx.error = Some(e.kind());
        respond_error(session, ctx, &e, Dialect::OpenAi, &headers, false).await;
        return Ok(());
    }
    let body = ex.read_all(MAX_RESPONSE).await?;
    let headers = ex.passthrough_headers();
    g.upstream.release(ex).await;
    let body = match fix_embeddings_encoding(&body, head.encoding) {
        Ok(Some(fixed)) => fixed,
        Ok(None) => body,
        Err(e) => {
            return Err(GatewayError::UpstreamProtocol {
                provider: p.name.clone(),
                detail: format!("embeddings response: {e}"),
            })
        }
    };
    ctx.usage = response_usage(&body);
    respond_json(session, ctx, 200, body, &with_provider(headers, &p)).await;
    Ok(())
}
