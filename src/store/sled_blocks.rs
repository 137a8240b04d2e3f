//! What usage records and audit entries share in the sled store: both are
//! kept in blocks of up to [`BLOCK_MAX`] items sorted by `(ts, request id)`,
//! spanning at most [`SPAN_MAX_MS`], keyed by prefix + newest timestamp + a
//! unique sequence number. A recorder batch so costs a few keys however many
//! items it holds (the engine's per-key cost is what dominates writes).
//!
//! Blocks are keyed by their newest timestamp, so a newest-first scan knows
//! that every block not yet read holds only older items than the current
//! key: items are emitted in exact `(ts, id)` order with a small heap.
//!
//! A block's bytes live in its series' segment files (`sled_segments.rs`);
//! the tree value is a reference carrying the block's header. Stores
//! written before segments hold blocks inline; both are read.

use super::segments::{Loc, Segments, REF, REF_LEN};
use super::{be, SledStore, BLOCK_MAX, DELETE_CHUNK, SPAN_MAX_MS};
use crate::record::{AuditEntry, UsageRecord};
use crate::store::encode::{block_header, block_header_and_len, BlockHeader, IdRef};
use crate::store::{Cursor, LogFilter, Page, StoreError};
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of block: its key prefix, and the widest span any of its blocks
/// has had (persisted under `span_key`), which bounds how far above a time
/// bound a scan must start.
pub(super) struct Series {
    /// First byte of every block key of this kind.
    pub prefix: u8,
    span_key: &'static [u8],
    max_span: AtomicU64,
    /// Where this series' block bytes (and audit bodies) are.
    pub files: Segments,
}

impl Series {
    /// The series with its widest span as stored and its segment files
    /// under `dir`.
    pub fn load(
        db: &sled::Db,
        dir: &std::path::Path,
        prefix: u8,
        span_key: &'static [u8],
    ) -> Result<Series, StoreError> {
        let span = match db.get(span_key).map_err(be)? {
            None => 0,
            Some(v) => u64_at(&v, 0).ok_or_else(|| StoreError::Corrupt("block span metadata".into()))?,
        };
        Ok(Series {
            prefix,
            span_key,
            max_span: AtomicU64::new(span),
            files: Segments::open(db, dir, prefix)?,
        })
    }

    /// Block key: prefix, newest timestamp, sequence number (big-endian, so
    /// keys sort by time).
    pub fn key(&self, max_ts: u64, seq: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(17);
        k.push(self.prefix);
        k.extend_from_slice(&max_ts.to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    fn span(&self) -> u64 {
        self.max_span.load(Ordering::Relaxed)
    }

    /// Adds the new widest span to `batch` when `widest` exceeds it; call
    /// [`Series::committed`] once the batch is applied.
    pub fn note(&self, widest: u64, batch: &mut sled::Batch) {
        if widest > self.span() {
            batch.insert(self.span_key, &widest.to_be_bytes());
        }
    }

    /// The batch noted by [`Series::note`] is on disk.
    pub fn committed(&self, widest: u64) {
        self.max_span.fetch_max(widest, Ordering::Relaxed);
    }
}

/// The big-endian `u64` at `at`: a block key's newest timestamp (at 1), a
/// stored span (at 0).
pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// A stored block's header, whether the tree holds the block or a
/// reference to it.
pub(super) fn header_of(v: &[u8]) -> Result<BlockHeader, StoreError> {
    match v.first() {
        Some(&REF) => block_header(v.get(REF_LEN..).unwrap_or_default()),
        _ => block_header(v),
    }
}

/// What the block machinery needs to know of an item.
pub(super) trait Logged {
    /// Completion time, ms.
    fn ts_ms(&self) -> u64;
    /// Request id (ties on time are ordered by it).
    fn request_id(&self) -> &str;
}

impl Logged for UsageRecord {
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
}

impl Logged for AuditEntry {
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// The part of a log a page may take items from: at or before `upper` and
/// strictly older than the cursor.
pub(super) struct Window<'a> {
    upper: u64,
    cursor: Option<&'a Cursor>,
}

impl Window<'_> {
    /// Whether an item at `(ts, id)` is in the window.
    pub fn admits(&self, ts: u64, id: IdRef<'_>) -> bool {
        ts <= self.upper
            && self
                .cursor
                .is_none_or(|c| ts < c.ts_ms || (ts == c.ts_ms && id.cmp_str(&c.request_id).is_lt()))
    }
}

impl SledStore {
    /// Appends the encoded block `enc` to `s`'s segment files and returns
    /// the reference the tree stores under its key (a failed append stops
    /// the store, as a failed tree write does).
    pub(super) fn block_ref(&self, s: &Series, enc: &[u8], batch: &mut sled::Batch) -> Result<Vec<u8>, StoreError> {
        let (header, keep) = block_header_and_len(enc)?;
        s.files.put(enc, keep, header.max_ts, batch).map_err(|e| self.fail(e))
    }

    /// The bytes of a stored value of `s`: an inline value as it is, a
    /// reference read from its segment. `None` when the segment is gone (a
    /// reader racing retention).
    pub(super) fn resolve<'v>(&self, s: &Series, v: &'v [u8]) -> Result<Option<Cow<'v, [u8]>>, StoreError> {
        match Loc::parse(v)? {
            None => Ok(Some(Cow::Borrowed(v))),
            Some(loc) => Ok(s.files.get(loc)?.map(Cow::Owned)),
        }
    }

    /// Sorts `items` by `(ts, id)`, cuts them into blocks and has `put` add
    /// each (with its key) to the batch being built. Returns the widest span.
    pub(super) fn put_blocks<'t, T: Logged>(
        &self,
        s: &Series,
        items: &'t [T],
        mut put: impl FnMut(&[&'t T], Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut sorted: Vec<&T> = items.iter().collect();
        sorted.sort_by(|a, b| (a.ts_ms(), a.request_id()).cmp(&(b.ts_ms(), b.request_id())));
        let mut widest = 0;
        let mut rest = sorted.as_slice();
        while let Some(first) = rest.first() {
            let lo = first.ts_ms();
            let n = rest
                .iter()
                .take(BLOCK_MAX)
                .take_while(|t| t.ts_ms() - lo <= SPAN_MAX_MS)
                .count();
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let hi = chunk.last().map_or(lo, |t| t.ts_ms());
            widest = widest.max(hi - lo);
            let seq = self.db.generate_id().map_err(be)?;
            put(chunk, s.key(hi, seq))?;
        }
        Ok(widest)
    }

    /// One page of a log stored in blocks, newest first. `read` decodes a
    /// block and pushes the items that are in the window and pass the
    /// filter.
    pub(super) fn block_log<T: Logged>(
        &self,
        s: &Series,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
        mut read: impl FnMut(&[u8], &Window<'_>, &mut Vec<T>) -> Result<(), StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let limit = limit.max(1);
        let upper = filter
            .to_ms
            .unwrap_or(u64::MAX)
            .min(cursor.map_or(u64::MAX, |c| c.ts_ms));
        let lower = filter.from_ms.unwrap_or(0);
        let mut items = Vec::new();
        if upper < lower {
            return Ok(Page { items, next: None });
        }
        let window = Window { upper, cursor };
        let lo = s.key(lower, 0);
        let hi = s.key(upper.saturating_add(s.span()), u64::MAX);
        let mut iter = self.db.range(lo.as_slice()..=hi.as_slice()).rev().peekable();
        // Max-heap on (ts, id): the newest candidate on top.
        let mut heap: BinaryHeap<(u64, String, Reverse<usize>)> = BinaryHeap::new();
        let mut found: Vec<Option<T>> = Vec::new();
        let mut fresh = Vec::new();
        while let Some(kv) = iter.next() {
            let (_, v) = kv.map_err(be)?;
            let h = header_of(&v)?;
            if h.min_ts <= upper && h.max_ts >= lower {
                self.blocks_read.fetch_add(1, Ordering::Relaxed);
                if let Some(block) = self.resolve(s, &v)? {
                    read(&block, &window, &mut fresh)?;
                }
                for t in fresh.drain(..) {
                    heap.push((t.ts_ms(), t.request_id().to_string(), Reverse(found.len())));
                    found.push(Some(t));
                }
            }
            // Blocks not yet read hold only items at or before this key.
            let frontier = match iter.peek() {
                None => None,
                Some(Ok((k, _))) => u64_at(k, 1),
                Some(Err(_)) => Some(u64::MAX),
            };
            while let Some((ts, _, Reverse(i))) = heap.peek() {
                if frontier.is_some_and(|f| *ts <= f) {
                    break;
                }
                let i = *i;
                heap.pop();
                if let Some(t) = found.get_mut(i).and_then(Option::take) {
                    items.push(t);
                }
                if items.len() == limit {
                    let more = !heap.is_empty() || iter.peek().is_some();
                    let next = items.last().filter(|_| more).map(|t| Cursor {
                        ts_ms: t.ts_ms(),
                        request_id: t.request_id().to_string(),
                    });
                    return Ok(Page { items, next });
                }
            }
        }
        Ok(Page { items, next: None })
    }

    /// Deletes the blocks whose items are all older than `cutoff`, in
    /// batches of about [`DELETE_CHUNK`] keys; `also` adds the removal of
    /// keys that belong to a block (its key, its stored value) to the same
    /// batch and returns how many. Then deletes the segment files left with
    /// nothing but expired items. Returns the items deleted.
    pub(super) fn expire_blocks(
        &self,
        s: &Series,
        cutoff: u64,
        mut also: impl FnMut(&[u8], &[u8], &mut sled::Batch) -> Result<usize, StoreError>,
    ) -> Result<u64, StoreError> {
        let lo = s.key(0, 0);
        let hi = s.key(cutoff, 0);
        let mut deleted = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self.db.range(lo.as_slice()..hi.as_slice()) {
                let (k, v) = kv.map_err(be)?;
                deleted += header_of(&v)?.count;
                n += 1 + also(&k, &v, &mut batch)?;
                batch.remove(k);
                if n >= DELETE_CHUNK {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            self.apply(batch)?;
        }
        let mut batch = sled::Batch::default();
        let files = s.files.expired(cutoff, &mut batch);
        if !files.is_empty() {
            self.apply(batch)?;
            s.files.remove(&files)?;
        }
        Ok(deleted)
    }

    /// The blocks holding items on both sides of `cutoff`, which
    /// [`SledStore::expire_blocks`] keeps: retention rewrites them with
    /// their recent items only. Returns each block's key and bytes.
    pub(super) fn straddling(&self, s: &Series, cutoff: u64) -> Result<Vec<(sled::IVec, Vec<u8>)>, StoreError> {
        let lo = s.key(cutoff, 0);
        let hi = s.key(cutoff.saturating_add(s.span()), u64::MAX);
        let mut out = Vec::new();
        for kv in self.db.range(lo.as_slice()..=hi.as_slice()) {
            let (k, v) = kv.map_err(be)?;
            if header_of(&v)?.min_ts < cutoff {
                if let Some(block) = self.resolve(s, &v)? {
                    out.push((k, block.into_owned()));
                }
            }
        }
        Ok(out)
    }
}
