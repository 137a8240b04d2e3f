//! Audit entries in blocks, like usage records: a recorder batch of entries
//! is a few stored values instead of one or more keys per entry, because the
//! engine's per-key cost, not the bytes, dominated writing them.
//!
//! A block is the common header ([`BlockHeader`]) then, per entry in
//! `(ts, request id)` order: timestamp delta, request id, flags, fields.
//! Strings are not in the store's dictionary (header values, client
//! addresses and paths are too varied to keep in memory forever); instead each
//! block has a string table of its own: the first occurrence of a string is
//! inline and takes the next table index, later ones in the block refer to
//! it, so the headers every request repeats cost a byte or two each.
//!
//! Bodies are kept apart ([`encode_audit_bodies`]) so listings never read
//! megabytes per row.

use super::{
    corrupt, read_entry_start, read_header, read_pairs, write_entry_start, write_header, BlockHeader, IdRef, Reader,
    StrRef, Writer, MAX_INTERNED_LEN,
};
use crate::record::{AttemptRecord, AuditEntry};
use crate::store::StoreError;
use std::collections::HashMap;

const A_BODIES: u8 = 1;
const A_ERROR: u8 = 2;
const A_TRUNCATED: u8 = 4;
/// The entry lists its upstream attempts (entries written before attempts
/// were kept have none).
const A_ATTEMPTS: u8 = 8;
/// The entry's one attempt is its route answering its upstream status
/// without an error (most requests): only its duration is stored.
const A_ROUTE_ATTEMPT: u8 = 16;

/// Whether `a`'s attempts are just its route answering once.
fn route_attempt(a: &AuditEntry) -> Option<u32> {
    let [at] = a.attempts.as_slice() else { return None };
    let (p, m) = a.route.split_once('/')?;
    (at.error.is_none() && at.status == a.upstream_status && at.provider == p && at.model == m)
        .then_some(at.duration_ms)
}

/// The block's string table while encoding. Every inline string takes an
/// index (the decoder cannot tell which would be looked up); only strings up
/// to [`MAX_INTERNED_LEN`] are remembered, so long error texts cost no
/// hashing.
#[derive(Default)]
struct Table<'a> {
    ids: HashMap<&'a str, u32>,
    next: u32,
}

impl<'a> Table<'a> {
    fn put(&mut self, w: &mut Writer, s: &'a str) {
        if let Some(id) = self.ids.get(s) {
            w.str_ref(Some(*id), s);
            return;
        }
        w.str_ref(None, s);
        if s.len() <= MAX_INTERNED_LEN {
            self.ids.insert(s, self.next);
        }
        self.next = self.next.wrapping_add(1);
    }
}

/// Encodes entries (sorted by `(ts_ms, request_id)`) as one block value;
/// bodies are left out, only whether there are any is kept.
pub fn encode_audit_block(entries: &[&AuditEntry]) -> Vec<u8> {
    let flagged: Vec<(&AuditEntry, bool)> = entries
        .iter()
        .map(|a| (*a, a.request_body.is_some() || a.response_body.is_some()))
        .collect();
    encode(&flagged)
}

/// Re-encodes what is kept of a block (retention), remembering which
/// entries have bodies stored apart.
pub fn rewrite_audit_block(kept: &[&AuditView<'_>]) -> Vec<u8> {
    let entries: Vec<AuditEntry> = kept.iter().map(|a| a.to_entry()).collect();
    let flagged: Vec<(&AuditEntry, bool)> = entries.iter().zip(kept).map(|(e, a)| (e, a.has_bodies)).collect();
    encode(&flagged)
}

/// Entries with whether each has bodies stored apart.
fn encode(entries: &[(&AuditEntry, bool)]) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(16 + entries.len() * 96),
    };
    let min_ts = entries.first().map_or(0, |a| a.0.ts_ms);
    let max_ts = entries.last().map_or(0, |a| a.0.ts_ms);
    write_header(&mut w, entries.len(), min_ts, max_ts);
    let mut t = Table::default();
    let mut prev = min_ts;
    for &(a, bodies) in entries {
        let one = route_attempt(a);
        let flags = (if bodies { A_BODIES } else { 0 })
            | (if a.error.is_some() { A_ERROR } else { 0 })
            | (if a.bodies_truncated { A_TRUNCATED } else { 0 })
            | match (a.attempts.is_empty(), one) {
                (true, _) => 0,
                (false, Some(_)) => A_ROUTE_ATTEMPT,
                (false, None) => A_ATTEMPTS,
            };
        write_entry_start(&mut w, &mut prev, a.ts_ms, &a.request_id, flags);
        for s in [&a.method, &a.path, &a.client, &a.route] {
            t.put(&mut w, s);
        }
        w.varint(u64::from(a.status));
        w.varint(a.upstream_status.map_or(0, |s| u64::from(s) + 1));
        w.varint(u64::from(a.duration_ms));
        w.varint(a.ttft_ms.map_or(0, |s| u64::from(s) + 1));
        if let Some(e) = &a.error {
            t.put(&mut w, e);
        }
        t.put(&mut w, &a.user_path);
        t.put(&mut w, &a.key_id);
        w.varint(a.request_headers.len() as u64);
        for (k, v) in &a.request_headers {
            t.put(&mut w, k);
            t.put(&mut w, v);
        }
        if let Some(ms) = one {
            w.varint(u64::from(ms));
        } else if !a.attempts.is_empty() {
            w.varint(a.attempts.len() as u64);
            for at in &a.attempts {
                t.put(&mut w, &at.provider);
                t.put(&mut w, &at.model);
                w.varint(at.status.map_or(0, |s| u64::from(s) + 1));
                // Duration and whether an error follows, in one varint.
                w.varint(u64::from(at.duration_ms) << 1 | u64::from(at.error.is_some()));
                if let Some(e) = &at.error {
                    t.put(&mut w, e);
                }
            }
        }
    }
    w.buf
}

/// One entry decoded without copying: strings borrow the block, so listings
/// filter before anything is allocated and lookups skip to the one id.
#[derive(Debug, Clone)]
pub struct AuditView<'a> {
    /// Completion time.
    pub ts_ms: u64,
    /// Request id as stored.
    pub request_id: IdRef<'a>,
    /// Bodies were stored apart for this entry.
    pub has_bodies: bool,
    /// See [`AuditEntry`].
    pub method: &'a str,
    /// See [`AuditEntry`].
    pub path: &'a str,
    /// See [`AuditEntry`].
    pub client: &'a str,
    /// See [`AuditEntry`].
    pub route: &'a str,
    /// See [`AuditEntry`].
    pub status: u16,
    /// See [`AuditEntry`].
    pub upstream_status: Option<u16>,
    /// See [`AuditEntry`].
    pub duration_ms: u32,
    /// See [`AuditEntry`].
    pub ttft_ms: Option<u32>,
    /// See [`AuditEntry`].
    pub error: Option<&'a str>,
    /// See [`AuditEntry`].
    pub user_path: &'a str,
    /// See [`AuditEntry`].
    pub key_id: &'a str,
    /// See [`AuditEntry`].
    pub request_headers: Vec<(&'a str, &'a str)>,
    /// See [`AuditEntry`].
    pub bodies_truncated: bool,
    /// See [`AuditEntry`].
    pub attempts: Vec<AttemptView<'a>>,
}

/// One attempt, borrowing the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView<'a> {
    /// See [`AttemptRecord`].
    pub provider: &'a str,
    /// See [`AttemptRecord`].
    pub model: &'a str,
    /// See [`AttemptRecord`].
    pub status: Option<u16>,
    /// See [`AttemptRecord`] (empty: none).
    pub error: &'a str,
    /// See [`AttemptRecord`].
    pub duration_ms: u32,
}

impl AuditView<'_> {
    /// An owned entry, bodies `None` (they are stored apart).
    pub fn to_entry(&self) -> AuditEntry {
        let s = |s: &str| s.to_string();
        AuditEntry {
            request_id: self.request_id.to_string_lossless(),
            ts_ms: self.ts_ms,
            method: s(self.method),
            path: s(self.path),
            client: s(self.client),
            route: s(self.route),
            status: self.status,
            upstream_status: self.upstream_status,
            duration_ms: self.duration_ms,
            ttft_ms: self.ttft_ms,
            error: self.error.map(s),
            user_path: s(self.user_path),
            key_id: s(self.key_id),
            request_headers: self.request_headers.iter().map(|(k, v)| (s(k), s(v))).collect(),
            request_body: None,
            response_body: None,
            bodies_truncated: self.bodies_truncated,
            attempts: self
                .attempts
                .iter()
                .map(|a| AttemptRecord {
                    provider: s(a.provider),
                    model: s(a.model),
                    status: a.status,
                    error: (!a.error.is_empty()).then(|| s(a.error)),
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

/// The block's string table while decoding: every inline string, in order.
#[derive(Default)]
struct Strings<'a>(Vec<&'a str>);

impl<'a> Strings<'a> {
    fn read(&mut self, r: &mut Reader<'a>) -> Result<&'a str, StoreError> {
        match r.str_ref()? {
            StrRef::Inline(s) => {
                self.0.push(s);
                Ok(s)
            }
            StrRef::Id(id) => self
                .0
                .get(id as usize)
                .copied()
                .ok_or_else(|| corrupt("audit string ref")),
        }
    }
}

/// An optional small integer stored as `0` or `value + 1`.
fn opt<T: TryFrom<u64>>(v: u64, what: &str) -> Result<Option<T>, StoreError> {
    match v.checked_sub(1) {
        None => Ok(None),
        Some(v) => T::try_from(v).map(Some).map_err(|_| corrupt(what)),
    }
}

/// Reads a block's entries one at a time (the string table must see every
/// entry before the next).
struct Entries<'a> {
    r: Reader<'a>,
    table: Strings<'a>,
    ts: u64,
    left: u64,
}

impl<'a> Entries<'a> {
    fn new(buf: &'a [u8]) -> Result<(BlockHeader, Self), StoreError> {
        let mut r = Reader::new(buf);
        let h = read_header(&mut r)?;
        let e = Entries {
            r,
            table: Strings::default(),
            ts: h.min_ts,
            left: h.count,
        };
        Ok((h, e))
    }

    /// The next entry; `None` after the last, once the block was checked
    /// to end there.
    fn next(&mut self) -> Result<Option<AuditView<'a>>, StoreError> {
        if self.left == 0 {
            if !self.r.is_empty() {
                return Err(StoreError::Corrupt("trailing bytes after audit block".into()));
            }
            return Ok(None);
        }
        self.left -= 1;
        let r = &mut self.r;
        let mut s = |r: &mut Reader<'a>| self.table.read(r);
        let (request_id, flags) = read_entry_start(r, &mut self.ts)?;
        let method = s(r)?;
        let path = s(r)?;
        let client = s(r)?;
        let route = s(r)?;
        let status = u16::try_from(r.varint()?).map_err(|_| corrupt("status"))?;
        let upstream_status = opt(r.varint()?, "status")?;
        let duration_ms = r.varint_u32()?;
        let ttft_ms = opt(r.varint()?, "ttft")?;
        let error = if flags & A_ERROR != 0 { Some(s(r)?) } else { None };
        let user_path = s(r)?;
        let key_id = s(r)?;
        let request_headers = read_pairs(r, &mut s)?;
        let mut attempts = Vec::new();
        if flags & A_ROUTE_ATTEMPT != 0 {
            let (provider, model) = route.split_once('/').ok_or_else(|| corrupt("attempt route"))?;
            attempts.push(AttemptView {
                provider,
                model,
                status: upstream_status,
                error: "",
                duration_ms: r.varint_u32()?,
            });
        } else if flags & A_ATTEMPTS != 0 {
            let n = r.varint()?;
            if n > 1024 {
                return Err(corrupt("attempt count"));
            }
            for _ in 0..n {
                let (provider, model) = (s(r)?, s(r)?);
                let status = opt(r.varint()?, "attempt status")?;
                let packed = r.varint()?;
                let error = if packed & 1 == 1 { s(r)? } else { "" };
                attempts.push(AttemptView {
                    provider,
                    model,
                    status,
                    error,
                    duration_ms: u32::try_from(packed >> 1).map_err(|_| corrupt("attempt duration"))?,
                });
            }
        }
        Ok(Some(AuditView {
            ts_ms: self.ts,
            request_id,
            has_bodies: flags & A_BODIES != 0,
            method,
            path,
            client,
            route,
            status,
            upstream_status,
            duration_ms,
            ttft_ms,
            error,
            user_path,
            key_id,
            request_headers,
            bodies_truncated: flags & A_TRUNCATED != 0,
            attempts,
        }))
    }
}

/// Decodes every entry of a block written by [`encode_audit_block`], in
/// stored (ascending) order.
pub fn decode_audit_block<'a>(buf: &'a [u8]) -> Result<(BlockHeader, Vec<AuditView<'a>>), StoreError> {
    let (h, mut e) = Entries::new(buf)?;
    let mut out = Vec::with_capacity(usize::try_from(h.count.min(4096)).unwrap_or(0));
    while let Some(a) = e.next()? {
        out.push(a);
    }
    Ok((h, out))
}

/// The first entry of a block with this request id, reading no further
/// than it (a lookup reads half a block on average).
pub fn find_in_audit_block<'a>(buf: &'a [u8], request_id: &str) -> Result<Option<AuditView<'a>>, StoreError> {
    let (_, mut e) = Entries::new(buf)?;
    while let Some(a) = e.next()? {
        if a.request_id.cmp_str(request_id).is_eq() {
            return Ok(Some(a));
        }
    }
    Ok(None)
}

/// Encodes an audit entry's bodies; `None` when it has none.
pub fn encode_audit_bodies(a: &AuditEntry) -> Option<Vec<u8>> {
    if a.request_body.is_none() && a.response_body.is_none() {
        return None;
    }
    let mut w = Writer {
        buf: Vec::with_capacity(
            4 + a.request_body.as_ref().map_or(0, String::len) + a.response_body.as_ref().map_or(0, String::len),
        ),
    };
    w.opt_str(a.request_body.as_deref());
    w.opt_str(a.response_body.as_deref());
    Some(w.buf)
}

/// Decodes bodies written by [`encode_audit_bodies`] into `a`.
pub fn decode_audit_bodies(buf: &[u8], a: &mut AuditEntry) -> Result<(), StoreError> {
    let mut r = Reader::new(buf);
    a.request_body = r.opt_str()?.map(str::to_string);
    a.response_body = r.opt_str()?.map(str::to_string);
    Ok(())
}
