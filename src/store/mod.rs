//! Durable state behind one trait, so a PostgreSQL backend can follow the
//! embedded sled default. No `sled::` type leaves `store/sled.rs`.

pub mod sled;

/// What the gateway needs from storage. Usage, audit, keys and overrides
/// are added by the issues that need them.
pub trait Store: Send + Sync {
    /// Ok when the store can serve reads and writes (`/health/ready`).
    fn health(&self) -> Result<(), String>;
    /// Flushes buffered writes to disk (shutdown).
    fn flush(&self) -> Result<(), String>;
}
