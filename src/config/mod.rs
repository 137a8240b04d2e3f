//! Configuration: environment first, then the optional YAML file, then defaults.
//!
//! `load` gathers every source and `compile` turns it into an immutable
//! [`Snapshot`]; every problem is collected with its path (`providers.groq.base_url`,
//! `env GROQ_BASE_URL`) so `check-config` can print them all at once. A reload
//! later is just `load` + `compile` + one `ArcSwap::store`.

mod env;
mod file;
pub mod governance;
mod resilience;

pub use resilience::{MemberRef, VirtualModel, MAX_CHAIN};

use crate::providers::Provider;
use crate::secret::Secret;
use file::{parse_file, FileConfig};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default request body limit: 32 MiB.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

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
    /// How long a request head may take from its first byte.
    pub header_timeout: std::time::Duration,
    /// How long a body may take, plus a second per 64 KiB of it.
    pub body_timeout: std::time::Duration,
    /// Open client connections beyond which the slowest idle ones are shed.
    pub max_connections: usize,
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
    /// Public name (alias, model or `provider/model`) → the targets tried,
    /// in order, when its own target fails (`fallbacks:`).
    pub fallbacks: HashMap<String, Vec<(usize, String)>>,
    /// Public names served by a set of targets (`virtual_models:`).
    pub virtual_models: HashMap<String, VirtualModel>,
    /// Configured model → first provider index listing it.
    configured_models: HashMap<String, usize>,
    /// How often discovered model lists are refreshed.
    pub model_refresh: Duration,
    /// How long resolved upstream addresses are cached.
    pub dns_ttl: Duration,
    /// Removes every configured secret (master key, provider keys) from
    /// provider text before it reaches a caller, a log or the store.
    pub scrubber: Arc<switchyard_filters::scrub::Scrubber>,
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
    /// Keys, limits, budgets and the limiter backend from the file.
    pub governance: governance::GovernanceConfig,
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
        header_timeout: std::time::Duration::from_secs(sf.header_timeout_seconds.unwrap_or(30).max(1)),
        body_timeout: std::time::Duration::from_secs(sf.body_timeout_seconds.unwrap_or(30).max(1)),
        max_connections: sf.max_connections.unwrap_or(8192).max(16),
    };

    // Pingora's TLS connector panics at start-up on an unreadable CA file;
    // report it as a configuration error instead.
    if let Some(ca) = get("SSL_CERT_FILE") {
        if let Err(e) = std::fs::read(&ca) {
            errs.push(err("env SSL_CERT_FILE", format!("cannot read CA file `{ca}`: {e}")));
        }
    }
    let providers = env::build_providers(&file, env, &mut errs);
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
    let mut fallbacks = HashMap::new();
    for (name, targets) in file.fallbacks.iter().flatten() {
        let mut list = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let path = format!("fallbacks.{name}[{i}]");
            match target.split_once('/') {
                Some((prov, model)) if !model.is_empty() => match by_name.get(prov) {
                    Some(&p) => list.push((p, model.to_string())),
                    None => errs.push(err(&path, format!("unknown provider `{prov}` in `{target}`"))),
                },
                _ => errs.push(err(&path, format!("`{target}` must be `provider/model`"))),
            }
        }
        if targets.is_empty() {
            errs.push(err(&format!("fallbacks.{name}"), "lists no targets".into()));
        }
        fallbacks.insert(name.clone(), list);
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
    let pricing = Arc::new(crate::pricing::Pricing::builtin().with_overrides(overrides));
    let virtual_models = resilience::virtual_models(&file, &providers, &by_name, &aliases, &pricing, &mut errs);
    resilience::check_top(file.circuit_breaker, &mut errs);
    let governance = governance::compile(
        file.keys.as_deref(),
        file.limits.as_ref(),
        file.budgets.as_deref(),
        file.limiter.as_ref(),
        get("SWITCHYARD_REDIS_URL"),
        &mut errs,
    );
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
    let secrets = master_key
        .iter()
        .chain(providers.iter().flat_map(|p| p.keys.iter()))
        .map(|k| k.expose());
    let scrubber = Arc::new(switchyard_filters::scrub::Scrubber::new(secrets));
    Ok(Snapshot {
        governance,
        scrubber,
        pricing,
        virtual_models,
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
        fallbacks,
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
    use super::env::classify_env;
    use super::*;

    fn compile_env(env: &[(&str, &str)], yaml: Option<&str>) -> Result<Snapshot, Vec<ConfigError>> {
        compile(&read_sources_for_test(env, yaml))
    }

    #[test]
    fn fallbacks_name_known_providers_and_errors_say_where() {
        let env = [("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "a")];
        let ok = compile_env(
            &env,
            Some("fallbacks:\n  gpt-4o: [anthropic/claude-haiku-4-5, openai/gpt-4o-mini]\n"),
        )
        .expect("valid");
        let list: Vec<(&str, &str)> = ok.fallbacks["gpt-4o"]
            .iter()
            .map(|(i, m)| (ok.providers[*i].name.as_str(), m.as_str()))
            .collect();
        assert_eq!(list, [("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o-mini")]);
        let errs = compile_env(&env, Some("fallbacks:\n  fast: [nope/m, bare]\n  empty: []\n")).expect_err("invalid");
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["fallbacks.empty", "fallbacks.fast[0]", "fallbacks.fast[1]"]);
        assert!(
            errs[1].message.contains("unknown provider `nope`"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn retry_attempts_count_every_try_and_are_bounded() {
        let yaml = |r: &str| {
            format!("providers:\n  p:\n    type: openai\n    base_url: http://127.0.0.1:9/v1\n    api_key: k\n    retry: {r}\n")
        };
        let s = compile_env(&[], Some(&yaml("{attempts: 3, backoff_ms: 50, max_backoff_ms: 10}"))).expect("valid");
        let r = s.providers[0].retry;
        assert_eq!(r.attempts, 3);
        assert_eq!(
            r.max_backoff,
            Duration::from_millis(50),
            "the cap is at least the backoff"
        );
        let errs = compile_env(&[], Some(&yaml("{attempts: 0}"))).expect_err("invalid");
        assert_eq!(errs[0].path, "providers.p.retry.attempts");
        let errs = compile_env(&[], Some(&yaml("{attempt: 2}"))).expect_err("unknown key");
        assert!(errs[0].message.contains("attempt"), "{}", errs[0].message);
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
            .filter_map(|_| {
                let h = crate::providers::request_head(
                    openai,
                    openai.pick_key(),
                    http::Method::GET,
                    "/v1/models",
                    0,
                    false,
                    &crate::providers::CallerHeaders::default(),
                )
                .ok()?;
                h.headers.get("authorization")?.to_str().ok().map(str::to_string)
            })
            .collect();
        assert_eq!(keys, ["Bearer k1", "Bearer k2", "Bearer k1", "Bearer k2"]);
        // A rate-limited key is set aside; rotation goes on with the other,
        // and when both are aside the one free soonest is used.
        assert!(openai.cool_key(0, Some(Duration::from_secs(60))));
        assert_eq!([openai.pick_key(), openai.pick_key(), openai.pick_key()], [1, 1, 1]);
        assert!(!openai.cool_key(1, Some(Duration::from_secs(30))));
        assert_eq!(openai.pick_key(), 1);
        assert_eq!(openai.keys_cooling(), 2);
        assert_eq!(s.providers[3].base.path, "/v1");
        assert!(!s.providers[2].lists_models(), "Azure deployments have no list");
        assert_eq!(s.providers[0].base.host, "api.openai.com");
    }

    #[test]
    fn classify_env_names() {
        let named = |n: &str| classify_env(n).map(|(f, suffix, field, i)| (f.name, suffix, field, i));
        assert_eq!(named("OPENAI_API_KEY"), Some(("openai", String::new(), "API_KEY", 1)));
        assert_eq!(
            named("OPENAI_EU_WEST_API_KEY_3"),
            Some(("openai", "eu-west".into(), "API_KEY", 3))
        );
        assert_eq!(
            named("AZURE_OPENAI_API_KEY").map(|c| (c.0, c.1)),
            Some(("azure", String::new()))
        );
        assert_eq!(named("OPENROUTER_BASE_URL").map(|c| c.0), Some("openrouter"));
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
    fn interpolated_numbers_and_bools_parse_as_their_field_types() {
        let yaml = "max_body_bytes: ${MB:-4096}\nserver:\n  threads: ${T}\n  grace_period_seconds: ${GRACE:-15}\nproviders:\n  openai:\n    api_key: ${KEY}\n    read_timeout_ms: ${RT:-2500}\n    discover_models: ${D:-false}\n    models: [m1]\n";
        let s = compile_env(&[("T", "3"), ("KEY", "12345678")], Some(yaml)).expect("numbers interpolate");
        assert_eq!(s.max_body_bytes, 4096);
        assert_eq!(s.server.threads, 3);
        assert_eq!(s.server.grace_period_seconds, 15);
        assert_eq!(
            s.providers[0].keys[0].expose(),
            "12345678",
            "an all-digit key stays a string"
        );
        assert_eq!(s.providers[0].read_timeout.as_millis(), 2500);
        assert!(!s.providers[0].lists_models());
        let errs =
            compile_env(&[], Some("server:\n  grace_period_seconds: ${GRACE:-soon}\n")).expect_err("not a number");
        assert_eq!(errs[0].path, "server.grace_period_seconds", "{errs:?}");
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
        let text = include_str!("../../conf/switchyard.yaml");
        let s = compile_env(&[("OPENAI_API_KEY", "sk-test")], Some(text)).expect("conf/switchyard.yaml is valid");
        let names: Vec<_> = s.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["local", "openai"]);
        assert_eq!(s.providers[0].base.path, "/v1");
        assert_eq!(s.aliases.len(), 2);
        // Without the key the file still parses, and the error names the path.
        let errs = compile_env(&[], Some(text)).expect_err("openai needs a key");
        assert!(errs.iter().any(|e| e.path == "providers.openai.api_key"), "{errs:?}");
    }
}
