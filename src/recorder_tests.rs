//! The recorder's tests (kept apart so `recorder.rs` reads in one pass).

use super::*;
use crate::store::{Cursor, GroupRow, LogFilter, ModelOverride, Page, RollupQuery, StoreError};
use std::sync::atomic::AtomicU32;

/// An in-memory store that can be told to fail.
#[derive(Default)]
struct Mem {
    usage: Mutex<Vec<UsageRecord>>,
    audit: Mutex<Vec<AuditEntry>>,
    batches: Mutex<Vec<usize>>,
    fail_next: AtomicU32,
    flushes: AtomicU64,
    retention_runs: AtomicU64,
}

impl Store for Mem {
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    fn flush(&self) -> Result<(), String> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn write_batch(&self, u: &[UsageRecord], a: &[AuditEntry]) -> Result<(), StoreError> {
        if self
            .fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.usage.lock().unwrap().extend_from_slice(u);
        self.audit.lock().unwrap().extend_from_slice(a);
        self.batches.lock().unwrap().push(u.len());
        Ok(())
    }
    fn usage_rollup(&self, _: &RollupQuery) -> Result<Vec<GroupRow>, StoreError> {
        Ok(Vec::new())
    }
    fn usage_log(&self, _: &LogFilter, _: Option<&Cursor>, _: usize) -> Result<Page<UsageRecord>, StoreError> {
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    fn audit_log(&self, _: &LogFilter, _: Option<&Cursor>, _: usize) -> Result<Page<AuditEntry>, StoreError> {
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    fn audit_get(&self, _: &str) -> Result<Option<AuditEntry>, StoreError> {
        Ok(None)
    }
    fn enforce_retention(&self, _: u64, _: u32, _: u32) -> Result<(u64, u64), StoreError> {
        self.retention_runs.fetch_add(1, Ordering::Relaxed);
        Ok((0, 0))
    }
    fn overrides_list(&self) -> Result<Vec<(String, ModelOverride)>, StoreError> {
        Ok(Vec::new())
    }
    fn override_put(&self, _: &str, _: &ModelOverride) -> Result<(), StoreError> {
        Ok(())
    }
    fn override_delete(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

fn rec(i: u64) -> UsageRecord {
    crate::store::synth::record(i, 1_700_000_000_000 + i)
}

fn audit_for(r: &UsageRecord) -> AuditEntry {
    AuditEntry {
        request_id: r.request_id.clone(),
        ts_ms: r.ts_ms,
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        client: "127.0.0.1:1".into(),
        route: String::new(),
        status: r.status,
        upstream_status: None,
        duration_ms: 1,
        ttft_ms: None,
        error: None,
        user_path: String::new(),
        key_id: String::new(),
        request_headers: Vec::new(),
        request_body: None,
        response_body: None,
        bodies_truncated: false,
        attempts: Vec::new(),
    }
}

fn ids(m: &Mem) -> Vec<String> {
    m.usage.lock().unwrap().iter().map(|r| r.request_id.clone()).collect()
}

#[tokio::test]
async fn batches_keep_audit_paired_with_usage() {
    let mem = Arc::new(Mem::default());
    let (r, _svc) = Recorder::new(mem.clone(), 100);
    for i in 0..10 {
        let u = rec(i);
        let a = (i % 2 == 0).then(|| audit_for(&u));
        r.record(u, a);
    }
    assert_eq!(r.queued(), 10);
    assert_eq!(r.flush_now().await.expect("flush"), 10);
    assert_eq!(*mem.batches.lock().unwrap(), vec![10]);
    assert_eq!(mem.audit.lock().unwrap().len(), 5);
    assert_eq!(r.written(), 10);
    assert_eq!(mem.flushes.load(Ordering::Relaxed), 1);
    // Nothing queued: no write, no flush.
    assert_eq!(r.flush_now().await.expect("flush"), 0);
    assert_eq!(mem.flushes.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_idle_recorder_gives_its_queue_memory_back() {
    let mem = Arc::new(Mem::default());
    let (r, _svc) = Recorder::new(mem.clone(), 2 * MAX_BATCH);
    for i in 0..(MAX_BATCH as u64 + 10) {
        r.record(rec(i), None);
    }
    assert!(r.inner.queue().capacity() > MAX_BATCH);
    // Drained under load: the buffer shrinks to a batch, no further.
    assert_eq!(r.flush_now().await.expect("flush"), MAX_BATCH + 10);
    assert!(r.inner.queue().capacity() >= MAX_BATCH);
    // A write pass that finds nothing queued: all of it is freed.
    assert_eq!(r.flush_now().await.expect("flush"), 0);
    assert_eq!(r.inner.queue().capacity(), 0);
    assert_eq!(r.written(), MAX_BATCH as u64 + 10);
}

#[tokio::test]
async fn full_queue_drops_oldest_and_counts() {
    let mem = Arc::new(Mem::default());
    let (r, _svc) = Recorder::new(mem.clone(), 3);
    let recs: Vec<UsageRecord> = (0..5).map(rec).collect();
    for u in &recs {
        r.record(u.clone(), None);
    }
    assert_eq!(r.dropped(), 2);
    r.flush_now().await.expect("flush");
    let want: Vec<String> = recs[2..].iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(ids(&mem), want);
}

#[tokio::test]
async fn failing_store_keeps_records_queued_up_to_capacity() {
    let mem = Arc::new(Mem::default());
    mem.fail_next.store(2, Ordering::Relaxed);
    let (r, _svc) = Recorder::new(mem.clone(), 4);
    let recs: Vec<UsageRecord> = (0..6).map(rec).collect();
    for u in &recs[..3] {
        r.record(u.clone(), Some(audit_for(u)));
    }
    assert!(r.flush_now().await.is_err());
    assert_eq!(r.queued(), 3, "a failed batch goes back to the queue");
    for u in &recs[3..] {
        r.record(u.clone(), None);
    }
    assert_eq!(r.dropped(), 2);
    assert!(r.flush_now().await.is_err());
    assert_eq!(r.queued(), 4);
    assert_eq!(r.flush_now().await.expect("recovered"), 4);
    let want: Vec<String> = recs[2..].iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(ids(&mem), want, "oldest dropped, order kept");
    // The surviving record kept its audit entry through the requeue.
    assert_eq!(mem.audit.lock().unwrap().len(), 1);
    assert_eq!(mem.audit.lock().unwrap()[0].request_id, recs[2].request_id);
}

#[tokio::test]
async fn shutdown_drains_everything_and_flushes() {
    let mem = Arc::new(Mem::default());
    let (r, svc) = Recorder::new(mem.clone(), 1000);
    let svc = svc.with_interval(Duration::from_secs(3600));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { svc.start(rx).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..25 {
        r.record(rec(i), None);
    }
    tx.send(true).expect("send");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("service stops")
        .expect("no panic");
    assert_eq!(mem.usage.lock().unwrap().len(), 25);
    assert!(mem.flushes.load(Ordering::Relaxed) >= 1);
    assert_eq!(mem.retention_runs.load(Ordering::Relaxed), 1, "retention at start");
    assert_eq!(r.queued(), 0);
}

#[tokio::test]
async fn shutdown_lingers_for_requests_still_in_flight() {
    let mem = Arc::new(Mem::default());
    let (r, svc) = Recorder::new(mem.clone(), 1000);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let f = in_flight.clone();
    let svc = svc.with_interval(Duration::from_secs(3600)).with_shutdown_linger(
        Duration::from_secs(10),
        Some(Arc::new(move || f.load(Ordering::Relaxed))),
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { svc.start(rx).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    tx.send(true).expect("send");
    // A request finishing during the grace period is still recorded.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!task.is_finished(), "lingers while a request is in flight");
    r.record(rec(1), None);
    in_flight.store(0, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops once idle")
        .expect("no panic");
    assert_eq!(mem.usage.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn high_water_mark_flushes_before_the_interval() {
    let mem = Arc::new(Mem::default());
    let (r, svc) = Recorder::new(mem.clone(), 8);
    let svc = svc.with_interval(Duration::from_secs(3600));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { svc.start(rx).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..4 {
        r.record(rec(i), None);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while mem.usage.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mem.usage.lock().unwrap().len(), 4);
    task.abort();
}

#[tokio::test]
async fn periodic_flush_writes_within_the_interval() {
    let mem = Arc::new(Mem::default());
    let (r, svc) = Recorder::new(mem.clone(), 1000);
    let svc = svc.with_interval(Duration::from_millis(50));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { svc.start(rx).await });
    r.record(rec(1), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(mem.usage.lock().unwrap().len(), 1);
    task.abort();
}
