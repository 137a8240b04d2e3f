//! The YAML file: its schema (every key optional, unknown keys are errors),
//! `${VAR}` / `${VAR:-default}` interpolation, and parsing that reports every
//! bad key with its path instead of stopping at the first.

use super::{err, ConfigError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The YAML file (every key optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) master_key: Option<String>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) log: Option<String>,
    pub(super) server: Option<ServerFile>,
    pub(super) providers: Option<BTreeMap<String, ProviderFile>>,
    pub(super) aliases: Option<BTreeMap<String, String>>,
    pub(super) fallbacks: Option<BTreeMap<String, Vec<String>>>,
    pub(super) virtual_models: Option<BTreeMap<String, VirtualModelFile>>,
    pub(super) circuit_breaker: Option<BreakerFile>,
    pub(super) model_refresh_seconds: Option<u64>,
    pub(super) dns_ttl_seconds: Option<u64>,
    pub(super) prices: Option<BTreeMap<String, crate::pricing::Price>>,
    pub(super) retention: Option<RetentionFile>,
    pub(super) audit_bodies: Option<bool>,
    pub(super) metrics_listen: Option<String>,
    pub(super) keys: Option<Vec<super::governance::KeyFile>>,
    pub(super) limits: Option<super::governance::LimitsFile>,
    pub(super) budgets: Option<Vec<super::governance::BudgetFile>>,
    pub(super) limiter: Option<super::governance::LimiterFile>,
}

/// How long history is kept (days; 0 keeps forever).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    pub(super) usage_days: Option<u32>,
    pub(super) audit_days: Option<u32>,
}

/// Pingora process settings (never from Pingora's own CLI).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub(super) threads: Option<usize>,
    pub(super) grace_period_seconds: Option<u64>,
    pub(super) graceful_shutdown_timeout_seconds: Option<u64>,
    pub(super) pid_file: Option<PathBuf>,
    pub(super) upgrade_sock: Option<PathBuf>,
    pub(super) header_timeout_seconds: Option<u64>,
    pub(super) body_timeout_seconds: Option<u64>,
    pub(super) max_connections: Option<usize>,
}

/// A provider declared in the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) api_keys: Option<Vec<String>>,
    pub(super) models: Option<Vec<String>>,
    pub(super) headers: Option<BTreeMap<String, String>>,
    pub(super) api_version: Option<String>,
    pub(super) connect_timeout_ms: Option<u64>,
    pub(super) read_timeout_ms: Option<u64>,
    pub(super) discover_models: Option<bool>,
    pub(super) retry: Option<RetryFile>,
    pub(super) circuit_breaker: Option<BreakerFile>,
    pub(super) first_byte_timeout_ms: Option<u64>,
    pub(super) stream_idle_timeout_ms: Option<u64>,
    pub(super) key_cooldown_seconds: Option<u64>,
}

/// `circuit_breaker:` at the top (every provider) or in a provider (wins);
/// see `resilience::breaker::BreakerPolicy`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    pub(super) enabled: Option<bool>,
    pub(super) failures: Option<u32>,
    pub(super) error_rate: Option<f64>,
    pub(super) min_requests: Option<u32>,
    pub(super) window_seconds: Option<f64>,
    pub(super) cooldown_seconds: Option<f64>,
}

/// One `virtual_models:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualModelFile {
    pub(super) strategy: Option<String>,
    pub(super) sticky: Option<String>,
    pub(super) targets: Vec<VirtualTargetFile>,
}

/// One member of a virtual model: `provider/model`, an alias, or another
/// virtual model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualTargetFile {
    pub(super) target: String,
    pub(super) weight: Option<u32>,
}

/// A provider's `retry:` (see `providers::RetryPolicy`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub(super) attempts: Option<u32>,
    pub(super) backoff_ms: Option<u64>,
    pub(super) max_backoff_ms: Option<u64>,
}

/// Parses YAML, interpolates `${VAR}` / `${VAR:-default}` in string values,
/// then deserializes each top-level key on its own so every error is reported.
///
/// Interpolation happens on strings, so `grace_period_seconds: ${GRACE:-15}`
/// first reads as the string `"15"`. A field that refuses it is retried with
/// the expansion read as a YAML scalar (number or bool); string fields keep
/// the text, so `api_key: ${KEY}` with an all-digit key stays a string.
pub(super) fn parse_file(text: &str, env: &HashMap<String, String>, errs: &mut Vec<ConfigError>) -> FileConfig {
    let mut root: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errs.push(err("file", format!("invalid YAML: {e}")));
            return FileConfig::default();
        }
    };
    if root.is_null() {
        return FileConfig::default();
    }
    let mut typed = Vec::new();
    interpolate(&mut root, env, &mut Vec::new(), &mut typed, errs);
    if !root.is_mapping() {
        errs.push(err("file", "the top level must be a mapping".into()));
        return FileConfig::default();
    }
    loop {
        let (cfg, key_errs) = deserialize_keys(&root);
        // Retype each expansion a field refused; stop once nothing changes.
        let mut retyped = false;
        for (path, _) in &key_errs {
            if let Some(i) = typed.iter().position(|t: &Typed| t.path() == *path) {
                let t = typed.swap_remove(i);
                retyped |= t.apply(&mut root);
            }
        }
        if !retyped {
            errs.extend(key_errs.into_iter().map(|(p, m)| err(&p, m)));
            return cfg;
        }
    }
}

/// Deserializes key by key (and provider by provider): one bad key must not
/// hide the others. Returns the config of the good keys and each error.
fn deserialize_keys(root: &serde_yaml::Value) -> (FileConfig, Vec<(String, String)>) {
    let mut errs = Vec::new();
    let mut good = serde_yaml::Mapping::new();
    let Some(map) = root.as_mapping() else {
        return (FileConfig::default(), errs);
    };
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?").to_string();
        if key == "providers" {
            if let Some(provs) = v.as_mapping() {
                let mut ok = serde_yaml::Mapping::new();
                for (pk, pv) in provs {
                    let pname = pk.as_str().unwrap_or("?");
                    let r: Result<ProviderFile, _> = serde_path_to_error::deserialize(pv.clone());
                    match r {
                        Ok(_) => {
                            ok.insert(pk.clone(), pv.clone());
                        }
                        Err(e) => errs.push((format!("providers.{pname}.{}", e.path()), e.inner().to_string())),
                    }
                }
                good.insert(k.clone(), serde_yaml::Value::Mapping(ok));
                continue;
            }
        }
        let mut single = serde_yaml::Mapping::new();
        single.insert(k.clone(), v.clone());
        let r: Result<FileConfig, _> = serde_path_to_error::deserialize(serde_yaml::Value::Mapping(single));
        match r {
            Ok(_) => {
                good.insert(k.clone(), v.clone());
            }
            Err(e) => {
                let p = e.path().to_string();
                let p = if p == "." { key.clone() } else { p };
                errs.push((p, e.inner().to_string()));
            }
        }
    }
    (
        serde_yaml::from_value(serde_yaml::Value::Mapping(good)).unwrap_or_default(),
        errs,
    )
}

/// One step of a path into the YAML tree.
#[derive(Clone)]
enum Seg {
    Key(serde_yaml::Value),
    Index(usize),
}

/// An expansion that also reads as a YAML number or bool, kept in case the
/// field it lands in wants that type.
struct Typed {
    segs: Vec<Seg>,
    value: serde_yaml::Value,
}

impl Typed {
    /// The path as `serde_path_to_error` prints it (`a.b[0].c`).
    fn path(&self) -> String {
        let mut out = String::new();
        for s in &self.segs {
            match s {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k.as_str().unwrap_or("?"));
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// Replaces the string at this path with the typed value.
    fn apply(self, root: &mut serde_yaml::Value) -> bool {
        let mut at = root;
        for s in &self.segs {
            let next = match s {
                Seg::Key(k) => at.as_mapping_mut().and_then(|m| m.get_mut(k)),
                Seg::Index(i) => at.as_sequence_mut().and_then(|q| q.get_mut(*i)),
            };
            match next {
                Some(n) => at = n,
                None => return false,
            }
        }
        *at = self.value;
        true
    }
}

fn interpolate(
    v: &mut serde_yaml::Value,
    env: &HashMap<String, String>,
    segs: &mut Vec<Seg>,
    typed: &mut Vec<Typed>,
    errs: &mut Vec<ConfigError>,
) {
    match v {
        serde_yaml::Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(x) => {
                if let Ok(value @ (serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_))) =
                    serde_yaml::from_str(&x)
                {
                    typed.push(Typed {
                        segs: segs.clone(),
                        value,
                    });
                }
                *s = x;
            }
            Err(m) => {
                let path = Typed {
                    segs: segs.clone(),
                    value: serde_yaml::Value::Null,
                }
                .path();
                errs.push(err(if path.is_empty() { "file" } else { &path }, m));
            }
        },
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                segs.push(Seg::Key(k.clone()));
                interpolate(val, env, segs, typed, errs);
                segs.pop();
            }
        }
        serde_yaml::Value::Sequence(seq) => {
            for (i, val) in seq.iter_mut().enumerate() {
                segs.push(Seg::Index(i));
                interpolate(val, env, segs, typed, errs);
                segs.pop();
            }
        }
        _ => {}
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; an unset `${VAR}` without default
/// is an error (silently empty credentials are worse than a clear message).
pub fn expand(s: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in `{s}`"));
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env.get(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
