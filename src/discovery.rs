//! Background model discovery: each provider without a configured model list
//! is asked for its `/models` at start and every `model_refresh` after, so a
//! bare model name can be routed without ever calling a provider on the
//! request path.

use crate::live::Live;
use crate::providers::{request_head, CallerHeaders, Operation, Provider};
use crate::upstream::Upstream;
use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The discovery task (a Pingora background service, so it survives
/// daemonizing and stops with the server).
pub struct Discovery {
    live: Arc<Live>,
}

impl Discovery {
    /// Discovery over the live config.
    pub fn new(live: Arc<Live>) -> Self {
        Discovery { live }
    }

    async fn refresh_all(&self, upstream: &Upstream) -> bool {
        let snap = self.live.snapshot();
        let mut all_ok = true;
        for p in snap.providers.iter().filter(|p| p.lists_models()) {
            match fetch(upstream, p).await {
                Ok(models) => {
                    log::info!("discovered {} models at provider {}", models.len(), p.name);
                    self.live.set_discovered(&p.name, models);
                }
                Err(e) => {
                    all_ok = false;
                    log::warn!("model discovery failed for provider {}: {e}", p.name);
                }
            }
        }
        all_ok
    }
}

async fn fetch(upstream: &Upstream, p: &Provider) -> Result<HashSet<String>, String> {
    let path = p.path(Operation::Models, "");
    let head = || {
        request_head(
            p,
            p.pick_key(),
            http::Method::GET,
            &path,
            0,
            false,
            &CallerHeaders::default(),
        )
        .map_err(|e| crate::error::GatewayError::UpstreamProtocol {
            provider: p.name.clone(),
            detail: e.0,
        })
    };
    let mut ex = upstream
        .send(p, &head, Bytes::new())
        .await
        .map_err(|e| e.info().message)?;
    let status = ex.status();
    let body = ex.read_all(16 * 1024 * 1024).await.map_err(|e| e.info().message)?;
    upstream.release(ex).await;
    if status != 200 {
        return Err(format!(
            "status {status}: {}",
            switchyard_filters::error::upstream_error_message(&body)
        ));
    }
    p.family.adapter.parse_models(&body)
}

#[async_trait]
impl BackgroundService for Discovery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let upstream = Upstream::new(self.live.snapshot().dns_ttl);
        loop {
            let ok = self.refresh_all(&upstream).await;
            self.live.mark_discovery_done();
            let every = self.live.snapshot().model_refresh;
            // Failed lookups retry sooner, successful ones at the refresh interval.
            let wait = if ok { every } else { every.min(Duration::from_secs(30)) };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
