//! The limiter script's wire format, without I/O: how a call's arguments
//! are encoded (settlements, then each request's counters, in the layout
//! `lua/limiter.lua` documents) and how its answer is read back. The
//! shared backend (`shared.rs`) decides when calls go; this file decides
//! what they say.

use super::meters::{Admit, Check, Kind, Reading};
use super::redis::CallError;
use super::resp::Reply;
use super::window::{Period, BUCKETS};
use std::sync::Arc;

/// The script (loaded on every connection, so `EVALSHA` finds it).
pub(super) const LIMITER_LUA: &str = include_str!("lua/limiter.lua");

/// How long a place in flight or a reservation outlives its request when
/// the node holding it dies (longer than any request: the provider read
/// timeout is 600 s).
pub const LEASE_MS: u64 = 15 * 60_000;

/// Every key this backend writes starts with this.
const PREFIX: &str = "sy:";
/// The script's name in Redis (`SCRIPT LOAD` answers the same).
pub(super) fn sha1_hex(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
    super::keys::hex(d.as_ref())
}

/// A command being built: arguments appended as they come, the count
/// written in front at the end.
pub(super) struct Cmd {
    body: Vec<u8>,
    n: usize,
}

impl Cmd {
    pub(super) fn new() -> Cmd {
        Cmd::with_capacity(512)
    }

    pub(super) fn with_capacity(bytes: usize) -> Cmd {
        Cmd {
            body: Vec::with_capacity(bytes),
            n: 0,
        }
    }

    pub(super) fn arg(&mut self, a: &[u8]) -> &mut Cmd {
        self.body.push(b'$');
        let mut b = itoa::Buffer::new();
        self.body.extend_from_slice(b.format(a.len()).as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(a);
        self.body.extend_from_slice(b"\r\n");
        self.n += 1;
        self
    }

    pub(super) fn int(&mut self, v: impl itoa::Integer) -> &mut Cmd {
        let mut b = itoa::Buffer::new();
        let s = b.format(v);
        self.arg(s.as_bytes())
    }

    /// Appends the arguments `other` holds.
    pub(super) fn raw(&mut self, other: &Cmd) -> &mut Cmd {
        self.body.extend_from_slice(&other.body);
        self.n += other.n;
        self
    }

    pub(super) fn finish(self, out: &mut Vec<u8>) {
        out.push(b'*');
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.n).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Settled counters not yet sent: their keys and arguments, encoded.
pub(super) struct Pending {
    keys: Cmd,
    args: Cmd,
    /// When the oldest was queued (Unix ms).
    pub(super) since_ms: u64,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            keys: Cmd::with_capacity(0),
            args: Cmd::with_capacity(0),
            since_ms: 0,
        }
    }
}

impl Pending {
    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.keys.n == 0
    }

    /// Queues the settlement of an admitted request's `checks` (admitted
    /// at `at`, ended at `now`, having used `tokens` and `nano_usd`).
    pub(super) fn push(&mut self, checks: &[Check], ticket: &str, at: u64, now: u64, tokens: i64, nano_usd: i64) {
        for c in checks.iter().filter(|c| c.kind != Kind::Requests) {
            self.keys.arg(key_of(&c.meter, c.kind, at).as_bytes());
            self.keys.arg(key_of(&c.meter, c.kind, now).as_bytes());
            let (k, span) = shape(c.kind, now);
            let spent = if matches!(c.kind, Kind::Usd(_)) {
                nano_usd
            } else {
                tokens
            };
            let a = &mut self.args;
            match c.kind {
                Kind::Tokens => a.arg(b"t").int(tokens - c.amount).int(at).int(span),
                Kind::Concurrency => a.arg(b"g").int(0).int(0).int(0),
                _ => a.arg(k.as_bytes()).int(-c.amount).int(spent).int(span),
            };
            a.arg(ticket.as_bytes()).int(now);
        }
    }
}

/// A counter an admission asks for: its meter, kind, limit and amount.
pub(super) type Counter = (Arc<str>, Kind, i64, i64);

/// One request's part of a script call: its ticket and counters.
pub(super) struct Req<'a> {
    pub(super) ticket: &'a str,
    pub(super) counters: &'a [Counter],
}

/// `verb script args…` as one RESP command.
pub(super) fn command(verb: &[u8], script: &[u8], args: &Cmd) -> Vec<u8> {
    let mut c = Cmd::with_capacity(args.body.len() + script.len() + 32);
    c.arg(verb).arg(script).raw(args);
    let mut out = Vec::with_capacity(c.body.len() + 16);
    c.finish(&mut out);
    out
}

/// One request's outcome in the script's answer.
pub(super) fn outcome(r: Option<&Reply>, n: usize) -> Result<Admit, CallError> {
    let bad = || CallError::Lost;
    let Some(Reply::Array(Some(v))) = r else {
        return Err(bad());
    };
    match v.first().and_then(Reply::int) {
        Some(1) => readings(v, 1, n).map(Admit::Yes).ok_or_else(bad),
        Some(0) => {
            let i = v.get(1).and_then(Reply::int).and_then(|i| usize::try_from(i).ok());
            let r = readings(v, 2, 1).and_then(|mut r| r.pop());
            match (i, r) {
                (Some(i), Some(r)) if i < n => Ok(Admit::No(i, r)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// The script's arguments after `EVALSHA <sha>`: the settlements riding
/// along, then each request's counters to admit or read.
pub(super) fn script_args(cmd: &mut Cmd, settled: &Pending, reqs: &[Req<'_>], now: u64, mode: &[u8]) {
    // The counters' keys, counted as they are written.
    let mut keys = Cmd::new();
    for r in reqs {
        for (meter, kind, ..) in r.counters {
            keys.arg(key_of(meter, *kind, now).as_bytes());
            if let Some(before) = previous_period(*kind, now) {
                keys.arg(key_of(meter, *kind, before).as_bytes());
            }
        }
    }
    cmd.int(settled.keys.n + keys.n);
    cmd.raw(&settled.keys).raw(&keys);
    cmd.int(now).int(LEASE_MS).arg(mode);
    cmd.int(settled.keys.n / 2).raw(&settled.args);
    cmd.int(reqs.len());
    for r in reqs {
        cmd.arg(r.ticket.as_bytes()).int(r.counters.len());
        for (_, kind, limit, amount) in r.counters {
            let (mut k, span) = shape(*kind, now);
            if previous_period(*kind, now).is_some() {
                // A calendar budget whose previous period's key follows.
                k = "C";
            }
            cmd.arg(k.as_bytes()).int(*limit).int(*amount).int(span);
        }
    }
}

/// The Redis key of check `c` at time `at`: a calendar budget's key names
/// its period, so a new period starts at zero by itself.
pub(super) fn key_of(meter: &str, kind: Kind, at: u64) -> String {
    match calendar(kind).and_then(|p| p.bounds(at)) {
        Some((start, _)) => format!("{PREFIX}{meter}:{start}"),
        None => format!("{PREFIX}{meter}"),
    }
}

/// A moment in the period before the one `now` is in, while requests
/// admitted then may still be in flight (calendar budgets: for a lease
/// after a period starts; by then the old period's key has expired).
fn previous_period(kind: Kind, now: u64) -> Option<u64> {
    let (start, _) = calendar(kind)?.bounds(now)?;
    (now - start < LEASE_MS).then(|| start.checked_sub(1)).flatten()
}

pub(super) fn calendar(kind: Kind) -> Option<Period> {
    match kind {
        Kind::Usd(p) | Kind::BudgetTokens(p) if !matches!(p, Period::Rolling(_)) => Some(p),
        _ => None,
    }
}

/// The script's kind letter and span argument for a counter of `kind`.
pub(super) fn shape(kind: Kind, now: u64) -> (&'static str, u64) {
    let width = |span: u64| (span / BUCKETS as u64).max(1);
    match kind {
        Kind::Requests | Kind::Tokens => ("w", width(60_000)),
        Kind::Concurrency => ("g", 0),
        Kind::Usd(Period::Rolling(ms)) | Kind::BudgetTokens(Period::Rolling(ms)) => ("b", width(ms)),
        Kind::Usd(p) | Kind::BudgetTokens(p) => ("c", p.bounds(now).map_or(now, |(_, end)| end)),
    }
}

pub(super) fn readings(r: &[Reply], from: usize, n: usize) -> Option<Vec<Reading>> {
    (0..n)
        .map(|i| {
            let at = from + i * 3;
            Some(Reading {
                used: r.get(at)?.int()?,
                reserved: r.get(at + 1)?.int()?,
                reset_ms: u64::try_from(r.get(at + 2)?.int()?).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_budgets_name_their_period_and_windows_do_not() {
        let day = 86_400_000;
        assert_eq!(
            key_of("k:budget:usd", Kind::Usd(Period::Day), day + 5),
            format!("sy:k:budget:usd:{day}")
        );
        assert_eq!(key_of("k:rpm", Kind::Requests, day + 5), "sy:k:rpm");
        // Requests admitted in the period before still reserve in this one.
        assert_eq!(previous_period(Kind::Usd(Period::Day), day + 5), Some(day - 1));
        assert_eq!(previous_period(Kind::Usd(Period::Day), day + LEASE_MS), None);
        assert_eq!(previous_period(Kind::Usd(Period::Rolling(60_000)), day), None);
        assert_eq!(key_of("b:usd", Kind::Usd(Period::Rolling(3_600_000)), 7), "sy:b:usd");
        assert_eq!(shape(Kind::Requests, 0), ("w", 1000));
        assert_eq!(shape(Kind::Usd(Period::Day), day + 5), ("c", 2 * day));
        assert_eq!(shape(Kind::BudgetTokens(Period::Rolling(3_600_000)), 0), ("b", 60_000));
    }

    #[test]
    fn commands_count_their_arguments() {
        let mut c = Cmd::new();
        c.arg(b"EVALSHA").int(-12i64).arg(b"");
        let mut out = Vec::new();
        c.finish(&mut out);
        assert_eq!(out, b"*3\r\n$7\r\nEVALSHA\r\n$3\r\n-12\r\n$0\r\n\r\n");
    }

    #[test]
    fn the_scripts_hash_as_redis_names_them() {
        // SHA-1 of "return 1", as `SCRIPT LOAD` answers it.
        assert_eq!(sha1_hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
