//! The gateway's shared state: what one proxy service holds for all its
//! requests. The pipeline and the admin API read it; it knows neither.

use crate::live::Live;
use crate::policy::Policy;
use crate::recorder::Recorder;
use crate::reload::Reloader;
use crate::store::Store;
use crate::telemetry::live_hub::LiveHub;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::provider_stats::ProviderStats;
use crate::upstream::Upstream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Process-wide services requests report to.
pub struct Services {
    /// Usage/audit queue to the store.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Live request stream.
    pub hub: Arc<LiveHub>,
    /// Recent per-provider latency and errors.
    pub stats: Arc<ProviderStats>,
    /// Config reloads (the refresh endpoint).
    pub reloader: Arc<Reloader>,
}

/// Everything a request may need.
pub struct Gateway {
    /// Live config, overrides and discovered models.
    pub live: Arc<Live>,
    /// Upstream connector pool and DNS cache.
    pub upstream: Upstream,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Recorder, metrics, live hub, stats, reloader.
    pub svc: Services,
    /// Policy stages.
    pub policy: Policy,
    /// Circuit breakers and balancing numbers, kept across reloads.
    pub resilience: Arc<crate::resilience::Resilience>,
    /// Managed keys, limits and budgets, kept across reloads.
    pub governance: Arc<crate::governance::Governance>,
    ids: AtomicU64,
    id_prefix: u64,
}

impl Gateway {
    /// Builds the shared state.
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
            policy: Policy::none(),
            resilience: Arc::default(),
            governance: Arc::default(),
            ids: AtomicU64::new(0),
            id_prefix,
        }
    }

    /// A new request id: unique per process start, ordered within it.
    pub fn next_request_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:08x}", self.id_prefix, n)
    }
}
