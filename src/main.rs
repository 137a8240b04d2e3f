//! Switchyard: read the CLI, load config, build the Pingora server, run.

mod admin;
mod alloc;
mod cli;
mod cli_keys;
mod config;
mod conns;
mod discovery;
mod endpoint;
mod error;
mod governance;
mod http;
mod live;
mod pipeline;
mod policy;
mod prehashed;
mod pricing;
mod principal;
mod providers;
mod proxy;
mod record;
mod recorder;
mod reload;
mod resilience;
mod route;
mod secret;
mod signals;
mod state;
mod store;
mod summary;
mod telemetry;
mod upstream;

use clap::Parser;
use cli::{Cli, Command};
use config::{compile, ConfigError, Snapshot, Sources};
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use store::Store;

/// Longest timeout that Pingora's "fast" timers serve; longer ones use
/// Tokio's.
///
/// Why: a fast timer stays in Pingora's timer tree until its deadline even
/// when the wait it guarded ended long before. With the provider read
/// timeout (600 s by default) on fast timers, one slot per 10 ms per thread
/// stayed for 10 minutes: a linear RSS climb under load (heap-profiled
/// twice, ~6 MiB of timers at 4k requests/s). Tokio frees a cancelled
/// timer at once. The limit stays above Pingora's own client-side timeouts
/// (60 s keep-alive and pool idle): with it at 30 s a readiness probe failed
/// in about one upgrade test run in six. Set through `ServerConf`: Pingora
/// sets the process-wide threshold from it when the server starts (a call
/// of our own before that was overwritten with its 900 s default).
const FAST_TIMER_MAX_SECS: u64 = 300;

#[global_allocator]
static GLOBAL: alloc::SplitAlloc = alloc::SplitAlloc;

fn main() -> ExitCode {
    // Keep the allocator's arenas off transparent huge pages: with THP a few
    // touched bytes make 2 MiB resident (measured with mimalloc: idle RSS
    // 57 → 34 MiB without).
    // SAFETY: prctl(PR_SET_THP_DISABLE) only changes this process's memory
    // policy; it has no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    alloc::fix_large_block_threshold();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => check_config(config),
        Command::Keys { action, url, admin_key } => cli_keys::run(action, &url, admin_key.as_deref()),
        Command::Serve {
            config,
            listen,
            data_dir,
            upgrade,
        } => serve(config, listen, data_dir, upgrade),
    }
}

fn load(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<Snapshot, Vec<ConfigError>> {
    let src = Sources::from_process(config, listen, data_dir)?;
    compile(&src)
}

fn print_errors(errs: &[ConfigError]) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "configuration has {} error(s):", errs.len());
    for e in errs {
        let _ = writeln!(err, "  - {e}");
    }
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    match load(config, None, None) {
        Ok(snap) => {
            println!(
                "configuration OK: listen {}, data dir {}",
                snap.listen,
                snap.data_dir.display()
            );
            for p in &snap.providers {
                println!(
                    "  provider {} (type {}, {}, {} key(s), {} configured model(s){})",
                    p.name,
                    p.family,
                    p.base.display(),
                    p.keys.len(),
                    p.models.len(),
                    if p.discover_models { ", discovers /models" } else { "" }
                );
            }
            for (alias, (i, m)) in &snap.aliases {
                if let Some(p) = snap.providers.get(*i) {
                    println!("  alias {alias} -> {}/{m}", p.name);
                }
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            print_errors(&errs);
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str) {
    // Pingora's lifecycle lines (signals, upgrade, shutdown) are info; its
    // per-connection chatter is below that.
    let core = if matches!(level, "error" | "warn" | "off") {
        level
    } else {
        "info"
    };
    let filter = format!("{level},pingora_core={core},pingora_proxy=warn,sled=warn");
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(|buf, record| {
            let ts = buf.timestamp_millis();
            writeln!(buf, "{ts} {} {} {}", record.level(), record.target(), record.args())
        })
        .try_init();
}

/// Labels metrics may carry: configured providers and models; anything
/// else becomes `other` (bounded cardinality).
fn known_labels(m: &telemetry::metrics::Metrics, snap: &Snapshot) {
    m.set_known_providers(snap.providers.iter().map(|p| p.name.clone()));
    let mut models: Vec<String> = snap.aliases.keys().cloned().collect();
    for p in &snap.providers {
        for md in &p.models {
            models.push(md.clone());
            models.push(format!("{}/{md}", p.name));
        }
    }
    m.set_known_models(models);
}

/// Opens the store once the previous process released it (upgrade), then
/// loads the model overrides into the live state.
struct StoreOpener {
    lazy: Arc<store::lazy::LazyStore>,
    usage_days: u32,
    data_dir: PathBuf,
    live: Arc<live::Live>,
}

#[async_trait::async_trait]
impl BackgroundService for StoreOpener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Bounded: a previous process is gone after its grace period.
        for _ in 0..6000 {
            if self.lazy.is_open() {
                break;
            }
            if let Ok(s) = store::sled::SledStore::open_checked(&self.data_dir, admin::now_ms(), self.usage_days) {
                self.lazy.set(Arc::new(s));
                log::info!("store opened");
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
        }
        if !self.lazy.is_open() {
            log::error!("store could not be opened; usage is kept in memory only");
            return;
        }
        match self.lazy.overrides_list() {
            Ok(list) => self.live.set_overrides(list.into_iter().collect()),
            Err(e) => log::error!("cannot load model overrides: {e}"),
        }
    }
}

/// Flushes the store when the server shuts down.
struct StoreFlusher(Arc<dyn Store>);

#[async_trait::async_trait]
impl BackgroundService for StoreFlusher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = shutdown.changed().await;
        match self.0.flush() {
            Ok(()) => log::info!("store flushed on shutdown"),
            Err(e) => log::error!("{e}"),
        }
    }
}

/// Announces readiness once the listener really accepts connections: writes
/// `<data_dir>/listen.addr` and prints `switchyard ready on ADDR` on stdout.
/// Pingora binds listeners inside its service start-up and signals nothing,
/// so we probe our own socket; scripts and tests wait for this line.
struct ReadyAnnouncer {
    addr: SocketAddr,
    data_dir: PathBuf,
    /// Written with this process's id once it serves (`server.pid_file`),
    /// so scripts can signal the instance that owns the listener.
    pid_file: PathBuf,
    live: Arc<live::Live>,
}

#[async_trait::async_trait]
impl BackgroundService for ReadyAnnouncer {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Bare model names from providers' /models should route from the
        // first request; an unreachable provider delays readiness at most 10 s.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.live.discovery_done()).await;
        let mut probe = self.addr;
        if probe.ip().is_unspecified() {
            probe.set_ip(if probe.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(probe).await.is_ok() {
                let _ = std::fs::write(self.data_dir.join("listen.addr"), self.addr.to_string());
                if let Err(e) = std::fs::write(&self.pid_file, format!("{}\n", std::process::id())) {
                    log::warn!("could not write pid file {}: {e}", self.pid_file.display());
                }
                log::info!("switchyard {} listening on {}", env!("CARGO_PKG_VERSION"), self.addr);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "switchyard ready on {}", self.addr);
                let _ = out.flush();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        log::error!("listener on {} never accepted a connection", self.addr);
    }
}

/// For `--listen host:0`: reserve a free port with a bound (not listening)
/// SO_REUSEPORT socket that lives as long as the process, so nothing else can
/// take the port before Pingora binds it. Tests use this to run in parallel.
fn reserve_port(addr: SocketAddr) -> Result<(SocketAddr, socket2::Socket), String> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(|e| e.to_string())?;
    sock.set_reuse_port(true).map_err(|e| e.to_string())?;
    sock.bind(&addr.into())
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let local = sock
        .local_addr()
        .map_err(|e| e.to_string())?
        .as_socket()
        .ok_or("not an inet socket")?;
    Ok((local, sock))
}

/// Pingora's settings from ours.
fn server_conf(s: &config::ServerSettings) -> ServerConf {
    ServerConf {
        threads: s.threads,
        pid_file: s.pid_file.display().to_string(),
        upgrade_sock: s.upgrade_sock.display().to_string(),
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        fast_timeout_to_tokio_threshold_seconds: Some(FAST_TIMER_MAX_SECS),
        ..ServerConf::default()
    }
}

fn serve(config: Option<PathBuf>, listen: Option<String>, data_dir: Option<PathBuf>, upgrade: bool) -> ExitCode {
    let (listen_cli, data_dir_cli) = (listen.clone(), data_dir.clone());
    let snap = match load(config.clone(), listen, data_dir) {
        Ok(s) => s,
        Err(errs) => {
            print_errors(&errs);
            return ExitCode::from(1);
        }
    };
    init_logging(&snap.log_level);
    if let Err(e) = std::fs::create_dir_all(&snap.data_dir) {
        log::error!("cannot create data dir {}: {e}", snap.data_dir.display());
        return ExitCode::from(1);
    }
    // The store opens now, or — while a previous process still holds it
    // during an upgrade — as soon as that process lets go.
    let lazy = Arc::new(store::lazy::LazyStore::new());
    match store::sled::SledStore::open_checked(&snap.data_dir, admin::now_ms(), snap.usage_retention_days) {
        Ok(s) => lazy.set(Arc::new(s)),
        Err(e) if upgrade => log::warn!("{e}; opening it when the previous process exits"),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    }
    let store: Arc<dyn Store> = lazy.clone();
    // `compile` validated the address.
    let Ok(requested) = snap.listen.parse::<SocketAddr>() else {
        return ExitCode::from(1);
    };
    let mut sock_opts = TcpSocketOptions::default();
    let mut _reserved = None;
    let listen_addr = if requested.port() == 0 {
        match reserve_port(requested) {
            Ok((addr, sock)) => {
                _reserved = Some(sock);
                sock_opts.so_reuseport = Some(true);
                addr
            }
            Err(e) => {
                log::error!("{e}");
                return ExitCode::from(1);
            }
        }
    } else {
        requested
    };
    if snap.master_key.is_none() {
        log::warn!("SWITCHYARD_MASTER_KEY is not set: /v1/* accepts requests without a key");
    }
    for p in &snap.providers {
        log::info!("provider {} ({}) at {}", p.name, p.family, p.base.display());
    }

    let conf = server_conf(&snap.server);
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let data_dir = snap.data_dir.clone();
    let initial_text = match Sources::from_process(config.clone(), None, None) {
        Ok(src) => src.file_text,
        Err(_) => None,
    };
    // Until the SIGHUP listener starts, a reload signal must not kill us.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    // A write past RLIMIT_FSIZE must fail with EFBIG like a full disk,
    // not kill the process.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let grace = snap.server.grace_period_seconds;
    let snap_server = snap.server.clone();
    raise_fd_limit(snap_server.max_connections);
    let (usage_days, audit_days) = (snap.usage_retention_days, snap.audit_retention_days);
    let metrics_listen = snap.metrics_listen.clone();
    let metrics = Arc::new(telemetry::metrics::Metrics::new());
    known_labels(&metrics, &snap);
    let pid_file = snap.server.pid_file.clone();
    let governance = Arc::new(governance::Governance::default());
    governance.configure(snap.governance.keys.clone(), snap.governance.rules.clone());
    let spend = match governance.load(&snap.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(t) = snap.governance.limiter.redis.clone() {
        let l = &snap.governance.limiter;
        log::info!("limiter: counters shared through {}", t.redacted());
        governance.share(Arc::new(governance::shared::Shared::new(t, l.on_error, l.timeout)));
    }
    let fleet_sync = governance::sync::FleetSync {
        gov: governance.clone(),
        dir: snap.data_dir.clone(),
    };
    let gov_saver = governance::Saver {
        gov: governance.clone(),
        dir: snap.data_dir.clone(),
        state: std::sync::Mutex::new(spend),
    };
    let live = Arc::new(live::Live::new(snap));
    let (reload_metrics, reload_live, reload_gov) = (metrics.clone(), live.clone(), governance.clone());
    let reloader = Arc::new(reload::Reloader::new(
        config,
        listen_cli,
        data_dir_cli,
        live.clone(),
        Box::new(move |ok| {
            reload_metrics.config_reload(ok);
            if ok {
                let snap = reload_live.snapshot();
                known_labels(&reload_metrics, &snap);
                reload_gov.configure(snap.governance.keys.clone(), snap.governance.rules.clone());
            }
        }),
    ));
    reloader.set_initial_text(initial_text);
    let (recorder, recorder_svc) = recorder::Recorder::new(store.clone(), 100_000);
    let dropped = recorder.clone();
    metrics.set_dropped_source(move || dropped.dropped());
    let (store_rec, store_view) = (recorder.clone(), store.clone());
    metrics.set_store_source(move || (store_rec.stats().write_failures, store_view.failure().is_none()));
    if let Some(sh) = governance.shared().cloned() {
        metrics.set_limiter_source(move || (sh.errors.load(std::sync::atomic::Ordering::Relaxed), sh.connected()));
    }
    let in_flight_metrics = metrics.clone();
    let conns = conns::Conns::new(snap_server.header_timeout, snap_server.max_connections);
    let open_conns = conns.clone();
    // On stop, records are written until no request or connection is left,
    // then the process exits at once instead of sitting out the grace period.
    let recorder_svc = recorder_svc
        .with_retention(usage_days, audit_days)
        .with_shutdown_linger(
            std::time::Duration::from_secs(grace.saturating_sub(1)),
            Some(Arc::new(move || {
                in_flight_metrics.in_flight_count() + open_conns.open()
            })),
        )
        .with_on_drained(Box::new(|| {
            log::info!("nothing left in flight; exiting");
            std::process::exit(0)
        }));
    let services = state::Services {
        recorder,
        metrics: metrics.clone(),
        hub: Arc::new(telemetry::live_hub::LiveHub::new(1024)),
        stats: Arc::new(telemetry::provider_stats::ProviderStats::new()),
        reloader: reloader.clone(),
    };
    let mut gw = state::Gateway::new(live.clone(), store.clone(), services);
    gw.governance = governance;
    let circuits = gw.resilience.clone();
    // Instance circuits always; a model's once it has opened (callers can
    // name any model, so the rest would be unbounded series).
    metrics.set_circuit_source(move || {
        circuits
            .circuits()
            .into_iter()
            .filter(|c| c.model.is_none() || c.opened > 0)
            .map(|c| (c.provider, c.model.unwrap_or_default(), c.state.gauge()))
            .collect()
    });
    let proxy = pingora_proxy::http_proxy(&server.configuration, gw);
    let guarded = conns::Guarded::new(proxy, conns.clone(), std::time::Duration::from_secs(grace));
    let mut svc = pingora_core::services::listening::Service::new("switchyard".to_string(), guarded);
    // Pingora gives every accepted connection a 64 KiB read buffer, zeroed
    // on allocation: 64 KiB of RSS per open stream, most of the per-stream
    // cost. HTTP parsing reads into its own buffers, so reading straight
    // from the socket costs no extra syscalls for our requests.
    svc.add_listener(
        ListenerConfig::tcp(listen_addr.to_string())
            .tcp_socket_options(sock_opts)
            .l4_buffer(L4BufferSettings::default().read(0)),
    );
    server.add_service(svc);
    server.add_service(background_service(
        "model discovery",
        discovery::Discovery::new(live.clone()),
    ));
    server.add_service(background_service("usage recorder", recorder_svc));
    server.add_service(background_service(
        "store opener",
        StoreOpener {
            lazy,
            usage_days,
            data_dir: data_dir.clone(),
            live: live.clone(),
        },
    ));
    server.add_service(background_service("store flusher", StoreFlusher(store)));
    server.add_service(background_service("governance saver", gov_saver));
    if fleet_sync.gov.shared().is_some() {
        server.add_service(background_service("limiter", fleet_sync));
    }
    if let Some(addr) = metrics_listen {
        let mut m = pingora_proxy::http_proxy_service_with_name(
            &server.configuration,
            admin::serve::MetricsOnly(metrics.clone()),
            "metrics",
        );
        m.add_tcp(&addr);
        server.add_service(m);
    }
    server.add_service(background_service(
        "config watcher",
        reload::ConfigWatcher {
            reloader: reloader.clone(),
        },
    ));
    server.add_service(background_service("sighup", reload::SighupListener { reloader }));
    server.add_service(background_service(
        "ready announcer",
        ReadyAnnouncer {
            addr: listen_addr,
            data_dir,
            pid_file,
            live,
        },
    ));
    server.run(pingora_core::server::RunArgs {
        shutdown_signal: Box::new(signals::DrainingSignals(conns)),
    });
    ExitCode::SUCCESS
}

/// Raises the soft open-file limit toward the hard one, enough for
/// `max_connections` clients plus upstream connections and the store, so
/// the connection cap (not the kernel) decides when connections are shed.
fn raise_fd_limit(max_connections: usize) {
    let want = (max_connections as u64).saturating_mul(2).saturating_add(1024);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            log::warn!("could not raise the open-file limit to {}", lim.rlim_cur);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The provider read timeout (600 s unless configured) must run on
    /// Tokio's timers, which are freed when the read ends; Pingora's fast
    /// timers would hold a slot per 10 ms for its whole length.
    #[test]
    fn long_provider_timeouts_use_tokio_timers_and_short_ones_stay_fast() {
        let snap = config::compile(&config::read_sources_for_test(&[("OPENAI_API_KEY", "k")], None)).expect("config");
        let conf = server_conf(&snap.server);
        let limit = conf
            .fast_timeout_to_tokio_threshold_seconds
            .expect("a threshold is set");
        let read = snap.providers[0].read_timeout.as_secs();
        assert!(
            read > limit,
            "default read timeout {read} s must exceed the fast-timer limit {limit} s"
        );
        // Pingora's downstream keep-alive and pool idle waits (60 s) stay on
        // the cheaper fast timers.
        assert!(limit > 60);
    }
}
