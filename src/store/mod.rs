//! Durable state behind one trait, so a PostgreSQL backend can follow the
//! embedded sled default. No `sled::` type leaves `store/sled.rs`.

pub mod encode;
pub mod lazy;
pub mod query;
pub mod rollup;
pub mod sled;
#[cfg(test)]
pub mod synth;

use crate::record::{AuditEntry, UsageRecord};
pub use query::{
    Counters, Cursor, GroupBy, GroupKey, GroupRow, LogFilter, ModelOverride, Page, RollupQuery, StatusFilter,
};
use std::fmt;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The engine failed (I/O, disk full, closed).
    Backend(String),
    /// Stored bytes could not be decoded (damage or a foreign format).
    Corrupt(String),
    /// A value could not be encoded (e.g. an override that is not JSON).
    Encode(String),
    /// A write failed (disk full, I/O error): nothing more is written or
    /// read until a restart, since what the engine holds in memory may not
    /// be on disk.
    Failed(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Backend(m) => write!(f, "store failure: {m}"),
            StoreError::Corrupt(m) => write!(f, "store data is corrupt: {m}"),
            StoreError::Encode(m) => write!(f, "cannot encode value for the store: {m}"),
            StoreError::Failed(m) => write!(
                f,
                "store stopped after a failed write ({m}); restart the gateway once the disk has room"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// What the gateway needs from storage. Every method is synchronous and may
/// take milliseconds: call it off the request path (the recorder's task, or
/// `spawn_blocking` in admin handlers).
pub trait Store: Send + Sync {
    /// Ok when the store can serve reads and writes (`/health/ready`).
    fn health(&self) -> Result<(), String>;
    /// Why the store stopped accepting writes, if it did (sticky until a
    /// restart; see [`StoreError::Failed`]).
    fn failure(&self) -> Option<String> {
        None
    }
    /// Whether the store is open yet (an upgraded process opens it once
    /// the previous one lets go).
    fn is_open(&self) -> bool {
        true
    }
    /// Marks a clean shutdown after the last write, so the next start
    /// skips the consistency check.
    fn close(&self) -> Result<(), String> {
        self.flush()
    }
    /// Flushes buffered writes to disk (each recorder flush, shutdown).
    fn flush(&self) -> Result<(), String>;
    /// Bytes the store occupies on disk.
    #[allow(dead_code)] // the scale bench and tests measure it; ops may show it
    fn disk_bytes(&self) -> Result<u64, StoreError>;

    /// Writes usage records (and updates their daily roll-ups) and audit
    /// entries, atomically: all or nothing.
    fn write_batch(&self, usage: &[UsageRecord], audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// Sums usage over whole UTC days from the roll-ups (never the raw
    /// records), grouped as asked. Rows come in no particular order.
    fn usage_rollup(&self, q: &RollupQuery) -> Result<Vec<GroupRow>, StoreError>;

    /// Usage records newest first, filtered, after `cursor`.
    fn usage_log(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<UsageRecord>, StoreError>;

    /// Audit entries newest first, filtered, after `cursor`; bodies are left
    /// out (`None`): fetch one entry for them.
    fn audit_log(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError>;

    /// One audit entry with its bodies.
    fn audit_get(&self, request_id: &str) -> Result<Option<AuditEntry>, StoreError>;

    /// Deletes usage records (and roll-up days) older than `usage_days`
    /// and audit entries older than `audit_days`, relative to `now_ms`.
    /// Returns (usage records deleted, audit entries deleted).
    fn enforce_retention(&self, now_ms: u64, usage_days: u32, audit_days: u32) -> Result<(u64, u64), StoreError>;

    /// Every model override, by public model name.
    fn overrides_list(&self) -> Result<Vec<(String, ModelOverride)>, StoreError>;
    /// Creates or replaces one override.
    fn override_put(&self, name: &str, o: &ModelOverride) -> Result<(), StoreError>;
    /// Deletes one override; true when it existed.
    fn override_delete(&self, name: &str) -> Result<bool, StoreError>;
}
