//! What governance keeps on disk, beside the store in the data dir: the
//! admin API's keys and budgets (`governance.json`) and budget spend
//! (`spend.json`). Plain files, not the store, because an upgraded process
//! must authenticate from its first request while the previous one still
//! holds the store. Each file is replaced atomically (written to a
//! temporary file, synced, renamed, the directory synced), so a crash
//! leaves the old version or the new one, never a torn one. Only hashes of
//! secrets are ever written.

use super::keys::KeyRecord;
use super::meters::Meter;
use super::rules::PathBudget;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The admin API's state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AdminState {
    /// Keys created through `POST /admin/keys`.
    pub keys: Vec<KeyRecord>,
    /// Budgets created through `POST /admin/budgets`.
    pub budgets: Vec<PathBudget>,
}

/// Budget counters and keys' last use.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SpendState {
    /// Counter name → state.
    pub meters: BTreeMap<String, Meter>,
    /// Key id → last use (Unix ms).
    pub last_used: BTreeMap<String, u64>,
}

const ADMIN_FILE: &str = "governance.json";
const SPEND_FILE: &str = "spend.json";

fn load<T: Default + for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<T, String> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{name} is damaged: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("cannot read {name}: {e}")),
    }
}

fn save<T: Serialize>(dir: &Path, name: &str, v: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write {name}: {e}"))
}

/// Reads the admin API's keys and budgets (none yet: empty).
pub fn load_admin(dir: &Path) -> Result<AdminState, String> {
    load(dir, ADMIN_FILE)
}

/// Replaces the admin API's keys and budgets on disk.
pub fn save_admin(dir: &Path, s: &AdminState) -> Result<(), String> {
    save(dir, ADMIN_FILE, s)
}

/// Reads the spend counters.
pub fn load_spend(dir: &Path) -> Result<SpendState, String> {
    load(dir, SPEND_FILE)
}

/// Replaces the spend counters on disk.
pub fn save_spend(dir: &Path, s: &SpendState) -> Result<(), String> {
    save(dir, SPEND_FILE, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(load_admin(d.path()).expect("empty").keys.is_empty());
        let mut s = SpendState::default();
        s.meters.insert("b".into(), Meter::Calendar { start: 5, used: 7 });
        s.last_used.insert("key_1".into(), 42);
        save_spend(d.path(), &s).expect("save");
        let back = load_spend(d.path()).expect("load");
        assert!(matches!(
            back.meters.get("b"),
            Some(Meter::Calendar { start: 5, used: 7 })
        ));
        assert_eq!(back.last_used.get("key_1"), Some(&42));
        std::fs::write(d.path().join(SPEND_FILE), b"{not json").expect("write");
        assert!(load_spend(d.path()).is_err());
    }
}
