//! The one `ProxyHttp` implementation: Pingora accepts, parses HTTP and keeps
//! connections alive; `request_filter` answers every request itself (locally or
//! through [`crate::relay`]), so the proxy phases after it never run.
//!
//! Why not `upstream_peer` + body filters: see `upstream.rs` (the 64 KiB
//! pre-read trap). Pingora still gives us the listener, HTTP/1.1 and h2c
//! parsing, keep-alive, graceful shutdown/upgrade, and `logging`.

use crate::error::GatewayError;
use crate::live::Live;
use crate::relay;
use crate::store::Store;
use crate::upstream::Upstream;
use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result as PResult};
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchyard_filters::error::Dialect;
use switchyard_filters::usage::Usage;

/// Per-request state, reported by `logging`.
pub struct RequestCtx {
    /// Request id (also sent as `x-request-id`).
    pub request_id: String,
    /// When the request head arrived.
    pub start: Instant,
    /// Which endpoint matched.
    pub endpoint: &'static str,
    /// Model the caller asked for.
    pub model: Option<String>,
    /// Provider that served it.
    pub provider: Option<String>,
    /// Status we answered.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes written.
    pub bytes_out: usize,
    /// Usage reported by the provider.
    pub usage: Option<Usage>,
    /// Time to first token (streams).
    pub ttft_ms: Option<f64>,
    /// Error kind, if the request failed.
    pub error: Option<&'static str>,
    /// The client went away before the end of the response.
    pub client_gone: bool,
    /// The caller's API dialect (errors are rendered in it).
    pub dialect: Dialect,
    /// Provider type of the route (`openai`, `anthropic`, …).
    pub provider_type: Option<String>,
    /// Model name sent upstream.
    pub upstream_model: Option<String>,
    /// Status the provider answered.
    pub upstream_status: Option<u16>,
    /// `X-Switchyard-User-Path`, validated.
    pub user_path: String,
    /// `X-Switchyard-Tags`, validated.
    pub tags: Vec<(String, String)>,
    /// Request body kept for the audit log (only with audit bodies on).
    pub req_capture: Option<Vec<u8>>,
    /// Response body kept for the audit log (only with audit bodies on).
    pub resp_capture: Option<Vec<u8>>,
    /// An audit body was cut at the cap.
    pub bodies_truncated: bool,
    /// Counts this request in `switchyard_in_flight_requests` until dropped.
    pub in_flight: Option<crate::metrics::InFlight>,
}

impl RequestCtx {
    /// Records where the request was routed.
    pub fn routed(&mut self, route: &crate::route::Route) {
        self.provider = Some(route.provider.name.clone());
        self.provider_type = Some(route.provider.kind.to_string());
        self.upstream_model = Some(route.upstream_model.clone());
    }
}

/// Process-wide services the proxy reports to.
pub struct Services {
    /// Usage/audit queue to the store.
    pub recorder: crate::recorder::Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Live request stream.
    pub hub: Arc<crate::admin::live::LiveHub>,
    /// Recent per-provider latency/errors.
    pub stats: Arc<crate::admin::stats::ProviderStats>,
    /// Config reloads (refresh endpoint).
    pub reloader: Arc<crate::reload::Reloader>,
    /// Price lookup for `/admin/models`.
    pub prices: Arc<crate::admin::PriceFn>,
}

/// The gateway's shared state for the proxy service.
pub struct Gateway {
    /// Live config + discovered models.
    pub live: Arc<Live>,
    /// Upstream connector pool + DNS cache.
    pub upstream: Upstream,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Recorder, metrics, live hub, stats, reloader.
    pub svc: Services,
    ids: AtomicU64,
    id_prefix: u64,
}

impl Gateway {
    /// Builds the proxy state.
    pub fn new(live: Arc<Live>, store: Arc<dyn Store>, svc: Services) -> Self {
        let ttl = live.snapshot().dns_ttl;
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()) << 40;
        Gateway {
            live,
            upstream: Upstream::new(ttl),
            store,
            svc,
            ids: AtomicU64::new(0),
            id_prefix,
        }
    }
}

/// Which endpoint a request targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /health`
    Health,
    /// `GET /health/ready`
    Ready,
    /// `GET /v1/models`
    Models,
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/messages` (Anthropic Messages API)
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
}

/// Matches method + path; `Err` carries the error to answer.
pub fn match_endpoint(method: &str, path: &str) -> Result<Endpoint, GatewayError> {
    let (ep, allowed) = match path {
        "/health" => (Endpoint::Health, "GET"),
        "/health/ready" => (Endpoint::Ready, "GET"),
        "/v1/models" => (Endpoint::Models, "GET"),
        "/v1/chat/completions" => (Endpoint::Chat, "POST"),
        "/v1/embeddings" => (Endpoint::Embeddings, "POST"),
        "/v1/messages" => (Endpoint::Messages, "POST"),
        "/v1/messages/count_tokens" => (Endpoint::CountTokens, "POST"),
        _ => return Err(GatewayError::RouteNotFound(path.to_string())),
    };
    if method == allowed || (allowed == "GET" && method == "HEAD") {
        Ok(ep)
    } else {
        Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
        })
    }
}

impl Endpoint {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::Ready => "ready",
            Endpoint::Models => "models",
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
        }
    }

    /// The API dialect callers of this endpoint speak.
    pub fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Anthropic,
            Endpoint::Health | Endpoint::Ready | Endpoint::Models | Endpoint::Chat | Endpoint::Embeddings => {
                Dialect::OpenAi
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        RequestCtx {
            request_id: format!("{:016x}{:08x}", self.id_prefix, n),
            start: Instant::now(),
            endpoint: "unknown",
            model: None,
            provider: None,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            usage: None,
            ttft_ms: None,
            error: None,
            client_gone: false,
            dialect: Dialect::OpenAi,
            provider_type: None,
            upstream_model: None,
            upstream_status: None,
            user_path: String::new(),
            tags: Vec::new(),
            req_capture: None,
            resp_capture: None,
            bodies_truncated: false,
            in_flight: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> PResult<bool> {
        ctx.start = Instant::now();
        ctx.in_flight = Some(self.svc.metrics.in_flight());
        if let Err(e) = self.dispatch(session, ctx).await {
            ctx.error = Some(e.kind());
            if ctx.status == 0 {
                // Nothing sent yet: answer with the error in the caller's dialect.
                let dialect = ctx.dialect;
                respond_error(session, ctx, &e, dialect, &[], false).await;
            }
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> PResult<Box<HttpPeer>> {
        // Unreachable: request_filter always answers. Fail loudly, not silently.
        Error::e_explain(
            ErrorType::InternalError,
            "switchyard answers every request in request_filter",
        )
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Client disconnects are normal for an API gateway; we log our own line.
        matches!(
            error.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError | ErrorType::ReadTimedout
        )
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::accounting::finish(self, session, ctx);
        ctx.in_flight = None;
    }
}

impl Gateway {
    async fn dispatch(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let method = session.req_header().method.as_str().to_string();
        let path = session.req_header().uri.path().to_string();
        if path.starts_with("/v1/messages") {
            ctx.dialect = Dialect::Anthropic;
        }
        if path == "/metrics" || path.starts_with("/admin/") {
            return self.local(session, ctx, &method, &path).await;
        }
        let endpoint = match match_endpoint(&method, &path) {
            Ok(ep) => ep,
            Err(e) => {
                drain_body(session, self.live.snapshot().max_body_bytes).await;
                return Err(e);
            }
        };
        ctx.endpoint = endpoint.label();
        ctx.dialect = endpoint.dialect();
        let snap = self.live.snapshot();
        match endpoint {
            Endpoint::Health => {
                respond_json(session, ctx, 200, br#"{"status":"ok"}"#.to_vec(), &[]).await;
                Ok(())
            }
            Endpoint::Ready => {
                self.store.health().map_err(GatewayError::NotReady)?;
                respond_json(session, ctx, 200, br#"{"status":"ready"}"#.to_vec(), &[]).await;
                Ok(())
            }
            Endpoint::Models | Endpoint::Chat | Endpoint::Embeddings | Endpoint::Messages | Endpoint::CountTokens => {
                if let Err(e) = authorize(session, snap.master_key.as_ref().map(|k| k.expose())) {
                    drain_body(session, snap.max_body_bytes).await;
                    return Err(e);
                }
                if endpoint == Endpoint::Models {
                    let body = relay::models_body(&snap, &self.live.discovered());
                    respond_json(session, ctx, 200, body, &[]).await;
                    return Ok(());
                }
                attribute(session, ctx)?;
                let body = read_body(session, snap.max_body_bytes).await?;
                ctx.bytes_in = body.len();
                if snap.audit_bodies {
                    ctx.req_capture = Some(body[..body.len().min(crate::accounting::AUDIT_BODY_CAP)].to_vec());
                    ctx.bodies_truncated = body.len() > crate::accounting::AUDIT_BODY_CAP;
                    ctx.resp_capture = Some(Vec::new());
                }
                match endpoint {
                    Endpoint::Chat => relay::chat(self, session, ctx, &snap, body).await,
                    Endpoint::Embeddings => relay::embeddings(self, session, ctx, &snap, body).await,
                    Endpoint::Messages => relay::messages(self, session, ctx, &snap, body).await,
                    Endpoint::CountTokens => relay::count_tokens(self, session, ctx, &snap, body).await,
                    Endpoint::Health | Endpoint::Ready | Endpoint::Models => Ok(()),
                }
            }
        }
    }
}

impl Gateway {
    /// `/metrics` and `/admin/*`, answered locally.
    async fn local(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        method: &str,
        path: &str,
    ) -> Result<(), GatewayError> {
        let snap = self.live.snapshot();
        if path == "/metrics" {
            ctx.endpoint = "metrics";
            drain_body(session, snap.max_body_bytes).await;
            if method != "GET" && method != "HEAD" {
                return Err(GatewayError::MethodNotAllowed {
                    method: method.to_string(),
                    path: path.to_string(),
                });
            }
            let (ctype, body) = self.svc.metrics.render();
            respond_json(session, ctx, 200, body, &[("content-type".to_string(), ctype)]).await;
            return Ok(());
        }
        ctx.endpoint = "admin";
        if let Err(e) = crate::admin::serve::authorize_admin(session, snap.master_key.as_ref().map(|k| k.expose())) {
            drain_body(session, snap.max_body_bytes).await;
            return Err(e);
        }
        let body = read_body(session, snap.max_body_bytes).await?;
        crate::admin::serve::serve(self, session, ctx, path, body).await;
        Ok(())
    }
}

/// Validates the attribution headers (400 in the caller's dialect if bad).
fn attribute(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    use switchyard_filters::attribution::{parse_tags, parse_user_path};
    let h = &session.req_header().headers;
    let text = |name: &str| -> Result<Option<&str>, GatewayError> {
        match h.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| GatewayError::InvalidRequest {
                message: format!("header {name} must be visible ASCII"),
                param: Some(name.to_string()),
            }),
        }
    };
    let bad = |e: switchyard_filters::attribution::AttributionError| GatewayError::InvalidRequest {
        message: e.to_string(),
        param: Some(e.header().to_string()),
    };
    if let Some(p) = text("x-switchyard-user-path")? {
        ctx.user_path = parse_user_path(p).map_err(bad)?;
    }
    if let Some(t) = text("x-switchyard-tags")? {
        ctx.tags = parse_tags(t).map_err(bad)?;
    }
    Ok(())
}

/// The credential a caller presented: `Authorization: Bearer` (OpenAI SDKs,
/// new Anthropic SDKs) or `x-api-key` (older Anthropic clients, Vercel).
pub fn presented_key(session: &Session) -> Option<&str> {
    let h = &session.req_header().headers;
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Checks `Authorization: Bearer <master key>` in constant time.
fn authorize(session: &Session, master: Option<&str>) -> Result<(), GatewayError> {
    let Some(master) = master else { return Ok(()) };
    let h = session.req_header();
    // OpenAI SDKs send `Authorization: Bearer`; Anthropic SDKs send either
    // that or `x-api-key` (the Vercel AI SDK).
    let presented = h
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| h.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    match presented {
        None => Err(GatewayError::Unauthorized(
            "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`) with the gateway key",
        )),
        Some(k) if constant_time_eq(k.as_bytes(), master.as_bytes()) => Ok(()),
        Some(_) => Err(GatewayError::Unauthorized("Invalid API key for this gateway")),
    }
}

/// Compares without an early exit, so timing does not reveal the prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// How much of an oversized body we read and discard so the client sees our
/// 413 instead of a reset; beyond it the connection is closed.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// Reads the whole request body, refusing more than `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain_body(session, DRAIN_CAP).await;
        return Err(GatewayError::BodyTooLarge(limit));
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    drain_body(session, DRAIN_CAP).await;
                    return Err(GatewayError::BodyTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(GatewayError::InvalidRequest {
                    message: format!("could not read the request body: {}", e.etype().as_str()),
                    param: None,
                })
            }
        }
    }
}

/// Reads and discards a small unread body so the connection stays reusable.
async fn drain_body(session: &mut Session, limit: usize) {
    let mut seen = 0usize;
    while let Ok(Some(c)) = session.read_request_body().await {
        seen += c.len();
        if seen > limit {
            session.set_keepalive(None);
            return;
        }
    }
}

/// Writes a complete JSON response.
pub async fn respond_json(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    body: Vec<u8>,
    headers: &[(String, String)],
) {
    let Ok(mut resp) = ResponseHeader::build(status, Some(4 + headers.len())) else {
        return;
    };
    let _ = resp.insert_header("content-type", "application/json");
    let _ = resp.insert_header("content-length", body.len().to_string());
    let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
    for (k, v) in headers {
        let _ = resp.append_header(k.clone(), v.as_str());
    }
    ctx.status = status;
    ctx.bytes_out = body.len();
    crate::accounting::capture(ctx, &body);
    close_if_shutting_down(session);
    let head_only = session.req_header().method == http::Method::HEAD;
    if session.write_response_header(Box::new(resp), head_only).await.is_err() {
        ctx.client_gone = true;
        return;
    }
    if !head_only
        && session
            .write_response_body(Some(Bytes::from(body)), true)
            .await
            .is_err()
    {
        ctx.client_gone = true;
    }
}

/// During a graceful stop or upgrade, answers with `Connection: close` so
/// keep-alive clients open their next request on a new connection (served
/// by the new process) instead of racing the old one closing this one.
pub fn close_if_shutting_down(session: &mut Session) {
    if session.is_process_shutting_down() {
        session.set_keepalive(None);
    }
}

/// Writes an error in the caller's dialect.
pub async fn respond_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    e: &GatewayError,
    dialect: Dialect,
    headers: &[(String, String)],
    close: bool,
) {
    if close {
        session.set_keepalive(None);
    }
    let mut hs = headers.to_vec();
    if let GatewayError::MethodNotAllowed { path, .. } = e {
        let allow = match match_endpoint("GET", path) {
            Ok(_) => "GET, HEAD",
            Err(_) => "POST",
        };
        hs.push(("allow".into(), allow.into()));
    }
    respond_json(session, ctx, e.status(), e.body(dialect), &hs).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_methods() {
        assert_eq!(match_endpoint("POST", "/v1/chat/completions"), Ok(Endpoint::Chat));
        assert!(matches!(
            match_endpoint("GET", "/v1/chat/completions"),
            Err(GatewayError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            match_endpoint("GET", "/v2/x"),
            Err(GatewayError::RouteNotFound(_))
        ));
        assert_eq!(match_endpoint("HEAD", "/health"), Ok(Endpoint::Health));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
