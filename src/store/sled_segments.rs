//! Segment files: where the sled store keeps its big values (blocks of
//! usage records and audit entries, audit bodies), so the sled tree holds
//! small references only.
//!
//! Why: sled 0.34 splits its page cache into 256 shards and each shard keeps
//! its newest page whatever the cache capacity; a leaf holding a few 50 KB
//! blocks is a page of a megabyte, so the tree's resident memory grew with
//! the write rate (to over 200 MiB in a 10-minute soak) instead of staying
//! near its cache capacity. Segment files are append-only and read with
//! positioned reads: nothing of them stays in the process.
//!
//! Each series (usage, audit) has its own files `<prefix>-<id>.seg` under
//! `<data_dir>/store/segments`, so each can follow its own retention. A
//! value is appended to the newest file and the tree stores a [`REF`]:
//! file, offset, length and CRC-32, then the value's first bytes (a
//! block's header, so scans skip blocks without reading them).
//!
//! Durability: the files written since the last commit are synced before
//! the tree batch that refers to them is applied, so a reference on disk
//! always points at bytes on disk. Bytes appended by a batch that never
//! committed are unreferenced and harmless; a new process always starts a
//! new file. Each file's newest item time is kept in the tree (`mseg`
//! keys, written in the batches that refer to the file): retention deletes
//! a file once that time is past its cutoff, by when every block in it has
//! expired. A file the tree has no time for was never referenced by a
//! committed batch and is deleted at open.

use super::StoreError;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// First byte of a tree value that refers to a segment (inline blocks
/// written by older versions start with their format version, 1).
pub(super) const REF: u8 = 0xFE;
/// Length of a reference before the copied value prefix.
pub(super) const REF_LEN: usize = 1 + 4 + 8 + 4 + 4;
/// A file takes appends until it is this large.
const SEGMENT_MAX: u64 = 64 << 20;
/// Metadata key prefix: `mseg`, series prefix, file id → newest item time.
const META: &[u8] = b"mseg";

/// Where a referenced value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    file: u32,
    offset: u64,
    len: u32,
    crc: u32,
}

impl Loc {
    /// The location in a reference value, or `None` when `v` is an inline
    /// value.
    pub fn parse(v: &[u8]) -> Result<Option<Loc>, StoreError> {
        if v.first() != Some(&REF) {
            return Ok(None);
        }
        let b = v
            .get(1..REF_LEN)
            .ok_or_else(|| StoreError::Corrupt("segment reference".into()))?;
        let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[4..12]);
        Ok(Some(Loc {
            file: word(0),
            offset: u64::from_be_bytes(off),
            len: word(12),
            crc: word(16),
        }))
    }

    /// Bytes the referenced value takes in its file.
    pub fn len(&self) -> u64 {
        u64::from(self.len)
    }
}

/// The file appends go to.
struct Active {
    id: u32,
    file: Option<File>,
    len: u64,
    /// Appended to since the last sync.
    dirty: bool,
}

/// The segment files of one series.
pub(super) struct Segments {
    dir: PathBuf,
    prefix: u8,
    /// [`SEGMENT_MAX`], smaller in tests that need many files.
    max_bytes: AtomicU64,
    active: Mutex<Active>,
    /// Read handles, opened on first use.
    readers: RwLock<HashMap<u32, Arc<File>>>,
    /// Newest item time per file (the active one included).
    newest: Mutex<BTreeMap<u32, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn meta_key(prefix: u8, id: u32) -> Vec<u8> {
    let mut k = META.to_vec();
    k.push(prefix);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

impl Segments {
    /// The files of series `prefix` under `dir`, with their newest times as
    /// stored in `db`; unreferenced files are deleted.
    pub fn open(db: &sled::Db, dir: &Path, prefix: u8) -> Result<Segments, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let mut newest = BTreeMap::new();
        let mut meta = META.to_vec();
        meta.push(prefix);
        for kv in db.scan_prefix(&meta) {
            let (k, v) = kv.map_err(super::be)?;
            let id = k.get(meta.len()..).and_then(|b| <[u8; 4]>::try_from(b).ok());
            let ts = <[u8; 8]>::try_from(&*v).ok();
            match (id, ts) {
                (Some(id), Some(ts)) => newest.insert(u32::from_be_bytes(id), u64::from_be_bytes(ts)),
                _ => return Err(StoreError::Corrupt("segment metadata".into())),
            };
        }
        let mut last = newest.keys().next_back().copied().unwrap_or(0);
        let entries = std::fs::read_dir(dir).map_err(|e| io("cannot list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io("cannot list", dir, e))?;
            let Some(id) = Self::file_id(prefix, &entry.file_name().to_string_lossy()) else {
                continue;
            };
            last = last.max(id);
            if !newest.contains_key(&id) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
            }
        }
        Ok(Segments {
            dir: dir.to_path_buf(),
            prefix,
            max_bytes: AtomicU64::new(SEGMENT_MAX),
            active: Mutex::new(Active {
                id: last.saturating_add(1),
                file: None,
                len: 0,
                dirty: false,
            }),
            readers: RwLock::new(HashMap::new()),
            newest: Mutex::new(newest),
        })
    }

    /// Lets a test have a new file every few appends.
    #[cfg(test)]
    pub fn set_max_bytes(&self, n: u64) {
        self.max_bytes.store(n, Ordering::Relaxed);
    }

    /// The ids of the files on disk, oldest first.
    #[cfg(test)]
    pub fn files_on_disk(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| Self::file_id(self.prefix, &e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// A file's path, for tests that damage one.
    #[cfg(test)]
    pub fn file_path(&self, id: u32) -> PathBuf {
        self.path(id)
    }

    fn file_id(prefix: u8, name: &str) -> Option<u32> {
        let rest = name.strip_prefix(char::from(prefix))?.strip_prefix('-')?;
        u32::from_str_radix(rest.strip_suffix(".seg")?, 16).ok()
    }

    fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{}-{id:08x}.seg", char::from(self.prefix)))
    }

    /// Appends `value` (whose items are at most `ts` old) and returns the
    /// reference to store in its place: it carries `value[..keep]`. Adds the
    /// file's new newest time to `batch`. An I/O error here means the file
    /// may hold a partial write: appends move to a new file.
    pub fn put(&self, value: &[u8], keep: usize, ts: u64, batch: &mut sled::Batch) -> Result<Vec<u8>, StoreError> {
        let len = u32::try_from(value.len()).map_err(|_| StoreError::Encode("value over 4 GiB".into()))?;
        let mut a = lock(&self.active);
        if a.len >= self.max_bytes.load(Ordering::Relaxed) {
            // Earlier references in this batch may point into it.
            self.sync_active(&mut a)?;
            a.file = None;
            a.id = a.id.saturating_add(1);
            a.len = 0;
        }
        if a.file.is_none() {
            let path = self.path(a.id);
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| io("cannot create", &path, e))?;
            // The new name must survive a crash too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("cannot sync", &self.dir, e))?;
            a.file = Some(f);
        }
        let id = a.id;
        let offset = a.len;
        let written = match a.file.as_mut() {
            Some(f) => f.write_all(value),
            None => Ok(()),
        };
        if let Err(e) = written {
            a.file = None;
            a.id = a.id.saturating_add(1);
            a.len = 0;
            return Err(io("cannot write", &self.path(id), e));
        }
        a.len += u64::from(len);
        a.dirty = true;
        drop(a);
        let mut newest = lock(&self.newest);
        let n = newest.entry(id).or_insert(0);
        if ts > *n || offset == 0 {
            *n = (*n).max(ts);
            batch.insert(meta_key(self.prefix, id), &n.to_be_bytes());
        }
        drop(newest);
        let mut r = Vec::with_capacity(REF_LEN + keep);
        r.push(REF);
        r.extend_from_slice(&id.to_be_bytes());
        r.extend_from_slice(&offset.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
        r.extend_from_slice(&crc32fast::hash(value).to_be_bytes());
        r.extend_from_slice(value.get(..keep).unwrap_or(value));
        Ok(r)
    }

    fn sync_active(&self, a: &mut Active) -> Result<(), StoreError> {
        if let (true, Some(f)) = (a.dirty, a.file.as_ref()) {
            f.sync_data().map_err(|e| io("cannot sync", &self.path(a.id), e))?;
        }
        a.dirty = false;
        Ok(())
    }

    /// Makes every append so far durable: call before applying the batch
    /// that refers to them.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.sync_active(&mut lock(&self.active))
    }

    /// The value `loc` refers to, or `None` when its file is gone (a reader
    /// racing retention).
    pub fn get(&self, loc: Loc) -> Result<Option<Vec<u8>>, StoreError> {
        let cached = self
            .readers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&loc.file)
            .cloned();
        let file = match cached {
            Some(f) => f,
            None => {
                let path = self.path(loc.file);
                let f = match File::open(&path) {
                    Ok(f) => Arc::new(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io("cannot open", &path, e)),
                };
                let mut readers = self.readers.write().unwrap_or_else(PoisonError::into_inner);
                readers.entry(loc.file).or_insert(f).clone()
            }
        };
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)
            .map_err(|e| io("cannot read", &self.path(loc.file), e))?;
        if crc32fast::hash(&buf) != loc.crc {
            return Err(StoreError::Corrupt(format!(
                "checksum mismatch in {} at {}",
                self.path(loc.file).display(),
                loc.offset
            )));
        }
        Ok(Some(buf))
    }

    /// Files (never the active one) whose items are all older than
    /// `cutoff`, with the removal of their metadata added to `batch`. Once
    /// the batch is applied, [`Segments::remove`] deletes them.
    pub fn expired(&self, cutoff: u64, batch: &mut sled::Batch) -> Vec<u32> {
        let active = lock(&self.active).id;
        let newest = lock(&self.newest);
        let ids: Vec<u32> = newest
            .iter()
            .filter(|(id, ts)| **id != active && **ts < cutoff)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            batch.remove(meta_key(self.prefix, *id));
        }
        ids
    }

    /// Deletes files [`Segments::expired`] named.
    pub fn remove(&self, ids: &[u32]) -> Result<(), StoreError> {
        for id in ids {
            lock(&self.newest).remove(id);
            self.readers.write().unwrap_or_else(PoisonError::into_inner).remove(id);
            let path = self.path(*id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("cannot remove", &path, e)),
            }
        }
        Ok(())
    }

    /// Bytes the files take.
    pub fn disk_bytes(&self) -> u64 {
        let ids: Vec<u32> = lock(&self.newest).keys().copied().collect();
        ids.iter()
            .filter_map(|id| std::fs::metadata(self.path(*id)).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
#[path = "sled_segments_tests.rs"]
mod tests;
