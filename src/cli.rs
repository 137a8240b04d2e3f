//! Command-line interface (clap derive only; no logic here).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Switchyard: a fast, correct AI gateway.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// YAML config file (env SWITCHYARD_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address host:port (env SWITCHYARD_LISTEN, default 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (env SWITCHYARD_DATA_DIR, default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Take over the listening sockets of a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate environment + config file; print every error; exit 1 on any.
    CheckConfig {
        /// YAML config file (env SWITCHYARD_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
    /// Managed API keys: hash a secret for the config file, or manage the
    /// keys of a running gateway through its admin API.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
        /// The gateway (env SWITCHYARD_URL).
        #[arg(long, global = true, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The master key or an admin key (env SWITCHYARD_MASTER_KEY).
        #[arg(long, global = true, env = "SWITCHYARD_MASTER_KEY", hide_env_values = true)]
        admin_key: Option<String>,
    },
}

/// `switchyard keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Read a secret on stdin and print the hash to declare it under `keys:`.
    Hash,
    /// Create a key; its secret is printed once.
    Create {
        /// Its name (usage records carry it).
        #[arg(long)]
        name: String,
        /// Usage rolls up here; requests may only narrow it.
        #[arg(long)]
        user_path: Option<String>,
        /// Allowed models (names or globs such as `openai/*`), repeatable.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Requests in flight.
        #[arg(long)]
        concurrency: Option<u64>,
        /// Budget in USD per `--budget-period`.
        #[arg(long)]
        budget_usd: Option<f64>,
        /// hour, day, week, month, or a rolling window such as 24h.
        #[arg(long, default_value = "month")]
        budget_period: String,
        /// When it stops working (2026-12-31, RFC 3339 UTC, or Unix seconds).
        #[arg(long)]
        expires_at: Option<String>,
        /// May call the admin API.
        #[arg(long)]
        admin: bool,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke (delete) a key by id.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Give a key a new secret; the old one keeps working for the grace period.
    Rotate {
        /// The key id.
        id: String,
        /// Seconds the old secret keeps working.
        #[arg(long, default_value_t = 0)]
        grace_seconds: u64,
    },
}
