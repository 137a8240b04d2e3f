//! Keeps a node in step with its fleet when counters are shared through
//! Redis: drives the limiter's connections, and polls the shared version of
//! the admin API's keys and budgets every 200 ms, installing (and caching
//! in `governance.json`) whatever another node changed — so a key revoked
//! on one node stops working on every node within a second.

use super::persist::{save_admin, AdminState};
use super::Governance;
use std::sync::Arc;
use std::time::Duration;

/// How often a node looks for admin changes made elsewhere.
pub const POLL: Duration = Duration::from_millis(200);

/// The background service (only added when Redis is configured).
pub struct FleetSync {
    /// The governance state.
    pub gov: Arc<Governance>,
    /// Where the node's cached copy lives.
    pub dir: std::path::PathBuf,
}

impl FleetSync {
    /// One look at the shared version; installs a newer state. `seen` is
    /// the version last installed.
    pub async fn poll(&self, seen: &mut Option<i64>) {
        let Some(sh) = self.gov.shared() else { return };
        let Ok(v) = sh.version().await else { return };
        if *seen == Some(v) {
            return;
        }
        if v == 0 {
            // Nothing shared yet: this node's keys and budgets (from before
            // the fleet shared Redis) become the fleet's.
            let (k, b) = (self.gov.admin_keys(), self.gov.admin_budgets());
            if !k.is_empty() || !b.is_empty() {
                if let Err(e) = sh.publish((&[], &[]), (&k, &b)).await {
                    log::warn!("limiter: could not share this node's keys and budgets: {e}");
                    return;
                }
            }
        }
        let Ok((v, mut keys, mut budgets)) = sh.fetch().await else {
            return;
        };
        keys.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        budgets.sort_by(|a, b| a.id.cmp(&b.id));
        let mut mine = self.gov.admin_budgets();
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        let changed = keys != self.gov.admin_keys() || budgets != mine;
        if changed {
            self.gov.set_admin_keys(keys.clone());
            self.gov.set_admin_budgets(budgets.clone());
            if let Err(e) = save_admin(&self.dir, &AdminState { keys, budgets }) {
                log::warn!("governance: could not cache the fleet's keys: {e}");
            }
        }
        *seen = Some(v);
    }
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for FleetSync {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let Some(sh) = self.gov.shared().cloned() else { return };
        let driven = sh.clone();
        let drive = tokio::spawn(async move { driven.drive().await });
        let mut seen = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => self.poll(&mut seen).await,
                _ = shutdown.changed() => break,
            }
        }
        // Settlements still waiting would hold places in flight until
        // their leases end.
        sh.flush().await;
        drive.abort();
    }
}
