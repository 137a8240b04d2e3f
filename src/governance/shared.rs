//! The Redis limiter backend, for fleets: every counter lives in Redis and
//! admissions run in one server-side script (`lua/limiter.lua`), so limits
//! hold exactly across every node that shares it. Admissions are group
//! committed: one call is out at a time, and every request that arrives
//! meanwhile goes in the next one, so a request waits at most one call
//! longer than its own round trip and, under load, one call serves many
//! (Redis reads and writes each counter once per call). Settlements wait
//! to ride along with the next call (or go by themselves after
//! [`FLUSH_MS`]). The calls use connections driven on the proxy workers'
//! own runtime; the fleet sync's polling and the admin views use one of
//! their own. When Redis does not answer within the timeout the request is
//! admitted uncounted (`fail_open`, the default) or refused with 503
//! (`fail_closed`); either way it is logged (at most every few seconds) and
//! counted in `switchyard_limiter_backend_errors_total`.
//!
//! The admin API's keys and budgets are shared here too: a change made on
//! one node is written to two hashes and a version counter, and every node
//! polls the version, so a revoked key stops working everywhere within a
//! second.

use super::keys::KeyRecord;
use super::meters::{Admit, Check, Kind};
use super::redis::{CallError, Redis, Target};
use super::resp::{self, Reply};
use super::rules::PathBudget;
use super::script::{command, outcome, readings, script_args, sha1_hex, Cmd, Counter, Pending, Req, LIMITER_LUA};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const GOV_VERSION: &str = "sy:gov:v";
const GOV_KEYS: &str = "sy:gov:keys";
const GOV_BUDGETS: &str = "sy:gov:budgets";

/// What to do when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Admit uncounted (logged and counted).
    FailOpen,
    /// Refuse with 503.
    FailClosed,
}

/// The limiter's settings (`limiter:` and `SWITCHYARD_REDIS_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Redis, when counters are shared; `None`: in this process.
    pub redis: Option<Target>,
    /// When Redis does not answer.
    pub on_error: OnError,
    /// The longest a request waits for Redis.
    pub timeout: Duration,
}

impl Default for LimiterConfig {
    fn default() -> LimiterConfig {
        LimiterConfig {
            redis: None,
            on_error: OnError::FailOpen,
            timeout: Duration::from_millis(50),
        }
    }
}

/// The shared backend.
pub struct Shared {
    /// Admissions and settlements (started by the first request, on the
    /// runtime that serves requests).
    hot: Arc<Redis>,
    /// Polling, publishing and reads (driven by the fleet sync).
    control: Arc<Redis>,
    on_error: OnError,
    sha: String,
    /// Settlements waiting for the next admission.
    outbox: Arc<Outbox>,
    /// Admissions, group committed.
    batcher: Arc<Batcher>,
    /// The longest an admission waits (two calls' timeouts).
    wait: Duration,
    /// Whether the hot connections and the flusher run.
    started: AtomicBool,
    /// This process's ticket prefix (random), so tickets never collide
    /// across nodes.
    node: u64,
    seq: AtomicU64,
    /// Calls that failed (the metric).
    pub errors: AtomicU64,
    last_warned_ms: AtomicU64,
}

/// How long a settlement waits for an admission to ride along with before
/// it is sent by itself.
pub const FLUSH_MS: u64 = 2;

/// The settlements waiting, and the flusher's alarm.
#[derive(Default)]
struct Outbox {
    pending: std::sync::Mutex<Pending>,
    wake: tokio::sync::Notify,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }
}

/// Sends settlements that waited [`FLUSH_MS`] with no admission to carry
/// them (a quiet node), one script call for all of them.
async fn flusher(outbox: Arc<Outbox>, hot: Arc<Redis>, sha: String) {
    loop {
        outbox.wake.notified().await;
        loop {
            let since = outbox.lock().since_ms;
            let age = super::now_ms().saturating_sub(since);
            if age < FLUSH_MS {
                tokio::time::sleep(Duration::from_millis(FLUSH_MS - age)).await;
                continue;
            }
            let settled = outbox.take();
            if !settled.is_empty() {
                let bytes = command(b"EVALSHA", sha.as_bytes(), &settle_args(&settled));
                if let Err(e) = hot.send(bytes, 1) {
                    log::warn!("limiter: settling requests at {}: {e}", hot.target());
                }
            }
            break;
        }
    }
}

/// An admission waiting for its call.
struct Job {
    counters: Vec<Counter>,
    ticket: String,
    now: u64,
    tx: oneshot::Sender<Result<Admit, CallError>>,
}

/// Admissions that arrived while the previous call was out: they go
/// together, in order, as the next one (group commit: at c=1 a request is
/// sent at once; under load one call serves many, and Redis reads and
/// writes each counter once per call, not once per request). The call is
/// sent by the request that finds none out, or by the previous call's
/// reply handler, on the connection's task; no request's future holds a
/// call, so none dropped mid-way loses others' answers.
struct Batcher {
    jobs: std::sync::Mutex<Vec<Job>>,
    /// Whether a call is out (its holder sends the next one).
    busy: AtomicBool,
    hot: Arc<Redis>,
    sha: String,
    outbox: Arc<Outbox>,
    /// Admission calls sent, and the requests they carried.
    calls: AtomicU64,
    requests: AtomicU64,
}

/// A call that is out: its requests, and its arguments (for `EVAL` if
/// Redis lost the script). It holds `busy`: dropped, answered or not (the
/// connection broke, or it never went), it sends the next call; requests
/// still in it see their sender dropped (a lost call).
struct InFlight {
    batcher: Arc<Batcher>,
    jobs: Vec<Job>,
    args: Cmd,
    retried: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.jobs.clear();
        self.batcher.next();
    }
}

impl InFlight {
    /// Sends with `verb` (`EVALSHA <sha>` or `EVAL <script>`); the reply
    /// runs [`InFlight::answer`] on the connection's task.
    fn go(self, verb: &[u8], script: &[u8]) {
        let bytes = command(verb, script, &self.args);
        let hot = self.batcher.hot.clone();
        // On failure the closure, and with it `self`, is dropped: the next
        // call goes from there.
        let _ = hot.send_then(bytes, 1, Box::new(move |r| self.answer(r)));
    }

    /// Hands each request its outcome (or, if Redis lost the script,
    /// sends the call once more with the script itself).
    fn answer(mut self, r: Vec<Reply>) {
        match r.first() {
            Some(Reply::Error(e)) if e.starts_with("NOSCRIPT") && !self.retried => {
                self.retried = true;
                self.go(b"EVAL", LIMITER_LUA.as_bytes());
            }
            Some(Reply::Array(Some(v))) => {
                for (i, j) in self.jobs.drain(..).enumerate() {
                    let _ = j.tx.send(outcome(v.get(i), j.counters.len()));
                }
            }
            other => log::error!("limiter: the script answered {other:?}"),
        }
    }
}

impl Batcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an admission; sends it at once when no call is out.
    fn push(self: &Arc<Self>, job: Job) {
        self.lock().push(job);
        if !self.busy.swap(true, Ordering::AcqRel) {
            self.next();
        }
    }

    /// As the holder of `busy`: sends what is queued as one call (which
    /// then holds it), or releases it when nothing is.
    fn next(self: &Arc<Self>) {
        loop {
            let jobs = std::mem::take(&mut *self.lock());
            if jobs.is_empty() {
                self.busy.store(false, Ordering::SeqCst);
                // One may have queued between the take and the release.
                if !self.lock().is_empty() && !self.busy.swap(true, Ordering::AcqRel) {
                    continue;
                }
                // No call to ride along with: settlements that came while
                // this one was out go by themselves (see `Shared::settle`).
                if !self.outbox.lock().is_empty() {
                    self.outbox.wake.notify_one();
                }
                return;
            }
            if !self.hot.connected() {
                // Nothing to send on: told at once, settlements kept.
                for j in jobs {
                    let _ = j.tx.send(Err(CallError::Down));
                }
                continue;
            }
            return self.send(jobs);
        }
    }

    /// Sends one call for `jobs`, with the settlements waiting.
    fn send(self: &Arc<Self>, jobs: Vec<Job>) {
        // One clock for the call: the latest of its requests'.
        let now = jobs.iter().map(|j| j.now).max().unwrap_or(0);
        let settled = self.outbox.take();
        let mut args = Cmd::new();
        {
            let reqs: Vec<Req<'_>> = jobs
                .iter()
                .map(|j| Req {
                    ticket: &j.ticket,
                    counters: &j.counters,
                })
                .collect();
            script_args(&mut args, &settled, &reqs, now, b"admit");
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let call = InFlight {
            batcher: self.clone(),
            jobs,
            args,
            retried: false,
        };
        call.go(b"EVALSHA", self.sha.as_bytes());
    }
}

/// Runs the script on `pool` with `args` (what follows `EVALSHA <sha>`),
/// falling back to `EVAL` if the server lost its scripts.
async fn eval(pool: &Redis, sha: &str, args: &Cmd) -> Result<Vec<Reply>, CallError> {
    let r = pool.call(command(b"EVALSHA", sha.as_bytes(), args), 1).await?;
    match r.first() {
        Some(Reply::Error(e)) if e.starts_with("NOSCRIPT") => {
            pool.call(command(b"EVAL", LIMITER_LUA.as_bytes(), args), 1).await
        }
        _ => Ok(r),
    }
}

/// The script's arguments for `settled` alone.
fn settle_args(settled: &Pending) -> Cmd {
    let mut args = Cmd::new();
    script_args(&mut args, settled, &[], 0, b"settle");
    args
}

impl Shared {
    /// The backend for `target` (connections start when
    /// [`Shared::drive`] runs).
    pub fn new(target: Target, on_error: OnError, timeout: Duration) -> Shared {
        Shared::with_connections(target, on_error, timeout, 2)
    }

    /// The backend with `hot` connections for admissions and settlements
    /// (one keeps every command of a test in order).
    pub(super) fn with_connections(target: Target, on_error: OnError, timeout: Duration, hot: usize) -> Shared {
        let scripts = vec![LIMITER_LUA.to_string()];
        let hot = Arc::new(Redis::new(target.clone(), hot, timeout, scripts.clone()));
        let sha = sha1_hex(LIMITER_LUA);
        let outbox: Arc<Outbox> = Arc::default();
        let batcher = Arc::new(Batcher {
            jobs: std::sync::Mutex::default(),
            busy: AtomicBool::new(false),
            hot: hot.clone(),
            sha: sha.clone(),
            outbox: outbox.clone(),
            calls: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        Shared {
            hot,
            control: Arc::new(Redis::new(target, 1, timeout, scripts)),
            on_error,
            sha,
            outbox,
            batcher,
            wait: timeout * 2,
            started: AtomicBool::new(false),
            node: fastrand::u64(..),
            seq: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_warned_ms: AtomicU64::new(0),
        }
    }

    /// What to do when Redis does not answer.
    pub fn on_error(&self) -> OnError {
        self.on_error
    }

    /// Whether Redis is reachable for everything this node uses it for:
    /// the control connection, and the admission connections once
    /// admissions have started. (The control connection alone said "up"
    /// while the admission pool was still reconnecting, so a gateway could
    /// report the backend up and still admit uncounted.)
    pub fn connected(&self) -> bool {
        self.control.connected() && (!self.started.load(Ordering::Relaxed) || self.hot.connected())
    }

    /// Keeps the control connection up (the fleet sync runs this); the hot
    /// ones start with the first admission.
    pub async fn drive(&self) {
        self.control.clone().drive().await;
    }

    /// Admission calls sent so far, and the requests they carried (tests).
    #[cfg(test)]
    pub(super) fn batching(&self) -> (u64, u64) {
        (
            self.batcher.calls.load(Ordering::Relaxed),
            self.batcher.requests.load(Ordering::Relaxed),
        )
    }

    /// A new ticket name, unique across the fleet.
    pub fn ticket(&self) -> String {
        format!("{:016x}.{}", self.node, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts a failed call and says so in the log (at most every 5 s).
    pub fn failed(&self, what: &str, e: &CallError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = super::now_ms();
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 5_000
            && self
                .last_warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let then = match self.on_error {
                OnError::FailOpen => "admitting uncounted (fail_open)",
                OnError::FailClosed => "refusing with 503 (fail_closed)",
            };
            log::warn!("limiter: {what} at {}: {e}; {then}", self.control.target());
        }
    }

    /// Starts the hot connections and the settlement flusher on the
    /// current runtime (the first admission's: the proxy workers').
    fn start(&self) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        self.hot.start();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            if !self.started.swap(true, Ordering::AcqRel) {
                rt.spawn(flusher(self.outbox.clone(), self.hot.clone(), self.sha.clone()));
            }
        }
    }

    /// Admits or refuses against every check, atomically across the fleet
    /// (settling, in the same call, the requests that ended since the
    /// last one).
    pub async fn admit(&self, checks: &[Check], now: u64, ticket: &str) -> Result<Admit, CallError> {
        self.start();
        if !self.hot.connected() {
            self.hot.first_attempt().await;
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            counters: checks
                .iter()
                .map(|c| (c.meter.clone(), c.kind, c.limit, c.amount))
                .collect(),
            ticket: ticket.to_string(),
            now,
            tx,
        };
        self.batcher.push(job);
        // The call before this one, then this one: each within the timeout.
        match pingora_timeout::fast_timeout::fast_timeout(self.wait, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(CallError::Lost),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Reads counters without taking anything (`/v1/usage`, admin views):
    /// used and reserved, in order.
    pub async fn read(&self, items: &[(&str, Kind)], now: u64) -> Result<Vec<(i64, i64)>, CallError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.control.start();
        let list: Vec<Counter> = items.iter().map(|(m, k)| (Arc::from(*m), *k, 0, 0)).collect();
        let req = [Req {
            ticket: "",
            counters: &list,
        }];
        let none = Pending::default();
        let mut args = Cmd::new();
        script_args(&mut args, &none, &req, now, b"read");
        let r = eval(&self.control, &self.sha, &args).await?;
        let Some(Reply::Array(Some(all))) = r.first() else {
            return Err(CallError::Lost);
        };
        let Some(Reply::Array(Some(v))) = all.first() else {
            return Err(CallError::Lost);
        };
        let rs = readings(v, 1, items.len()).ok_or(CallError::Lost)?;
        Ok(rs.into_iter().map(|r| (r.used, r.reserved)).collect())
    }

    /// Waits until every settlement so far has been applied (tests).
    #[cfg(test)]
    pub(super) async fn barrier(&self) -> Result<(), CallError> {
        let settled = self.outbox.take();
        eval(&self.hot, &self.sha, &settle_args(&settled)).await.map(|_| ())
    }

    /// Sends the settlements still waiting (at shutdown), and waits for
    /// Redis to apply them.
    pub async fn flush(&self) {
        let settled = self.outbox.take();
        if settled.is_empty() {
            return;
        }
        let r = eval(&self.control, &self.sha, &settle_args(&settled)).await;
        if let Err(e) = r {
            self.failed("settling requests at shutdown", &e);
        }
    }

    /// Ends an admitted request: queued to ride along with the next
    /// admission (or sent by itself within [`FLUSH_MS`]).
    pub fn settle(&self, checks: &[Check], ticket: &str, at: u64, now: u64, tokens: i64, nano_usd: i64) {
        let mut p = self.outbox.lock();
        let was_empty = p.is_empty();
        p.push(checks, ticket, at, now, tokens, nano_usd);
        if was_empty && !p.is_empty() {
            p.since_ms = now;
            // While a call is out they ride along with the next one, or,
            // if none follows, the flusher is woken when it ends (it reads
            // the outbox after releasing `busy`, which is read here under
            // the outbox's lock: one of the two sees the other). Under
            // load the flusher then sleeps instead of waking per call.
            let carried = self.batcher.busy.load(Ordering::SeqCst);
            drop(p);
            if !carried {
                self.outbox.wake.notify_one();
            }
        }
    }

    /// Publishes the admin API's keys and budgets: entries that differ from
    /// `before` are written, removed ones deleted, and the version bumped,
    /// in one transaction.
    pub async fn publish(
        &self,
        before: (&[KeyRecord], &[PathBudget]),
        after: (&[KeyRecord], &[PathBudget]),
    ) -> Result<(), CallError> {
        let mut bytes = Vec::new();
        let mut n = 0;
        let mut push = |args: &[&[u8]], bytes: &mut Vec<u8>| {
            resp::encode(args, bytes);
            n += 1;
        };
        push(&[b"MULTI"], &mut bytes);
        diff(GOV_KEYS, before.0, after.0, |k| &k.id, &mut |a| push(a, &mut bytes));
        diff(GOV_BUDGETS, before.1, after.1, |b| &b.id, &mut |a| push(a, &mut bytes));
        push(&[b"INCR", GOV_VERSION.as_bytes()], &mut bytes);
        push(&[b"EXEC"], &mut bytes);
        let r = self.control.call(bytes, n).await?;
        match r.last() {
            Some(Reply::Array(Some(_))) => Ok(()),
            _ => Err(CallError::Lost),
        }
    }

    /// The shared version of the admin API's state (0: never written).
    pub async fn version(&self) -> Result<i64, CallError> {
        let mut bytes = Vec::new();
        resp::encode(&[b"GET".as_slice(), GOV_VERSION.as_bytes()], &mut bytes);
        let r = self.control.call(bytes, 1).await?;
        Ok(r.first().and_then(Reply::int).unwrap_or(0))
    }

    /// The shared admin state: its version, keys and budgets (entries that
    /// do not parse are skipped and logged).
    pub async fn fetch(&self) -> Result<(i64, Vec<KeyRecord>, Vec<PathBudget>), CallError> {
        let mut bytes = Vec::new();
        resp::encode(&[b"GET".as_slice(), GOV_VERSION.as_bytes()], &mut bytes);
        resp::encode(&[b"HGETALL".as_slice(), GOV_KEYS.as_bytes()], &mut bytes);
        resp::encode(&[b"HGETALL".as_slice(), GOV_BUDGETS.as_bytes()], &mut bytes);
        let r = self.control.call(bytes, 3).await?;
        let v = r.first().and_then(Reply::int).unwrap_or(0);
        Ok((v, values(r.get(1)), values(r.get(2))))
    }
}

/// Commands that turn hash `hash` from `before` into `after`.
fn diff<T: serde::Serialize + PartialEq>(
    hash: &str,
    before: &[T],
    after: &[T],
    id: impl Fn(&T) -> &String,
    emit: &mut dyn FnMut(&[&[u8]]),
) {
    for a in after {
        if !before.iter().any(|b| b == a) {
            if let Ok(json) = serde_json::to_vec(a) {
                emit(&[b"HSET", hash.as_bytes(), id(a).as_bytes(), &json]);
            }
        }
    }
    for b in before {
        if !after.iter().any(|a| id(a) == id(b)) {
            emit(&[b"HDEL", hash.as_bytes(), id(b).as_bytes()]);
        }
    }
}

fn values<T: for<'de> serde::Deserialize<'de>>(r: Option<&Reply>) -> Vec<T> {
    let Some(Reply::Array(Some(flat))) = r else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pair in flat.chunks(2) {
        let (Some(id), Some(Reply::Bulk(Some(json)))) = (pair.first().and_then(Reply::text), pair.get(1)) else {
            continue;
        };
        match serde_json::from_slice(json) {
            Ok(t) => out.push(t),
            Err(e) => log::error!("limiter: shared entry `{id}` does not parse: {e}"),
        }
    }
    out
}
