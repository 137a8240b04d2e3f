//! Configuration: environment first, then the optional YAML file, then defaults.
//!
//! `load` gathers every source and `compile` turns it into an immutable
//! [`Snapshot`]; every problem is collected with its path (`providers.groq.base_url`,
//! `env GROQ_BASE_URL`) so `check-config` can print them all at once. A reload
//! later is just `load` + `compile` + one `ArcSwap::store`.

use crate::providers::{AuthStyle, ProviderKind, KINDS};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default request body limit: 32 MiB.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// A credential. Never printed: `Debug`/`Display` show a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The raw value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// One configuration problem, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `env NAME`, `file: providers.x.base_url`, …
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

// ---------------------------------------------------------------- file schema

/// The YAML file (every key optional; unknown keys are errors).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    master_key: Option<String>,
    max_body_bytes: Option<usize>,
    log: Option<String>,
    server: Option<ServerFile>,
    providers: Option<BTreeMap<String, ProviderFile>>,
    aliases: Option<BTreeMap<String, String>>,
    model_refresh_seconds: Option<u64>,
    dns_ttl_seconds: Option<u64>,
    prices: Option<BTreeMap<String, crate::pricing::Price>>,
    retention: Option<RetentionFile>,
    audit_bodies: Option<bool>,
    metrics_listen: Option<String>,
}

/// How long history is kept (days; 0 keeps forever).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    usage_days: Option<u32>,
    audit_days: Option<u32>,
}

/// Pingora process settings (never from Pingora's own CLI).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    threads: Option<usize>,
    grace_period_seconds: Option<u64>,
    graceful_shutdown_timeout_seconds: Option<u64>,
    pid_file: Option<PathBuf>,
    upgrade_sock: Option<PathBuf>,
}

/// A provider declared in the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    api_keys: Option<Vec<String>>,
    models: Option<Vec<String>>,
    headers: Option<BTreeMap<String, String>>,
    api_version: Option<String>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    discover_models: Option<bool>,
}

// ------------------------------------------------------------------ snapshot

/// Pingora server settings resolved from our config.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Seconds in-flight requests may take after a graceful stop/upgrade.
    pub grace_period_seconds: u64,
    /// Seconds to wait for tasks after the grace period.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Pid file (defaults under the data dir so instances don't collide).
    pub pid_file: PathBuf,
    /// Upgrade socket (same reason).
    pub upgrade_sock: PathBuf,
}

/// A parsed upstream base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// https?
    pub tls: bool,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// Port (default 443/80).
    pub port: u16,
    /// Path prefix without trailing slash (`/v1`, `/openai/v1`, ``).
    pub path: String,
    /// Value for the `Host` header.
    pub host_header: String,
}

/// A compiled provider instance.
#[derive(Debug)]
pub struct Provider {
    /// Instance name (`openai`, `openai-east`).
    pub name: String,
    /// Its type.
    pub kind: ProviderKind,
    /// Where it lives.
    pub base: BaseUrl,
    /// Credentials used in rotation (may be empty for local servers).
    pub keys: Vec<Secret>,
    next_key: AtomicUsize,
    /// Models configured explicitly (`_MODELS` / `models:`).
    pub models: Vec<String>,
    /// Extra headers sent on every upstream request.
    pub headers: Vec<(String, String)>,
    /// Azure `api-version` (deployment-style URLs).
    pub api_version: Option<String>,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Per-read timeout (long: reasoning models pause for minutes).
    pub read_timeout: Duration,
    /// Whether to fetch `/models` in the background.
    pub discover_models: bool,
}

impl Provider {
    /// The next credential in rotation, if any.
    pub fn next_key(&self) -> Option<&Secret> {
        if self.keys.is_empty() {
            return None;
        }
        let i = self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        self.keys.get(i)
    }

    /// How the credential is sent.
    pub fn auth_style(&self) -> AuthStyle {
        self.kind.info().auth
    }

    /// Azure with deployment URLs (`/openai/deployments/{model}/…?api-version=`)
    /// rather than the newer `/openai/v1` API.
    pub fn azure_deployments(&self) -> bool {
        self.kind == ProviderKind::Azure && !self.base.path.ends_with("/v1")
    }
}

/// Everything derived from config; swapped atomically on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// Listen address (`host:port`).
    pub listen: String,
    /// Data directory (store, pid file, upgrade socket).
    pub data_dir: PathBuf,
    /// Gateway master key; `None` means `/v1/*` is open.
    pub master_key: Option<Secret>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Log level filter.
    pub log_level: String,
    /// Pingora settings.
    pub server: ServerSettings,
    /// Providers in priority order (file order, then env in kind-table order).
    pub providers: Vec<Arc<Provider>>,
    by_name: HashMap<String, usize>,
    /// Public alias → (provider index, upstream model).
    pub aliases: BTreeMap<String, (usize, String)>,
    /// Configured model → first provider index listing it.
    configured_models: HashMap<String, usize>,
    /// How often discovered model lists are refreshed.
    pub model_refresh: Duration,
    /// How long resolved upstream addresses are cached.
    pub dns_ttl: Duration,
    /// Built-in prices plus `prices:` overrides.
    pub pricing: Arc<crate::pricing::Pricing>,
    /// Days of usage history kept.
    pub usage_retention_days: u32,
    /// Days of audit history kept.
    pub audit_retention_days: u32,
    /// Store request/response bodies in the audit log (capped at 1 MiB each).
    pub audit_bodies: bool,
    /// Separate listen address for `/metrics`, if any.
    pub metrics_listen: Option<String>,
}

impl Snapshot {
    /// Provider index by instance name.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Provider index that configured this bare model name.
    pub fn configured_model(&self, model: &str) -> Option<usize> {
        self.configured_models.get(model).copied()
    }
}

// ------------------------------------------------------------------- loading

/// Inputs to compile: the environment and the file's text (if any).
pub struct Sources {
    /// Environment variables.
    pub env: HashMap<String, String>,
    /// Its contents.
    pub file_text: Option<String>,
    /// CLI overrides (win over env).
    pub cli_listen: Option<String>,
    /// CLI data dir override.
    pub cli_data_dir: Option<PathBuf>,
}

impl Sources {
    /// Reads the process environment and the config file named by the CLI
    /// or `SWITCHYARD_CONFIG`.
    pub fn from_process(
        cli_config: Option<PathBuf>,
        cli_listen: Option<String>,
        cli_data_dir: Option<PathBuf>,
    ) -> Result<Sources, Vec<ConfigError>> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file_path = cli_config.or_else(|| {
            env.get("SWITCHYARD_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        let file_text = match &file_path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                vec![ConfigError {
                    path: p.display().to_string(),
                    message: format!("cannot read config file: {e}"),
                }]
            })?),
            None => None,
        };
        Ok(Sources {
            env,
            file_text,
            cli_listen,
            cli_data_dir,
        })
    }
}

/// Loads and compiles all sources into a snapshot, or every error found.
pub fn compile(src: &Sources) -> Result<Snapshot, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let file = match &src.file_text {
        Some(text) => parse_file(text, &src.env, &mut errs),
        None => FileConfig::default(),
    };
    let env = &src.env;
    let get = |k: &str| env.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());

    let listen = src
        .cli_listen
        .clone()
        .or_else(|| get("SWITCHYARD_LISTEN"))
        .or(file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        errs.push(err("listen", format!("`{listen}` is not a host:port socket address")));
    }
    let data_dir = src
        .cli_data_dir
        .clone()
        .or_else(|| get("SWITCHYARD_DATA_DIR").map(PathBuf::from))
        .or(file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    let master_key = get("SWITCHYARD_MASTER_KEY")
        .or(file.master_key.clone().filter(|s| !s.is_empty()))
        .map(Secret::new);
    let max_body_bytes = match get("SWITCHYARD_MAX_BODY_BYTES") {
        Some(v) => v.parse::<usize>().unwrap_or_else(|_| {
            errs.push(err(
                "env SWITCHYARD_MAX_BODY_BYTES",
                format!("`{v}` is not a byte count"),
            ));
            DEFAULT_MAX_BODY
        }),
        None => file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
    };
    if max_body_bytes == 0 {
        errs.push(err("max_body_bytes", "must be greater than 0".into()));
    }
    let log_level = get("SWITCHYARD_LOG")
        .or(file.log.clone())
        .unwrap_or_else(|| "info".into());
    if !["error", "warn", "info", "debug", "trace", "off"].contains(&log_level.as_str()) {
        errs.push(err(
            "log",
            format!("`{log_level}` is not one of error, warn, info, debug, trace, off"),
        ));
    }
    let sf = file.server.clone().unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let server = ServerSettings {
        threads: sf.threads.unwrap_or(cores).max(1),
        grace_period_seconds: sf.grace_period_seconds.unwrap_or(30),
        graceful_shutdown_timeout_seconds: sf.graceful_shutdown_timeout_seconds.unwrap_or(5),
        pid_file: sf.pid_file.unwrap_or_else(|| data_dir.join("switchyard.pid")),
        upgrade_sock: sf
            .upgrade_sock
            .unwrap_or_else(|| data_dir.join("switchyard-upgrade.sock")),
    };

    // Pingora's TLS connector panics at start-up on an unreadable CA file;
    // report it as a configuration error instead.
    if let Some(ca) = get("SSL_CERT_FILE") {
        if let Err(e) = std::fs::read(&ca) {
            errs.push(err("env SSL_CERT_FILE", format!("cannot read CA file `{ca}`: {e}")));
        }
    }
    let providers = build_providers(&file, env, &mut errs);
    let mut by_name = HashMap::new();
    let mut configured_models = HashMap::new();
    for (i, p) in providers.iter().enumerate() {
        by_name.insert(p.name.clone(), i);
        for m in &p.models {
            configured_models.entry(m.clone()).or_insert(i);
        }
    }
    let mut aliases = BTreeMap::new();
    for (alias, target) in file.aliases.iter().flatten() {
        let path = format!("aliases.{alias}");
        match target.split_once('/') {
            Some((prov, model)) if !model.is_empty() => match by_name.get(prov) {
                Some(&i) => {
                    aliases.insert(alias.clone(), (i, model.to_string()));
                }
                None => errs.push(err(&path, format!("unknown provider `{prov}` in `{target}`"))),
            },
            _ => errs.push(err(&path, format!("`{target}` must be `provider/model`"))),
        }
    }
    let mut overrides = Vec::new();
    for (key, price) in file.prices.iter().flatten() {
        match price.validate() {
            Ok(()) => overrides.push((key.clone(), *price)),
            Err(m) => errs.push(err(&format!("prices.{key}"), m)),
        }
    }
    let days = |var: &str, file_v: Option<u32>, default: u32, errs: &mut Vec<ConfigError>| match get(var) {
        Some(v) => v.parse::<u32>().unwrap_or_else(|_| {
            errs.push(err(&format!("env {var}"), format!("`{v}` is not a number of days")));
            default
        }),
        None => file_v.unwrap_or(default),
    };
    let rf = file.retention.clone().unwrap_or_default();
    let usage_retention_days = days("SWITCHYARD_USAGE_RETENTION_DAYS", rf.usage_days, 90, &mut errs);
    let audit_retention_days = days("SWITCHYARD_AUDIT_RETENTION_DAYS", rf.audit_days, 30, &mut errs);
    let audit_bodies = match get("SWITCHYARD_AUDIT_BODIES").as_deref() {
        Some("1" | "true" | "yes" | "on") => true,
        Some("0" | "false" | "no" | "off") => false,
        Some(v) => {
            errs.push(err(
                "env SWITCHYARD_AUDIT_BODIES",
                format!("`{v}` is not true or false"),
            ));
            false
        }
        None => file.audit_bodies.unwrap_or(false),
    };
    let metrics_listen = get("SWITCHYARD_METRICS_LISTEN").or(file.metrics_listen.clone());
    if let Some(m) = &metrics_listen {
        if m.parse::<std::net::SocketAddr>().is_err() {
            errs.push(err(
                "metrics_listen",
                format!("`{m}` is not a host:port socket address"),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Snapshot {
        pricing: Arc::new(crate::pricing::Pricing::builtin().with_overrides(overrides)),
        usage_retention_days,
        audit_retention_days,
        audit_bodies,
        metrics_listen,
        listen,
        data_dir,
        master_key,
        max_body_bytes,
        log_level,
        server,
        providers,
        by_name,
        aliases,
        configured_models,
        model_refresh: Duration::from_secs(file.model_refresh_seconds.unwrap_or(600).max(10)),
        dns_ttl: Duration::from_secs(file.dns_ttl_seconds.unwrap_or(60)),
    })
}

fn err(path: &str, message: String) -> ConfigError {
    ConfigError {
        path: path.to_string(),
        message,
    }
}

/// Parses YAML, interpolates `${VAR}` / `${VAR:-default}` in string values,
/// then deserializes each top-level key on its own so every error is reported.
fn parse_file(text: &str, env: &HashMap<String, String>, errs: &mut Vec<ConfigError>) -> FileConfig {
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

/// Parses `http(s)://host[:port][/path]`.
pub fn parse_base_url(s: &str) -> Result<BaseUrl, String> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{s}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return Err(format!(
            "`{s}` is not a plain base URL (no credentials, query or fragment)"
        ));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err(format!("`{s}`: unterminated IPv6 literal"));
        };
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{s}`: bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("`{s}`: bad authority")),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| format!("`{s}`: bad port `{p}`"))?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("`{s}`: empty host"));
    }
    let host_header = if port == default_port {
        authority
            .rsplit_once(':')
            .filter(|_| !authority.ends_with(']'))
            .map_or(authority, |(h, _)| h)
            .to_string()
    } else {
        authority.to_string()
    };
    Ok(BaseUrl {
        tls,
        host,
        port,
        path: path.trim_end_matches('/').to_string(),
        host_header,
    })
}

/// A provider being assembled from file and env before validation.
#[derive(Default)]
struct Draft {
    kind: Option<ProviderKind>,
    base_url: Option<(String, String)>, // (value, source path)
    keys: BTreeMap<u32, String>,        // rotation order: 1 = the unsuffixed key
    models: Option<Vec<String>>,
    headers: Vec<(String, String)>,
    api_version: Option<String>,
    connect_timeout_ms: Option<u64>,
    read_timeout_ms: Option<u64>,
    discover: Option<bool>,
    order: (u8, usize, String),
}

/// Splits an env name like `OPENAI_EAST_API_KEY_2` into (kind, instance
/// suffix, field, rotation index).
fn classify_env(name: &str) -> Option<(ProviderKind, String, &'static str, u32)> {
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
    let mut best: Option<(ProviderKind, &str)> = None;
    for k in KINDS {
        for p in k.env_prefixes {
            let matches = prefix == *p || prefix.starts_with(&format!("{p}_"));
            if matches && best.is_none_or(|(_, b)| p.len() > b.len()) {
                best = Some((k.kind, p));
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

fn build_providers(
    file: &FileConfig,
    env: &HashMap<String, String>,
    errs: &mut Vec<ConfigError>,
) -> Vec<Arc<Provider>> {
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    // File first (lower precedence), in file order.
    for (i, (name, pf)) in file.providers.iter().flatten().enumerate() {
        let path = format!("providers.{name}");
        let kind_name = pf.kind.clone().unwrap_or_else(|| name.clone());
        let kind = ProviderKind::from_name(&kind_name);
        if kind.is_none() {
            let known: Vec<_> = KINDS.iter().map(|k| k.name).collect();
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
            kind.info().name.to_string()
        } else {
            format!("{}-{suffix}", kind.info().name)
        };
        let kind_pos = KINDS.iter().position(|k| k.kind == kind).unwrap_or(0);
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
        let info = kind.info();
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
        let mut base = match parse_base_url(&url) {
            Ok(b) => b,
            Err(m) => {
                errs.push(err(&url_path, m));
                continue;
            }
        };
        if let Some(path) = kind.default_path_for_bare_url().filter(|_| base.path.is_empty()) {
            base.path = path.into();
        }
        if d.keys.is_empty() && !info.key_optional && (d.base_url.is_none() || from_file) {
            errs.push(err(
                &format!("{path}.api_key"),
                format!("provider `{name}` needs an API key"),
            ));
            continue;
        }
        for (h, _) in &d.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(err(&format!("{path}.headers.{h}"), "not a valid header name".into()));
            }
        }
        let has_models = d.models.as_ref().is_some_and(|m| !m.is_empty());
        out.push(Arc::new(Provider {
            name: name.clone(),
            kind,
            base,
            keys: d.keys.into_values().map(Secret::new).collect(),
            next_key: AtomicUsize::new(0),
            models: d.models.unwrap_or_default(),
            headers: d.headers,
            api_version: d
                .api_version
                .or_else(|| (kind == ProviderKind::Azure).then(|| "2024-10-21".to_string())),
            connect_timeout: Duration::from_millis(d.connect_timeout_ms.unwrap_or(10_000)),
            read_timeout: Duration::from_millis(d.read_timeout_ms.unwrap_or(600_000)),
            discover_models: d.discover.unwrap_or(!has_models),
        }));
    }
    out
}

/// Sources from literal env pairs and YAML text (tests).
#[cfg(test)]
pub fn read_sources_for_test(env: &[(&str, &str)], yaml: Option<&str>) -> Sources {
    Sources {
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        file_text: yaml.map(str::to_string),
        cli_listen: None,
        cli_data_dir: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_env(env: &[(&str, &str)], yaml: Option<&str>) -> Result<Snapshot, Vec<ConfigError>> {
        compile(&read_sources_for_test(env, yaml))
    }

    #[test]
    fn env_providers_suffixes_and_rotation() {
        let s = compile_env(
            &[
                ("OPENAI_API_KEY", "k1"),
                ("OPENAI_API_KEY_2", "k2"),
                ("OPENAI_EAST_API_KEY", "e1"),
                ("OPENAI_EAST_BASE_URL", "http://127.0.0.1:9/v1"),
                ("OLLAMA_BASE_URL", "http://localhost:11434"),
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_BASE_URL", "https://r.openai.azure.com"),
                ("GROQ_MODELS", "llama"),
            ],
            None,
        )
        .expect("valid");
        let names: Vec<_> = s.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openai", "openai-east", "azure", "ollama"]);
        let openai = &s.providers[0];
        let keys: Vec<_> = (0..4)
            .filter_map(|_| openai.next_key().map(|k| k.expose().to_string()))
            .collect();
        assert_eq!(keys, ["k1", "k2", "k1", "k2"]);
        assert_eq!(s.providers[3].base.path, "/v1");
        assert!(s.providers[2].azure_deployments());
        assert_eq!(s.providers[0].base.host, "api.openai.com");
    }

    #[test]
    fn classify_env_names() {
        assert_eq!(
            classify_env("OPENAI_API_KEY"),
            Some((ProviderKind::OpenAi, String::new(), "API_KEY", 1))
        );
        assert_eq!(
            classify_env("OPENAI_EU_WEST_API_KEY_3"),
            Some((ProviderKind::OpenAi, "eu-west".into(), "API_KEY", 3))
        );
        assert_eq!(classify_env("AZURE_OPENAI_API_KEY").map(|c| c.1), Some(String::new()));
        assert_eq!(
            classify_env("OPENROUTER_BASE_URL").map(|c| c.0),
            Some(ProviderKind::OpenRouter)
        );
        assert_eq!(classify_env("HOME"), None);
        assert_eq!(classify_env("OPENAI_MODELS_2"), None);
    }

    #[test]
    fn file_errors_are_all_reported_with_paths() {
        let yaml = "listen: nope\nbogus: 1\nproviders:\n  a:\n    type: openai\n    base_url: ftp://x\n  b:\n    type: wat\n  c:\n    type: openai\n    modles: []\naliases:\n  fast: nobody/x\n";
        let errs = compile_env(&[], Some(yaml)).expect_err("invalid");
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "bogus",
            "providers.c.modles",
            "providers.b.type",
            "providers.a.base_url",
            "listen",
            "aliases.fast",
        ] {
            assert!(paths.iter().any(|p| p.contains(want)), "missing {want} in {errs:?}");
        }
    }

    #[test]
    fn interpolation_and_env_precedence() {
        let yaml = "providers:\n  openai:\n    api_key: ${MY_KEY}\n    base_url: ${MY_URL:-http://127.0.0.1:1/v1}\n    models: [m1]\naliases:\n  fast: openai/m1\n";
        let s = compile_env(&[("MY_KEY", "abc"), ("OPENAI_MODELS", "m2,m3")], Some(yaml)).expect("valid");
        let p = &s.providers[0];
        assert_eq!(p.keys[0].expose(), "abc");
        assert_eq!(p.base.port, 1);
        assert_eq!(p.models, ["m2", "m3"], "env wins over file");
        assert_eq!(s.aliases.get("fast"), Some(&(0, "m1".to_string())));
        let e = compile_env(&[], Some("providers:\n  openai:\n    api_key: ${UNSET_VAR}\n")).expect_err("unset");
        assert!(e[0].message.contains("UNSET_VAR"));
    }

    #[test]
    fn secrets_never_debug_print() {
        let s = compile_env(
            &[
                ("OPENAI_API_KEY", "sk-very-secret"),
                ("SWITCHYARD_MASTER_KEY", "mk-secret"),
            ],
            None,
        )
        .expect("valid");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("sk-very-secret") && !dbg.contains("mk-secret"));
    }

    #[test]
    fn reference_config_loads() {
        let text = include_str!("../conf/switchyard.yaml");
        let s = compile_env(&[("OPENAI_API_KEY", "sk-test")], Some(text)).expect("conf/switchyard.yaml is valid");
        let names: Vec<_> = s.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["local", "openai"]);
        assert_eq!(s.providers[0].base.path, "/v1");
        assert_eq!(s.aliases.len(), 2);
        // Without the key the file still parses, and the error names the path.
        let errs = compile_env(&[], Some(text)).expect_err("openai needs a key");
        assert!(errs.iter().any(|e| e.path == "providers.openai.api_key"), "{errs:?}");
    }

    #[test]
    fn base_urls() {
        let b = parse_base_url("https://api.x.ai/v1/").expect("ok");
        assert_eq!(
            (b.tls, b.host.as_str(), b.port, b.path.as_str(), b.host_header.as_str()),
            (true, "api.x.ai", 443, "/v1", "api.x.ai")
        );
        let b = parse_base_url("http://[::1]:8000").expect("ok");
        assert_eq!(
            (b.host.as_str(), b.port, b.host_header.as_str()),
            ("::1", 8000, "[::1]:8000")
        );
        assert!(parse_base_url("localhost:1").is_err());
        assert!(parse_base_url("http://u:p@h/").is_err());
    }
}
