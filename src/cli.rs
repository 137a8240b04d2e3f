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
}
