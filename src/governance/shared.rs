//! The Redis limiter backend, for fleets: every counter lives in Redis and
//! each admission is one server-side script (`lua/limiter.lua`), so limits
//! hold exactly across every node that shares it — one round trip per
//! request. Settlement (the same script) is sent after the answer, without
//! waiting. Admissions and settlements use connections driven on the proxy
//! workers' own runtime (no hop to another thread per call); the fleet
//! sync's polling and the admin views use one of their own. When Redis does not answer within the timeout the request is
//! admitted uncounted (`fail_open`, the default) or refused with 503
//! (`fail_closed`); either way it is logged (at most every few seconds) and
//! counted in `switchyard_limiter_backend_errors_total`.
//!
//! The admin API's keys and budgets are shared here too: a change made on
//! one node is written to two hashes and a version counter, and every node
//! polls the version, so a revoked key stops working everywhere within a
//! second.

use super::keys::KeyRecord;
use super::meters::{Admit, Check, Kind, Reading};
use super::redis::{CallError, Redis, Target};
use super::resp::{self, Reply};
use super::rules::PathBudget;
use super::window::{Period, BUCKETS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMITER_LUA: &str = include_str!("lua/limiter.lua");

/// How long a place in flight or a reservation outlives its request when
/// the node holding it dies (longer than any request: the provider read
/// timeout is 600 s).
pub const LEASE_MS: u64 = 15 * 60_000;

/// Every key this backend writes starts with this.
const PREFIX: &str = "sy:";
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

fn sha1_hex(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
    super::keys::hex(d.as_ref())
}

/// A command being built: arguments appended as they come, the count
/// written in front at the end.
struct Cmd {
    body: Vec<u8>,
    n: usize,
}

impl Cmd {
    fn new() -> Cmd {
        Cmd::with_capacity(512)
    }

    fn with_capacity(bytes: usize) -> Cmd {
        Cmd {
            body: Vec::with_capacity(bytes),
            n: 0,
        }
    }

    fn arg(&mut self, a: &[u8]) -> &mut Cmd {
        self.body.push(b'$');
        let mut b = itoa::Buffer::new();
        self.body.extend_from_slice(b.format(a.len()).as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(a);
        self.body.extend_from_slice(b"\r\n");
        self.n += 1;
        self
    }

    fn int(&mut self, v: impl itoa::Integer) -> &mut Cmd {
        let mut b = itoa::Buffer::new();
        let s = b.format(v);
        self.arg(s.as_bytes())
    }

    /// Appends the arguments `other` holds.
    fn raw(&mut self, other: &Cmd) -> &mut Cmd {
        self.body.extend_from_slice(&other.body);
        self.n += other.n;
        self
    }

    fn finish(self, out: &mut Vec<u8>) {
        out.push(b'*');
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.n).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// How long a settlement waits for an admission to ride along with before
/// it is sent by itself.
pub const FLUSH_MS: u64 = 2;

/// Settled counters not yet sent: their keys and arguments, encoded.
struct Pending {
    keys: Cmd,
    args: Cmd,
    /// When the oldest was queued (Unix ms).
    since_ms: u64,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            keys: Cmd::with_capacity(0),
            args: Cmd::with_capacity(0),
            since_ms: 0,
        }
    }
}

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

    /// Returns settlements that could not be sent, ahead of newer ones.
    fn put_back(&self, mut older: Pending) {
        if older.keys.n == 0 {
            return;
        }
        let mut p = self.lock();
        older.keys.raw(&p.keys);
        older.args.raw(&p.args);
        if p.keys.n > 0 {
            older.since_ms = older.since_ms.min(p.since_ms);
        }
        *p = older;
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
            if settled.keys.n > 0 {
                let mut cmd = Cmd::new();
                cmd.arg(b"EVALSHA").arg(sha.as_bytes());
                Shared::script_args(&mut cmd, &settled, &[], 0, "", b"settle");
                let mut bytes = Vec::with_capacity(cmd.body.len() + 16);
                cmd.finish(&mut bytes);
                if let Err(e) = hot.send(bytes, 1) {
                    log::warn!("limiter: settling requests at {}: {e}", hot.target());
                }
            }
            break;
        }
    }
}

/// The Redis key of check `c` at time `at`: a calendar budget's key names
/// its period, so a new period starts at zero by itself.
fn key_of(meter: &str, kind: Kind, at: u64) -> String {
    match calendar(kind).and_then(|p| p.bounds(at)) {
        Some((start, _)) => format!("{PREFIX}{meter}:{start}"),
        None => format!("{PREFIX}{meter}"),
    }
}

fn calendar(kind: Kind) -> Option<Period> {
    match kind {
        Kind::Usd(p) | Kind::BudgetTokens(p) if !matches!(p, Period::Rolling(_)) => Some(p),
        _ => None,
    }
}

/// The script's kind letter and span argument for a counter of `kind`.
fn shape(kind: Kind, now: u64) -> (&'static str, u64) {
    let width = |span: u64| (span / BUCKETS as u64).max(1);
    match kind {
        Kind::Requests | Kind::Tokens => ("w", width(60_000)),
        Kind::Concurrency => ("g", 0),
        Kind::Usd(Period::Rolling(ms)) | Kind::BudgetTokens(Period::Rolling(ms)) => ("b", width(ms)),
        Kind::Usd(p) | Kind::BudgetTokens(p) => ("c", p.bounds(now).map_or(now, |(_, end)| end)),
    }
}

fn readings(r: &[Reply], from: usize, n: usize) -> Option<Vec<Reading>> {
    (0..n)
        .map(|i| {
            let at = from + i * 3;
            Some(Reading {
                used: r.get(at)?.int()?,
                reserved: r.get(at + 1)?.int()?,
                reset_ms: u64::try_from(r.get(at + 2)?.int()?).unwrap_or(0),
            })
        })
        .collect()
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
        Shared {
            hot: Arc::new(Redis::new(target.clone(), hot, timeout, scripts.clone())),
            control: Arc::new(Redis::new(target, 1, timeout, scripts)),
            on_error,
            sha: sha1_hex(LIMITER_LUA),
            outbox: Arc::default(),
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

    /// Whether a connection is up.
    pub fn connected(&self) -> bool {
        self.control.connected()
    }

    /// Keeps the control connection up (the fleet sync runs this); the hot
    /// ones start with the first admission.
    pub async fn drive(&self) {
        self.control.clone().drive().await;
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

    /// Runs the script on `pool` with the rest of the command `build`
    /// writes (after `EVALSHA <sha>`), falling back to `EVAL` if the server
    /// lost its scripts.
    async fn eval(&self, pool: &Arc<Redis>, build: impl Fn(&mut Cmd)) -> Result<Vec<Reply>, CallError> {
        let mut cmd = Cmd::new();
        cmd.arg(b"EVALSHA").arg(self.sha.as_bytes());
        build(&mut cmd);
        let mut bytes = Vec::with_capacity(cmd.body.len() + 16);
        cmd.finish(&mut bytes);
        let r = pool.call(bytes, 1).await?;
        match r.first() {
            Some(Reply::Error(e)) if e.starts_with("NOSCRIPT") => {
                let mut cmd = Cmd::new();
                cmd.arg(b"EVAL").arg(LIMITER_LUA.as_bytes());
                build(&mut cmd);
                let mut bytes = Vec::new();
                cmd.finish(&mut bytes);
                pool.call(bytes, 1).await
            }
            _ => Ok(r),
        }
    }

    /// The script's arguments after `EVALSHA <sha>`: the settlements
    /// riding along, then the counters to admit or read.
    fn script_args(
        cmd: &mut Cmd,
        settled: &Pending,
        checks: &[(&str, Kind, i64, i64)],
        now: u64,
        ticket: &str,
        mode: &[u8],
    ) {
        cmd.int(settled.keys.n + checks.len());
        cmd.raw(&settled.keys);
        for (meter, kind, ..) in checks {
            cmd.arg(key_of(meter, *kind, now).as_bytes());
        }
        cmd.int(now).arg(ticket.as_bytes()).int(LEASE_MS).arg(mode);
        cmd.int(settled.keys.n / 2).raw(&settled.args);
        for (_, kind, limit, amount) in checks {
            let (k, span) = shape(*kind, now);
            cmd.arg(k.as_bytes()).int(*limit).int(*amount).int(span);
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
        let list: Vec<(&str, Kind, i64, i64)> = checks.iter().map(|c| (&*c.meter, c.kind, c.limit, c.amount)).collect();
        let settled = self.outbox.take();
        let r = self
            .eval(&self.hot, |cmd| {
                Self::script_args(cmd, &settled, &list, now, ticket, b"admit")
            })
            .await;
        if r == Err(CallError::Down) {
            // Never sent: the settlements wait for the next call.
            self.outbox.put_back(settled);
        }
        let r = r?;
        let bad = || CallError::Lost;
        let Some(Reply::Array(Some(v))) = r.first() else {
            if let Some(Reply::Error(e)) = r.first() {
                log::error!("limiter: admission script failed: {e}");
            }
            return Err(bad());
        };
        match v.first().and_then(Reply::int) {
            Some(1) => readings(v, 1, checks.len()).map(Admit::Yes).ok_or_else(bad),
            Some(0) => {
                let i = v.get(1).and_then(Reply::int).and_then(|i| usize::try_from(i).ok());
                let r = readings(v, 2, 1).and_then(|mut r| r.pop());
                match (i, r) {
                    (Some(i), Some(r)) if i < checks.len() => Ok(Admit::No(i, r)),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// Reads counters without taking anything (`/v1/usage`, admin views):
    /// used and reserved, in order.
    pub async fn read(&self, items: &[(&str, Kind)], now: u64) -> Result<Vec<(i64, i64)>, CallError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.control.start();
        let list: Vec<(&str, Kind, i64, i64)> = items.iter().map(|(m, k)| (*m, *k, 0, 0)).collect();
        let none = Pending::default();
        let r = self
            .eval(&self.control, |cmd| {
                Self::script_args(cmd, &none, &list, now, "", b"read")
            })
            .await?;
        let Some(Reply::Array(Some(v))) = r.first() else {
            return Err(CallError::Lost);
        };
        let rs = readings(v, 1, items.len()).ok_or(CallError::Lost)?;
        Ok(rs.into_iter().map(|r| (r.used, r.reserved)).collect())
    }

    /// Waits until every settlement so far has been applied (tests).
    #[cfg(test)]
    pub(super) async fn barrier(&self) -> Result<(), CallError> {
        let settled = self.outbox.take();
        self.eval(&self.hot, |cmd| Self::script_args(cmd, &settled, &[], 0, "", b"settle"))
            .await
            .map(|_| ())
    }

    /// Sends the settlements still waiting (at shutdown), and waits for
    /// Redis to apply them.
    pub async fn flush(&self) {
        let settled = self.outbox.take();
        if settled.keys.n == 0 {
            return;
        }
        let r = self
            .eval(&self.control, |cmd| {
                Self::script_args(cmd, &settled, &[], 0, "", b"settle")
            })
            .await;
        if let Err(e) = r {
            self.failed("settling requests at shutdown", &e);
        }
    }

    /// Ends an admitted request: queued to ride along with the next
    /// admission (or sent by itself within [`FLUSH_MS`]).
    pub fn settle(&self, checks: &[Check], ticket: &str, at: u64, now: u64, tokens: i64, nano_usd: i64) {
        let mut p = self.outbox.lock();
        let was_empty = p.keys.n == 0;
        for c in checks.iter().filter(|c| c.kind != Kind::Requests) {
            p.keys.arg(key_of(&c.meter, c.kind, at).as_bytes());
            p.keys.arg(key_of(&c.meter, c.kind, now).as_bytes());
            let (k, span) = shape(c.kind, now);
            let spent = if matches!(c.kind, Kind::Usd(_)) {
                nano_usd
            } else {
                tokens
            };
            let a = &mut p.args;
            match c.kind {
                Kind::Tokens => a.arg(b"t").int(tokens - c.amount).int(at).int(span),
                Kind::Concurrency => a.arg(b"g").int(0).int(0).int(0),
                _ => a.arg(k.as_bytes()).int(-c.amount).int(spent).int(span),
            };
            a.arg(ticket.as_bytes()).int(now);
        }
        if was_empty && p.keys.n > 0 {
            p.since_ms = now;
            drop(p);
            self.outbox.wake.notify_one();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_budgets_name_their_period_and_windows_do_not() {
        let day = 86_400_000;
        assert_eq!(
            key_of("k:budget:usd", Kind::Usd(Period::Day), day + 5),
            format!("sy:k:budget:usd:{day}")
        );
        assert_eq!(key_of("k:rpm", Kind::Requests, day + 5), "sy:k:rpm");
        assert_eq!(key_of("b:usd", Kind::Usd(Period::Rolling(3_600_000)), 7), "sy:b:usd");
        assert_eq!(shape(Kind::Requests, 0), ("w", 1000));
        assert_eq!(shape(Kind::Usd(Period::Day), day + 5), ("c", 2 * day));
        assert_eq!(shape(Kind::BudgetTokens(Period::Rolling(3_600_000)), 0), ("b", 60_000));
    }

    #[test]
    fn commands_count_their_arguments() {
        let mut c = Cmd::new();
        c.arg(b"EVALSHA").int(-12i64).arg(b"");
        let mut out = Vec::new();
        c.finish(&mut out);
        assert_eq!(out, b"*3\r\n$7\r\nEVALSHA\r\n$3\r\n-12\r\n$0\r\n\r\n");
    }

    #[test]
    fn the_scripts_hash_as_redis_names_them() {
        // SHA-1 of "return 1", as `SCRIPT LOAD` answers it.
        assert_eq!(sha1_hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
