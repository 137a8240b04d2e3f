//! The live configuration: one `ArcSwap` holding the compiled snapshot, and
//! one holding the model lists discovered from providers.
//!
//! Requests `load` a snapshot once and finish on it, so a reload (file
//! watching, SIGHUP, the refresh endpoint) is one atomic `store` and never
//! affects requests in flight.

use crate::config::Snapshot;
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Public model name → override (alias target, disabled, pinned defaults).
pub type Overrides = HashMap<String, crate::store::ModelOverride>;

/// Model lists fetched from providers' `/models`, by provider name.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    /// Provider name → its models.
    pub by_provider: HashMap<String, Arc<HashSet<String>>>,
}

/// Shared, atomically replaceable runtime state.
pub struct Live {
    snapshot: ArcSwap<Snapshot>,
    /// Model overrides from the store (`/admin/model-overrides`).
    overrides: ArcSwap<Overrides>,
    discovered: ArcSwap<Discovered>,
    /// Becomes true after the first discovery round, so readiness can wait
    /// for bare model names to be routable.
    discovery_done: tokio::sync::watch::Sender<bool>,
}

impl Live {
    /// Starts with a compiled snapshot and nothing discovered yet.
    pub fn new(snapshot: Snapshot) -> Self {
        Live {
            snapshot: ArcSwap::from_pointee(snapshot),
            overrides: ArcSwap::from_pointee(Overrides::new()),
            discovered: ArcSwap::from_pointee(Discovered::default()),
            discovery_done: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot atomically; requests in flight keep theirs.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The model overrides in force.
    pub fn overrides(&self) -> Arc<Overrides> {
        self.overrides.load_full()
    }

    /// Replaces the overrides (after a store change or at start-up).
    pub fn set_overrides(&self, o: Overrides) {
        self.overrides.store(Arc::new(o));
    }

    /// The current discovered model lists.
    pub fn discovered(&self) -> Arc<Discovered> {
        self.discovered.load_full()
    }

    /// Records one provider's discovered models.
    pub fn set_discovered(&self, provider: &str, models: HashSet<String>) {
        self.discovered.rcu(|cur| {
            let mut next = Discovered::clone(cur);
            next.by_provider.insert(provider.to_string(), Arc::new(models.clone()));
            next
        });
    }

    /// Marks the first discovery round as finished.
    pub fn mark_discovery_done(&self) {
        self.discovery_done.send_replace(true);
    }

    /// Waits until the first discovery round finished.
    pub async fn discovery_done(&self) {
        let mut rx = self.discovery_done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }
}
