//! Prometheus metrics for `GET /metrics` (design §8, issue 5 item 1).
//!
//! Operators watch the gateway through these series, so two properties
//! matter more than anything else:
//!
//! * **Bounded cardinality.** Model and provider names arrive from callers
//!   and upstreams; an unbounded label would let one client create millions
//!   of series and take the scraper (and our memory) down. Only names the
//!   configuration knows ([`Metrics::set_known_models`],
//!   [`Metrics::set_known_providers`]) become label values; anything else is
//!   reported as `other`, and an absent name as `none`. Endpoint labels come
//!   from the gateway's fixed endpoint table, status labels are numeric codes
//!   and error kinds are a closed set, so every label is bounded.
//! * **A cheap hot path.** [`Metrics::observe`] runs once per request in
//!   Pingora's `logging` phase. It caches the metric children of every label
//!   combination it has seen, so a request costs two set lookups, one map
//!   lookup and the atomic updates themselves, and allocates nothing once its
//!   combination has been seen (see the `observe_cost` test for figures).
//!
//! Each [`Metrics`] owns its own [`Registry`] rather than the process-global
//! default, so tests (and, one day, several gateways in one process) can hold
//! independent instances.
//!
//! Known limitation of `prometheus` 0.14: a metric vector identifies a label
//! combination by hashing the values concatenated without a separator, so
//! `(provider="ab", model="c")` and `(provider="a", model="bc")` would share a
//! series. Endpoint, status, direction and kind values are fixed vocabularies,
//! so only a provider name that is a prefix of another plus a matching model
//! name could collide; real configurations do not produce that.

use crate::prehashed::Prehashed;
use arc_swap::ArcSwap;
use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use switchyard_filters::usage::Usage;

/// Histogram buckets in seconds, shared by request duration and TTFT.
///
/// The low end resolves proxy overhead (sub-millisecond local answers and
/// errors), the high end long reasoning generations and streams of minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Label value for a model or provider the configuration does not name.
pub const OTHER: &str = "other";

/// Label value for a request that never got as far as naming a model or
/// provider (unknown endpoint, rejected auth, malformed body).
pub const NONE: &str = "none";

/// The closed set of upstream error kinds; anything else is counted as
/// `other` so a typo in a caller cannot open a new series per message.
pub const UPSTREAM_ERROR_KINDS: &[&str] = &[
    "connect",
    "timeout",
    "status_4xx",
    "status_5xx",
    "auth",
    "protocol",
    "stream",
    "truncated",
    "interrupted",
];

/// Everything the gateway knows about one finished request, handed to
/// [`Metrics::observe`] from the `logging` phase.
///
/// Borrowed strings keep the hot path free of allocation: the request
/// context already owns them.
#[derive(Debug, Clone, Copy)]
pub struct RequestObservation<'a> {
    /// Endpoint label from the gateway's fixed endpoint table (e.g.
    /// `Endpoint::label()`); must never be a raw request path, which
    /// would make this label unbounded.
    pub endpoint: &'a str,
    /// Provider the request was routed to; `None` before routing.
    pub provider: Option<&'a str>,
    /// Model name as the gateway reports it; `None` if the request never
    /// named one.
    pub model: Option<&'a str>,
    /// HTTP status sent to the caller.
    pub status: u16,
    /// Wall time from request start to the last byte sent.
    pub duration: Duration,
    /// Time to first token (first body byte of a generation), if any.
    pub ttft: Option<Duration>,
    /// Token usage reported by the upstream, if any.
    pub usage: Option<Usage>,
    /// Cost of the request in US dollars, if priced.
    pub cost_usd: Option<f64>,
    /// Upstream failure kind (one of [`UPSTREAM_ERROR_KINDS`]), if the
    /// upstream exchange failed.
    pub upstream_error: Option<&'a str>,
}

/// The gateway's Prometheus metrics and the registry that exposes them.
///
/// Shared as `Arc<Metrics>` between the proxy service (which observes) and
/// the admin/metrics service (which renders); every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    in_flight: IntGauge,
    upstream_errors: IntCounterVec,
    reload_success: IntCounter,
    reload_failure: IntCounter,
    dropped: IntCounter,
    store_failures: IntCounter,
    store_up: IntGauge,
    store_sync: Mutex<StoreSync>,
    limiter_errors: IntCounter,
    limiter_up: IntGauge,
    limiter_sync: Mutex<StoreSync>,
    circuit_state: IntGaugeVec,
    circuit_source: Mutex<Option<CircuitSource>>,
    dropped_sync: Mutex<DroppedSync>,
    known_models: ArcSwap<HashSet<String>>,
    known_providers: ArcSwap<HashSet<String>>,
    /// Children per bounded label combination, so [`Metrics::observe`]
    /// does one lookup instead of nine `with_label_values` calls (each of
    /// which hashes its labels and takes the vector's lock, ~60 ns apiece).
    /// Read-mostly: entries are only added, at most once per combination,
    /// and the combinations are bounded like the labels themselves.
    series: ArcSwap<SeriesMap>,
    hasher: RandomState,
}

/// Cached children, keyed by the [`RandomState`] hash of a [`SeriesKey`].
type SeriesMap = HashMap<u64, Arc<Series>, BuildHasherDefault<Prehashed>>;

/// The bounded label values of one request.
#[derive(Clone, Copy, Hash)]
struct SeriesKey<'a> {
    endpoint: &'a str,
    provider: &'a str,
    model: &'a str,
    status: u16,
}

/// Token directions, in the order [`Series::tokens`] stores them.
const DIRECTIONS: [&str; 5] = ["input", "output", "cached_input", "cache_write", "reasoning"];

/// Every child metric requests of one [`SeriesKey`] touch. Children that
/// not every request needs are created on first use, so a model that never
/// reports cache writes gets no zero-valued `cache_write` series.
struct Series {
    endpoint: Box<str>,
    provider: Box<str>,
    model: Box<str>,
    status: u16,
    requests: IntCounter,
    duration: Histogram,
    ttft: OnceLock<Histogram>,
    tokens: [OnceLock<IntCounter>; DIRECTIONS.len()],
    cost: OnceLock<Counter>,
    /// One per [`UPSTREAM_ERROR_KINDS`] entry, then `other`.
    errors: [OnceLock<IntCounter>; UPSTREAM_ERROR_KINDS.len() + 1],
}

impl Series {
    /// Fetches (creating if needed) the children every request records.
    fn new(m: &Metrics, k: &SeriesKey<'_>) -> Option<Series> {
        let mut buf = [0u8; 5];
        let status = status_text(k.status, &mut buf);
        Some(Series {
            requests: child(
                m.requests
                    .get_metric_with_label_values(&[k.endpoint, k.provider, k.model, status]),
            )?,
            duration: child(m.duration.get_metric_with_label_values(&[k.endpoint, k.provider]))?,
            ttft: OnceLock::new(),
            tokens: Default::default(),
            cost: OnceLock::new(),
            errors: Default::default(),
            endpoint: k.endpoint.into(),
            provider: k.provider.into(),
            model: k.model.into(),
            status: k.status,
        })
    }

    /// Whether this entry belongs to `k` (the map key is only a hash).
    fn is(&self, k: &SeriesKey<'_>) -> bool {
        self.status == k.status
            && *self.endpoint == *k.endpoint
            && *self.provider == *k.provider
            && *self.model == *k.model
    }

    /// Adds one request to every child it concerns.
    fn record(&self, m: &Metrics, o: &RequestObservation<'_>) {
        let (endpoint, provider, model) = (&*self.endpoint, &*self.provider, &*self.model);
        self.requests.inc();
        self.duration.observe(o.duration.as_secs_f64());
        if let Some(ttft) = o.ttft {
            if let Some(h) = lazy(&self.ttft, || {
                m.ttft.get_metric_with_label_values(&[endpoint, provider])
            }) {
                h.observe(ttft.as_secs_f64());
            }
        }
        if let Some(u) = &o.usage {
            let counts = [
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.cache_write_tokens,
                u.reasoning_tokens,
            ];
            for ((cell, direction), n) in self.tokens.iter().zip(DIRECTIONS).zip(counts) {
                // Zero counts would only create empty series.
                if n == 0 {
                    continue;
                }
                if let Some(c) = lazy(cell, || {
                    m.tokens.get_metric_with_label_values(&[provider, model, direction])
                }) {
                    c.inc_by(n);
                }
            }
        }
        // A counter must never go down (and prometheus debug-asserts it):
        // ignore negative, NaN and infinite prices from a bad price table.
        if let Some(cost) = o.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
            if let Some(c) = lazy(&self.cost, || m.cost.get_metric_with_label_values(&[provider, model])) {
                c.inc_by(cost);
            }
        }
        if let Some(kind) = o.upstream_error {
            let i = UPSTREAM_ERROR_KINDS
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(UPSTREAM_ERROR_KINDS.len());
            let kind = UPSTREAM_ERROR_KINDS.get(i).copied().unwrap_or(OTHER);
            if let Some(c) = self.errors.get(i).and_then(|cell| {
                lazy(cell, || {
                    m.upstream_errors.get_metric_with_label_values(&[provider, kind])
                })
            }) {
                c.inc();
            }
        }
    }
}

/// Reads the usage recorder's running total of dropped records.
type DroppedSource = Box<dyn Fn() -> u64 + Send + Sync>;

/// Reads the store's health: (failed writes since start, whether it works).
type StoreSource = Box<dyn Fn() -> (u64, bool) + Send + Sync>;

/// Reads the circuits to export: (provider, model or "", state 0/1/2).
type CircuitSource = Box<dyn Fn() -> Vec<(String, String, i64)> + Send + Sync>;

/// Adds what a backend's failure count gained since the last scrape to
/// `failures` (the exported counter never goes backwards) and sets `up`.
fn sync_backend(sync: &Mutex<StoreSync>, failures: &IntCounter, up: &IntGauge) {
    let mut sync = sync.lock().unwrap_or_else(|p| p.into_inner());
    let Some((n, is_up)) = sync.source.as_ref().map(|read| read()) else {
        return;
    };
    if n > sync.synced {
        failures.inc_by(n - sync.synced);
    }
    sync.synced = n;
    up.set(i64::from(is_up));
}

/// Where a backend's failure counter and up gauge get their values
/// (`switchyard_store_*`, `switchyard_limiter_backend_*`).
#[derive(Default)]
struct StoreSync {
    source: Option<StoreSource>,
    synced: u64,
}

/// Where `switchyard_usage_records_dropped_total` gets its value, and how
/// much of that value the exported counter already includes.
struct DroppedSync {
    source: Option<DroppedSource>,
    synced: u64,
}

/// RAII guard counting one request in `switchyard_in_flight_requests`.
///
/// Kept in the request context so the gauge goes back down however the
/// request ends (success, error, client disconnect, panic unwinding); an
/// explicit decrement would be missed on some of those paths.
#[must_use = "the request stops counting as in flight when the guard is dropped"]
pub struct InFlight(IntGauge);

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every series in a fresh registry.
    ///
    /// Registration can only fail on an invalid or duplicate metric name;
    /// all names here are constants registered once into a registry nobody
    /// else sees, so the `expect`s cannot fire (the unit tests construct
    /// `Metrics` and would catch a bad name).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("static metric names are valid and unique");
            c
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
            reg(&registry, c)
        };
        let histogram_vec = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, &["endpoint", "provider"]).expect("static metric definition is valid");
            reg(&registry, h)
        };

        let requests = counter_vec(
            "switchyard_requests_total",
            "Requests answered, by endpoint, provider, model and HTTP status.",
            &["endpoint", "provider", "model", "status"],
        );
        let duration = histogram_vec(
            "switchyard_request_duration_seconds",
            "Time from request start to the last response byte.",
        );
        let ttft = histogram_vec(
            "switchyard_ttft_seconds",
            "Time from request start to the first generated byte.",
        );
        let tokens = counter_vec(
            "switchyard_tokens_total",
            "Tokens reported by upstreams. input includes cached_input and cache_write; \
             output includes reasoning.",
            &["provider", "model", "direction"],
        );
        let cost = reg(
            &registry,
            CounterVec::new(
                Opts::new("switchyard_cost_usd_total", "Estimated cost of requests in US dollars."),
                &["provider", "model"],
            )
            .expect("static metric definition is valid"),
        );
        let in_flight = reg(
            &registry,
            IntGauge::new(
                "switchyard_in_flight_requests",
                "Model requests (models, usage, chat, embeddings, messages, token counts) currently being served, streams included; probes, metrics scrapes and the admin API are not counted.",
            )
            .expect("static metric definition is valid"),
        );
        let upstream_errors = counter_vec(
            "switchyard_upstream_errors_total",
            "Failed upstream exchanges, by provider and failure kind.",
            &["provider", "kind"],
        );
        let circuit_state = reg(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "switchyard_circuit_state",
                    "Circuit breakers: 0 closed, 1 half-open, 2 open; model=\"\" is the provider instance's own.",
                ),
                &["provider", "model"],
            )
            .expect("static metric definition is valid"),
        );
        let reloads = counter_vec(
            "switchyard_config_reloads_total",
            "Configuration reload attempts, by result.",
            &["result"],
        );
        // Both results exist from the start so `increase()` sees the first
        // failure instead of a series appearing out of nowhere.
        let reload_success = reloads.with_label_values(&["success"]);
        let reload_failure = reloads.with_label_values(&["failure"]);
        let store_failures = reg(
            &registry,
            IntCounter::new(
                "switchyard_store_write_failures_total",
                "Recorder batches the store failed to write (disk full, I/O error).",
            )
            .expect("static metric definition is valid"),
        );
        let store_up = reg(
            &registry,
            IntGauge::new(
                "switchyard_store_up",
                "1 while the store accepts writes; 0 after a failed write, until a restart.",
            )
            .expect("static metric definition is valid"),
        );
        let limiter_errors = reg(
            &registry,
            IntCounter::new(
                "switchyard_limiter_backend_errors_total",
                "Calls to the shared limiter (Redis) that failed or timed out; each admitted uncounted (fail_open) or refused (fail_closed).",
            )
            .expect("static metric definition is valid"),
        );
        let limiter_up = reg(
            &registry,
            IntGauge::new(
                "switchyard_limiter_backend_up",
                "1 while the limiter's counters are reachable (always, in-process); 0 while Redis is not connected.",
            )
            .expect("static metric definition is valid"),
        );
        limiter_up.set(1);
        let dropped = reg(
            &registry,
            IntCounter::new(
                "switchyard_usage_records_dropped_total",
                "Usage records the recorder dropped because its queue was full.",
            )
            .expect("static metric definition is valid"),
        );
        let build_info = reg(
            &registry,
            IntGauge::with_opts(
                Opts::new(
                    "switchyard_build_info",
                    "Always 1; the version label identifies the running build.",
                )
                .const_label("version", env!("CARGO_PKG_VERSION")),
            )
            .expect("static metric definition is valid"),
        );
        build_info.set(1);

        Metrics {
            registry,
            requests,
            duration,
            ttft,
            tokens,
            cost,
            in_flight,
            upstream_errors,
            reload_success,
            reload_failure,
            dropped,
            store_failures,
            store_up,
            store_sync: Mutex::new(StoreSync::default()),
            limiter_errors,
            limiter_up,
            limiter_sync: Mutex::new(StoreSync::default()),
            circuit_state,
            circuit_source: Mutex::new(None),
            dropped_sync: Mutex::new(DroppedSync {
                source: None,
                synced: 0,
            }),
            known_models: ArcSwap::from_pointee(HashSet::new()),
            known_providers: ArcSwap::from_pointee(HashSet::new()),
            series: ArcSwap::from_pointee(SeriesMap::default()),
            hasher: RandomState::new(),
        }
    }

    /// Replaces the set of model names allowed as `model` label values.
    ///
    /// Call at startup and after every config reload with every model the
    /// configuration names (routes, aliases, overrides, discovery). Series
    /// of models dropped from the config stay exported with their final
    /// values, which keeps counters monotonic for the scraper.
    pub fn set_known_models(&self, models: impl IntoIterator<Item = String>) {
        self.known_models.store(Arc::new(models.into_iter().collect()));
    }

    /// Replaces the set of provider names allowed as `provider` label values;
    /// see [`Metrics::set_known_models`].
    pub fn set_known_providers(&self, providers: impl IntoIterator<Item = String>) {
        self.known_providers.store(Arc::new(providers.into_iter().collect()));
    }

    /// Counts one request as in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Requests in flight now (the recorder's shutdown linger stops early at 0).
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.get().max(0) as usize
    }

    /// Records one finished request in every series it concerns.
    pub fn observe(&self, o: &RequestObservation<'_>) {
        let key = SeriesKey {
            endpoint: o.endpoint,
            provider: bounded(o.provider, &self.known_providers.load()),
            model: bounded(o.model, &self.known_models.load()),
            status: o.status,
        };
        let hash = self.hasher.hash_one(key);
        if let Some(series) = self.series.load().get(&hash).filter(|s| s.is(&key)) {
            series.record(self, o);
            return;
        }
        // First request of this kind: fetch the children once and cache them.
        let Some(series) = Series::new(self, &key).map(Arc::new) else {
            return;
        };
        series.record(self, o);
        // On a 64-bit hash collision the slot keeps its first owner and the
        // other key stays on this slow path: slower, still correct.
        self.series.rcu(|map| {
            let mut map = SeriesMap::clone(map);
            map.entry(hash).or_insert_with(|| series.clone());
            map
        });
    }

    /// Counts one configuration reload attempt; `ok` is whether the new
    /// configuration was compiled and swapped in.
    pub fn config_reload(&self, ok: bool) {
        if ok {
            self.reload_success.inc();
        } else {
            self.reload_failure.inc();
        }
    }

    /// Makes `switchyard_usage_records_dropped_total` follow `source`, a
    /// reader of the usage recorder's own running total of dropped records
    /// (e.g. `move || recorder.dropped()`).
    ///
    /// The recorder counts drops in a plain atomic on its hot path and knows
    /// nothing about Prometheus; [`Metrics::render`] calls `source` and adds
    /// whatever it gained since the previous scrape to the exported counter,
    /// so the metric is exact at every scrape at no cost per drop. Install
    /// the source once per recorder: a newly installed source is counted from
    /// zero on top of the total so far (the exported counter never goes
    /// backwards, even if a source does), so installing the same recorder
    /// twice would count its past drops twice.
    pub fn set_dropped_source(&self, source: impl Fn() -> u64 + Send + Sync + 'static) {
        let mut sync = self
            .dropped_sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sync.source = Some(Box::new(source));
        sync.synced = 0;
    }

    /// Renders every series in the Prometheus text exposition format 0.0.4;
    /// returns the `Content-Type` to send and the body.
    pub fn render(&self) -> (String, Vec<u8>) {
        self.sync_dropped();
        self.sync_store();
        self.sync_limiter();
        self.sync_circuits();
        let encoder = TextEncoder::new();
        let families = self.registry.gather();
        let mut body = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail on I/O, and the registry only
        // yields non-empty families; log rather than panic if that changes.
        if let Err(e) = encoder.encode(&families, &mut body) {
            log::error!("metrics: encoding the exposition failed: {e}");
        }
        (encoder.format_type().to_string(), body)
    }

    /// Where `switchyard_circuit_state` comes from (read at each scrape).
    pub fn set_circuit_source(&self, source: impl Fn() -> Vec<(String, String, i64)> + Send + Sync + 'static) {
        *self.circuit_source.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(source));
    }

    fn sync_circuits(&self) {
        let source = self.circuit_source.lock().unwrap_or_else(|p| p.into_inner());
        let Some(read) = source.as_ref() else { return };
        // Circuits are only added, so a reset then set leaves no stale series.
        self.circuit_state.reset();
        for (provider, model, state) in read() {
            self.circuit_state.with_label_values(&[&provider, &model]).set(state);
        }
    }

    /// Where the store metrics come from (the recorder's view of the store).
    pub fn set_store_source(&self, source: impl Fn() -> (u64, bool) + Send + Sync + 'static) {
        let mut sync = self.store_sync.lock().unwrap_or_else(|p| p.into_inner());
        sync.source = Some(Box::new(source));
        sync.synced = 0;
    }

    fn sync_store(&self) {
        sync_backend(&self.store_sync, &self.store_failures, &self.store_up);
    }

    /// Where the limiter metrics come from (the shared backend's failure
    /// count and whether it is connected).
    pub fn set_limiter_source(&self, source: impl Fn() -> (u64, bool) + Send + Sync + 'static) {
        let mut sync = self.limiter_sync.lock().unwrap_or_else(|p| p.into_inner());
        sync.source = Some(Box::new(source));
        sync.synced = 0;
    }

    fn sync_limiter(&self) {
        sync_backend(&self.limiter_sync, &self.limiter_errors, &self.limiter_up);
    }

    /// Brings the dropped-records counter up to date with its source.
    fn sync_dropped(&self) {
        let mut sync = self
            .dropped_sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(now) = sync.source.as_ref().map(|read| read()) else {
            return;
        };
        if now > sync.synced {
            self.dropped.inc_by(now - sync.synced);
        }
        // A source that went backwards was reset; follow it from there
        // without un-counting what was already exported.
        sync.synced = now;
    }
}

/// Maps a caller- or upstream-supplied name to a bounded label value.
fn bounded<'a>(name: Option<&'a str>, known: &HashSet<String>) -> &'a str {
    match name {
        None => NONE,
        Some(n) if known.contains(n) => n,
        Some(_) => OTHER,
    }
}

/// The child in `cell`, created by `make` on first use.
fn lazy<M>(cell: &OnceLock<M>, make: impl FnOnce() -> prometheus::Result<M>) -> Option<&M> {
    if let Some(m) = cell.get() {
        return Some(m);
    }
    let m = child(make())?;
    Some(cell.get_or_init(|| m))
}

/// Unwraps a metric child; the only error prometheus can return here is a
/// label-count mismatch, a programming error the tests catch.
fn child<M>(r: prometheus::Result<M>) -> Option<M> {
    debug_assert!(r.is_ok(), "label count mismatch: {:?}", r.as_ref().err());
    r.ok()
}

/// Formats a status code as decimal text in `buf`, without allocating.
fn status_text(code: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = code;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
