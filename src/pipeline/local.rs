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

/// `GET /v1/models`.
pub async fn models(g: &Gateway, session: &mut Session, s: &mut RequestSummary) {
    let body = models_body(&g.live.snapshot(), &g.live.discovered());
    http::respond(session, s, 200, body, &[]).await;
}

/// The OpenAI list shape of every public model id.
pub fn models_body(snap: &Snapshot, discovered: &Discovered) -> Vec<u8> {
    let data: Vec<serde_json::Value> = public_models(snap, discovered)
        .into_iter()
        .map(|(id, owner)| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    serde_json::json!({"object": "list", "data": data})
        .to_string()
        .into_bytes()
}
