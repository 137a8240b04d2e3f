//! Hot reload: on a change of the config file (watched, filtered to that one
//! file, debounced), on SIGHUP, or on `POST /admin/runtime/refresh`, the whole
//! config is loaded and compiled again; only a fully valid snapshot replaces
//! the live one, in one atomic swap. An invalid file leaves the old snapshot
//! serving and every error is logged (and returned to the refresh endpoint).
//! Requests in flight keep the snapshot they started with.

use crate::config::{compile, ConfigError, Sources};
use crate::live::Live;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings that only a restart can change; a reload keeps the old values
/// and says so.
const RESTART_ONLY: &str = "listen, data_dir and server.* take effect only after a restart";

/// Re-runs config loading with the CLI arguments the process started with.
pub struct Reloader {
    cli_config: Option<PathBuf>,
    cli_listen: Option<String>,
    cli_data_dir: Option<PathBuf>,
    live: Arc<Live>,
    /// Serialises reloads and remembers the last file text (a `touch` or a
    /// save without changes is not a reload).
    last_text: Mutex<Option<String>>,
    on_result: Box<dyn Fn(bool) + Send + Sync>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new snapshot is live.
    Applied,
    /// The file did not change since the last load.
    Unchanged,
}

impl Reloader {
    /// A reloader for `live`; `on_result(ok)` is called after every attempt
    /// that compiled something (metrics).
    pub fn new(
        cli_config: Option<PathBuf>,
        cli_listen: Option<String>,
        cli_data_dir: Option<PathBuf>,
        live: Arc<Live>,
        on_result: Box<dyn Fn(bool) + Send + Sync>,
    ) -> Self {
        Reloader {
            cli_config,
            cli_listen,
            cli_data_dir,
            live,
            last_text: Mutex::new(None),
            on_result,
        }
    }

    /// The config file being used, if any (what the watcher watches).
    pub fn config_path(&self) -> Option<PathBuf> {
        self.cli_config.clone().or_else(|| {
            std::env::var("SWITCHYARD_CONFIG")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Loads, compiles and swaps. `force` reloads even an unchanged file.
    pub fn reload(&self, trigger: &str, force: bool) -> Result<ReloadOutcome, Vec<ConfigError>> {
        let mut last = self.last_text.lock().unwrap_or_else(|p| p.into_inner());
        let src = Sources::from_process(
            self.cli_config.clone(),
            self.cli_listen.clone(),
            self.cli_data_dir.clone(),
        )
        .inspect_err(|errs| self.report_failure(trigger, errs))?;
        if !force && src.file_text.is_some() && *last == src.file_text {
            return Ok(ReloadOutcome::Unchanged);
        }
        let snap = compile(&src).inspect_err(|errs| self.report_failure(trigger, errs))?;
        let old = self.live.snapshot();
        if old.listen != snap.listen || old.data_dir != snap.data_dir || old.server.threads != snap.server.threads {
            log::warn!("config reload ({trigger}): {RESTART_ONLY}");
        }
        let providers = snap.providers.len();
        self.live.swap(snap);
        *last = src.file_text;
        (self.on_result)(true);
        log::info!("config reloaded ({trigger}): {providers} provider(s)");
        Ok(ReloadOutcome::Applied)
    }

    /// Remembers the text of the file loaded at start-up.
    pub fn set_initial_text(&self, text: Option<String>) {
        *self.last_text.lock().unwrap_or_else(|p| p.into_inner()) = text;
    }

    fn report_failure(&self, trigger: &str, errs: &[ConfigError]) {
        (self.on_result)(false);
        log::error!(
            "config reload ({trigger}) rejected, the previous config keeps serving: {} error(s)",
            errs.len()
        );
        for e in errs {
            log::error!("  {e}");
        }
    }
}

/// Watches the config file (its directory, events filtered to its name, so
/// data or log files next to it never trigger reloads) and reloads after
/// 200 ms of quiet.
pub struct ConfigWatcher {
    /// The reloader.
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(path) = self.reloader.config_path() else {
            return;
        };
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let (Some(dir), Some(name)) = (path.parent().map(PathBuf::from), path.file_name().map(|n| n.to_owned())) else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let relevant = !ev.kind.is_access() && ev.paths.iter().any(|p| p.file_name() == Some(name.as_os_str()));
                if relevant {
                    let _ = tx.send(());
                }
            }
        };
        use notify::Watcher;
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                log::error!("cannot watch {}: {e}; reload with SIGHUP instead", path.display());
                return;
            }
        };
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            log::error!("cannot watch {}: {e}; reload with SIGHUP instead", dir.display());
            return;
        }
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() { return; }
                    // Debounce: editors write in several steps.
                    loop {
                        tokio::select! {
                            more = rx.recv() => if more.is_none() { return; },
                            _ = tokio::time::sleep(Duration::from_millis(200)) => break,
                        }
                    }
                    let _ = self.reloader.reload("file change", false);
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Reloads on SIGHUP (what `systemctl reload` sends).
pub struct SighupListener {
    /// The reloader.
    pub reloader: Arc<Reloader>,
}

#[async_trait]
impl BackgroundService for SighupListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            log::error!("cannot listen for SIGHUP");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = self.reloader.reload("SIGHUP", true); }
                _ = shutdown.changed() => return,
            }
        }
    }
}
