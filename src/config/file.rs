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
    pub(super) model_refresh_seconds: Option<u64>,
    pub(super) dns_ttl_seconds: Option<u64>,
    pub(super) prices: Option<BTreeMap<String, crate::pricing::Price>>,
    pub(super) retention: Option<RetentionFile>,
    pub(super) audit_bodies: Option<bool>,
    pub(super) metrics_listen: Option<String>,
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
}

/// Parses YAML, interpolates `${VAR}` / `${VAR:-default}` in string values,
/// then deserializes each top-level key on its own so every error is reported.
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
    interpolate(&mut root, env, "", errs);
    let Some(map) = root.as_mapping() else {
        errs.push(err("file", "the top level must be a mapping".into()));
        return FileConfig::default();
    };
    // Deserialize key by key: one bad key must not hide the others.
    let mut good = serde_yaml::Mapping::new();
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?").to_string();
        let mut single = serde_yaml::Mapping::new();
        single.insert(k.clone(), v.clone());
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
                        Err(e) => errs.push(err(&format!("providers.{pname}.{}", e.path()), e.inner().to_string())),
                    }
                }
                good.insert(k.clone(), serde_yaml::Value::Mapping(ok));
                continue;
            }
        }
        let r: Result<FileConfig, _> = serde_path_to_error::deserialize(serde_yaml::Value::Mapping(single));
        match r {
            Ok(_) => {
                good.insert(k.clone(), v.clone());
            }
            Err(e) => {
                let p = e.path().to_string();
                let p = if p == "." { key.clone() } else { p };
                errs.push(err(&p, e.inner().to_string()));
            }
        }
    }
    serde_yaml::from_value(serde_yaml::Value::Mapping(good)).unwrap_or_default()
}

fn interpolate(v: &mut serde_yaml::Value, env: &HashMap<String, String>, path: &str, errs: &mut Vec<ConfigError>) {
    match v {
        serde_yaml::Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(x) => *s = x,
            Err(m) => errs.push(err(if path.is_empty() { "file" } else { path }, m)),
        },
        serde_yaml::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(val, env, &p, errs);
            }
        }
        serde_yaml::Value::Sequence(seq) => {
            for (i, val) in seq.iter_mut().enumerate() {
                interpolate(val, env, &format!("{path}[{i}]"), errs);
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
