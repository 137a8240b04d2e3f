//! Audit entries in the sled store, in blocks like usage records (see
//! `sled_blocks.rs`): one key per block instead of two or three per entry.
//!
//! Looking one entry up by request id needs an index, but one key per entry
//! is the cost blocks exist to avoid. The gateway's ids are a process prefix
//! and a counter (`{:016x}{:08x}`), so consecutive requests share all but the
//! last few characters: the index has one key per *group* of ids
//! ([`id_group`]) per block, pointing at the block. A lookup scans its
//! group's keys (newest block first) and searches only those blocks.

use super::{be, prefixed, SledStore};
use crate::record::AuditEntry;
use crate::store::encode::{
    decode_audit_block, decode_audit_bodies, encode_audit_block, encode_audit_bodies, rewrite_audit_block, AuditView,
    Writer,
};
use crate::store::{Cursor, LogFilter, Page, StoreError};

/// Index key prefix: `I`, group length (varint), group, block key without
/// its prefix → empty. The length keeps one group's keys apart from a longer
/// group it is a prefix of.
const INDEX: u8 = b'I';
/// Bodies key prefix: `B`, block key without its prefix, request id →
/// bodies (only with `audit_bodies` on; kept apart so listings stay small).
const BODIES: u8 = b'B';
/// Length of a block key without its prefix byte (max_ts, seq).
const BLOCK_ID_LEN: usize = 16;

/// The index group of a request id: the id without its last three
/// characters when those are lowercase hex digits and the id is at least 16
/// long (gateway ids: 4,096 consecutive requests per group), else the whole
/// id. Either way a group holds at most 4,096 distinct ids, so a lookup
/// reads a bounded number of blocks whatever the id format.
fn id_group(id: &str) -> &str {
    let b = id.as_bytes();
    let hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
    match b.len().checked_sub(3) {
        Some(cut) if b.len() >= 16 && b[cut..].iter().all(hex) => id.get(..cut).unwrap_or(id),
        _ => id,
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

fn index_key(group: &str, block: &[u8]) -> Vec<u8> {
    let mut k = index_prefix(group);
    k.extend_from_slice(block);
    k
}

fn bodies_key(block: &[u8], id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + block.len() + id.len());
    k.push(BODIES);
    k.extend_from_slice(block);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Adds to `batch` the removal of the bodies of `gone` and of the index keys
/// of their groups that no entry of `kept` (the block's survivors) is in.
/// Returns the keys removed.
fn forget(block: &[u8], gone: &[&AuditView<'_>], kept: &[&AuditView<'_>], batch: &mut sled::Batch) -> usize {
    let ids = |v: &[&AuditView<'_>]| -> Vec<String> { v.iter().map(|a| a.request_id.to_string_lossless()).collect() };
    let (gone_ids, kept_ids) = (ids(gone), ids(kept));
    let mut n = 0;
    for (a, id) in gone.iter().zip(&gone_ids) {
        if a.has_bodies {
            batch.remove(bodies_key(block, id));
            n += 1;
        }
    }
    let mut kept_groups: Vec<&str> = kept_ids.iter().map(|id| id_group(id)).collect();
    kept_groups.sort_unstable();
    let mut groups: Vec<&str> = gone_ids.iter().map(|id| id_group(id)).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        if kept_groups.binary_search(&g).is_err() {
            batch.remove(index_key(g, block));
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
            let mut groups: Vec<&str> = chunk.iter().map(|a| id_group(&a.request_id)).collect();
            groups.sort_unstable();
            groups.dedup();
            for g in groups {
                batch.insert(index_key(g, block), Vec::<u8>::new());
            }
            for a in chunk {
                if let Some(b) = encode_audit_bodies(a) {
                    batch.insert(bodies_key(block, &a.request_id), b);
                }
            }
            batch.insert(key, encode_audit_block(chunk));
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
    /// recorded twice, the entry in the newest block wins.
    pub(super) fn audit_find(&self, request_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        let prefix = index_prefix(id_group(request_id));
        for kv in self.db.scan_prefix(&prefix).rev() {
            let (k, _) = kv.map_err(be)?;
            let block = k
                .get(prefix.len()..)
                .filter(|b| b.len() == BLOCK_ID_LEN)
                .ok_or_else(|| StoreError::Corrupt("audit index key".into()))?;
            let Some(v) = self.db.get(prefixed(self.audit.prefix, block)).map_err(be)? else {
                // Written and removed with its block in one batch; a reader
                // racing retention may still see the key.
                continue;
            };
            let (_, views) = decode_audit_block(&v)?;
            let Some(a) = views.iter().rev().find(|a| a.request_id.cmp_str(request_id).is_eq()) else {
                continue;
            };
            let mut e = a.to_entry();
            if a.has_bodies {
                if let Some(b) = self.db.get(bodies_key(block, request_id)).map_err(be)? {
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
            let (_, views) = decode_audit_block(v)?;
            let gone: Vec<&AuditView<'_>> = views.iter().collect();
            Ok(forget(k.get(1..).unwrap_or_default(), &gone, &[], batch))
        })?;
        for (k, v) in self.straddling(&self.audit, cutoff)? {
            let block = k.get(1..).unwrap_or_default();
            let (_, views) = decode_audit_block(&v)?;
            let (gone, kept): (Vec<&AuditView<'_>>, Vec<&AuditView<'_>>) = views.iter().partition(|a| a.ts_ms < cutoff);
            let mut batch = sled::Batch::default();
            forget(block, &gone, &kept, &mut batch);
            if kept.is_empty() {
                batch.remove(k.clone());
            } else {
                // Same key: the newest entry, which the key names, stays.
                batch.insert(k.clone(), rewrite_audit_block(&kept));
            }
            deleted += gone.len() as u64;
            self.apply(batch)?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "sled_audit_tests.rs"]
mod tests;
