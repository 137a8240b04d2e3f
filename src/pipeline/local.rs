//! Endpoints the gateway answers itself: health, readiness, metrics, the
//! model list, and the admin API (handed to `admin`).

use super::Failure;
use crate::config::Snapshot;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::http;
use crate::live::Discovered;
use crate::route::public_models;
use crate::state::Gateway;
use crate::summary::RequestSummary;
use pingora_proxy::Session;

/// `GET /health`, `/health/ready`, `/metrics`.
pub async fn probe(g: &Gateway, session: &mut Session, s: &mut RequestSummary, ep: Endpoint) -> Result<(), Failure> {
    match ep {
        Endpoint::Ready => {
            // Ready means "can serve". An upgraded process serves before the
            // previous one lets go of the store, queueing records in memory
            // meanwhile; a store that failed a write is not ready.
            if let Some(why) = g.store.failure() {
                return Err(GatewayError::NotReady(format!("store stopped after a failed write: {why}")).into());
            }
            let body = if g.store.is_open() {
                g.store.health().map_err(GatewayError::NotReady)?;
                br#"{"status":"ready","store":"ok"}"#.to_vec()
            } else {
                let queued = g.svc.recorder.stats().queued;
                format!(r#"{{"status":"ready","store":"opening","queued_records":{queued}}}"#).into_bytes()
            };
            http::respond(session, s, 200, body, &[]).await;
        }
        Endpoint::Metrics => {
            let (ctype, body) = g.svc.metrics.render();
            let ctype = ::http::HeaderValue::from_str(&ctype).unwrap_or(::http::HeaderValue::from_static("text/plain"));
            http::respond(session, s, 200, body, &[(::http::header::CONTENT_TYPE, ctype)]).await;
        }
        _ => http::respond(session, s, 200, br#"{"status":"ok"}"#.to_vec(), &[]).await,
    }
    Ok(())
}

/// `GET /v1/models` (a managed key sees the models it may use).
pub async fn models(g: &Gateway, session: &mut Session, s: &mut RequestSummary) {
    let key = s.principal.as_ref().and_then(|p| p.key());
    let body = models_body(&g.live.snapshot(), &g.live.discovered(), |id| {
        key.is_none_or(|k| k.rec.allows_model(id))
    });
    http::respond(session, s, 200, body, &[]).await;
}

/// `GET /v1/usage`: the calling key's spend this period, budget left,
/// limits and headroom. Without a budget the period is the UTC day and
/// the spend comes from the store's roll-ups.
pub async fn usage(g: &Gateway, session: &mut Session, s: &mut RequestSummary) -> Result<(), Failure> {
    let Some(k) = s.principal.as_ref().and_then(|p| p.key()) else {
        return Err(GatewayError::InvalidRequest {
            message: "`/v1/usage` describes a managed key (sk-sy-…); this request used the master key or none".into(),
            param: None,
        }
        .into());
    };
    let now = crate::governance::now_ms();
    let mut view = crate::governance::usage_view(&g.governance, k, now).await;
    if k.rec.budget.is_none() {
        let day = crate::store::query::day_of(now);
        let q = crate::store::RollupQuery {
            from_day: day,
            to_day: day,
            group_by: crate::store::GroupBy::Key,
            per_day: false,
        };
        let store = g.store.clone();
        let rows = tokio::task::spawn_blocking(move || store.usage_rollup(&q))
            .await
            .map_err(|e| GatewayError::NotReady(e.to_string()))?
            .map_err(|e| GatewayError::NotReady(e.to_string()))?;
        let id = k.rec.id.clone();
        let c = rows
            .into_iter()
            .find(|r| matches!(&r.key, crate::store::GroupKey::Key(kid) if *kid == id))
            .map(|r| r.counters)
            .unwrap_or_default();
        view["period"] = serde_json::json!("day");
        view["spend_usd"] = serde_json::json!(c.cost_usd);
        view["tokens"] = serde_json::json!(c.input_tokens + c.output_tokens);
        view["requests"] = serde_json::json!(c.requests);
    }
    http::respond(session, s, 200, view.to_string().into_bytes(), &[]).await;
    Ok(())
}

/// The OpenAI list shape of every public model id `show` keeps.
pub fn models_body(snap: &Snapshot, discovered: &Discovered, show: impl Fn(&str) -> bool) -> Vec<u8> {
    let data: Vec<serde_json::Value> = public_models(snap, discovered)
        .into_iter()
        .filter(|(id, _)| show(id))
        .map(|(id, owner)| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    serde_json::json!({"object": "list", "data": data})
        .to_string()
        .into_bytes()
}
