//! The Pingora floor for `benches/load.sh`: the smallest `ProxyHttp` there is
//! (`upstream_peer` returns one fixed plain-HTTP peer, every other phase is
//! Pingora's default), run with the same Pingora version, allocator
//! (jemalloc with large blocks mapped by glibc, transparent huge pages off), release profile and worker-thread
//! count as the gateway. Its CPU per request is what any Pingora proxy pays
//! on this machine for the same traffic; the gateway's is reported as a
//! ratio to it.
//!
//! Usage: `bare_pingora ADDR UPSTREAM [THREADS]`, e.g.
//! `bare_pingora 127.0.0.1:0 127.0.0.1:8001 2` (THREADS defaults to the
//! core count, as the gateway's does). Prints `bare ready on ADDR (N threads)`
//! once the listener accepts connections. With port 0 the port is reserved
//! the way the gateway does it: a bound (not listening) `SO_REUSEPORT`
//! socket held for the life of the process, so the kernel picks the port and
//! nothing else can take it before Pingora binds it with `SO_REUSEPORT` too.
//! SIGINT stops it at once (Pingora's fast shutdown).
//!
//! An example, not part of the gateway binary.

#![cfg_attr(test, allow(dead_code))]

use async_trait::async_trait;
use pingora_core::listeners::TcpSocketOptions;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

// The gateway's own allocator, so the floor differs from the gateway only in
// what the gateway does per request.
#[path = "../src/alloc.rs"]
mod alloc;
#[global_allocator]
static GLOBAL: alloc::SplitAlloc = alloc::SplitAlloc;

/// Proxies every request to one upstream.
struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// Prints the ready line once a connection to the listener succeeds
/// (Pingora binds inside its service start-up and signals nothing).
struct Ready(SocketAddr, usize);

#[async_trait]
impl BackgroundService for Ready {
    async fn start(&self, _shutdown: ShutdownWatch) {
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(self.0).await.is_ok() {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "bare ready on {} ({} threads)", self.0, self.1);
                let _ = out.flush();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("bare_pingora: listener on {} never accepted a connection", self.0);
    }
}

/// A bound, not listening, `SO_REUSEPORT` socket on `addr` (port 0: the
/// kernel picks one); kept open, it reserves the port for Pingora.
fn reserve(addr: SocketAddr) -> std::io::Result<(SocketAddr, socket2::Socket)> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    let local = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an inet socket"))?;
    Ok((local, s))
}

fn usage() -> ! {
    eprintln!("usage: bare_pingora ADDR UPSTREAM [THREADS]   (ADDR and UPSTREAM are ip:port)");
    std::process::exit(2)
}

fn main() {
    // The gateway's allocator policy too (glibc's threshold for the large blocks).
    alloc::fix_large_block_threshold();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        usage();
    }
    let (Ok(addr), Ok(upstream)) = (args[1].parse::<SocketAddr>(), args[2].parse::<SocketAddr>()) else {
        usage()
    };
    let threads = match args.get(3).map(|t| t.parse::<usize>()) {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => usage(),
    };
    // Same as the gateway: keep the allocator's arenas off
    // transparent huge pages.
    // SAFETY: prctl(PR_SET_THP_DISABLE) only changes this process's memory
    // policy; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }

    let mut opts = TcpSocketOptions::default();
    let mut _reserved = None;
    let listen = if addr.port() == 0 {
        match reserve(addr) {
            Ok((a, s)) => {
                _reserved = Some(s);
                opts.so_reuseport = Some(true);
                a
            }
            Err(e) => {
                eprintln!("bare_pingora: cannot bind {addr}: {e}");
                std::process::exit(1);
            }
        }
    } else {
        addr
    };

    // Pid file and upgrade socket are per process so parallel runs never
    // share them; neither is used (no daemon, no upgrade).
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let conf = ServerConf {
        threads,
        pid_file: tmp.join(format!("bare_pingora.{pid}.pid")).display().to_string(),
        upgrade_sock: tmp.join(format!("bare_pingora.{pid}.sock")).display().to_string(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service_with_name(&server.configuration, Bare { upstream }, "bare");
    proxy.add_tcp_with_settings(&listen.to_string(), opts);
    server.add_service(proxy);
    server.add_service(background_service("ready", Ready(listen, threads)));
    server.run_forever()
}
