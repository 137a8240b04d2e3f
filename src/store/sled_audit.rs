//! Audit entries in the sled store, in blocks like usage records (see
//! `sled_blocks.rs`): one key per block instead of two or three per entry.
//!
//! Looking one entry up by request id needs an index, but one key per entry
//! is the cost blocks exist to avoid. The gateway's ids are a process prefix
//! and a counter (`{:016x}{:08x}`), so requests started close together share
//! all but the last few characters: the index has one key per *group* of ids
//! ([`split_id`]) per block, whose value lists the group's members in that
//! block. Requests finish out of order, so one group's entries spread over
//! many blocks; a lookup scans its group's keys (newest block first) and
//! reads only a block whose key lists the id.

use super::{be, prefixed, SledStore};
use crate::record::AuditEntry;
use crate::store::encode::{
    decode_audit_block, decode_audit_bodies, encode_audit_block, encode_audit_bodies, find_in_audit_block,
    rewrite_audit_block, AuditView, Reader, Writer,
};
use crate::store::{Cursor, LogFilter, Page, StoreError};
use std::collections::BTreeMap;

/// Index key prefix: `I`, group length (varint), group, block key without
/// its prefix → the group's members in the block (ascending, varint deltas;
/// empty when the group is a whole id). The length keeps one group's keys
/// apart from a longer group it is a prefix of.
const INDEX: u8 = b'I';
/// Bodies key prefix: `b`, block key without its prefix, request id →
/// segment reference to the bodies (only with `audit_bodies` on; kept
/// apart so listings stay small).
const BODIES: u8 = b'b';
/// Bodies stored inline by versions before segment files, keyed like
/// [`BODIES`].
const INLINE_BODIES: u8 = b'B';
/// Length of a block key without its prefix byte (max_ts, seq).
const BLOCK_ID_LEN: usize = 16;

/// An id's place in the index: its group and its member number in it. When
/// the id is at least 16 long and ends in three lowercase hex digits
/// (gateway ids: 4,096 consecutive requests a group), the group is the rest
/// and the member those digits; else the group is the whole id (`None`).
/// Either way a group holds at most 4,096 distinct ids.
fn split_id(id: &str) -> (&str, Option<u16>) {
    let b = id.as_bytes();
    let Some(cut) = b.len().checked_sub(3).filter(|_| b.len() >= 16) else {
        return (id, None);
    };
    let mut member = 0u16;
    for &c in &b[cut..] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return (id, None),
        };
        member = (member << 4) | u16::from(d);
    }
    match id.get(..cut) {
        Some(group) => (group, Some(member)),
        None => (id, None),
    }
}

fn index_prefix(group: &str) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(3 + group.len() + BLOCK_ID_LEN),
    };
    w.byte(INDEX);
    w.varint(group.len() as u64);
    w.buf.extend_from_slice(group.as_bytes());
    w.buf
}

/// The index keys of a block holding `ids`, with their values.
fn index_entries<'i>(block: &[u8], ids: impl Iterator<Item = &'i str>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut split: Vec<(&str, Option<u16>)> = ids.map(split_id).collect();
    split.sort_unstable();
    split.dedup();
    let mut out = BTreeMap::new();
    let mut rest = split.as_slice();
    while let Some(&(group, _)) = rest.first() {
        let n = rest.iter().take_while(|(g, _)| *g == group).count();
        let (members, tail) = rest.split_at(n);
        rest = tail;
        let mut key = index_prefix(group);
        key.extend_from_slice(block);
        let mut w = Writer::default();
        let mut prev = 0;
        for m in members.iter().filter_map(|(_, m)| *m) {
            w.varint(u64::from(m - prev));
            prev = m;
        }
        out.insert(key, w.buf);
    }
    out
}

/// Whether an index value lists `member`.
fn lists(value: &[u8], member: u16) -> Result<bool, StoreError> {
    let mut r = Reader::new(value);
    let mut m = 0u64;
    while !r.is_empty() {
        m = m
            .checked_add(r.varint()?)
            .ok_or_else(|| StoreError::Corrupt("audit index value".into()))?;
        if m >= u64::from(member) {
            return Ok(m == u64::from(member));
        }
    }
    Ok(false)
}

fn bodies_key(block: &[u8], id: &str) -> Vec<u8> {
    bodies_key_as(BODIES, block, id)
}

fn bodies_key_as(prefix: u8, block: &[u8], id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + block.len() + id.len());
    k.push(prefix);
    k.extend_from_slice(block);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Adds to `batch` what retention changes in a block's index and bodies
/// keys when its entries older than `cutoff` go: their bodies, the index
/// keys of groups with no member left, the shorter member lists of the
/// others. Returns the keys touched.
fn shrink(block: &[u8], views: &[AuditView<'_>], cutoff: u64, batch: &mut sled::Batch) -> usize {
    let ids: Vec<String> = views.iter().map(|a| a.request_id.to_string_lossless()).collect();
    let mut n = 0;
    for (a, id) in views.iter().zip(&ids) {
        if a.ts_ms < cutoff && a.has_bodies {
            batch.remove(bodies_key(block, id));
            batch.remove(bodies_key_as(INLINE_BODIES, block, id));
            n += 2;
        }
    }
    let before = index_entries(block, ids.iter().map(String::as_str));
    let kept = views.iter().zip(&ids).filter(|(a, _)| a.ts_ms >= cutoff);
    let after = index_entries(block, kept.map(|(_, id)| id.as_str()));
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        batch.remove(k.as_slice());
        n += 1;
    }
    for (k, v) in after {
        if before.get(&k) != Some(&v) {
            batch.insert(k, v);
            n += 1;
        }
    }
    n
}

impl SledStore {
    /// Adds the audit blocks for `audit`, with their index and bodies keys,
    /// to `batch`; returns the widest block span.
    pub(super) fn add_audit(&self, audit: &[AuditEntry], batch: &mut sled::Batch) -> Result<u64, StoreError> {
        self.put_blocks(&self.audit, audit, |chunk, key| {
            let block = key.get(1..).unwrap_or_default();
            for (k, v) in index_entries(block, chunk.iter().map(|a| a.request_id.as_str())) {
                batch.insert(k, v);
            }
            for a in chunk {
                if let Some(b) = encode_audit_bodies(a) {
                    let stored = self.audit.files.put(&b, 0, a.ts_ms, batch).map_err(|e| self.fail(e))?;
                    batch.insert(bodies_key(block, &a.request_id), stored);
                }
            }
            let stored = self.block_ref(&self.audit, &encode_audit_block(chunk), batch)?;
            batch.insert(key, stored);
            Ok(())
        })
    }

    /// See [`crate::store::Store::audit_log`].
    pub(super) fn audit_page(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.block_log(&self.audit, filter, cursor, limit, |v, window, out| {
            let (_, views) = decode_audit_block(v)?;
            for a in &views {
                if window.admits(a.ts_ms, a.request_id) && filter.matches_audit(a.ts_ms, a.route, a.user_path, a.status)
                {
                    out.push(a.to_entry());
                }
            }
            Ok(())
        })
    }

    /// See [`crate::store::Store::audit_get`]. Should an id have been
    /// recorded twice, the entry in the newest block wins (the oldest of a
    /// block's).
    pub(super) fn audit_find(&self, request_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        let (group, member) = split_id(request_id);
        let prefix = index_prefix(group);
        for kv in self.db.scan_prefix(&prefix).rev() {
            let (k, v) = kv.map_err(be)?;
            let block = k
                .get(prefix.len()..)
                .filter(|b| b.len() == BLOCK_ID_LEN)
                .ok_or_else(|| StoreError::Corrupt("audit index key".into()))?;
            if let Some(m) = member {
                if !lists(&v, m)? {
                    continue;
                }
            }
            // Written and removed with its block in one batch; a reader
            // racing retention may still see the key.
            let Some(stored) = self.db.get(prefixed(self.audit.prefix, block)).map_err(be)? else {
                continue;
            };
            let Some(v) = self.resolve(&self.audit, &stored)? else {
                continue;
            };
            self.blocks_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(a) = find_in_audit_block(&v, request_id)? else {
                continue;
            };
            let mut e = a.to_entry();
            if a.has_bodies {
                if let Some(stored) = self.db.get(bodies_key(block, request_id)).map_err(be)? {
                    if let Some(b) = self.resolve(&self.audit, &stored)? {
                        decode_audit_bodies(&b, &mut e)?;
                    }
                } else if let Some(b) = self
                    .db
                    .get(bodies_key_as(INLINE_BODIES, block, request_id))
                    .map_err(be)?
                {
                    decode_audit_bodies(&b, &mut e)?;
                }
            }
            return Ok(Some(e));
        }
        Ok(None)
    }

    /// Deletes audit entries older than `cutoff` with their index and
    /// bodies keys: whole blocks, then the blocks straddling the cutoff are
    /// rewritten with their recent entries, as usage blocks are. Returns the
    /// entries deleted.
    pub(super) fn audit_retention(&self, cutoff: u64) -> Result<u64, StoreError> {
        let mut deleted = self.expire_blocks(&self.audit, cutoff, |k, v, batch| {
            let Some(v) = self.resolve(&self.audit, v)? else {
                return Ok(0);
            };
            let (_, views) = decode_audit_block(&v)?;
            Ok(shrink(k.get(1..).unwrap_or_default(), &views, cutoff, batch))
        })?;
        for (k, v) in self.straddling(&self.audit, cutoff)? {
            let (_, views) = decode_audit_block(&v)?;
            let mut batch = sled::Batch::default();
            shrink(k.get(1..).unwrap_or_default(), &views, cutoff, &mut batch);
            let kept: Vec<&AuditView<'_>> = views.iter().filter(|a| a.ts_ms >= cutoff).collect();
            deleted += (views.len() - kept.len()) as u64;
            // Same key: the newest entry, which the key names, stays.
            let stored = self.block_ref(&self.audit, &rewrite_audit_block(&kept), &mut batch)?;
            batch.insert(k.clone(), stored);
            self.apply(batch)?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "sled_audit_tests.rs"]
mod tests;
