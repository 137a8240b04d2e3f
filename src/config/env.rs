//! Providers: file entries first, then the environment field by field
//! (`OPENAI_API_KEY`, `OPENAI_EAST_BASE_URL`, `OPENAI_API_KEY_2`, …), then
//! each family's defaults; every problem is reported with its path.

use super::file::FileConfig;
use super::{err, ConfigError};
use crate::providers::{BaseUrl, Family, Provider, ProviderSettings};
use crate::secret::Secret;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A provider being assembled from file and env before validation.
#[derive(Default)]
struct Draft {
    kind: Option<&'static Family>,
    base_url: Option<(String, String)>, // (value, source path)
    keys: BTreeMap<u32, String>,        // rotation order: 1 = the unsuffixed key
    models: Option<Vec<String>>,
    headers: Vec<(String, String)>,
    api_version: Option<String>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    discover: Option<bool>,
    retry: Option<super::file::RetryFile>,
    breaker: Option<super::file::BreakerFile>,
    first_byte_timeout_ms: Option<u64>,
    stream_idle_timeout_ms: Option<u64>,
    key_cooldown_seconds: Option<u64>,
    order: (u8, usize, String),
}

/// Splits an env name like `OPENAI_EAST_API_KEY_2` into (kind, instance
/// suffix, field, rotation index).
pub(super) fn classify_env(name: &str) -> Option<(&'static Family, String, &'static str, u32)> {
    const FIELDS: [&str; 4] = ["_API_KEY", "_BASE_URL", "_MODELS", "_API_VERSION"];
    let (stem, index) = match name.rsplit_once('_') {
        Some((s, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && s.ends_with("_API_KEY") => {
            (s, n.parse().ok()?)
        }
        _ => (name, 1),
    };
    let field = FIELDS.iter().find(|f| stem.ends_with(*f))?;
    let prefix = &stem[..stem.len() - field.len()];
    // Longest matching prefix wins (AZURE_OPENAI before AZURE).
    let mut best: Option<(&'static Family, &str)> = None;
    for f in Family::all() {
        for p in f.env_prefixes {
            let matches = prefix == *p || prefix.starts_with(&format!("{p}_"));
            if matches && best.is_none_or(|(_, b)| p.len() > b.len()) {
                best = Some((f, p));
            }
        }
    }
    let (kind, p) = best?;
    let suffix = prefix[p.len()..]
        .trim_start_matches('_')
        .to_ascii_lowercase()
        .replace('_', "-");
    Some((kind, suffix, &field[1..], index))
}

pub(super) fn build_providers(
    file: &FileConfig,
    env: &HashMap<String, String>,
    errs: &mut Vec<ConfigError>,
) -> Vec<Arc<Provider>> {
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    // File first (lower precedence), in file order.
    for (i, (name, pf)) in file.providers.iter().flatten().enumerate() {
        let path = format!("providers.{name}");
        let kind_name = pf.kind.clone().unwrap_or_else(|| name.clone());
        let kind = Family::by_name(&kind_name);
        if kind.is_none() {
            let known: Vec<_> = Family::all().map(|f| f.name).collect();
            errs.push(err(
                &format!("{path}.type"),
                format!("unknown provider type `{kind_name}` (known: {})", known.join(", ")),
            ));
            continue;
        }
        let d = drafts.entry(name.clone()).or_default();
        d.kind = kind;
        d.order = (0, i, name.clone());
        d.base_url = pf
            .base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .map(|u| (u.trim().to_string(), format!("{path}.base_url")));
        // `${VAR:-}` of an unset variable yields "": that is no key at all.
        if let Some(k) = pf.api_key.as_ref().filter(|k| !k.trim().is_empty()) {
            d.keys.insert(1, k.trim().to_string());
        }
        let extra = pf.api_keys.iter().flatten().filter(|k| !k.trim().is_empty());
        for (j, k) in extra.enumerate() {
            d.keys.insert(100 + j as u32, k.trim().to_string());
        }
        d.models = pf.models.clone();
        d.headers = pf
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        d.api_version = pf.api_version.clone();
        d.connect_timeout_ms = pf.connect_timeout_ms;
        d.read_timeout_ms = pf.read_timeout_ms;
        d.discover = pf.discover_models;
        d.retry = pf.retry;
        d.breaker = pf.circuit_breaker;
        d.first_byte_timeout_ms = pf.first_byte_timeout_ms;
        d.stream_idle_timeout_ms = pf.stream_idle_timeout_ms;
        d.key_cooldown_seconds = pf.key_cooldown_seconds;
    }
    // Environment wins field by field.
    let mut names: Vec<&String> = env.keys().collect();
    names.sort();
    for var in names {
        let Some((kind, suffix, field, index)) = classify_env(var) else {
            continue;
        };
        let value = env[var].trim().to_string();
        if value.is_empty() {
            continue;
        }
        let name = if suffix.is_empty() {
            kind.name.to_string()
        } else {
            format!("{}-{suffix}", kind.name)
        };
        let kind_pos = Family::all().position(|f| f == kind).unwrap_or(0);
        let d = drafts.entry(name.clone()).or_insert_with(|| Draft {
            order: (1, kind_pos, name.clone()),
            ..Draft::default()
        });
        if d.kind.is_none() {
            d.kind = Some(kind);
        }
        match field {
            "API_KEY" => {
                d.keys.insert(index, value);
            }
            "BASE_URL" => d.base_url = Some((value, format!("env {var}"))),
            "MODELS" => {
                d.models = Some(
                    value
                        .split(',')
                        .map(|m| m.trim().to_string())
                        .filter(|m| !m.is_empty())
                        .collect(),
                )
            }
            "API_VERSION" => d.api_version = Some(value),
            _ => {}
        }
    }
    let mut list: Vec<(String, Draft)> = drafts.into_iter().collect();
    list.sort_by(|a, b| a.1.order.cmp(&b.1.order));
    let mut out = Vec::new();
    for (name, d) in list {
        let Some(kind) = d.kind else { continue };
        let info = kind;
        let path = if d.order.0 == 0 {
            format!("providers.{name}")
        } else {
            format!("env {}", info.env_prefixes[0])
        };
        let from_file = d.order.0 == 0;
        if d.keys.is_empty() && d.base_url.is_none() && !from_file {
            continue; // env had only _MODELS: nothing to talk to
        }
        let (url, url_path) = match (&d.base_url, info.default_base_url) {
            (Some((u, p)), _) => (u.clone(), p.clone()),
            (None, Some(def)) => (def.to_string(), format!("{path}.base_url")),
            (None, None) => {
                errs.push(err(
                    &format!("{path}.base_url"),
                    format!("provider `{name}` ({}) needs a base URL", info.name),
                ));
                continue;
            }
        };
        let mut base = match BaseUrl::parse(&url) {
            Ok(b) => b,
            Err(m) => {
                errs.push(err(&url_path, m));
                continue;
            }
        };
        if let Some(path) = kind.bare_url_path.filter(|_| base.path.is_empty()) {
            base.path = path.into();
        }
        if d.keys.is_empty() && !info.key_optional && (d.base_url.is_none() || from_file) {
            errs.push(err(
                &format!("{path}.api_key"),
                format!("provider `{name}` needs an API key"),
            ));
            continue;
        }
        for (h, v) in &d.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(err(&format!("{path}.headers.{h}"), "not a valid header name".into()));
            } else if http::HeaderValue::from_str(v).is_err() {
                errs.push(err(&format!("{path}.headers.{h}"), "not a valid header value".into()));
            }
        }
        let has_models = d.models.as_ref().is_some_and(|m| !m.is_empty());
        out.push(Arc::new(Provider::new(ProviderSettings {
            name: name.clone(),
            family: kind,
            base,
            keys: d.keys.into_values().map(Secret::new).collect(),
            models: d.models.unwrap_or_default(),
            headers: d.headers,
            api_version: d.api_version.or_else(|| {
                (kind == &crate::providers::azure::FAMILY)
                    .then(|| crate::providers::azure::DEFAULT_API_VERSION.to_string())
            }),
            connect_timeout: Duration::from_millis(d.connect_timeout_ms.unwrap_or(10_000)),
            read_timeout: Duration::from_millis(d.read_timeout_ms.unwrap_or(600_000)),
            discover_models: d.discover.unwrap_or(!has_models),
            retry: retry_policy(&name, d.retry, errs),
            breaker: super::resilience::breaker_policy(&name, file.circuit_breaker, d.breaker, errs),
            first_byte_timeout: timeout_ms(&name, "first_byte_timeout_ms", d.first_byte_timeout_ms, errs),
            stream_idle_timeout: timeout_ms(&name, "stream_idle_timeout_ms", d.stream_idle_timeout_ms, errs),
            key_cooldown: Duration::from_secs(d.key_cooldown_seconds.unwrap_or(60)),
        })));
    }
    out
}

/// An optional timeout in ms (0 is refused: it would fail every call).
fn timeout_ms(name: &str, field: &str, v: Option<u64>, errs: &mut Vec<ConfigError>) -> Option<Duration> {
    match v {
        Some(0) => {
            errs.push(err(&format!("providers.{name}.{field}"), "must be more than 0".into()));
            None
        }
        v => v.map(Duration::from_millis),
    }
}

/// A provider's retry policy from its `retry:`; defaults for what is unset.
/// `attempts` counts every try (1 to 10); the cap is at least the backoff.
fn retry_policy(
    name: &str,
    f: Option<super::file::RetryFile>,
    errs: &mut Vec<ConfigError>,
) -> crate::providers::RetryPolicy {
    let d = crate::providers::RetryPolicy::default();
    let Some(f) = f else {
        return d;
    };
    let attempts = f.attempts.unwrap_or(d.attempts);
    if !(1..=10).contains(&attempts) {
        errs.push(err(
            &format!("providers.{name}.retry.attempts"),
            format!("{attempts} is not between 1 and 10 (tries in all, the first included)"),
        ));
    }
    let backoff = f.backoff_ms.map_or(d.backoff, Duration::from_millis);
    let max_backoff = f.max_backoff_ms.map_or(d.max_backoff, Duration::from_millis);
    crate::providers::RetryPolicy {
        attempts: attempts.clamp(1, 10),
        backoff,
        max_backoff: max_backoff.max(backoff),
    }
}
