//! The embedded store: sled in `<data_dir>/store`. Nothing to install.
//!
//! One sled tree, keys prefixed by kind, so a whole recorder batch (records,
//! roll-up updates, new dictionary strings, audit entries) is one atomic
//! `apply_batch`:
//!
//! | prefix | key | value |
//! | --- | --- | --- |
//! | `d` | id u32 | dictionary string |
//! | `u` | max_ts u64, seq u64 | segment reference to a block of up to [`BLOCK_MAX`] usage records spanning ≤ [`SPAN_MAX_MS`] |
//! | `r` | day u32, provider, model, user path, key (dictionary ids, varints) | counters |
//! | `t` | day u32, tag key id, tag value id (varints) | counters |
//! | `A` | max_ts u64, seq u64 | segment reference to a block of up to [`BLOCK_MAX`] audit entries (metadata) spanning ≤ [`SPAN_MAX_MS`] |
//! | `I` | id group (varint length, bytes), max_ts u64, seq u64 | the group's members in that `A` block |
//! | `b` | max_ts u64, seq u64, request id | segment reference to the audit bodies of an entry of that `A` block (`B`: inline, as older versions wrote them) |
//! | `o` | model name | override JSON |
//! | `m` | name | metadata (largest block span of usage, of audit; newest item time of each segment file; clean-stop marker) |
//!
//! Usage and audit blocks share their machinery (`sled_blocks.rs`); audit
//! specifics (index, bodies) are in `sled_audit.rs`. The bytes of blocks and
//! bodies are in segment files beside the tree (`sled_segments.rs` says
//! why); a store written before them keeps its inline values readable.

use super::encode::{
    decode_block, decode_counters, encode_block, encode_counters, Interner, Reader, RecView, Resolver, Writer,
};
use super::query::{day_of, path_ancestors, DAY_MS};
use super::rollup::{rollup_batch, RollupKey};
use super::{
    Counters, Cursor, GroupBy, GroupKey, GroupRow, LogFilter, ModelOverride, Page, RollupQuery, Store, StoreError,
};
use crate::record::{AuditEntry, UsageRecord};
use blocks::Series;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// Most records per block: bounds the work of reading one.
pub const BLOCK_MAX: usize = 512;
/// Widest time span of one block: bounds how far past a cursor a scan looks
/// (only block headers are read there). Low traffic fills blocks slowly, so
/// this is generous; busy hours fill them by count long before.
pub const SPAN_MAX_MS: u64 = 60 * 60 * 1000;
/// Strings beyond this many dictionary entries are stored inline.
const DICT_MAX: usize = 4_000_000;
/// Deletions per batch during retention.
const DELETE_CHUNK: usize = 1024;

const META_SPAN: &[u8] = b"mspan";
const META_AUDIT_SPAN: &[u8] = b"mspan-audit";

#[path = "sled_audit.rs"]
mod audit;
#[path = "sled_blocks.rs"]
mod blocks;
#[path = "sled_repair.rs"]
mod repair;
#[path = "sled_segments.rs"]
mod segments;

fn be(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The stored key of a roll-up row (new strings join `pend`).
fn rollup_key(key: &RollupKey<'_>, pend: &mut Pending<'_>) -> Result<Vec<u8>, StoreError> {
    let full = || StoreError::Backend("string dictionary is full".into());
    let mut k = Writer {
        buf: Vec::with_capacity(16),
    };
    let (prefix, day, parts): (u8, u32, [&str; 4]) = match *key {
        RollupKey::Combo {
            day,
            provider,
            model,
            user_path,
            key_id,
        } => (b'r', day, [provider, model, user_path, key_id]),
        RollupKey::Tag { day, key, value } => (b't', day, [key, value, "", ""]),
    };
    k.byte(prefix);
    k.buf.extend_from_slice(&day.to_be_bytes());
    let n = if prefix == b'r' { 4 } else { 2 };
    for p in &parts[..n] {
        k.varint(u64::from(pend.force(p).ok_or_else(full)?));
    }
    Ok(k.buf)
}

/// The string dictionary: every interned string and its id, loaded at open.
#[derive(Default)]
struct Dict {
    by_str: HashMap<Arc<str>, u32>,
    by_id: Vec<Arc<str>>,
}

impl Resolver for Dict {
    fn resolve(&self, id: u32) -> Option<&str> {
        self.by_id.get(id as usize).map(|s| &**s)
    }
}

/// The dictionary plus the strings a batch in progress adds; committed to
/// memory only once the batch is on disk.
struct Pending<'a> {
    base: &'a Dict,
    new: Vec<Arc<str>>,
    new_ids: HashMap<Arc<str>, u32>,
}

impl<'a> Pending<'a> {
    fn new(base: &'a Dict) -> Self {
        Pending {
            base,
            new: Vec::new(),
            new_ids: HashMap::new(),
        }
    }

    /// Interns unconditionally (roll-up keys need ids); `None` only when the
    /// id space is exhausted.
    fn force(&mut self, s: &str) -> Option<u32> {
        if let Some(id) = self.base.by_str.get(s).or_else(|| self.new_ids.get(s)) {
            return Some(*id);
        }
        let id = u32::try_from(self.base.by_id.len() + self.new.len()).ok()?;
        let a: Arc<str> = Arc::from(s);
        self.new.push(a.clone());
        self.new_ids.insert(a, id);
        Some(id)
    }
}

impl Interner for Pending<'_> {
    fn intern(&mut self, s: &str) -> Option<u32> {
        if self.base.by_id.len() + self.new.len() >= DICT_MAX {
            return self.base.by_str.get(s).or_else(|| self.new_ids.get(s)).copied();
        }
        self.force(s)
    }
}

impl Resolver for Pending<'_> {
    fn resolve(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        match i.checked_sub(self.base.by_id.len()) {
            None => self.base.resolve(id),
            Some(j) => self.new.get(j).map(|s| &**s),
        }
    }
}

/// A sled database.
pub struct SledStore {
    db: sled::Db,
    /// Serialises writers (roll-ups are read-modify-write).
    write_lock: Mutex<()>,
    dict: RwLock<Dict>,
    /// Usage record blocks.
    usage: Series,
    /// Audit entry blocks.
    audit: Series,
    blocks_read: AtomicU64,
    /// Held for writing while a batch is applied and flushed, so no reader
    /// ever sees a batch that is not yet durable.
    visible: RwLock<()>,
    /// Set by the first failed write; every later read and write fails.
    failed: OnceLock<String>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_be_bytes(a))
}

fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SledStore {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SledStore, StoreError> {
        let path = data_dir.join("store");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| StoreError::Backend(format!("cannot open store at {}: {e}", path.display())))?;
        let mut dict = Dict::default();
        for kv in db.scan_prefix(b"d") {
            let (k, v) = kv.map_err(be)?;
            let id = u32_at(&k, 1).ok_or_else(|| StoreError::Corrupt("dictionary key".into()))?;
            if id as usize != dict.by_id.len() {
                return Err(StoreError::Corrupt(format!("dictionary gap at id {id}")));
            }
            let s: Arc<str> =
                Arc::from(std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("dictionary string".into()))?);
            dict.by_str.insert(s.clone(), id);
            dict.by_id.push(s);
        }
        let files = path.join("segments");
        Ok(SledStore {
            usage: Series::load(&db, &files, b'u', META_SPAN)?,
            audit: Series::load(&db, &files, b'A', META_AUDIT_SPAN)?,
            db,
            write_lock: Mutex::new(()),
            dict: RwLock::new(dict),
            blocks_read: AtomicU64::new(0),
            visible: RwLock::new(()),
            failed: OnceLock::new(),
        })
    }

    /// Opens the store and, after an unclean stop, repairs the roll-ups
    /// from the usage log (see `sled_repair.rs`), saying what it fixed.
    pub fn open_checked(data_dir: &Path, now_ms: u64, usage_days: u32) -> Result<SledStore, StoreError> {
        let s = Self::open(data_dir)?;
        match s.recover(now_ms, usage_days)? {
            Some(r) if r.rows_fixed > 0 => log::warn!(
                "store: the last stop was not clean and {} roll-up rows disagreed with the usage log ({} records); rebuilt them from the log",
                r.rows_fixed,
                r.records
            ),
            Some(r) => log::info!(
                "store: the last stop was not clean; roll-ups agree with the usage log ({} records)",
                r.records
            ),
            None => {}
        }
        Ok(s)
    }

    /// Usage and audit blocks decoded by log pages and lookups since open:
    /// lets tests and the bench prove that summaries read roll-ups only and
    /// that a lookup reads one block.
    #[allow(dead_code)] // tests and benches/store.rs
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read.load(Ordering::Relaxed)
    }

    /// Keys and key+value bytes per key prefix (a segment reference counts
    /// the bytes it refers to): the size breakdown the tests and the bench
    /// print, without handing sled types out.
    #[allow(dead_code)] // tests and benches/store.rs
    pub fn prefix_sizes(&self) -> Result<BTreeMap<u8, (u64, u64)>, StoreError> {
        let mut by: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
        for kv in self.db.iter() {
            let (k, v) = kv.map_err(be)?;
            let x = by.entry(k.first().copied().unwrap_or(0)).or_default();
            x.0 += 1;
            let referred = segments::Loc::parse(&v)?.map_or(0, |l| l.len());
            x.1 += (k.len() + v.len()) as u64 + referred;
        }
        Ok(by)
    }

    fn dict(&self) -> std::sync::RwLockReadGuard<'_, Dict> {
        self.dict.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit_dict(&self, new: Vec<Arc<str>>) {
        if new.is_empty() {
            return;
        }
        let mut d = self.dict.write().unwrap_or_else(PoisonError::into_inner);
        for s in new {
            let id = d.by_id.len() as u32;
            d.by_str.insert(s.clone(), id);
            d.by_id.push(s);
        }
    }

    /// Adds the roll-up deltas of `usage` to the stored rows in `batch`.
    fn add_rollups(
        &self,
        usage: &[UsageRecord],
        pend: &mut Pending<'_>,
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        for (key, delta) in rollup_batch(usage) {
            let k = rollup_key(&key, pend)?;
            let mut c = match self.db.get(&k).map_err(be)? {
                Some(v) => decode_counters(&v)?,
                None => Counters::default(),
            };
            c.merge(&delta);
            batch.insert(k, encode_counters(&c));
        }
        Ok(())
    }

    /// Applies `batch` and makes it durable before anyone can read it:
    /// readers wait during apply + flush. After a failure sled may still
    /// hold the batch in memory; showing it would report records that a
    /// restart loses, so the store stops (see [`StoreError::Failed`]).
    fn apply(&self, batch: sled::Batch) -> Result<(), StoreError> {
        let _v = self.visible.write().unwrap_or_else(PoisonError::into_inner);
        self.check()?;
        // What the batch refers to is on disk before the batch is.
        for s in [&self.usage, &self.audit] {
            s.files.sync().map_err(|e| self.fail(e))?;
        }
        self.db
            .apply_batch(batch)
            .and_then(|()| self.db.flush().map(|_| ()))
            .map_err(|e| self.fail(e))
    }

    /// The store's state for readers and writers: failed stays failed.
    fn check(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            Some(m) => Err(StoreError::Failed(m.clone())),
            None => Ok(()),
        }
    }

    fn fail(&self, e: impl std::fmt::Display) -> StoreError {
        let m = e.to_string();
        if self.failed.set(m.clone()).is_ok() {
            log::error!("store write failed ({m}): the store stops accepting writes and reads until a restart");
        }
        StoreError::Failed(m)
    }

    /// Runs a read that sees only durable batches.
    fn read<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _v = self.visible.read().unwrap_or_else(PoisonError::into_inner);
        self.check()?;
        f()
    }

    fn delete_range(&self, lo: &[u8], hi: &[u8]) -> Result<(), StoreError> {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self.db.range(lo..hi).take(DELETE_CHUNK) {
                let (k, _) = kv.map_err(be)?;
                batch.remove(k);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.apply(batch)?;
        }
    }

    fn usage_retention(&self, cutoff: u64) -> Result<u64, StoreError> {
        let mut deleted = self.expire_blocks(&self.usage, cutoff, |_, _, _| Ok(0))?;
        // Blocks straddling the cutoff keep only their recent records.
        let dict = self.dict();
        let mut pend = Pending::new(&dict);
        let mut batch = sled::Batch::default();
        for (k, v) in self.straddling(&self.usage, cutoff)? {
            let (_, views) = decode_block(&v, &pend)?;
            let keep: Vec<UsageRecord> = views
                .iter()
                .filter(|r| r.ts_ms >= cutoff)
                .map(RecView::to_record)
                .collect();
            deleted += (views.len() - keep.len()) as u64;
            if keep.is_empty() {
                batch.remove(k);
                continue;
            }
            let refs: Vec<&UsageRecord> = keep.iter().collect();
            let enc = encode_block(&refs, &mut pend);
            let stored = self.block_ref(&self.usage, &enc, &mut batch)?;
            batch.insert(k, stored);
        }
        for (i, s) in pend.new.iter().enumerate() {
            let id = (dict.by_id.len() + i) as u32;
            batch.insert(prefixed(b'd', &id.to_be_bytes()), s.as_bytes());
        }
        let new = std::mem::take(&mut pend.new);
        drop(pend);
        drop(dict);
        self.apply(batch)?;
        self.commit_dict(new);
        // Roll-up days entirely before the cutoff's day.
        let day = day_of(cutoff);
        for p in [b'r', b't'] {
            self.delete_range(&[p], &prefixed(p, &day.to_be_bytes()))?;
        }
        Ok(deleted)
    }
}

impl Store for SledStore {
    fn health(&self) -> Result<(), String> {
        self.check().map_err(|e| e.to_string())?;
        // A real round trip through the tree, not just "the handle exists".
        self.db
            .insert(b"__health", b"1")
            .map(|_| ())
            .map_err(|e| format!("store write failed: {e}"))
    }

    fn failure(&self) -> Option<String> {
        self.failed.get().cloned()
    }

    fn close(&self) -> Result<(), String> {
        self.mark_clean(true).map_err(|e| e.to_string())
    }

    fn flush(&self) -> Result<(), String> {
        self.check().map_err(|e| e.to_string())?;
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| format!("store flush failed: {e}"))
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        let files = self.usage.files.disk_bytes() + self.audit.files.disk_bytes();
        Ok(self.db.size_on_disk().map_err(be)? + files)
    }

    fn write_batch(&self, usage: &[UsageRecord], audit: &[AuditEntry]) -> Result<(), StoreError> {
        if usage.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let _w = lock(&self.write_lock);
        let dict = self.dict();
        let mut pend = Pending::new(&dict);
        let mut batch = sled::Batch::default();
        let usage_span = self.put_blocks(&self.usage, usage, |chunk, key| {
            let stored = self.block_ref(&self.usage, &encode_block(chunk, &mut pend), &mut batch)?;
            batch.insert(key, stored);
            Ok(())
        })?;
        self.add_rollups(usage, &mut pend, &mut batch)?;
        let audit_span = self.add_audit(audit, &mut batch)?;
        for (i, s) in pend.new.iter().enumerate() {
            let id = (dict.by_id.len() + i) as u32;
            batch.insert(prefixed(b'd', &id.to_be_bytes()), s.as_bytes());
        }
        self.usage.note(usage_span, &mut batch);
        self.audit.note(audit_span, &mut batch);
        let new = std::mem::take(&mut pend.new);
        drop(pend);
        drop(dict);
        self.apply(batch)?;
        self.commit_dict(new);
        self.usage.committed(usage_span);
        self.audit.committed(audit_span);
        Ok(())
    }

    fn usage_rollup(&self, q: &RollupQuery) -> Result<Vec<GroupRow>, StoreError> {
        self.read(|| {
            let prefix = if q.group_by == GroupBy::Tag { b't' } else { b'r' };
            if q.from_day > q.to_day {
                return Ok(Vec::new());
            }
            let lo = prefixed(prefix, &q.from_day.to_be_bytes());
            let hi = match q.to_day.checked_add(1) {
                Some(d) => prefixed(prefix, &d.to_be_bytes()),
                None => vec![prefix + 1],
            };
            let bad = || StoreError::Corrupt("roll-up key".into());
            // Aggregate by ids first; strings are resolved once per group.
            let mut agg: HashMap<(Option<u32>, u32, u32), Counters> = HashMap::new();
            for kv in self.db.range(lo.as_slice()..hi.as_slice()) {
                let (k, v) = kv.map_err(be)?;
                let day = u32_at(&k, 1).ok_or_else(bad)?;
                let mut r = Reader::new(k.get(5..).ok_or_else(bad)?);
                let mut ids = [0u32; 4];
                for id in ids.iter_mut().take(if prefix == b'r' { 4 } else { 2 }) {
                    *id = r.varint_u32()?;
                }
                let g = match q.group_by {
                    GroupBy::Total => (0, 0),
                    GroupBy::Provider => (ids[0], 0),
                    GroupBy::Model | GroupBy::Tag => (ids[0], ids[1]),
                    GroupBy::UserPath => (ids[2], 0),
                    GroupBy::Key => (ids[3], 0),
                };
                let c = decode_counters(&v)?;
                agg.entry((q.per_day.then_some(day), g.0, g.1)).or_default().merge(&c);
            }
            let dict = self.dict();
            let s = |id: u32| -> Result<String, StoreError> {
                dict.resolve(id)
                    .map(str::to_string)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown dictionary id {id}")))
            };
            let mut out = Vec::with_capacity(agg.len());
            let mut paths: HashMap<(Option<u32>, String), Counters> = HashMap::new();
            for ((day, a, b), counters) in agg {
                let key = match q.group_by {
                    GroupBy::Total => GroupKey::Total,
                    GroupBy::Provider => GroupKey::Provider(s(a)?),
                    GroupBy::Model => GroupKey::Model {
                        provider: s(a)?,
                        model: s(b)?,
                    },
                    GroupBy::Key => GroupKey::Key(s(a)?),
                    GroupBy::Tag => GroupKey::Tag {
                        key: s(a)?,
                        value: s(b)?,
                    },
                    GroupBy::UserPath => {
                        // Leaves are stored; every ancestor sums its subtree.
                        let leaf = dict.resolve(a).ok_or_else(bad)?;
                        for node in path_ancestors(leaf) {
                            paths.entry((day, node.to_string())).or_default().merge(&counters);
                        }
                        continue;
                    }
                };
                out.push(GroupRow { day, key, counters });
            }
            out.extend(paths.into_iter().map(|((day, p), counters)| GroupRow {
                day,
                key: GroupKey::UserPath(p),
                counters,
            }));
            Ok(out)
        })
    }

    fn usage_log(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<UsageRecord>, StoreError> {
        self.read(|| {
            let dict = self.dict();
            self.block_log(&self.usage, filter, cursor, limit, |v, window, out| {
                let (_, views) = decode_block(v, &*dict)?;
                for r in &views {
                    if window.admits(r.ts_ms, r.request_id)
                        && filter.matches_usage(r.ts_ms, r.provider, r.model, r.upstream_model, r.user_path, r.status)
                    {
                        out.push(r.to_record());
                    }
                }
                Ok(())
            })
        })
    }

    fn audit_log(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.read(|| self.audit_page(filter, cursor, limit))
    }

    fn audit_get(&self, request_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        self.read(|| self.audit_find(request_id))
    }

    fn enforce_retention(&self, now_ms: u64, usage_days: u32, audit_days: u32) -> Result<(u64, u64), StoreError> {
        let _w = lock(&self.write_lock);
        let cutoff = |days: u32| now_ms.saturating_sub(u64::from(days) * DAY_MS);
        let u = if usage_days == 0 {
            0
        } else {
            self.usage_retention(cutoff(usage_days))?
        };
        let a = if audit_days == 0 {
            0
        } else {
            self.audit_retention(cutoff(audit_days))?
        };
        Ok((u, a))
    }

    fn overrides_list(&self) -> Result<Vec<(String, ModelOverride)>, StoreError> {
        self.read(|| {
            let mut out = Vec::new();
            for kv in self.db.scan_prefix(b"o") {
                let (k, v) = kv.map_err(be)?;
                let name = std::str::from_utf8(&k[1..]).map_err(|_| StoreError::Corrupt("override name".into()))?;
                let o: ModelOverride =
                    serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("override {name}: {e}")))?;
                out.push((name.to_string(), o));
            }
            Ok(out)
        })
    }

    fn override_put(&self, name: &str, o: &ModelOverride) -> Result<(), StoreError> {
        let v = serde_json::to_vec(o).map_err(|e| StoreError::Encode(e.to_string()))?;
        let mut batch = sled::Batch::default();
        batch.insert(prefixed(b'o', name.as_bytes()), v);
        self.apply(batch)
    }

    fn override_delete(&self, name: &str) -> Result<bool, StoreError> {
        let key = prefixed(b'o', name.as_bytes());
        let existed = self.read(|| self.db.contains_key(&key).map_err(be))?;
        let mut batch = sled::Batch::default();
        batch.remove(key);
        self.apply(batch)?;
        Ok(existed)
    }
}

#[cfg(test)]
#[path = "sled_tests.rs"]
mod tests;
