//! Background model discovery: each provider without a configured model list
//! is asked for its `/models` at start and every `model_refresh` after, so a
//! bare model name can be routed without ever calling a provider on the
//! request path.

use crate::live::Live;
use crate::relay::{build_request, upstream_path, Op};
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
        for p in snap
            .providers
            .iter()
            .filter(|p| p.discover_models && !p.azure_deployments())
        {
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

async fn fetch(upstream: &Upstream, p: &crate::config::Provider) -> Result<HashSet<String>, String> {
    let path = upstream_path(p, Op::Models, "");
    let req = build_request(p, "GET", &path, 0, false, &[]).map_err(|e| e.info().message)?;
    let mut ex = upstream
        .send(p, req, Bytes::new())
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
    parse_model_list(&body)
}

/// Model ids from an OpenAI/Anthropic list (`data[].id`) or a Gemini list
/// (`models[].name`, `models/` prefix removed).
fn parse_model_list(body: &[u8]) -> Result<HashSet<String>, String> {
    #[derive(serde::Deserialize)]
    struct Item {
        id: Option<String>,
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Option<Vec<Item>>,
        models: Option<Vec<Item>>,
    }
    let list: List = serde_json::from_slice(body).map_err(|e| format!("not a model list: {e}"))?;
    let items = list
        .data
        .or(list.models)
        .ok_or("not a model list: no `data` or `models`")?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            i.id.or_else(|| i.name.map(|n| n.trim_start_matches("models/").to_string()))
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_of_each_dialect() {
        let openai = parse_model_list(br#"{"object":"list","data":[{"id":"gpt-4o"}]}"#).expect("openai");
        assert!(openai.contains("gpt-4o"));
        let gemini = parse_model_list(br#"{"models":[{"name":"models/gemini-2.5-flash"}]}"#).expect("gemini");
        assert!(gemini.contains("gemini-2.5-flash"));
        assert!(parse_model_list(br#"{"x":1}"#).is_err());
    }
}
