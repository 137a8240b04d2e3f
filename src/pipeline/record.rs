//! The last step, in Pingora's `logging` phase (which also runs when the
//! client hung up): the request summary fans out to every sink — the access
//! log line, metrics, provider health, the usage record and audit entry
//! (queued to the recorder, never blocking), and the live log.

use crate::state::Gateway;
use crate::summary::RequestSummary;
use pingora_proxy::Session;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hands the finished request to every sink.
pub fn finish(g: &Gateway, session: &Session, s: &mut RequestSummary) {
    let req = session.req_header();
    log::info!(target: "access", "{}", s.access_line(req.method.as_str(), req.uri.path()));
    if !s.endpoint.is_some_and(|e| e.routed()) {
        return;
    }
    let snap = g.live.snapshot();
    let cost = s.price(&snap.pricing);
    g.svc.metrics.observe(&s.observation(cost.0));
    let ts = now_ms();
    if let Some(t) = s.ticket.take() {
        for w in &t.warnings {
            log::warn!(target: "governance", "request {}: {w}", s.request_id);
            g.svc.hub.publish(
                ts,
                &serde_json::json!({"event": "budget_warning", "request_id": s.request_id, "message": w}),
            );
        }
        let tokens = s.usage.map_or(0, |u| u.input_tokens + u.output_tokens);
        t.settle(tokens, cost.0);
    }
    if let Some(served) = &s.served {
        let ok = s.status < 500 && s.error.as_ref().and_then(|e| e.upstream_kind()).is_none();
        let ms = u64::try_from(s.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        g.svc.stats.observe(&served.provider, ms, ok, ts);
    }
    let Some(record) = s.usage_record(ts, cost) else {
        return;
    };
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let audit = s.audit_entry(ts, req, client, &snap.scrubber);
    g.svc.hub.publish(ts, &s.live_line(ts, &record));
    g.svc.recorder.record(record, Some(audit));
}
