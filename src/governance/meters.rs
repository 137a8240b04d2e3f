//! The in-process limiter backend: every counter in one map behind one
//! mutex, so an admission checks and reserves across all of its scopes
//! atomically (held for well under a microsecond per request). The same
//! decisions run server-side in the Redis backend; [`decide`] is the rule
//! both follow.

use super::window::{Period, Window};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

/// What a check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute (estimate at admission, corrected at the end).
    Tokens,
    /// Requests in flight.
    Concurrency,
    /// Budget in nano-USD per period (reserved at admission).
    Usd(Period),
    /// Budget in tokens per period (reserved at admission).
    BudgetTokens(Period),
}

/// One limit an admission must pass.
#[derive(Debug, Clone)]
pub struct Check {
    /// The counter's name (`key:<id>:rpm`, …); unique per scope and kind.
    pub meter: Arc<str>,
    /// What it counts.
    pub kind: Kind,
    /// The limit (requests, tokens, or nano-USD).
    pub limit: i64,
    /// What this request takes of it (1 for requests and concurrency).
    pub amount: i64,
    /// Whose limit, for the caller ("key `app`").
    pub scope: Arc<str>,
    /// Warn once spending passes this fraction (budgets).
    pub soft: Option<f64>,
}

/// A counter's state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Meter {
    /// Per-minute counts, or a rolling budget window.
    Window(Window),
    /// Requests in flight.
    Gauge(i64),
    /// A calendar budget: spent in the period that began at `start`.
    Calendar {
        /// Period start (Unix ms).
        start: u64,
        /// Spent in it.
        used: i64,
    },
}

/// A budget counter also holds what admitted requests reserved.
#[derive(Debug, Clone)]
struct Slot {
    meter: Meter,
    reserved: i64,
    dirty: bool,
}

impl Slot {
    fn new(kind: Kind) -> Slot {
        let meter = match kind {
            Kind::Requests | Kind::Tokens => Meter::Window(Window::new(60_000)),
            Kind::Concurrency => Meter::Gauge(0),
            Kind::Usd(Period::Rolling(ms)) | Kind::BudgetTokens(Period::Rolling(ms)) => Meter::Window(Window::new(ms)),
            Kind::Usd(_) | Kind::BudgetTokens(_) => Meter::Calendar { start: 0, used: 0 },
        };
        Slot {
            meter,
            reserved: 0,
            dirty: false,
        }
    }

    fn used(&self, kind: Kind, now: u64) -> i64 {
        match &self.meter {
            Meter::Window(w) => w.total(now),
            Meter::Gauge(n) => *n,
            Meter::Calendar { start, used } => match period_of(kind).and_then(|p| p.bounds(now)) {
                Some((s, _)) if s == *start => *used,
                _ => 0,
            },
        }
    }

    fn add_used(&mut self, kind: Kind, at: u64, now: u64, n: i64) {
        match &mut self.meter {
            Meter::Window(w) => w.add(at, now, n),
            Meter::Gauge(g) => *g += n,
            Meter::Calendar { start, used } => {
                if let Some((s, _)) = period_of(kind).and_then(|p| p.bounds(now)) {
                    if s != *start {
                        *start = s;
                        *used = 0;
                    }
                    *used += n;
                }
            }
        }
    }
}

fn period_of(kind: Kind) -> Option<Period> {
    match kind {
        Kind::Usd(p) | Kind::BudgetTokens(p) => Some(p),
        _ => None,
    }
}

/// What a check found: the numbers the caller sees in headers and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Used before this request.
    pub used: i64,
    /// Reserved by requests in flight (budgets).
    pub reserved: i64,
    /// Milliseconds until the counter has room (refused) or is empty
    /// (admitted: the reset header).
    pub reset_ms: u64,
}

/// The admission rule, shared by both backends. Per-minute limits and
/// concurrency refuse a request that would exceed the limit; a budget
/// refuses once spent plus reserved reaches it (so concurrent requests
/// overshoot by at most what is in flight, and one large request is not
/// refused for its estimate alone).
pub fn decide(kind: Kind, limit: i64, amount: i64, used: i64, reserved: i64) -> bool {
    match kind {
        Kind::Requests | Kind::Tokens | Kind::Concurrency => used + amount <= limit,
        Kind::Usd(_) | Kind::BudgetTokens(_) => used + reserved < limit,
    }
}

/// The outcome of an admission.
#[derive(Debug)]
pub enum Admit {
    /// Every check passed; the readings are in check order.
    Yes(Vec<Reading>),
    /// The check at this index refused.
    No(usize, Reading),
}

/// Every counter of this process.
#[derive(Default)]
pub struct Meters {
    slots: Mutex<HashMap<Arc<str>, Slot, NameHash>>,
}

/// FNV-1a over a counter's name. Names come from the config and the admin
/// API (a key's id, a declared path, model or provider), never from what
/// a caller sends, so a DoS-resistant hash buys nothing; this one costs a
/// few nanoseconds for a 20-byte name, SipHash several times that, with
/// the lock held.
#[derive(Default, Clone, Copy)]
pub struct NameHash;

impl std::hash::BuildHasher for NameHash {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

/// See [`NameHash`].
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

impl Meters {
    /// Checks every limit and, when all pass, takes each request's amount
    /// (atomically: all or none).
    pub fn admit(&self, checks: &[Check], now: u64) -> Admit {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut readings = Vec::with_capacity(checks.len());
        // One lookup per check: each is taken as it passes, and what was
        // taken is given back if a later one refuses.
        for (i, c) in checks.iter().enumerate() {
            let slot = map.entry(c.meter.clone()).or_insert_with(|| Slot::new(c.kind));
            let (used, reserved) = (slot.used(c.kind, now), slot.reserved);
            if !decide(c.kind, c.limit, c.amount, used, reserved) {
                let reset_ms = room_in(slot, c, now);
                for taken in &checks[..i] {
                    if let Some(s) = map.get_mut(&*taken.meter) {
                        take(s, taken, now, -1);
                    }
                }
                return Admit::No(
                    i,
                    Reading {
                        used,
                        reserved,
                        reset_ms,
                    },
                );
            }
            take(slot, c, now, 1);
            let reset_ms = match &slot.meter {
                // What this request took leaves with the current bucket.
                Meter::Window(w) if matches!(c.kind, Kind::Requests | Kind::Tokens) => w.ms_until_leaves(now),
                Meter::Window(w) => w.ms_until_empty(now),
                Meter::Gauge(_) => 0,
                Meter::Calendar { .. } => period_of(c.kind)
                    .and_then(|p| p.bounds(now))
                    .map_or(0, |(_, end)| end - now),
            };
            readings.push(Reading {
                used,
                reserved,
                reset_ms,
            });
        }
        Admit::Yes(readings)
    }

    /// Ends an admitted request: corrects the token estimate at `at` to
    /// what was used, frees its place in flight, moves a budget's
    /// reservation to what was really spent.
    pub fn settle(&self, checks: &[Check], at: u64, now: u64, tokens: i64, nano_usd: i64) {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in checks {
            let Some(slot) = map.get_mut(&c.meter) else { continue };
            match c.kind {
                Kind::Requests => {}
                Kind::Tokens => slot.add_used(c.kind, at, now, tokens - c.amount),
                Kind::Concurrency => slot.add_used(c.kind, at, now, -1),
                Kind::Usd(_) | Kind::BudgetTokens(_) => {
                    slot.reserved -= c.amount;
                    let spent = if matches!(c.kind, Kind::Usd(_)) {
                        nano_usd
                    } else {
                        tokens
                    };
                    slot.add_used(c.kind, now, now, spent);
                    slot.dirty = true;
                }
            }
        }
    }

    /// Used and reserved of one counter now (for `/v1/usage` and the admin
    /// API); zero when it never counted.
    pub fn read(&self, meter: &str, kind: Kind, now: u64) -> (i64, i64) {
        let map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(meter).map_or((0, 0), |s| (s.used(kind, now), s.reserved))
    }

    /// Budget counters changed since the last call (to persist), as their
    /// meter state; marks them clean.
    pub fn take_dirty(&self) -> Vec<(Arc<str>, Meter)> {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter_mut()
            .filter(|(_, s)| s.dirty)
            .map(|(k, s)| {
                s.dirty = false;
                (k.clone(), s.meter.clone())
            })
            .collect()
    }

    /// Restores a persisted budget counter (at start-up, before requests).
    pub fn restore(&self, meter: Arc<str>, state: Meter) {
        let mut map = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(
            meter,
            Slot {
                meter: state,
                reserved: 0,
                dirty: false,
            },
        );
    }
}

/// Takes (`sign` 1) or gives back (-1) what check `c` claims of `slot`.
fn take(slot: &mut Slot, c: &Check, now: u64, sign: i64) {
    match c.kind {
        Kind::Requests | Kind::Tokens | Kind::Concurrency => slot.add_used(c.kind, now, now, sign * c.amount),
        Kind::Usd(_) | Kind::BudgetTokens(_) => slot.reserved += sign * c.amount,
    }
}

/// Milliseconds until check `c` would pass on `slot`.
fn room_in(slot: &Slot, c: &Check, now: u64) -> u64 {
    match (&slot.meter, c.kind) {
        (Meter::Window(w), Kind::Requests | Kind::Tokens) => {
            let target = c.limit - c.amount;
            if target < 0 {
                w.ms_until_empty(now)
            } else {
                w.ms_until_at_most(now, target)
            }
        }
        (Meter::Window(w), _) => w.ms_until_at_most(now, (c.limit - slot.reserved - 1).max(0)),
        (Meter::Gauge(_), _) => 1000,
        (Meter::Calendar { .. }, k) => period_of(k)
            .and_then(|p| p.bounds(now))
            .map_or(1000, |(_, end)| end - now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(meter: &str, kind: Kind, limit: i64, amount: i64) -> Check {
        Check {
            meter: meter.into(),
            kind,
            limit,
            amount,
            scope: "key `k`".into(),
            soft: None,
        }
    }

    #[test]
    fn the_sixth_request_in_a_minute_is_refused_until_the_first_leaves() {
        let m = Meters::default();
        let rpm = [check("k:rpm", Kind::Requests, 5, 1)];
        for i in 0..5 {
            assert!(matches!(m.admit(&rpm, 1_000 + i * 100), Admit::Yes(_)), "request {i}");
        }
        let Admit::No(0, r) = m.admit(&rpm, 2_000) else {
            panic!("sixth admitted")
        };
        assert_eq!((r.used, r.reset_ms), (5, 61_000 - 2_000));
        assert!(matches!(m.admit(&rpm, 61_000), Admit::Yes(_)));
    }

    #[test]
    fn an_admission_is_all_or_nothing_across_scopes() {
        let m = Meters::default();
        let both = [
            check("a:rpm", Kind::Requests, 10, 1),
            check("b:rpm", Kind::Requests, 1, 1),
        ];
        assert!(matches!(m.admit(&both, 0), Admit::Yes(_)));
        assert!(matches!(m.admit(&both, 0), Admit::No(1, _)));
        // The refusal took nothing from `a`.
        assert_eq!(m.read("a:rpm", Kind::Requests, 0), (1, 0));
    }

    #[test]
    fn token_estimates_are_corrected_and_concurrency_is_released() {
        let m = Meters::default();
        let c = [check("t", Kind::Tokens, 1000, 600), check("c", Kind::Concurrency, 1, 1)];
        assert!(matches!(m.admit(&c, 0), Admit::Yes(_)));
        assert!(matches!(m.admit(&c, 10), Admit::No(0, _)), "600 + 600 > 1000");
        m.settle(&c, 0, 20, 100, 0);
        assert_eq!(m.read("t", Kind::Tokens, 20), (100, 0));
        assert_eq!(m.read("c", Kind::Concurrency, 20), (0, 0));
        assert!(matches!(m.admit(&c, 30), Admit::Yes(_)));
    }

    #[test]
    fn a_budget_reserves_then_spends_and_resets_with_its_period() {
        let m = Meters::default();
        let day = 86_400_000;
        let b = [check("b", Kind::Usd(Period::Day), 1_000, 700)];
        assert!(matches!(m.admit(&b, 10), Admit::Yes(_)));
        // 700 reserved of 1000: room is left, so a second one is admitted.
        assert!(matches!(m.admit(&b, 11), Admit::Yes(_)));
        // 1400 reserved: no room.
        assert!(matches!(m.admit(&b, 12), Admit::No(0, r) if r.reserved == 1400 && r.reset_ms == day - 12));
        m.settle(&b, 10, 20, 0, 300);
        m.settle(&b, 11, 21, 0, 300);
        assert_eq!(m.read("b", Kind::Usd(Period::Day), 22), (600, 0));
        assert!(matches!(m.admit(&b, 23), Admit::Yes(_)));
        m.settle(&b, 23, 24, 0, 500);
        assert!(matches!(m.admit(&b, 25), Admit::No(..)), "1100 spent");
        assert!(matches!(m.admit(&b, day + 1), Admit::Yes(_)), "a new day");
        let dirty = m.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert!(m.take_dirty().is_empty());
    }
}
