//! After every request (Pingora's `logging` phase, which also runs when the
//! client hung up): the access log line, metrics, provider stats, the usage
//! record and audit entry (queued to the recorder, never blocking), and the
//! live-stream summary.

use crate::metrics::{Metrics, RequestObservation};
use crate::proxy::{Gateway, RequestCtx};
use crate::record::{redact_path, AuditEntry, CostSource, UsageRecord};
use pingora_proxy::Session;
use std::time::Duration;

/// Cap on each stored audit body.
pub const AUDIT_BODY_CAP: usize = 1024 * 1024;

/// Appends response bytes to the audit capture, up to the cap.
pub fn capture(ctx: &mut RequestCtx, bytes: &[u8]) {
    if let Some(cap) = ctx.resp_capture.as_mut() {
        let room = AUDIT_BODY_CAP.saturating_sub(cap.len());
        if bytes.len() > room {
            ctx.bodies_truncated = true;
        }
        cap.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Keeps a caller-supplied string on one log line and bounded.
fn logsafe(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Upstream failure kind for metrics, from our error label.
fn upstream_kind(error: Option<&str>, upstream_status: Option<u16>) -> Option<&'static str> {
    match error? {
        "upstream_connect" => Some("connect"),
        "upstream_timeout" => Some("timeout"),
        "upstream_auth" => Some("auth"),
        "upstream_protocol" => Some("protocol"),
        "upstream_stream_error" => Some("stream"),
        "upstream_status" => Some(if upstream_status.unwrap_or(500) >= 500 {
            "status_5xx"
        } else {
            "status_4xx"
        }),
        _ => None,
    }
}

/// One line of `GET /admin/live/logs`: a completed request, serialised
/// straight from borrowed fields (no intermediate JSON map per request).
#[derive(serde::Serialize)]
struct LiveSummary<'a> {
    request_id: &'a str,
    ts_ms: u64,
    endpoint: &'a str,
    model: &'a str,
    provider: &'a str,
    upstream_model: &'a str,
    status: u16,
    duration_ms: u32,
    ttft_ms: Option<u32>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: Option<f64>,
    user_path: &'a str,
    partial: bool,
    error: Option<&'a str>,
}

/// Everything `logging` does.
pub fn finish(g: &Gateway, session: &Session, ctx: &mut RequestCtx) {
    let req = session.req_header();
    let elapsed = ctx.start.elapsed();
    let dur_ms = elapsed.as_secs_f64() * 1000.0;
    let u = ctx.usage.unwrap_or_default();
    log::info!(
        target: "access",
        "request_id={} method={} path={} endpoint={} model={} provider={} status={} duration_ms={:.3} ttft_ms={} bytes_in={} bytes_out={} tokens_in={} tokens_out={} client_gone={} error={}",
        ctx.request_id,
        req.method,
        req.uri.path(),
        ctx.endpoint,
        ctx.model.as_deref().map(logsafe).unwrap_or_else(|| "-".into()),
        ctx.provider.as_deref().unwrap_or("-"),
        ctx.status,
        dur_ms,
        ctx.ttft_ms.map(|t| format!("{t:.3}")).unwrap_or_else(|| "-".into()),
        ctx.bytes_in,
        ctx.bytes_out,
        u.input_tokens,
        u.output_tokens,
        ctx.client_gone,
        ctx.error.unwrap_or("-"),
    );
    let llm = matches!(ctx.endpoint, "chat" | "messages" | "embeddings" | "count_tokens");
    if !llm {
        return;
    }
    let snap = g.live.snapshot();
    let provider_type = ctx.provider_type.clone().unwrap_or_default();
    let provider = ctx.provider.clone().unwrap_or_default();
    let upstream_model = ctx.upstream_model.clone().unwrap_or_default();
    let (cost_usd, cost_source) = if provider.is_empty() {
        (None, CostSource::Unknown)
    } else {
        snap.pricing.price_usage(&provider_type, &provider, &upstream_model, &u)
    };
    let kind = upstream_kind(ctx.error, ctx.upstream_status);
    observe_metrics(&g.svc.metrics, ctx, elapsed, cost_usd, kind);
    let ts = now_ms();
    if !provider.is_empty() {
        let ok = ctx.status < 500 && kind.is_none();
        g.svc.stats.observe(&provider, dur_ms as u64, ok, ts);
    }
    // Requests that never named a model (bad JSON, auth) are in the access
    // log and metrics, not in usage: they never reached routing.
    let Some(model) = ctx.model.clone() else {
        return;
    };
    let partial = ctx.client_gone;
    let record = UsageRecord {
        request_id: ctx.request_id.clone(),
        ts_ms: ts,
        endpoint: ctx.endpoint.to_string(),
        dialect: match ctx.dialect {
            switchyard_filters::error::Dialect::OpenAi => "openai".into(),
            switchyard_filters::error::Dialect::Anthropic => "anthropic".into(),
        },
        provider,
        provider_type,
        model,
        upstream_model,
        status: ctx.status,
        usage: u,
        cost_usd,
        cost_source,
        duration_ms: dur_ms as u32,
        ttft_ms: ctx.ttft_ms.map(|t| t as u32),
        user_path: ctx.user_path.clone(),
        tags: ctx.tags.clone(),
        key_id: String::new(),
        partial,
        error: ctx.error.map(str::to_string),
    };
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let audit = AuditEntry {
        request_id: ctx.request_id.clone(),
        ts_ms: ts,
        method: req.method.to_string(),
        path: redact_path(path),
        client,
        route: if record.provider.is_empty() {
            String::new()
        } else {
            format!("{}/{}", record.provider, record.upstream_model)
        },
        status: ctx.status,
        upstream_status: ctx.upstream_status,
        duration_ms: dur_ms as u32,
        ttft_ms: ctx.ttft_ms.map(|t| t as u32),
        error: ctx.error.map(str::to_string),
        user_path: ctx.user_path.clone(),
        key_id: String::new(),
        request_headers: crate::record::redact_headers(
            req.headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        ),
        request_body: ctx.req_capture.take().map(|b| String::from_utf8_lossy(&b).into_owned()),
        response_body: ctx
            .resp_capture
            .take()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        bodies_truncated: ctx.bodies_truncated,
    };
    g.svc.hub.publish(&LiveSummary {
        request_id: &record.request_id,
        ts_ms: ts,
        endpoint: &record.endpoint,
        model: &record.model,
        provider: &record.provider,
        upstream_model: &record.upstream_model,
        status: record.status,
        duration_ms: record.duration_ms,
        ttft_ms: record.ttft_ms,
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cost_usd,
        user_path: &record.user_path,
        partial,
        error: record.error.as_deref(),
    });
    g.svc.recorder.record(record, Some(audit));
}

fn observe_metrics(m: &Metrics, ctx: &RequestCtx, elapsed: Duration, cost: Option<f64>, kind: Option<&str>) {
    m.observe(&RequestObservation {
        endpoint: ctx.endpoint,
        provider: ctx.provider.as_deref(),
        model: ctx.model.as_deref(),
        status: ctx.status,
        duration: elapsed,
        ttft: ctx.ttft_ms.map(|t| Duration::from_secs_f64(t / 1000.0)),
        usage: ctx.usage,
        cost_usd: cost,
        upstream_error: kind,
    });
}
