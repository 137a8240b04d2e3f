//! A store that opens later. During a zero-downtime upgrade the old process
//! still holds sled's lock on the data dir; the new one serves at once and
//! opens the store when the old one lets go (its grace period). Until then
//! writes fail softly — the recorder keeps records queued — and
//! `/health/ready` says the store is not open yet.

use super::{Cursor, GroupRow, LogFilter, ModelOverride, Page, RollupQuery, Store, StoreError};
use crate::record::{AuditEntry, UsageRecord};
use std::sync::{Arc, OnceLock};

/// Delegates to the real store once [`LazyStore::set`] was called.
#[derive(Default)]
pub struct LazyStore {
    inner: OnceLock<Arc<dyn Store>>,
}

impl LazyStore {
    /// An unopened store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the opened store (first call wins).
    pub fn set(&self, s: Arc<dyn Store>) {
        let _ = self.inner.set(s);
    }

    /// Whether the real store is installed.
    pub fn is_open(&self) -> bool {
        self.inner.get().is_some()
    }

    fn get(&self) -> Result<&Arc<dyn Store>, StoreError> {
        self.inner
            .get()
            .ok_or_else(|| StoreError::Backend("store not open yet (the previous process still holds it)".into()))
    }
}

impl Store for LazyStore {
    fn health(&self) -> Result<(), String> {
        self.get().map_err(|e| e.to_string())?.health()
    }
    fn failure(&self) -> Option<String> {
        self.inner.get().and_then(|s| s.failure())
    }
    fn is_open(&self) -> bool {
        self.inner.get().is_some()
    }
    fn close(&self) -> Result<(), String> {
        match self.inner.get() {
            Some(s) => s.close(),
            None => Ok(()),
        }
    }
    fn flush(&self) -> Result<(), String> {
        match self.inner.get() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
    fn disk_bytes(&self) -> Result<u64, StoreError> {
        self.get()?.disk_bytes()
    }
    fn write_batch(&self, usage: &[UsageRecord], audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.get()?.write_batch(usage, audit)
    }
    fn usage_rollup(&self, q: &RollupQuery) -> Result<Vec<GroupRow>, StoreError> {
        self.get()?.usage_rollup(q)
    }
    fn usage_log(&self, f: &LogFilter, c: Option<&Cursor>, limit: usize) -> Result<Page<UsageRecord>, StoreError> {
        self.get()?.usage_log(f, c, limit)
    }
    fn audit_log(&self, f: &LogFilter, c: Option<&Cursor>, limit: usize) -> Result<Page<AuditEntry>, StoreError> {
        self.get()?.audit_log(f, c, limit)
    }
    fn audit_get(&self, id: &str) -> Result<Option<AuditEntry>, StoreError> {
        self.get()?.audit_get(id)
    }
    fn enforce_retention(&self, now_ms: u64, usage_days: u32, audit_days: u32) -> Result<(u64, u64), StoreError> {
        self.get()?.enforce_retention(now_ms, usage_days, audit_days)
    }
    fn overrides_list(&self) -> Result<Vec<(String, ModelOverride)>, StoreError> {
        self.get()?.overrides_list()
    }
    fn override_put(&self, name: &str, o: &ModelOverride) -> Result<(), StoreError> {
        self.get()?.override_put(name, o)
    }
    fn override_delete(&self, name: &str) -> Result<bool, StoreError> {
        self.get()?.override_delete(name)
    }
}
