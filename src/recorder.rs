//! Gets usage records and audit entries from the request path into the store
//! without ever slowing or failing a request.
//!
//! The proxy's `logging` phase calls [`Recorder::record`]: one short mutex
//! section pushing onto a bounded queue. [`RecorderService`] (a Pingora
//! background service) writes the queue to the store in batches at least
//! every second, sooner when it fills past a high-water mark, runs retention
//! at start and hourly, and drains everything on shutdown. When the store
//! fails (disk full), records stay queued up to the capacity and the oldest
//! are dropped beyond it, counted and logged at most once a second.
//!
//! Durability: each successful batch is followed by a store flush, so a
//! `kill -9` loses at most what was queued in the last interval; a clean
//! stop loses nothing.

// wired into proxy by the lead

use crate::record::{AuditEntry, UsageRecord};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Most records per `write_batch` call.
const MAX_BATCH: usize = 4096;
/// Default retention of usage records, days.
pub const DEFAULT_USAGE_DAYS: u32 = 90;
/// Default retention of audit entries, days.
pub const DEFAULT_AUDIT_DAYS: u32 = 30;
/// Attempts to drain a failing store on shutdown before giving up.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// A request's record and audit entry, or an audit entry alone (an admin
/// change).
struct Item {
    usage: Option<UsageRecord>,
    audit: Option<AuditEntry>,
}

struct Inner {
    store: Arc<dyn Store>,
    queue: Mutex<VecDeque<Item>>,
    capacity: usize,
    high_water: usize,
    dropped: AtomicU64,
    written: AtomicU64,
    /// Batches the store failed to write, and its last error.
    write_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_drop_log_ms: AtomicU64,
    last_error_log_ms: AtomicU64,
    wake: Notify,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// True at most once per second per `last` (rate-limits error logs).
fn once_per_second(last: &AtomicU64) -> bool {
    once_per(last, 1000)
}

/// True at most once per `every_ms` per `last`.
fn once_per(last: &AtomicU64, every_ms: u64) -> bool {
    let now = now_ms();
    let prev = last.load(Ordering::Relaxed);
    now.saturating_sub(prev) >= every_ms
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// A batch taken off the queue, shaped for `write_batch`, that can be put
/// back when the write fails.
struct Batch {
    usage: Vec<UsageRecord>,
    audit: Vec<AuditEntry>,
    /// For each audit entry, the index of its usage record (`None`: an
    /// audit entry alone).
    audit_of: Vec<Option<usize>>,
}

impl Batch {
    fn from_items(items: Vec<Item>) -> Batch {
        let mut b = Batch {
            usage: Vec::with_capacity(items.len()),
            audit: Vec::new(),
            audit_of: Vec::new(),
        };
        for it in items {
            let i = it.usage.map(|u| {
                b.usage.push(u);
                b.usage.len() - 1
            });
            if let Some(a) = it.audit {
                b.audit.push(a);
                b.audit_of.push(i);
            }
        }
        b
    }

    fn into_items(self) -> Vec<Item> {
        let mut audits: Vec<Option<AuditEntry>> = (0..self.usage.len()).map(|_| None).collect();
        let mut alone = Vec::new();
        for (a, i) in self.audit.into_iter().zip(self.audit_of) {
            match i.and_then(|i| audits.get_mut(i)) {
                Some(slot) => *slot = Some(a),
                None => alone.push(Item {
                    usage: None,
                    audit: Some(a),
                }),
            }
        }
        let mut items: Vec<Item> = self
            .usage
            .into_iter()
            .zip(audits)
            .map(|(usage, audit)| Item {
                usage: Some(usage),
                audit,
            })
            .collect();
        items.extend(alone);
        items
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Item>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_dropped(&self, n: u64) {
        if n == 0 {
            return;
        }
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        if once_per_second(&self.last_drop_log_ms) {
            log::error!(
                "usage recorder queue full ({} records): dropped the oldest; {total} dropped since start",
                self.capacity
            );
        }
    }

    /// Puts a failed batch back at the front (it is older than anything
    /// queued since), dropping the oldest beyond capacity.
    fn requeue(&self, items: Vec<Item>) {
        let mut over = 0;
        {
            let mut q = self.queue();
            for it in items.into_iter().rev() {
                q.push_front(it);
            }
            while q.len() > self.capacity {
                q.pop_front();
                over += 1;
            }
        }
        self.count_dropped(over);
    }

    /// Writes one batch; `Ok(0)` when the queue was empty.
    async fn write_one(&self) -> Result<usize, StoreError> {
        let items: Vec<Item> = {
            let mut q = self.queue();
            let n = q.len().min(MAX_BATCH);
            let items = q.drain(..n).collect();
            // A burst grows the queue; give the memory back once it drained
            // rather than keeping the high-water mark resident.
            if q.is_empty() && q.capacity() > MAX_BATCH {
                q.shrink_to(MAX_BATCH);
            }
            items
        };
        if items.is_empty() {
            return Ok(0);
        }
        let n = items.len();
        let batch = Batch::from_items(items);
        let store = self.store.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = store.write_batch(&batch.usage, &batch.audit);
            (r, batch)
        })
        .await;
        match joined {
            Ok((Ok(()), _)) => {
                self.written.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Ok((Err(e), batch)) => {
                self.requeue(batch.into_items());
                self.write_failures.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                Err(e)
            }
            Err(e) => {
                // The store panicked: the batch is gone with the task.
                self.count_dropped(n as u64);
                Err(StoreError::Backend(format!("store writer task failed: {e}")))
            }
        }
    }

    /// Writes what is queued now (not what arrives meanwhile, so a busy
    /// gateway still gets its periodic flush), then flushes the store to
    /// disk. Returns records written; stops at the first error.
    async fn write_all(&self) -> Result<usize, StoreError> {
        let target = self.queue().len();
        if target == 0 {
            self.release_idle_queue();
            return Ok(0);
        }
        let mut total = 0;
        while total < target {
            match self.write_one().await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => return Err(e),
            }
        }
        if total > 0 {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(StoreError::Backend(e)),
                Err(e) => return Err(StoreError::Backend(format!("store flush task failed: {e}"))),
            }
        }
        Ok(total)
    }

    /// Frees the queue's buffer when nothing came for a whole write
    /// interval. Under load it keeps up to [`MAX_BATCH`] slots (696 bytes
    /// each), so refilling it costs no reallocation; idle, those 2.8 MiB
    /// were held for good (heap-profiled after a soak).
    fn release_idle_queue(&self) {
        let mut q = self.queue();
        if q.is_empty() {
            q.shrink_to_fit();
        }
    }

    fn log_write_error(&self, e: &StoreError) {
        // A stopped store fails every retry the same way until a restart:
        // say so once a minute, not every second.
        let every = if matches!(e, StoreError::Failed(_)) {
            60_000
        } else {
            1000
        };
        if once_per(&self.last_error_log_ms, every) {
            log::error!(
                "usage recorder cannot write to the store ({e}); {} records queued, oldest dropped beyond {}",
                self.queue().len(),
                self.capacity
            );
        }
    }
}

/// The recorder's counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecorderStats {
    /// Records the store accepted (durably) since start.
    pub written: u64,
    /// Records waiting in memory.
    pub queued: usize,
    /// Records dropped (queue full, or unwritable at shutdown).
    pub dropped: u64,
    /// Batches the store failed to write.
    pub write_failures: u64,
    /// The store's last write error.
    pub last_error: Option<String>,
}

/// The handle the proxy records through (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl Recorder {
    /// A recorder holding at most `capacity` records in memory, and the
    /// background service that writes them to `store` (retention defaults:
    /// 90 days usage, 30 days audit; see [`RecorderService::with_retention`]).
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> (Recorder, RecorderService) {
        let capacity = capacity.max(1);
        let inner = Arc::new(Inner {
            store,
            // Grows with load: a preallocated queue of large items was ~40 MiB
            // of address space that bursts turned into resident memory.
            queue: Mutex::new(VecDeque::new()),
            capacity,
            high_water: (capacity / 2).clamp(1, MAX_BATCH),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            last_drop_log_ms: AtomicU64::new(0),
            last_error_log_ms: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let svc = RecorderService {
            inner: inner.clone(),
            usage_days: DEFAULT_USAGE_DAYS,
            audit_days: DEFAULT_AUDIT_DAYS,
            interval: Duration::from_secs(1),
            retention_every: Duration::from_secs(3600),
            linger: Duration::ZERO,
            in_flight: None,
            on_drained: None,
        };
        (Recorder { inner }, svc)
    }

    /// Queues one request's record (and audit entry). Never blocks on I/O
    /// and never fails: when the queue is full the oldest record is dropped
    /// and counted.
    pub fn record(&self, usage: UsageRecord, audit: Option<AuditEntry>) {
        self.push(Item {
            usage: Some(usage),
            audit,
        });
    }

    /// Queues an audit entry of its own (an admin change: who, what, when).
    pub fn record_audit(&self, audit: AuditEntry) {
        self.push(Item {
            usage: None,
            audit: Some(audit),
        });
    }

    fn push(&self, item: Item) {
        let (len, over) = {
            let mut q = self.inner.queue();
            let over = if q.len() >= self.inner.capacity {
                q.pop_front();
                1
            } else {
                0
            };
            q.push_back(item);
            (q.len(), over)
        };
        self.inner.count_dropped(over);
        if len == self.inner.high_water {
            self.inner.wake.notify_one();
        }
    }

    /// Records dropped since start (queue full while the store lagged or
    /// failed).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// What the recorder knows of the store, for `/admin/runtime/store`
    /// and the store metrics.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            written: self.inner.written.load(Ordering::Relaxed),
            queued: self.inner.queue().len(),
            dropped: self.dropped(),
            write_failures: self.inner.write_failures.load(Ordering::Relaxed),
            last_error: self.inner.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Records written to the store since start.
    #[allow(dead_code)] // used by tests
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// Records waiting in memory.
    #[allow(dead_code)] // used by tests
    pub fn queued(&self) -> usize {
        self.inner.queue().len()
    }

    /// Writes everything queued now and flushes the store (tests, admin).
    pub async fn flush_now(&self) -> Result<usize, StoreError> {
        self.inner.write_all().await
    }
}

/// The background writer (add with `background_service("usage recorder", svc)`).
pub struct RecorderService {
    inner: Arc<Inner>,
    usage_days: u32,
    audit_days: u32,
    interval: Duration,
    retention_every: Duration,
    linger: Duration,
    in_flight: Option<InFlight>,
    on_drained: Option<Box<dyn Fn() + Send + Sync>>,
}

/// Reports requests still in flight (lets shutdown stop lingering early).
pub type InFlight = Arc<dyn Fn() -> usize + Send + Sync>;

impl RecorderService {
    /// Retention in days (0 keeps forever).
    pub fn with_retention(mut self, usage_days: u32, audit_days: u32) -> Self {
        self.usage_days = usage_days;
        self.audit_days = audit_days;
        self
    }

    /// The flush interval (default 1 s; tests shorten or lengthen it).
    #[allow(dead_code)] // used by tests
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Pingora signals shutdown at the *start* of the grace period, while
    /// in-flight requests still finish and record. The service keeps writing
    /// (every 100 ms) for up to `linger` — pass the grace period minus a
    /// margin, since the runtime is torn down when it ends — and stops
    /// early once `in_flight` reports 0 and the queue is empty. Then it
    /// drains and flushes. Default: no linger.
    pub fn with_shutdown_linger(mut self, linger: Duration, in_flight: Option<InFlight>) -> Self {
        self.linger = linger;
        self.in_flight = in_flight;
        self
    }

    /// Called once the queue is drained and flushed on shutdown: the
    /// process has nothing left to do and need not sit out Pingora's grace
    /// period.
    pub fn with_on_drained(mut self, f: Box<dyn Fn() + Send + Sync>) -> Self {
        self.on_drained = Some(f);
        self
    }

    async fn linger(&self) {
        let deadline = Instant::now() + self.linger;
        // Idle must be seen twice, 100 ms apart: a connection the listener
        // accepted just before it stopped is counted only once its task
        // starts, and exiting in between would reset it (seen under load in
        // the upgrade test as a readiness probe cut without an answer).
        let mut idle_before = false;
        while Instant::now() < deadline {
            if let Err(e) = self.inner.write_all().await {
                self.inner.log_write_error(&e);
            }
            let idle = self.in_flight.as_ref().is_some_and(|f| f() == 0);
            // A store that stopped after a failed write takes nothing more;
            // waiting out the grace period for it would only delay the exit.
            let stuck = self.inner.store.failure().is_some();
            let done = idle && (stuck || self.inner.queue().is_empty());
            if done && idle_before {
                return;
            }
            idle_before = done;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn retention(&self) {
        let store = self.inner.store.clone();
        let (u, a) = (self.usage_days, self.audit_days);
        match tokio::task::spawn_blocking(move || store.enforce_retention(now_ms(), u, a)).await {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((du, da))) => log::info!(
                "retention: deleted {du} usage records older than {u} days and {da} audit entries older than {a} days"
            ),
            Ok(Err(e)) => log::error!("retention failed: {e}"),
            Err(e) => log::error!("retention task failed: {e}"),
        }
    }

    /// Drains the queue on shutdown, retrying a failing store a few times.
    async fn drain(&self) {
        let mut failures = 0;
        while !self.inner.queue().is_empty() {
            if let Err(e) = self.inner.write_all().await {
                failures += 1;
                log::error!("usage recorder: shutdown write attempt {failures} failed: {e}");
                if failures >= SHUTDOWN_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let lost = {
            let mut q = self.inner.queue();
            let n = q.len();
            q.clear();
            n
        };
        if lost > 0 {
            self.inner.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            log::error!("usage recorder: {lost} records could not be written before shutdown");
        }
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => log::info!(
                "usage recorder drained: {} records written since start",
                self.inner.written.load(Ordering::Relaxed)
            ),
            Ok(Err(e)) => log::error!("store flush on shutdown failed: {e}"),
            Err(e) => log::error!("store flush task failed: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for RecorderService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.retention().await;
        let mut next_retention = Instant::now() + self.retention_every;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.wake.notified() => {}
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
            if let Err(e) = self.inner.write_all().await {
                self.inner.log_write_error(&e);
            }
            if Instant::now() >= next_retention {
                self.retention().await;
                next_retention = Instant::now() + self.retention_every;
            }
        }
        self.linger().await;
        self.drain().await;
        if let Some(f) = &self.on_drained {
            f();
        }
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
