//! Backend-neutral query vocabulary: roll-up counters, grouping, log filters,
//! cursors, pages, model overrides. Pure types and predicates, so every
//! backend answers the admin API the same way.

use crate::record::{CostSource, UsageRecord};
use serde::{Deserialize, Serialize};

/// Milliseconds per UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// UTC day number (days since 1970-01-01) of a Unix-ms timestamp; roll-ups
/// are keyed by it.
pub fn day_of(ts_ms: u64) -> u32 {
    u32::try_from(ts_ms / DAY_MS).unwrap_or(u32::MAX)
}

/// Summed usage of a set of requests: what every roll-up row holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Requests.
    pub requests: u64,
    /// Requests answered with status ≥ 400 or carrying an error kind.
    pub errors: u64,
    /// Requests whose client went away mid-response.
    pub partial: u64,
    /// Prompt tokens (cached included).
    pub input_tokens: u64,
    /// Generated tokens (reasoning included).
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Sum of known costs, USD.
    pub cost_usd: f64,
    /// Requests whose cost is unknown (not included in `cost_usd`).
    pub cost_unknown: u64,
    /// Sum of durations, ms (average = this / requests).
    pub duration_ms: u64,
}

impl Counters {
    /// Adds one record.
    pub fn add_record(&mut self, r: &UsageRecord) {
        self.requests += 1;
        if r.status >= 400 || r.error.is_some() {
            self.errors += 1;
        }
        if r.partial {
            self.partial += 1;
        }
        let u = &r.usage;
        self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(u.cached_input_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(u.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(u.reasoning_tokens);
        match (r.cost_usd, r.cost_source) {
            (Some(c), s) if s != CostSource::Unknown && c.is_finite() => self.cost_usd += c,
            _ => self.cost_unknown += 1,
        }
        self.duration_ms = self.duration_ms.saturating_add(u64::from(r.duration_ms));
    }

    /// Adds another set of counters.
    pub fn merge(&mut self, o: &Counters) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        self.partial = self.partial.saturating_add(o.partial);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(o.cached_input_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost_usd += o.cost_usd;
        self.cost_unknown = self.cost_unknown.saturating_add(o.cost_unknown);
        self.duration_ms = self.duration_ms.saturating_add(o.duration_ms);
    }
}

/// The dimension a roll-up query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// Everything in one group.
    Total,
    /// Provider instance.
    Provider,
    /// `provider` + model (the upstream model; the requested one when
    /// routing failed).
    Model,
    /// User path node, every ancestor included (`/org` sums its subtree).
    UserPath,
    /// One tag `k=v` (requests with several tags count in each).
    Tag,
    /// Managed key id (empty: master key).
    Key,
}

/// The value identifying a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// The single group of [`GroupBy::Total`].
    Total,
    /// A provider instance.
    Provider(String),
    /// A model at a provider.
    Model {
        /// Provider instance (empty when routing failed).
        provider: String,
        /// Model name.
        model: String,
    },
    /// A user path node.
    UserPath(String),
    /// A tag pair.
    Tag {
        /// Tag name.
        key: String,
        /// Tag value.
        value: String,
    },
    /// A managed key id.
    Key(String),
}

impl GroupKey {
    /// A display label: `provider/model`, `k=v`, the path, the key id.
    pub fn label(&self) -> String {
        match self {
            GroupKey::Total => String::new(),
            GroupKey::Provider(s) | GroupKey::UserPath(s) | GroupKey::Key(s) => s.clone(),
            GroupKey::Model { provider, model } if provider.is_empty() => model.clone(),
            GroupKey::Model { provider, model } => format!("{provider}/{model}"),
            GroupKey::Tag { key, value } => format!("{key}={value}"),
        }
    }
}

/// A roll-up query over whole UTC days (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupQuery {
    /// First day (see [`day_of`]).
    pub from_day: u32,
    /// Last day, inclusive.
    pub to_day: u32,
    /// Grouping.
    pub group_by: GroupBy,
    /// One row per (day, group) instead of per group.
    pub per_day: bool,
}

/// One result row of a roll-up query.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The day, when the query was per day.
    pub day: Option<u32>,
    /// The group.
    pub key: GroupKey,
    /// Its sums.
    pub counters: Counters,
}

/// Status filter for logs: an exact code or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this status.
    Exact(u16),
    /// `N`xx: status / 100 == N.
    Class(u16),
}

impl StatusFilter {
    /// Whether `status` passes.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusFilter::Exact(s) => status == *s,
            StatusFilter::Class(c) => status / 100 == *c,
        }
    }
}

/// Filters shared by the usage and audit logs. Time bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Oldest timestamp, ms.
    pub from_ms: Option<u64>,
    /// Newest timestamp, ms.
    pub to_ms: Option<u64>,
    /// Requested model, upstream model or `provider/model`.
    pub model: Option<String>,
    /// Provider instance.
    pub provider: Option<String>,
    /// User path prefix, segment-wise (`/a` matches `/a` and `/a/b`, not `/ab`).
    pub user_path: Option<String>,
    /// Status.
    pub status: Option<StatusFilter>,
}

/// Whether `path` lies under `prefix`, segment-wise. A prefix ending in `/`
/// (or empty) is a plain string prefix.
pub fn path_under(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() || prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `/a/b/c` → `/a`, `/a/b`, `/a/b/c`: the nodes a request rolls up to. An
/// empty path is its own single node (unattributed traffic).
pub fn path_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let ends = path
        .char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(|(i, _)| i)
        .chain(std::iter::once(path.len()));
    let mut last = None;
    ends.filter_map(move |e| {
        let s = path.get(..e)?;
        if last == Some(e) || s.ends_with('/') {
            return None;
        }
        last = Some(e);
        Some(s)
    })
}

impl LogFilter {
    /// Whether a usage record (fields passed individually so views match
    /// without allocating) passes.
    #[allow(clippy::too_many_arguments)]
    pub fn matches_usage(
        &self,
        ts_ms: u64,
        provider: &str,
        model: &str,
        upstream_model: &str,
        user_path: &str,
        status: u16,
    ) -> bool {
        if self.from_ms.is_some_and(|f| ts_ms < f) || self.to_ms.is_some_and(|t| ts_ms > t) {
            return false;
        }
        if self.provider.as_deref().is_some_and(|p| p != provider) {
            return false;
        }
        if let Some(m) = self.model.as_deref() {
            let full = m
                .split_once('/')
                .is_some_and(|(p, rest)| p == provider && rest == upstream_model);
            if m != model && m != upstream_model && !full {
                return false;
            }
        }
        if self.user_path.as_deref().is_some_and(|p| !path_under(user_path, p)) {
            return false;
        }
        self.status.is_none_or(|s| s.matches(status))
    }

    /// Whether an audit entry passes (model/provider come from its route
    /// `provider/upstream_model`); fields passed individually so stored
    /// views match without allocating.
    pub fn matches_audit(&self, ts_ms: u64, route: &str, user_path: &str, status: u16) -> bool {
        let (provider, model) = route.split_once('/').unwrap_or(("", route));
        self.matches_usage(ts_ms, provider, model, model, user_path, status)
    }
}

/// A position in a newest-first log: the last item returned. The next page
/// holds items strictly older in `(ts_ms, request_id)` order, so pages stay
/// stable while new requests arrive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Timestamp of the last item.
    pub ts_ms: u64,
    /// Its request id.
    pub request_id: String,
}

/// One page of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<Cursor>,
}

/// An operator's override of one public model (used by a later issue):
/// reroute it, disable it, or pin request parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]

pub struct ModelOverride {
    /// Route to this `provider/model` instead.
    #[serde(default)]
    pub target: Option<String>,
    /// Refuse requests for the model.
    #[serde(default)]
    pub disabled: bool,
    /// Parameters pinned on every request (`temperature`, …).
    #[serde(default)]
    pub defaults: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_and_prefixes() {
        let a: Vec<&str> = path_ancestors("/org/team/user").collect();
        assert_eq!(a, ["/org", "/org/team", "/org/team/user"]);
        assert_eq!(path_ancestors("").collect::<Vec<_>>(), [""]);
        assert_eq!(path_ancestors("/x").collect::<Vec<_>>(), ["/x"]);
        assert_eq!(path_ancestors("/x/").collect::<Vec<_>>(), ["/x"]);
        assert!(path_under("/org/team", "/org"));
        assert!(path_under("/org", "/org"));
        assert!(!path_under("/organic", "/org"));
        assert!(!path_under("/organic", "/org/"));
        assert!(path_under("/org/x", "/org/"));
        assert!(path_under("anything", ""));
    }

    #[test]
    fn status_filters() {
        assert!(StatusFilter::Class(4).matches(429));
        assert!(!StatusFilter::Class(4).matches(500));
        assert!(StatusFilter::Exact(200).matches(200));
    }

    #[test]
    fn model_filter_accepts_each_spelling() {
        let f = |m: &str| LogFilter {
            model: Some(m.into()),
            ..Default::default()
        };
        let ok = |f: &LogFilter| f.matches_usage(1, "openai", "fast", "gpt-4o", "", 200);
        assert!(ok(&f("fast")));
        assert!(ok(&f("gpt-4o")));
        assert!(ok(&f("openai/gpt-4o")));
        assert!(!ok(&f("groq/gpt-4o")));
    }
}
