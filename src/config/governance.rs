//! The governance parts of the config: `keys:` (declared by hash), `limits:`
//! (per user-path subtree, model and provider instance), `budgets:` (per
//! user-path subtree) and `limiter:` (the shared backend). Each error names
//! its path (`keys[2].hash`).

use super::{err, ConfigError};
use crate::governance::keys::{hex, parse_hash, BudgetSpec, KeyRecord, Limits, Source};
use crate::governance::redis::Target;
use crate::governance::rules::{PathBudget, Rules};
use crate::governance::shared::{LimiterConfig, OnError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One `keys:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub(super) name: String,
    pub(super) hash: String,
    pub(super) id: Option<String>,
    pub(super) user_path: Option<String>,
    pub(super) tags: Option<BTreeMap<String, String>>,
    pub(super) models: Option<Vec<String>>,
    pub(super) endpoints: Option<Vec<String>>,
    pub(super) expires_at: Option<String>,
    pub(super) disabled: Option<bool>,
    pub(super) admin: Option<bool>,
    pub(super) limits: Option<Limits>,
    pub(super) budget: Option<BudgetSpec>,
}

/// `limits:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub(super) user_paths: Option<BTreeMap<String, Limits>>,
    pub(super) models: Option<BTreeMap<String, Limits>>,
    pub(super) providers: Option<BTreeMap<String, Limits>>,
}

/// One `budgets:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    pub(super) user_path: String,
    #[serde(flatten)]
    pub(super) spec: BudgetSpec,
}

/// `limiter:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterFile {
    pub(super) redis_url: Option<String>,
    pub(super) on_error: Option<String>,
    pub(super) timeout_ms: Option<u64>,
}

/// Governance, compiled.
#[derive(Debug, Clone)]
pub struct GovernanceConfig {
    /// Keys declared in the file.
    pub keys: Vec<KeyRecord>,
    /// Limits and the file's budgets.
    pub rules: Rules,
    /// Where the counters live (read at start; a reload that changes it
    /// is logged and takes effect at the next start).
    pub limiter: LimiterConfig,
}

/// Validates a user path the way the attribution header is validated.
fn check_path(p: &str) -> Result<String, String> {
    if p == "/" {
        return Ok(p.into());
    }
    switchyard_filters::attribution::parse_user_path(p).map_err(|e| e.to_string())
}

/// Parses `2026-12-31`, `2026-12-31T23:59:59Z`, or Unix seconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a time: use 2026-12-31, 2026-12-31T23:59:59Z or Unix seconds");
    if let Ok(secs) = s.parse::<u64>() {
        return secs.checked_mul(1000).ok_or_else(bad);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, dd] = d.as_slice() else { return Err(bad()) };
    let (y, m, dd): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        dd.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || y < 1970 {
        return Err(bad());
    }
    let mut secs = crate::governance::window::days_from_civil(y, m, dd) as u64 * 86_400;
    if let Some(t) = time {
        let t: Vec<&str> = t.split(':').collect();
        let [h, mi, se] = t.as_slice() else { return Err(bad()) };
        let (h, mi, se): (u64, u64, u64) = (
            h.parse().map_err(|_| bad())?,
            mi.parse().map_err(|_| bad())?,
            se.parse().map_err(|_| bad())?,
        );
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        secs += h * 3600 + mi * 60 + se;
    }
    Ok(secs * 1000)
}

/// The endpoint labels a key may be limited to.
pub const ENDPOINTS: &[&str] = &["chat", "messages", "count_tokens", "embeddings", "models", "usage"];

/// Checks a key's fields that both the file and the admin API set.
pub fn check_key_fields(
    user_path: Option<&str>,
    endpoints: Option<&[String]>,
    budget: Option<&BudgetSpec>,
) -> Result<(), (String, String)> {
    if let Some(p) = user_path {
        check_path(p).map_err(|m| ("user_path".to_string(), m))?;
    }
    for (i, e) in endpoints.unwrap_or_default().iter().enumerate() {
        if !ENDPOINTS.contains(&e.as_str()) {
            return Err((
                format!("endpoints[{i}]"),
                format!("`{e}` is not an endpoint: one of {}", ENDPOINTS.join(", ")),
            ));
        }
    }
    if let Some(b) = budget {
        b.validate().map_err(|m| ("budget".to_string(), m))?;
    }
    Ok(())
}

/// Compiles `keys:`, `limits:`, `budgets:` and `limiter:`.
pub(super) fn compile(
    keys: Option<&[KeyFile]>,
    limits: Option<&LimitsFile>,
    budgets: Option<&[BudgetFile]>,
    limiter: Option<&LimiterFile>,
    redis_env: Option<String>,
    errs: &mut Vec<ConfigError>,
) -> GovernanceConfig {
    let mut out_keys = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.unwrap_or_default().iter().enumerate() {
        let at = |f: &str| format!("keys[{i}].{f}");
        let Ok(digest) = parse_hash(&k.hash).map_err(|m| errs.push(err(&at("hash"), m))) else {
            continue;
        };
        if !seen.insert(k.hash.clone()) {
            errs.push(err(&at("hash"), "the same hash is declared twice".into()));
            continue;
        }
        if let Err((f, m)) = check_key_fields(k.user_path.as_deref(), k.endpoints.as_deref(), k.budget.as_ref()) {
            errs.push(err(&at(&f), m));
            continue;
        }
        let expires_at_ms = match k.expires_at.as_deref().map(parse_time).transpose() {
            Ok(t) => t,
            Err(m) => {
                errs.push(err(&at("expires_at"), m));
                continue;
            }
        };
        // The same id on every node: derived from the hash.
        let id = k.id.clone().unwrap_or_else(|| format!("key_{}", hex(&digest[..6])));
        out_keys.push(KeyRecord {
            user_path: k.user_path.clone().unwrap_or_default(),
            tags: k.tags.clone().unwrap_or_default().into_iter().collect(),
            models: k.models.clone().unwrap_or_default(),
            endpoints: k.endpoints.clone().unwrap_or_default(),
            expires_at_ms,
            disabled: k.disabled.unwrap_or(false),
            admin: k.admin.unwrap_or(false),
            limits: k.limits.unwrap_or_default(),
            budget: k.budget.clone(),
            ..KeyRecord::new(id, k.name.clone(), k.hash.clone(), Source::Config)
        });
    }
    let mut rules = Rules::default();
    let l = limits.cloned().unwrap_or_default();
    for (p, lim) in l.user_paths.unwrap_or_default() {
        match check_path(&p) {
            Ok(p) => rules.path_limits.push((p, lim)),
            Err(m) => errs.push(err(&format!("limits.user_paths.{p}"), m)),
        }
    }
    rules.model_limits = l.models.unwrap_or_default().into_iter().collect();
    rules.provider_limits = l.providers.unwrap_or_default().into_iter().collect();
    for (i, b) in budgets.unwrap_or_default().iter().enumerate() {
        let path = match check_path(&b.user_path) {
            Ok(p) => p,
            Err(m) => {
                errs.push(err(&format!("budgets[{i}].user_path"), m));
                continue;
            }
        };
        if let Err(m) = b.spec.validate() {
            errs.push(err(&format!("budgets[{i}]"), m));
            continue;
        }
        let pb = PathBudget::new(path, b.spec.clone(), Source::Config);
        if rules.budgets.iter().any(|o| o.id == pb.id) {
            errs.push(err(
                &format!("budgets[{i}]"),
                "a budget for this path and period is declared twice".into(),
            ));
            continue;
        }
        rules.budgets.push(pb);
    }
    let lf = limiter.cloned().unwrap_or_default();
    let mut lc = LimiterConfig::default();
    match lf.on_error.as_deref() {
        None | Some("fail_open") => {}
        Some("fail_closed") => lc.on_error = OnError::FailClosed,
        Some(o) => errs.push(err(
            "limiter.on_error",
            format!("`{o}` is not fail_open or fail_closed"),
        )),
    }
    match lf.timeout_ms {
        None => {}
        Some(ms @ 1..=1000) => lc.timeout = std::time::Duration::from_millis(ms),
        Some(ms) => errs.push(err(
            "limiter.timeout_ms",
            format!("{ms} ms: must be between 1 and 1000 (the default, 50, keeps a slow Redis off the request path)"),
        )),
    }
    // The environment wins, as for providers.
    let (at, url) = match redis_env {
        Some(u) => ("env SWITCHYARD_REDIS_URL", Some(u)),
        None => ("limiter.redis_url", lf.redis_url),
    };
    if let Some(u) = url.filter(|u| !u.is_empty()) {
        match Target::parse(&u) {
            Ok(t) => lc.redis = Some(t),
            // The URL may hold a password: never repeat it.
            Err(m) => errs.push(err(at, format!("not a Redis URL: {m}"))),
        }
    }
    GovernanceConfig {
        keys: out_keys,
        rules,
        limiter: lc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc() {
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("2026-12-03T17:49:21Z"), Ok(1_796_320_161_000));
        assert_eq!(parse_time("1796320161"), Ok(1_796_320_161_000));
        for bad in ["2026-13-01", "yesterday", "2026-12-03T17:49:21", "2026-12-03T25:00:00Z"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_entry_is_named_by_its_path() {
        let h = crate::governance::keys::hash_secret("sk-sy-a");
        let keys = vec![
            KeyFile {
                name: "ok".into(),
                hash: h.clone(),
                id: None,
                user_path: Some("/acme/checkout".into()),
                tags: None,
                models: Some(vec!["openai/*".into()]),
                endpoints: None,
                expires_at: None,
                disabled: None,
                admin: None,
                limits: Some(Limits {
                    rpm: Some(5),
                    ..Limits::default()
                }),
                budget: None,
            },
            KeyFile {
                name: "dup".into(),
                hash: h,
                id: None,
                user_path: None,
                tags: None,
                models: None,
                endpoints: Some(vec!["chat".into(), "nope".into()]),
                expires_at: None,
                disabled: None,
                admin: None,
                limits: None,
                budget: None,
            },
        ];
        let mut errs = Vec::new();
        let g = compile(Some(&keys), None, None, None, None, &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "keys[1].hash");
        assert_eq!(g.keys.len(), 1);
        assert!(g.keys[0].id.starts_with("key_") && g.keys[0].id.len() == 16);
        let mut errs = Vec::new();
        let g = compile(
            None,
            None,
            None,
            None,
            Some("redis://:pw@127.0.0.1:7000".into()),
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            g.limiter.redis.map(|t| t.redacted()).as_deref(),
            Some("redis://***@127.0.0.1:7000")
        );
        let lf = LimiterFile {
            redis_url: Some("http://:hunter2@x".into()),
            on_error: Some("fail_closed".into()),
            timeout_ms: Some(0),
        };
        let g = compile(None, None, None, Some(&lf), None, &mut errs);
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["limiter.timeout_ms", "limiter.redis_url"]);
        assert!(
            !format!("{errs:?}").contains("hunter2"),
            "a URL's password is never repeated"
        );
        assert_eq!(g.limiter.on_error, OnError::FailClosed);
    }
}
