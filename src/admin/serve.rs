//! The Pingora side of `/admin/*` and the metrics-only listener:
//! authentication (master key, or loopback-only when no key is configured),
//! the live SSE stream, config refresh, model overrides, and delegation of
//! the JSON endpoints to [`super::handle`].

use super::{blocking, AdminCtx, AdminError, AdminResponse};
use crate::error::GatewayError;
use crate::http;
use crate::principal::authenticate_admin;
use crate::state::Gateway;
use crate::store::ModelOverride;
use crate::summary::RequestSummary;
use bytes::Bytes;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use serde_json::{json, Value};
use std::time::Duration;

/// Heartbeat interval of the live stream (keeps proxies from timing it out).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Serves one admin request: authenticates it (the master key when one is
/// set, else loopback clients only), reads its body, answers.
pub async fn serve(g: &Gateway, session: &mut Session, s: &mut RequestSummary) -> Result<(), GatewayError> {
    let snap = g.live.snapshot();
    let loopback = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .is_some_and(|a| a.ip().is_loopback());
    match authenticate_admin(
        &session.req_header().headers,
        snap.master_key.as_ref(),
        &g.governance.keys,
        loopback,
    ) {
        Ok(p) => s.principal = Some(p),
        Err(e) => {
            http::drain_body(session, snap.max_body_bytes).await;
            return Err(e);
        }
    }
    let body = http::read_body(session, snap.max_body_bytes, snap.server.body_timeout).await?;
    let method = session.req_header().method.as_str().to_string();
    let path = session.req_header().uri.path().to_string();
    let query = session.req_header().uri.query().map(str::to_string);
    if path == "/admin/live/logs" {
        if method != "GET" {
            let r = AdminError::MethodNotAllowed { allow: "GET" }.response();
            send(session, s, r).await;
            return Ok(());
        }
        live(g, session, s).await;
        return Ok(());
    }
    if path == "/admin/runtime/flush" {
        // Writes every queued usage record and audit entry now (tests, and
        // operators before a backup); answers how many were written.
        let r = if method == "POST" {
            settle(g).await;
            match g.svc.recorder.flush_now().await {
                Ok(n) => AdminResponse::ok(&json!({"written": n})),
                Err(e) => AdminError::Store(e.to_string()).response(),
            }
        } else {
            AdminError::MethodNotAllowed { allow: "POST" }.response()
        };
        send(session, s, r).await;
        return Ok(());
    }
    if path == "/admin/runtime/store" {
        let r = if method == "GET" {
            AdminResponse::ok(&store_state(g))
        } else {
            AdminError::MethodNotAllowed { allow: "GET" }.response()
        };
        send(session, s, r).await;
        return Ok(());
    }
    let resp = if path == "/admin/runtime/refresh" {
        if method == "POST" {
            let r = refresh(g);
            let change = (r.status < 300).then(|| "config.reload".to_string());
            audit_change(g, session, s, &method, &path, r.status, change);
            r
        } else {
            AdminError::MethodNotAllowed { allow: "POST" }.response()
        }
    } else if path == "/admin/model-overrides" || path.starts_with("/admin/model-overrides/") {
        let r = overrides(g, &method, &path, &body).await;
        let change = (r.status < 300 && matches!(method.as_str(), "PUT" | "DELETE")).then(|| {
            let name = path
                .trim_start_matches("/admin/model-overrides")
                .trim_start_matches('/');
            format!("override.{} {name}", method.to_ascii_lowercase())
        });
        audit_change(g, session, s, &method, &path, r.status, change);
        r
    } else if path == "/admin/keys" || path.starts_with("/admin/keys/") {
        let before = (g.governance.admin_keys(), g.governance.admin_budgets());
        let done = super::keys::keys(&g.governance, &snap.data_dir, &method, &path, &body);
        let (r, change) = super::keys::share(&g.governance, &snap.data_dir, before, done).await;
        audit_change(g, session, s, &method, &path, r.status, change);
        r
    } else if path == "/admin/budgets" || path.starts_with("/admin/budgets/") {
        let before = (g.governance.admin_keys(), g.governance.admin_budgets());
        let done = super::keys::budgets(&g.governance, &snap.data_dir, &method, &path, &body).await;
        let (r, change) = super::keys::share(&g.governance, &snap.data_dir, before, done).await;
        audit_change(g, session, s, &method, &path, r.status, change);
        r
    } else {
        let actx = AdminCtx {
            store: g.store.clone(),
            snapshot: snap.clone(),
            discovered: g.live.discovered(),
            provider_stats: g.svc.stats.clone(),
            prices: prices(&snap),
            circuits: g.resilience.circuits(),
        };
        super::handle(&actx, &method, &path, query.as_deref(), &body).await
    };
    send(session, s, resp).await;
    Ok(())
}

/// Records an admin change as an audit entry of its own: who (the key id,
/// or `master`), what, when, from where.
fn audit_change(
    g: &Gateway,
    session: &Session,
    s: &RequestSummary,
    method: &str,
    path: &str,
    status: u16,
    change: super::keys::Change,
) {
    let Some(what) = change else { return };
    let who = match &s.principal {
        Some(crate::principal::Principal::Key(k)) => k.rec.id.clone(),
        Some(crate::principal::Principal::Master) => "master".into(),
        _ => "loopback".into(),
    };
    log::info!(target: "audit", "admin change by {who}: {what}");
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    g.svc.recorder.record_audit(crate::record::AuditEntry {
        request_id: s.request_id.clone(),
        ts_ms: crate::governance::now_ms(),
        method: method.to_string(),
        path: path.to_string(),
        client,
        route: format!("admin: {what}"),
        status,
        upstream_status: None,
        duration_ms: u32::try_from(s.start.elapsed().as_millis()).unwrap_or(u32::MAX),
        ttft_ms: None,
        error: None,
        user_path: String::new(),
        key_id: who,
        request_headers: Vec::new(),
        request_body: None,
        response_body: None,
        bodies_truncated: false,
        attempts: Vec::new(),
    });
}

/// Price lookup over this snapshot's table, for `/admin/models`.
fn prices(snap: &std::sync::Arc<crate::config::Snapshot>) -> std::sync::Arc<super::PriceFn> {
    let snap = snap.clone();
    std::sync::Arc::new(move |kind: &str, provider: &str, model: &str| {
        snap.pricing.lookup(kind, provider, model).map(|(p, source)| {
            json!({"input": p.input, "output": p.output, "cached_input": p.cached_input,
                "cache_write": p.cache_write, "context_window": p.context_window, "source": source})
        })
    })
}

async fn send(session: &mut Session, s: &mut RequestSummary, r: AdminResponse) {
    let headers: http::Headers = r
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                ::http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                ::http::HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    http::respond(session, s, r.status, r.body, &headers).await;
}

/// `POST /admin/runtime/refresh`: reload now; report every error.
fn refresh(g: &Gateway) -> AdminResponse {
    match g.svc.reloader.reload("refresh endpoint", true) {
        Ok(_) => AdminResponse::ok(&json!({"status": "reloaded"})),
        Err(errs) => {
            let list: Vec<Value> = errs
                .iter()
                .map(|e| json!({"path": e.path, "message": e.message}))
                .collect();
            let body = json!({
                "error": {"message": format!("config rejected ({} error(s)); the previous config keeps serving", errs.len()),
                          "type": "invalid_request_error", "param": null, "code": "config_invalid"},
                "errors": list,
            });
            AdminResponse {
                status: 400,
                body: body.to_string().into_bytes(),
                headers: Vec::new(),
            }
        }
    }
}

/// Loads the overrides from the store into the live state.
pub async fn load_overrides(g: &Gateway) -> Result<(), AdminError> {
    let list = blocking(&g.store, |s| s.overrides_list()).await?;
    g.live.set_overrides(list.into_iter().collect());
    Ok(())
}

/// `GET/PUT/DELETE /admin/model-overrides[/{name}]`.
async fn overrides(g: &Gateway, method: &str, path: &str, body: &[u8]) -> AdminResponse {
    let raw = path
        .strip_prefix("/admin/model-overrides")
        .unwrap_or("")
        .trim_start_matches('/');
    // Model names hold `/` (`openai/gpt-4o`), which clients send encoded.
    let Some(decoded) = switchyard_filters::percent::percent_decode(raw) else {
        return AdminError::BadParam {
            param: "model".into(),
            message: "the model name in the path is not valid percent-encoded UTF-8".into(),
        }
        .response();
    };
    let name = decoded.as_str();
    let result: Result<AdminResponse, AdminError> = async {
        match (method, name.is_empty()) {
            ("GET", true) => {
                let list = blocking(&g.store, |s| s.overrides_list()).await?;
                let map: serde_json::Map<String, Value> = list
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
                    .collect();
                Ok(AdminResponse::ok(&json!({"overrides": map})))
            }
            ("GET", false) => {
                let list = blocking(&g.store, |s| s.overrides_list()).await?;
                match list.into_iter().find(|(k, _)| k == name) {
                    Some((k, v)) => Ok(AdminResponse::ok(&json!({"model": k, "override": v}))),
                    None => Err(AdminError::NotFound(format!("no override for `{name}`"))),
                }
            }
            ("PUT", false) => {
                let o: ModelOverride = serde_json::from_slice(body).map_err(|e| AdminError::BadParam {
                    param: "body".into(),
                    message: format!(
                        "body must be {{\"target\": \"provider/model\", \"disabled\": bool, \"defaults\": {{…}}}}: {e}"
                    ),
                })?;
                validate_override(g, name, &o)?;
                let (n, o2) = (name.to_string(), o.clone());
                blocking(&g.store, move |s| s.override_put(&n, &o2)).await?;
                load_overrides(g).await?;
                Ok(AdminResponse::ok(&json!({"model": name, "override": o})))
            }
            ("DELETE", false) => {
                let n = name.to_string();
                let existed = blocking(&g.store, move |s| s.override_delete(&n)).await?;
                load_overrides(g).await?;
                if existed {
                    Ok(AdminResponse::ok(&json!({"deleted": name})))
                } else {
                    Err(AdminError::NotFound(format!("no override for `{name}`")))
                }
            }
            (_, true) => Err(AdminError::MethodNotAllowed { allow: "GET" }),
            _ => Err(AdminError::MethodNotAllowed {
                allow: "GET, PUT, DELETE",
            }),
        }
    }
    .await;
    result.unwrap_or_else(|e| e.response())
}

fn validate_override(g: &Gateway, name: &str, o: &ModelOverride) -> Result<(), AdminError> {
    let bad = |param: &str, message: String| AdminError::BadParam {
        param: param.into(),
        message,
    };
    if name.len() > 256 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("model", "the model name must be 1-256 visible characters".into()));
    }
    if let Some(t) = &o.target {
        let snap = g.live.snapshot();
        match t.split_once('/') {
            Some((p, m)) if !m.is_empty() && snap.provider_index(p).is_some() => {}
            _ => {
                return Err(bad(
                    "target",
                    format!("`{t}` must be `provider/model` with a configured provider"),
                ))
            }
        }
    }
    if o.defaults.contains_key("model") || o.defaults.contains_key("messages") {
        return Err(bad("defaults", "defaults may not pin `model` or `messages`".into()));
    }
    Ok(())
}

/// `GET /admin/live/logs`: Server-Sent Events of request summaries, with
/// replay after `Last-Event-ID`, heartbeats, and an end on shutdown.
async fn live(g: &Gateway, session: &mut Session, ctx: &mut RequestSummary) {
    let last_id = session
        .req_header()
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Ok(mut resp) = ResponseHeader::build(200, Some(4)) else {
        return;
    };
    let _ = resp.insert_header("content-type", "text/event-stream");
    let _ = resp.insert_header("cache-control", "no-cache");
    let _ = resp.insert_header("transfer-encoding", "chunked");
    ctx.status = 200;
    if session.write_response_header(Box::new(resp), false).await.is_err() {
        return;
    }
    let (replay, mut rx) = g.svc.hub.subscribe(last_id);
    let mut buf = Vec::new();
    for (id, data) in replay {
        frame(&mut buf, id, &data);
    }
    buf.extend_from_slice(b": connected\n\n");
    if session
        .write_response_body(Some(Bytes::from(buf)), false)
        .await
        .is_err()
    {
        return;
    }
    let mut last_beat = tokio::time::Instant::now();
    loop {
        let out = tokio::select! {
            ev = rx.recv() => match ev {
                Ok((id, data)) => {
                    let mut b = Vec::with_capacity(data.len() + 32);
                    frame(&mut b, id, &data);
                    b
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => format!(": lagged {n}\n\n").into_bytes(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if session.is_process_shutting_down() {
                    break;
                }
                if last_beat.elapsed() < HEARTBEAT {
                    continue;
                }
                last_beat = tokio::time::Instant::now();
                b": heartbeat\n\n".to_vec()
            }
        };
        ctx.bytes_out += out.len();
        if session
            .write_response_body(Some(Bytes::from(out)), false)
            .await
            .is_err()
        {
            ctx.client_gone = true;
            return;
        }
    }
    let _ = session.write_response_body(None, true).await;
}

fn frame(out: &mut Vec<u8>, id: u64, data: &str) {
    out.extend_from_slice(format!("id: {id}\nevent: request\ndata: ").as_bytes());
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A listener that serves only `GET /metrics` (`SWITCHYARD_METRICS_LISTEN`),
/// so scrapers need no route to the API port.
pub struct MetricsOnly(pub std::sync::Arc<crate::telemetry::metrics::Metrics>);

#[async_trait::async_trait]
impl pingora_proxy::ProxyHttp for MetricsOnly {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora_core::Result<bool> {
        let (status, ctype, body) = if session.req_header().uri.path() == "/metrics" {
            let (ctype, body) = self.0.render();
            (200, ctype, body)
        } else {
            (404, "text/plain".to_string(), b"only /metrics here\n".to_vec())
        };
        let mut resp = ResponseHeader::build(status, Some(2))?;
        resp.insert_header("content-type", ctype)?;
        resp.insert_header("content-length", body.len().to_string())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(Bytes::from(body)), true).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<Box<pingora_core::upstreams::peer::HttpPeer>> {
        pingora_core::Error::e_explain(
            pingora_core::ErrorType::InternalError,
            "metrics listener has no upstream",
        )
    }
}

/// `GET /admin/runtime/store`: whether records are landing durably, and
/// the recorder's counters (a failed write stops the store until restart).
fn store_state(g: &Gateway) -> serde_json::Value {
    let failure = g.store.failure();
    let state = match (&failure, g.store.is_open()) {
        (Some(_), _) => "failed",
        (None, false) => "opening",
        (None, true) => "ok",
    };
    json!({
        "state": state,
        "error": failure,
        "recorder": g.svc.recorder.stats(),
        "disk_bytes": g.store.disk_bytes().ok(),
    })
}

/// Before a flush: a request answered just before this one is recorded in
/// Pingora's logging phase, after its last byte left, so its record may
/// not be queued yet. Waits (at most 1 s) until no model request is in
/// flight (admin calls are not counted), so a flush lands every request its
/// caller saw answered.
async fn settle(g: &Gateway) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while g.svc.metrics.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
