//! Relaying LLM requests: validate and rewrite the body (filters crate), pick
//! the provider (route), run the upstream exchange, and hand the response back
//! — streamed event by event for SSE, never buffered.
//!
//! One caller endpoint per file (`chat`, `messages`, `embeddings`); this file
//! holds what they share: upstream paths and headers per provider dialect,
//! error translation, and the response pump with its per-route [`Mode`].

mod chat;
mod embeddings;
mod messages;

pub use chat::chat;
pub use embeddings::embeddings;
pub use messages::{count_tokens, messages};

use crate::config::{Provider, Snapshot};
use crate::error::GatewayError;
use crate::proxy::{respond_error, respond_json, Gateway, RequestCtx};
use crate::route::{public_models, Discovered};
use crate::upstream::Exchange;
use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use switchyard_filters::anthropic::passthrough::response_usage as anthropic_usage;
use switchyard_filters::codec::{translate_response, CodecError, ResponseOptions};
use switchyard_filters::error::{upstream_error_message, Dialect};
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::{response_usage as openai_usage, BodyError};
use switchyard_filters::stream::{StreamProcessor, StreamSpec};
use switchyard_filters::usage::Usage;

/// Largest non-streamed upstream response we accept (embeddings of big
/// batches are large; anything beyond this is a broken upstream).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;
/// Largest upstream error body we read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// `anthropic-version` sent when the caller did not choose one.
const ANTHROPIC_VERSION: &str = "2023-06-01";

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

impl From<CodecError> for GatewayError {
    fn from(e: CodecError) -> Self {
        GatewayError::InvalidRequest {
            message: e.message,
            param: e.param,
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

/// An upstream operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Chat completions / messages / generateContent.
    Chat {
        /// Streamed response wanted.
        stream: bool,
    },
    /// Embeddings.
    Embeddings,
    /// Anthropic token counting.
    CountTokens,
    /// Model listing.
    Models,
}

/// Path of `op` for `model` at this provider, in its own dialect.
pub fn upstream_path(p: &Provider, op: Op, model: &str) -> String {
    let base = &p.base.path;
    match p.kind.wire() {
        WireDialect::OpenAi => {
            let name = match op {
                Op::Chat { .. } => "chat/completions",
                Op::Embeddings => "embeddings",
                Op::CountTokens => "chat/completions",
                Op::Models => "models",
            };
            if p.azure_deployments() && op != Op::Models {
                let version = p.api_version.as_deref().unwrap_or("2024-10-21");
                format!(
                    "{base}/openai/deployments/{}/{name}?api-version={version}",
                    encode_path_segment(model)
                )
            } else {
                format!("{base}/{name}")
            }
        }
        WireDialect::Anthropic => match op {
            Op::CountTokens => format!("{base}/v1/messages/count_tokens"),
            Op::Models => format!("{base}/v1/models"),
            Op::Chat { .. } | Op::Embeddings => format!("{base}/v1/messages"),
        },
        WireDialect::Gemini => {
            let m = encode_path_segment(model.strip_prefix("models/").unwrap_or(model));
            match op {
                Op::Chat { stream: true } => {
                    format!("{base}/models/{m}:streamGenerateContent?alt=sse")
                }
                Op::Chat { stream: false } => format!("{base}/models/{m}:generateContent"),
                Op::Embeddings => format!("{base}/models/{m}:batchEmbedContents"),
                Op::CountTokens => format!("{base}/models/{m}:countTokens"),
                Op::Models => format!("{base}/models"),
            }
        }
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

/// The upstream request head: provider credential injected, the caller's
/// never. `passthrough` carries caller headers the provider understands
/// (Anthropic's `anthropic-version` / `anthropic-beta` on the native path).
pub fn build_request(
    p: &Provider,
    method: &str,
    path: &str,
    body_len: usize,
    stream: bool,
    passthrough: &[(&'static str, String)],
) -> Result<RequestHeader, GatewayError> {
    let bad = |_| GatewayError::UpstreamProtocol {
        provider: p.name.clone(),
        detail: "could not build the upstream request".into(),
    };
    let mut req = RequestHeader::build(method, path.as_bytes(), Some(8 + p.headers.len())).map_err(bad)?;
    req.insert_header("host", p.base.host_header.as_str()).map_err(bad)?;
    req.insert_header("user-agent", concat!("switchyard/", env!("CARGO_PKG_VERSION")))
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
        req.insert_header("content-type", "application/json").map_err(bad)?;
        req.insert_header("content-length", body_len.to_string()).map_err(bad)?;
    }
    if let Some(key) = p.next_key() {
        let (name, value) = p.auth_style().header(key.expose());
        req.insert_header(name, value).map_err(bad)?;
    }
    if p.kind.wire() == WireDialect::Anthropic {
        let version = passthrough
            .iter()
            .find(|(k, _)| *k == "anthropic-version")
            .map_or(ANTHROPIC_VERSION, |(_, v)| v.as_str());
        req.insert_header("anthropic-version", version).map_err(bad)?;
        for (k, v) in passthrough.iter().filter(|(k, _)| *k == "anthropic-beta") {
            req.append_header(*k, v.as_str()).map_err(bad)?;
        }
    }
    for (k, v) in &p.headers {
        req.insert_header(k.clone(), v.as_str()).map_err(bad)?;
    }
    Ok(req)
}

/// Turns an upstream error status into our error (401/403 → 502: it is the
/// gateway's credential that failed, not the caller's).
async fn upstream_failure(g: &Gateway, p: &Provider, mut ex: Exchange) -> (GatewayError, Vec<(String, String)>) {
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

/// How a route's response is processed.
pub enum Mode {
    /// OpenAI caller, OpenAI-compatible provider: bytes pass unchanged;
    /// the injected usage chunk is removed unless the caller asked for it.
    OpenAiPass {
        /// Caller did not ask for the usage chunk.
        strip_usage: bool,
    },
    /// Anthropic caller, Anthropic provider: bytes pass unchanged.
    AnthropicPass,
    /// Different dialects: decode the provider's, encode the caller's.
    Translate {
        /// What the provider speaks.
        upstream: WireDialect,
        /// What the caller speaks.
        caller: Dialect,
        /// Caller asked for the OpenAI usage chunk.
        include_usage: bool,
    },
}

impl Mode {
    fn caller(&self) -> Dialect {
        match self {
            Mode::OpenAiPass { .. } => Dialect::OpenAi,
            Mode::AnthropicPass => Dialect::Anthropic,
            Mode::Translate { caller, .. } => *caller,
        }
    }

    fn response_options(include_usage: bool) -> ResponseOptions {
        ResponseOptions {
            model: None,
            id: None,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            include_usage,
        }
    }

    /// A whole (non-streamed) response body in the caller's dialect.
    fn body(&self, p: &Provider, body: Vec<u8>) -> Result<(Vec<u8>, Option<Usage>), GatewayError> {
        match self {
            Mode::OpenAiPass { .. } => {
                let u = openai_usage(&body);
                Ok((body, u))
            }
            Mode::AnthropicPass => {
                let u = anthropic_usage(&body);
                Ok((body, u))
            }
            Mode::Translate { upstream, caller, .. } => {
                let (out, u) =
                    translate_response(*upstream, *caller, &body, &Self::response_options(false)).map_err(|e| {
                        GatewayError::UpstreamProtocol {
                            provider: p.name.clone(),
                            detail: e.message,
                        }
                    })?;
                Ok((out, Some(u)))
            }
        }
    }

    fn stream(&self, provider: &str) -> StreamProcessor {
        let (upstream, caller, include_usage) = match self {
            Mode::OpenAiPass { strip_usage } => (WireDialect::OpenAi, Dialect::OpenAi, !*strip_usage),
            Mode::AnthropicPass => (WireDialect::Anthropic, Dialect::Anthropic, false),
            Mode::Translate {
                upstream,
                caller,
                include_usage,
            } => (*upstream, *caller, *include_usage),
        };
        StreamProcessor::new(StreamSpec::new(
            upstream,
            caller,
            provider,
            Self::response_options(include_usage),
        ))
    }
}

/// Sends the prepared request and answers the caller: an error in its
/// dialect, a whole body, or a stream relayed event by event.
pub async fn exchange(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    p: &Provider,
    req: RequestHeader,
    body: Bytes,
    mode: Mode,
) -> Result<(), GatewayError> {
    let mut ex = g.upstream.send(p, req, body).await?;
    ctx.upstream_status = Some(ex.status());
    if ex.status() >= 300 {
        let (e, headers) = upstream_failure(g, p, ex).await;
        ctx.error = Some(e.kind());
        respond_error(session, ctx, &e, mode.caller(), &headers, false).await;
        return Ok(());
    }
    if ex.is_event_stream() {
        relay_stream(g, session, ctx, p, ex, mode.stream(&p.name)).await;
        return Ok(());
    }
    let raw = ex.read_all(MAX_RESPONSE).await?;
    let headers = ex.passthrough_headers();
    g.upstream.release(ex).await;
    let (out, usage) = mode.body(p, raw)?;
    ctx.usage = usage;
    respond_json(session, ctx, 200, out, &with_provider(headers, p)).await;
    Ok(())
}

/// The routing step every endpoint shares: note the requested model,
/// resolve it (operator overrides first), record the route on the request,
/// and fill in the parameters an override pins.
pub(crate) fn route_for(
    g: &Gateway,
    ctx: &mut RequestCtx,
    snap: &Snapshot,
    model: &str,
    obj: &mut switchyard_filters::passthrough::JsonObject<'_>,
) -> Result<crate::route::Route, GatewayError> {
    ctx.model = Some(model.to_string());
    let route = crate::route::resolve_with_overrides(snap, &g.live.discovered(), &g.live.overrides(), model)?;
    ctx.routed(&route);
    apply_defaults(obj, route.defaults.as_ref());
    Ok(route)
}

/// Fills parameters an override pins, where the caller did not set them.
pub(crate) fn apply_defaults(
    obj: &mut switchyard_filters::passthrough::JsonObject<'_>,
    defaults: Option<&serde_json::Map<String, serde_json::Value>>,
) {
    for (k, v) in defaults.into_iter().flatten() {
        if obj.get(k).is_none() {
            if let Ok(raw) = serde_json::value::to_raw_value(v) {
                obj.set_raw(k, raw);
            }
        }
    }
}

pub(crate) fn with_provider(mut headers: Vec<(String, String)>, p: &Provider) -> Vec<(String, String)> {
    headers.push(("x-switchyard-provider".into(), p.name.clone()));
    headers
}

/// Relays an SSE stream: each completed event is written as soon as it
/// completes, in one write; usage is read on the way.
async fn relay_stream(
    g: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    p: &Provider,
    mut ex: Exchange,
    mut proc: StreamProcessor,
) {
    let Ok(mut resp) = ResponseHeader::build(200, Some(6)) else {
        return;
    };
    let _ = resp.insert_header("content-type", "text/event-stream");
    let _ = resp.insert_header("cache-control", "no-cache");
    let _ = resp.insert_header("transfer-encoding", "chunked");
    let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
    let _ = resp.insert_header("x-switchyard-provider", p.name.as_str());
    for (k, v) in ex.passthrough_headers() {
        let _ = resp.append_header(k, v.as_str());
    }
    ctx.status = 200;
    crate::proxy::close_if_shutting_down(session);
    if session.write_response_header(Box::new(resp), false).await.is_err() {
        ctx.client_gone = true;
        return;
    }
    let mut out = Vec::with_capacity(8192);
    let mut clean_end = false;
    loop {
        out.clear();
        let end = match ex.read_chunk().await {
            Ok(Some(chunk)) => {
                proc.push(&chunk, &mut out);
                false
            }
            Ok(None) => {
                proc.finish(None, &mut out);
                clean_end = true;
                true
            }
            Err(e) => {
                ctx.error = Some(e.kind());
                proc.finish(Some(e.info()), &mut out);
                true
            }
        };
        if ctx.ttft_ms.is_none() && proc.first_token_seen() {
            ctx.ttft_ms = Some(ctx.start.elapsed().as_secs_f64() * 1000.0);
        }
        if write_chunk(session, ctx, &out, end).await.is_err() {
            ctx.client_gone = true;
            session.set_keepalive(None);
            break;
        }
        if end {
            break;
        }
    }
    ctx.usage = Some(proc.usage().0);
    if let Some(f) = proc.failure() {
        if ctx.error.is_none() {
            ctx.error = Some(f.kind());
        }
    }
    if clean_end {
        g.upstream.release(ex).await;
    }
}

async fn write_chunk(session: &mut Session, ctx: &mut RequestCtx, out: &[u8], end: bool) -> Result<(), ()> {
    if out.is_empty() && !end {
        return Ok(());
    }
    ctx.bytes_out += out.len();
    crate::accounting::capture(ctx, out);
    let data = if out.is_empty() {
        None
    } else {
        Some(Bytes::copy_from_slice(out))
    };
    session.write_response_body(data, end).await.map_err(|_| ())
}
