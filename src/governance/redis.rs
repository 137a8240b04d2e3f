//! A small pipelined Redis client for the shared limiter: a pool of
//! connections, each driven by one task that writes commands as they
//! arrive (many requests' commands in one write) and hands replies back in
//! order. A call waits at most the configured timeout; while a connection
//! is down, calls on it fail at once (the caller then fails open or
//! closed), and the driver reconnects in the background. Nothing here
//! blocks a request thread.

use super::resp::{self, Reply};
use arc_swap::ArcSwapOption;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// Where Redis is, from `redis://[[user]:password@]host[:port][/db]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    db: Option<u32>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Target {
    /// Parses a `redis://` URL (the password is kept, never shown).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| "must start with redis:// (TLS is not supported)".to_string())?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (
                h,
                Some(
                    d.parse::<u32>()
                        .map_err(|_| "the database must be a number".to_string())?,
                ),
            ),
            None => (rest, None),
        };
        let port_of = |p: &str| p.parse::<u16>().map_err(|_| "bad port".to_string());
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| "unclosed [".to_string())?;
            match after.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None => (h, 6379),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (hostport, 6379),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (None, Some(a.to_string())),
            },
        };
        Ok(Target {
            host: host.to_string(),
            port,
            user,
            password,
            db,
        })
    }

    /// The URL with any password replaced, for logs and errors.
    pub fn redacted(&self) -> String {
        let auth = match (&self.user, &self.password) {
            (_, None) => String::new(),
            (Some(u), Some(_)) => format!("{u}:***@"),
            (None, Some(_)) => "***@".into(),
        };
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("redis://{auth}{}:{}{db}", self.host, self.port)
    }
}

/// Why a call failed (either way the caller's request is not held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection is up.
    Down,
    /// No reply within the timeout.
    Timeout,
    /// The connection broke before the reply came.
    Lost,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallError::Down => "not connected",
            CallError::Timeout => "timed out",
            CallError::Lost => "connection lost",
        })
    }
}

/// What runs on a call's replies, on the connection's task (dropped
/// unrun if the connection breaks first).
pub type Then = Box<dyn FnOnce(Vec<Reply>) + Send>;

/// Commands for one connection, and how many replies they produce.
struct Call {
    bytes: Vec<u8>,
    replies: usize,
    /// Runs on the replies (`None`: nobody waits for them).
    then: Option<Then>,
}

/// The pool.
pub struct Redis {
    target: Target,
    conns: Vec<ArcSwapOption<mpsc::UnboundedSender<Call>>>,
    next: AtomicUsize,
    timeout: Duration,
    /// Scripts loaded on every (re)connection, so `EVALSHA` finds them.
    scripts: Vec<String>,
    /// Whether the connections are being driven.
    started: AtomicBool,
    /// True until the first connection attempt ends: a call made before
    /// then waits for it (at most the timeout) instead of failing.
    first_try: AtomicBool,
    /// Told whenever a connection comes up (or the first attempt fails).
    up: Notify,
}

impl Redis {
    /// A pool of `size` connections to `target`; nothing connects until
    /// [`Redis::drive`] runs.
    pub fn new(target: Target, size: usize, timeout: Duration, scripts: Vec<String>) -> Redis {
        Redis {
            target,
            conns: (0..size.max(1)).map(|_| ArcSwapOption::empty()).collect(),
            next: AtomicUsize::new(0),
            timeout,
            scripts,
            started: AtomicBool::new(false),
            first_try: AtomicBool::new(true),
            up: Notify::new(),
        }
    }

    /// Starts driving the connections on the current Tokio runtime, once
    /// (the first request's: the workers' own, so a call wakes no other
    /// thread). Outside a runtime it does nothing.
    pub fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            if !self.started.swap(true, Ordering::AcqRel) {
                rt.spawn(self.clone().drive_all());
            }
        }
    }

    /// Where it connects (redacted).
    pub fn target(&self) -> String {
        self.target.redacted()
    }

    /// Whether any connection is up.
    pub fn connected(&self) -> bool {
        self.conns.iter().any(|c| c.load().is_some())
    }

    fn pick(&self) -> Option<Arc<mpsc::UnboundedSender<Call>>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| self.conns[(start + i) % n].load_full())
    }

    /// Sends `bytes` (holding `replies` commands, pipelined) and waits for
    /// their replies, at most the timeout.
    pub async fn call(&self, bytes: Vec<u8>, replies: usize) -> Result<Vec<Reply>, CallError> {
        let conn = match self.pick() {
            Some(c) => c,
            None => self.first_connection().await.ok_or(CallError::Down)?,
        };
        let (tx, rx) = oneshot::channel();
        conn.send(Call {
            bytes,
            replies,
            then: Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        })
        .map_err(|_| CallError::Down)?;
        match pingora_timeout::fast_timeout::fast_timeout(self.timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(CallError::Lost),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// A connection, once the first attempt to make one has ended (at most
    /// the timeout); `None` at once after that.
    async fn first_connection(&self) -> Option<Arc<mpsc::UnboundedSender<Call>>> {
        if !self.started.load(Ordering::Acquire) || !self.first_try.load(Ordering::Acquire) {
            return None;
        }
        let came = self.up.notified();
        tokio::pin!(came);
        came.as_mut().enable();
        if let Some(c) = self.pick() {
            return Some(c);
        }
        if !self.first_try.load(Ordering::Acquire) {
            return self.pick();
        }
        let _ = pingora_timeout::fast_timeout::fast_timeout(self.timeout, came).await;
        self.pick()
    }

    /// Waits until the first attempt to connect has ended (at most the
    /// timeout), so a call made at start-up is not failed for being early;
    /// at once after that.
    pub async fn first_attempt(&self) {
        let _ = self.first_connection().await;
    }

    /// Sends without waiting (a settlement after the answer has gone).
    pub fn send(&self, bytes: Vec<u8>, replies: usize) -> Result<(), CallError> {
        let conn = self.pick().ok_or(CallError::Down)?;
        conn.send(Call {
            bytes,
            replies,
            then: None,
        })
        .map_err(|_| CallError::Down)
    }

    /// Sends and runs `then` on the replies when they come, on the
    /// connection's own task: nothing waits, so nothing a caller drops can
    /// lose them. `Down` at once when no connection is up (`then` dropped
    /// unrun, as it is when the connection breaks). No timeout: a caller
    /// that needs one waits for what `then` sends it.
    pub fn send_then(&self, bytes: Vec<u8>, replies: usize, then: Then) -> Result<(), CallError> {
        let conn = self.pick().ok_or(CallError::Down)?;
        conn.send(Call {
            bytes,
            replies,
            then: Some(then),
        })
        .map_err(|_| CallError::Down)
    }

    /// Keeps every connection of the pool up until the task is dropped
    /// (run by a background service): connect, load the scripts, serve
    /// calls until the connection breaks, wait, again.
    pub async fn drive(self: Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.drive_all().await;
    }

    async fn drive_all(self: Arc<Self>) {
        let tasks: Vec<_> = (0..self.conns.len())
            .map(|i| tokio::spawn(self.clone().drive_one(i)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn drive_one(self: Arc<Self>, i: usize) {
        let mut backoff = Duration::from_millis(50);
        let mut said_down = false;
        loop {
            match self.connect().await {
                Ok(stream) => {
                    backoff = Duration::from_millis(50);
                    if said_down {
                        log::info!("limiter: connected to {}", self.target.redacted());
                        said_down = false;
                    }
                    let (tx, rx) = mpsc::unbounded_channel();
                    self.conns[i].store(Some(Arc::new(tx)));
                    self.first_try.store(false, Ordering::Release);
                    self.up.notify_waiters();
                    let why = serve(stream, rx).await;
                    self.conns[i].store(None);
                    log::warn!("limiter: connection to {} lost: {why}", self.target.redacted());
                }
                Err(e) => {
                    self.first_try.store(false, Ordering::Release);
                    self.up.notify_waiters();
                    if !said_down {
                        log::warn!("limiter: cannot reach {}: {e}", self.target.redacted());
                        said_down = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn connect(&self) -> Result<TcpStream, String> {
        let t = &self.target;
        let fut = TcpStream::connect((t.host.as_str(), t.port));
        let mut s = tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut hello = Vec::new();
        let mut n = 0;
        if let Some(p) = &t.password {
            match &t.user {
                Some(u) => resp::encode(&["AUTH", u, p], &mut hello),
                None => resp::encode(&["AUTH", p], &mut hello),
            }
            n += 1;
        }
        if let Some(db) = t.db {
            resp::encode(&["SELECT", &db.to_string()], &mut hello);
            n += 1;
        }
        for sc in &self.scripts {
            resp::encode(&["SCRIPT", "LOAD", sc], &mut hello);
            n += 1;
        }
        if n == 0 {
            return Ok(s);
        }
        let set_up = async {
            s.write_all(&hello).await.map_err(|e| e.to_string())?;
            let mut buf = Vec::with_capacity(512);
            let mut got = 0;
            while got < n {
                match resp::parse(&buf)? {
                    Some((r, used)) => {
                        buf.drain(..used);
                        if let Reply::Error(e) = r {
                            // AUTH errors quote nothing secret; the password is never echoed.
                            return Err(format!("set-up refused: {e}"));
                        }
                        got += 1;
                    }
                    None => {
                        if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                            return Err("closed during set-up".into());
                        }
                    }
                }
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(Duration::from_secs(1), set_up)
            .await
            .map_err(|_| "set-up timed out".to_string())??;
        Ok(s)
    }
}

/// A call whose replies are being collected.
struct Waiting {
    left: usize,
    got: Vec<Reply>,
    then: Option<Then>,
}

/// Serves calls on one connection until it breaks; says why.
async fn serve(stream: TcpStream, mut rx: mpsc::UnboundedReceiver<Call>) -> String {
    let (mut rd, mut wr) = stream.into_split();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        tokio::select! {
            call = rx.recv() => {
                let Some(first) = call else { return "pool closed".into() };
                out.clear();
                let mut next = Some(first);
                // Everything queued goes out in one write.
                while let Some(c) = next {
                    out.extend_from_slice(&c.bytes);
                    waiting.push_back(Waiting { left: c.replies, got: Vec::with_capacity(c.replies), then: c.then });
                    next = if out.len() < 64 * 1024 { rx.try_recv().ok() } else { None };
                }
                if let Err(e) = wr.write_all(&out).await {
                    return e.to_string();
                }
            }
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) => return "closed by the server".into(),
                    Err(e) => return e.to_string(),
                    Ok(_) => {}
                }
                let mut at = 0;
                loop {
                    match resp::parse(&inbuf[at..]) {
                        Ok(Some((reply, used))) => {
                            at += used;
                            let Some(w) = waiting.front_mut() else {
                                return "a reply nobody asked for".into();
                            };
                            w.got.push(reply);
                            w.left -= 1;
                            if w.left == 0 {
                                if let Some(Waiting { got, then: Some(then), .. }) = waiting.pop_front() {
                                    then(got);
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return e,
                    }
                }
                inbuf.drain(..at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_their_password() {
        let t = Target::parse("redis://:s3cret@10.0.0.5:6380/2").expect("valid");
        assert_eq!((t.host.as_str(), t.port, t.db), ("10.0.0.5", 6380, Some(2)));
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.redacted(), "redis://***@10.0.0.5:6380/2");
        assert!(!format!("{t:?}").contains("s3cret"));
        let u = Target::parse("redis://app:pw@cache").expect("valid");
        assert_eq!((u.user.as_deref(), u.port), (Some("app"), 6379));
        assert_eq!(u.redacted(), "redis://app:***@cache:6379");
        assert!(Target::parse("rediss://x").is_err());
        assert!(Target::parse("redis://h:notaport").is_err());
        assert!(Target::parse("redis://h/x").is_err());
    }

    #[tokio::test]
    async fn a_pool_that_is_not_connected_fails_at_once() {
        let r = Redis::new(
            Target::parse("redis://127.0.0.1:1").expect("valid"),
            2,
            Duration::from_millis(50),
            vec![],
        );
        let started = std::time::Instant::now();
        assert_eq!(r.call(b"*1\r\n$4\r\nPING\r\n".to_vec(), 1).await, Err(CallError::Down));
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
