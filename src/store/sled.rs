//! The embedded store: sled in `<data_dir>/store`. Nothing to install.

use super::Store;
use std::path::Path;

/// A sled database.
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SledStore, String> {
        let path = data_dir.join("store");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .map_err(|e| format!("cannot open store at {}: {e}", path.display()))?;
        Ok(SledStore { db })
    }
}

impl Store for SledStore {
    fn health(&self) -> Result<(), String> {
        // A real round trip through the tree, not just "the handle exists".
        self.db
            .insert(b"__health", b"1")
            .map(|_| ())
            .map_err(|e| format!("store write failed: {e}"))
    }

    fn flush(&self) -> Result<(), String> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| format!("store flush failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_is_healthy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SledStore::open(dir.path()).expect("open");
        assert!(s.health().is_ok());
        assert!(s.flush().is_ok());
    }
}
