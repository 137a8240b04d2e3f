//! Compact binary encodings for what the store keeps on disk.
//!
//! Usage records are the bulk of the data (one per request, kept 90 days), so
//! they are packed: LEB128 varints for every integer, repeated strings
//! (models, providers, user paths, tags) replaced by small dictionary ids, and
//! records grouped into blocks so the engine's per-entry overhead is paid once
//! per block instead of once per record. Audit entries are blocked the same
//! way, with a string table of their own per block instead of the dictionary
//! (see `encode_audit.rs`).
//!
//! Everything here is pure (no engine types), so a second backend can reuse it.

use crate::record::{CostSource, UsageRecord};
use crate::store::query::Counters;
use crate::store::StoreError;
use switchyard_filters::stream::UsageSource;
use switchyard_filters::usage::Usage;

/// Format version byte leading every block (usage and audit), so a future
/// layout can be told apart from this one. Version 2 adds each usage
/// record's attempt count (last); version 1 blocks still read, with one
/// attempt for a routed record and none otherwise.
const VERSION: u8 = 3;

/// Strings longer than this are never interned: they are rare (error texts,
/// junk model names) and would only bloat the in-memory dictionary.
pub const MAX_INTERNED_LEN: usize = 256;

// ------------------------------------------------------------------ writer

/// Appends varints, floats and strings to a byte buffer.
#[derive(Default)]
pub struct Writer {
    /// The encoded bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// One raw byte.
    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// A float, bit-exact (costs must round-trip, not drift).
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A string that is either a dictionary id (`id << 1`) or inline
    /// (`len << 1 | 1` followed by the bytes).
    pub fn str_ref(&mut self, id: Option<u32>, s: &str) {
        match id {
            Some(id) => self.varint(u64::from(id) << 1),
            None => {
                self.varint(((s.len() as u64) << 1) | 1);
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// An optional inline string: 0 for `None`, `len + 1` then bytes.
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.varint(0),
            Some(s) => {
                self.varint(s.len() as u64 + 1);
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }
}

// ------------------------------------------------------------------ reader

/// Reads what [`Writer`] wrote; every read is bounds-checked because stored
/// bytes may be damaged.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("truncated or invalid {what}"))
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self.buf.get(self.pos).ok_or_else(|| corrupt("varint"))?;
            self.pos += 1;
            if shift >= 64 {
                return Err(corrupt("varint"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    /// A varint that must fit in `u32`.
    pub fn varint_u32(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("u32"))
    }

    /// One raw byte.
    pub fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| corrupt("byte"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A little-endian f64.
    pub fn f64(&mut self) -> Result<f64, StoreError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(f64::from_le_bytes(a))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or_else(|| corrupt("length"))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| corrupt("bytes"))?;
        self.pos = end;
        Ok(s)
    }

    fn utf8(b: &'a [u8]) -> Result<&'a str, StoreError> {
        std::str::from_utf8(b).map_err(|_| corrupt("utf-8 string"))
    }

    /// A dictionary-or-inline string (see [`Writer::str_ref`]).
    pub fn str_ref(&mut self) -> Result<StrRef<'a>, StoreError> {
        let v = self.varint()?;
        if v & 1 == 0 {
            let id = u32::try_from(v >> 1).map_err(|_| corrupt("dictionary id"))?;
            Ok(StrRef::Id(id))
        } else {
            let n = usize::try_from(v >> 1).map_err(|_| corrupt("length"))?;
            Ok(StrRef::Inline(Self::utf8(self.take(n)?)?))
        }
    }

    /// An optional inline string (see [`Writer::opt_str`]).
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, StoreError> {
        let n = self.varint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| corrupt("length"))?;
        Ok(Some(Self::utf8(self.take(n)?)?))
    }
}

/// A string as stored: a dictionary id to resolve, or the text itself.
#[derive(Debug, Clone, Copy)]
pub enum StrRef<'a> {
    /// Index into the store's string dictionary.
    Id(u32),
    /// Stored inline.
    Inline(&'a str),
}

/// Maps strings to dictionary ids while encoding (`None`: store inline).
pub trait Interner {
    /// The id for `s`, assigning a new one if needed; `None` keeps it inline.
    fn intern(&mut self, s: &str) -> Option<u32>;
}

/// Maps dictionary ids back to strings while decoding.
pub trait Resolver {
    /// The string behind `id`, if the dictionary has it.
    fn resolve(&self, id: u32) -> Option<&str>;
}

/// Resolves a [`StrRef`] against the dictionary.
pub fn resolve<'a, R: Resolver + ?Sized>(r: &'a R, s: StrRef<'a>) -> Result<&'a str, StoreError> {
    match s {
        StrRef::Inline(s) => Ok(s),
        StrRef::Id(id) => r
            .resolve(id)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown dictionary id {id}"))),
    }
}

// ------------------------------------------------------------ request ids

// The gateway's ids are lowercase hex (`{:016x}{:08x}`): stored as raw bytes
// they take half the space. Anything else is kept as text.
fn write_request_id(w: &mut Writer, id: &str) {
    let b = id.as_bytes();
    let hex = !b.is_empty()
        && b.len().is_multiple_of(2)
        && b.len() <= 64
        && b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    if hex {
        w.varint((b.len() as u64 / 2) << 1);
        for pair in b.chunks(2) {
            w.byte((nibble(pair[0]) << 4) | nibble(pair[1]));
        }
    } else {
        w.varint(((b.len() as u64) << 1) | 1);
        w.buf.extend_from_slice(b);
    }
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

/// Raw form of a stored request id: packed hex bytes or text.
#[derive(Debug, Clone, Copy)]
pub enum IdRef<'a> {
    /// Lowercase hex packed two digits per byte.
    Hex(&'a [u8]),
    /// Stored as text.
    Text(&'a str),
}

impl<'a> IdRef<'a> {
    /// The id's text, byte by byte, without allocating.
    fn text_bytes(self) -> impl Iterator<Item = u8> + 'a {
        const D: &[u8; 16] = b"0123456789abcdef";
        let (hex, text): (&'a [u8], &'a [u8]) = match self {
            IdRef::Hex(b) => (b, &[]),
            IdRef::Text(s) => (&[], s.as_bytes()),
        };
        hex.iter()
            .flat_map(|x| [D[usize::from(x >> 4)], D[usize::from(x & 15)]])
            .chain(text.iter().copied())
    }

    /// Compares with an id as text, as `String`s compare (cursor checks on
    /// every record of a scan: no allocation).
    pub fn cmp_str(self, id: &str) -> std::cmp::Ordering {
        self.text_bytes().cmp(id.bytes())
    }

    /// The id as the gateway issued it.
    pub fn to_string_lossless(self) -> String {
        match self {
            IdRef::Text(s) => s.to_string(),
            IdRef::Hex(_) => self.text_bytes().map(char::from).collect(),
        }
    }
}

fn read_request_id<'a>(r: &mut Reader<'a>) -> Result<IdRef<'a>, StoreError> {
    let v = r.varint()?;
    let n = usize::try_from(v >> 1).map_err(|_| corrupt("id length"))?;
    let b = r.take(n)?;
    if v & 1 == 0 {
        Ok(IdRef::Hex(b))
    } else {
        Ok(IdRef::Text(Reader::utf8(b)?))
    }
}

// ------------------------------------------------------------ usage blocks

const F_PARTIAL: u8 = 1;
const F_COST: u8 = 2;
const F_TTFT: u8 = 4;
const F_ERROR: u8 = 8;
const F_SAME_MODEL: u8 = 16;
/// Two bits of cost source.
const SRC_SHIFT: u8 = 5;
const SRC_MASK: u8 = 0b11;
/// The usage was estimated by the gateway (the provider reported none).
const F_ESTIMATED: u8 = 128;

fn source_code(s: CostSource) -> u8 {
    match s {
        CostSource::Builtin => 0,
        CostSource::Config => 1,
        CostSource::Unknown => 2,
    }
}

fn source_from(c: u8) -> Result<CostSource, StoreError> {
    match c {
        0 => Ok(CostSource::Builtin),
        1 => Ok(CostSource::Config),
        2 => Ok(CostSource::Unknown),
        _ => Err(corrupt("cost source")),
    }
}

/// What a block's header says without decoding its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Number of records.
    pub count: u64,
    /// Oldest record timestamp.
    pub min_ts: u64,
    /// Newest record timestamp.
    pub max_ts: u64,
    /// The layout version the block was written in.
    pub version: u8,
}

fn intern_or_inline<I: Interner + ?Sized>(w: &mut Writer, i: &mut I, s: &str) {
    let id = if s.len() <= MAX_INTERNED_LEN { i.intern(s) } else { None };
    w.str_ref(id, s);
}

/// Encodes records (which must be sorted by `(ts_ms, request_id)`) as one
/// block value.
pub fn encode_block<I: Interner + ?Sized>(records: &[&UsageRecord], dict: &mut I) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(16 + records.len() * 64),
    };
    let min_ts = records.first().map_or(0, |r| r.ts_ms);
    let max_ts = records.last().map_or(0, |r| r.ts_ms);
    write_header(&mut w, records.len(), min_ts, max_ts);
    let mut prev = min_ts;
    for r in records {
        let same_model = r.upstream_model == r.model;
        let flags = (if r.partial { F_PARTIAL } else { 0 })
            | (if r.cost_usd.is_some() { F_COST } else { 0 })
            | (if r.ttft_ms.is_some() { F_TTFT } else { 0 })
            | (if r.error.is_some() { F_ERROR } else { 0 })
            | (if same_model { F_SAME_MODEL } else { 0 })
            | (if r.usage_source == UsageSource::Estimated {
                F_ESTIMATED
            } else {
                0
            })
            | (source_code(r.cost_source) << SRC_SHIFT);
        write_entry_start(&mut w, &mut prev, r.ts_ms, &r.request_id, flags);
        for s in [&r.endpoint, &r.dialect, &r.provider, &r.provider_type, &r.model] {
            intern_or_inline(&mut w, dict, s);
        }
        if !same_model {
            intern_or_inline(&mut w, dict, &r.upstream_model);
        }
        w.varint(u64::from(r.status));
        let u = &r.usage;
        for n in [
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ] {
            w.varint(n);
        }
        if let Some(c) = r.cost_usd {
            w.f64(c);
        }
        w.varint(u64::from(r.duration_ms));
        if let Some(t) = r.ttft_ms {
            w.varint(u64::from(t));
        }
        intern_or_inline(&mut w, dict, &r.user_path);
        intern_or_inline(&mut w, dict, &r.key_id);
        w.varint(r.tags.len() as u64);
        for (k, v) in &r.tags {
            intern_or_inline(&mut w, dict, k);
            intern_or_inline(&mut w, dict, v);
        }
        if let Some(e) = &r.error {
            intern_or_inline(&mut w, dict, e);
        }
        w.varint(u64::from(r.attempts));
        intern_or_inline(&mut w, dict, &r.key_name);
    }
    w.buf
}

/// Writes the header every block (usage or audit) starts with.
fn write_header(w: &mut Writer, count: usize, min_ts: u64, max_ts: u64) {
    w.byte(VERSION);
    w.varint(count as u64);
    w.varint(min_ts);
    w.varint(max_ts.saturating_sub(min_ts));
}

/// Every block entry (usage or audit) starts alike: the timestamp as a delta
/// from the previous entry's (the block's oldest for the first), the request
/// id, a flags byte.
fn write_entry_start(w: &mut Writer, prev: &mut u64, ts: u64, id: &str, flags: u8) {
    w.varint(ts.saturating_sub(*prev));
    *prev = ts;
    write_request_id(w, id);
    w.byte(flags);
}

/// Reads what [`write_entry_start`] wrote; `ts` holds the previous entry's
/// timestamp and is advanced. Returns the request id and flags.
fn read_entry_start<'a>(r: &mut Reader<'a>, ts: &mut u64) -> Result<(IdRef<'a>, u8), StoreError> {
    *ts = ts.checked_add(r.varint()?).ok_or_else(|| corrupt("timestamp"))?;
    Ok((read_request_id(r)?, r.byte()?))
}

/// Reads a count then that many string pairs (tags, headers), each string
/// read by `s`.
fn read_pairs<'a>(
    r: &mut Reader<'a>,
    mut s: impl FnMut(&mut Reader<'a>) -> Result<&'a str, StoreError>,
) -> Result<Vec<(&'a str, &'a str)>, StoreError> {
    let n = r.varint()?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(64)).unwrap_or(0));
    for _ in 0..n {
        let k = s(r)?;
        let v = s(r)?;
        out.push((k, v));
    }
    Ok(out)
}

/// Reads a block's header only (cheap: used to skip blocks).
pub fn block_header(buf: &[u8]) -> Result<BlockHeader, StoreError> {
    let mut r = Reader::new(buf);
    read_header(&mut r)
}

/// A block's header and how many bytes it takes: what a segment reference
/// copies so scans can skip the block without reading it.
pub fn block_header_and_len(buf: &[u8]) -> Result<(BlockHeader, usize), StoreError> {
    let mut r = Reader::new(buf);
    let h = read_header(&mut r)?;
    Ok((h, r.pos))
}

fn read_header(r: &mut Reader<'_>) -> Result<BlockHeader, StoreError> {
    let version = r.byte()?;
    if version == 0 || version > VERSION {
        return Err(StoreError::Corrupt("unknown block version".into()));
    }
    let count = r.varint()?;
    let min_ts = r.varint()?;
    let max_ts = min_ts.checked_add(r.varint()?).ok_or_else(|| corrupt("block span"))?;
    Ok(BlockHeader {
        count,
        min_ts,
        max_ts,
        version,
    })
}

/// One record decoded without allocation: strings borrow the block or the
/// dictionary, so filters can reject records before anything is copied.
#[derive(Debug, Clone)]
pub struct RecView<'a> {
    /// Completion time.
    pub ts_ms: u64,
    /// Request id as stored.
    pub request_id: IdRef<'a>,
    /// See [`UsageRecord`].
    pub endpoint: &'a str,
    /// See [`UsageRecord`].
    pub dialect: &'a str,
    /// See [`UsageRecord`].
    pub provider: &'a str,
    /// See [`UsageRecord`].
    pub provider_type: &'a str,
    /// See [`UsageRecord`].
    pub model: &'a str,
    /// See [`UsageRecord`].
    pub upstream_model: &'a str,
    /// See [`UsageRecord`].
    pub status: u16,
    /// See [`UsageRecord`].
    pub usage: Usage,
    /// See [`UsageRecord`].
    pub usage_source: UsageSource,
    /// See [`UsageRecord`].
    pub cost_usd: Option<f64>,
    /// See [`UsageRecord`].
    pub cost_source: CostSource,
    /// See [`UsageRecord`].
    pub duration_ms: u32,
    /// See [`UsageRecord`].
    pub ttft_ms: Option<u32>,
    /// See [`UsageRecord`].
    pub user_path: &'a str,
    /// See [`UsageRecord`].
    pub key_id: &'a str,
    /// Tag pairs (a small vec: tags are bounded per request).
    pub tags: Vec<(&'a str, &'a str)>,
    /// See [`UsageRecord`].
    pub partial: bool,
    /// See [`UsageRecord`].
    pub error: Option<&'a str>,
    /// See [`UsageRecord`].
    pub attempts: u32,
    /// See [`UsageRecord`] (empty before block version 3).
    pub key_name: &'a str,
}

impl RecView<'_> {
    /// An owned record.
    pub fn to_record(&self) -> UsageRecord {
        UsageRecord {
            request_id: self.request_id.to_string_lossless(),
            ts_ms: self.ts_ms,
            endpoint: self.endpoint.to_string(),
            dialect: self.dialect.to_string(),
            provider: self.provider.to_string(),
            provider_type: self.provider_type.to_string(),
            model: self.model.to_string(),
            upstream_model: self.upstream_model.to_string(),
            status: self.status,
            usage: self.usage,
            usage_source: self.usage_source,
            cost_usd: self.cost_usd,
            cost_source: self.cost_source,
            duration_ms: self.duration_ms,
            ttft_ms: self.ttft_ms,
            user_path: self.user_path.to_string(),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            key_id: self.key_id.to_string(),
            partial: self.partial,
            error: self.error.map(str::to_string),
            attempts: self.attempts,
            key_name: self.key_name.to_string(),
        }
    }
}

/// Decodes every record of a block, in stored (ascending) order.
pub fn decode_block<'a, R: Resolver + ?Sized>(
    buf: &'a [u8],
    dict: &'a R,
) -> Result<(BlockHeader, Vec<RecView<'a>>), StoreError> {
    let mut r = Reader::new(buf);
    let h = read_header(&mut r)?;
    let mut out = Vec::with_capacity(usize::try_from(h.count.min(4096)).unwrap_or(0));
    let mut ts = h.min_ts;
    let s = |r: &mut Reader<'a>| -> Result<&'a str, StoreError> { resolve(dict, r.str_ref()?) };
    for _ in 0..h.count {
        let (request_id, flags) = read_entry_start(&mut r, &mut ts)?;
        let endpoint = s(&mut r)?;
        let dialect = s(&mut r)?;
        let provider = s(&mut r)?;
        let provider_type = s(&mut r)?;
        let model = s(&mut r)?;
        let upstream_model = if flags & F_SAME_MODEL != 0 { model } else { s(&mut r)? };
        let status = u16::try_from(r.varint()?).map_err(|_| corrupt("status"))?;
        let usage = Usage {
            input_tokens: r.varint()?,
            output_tokens: r.varint()?,
            cached_input_tokens: r.varint()?,
            cache_write_tokens: r.varint()?,
            reasoning_tokens: r.varint()?,
        };
        let cost_usd = if flags & F_COST != 0 { Some(r.f64()?) } else { None };
        let duration_ms = r.varint_u32()?;
        let ttft_ms = if flags & F_TTFT != 0 {
            Some(r.varint_u32()?)
        } else {
            None
        };
        let user_path = s(&mut r)?;
        let key_id = s(&mut r)?;
        let tags = read_pairs(&mut r, s)?;
        let error = if flags & F_ERROR != 0 { Some(s(&mut r)?) } else { None };
        let attempts = if h.version >= 2 {
            r.varint_u32()?
        } else {
            u32::from(!provider.is_empty())
        };
        let key_name = if h.version >= 3 { s(&mut r)? } else { "" };
        out.push(RecView {
            ts_ms: ts,
            request_id,
            endpoint,
            dialect,
            provider,
            provider_type,
            model,
            upstream_model,
            status,
            usage,
            cost_usd,
            cost_source: source_from((flags >> SRC_SHIFT) & SRC_MASK)?,
            usage_source: if flags & F_ESTIMATED != 0 {
                UsageSource::Estimated
            } else {
                UsageSource::Provider
            },
            duration_ms,
            ttft_ms,
            user_path,
            key_id,
            tags,
            partial: flags & F_PARTIAL != 0,
            error,
            attempts,
            key_name,
        });
    }
    if !r.is_empty() {
        return Err(StoreError::Corrupt("trailing bytes after usage block".into()));
    }
    Ok((h, out))
}

// ---------------------------------------------------------------- counters

/// Encodes roll-up counters.
pub fn encode_counters(c: &Counters) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(32),
    };
    for n in [
        c.requests,
        c.errors,
        c.partial,
        c.input_tokens,
        c.output_tokens,
        c.cached_input_tokens,
        c.cache_write_tokens,
        c.reasoning_tokens,
        c.cost_unknown,
        c.duration_ms,
    ] {
        w.varint(n);
    }
    w.f64(c.cost_usd);
    w.buf
}

/// Decodes roll-up counters.
pub fn decode_counters(buf: &[u8]) -> Result<Counters, StoreError> {
    let mut r = Reader::new(buf);
    Ok(Counters {
        requests: r.varint()?,
        errors: r.varint()?,
        partial: r.varint()?,
        input_tokens: r.varint()?,
        output_tokens: r.varint()?,
        cached_input_tokens: r.varint()?,
        cache_write_tokens: r.varint()?,
        reasoning_tokens: r.varint()?,
        cost_unknown: r.varint()?,
        duration_ms: r.varint()?,
        cost_usd: r.f64()?,
    })
}

// ------------------------------------------------------------------- audit

#[path = "encode_audit.rs"]
mod audit;
pub use audit::{
    decode_audit_block, decode_audit_bodies, encode_audit_block, encode_audit_bodies, find_in_audit_block,
    rewrite_audit_block, AuditView,
};

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
