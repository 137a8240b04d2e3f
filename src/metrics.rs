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

use arc_swap::ArcSwap;
use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
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
];

/// Everything the gateway knows about one finished request, handed to
/// [`Metrics::observe`] from the `logging` phase.
///
/// Borrowed strings keep the hot path free of allocation: the request
/// context already owns them.
#[derive(Debug, Clone, Copy)]
pub struct RequestObservation<'a> {
    /// Endpoint label from the gateway's fixed endpoint table (e.g.
    /// `proxy::Endpoint::label()`); must never be a raw request path, which
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

/// Hasher for keys that already are hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `SeriesMap`; mix anything else anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Reads the usage recorder's running total of dropped records.
type DroppedSource = Box<dyn Fn() -> u64 + Send + Sync>;

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
                "Requests currently being served, streams included.",
            )
            .expect("static metric definition is valid"),
        );
        let upstream_errors = counter_vec(
            "switchyard_upstream_errors_total",
            "Failed upstream exchanges, by provider and failure kind.",
            &["provider", "kind"],
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
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// One parsed sample line: metric name, labels, value.
    type Sample = (String, BTreeMap<String, String>, f64);

    /// Parses the text exposition; enough for our label values, which never
    /// contain quotes, commas or escapes.
    fn parse(body: &[u8]) -> Vec<Sample> {
        let text = std::str::from_utf8(body).expect("exposition is UTF-8");
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value.parse().expect("numeric value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once("=\"").expect("label k=v");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            out.push((name, labels, value));
        }
        out
    }

    /// The value of the sample with exactly this name and label set.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// Every sample of one metric name.
    fn series<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
        samples.iter().filter(|(n, _, _)| n == name).collect()
    }

    fn scrape(m: &Metrics) -> Vec<Sample> {
        let (ctype, body) = m.render();
        assert_eq!(ctype, "text/plain; version=0.0.4");
        parse(&body)
    }

    fn configured() -> Metrics {
        let m = Metrics::new();
        m.set_known_models(["gpt-4o".to_string(), "claude-sonnet-4".to_string()]);
        m.set_known_providers(["openai".to_string(), "anthropic".to_string()]);
        m
    }

    fn ok_chat<'a>(provider: &'a str, model: &'a str) -> RequestObservation<'a> {
        RequestObservation {
            endpoint: "chat_completions",
            provider: Some(provider),
            model: Some(model),
            status: 200,
            duration: Duration::from_millis(800),
            ttft: None,
            usage: Some(Usage {
                input_tokens: 100,
                output_tokens: 20,
                cached_input_tokens: 40,
                cache_write_tokens: 0,
                reasoning_tokens: 5,
            }),
            cost_usd: Some(0.001),
            upstream_error: None,
        }
    }

    #[test]
    fn known_mix_gives_exact_counts() {
        let m = configured();
        // 3 plain successes.
        for _ in 0..3 {
            m.observe(&ok_chat("openai", "gpt-4o"));
        }
        // 1 stream with a TTFT and cache writes.
        m.observe(&RequestObservation {
            endpoint: "messages",
            ttft: Some(Duration::from_millis(300)),
            duration: Duration::from_secs(45),
            usage: Some(Usage {
                input_tokens: 1000,
                output_tokens: 500,
                cached_input_tokens: 0,
                cache_write_tokens: 900,
                reasoning_tokens: 0,
            }),
            cost_usd: Some(0.25),
            ..ok_chat("anthropic", "claude-sonnet-4")
        });
        // 2 upstream failures: a timeout and a 5xx.
        for kind in ["timeout", "status_5xx"] {
            m.observe(&RequestObservation {
                status: 502,
                duration: Duration::from_millis(30_000),
                usage: None,
                cost_usd: None,
                upstream_error: Some(kind),
                ..ok_chat("openai", "gpt-4o")
            });
        }
        // 1 rejected before routing: a local 0.7 ms answer.
        m.observe(&RequestObservation {
            endpoint: "unknown",
            provider: None,
            model: None,
            status: 404,
            duration: Duration::from_micros(700),
            ttft: None,
            usage: None,
            cost_usd: None,
            upstream_error: None,
        });

        let s = scrape(&m);
        let req = |e, p, mo, st| {
            value(
                &s,
                "switchyard_requests_total",
                &[("endpoint", e), ("provider", p), ("model", mo), ("status", st)],
            )
        };
        assert_eq!(req("chat_completions", "openai", "gpt-4o", "200"), Some(3.0));
        assert_eq!(req("chat_completions", "openai", "gpt-4o", "502"), Some(2.0));
        assert_eq!(req("messages", "anthropic", "claude-sonnet-4", "200"), Some(1.0));
        assert_eq!(req("unknown", "none", "none", "404"), Some(1.0));
        assert_eq!(series(&s, "switchyard_requests_total").len(), 4);

        let hist = |name: &str, suffix: &str, e, p, extra: &[(&str, &str)]| {
            let mut labels = vec![("endpoint", e), ("provider", p)];
            labels.extend_from_slice(extra);
            value(&s, &format!("{name}{suffix}"), &labels)
        };
        let dur = "switchyard_request_duration_seconds";
        assert_eq!(hist(dur, "_count", "chat_completions", "openai", &[]), Some(5.0));
        assert_eq!(hist(dur, "_count", "messages", "anthropic", &[]), Some(1.0));
        assert_eq!(hist(dur, "_count", "unknown", "none", &[]), Some(1.0));
        // 0.7 ms lands in the 1 ms bucket, not the 0.5 ms one.
        assert_eq!(hist(dur, "_bucket", "unknown", "none", &[("le", "0.0005")]), Some(0.0));
        assert_eq!(hist(dur, "_bucket", "unknown", "none", &[("le", "0.001")]), Some(1.0));
        // 3 × 0.8 s ≤ 1 s; the two 30 s failures fall in le=30.
        assert_eq!(
            hist(dur, "_bucket", "chat_completions", "openai", &[("le", "1")]),
            Some(3.0)
        );
        assert_eq!(
            hist(dur, "_bucket", "chat_completions", "openai", &[("le", "30")]),
            Some(5.0)
        );
        assert_eq!(
            hist(dur, "_bucket", "chat_completions", "openai", &[("le", "+Inf")]),
            Some(5.0)
        );
        let sum = hist(dur, "_sum", "chat_completions", "openai", &[]).expect("sum");
        assert!((sum - 62.4).abs() < 1e-9, "{sum}");
        // All 18 buckets plus +Inf are exported.
        let buckets = s
            .iter()
            .filter(|(n, l, _)| {
                n == "switchyard_request_duration_seconds_bucket"
                    && l.get("endpoint").map(String::as_str) == Some("messages")
            })
            .count();
        assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);

        let ttft = "switchyard_ttft_seconds";
        assert_eq!(hist(ttft, "_count", "messages", "anthropic", &[]), Some(1.0));
        assert_eq!(hist(ttft, "_count", "chat_completions", "openai", &[]), None);

        let tok = |p, mo, d| {
            value(
                &s,
                "switchyard_tokens_total",
                &[("provider", p), ("model", mo), ("direction", d)],
            )
        };
        assert_eq!(tok("openai", "gpt-4o", "input"), Some(300.0));
        assert_eq!(tok("openai", "gpt-4o", "output"), Some(60.0));
        assert_eq!(tok("openai", "gpt-4o", "cached_input"), Some(120.0));
        assert_eq!(tok("openai", "gpt-4o", "reasoning"), Some(15.0));
        // Zero counts create no series.
        assert_eq!(tok("openai", "gpt-4o", "cache_write"), None);
        assert_eq!(tok("anthropic", "claude-sonnet-4", "cache_write"), Some(900.0));
        assert_eq!(tok("anthropic", "claude-sonnet-4", "input"), Some(1000.0));
        assert_eq!(tok("anthropic", "claude-sonnet-4", "output"), Some(500.0));

        let cost = |p, mo| value(&s, "switchyard_cost_usd_total", &[("provider", p), ("model", mo)]);
        let c = cost("openai", "gpt-4o").expect("openai cost");
        assert!((c - 0.003).abs() < 1e-12, "{c}");
        assert_eq!(cost("anthropic", "claude-sonnet-4"), Some(0.25));

        let err = |p, k| value(&s, "switchyard_upstream_errors_total", &[("provider", p), ("kind", k)]);
        assert_eq!(err("openai", "timeout"), Some(1.0));
        assert_eq!(err("openai", "status_5xx"), Some(1.0));
        assert_eq!(series(&s, "switchyard_upstream_errors_total").len(), 2);

        // Deltas: one more success moves exactly one counter and one count.
        m.observe(&ok_chat("openai", "gpt-4o"));
        let s2 = scrape(&m);
        assert_eq!(
            value(
                &s2,
                "switchyard_requests_total",
                &[
                    ("endpoint", "chat_completions"),
                    ("provider", "openai"),
                    ("model", "gpt-4o"),
                    ("status", "200")
                ],
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &s2,
                "switchyard_request_duration_seconds_count",
                &[("endpoint", "chat_completions"), ("provider", "openai")],
            ),
            Some(6.0)
        );
    }

    #[test]
    fn unknown_names_collapse_to_other() {
        let m = configured();
        m.observe(&RequestObservation {
            upstream_error: Some("some new failure"),
            ..ok_chat("openai", "gpt-9-ultra")
        });
        m.observe(&ok_chat("rogue-provider", "gpt-4o"));
        m.observe(&ok_chat("x", "y"));
        let s = scrape(&m);
        let req = |p, mo| {
            value(
                &s,
                "switchyard_requests_total",
                &[
                    ("endpoint", "chat_completions"),
                    ("provider", p),
                    ("model", mo),
                    ("status", "200"),
                ],
            )
        };
        assert_eq!(req("openai", "other"), Some(1.0));
        assert_eq!(req("other", "gpt-4o"), Some(1.0));
        assert_eq!(req("other", "other"), Some(1.0));
        assert_eq!(series(&s, "switchyard_requests_total").len(), 3);
        assert_eq!(
            value(
                &s,
                "switchyard_tokens_total",
                &[("provider", "openai"), ("model", "other"), ("direction", "input")],
            ),
            Some(100.0)
        );
        assert_eq!(
            value(
                &s,
                "switchyard_upstream_errors_total",
                &[("provider", "openai"), ("kind", "other")],
            ),
            Some(1.0)
        );
        let text = String::from_utf8(m.render().1).expect("utf-8");
        assert!(!text.contains("gpt-9-ultra") && !text.contains("rogue-provider"));

        // After a reload that names the model, it gets its own series.
        m.set_known_models(["gpt-9-ultra".to_string()]);
        m.observe(&ok_chat("openai", "gpt-9-ultra"));
        m.observe(&ok_chat("openai", "gpt-4o"));
        let s = scrape(&m);
        let req = |mo| {
            value(
                &s,
                "switchyard_requests_total",
                &[
                    ("endpoint", "chat_completions"),
                    ("provider", "openai"),
                    ("model", mo),
                    ("status", "200"),
                ],
            )
        };
        assert_eq!(req("gpt-9-ultra"), Some(1.0));
        // gpt-4o is no longer configured: now `other`.
        assert_eq!(req("other"), Some(2.0));
    }

    #[test]
    fn in_flight_guard_counts_until_dropped() {
        let m = Metrics::new();
        let gauge = |m: &Metrics| value(&scrape(m), "switchyard_in_flight_requests", &[]);
        assert_eq!(gauge(&m), Some(0.0));
        let a = m.in_flight();
        let b = m.in_flight();
        assert_eq!(gauge(&m), Some(2.0));
        drop(a);
        assert_eq!(gauge(&m), Some(1.0));
        // The guard is 'static and Send, so it can live in a request context
        // that moves between threads.
        std::thread::spawn(move || drop(b)).join().expect("thread");
        assert_eq!(gauge(&m), Some(0.0));
    }

    #[test]
    fn dropped_records_follow_their_source() {
        let m = Metrics::new();
        let dropped = |m: &Metrics| value(&scrape(m), "switchyard_usage_records_dropped_total", &[]);
        assert_eq!(dropped(&m), Some(0.0));
        let src = Arc::new(AtomicU64::new(0));
        let reader = src.clone();
        m.set_dropped_source(move || reader.load(Ordering::Relaxed));
        src.fetch_add(3, Ordering::Relaxed);
        assert_eq!(dropped(&m), Some(3.0));
        assert_eq!(dropped(&m), Some(3.0), "a scrape must not re-add");
        src.fetch_add(2, Ordering::Relaxed);
        assert_eq!(dropped(&m), Some(5.0));
        // A new recorder starts from zero; its drops add to the total.
        let src2 = Arc::new(AtomicU64::new(1));
        let reader = src2.clone();
        m.set_dropped_source(move || reader.load(Ordering::Relaxed));
        assert_eq!(dropped(&m), Some(6.0));
        // A source going backwards never makes the counter go down.
        src2.store(0, Ordering::Relaxed);
        assert_eq!(dropped(&m), Some(6.0));
        src2.store(4, Ordering::Relaxed);
        assert_eq!(dropped(&m), Some(10.0));
    }

    #[test]
    fn reloads_build_info_and_static_series() {
        let m = Metrics::new();
        let s = scrape(&m);
        let reloads = |s: &[Sample], r| value(s, "switchyard_config_reloads_total", &[("result", r)]);
        assert_eq!(reloads(&s, "success"), Some(0.0));
        assert_eq!(reloads(&s, "failure"), Some(0.0));
        assert_eq!(
            value(&s, "switchyard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
            Some(1.0)
        );
        m.config_reload(true);
        m.config_reload(true);
        m.config_reload(false);
        let s = scrape(&m);
        assert_eq!(reloads(&s, "success"), Some(2.0));
        assert_eq!(reloads(&s, "failure"), Some(1.0));
        let (_, body) = m.render();
        let text = String::from_utf8(body).expect("utf-8");
        for name in [
            "switchyard_in_flight_requests",
            "switchyard_config_reloads_total",
            "switchyard_usage_records_dropped_total",
            "switchyard_build_info",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("# TYPE switchyard_usage_records_dropped_total counter"));
    }

    #[test]
    fn bad_costs_are_ignored_and_instances_are_independent() {
        let a = configured();
        let b = configured();
        for cost in [Some(-1.0), Some(f64::NAN), Some(f64::INFINITY), Some(0.0), None] {
            a.observe(&RequestObservation {
                cost_usd: cost,
                ..ok_chat("openai", "gpt-4o")
            });
        }
        let s = scrape(&a);
        assert!(series(&s, "switchyard_cost_usd_total").is_empty());
        assert_eq!(
            value(
                &s,
                "switchyard_requests_total",
                &[
                    ("endpoint", "chat_completions"),
                    ("provider", "openai"),
                    ("model", "gpt-4o"),
                    ("status", "200"),
                ],
            ),
            Some(5.0)
        );
        assert!(series(&scrape(&b), "switchyard_requests_total").is_empty());
    }

    #[test]
    fn hash_collisions_fall_back_to_the_slow_path() {
        let m = configured();
        m.observe(&ok_chat("anthropic", "claude-sonnet-4"));
        // Plant the anthropic entry under the hash of the openai key.
        let key = SeriesKey {
            endpoint: "chat_completions",
            provider: "openai",
            model: "gpt-4o",
            status: 200,
        };
        let planted = m.series.load().values().next().cloned().expect("one cached series");
        m.series
            .store(Arc::new(std::iter::once((m.hasher.hash_one(key), planted)).collect()));
        for _ in 0..2 {
            m.observe(&ok_chat("openai", "gpt-4o"));
        }
        let s = scrape(&m);
        let req = |p, mo| {
            value(
                &s,
                "switchyard_requests_total",
                &[
                    ("endpoint", "chat_completions"),
                    ("provider", p),
                    ("model", mo),
                    ("status", "200"),
                ],
            )
        };
        assert_eq!(req("openai", "gpt-4o"), Some(2.0));
        assert_eq!(req("anthropic", "claude-sonnet-4"), Some(1.0));
        assert_eq!(
            value(
                &s,
                "switchyard_tokens_total",
                &[("provider", "openai"), ("model", "gpt-4o"), ("direction", "input")],
            ),
            Some(200.0)
        );
    }

    #[test]
    fn status_codes_format_without_allocation() {
        let mut buf = [0u8; 5];
        for (code, text) in [
            (0, "0"),
            (7, "7"),
            (42, "42"),
            (200, "200"),
            (499, "499"),
            (65535, "65535"),
        ] {
            assert_eq!(status_text(code, &mut buf), text);
        }
    }

    /// Cost of one `observe` of a typical streamed chat request (status,
    /// duration, TTFT, four token directions, cost). Run with
    /// `cargo test --release metrics::tests::observe_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run in release by hand"]
    fn observe_cost() {
        let m = Arc::new(configured());
        let o = RequestObservation {
            ttft: Some(Duration::from_millis(250)),
            ..ok_chat("openai", "gpt-4o")
        };
        let n = 2_000_000u32;
        for _ in 0..10_000 {
            m.observe(&o);
        }
        let t = std::time::Instant::now();
        for _ in 0..n {
            m.observe(std::hint::black_box(&o));
        }
        let single = t.elapsed().as_nanos() as f64 / f64::from(n);

        let threads = 2;
        let t = std::time::Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..n {
                        m.observe(std::hint::black_box(&o));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let contended = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "observe: {single:.0} ns/op single-threaded; {contended:.0} ns wall per op-pair \
             with {threads} threads on the same series"
        );
    }
}
