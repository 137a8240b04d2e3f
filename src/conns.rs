//! Client connections, each watched between requests — the part of a
//! connection's life Pingora does not bound.
//!
//! Pingora parses request heads itself and bounds each *read*, not the head:
//! a client trickling a byte every few seconds holds its connection for
//! ever, and enough of them exhaust the file descriptors. It also drops idle
//! keep-alive connections the moment a graceful stop begins, under clients
//! that may be sending, and answers bytes it cannot parse with a bare 400.
//!
//! [`Guarded`] wraps the proxy application: every accepted connection is
//! registered and its stream wrapped in a [`GuardedStream`] that knows
//! which phase the connection is in:
//!
//! ```text
//! Idle ──first byte──▶ Head ──pipeline starts──▶ Busy ──answered──▶ Idle
//!                      │ header_timeout: 408, closed
//! ```
//!
//! - **Head deadline**: a head must be complete within `header_timeout` of
//!   its first byte, or the client gets a 408 and the connection closes.
//! - **Connection cap**: beyond `max_connections`, connections are closed to
//!   make room — unfinished heads first, then idle ones, longest-waiting
//!   first — so `/health` and the admin API stay reachable; a Busy
//!   connection, and the newcomer itself, are never cut.
//! - **Parser refusals**: what Pingora writes for a request the pipeline
//!   never saw (its bare 400) is replaced by a JSON error in the caller's
//!   dialect, with `Connection: close`.
//! - **Draining** (stop or upgrade): each connection ends after a response
//!   carrying `Connection: close`, or once idle for [`DRAIN_IDLE`]; the
//!   application's cleanup (which drops connections) waits until every
//!   connection has gone or the grace period ends.
//!
//! The pipeline marks the phases through a task-local set for the
//! connection's task ([`request_started`], [`request_finished`]).

use crate::error::GatewayError;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType,
};
use pingora_core::server::ShutdownWatch;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use switchyard_filters::error::Dialect;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// While an upgrade drains, an idle keep-alive connection is closed once it
/// has been quiet this long: no request can be on its way.
pub const DRAIN_IDLE: Duration = Duration::from_millis(1500);

/// The same on a stop, shorter: nobody takes the client's next connection,
/// so this only covers a request already on the wire when the signal came
/// (measured: with no wait, 3 of 43,000 requests were reset).
pub const STOP_IDLE: Duration = Duration::from_millis(300);

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

tokio::task_local! {
    static CONN: Arc<Conn>;
}

/// Every open client connection.
pub struct Conns {
    epoch: Instant,
    header_timeout: Duration,
    max: usize,
    open: AtomicUsize,
    /// Connections evicted and not yet closed.
    closing: AtomicUsize,
    next_id: AtomicU64,
    draining: AtomicBool,
    /// While draining, how long an idle connection may stay quiet.
    drain_idle_ms: AtomicU64,
    table: Mutex<HashMap<u64, Arc<Conn>>>,
    gone: tokio::sync::Notify,
}

/// One connection's phase, shared by its stream and its requests.
pub struct Conn {
    id: u64,
    phase: AtomicU8,
    /// When the phase began, in ms since `Conns::epoch`.
    since: AtomicU64,
    /// Counts phase changes (tells a timer armed in an earlier phase).
    generation: AtomicU64,
    evicted: AtomicBool,
    /// The reader to wake when the connection must close while it waits.
    waker: Mutex<Option<Waker>>,
    conns: Arc<Conns>,
}

impl Conns {
    /// A registry with the configured head deadline and connection cap.
    pub fn new(header_timeout: Duration, max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            epoch: Instant::now(),
            header_timeout,
            max,
            open: AtomicUsize::new(0),
            closing: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_idle_ms: AtomicU64::new(0),
            table: Mutex::new(HashMap::new()),
            gone: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Open client connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether a stop or upgrade has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(self: &Arc<Self>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(self.now_ms()),
            generation: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
            conns: self.clone(),
        });
        self.open.fetch_add(1, Ordering::AcqRel);
        self.table().insert(conn.id, conn.clone());
        // Connections told to close but not gone yet no longer count.
        let staying = self.open().saturating_sub(self.closing.load(Ordering::Acquire));
        if staying > self.max {
            // Make room in batches so a flood does not scan per accept.
            self.evict(staying - self.max + self.max / 64, conn.id);
        }
        conn
    }

    fn deregister(&self, conn: &Conn) {
        self.table().remove(&conn.id);
        if conn.evicted.load(Ordering::Acquire) {
            self.closing.fetch_sub(1, Ordering::AcqRel);
        }
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.gone.notify_waiters();
        }
    }

    /// Closes the `n` connections that have waited longest without a
    /// request in the pipeline.
    /// The newcomer (`except`) is never among them: it is the one the
    /// room is made for.
    fn evict(&self, n: usize, except: u64) {
        let mut waiting: Vec<Arc<Conn>> = self
            .table()
            .values()
            .filter(|c| c.id != except && c.phase.load(Ordering::Acquire) != BUSY && !c.evicted.load(Ordering::Relaxed))
            .cloned()
            .collect();
        // Heads still arriving go first (a slow client holds them), then
        // idle connections; oldest first, and within a millisecond first
        // registered first.
        waiting.sort_by_key(|c| {
            (
                c.phase.load(Ordering::Relaxed) != HEAD,
                c.since.load(Ordering::Relaxed),
                c.id,
            )
        });
        for c in waiting.into_iter().take(n) {
            if !c.evicted.swap(true, Ordering::AcqRel) {
                self.closing.fetch_add(1, Ordering::AcqRel);
            }
            c.wake();
        }
        log::warn!(
            "more than {} client connections: closed the longest-waiting idle ones",
            self.max
        );
    }

    /// Starts draining: busy connections close after their response
    /// (`Connection: close`), idle ones once quiet for `idle` — on upgrade
    /// [`DRAIN_IDLE`] (the new process takes the client's next connection),
    /// on stop [`STOP_IDLE`].
    /// A second call (Pingora's cleanup after the signal) changes nothing.
    pub fn start_draining(&self, idle: Duration) {
        if self.draining.load(Ordering::Acquire) {
            return;
        }
        self.drain_idle_ms.store(idle.as_millis() as u64, Ordering::Relaxed);
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        let all: Vec<Arc<Conn>> = self.table().values().cloned().collect();
        for c in all {
            c.wake();
        }
    }

    /// Waits until every connection has closed, or `limit` passes.
    pub async fn wait_closed(&self, limit: Duration) {
        let wait = async {
            loop {
                let notified = self.gone.notified();
                if self.open() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

impl Conn {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.conns.now_ms(), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// How long the current phase has lasted.
    fn age(&self) -> Duration {
        Duration::from_millis(self.conns.now_ms().saturating_sub(self.since.load(Ordering::Relaxed)))
    }

    fn wake(&self) {
        let w = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn park(&self, cx: &Context<'_>) {
        let mut w = self.waker.lock().unwrap_or_else(|p| p.into_inner());
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
    }
}

/// The pipeline took a request off this connection: no deadline applies
/// until it is answered (the body has its own).
pub fn request_started() {
    let _ = CONN.try_with(|c| c.enter(BUSY));
}

/// The request was answered: the connection waits for the next head.
pub fn request_finished() {
    let _ = CONN.try_with(|c| c.enter(IDLE));
}

/// Whether this request's connection should close after its response
/// (a stop or upgrade is draining connections).
pub fn draining() -> bool {
    CONN.try_with(|c| c.conns.is_draining()).unwrap_or(false)
}

/// Registers a connection for as long as it lives.
struct Registration(Arc<Conn>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.conns.deregister(&self.0);
    }
}

/// The proxy application with every connection guarded.
pub struct Guarded<A> {
    inner: Arc<A>,
    conns: Arc<Conns>,
    /// How long cleanup lets connections drain (the grace period).
    grace: Duration,
}

impl<A> Guarded<A> {
    /// Guards `inner`'s connections with `conns`.
    pub fn new(inner: A, conns: Arc<Conns>, grace: Duration) -> Self {
        Guarded {
            inner: Arc::new(inner),
            conns,
            grace,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let conn = self.conns.register();
        let _registration = Registration(conn.clone());
        let guarded: Stream = Box::new(GuardedStream::new(stream, conn.clone()));
        // Pingora runs the whole keep-alive loop inside; nothing is returned.
        CONN.scope(conn, self.inner.process_new(guarded, shutdown)).await
    }

    async fn cleanup(&self) {
        // The listener has stopped. Let connections end on their own terms
        // before Pingora's cleanup drops whatever is left.
        self.conns.start_draining(DRAIN_IDLE);
        self.conns.wait_closed(self.grace).await;
        self.inner.cleanup().await;
    }
}

/// A client stream that enforces its connection's phase rules.
pub struct GuardedStream {
    inner: Stream,
    conn: Arc<Conn>,
    /// Head deadline, or the drain deadline of an idle connection.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The phase (`Conn::generation`) the timer was armed in; a timer from
    /// an earlier phase is stale.
    armed_for: Option<u64>,
    /// The start of the current head, to answer in its dialect.
    head_start: [u8; 24],
    head_len: usize,
    /// A JSON answer replacing Pingora's own, and how much is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// After a replacement, Pingora's remaining bytes are dropped.
    swallow: bool,
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish()
    }
}

impl GuardedStream {
    fn new(inner: Stream, conn: Arc<Conn>) -> Self {
        GuardedStream {
            inner,
            conn,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
            head_start: [0; 24],
            head_len: 0,
            replacement: None,
            swallow: false,
        }
    }

    fn arm(&mut self, after: Duration) {
        self.timer.as_mut().reset(tokio::time::Instant::now() + after);
        self.armed_for = Some(self.conn.generation.load(Ordering::Relaxed));
    }

    /// Whether the timer belongs to the current phase.
    fn armed(&self) -> bool {
        self.armed_for == Some(self.conn.generation.load(Ordering::Relaxed))
    }

    /// The dialect of the head read so far (Anthropic's path, else OpenAI).
    fn dialect(&self) -> Dialect {
        let line = &self.head_start[..self.head_len];
        if memchr::memmem::find(line, b" /v1/messages").is_some() {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }

    /// A complete response for `e`, closing the connection.
    fn answer(&self, e: &GatewayError) -> Vec<u8> {
        let body = e.body(self.dialect());
        let reason = http::StatusCode::from_u16(e.status())
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            e.status(),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Best effort, one write: the socket buffer of a connection that is
    /// still reading its head is empty, so a small answer fits.
    fn refuse(&mut self, cx: &mut Context<'_>, e: &GatewayError) -> Poll<std::io::Result<()>> {
        let out = self.answer(e);
        let _ = Pin::new(&mut self.inner).poll_write(cx, &out);
        self.swallow = true;
        Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, e.kind())))
    }

    /// Whether an idle connection with nothing to read must close now
    /// because a drain began and it has been quiet long enough; arms the
    /// wake-up for when it will have been, otherwise.
    fn drained_idle(&mut self) -> bool {
        if !self.conn.conns.is_draining() {
            return false;
        }
        let quiet = Duration::from_millis(
            self.conn
                .conns
                .now_ms()
                .saturating_sub(self.conn.since.load(Ordering::Relaxed)),
        );
        let wait = Duration::from_millis(self.conn.conns.drain_idle_ms.load(Ordering::Relaxed));
        if quiet >= wait {
            return true;
        }
        if !self.armed() {
            self.arm(wait - quiet);
        }
        false
    }

    /// Pingora's bytes for a request the pipeline never saw: replace its
    /// error response (or anything else) with our JSON error.
    fn replace_pingora_answer(&mut self, buf: &[u8]) {
        let status = buf
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok());
        let e = match status {
            Some(408) => GatewayError::ClientTimeout("head"),
            Some(413) => GatewayError::BodyTooLarge(0),
            _ => GatewayError::MalformedHttp,
        };
        self.replacement = Some((self.answer(&e), 0));
    }

    /// Writes the rest of a replacement answer; with none pending, ready at once.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((out, done)) = self.replacement.as_mut() {
            if *done >= out.len() {
                self.replacement = None;
                self.swallow = true;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &out[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let phase = this.conn.phase();
        if phase == BUSY {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.conn.evicted.load(Ordering::Acquire) {
            this.swallow = true;
            return Poll::Ready(Ok(())); // end of stream: Pingora closes quietly
        }
        // Bytes already sent are read (and served) before any close.
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if phase == IDLE && !got.is_empty() {
                    this.conn.enter(HEAD);
                    this.head_len = got.len().min(this.head_start.len());
                    this.head_start[..this.head_len].copy_from_slice(&got[..this.head_len]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.conn.park(cx);
                if phase == IDLE && this.drained_idle() {
                    this.swallow = true;
                    return Poll::Ready(Ok(()));
                }
                // The head deadline is armed only when a head is incomplete
                // and we wait for more: a head that arrives in one read (the
                // common case) never touches the timer wheel.
                if phase == HEAD && !this.armed() {
                    let t = this.conn.conns.header_timeout.saturating_sub(this.conn.age());
                    this.arm(t);
                }
                if this.armed() && this.timer.as_mut().poll(cx).is_ready() {
                    this.armed_for = None;
                    if this.conn.phase() == HEAD {
                        return this.refuse(cx, &GatewayError::ClientTimeout("head"));
                    }
                    this.swallow = true;
                    return Poll::Ready(Ok(())); // drained while idle
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.swallow && this.replacement.is_none() {
            return Poll::Ready(Ok(buf.len()));
        }
        if this.replacement.is_none() && this.conn.phase() != BUSY {
            this.replace_pingora_answer(buf);
        }
        if this.replacement.is_some() {
            return match this.poll_replacement(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.swallow || this.replacement.is_some() || this.conn.phase() != BUSY {
            let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &**b).unwrap_or(&[]);
            return Pin::new(this).poll_write(cx, first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        // A pending replacement answer goes out before anything else.
        std::task::ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        // A pending replacement answer goes out before anything else.
        std::task::ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        let _ = std::future::poll_fn(|cx| self.poll_replacement(cx)).await;
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora_core::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora_core::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora_core::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: pingora_core::protocols::SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
