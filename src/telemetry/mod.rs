//! The in-process observers every finished request feeds (from the record
//! step of the pipeline) and the admin API and `/metrics` read: Prometheus
//! metrics, the live request stream, recent provider health.

pub mod live_hub;
pub mod metrics;
pub mod provider_stats;
