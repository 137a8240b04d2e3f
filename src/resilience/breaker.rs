//! A circuit breaker as a pure state machine: the caller passes the time
//! and the policy, so the same breaker keeps its state across a reload that
//! changes the policy, and tests drive it without a clock.
//!
//! ```text
//! Closed --(N consecutive failures, or the error rate over the window)--> Open
//! Open   --(cooldown elapsed: one caller is admitted as the probe)-----> HalfOpen
//! HalfOpen --(probe succeeds)--> Closed      HalfOpen --(probe fails)--> Open
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// When a breaker opens and how long it stays open (`circuit_breaker:`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// Share of failed calls over the window that opens it (0 < r ≤ 1)…
    pub error_rate: f64,
    /// …once the window holds at least this many calls.
    pub min_requests: u32,
    /// The error-rate window.
    pub window: Duration,
    /// How long an open circuit refuses calls before one probe is let through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// What the breaker shows (`switchyard_circuit_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// The cooldown is over; one probe decides.
    HalfOpen,
    /// Calls are refused until the cooldown ends.
    Open,
}

impl CircuitState {
    /// The metric's value.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// The admin API's name.
    pub fn name(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Half-open: this call is the probe; its outcome decides.
    Probe,
    /// Open (or another probe is in flight): try again in this many ms.
    Refused {
        /// Until the next probe may go, ms.
        retry_after_ms: u64,
    },
}

/// Buckets of the error-rate window.
const BUCKETS: usize = 10;

/// One slice of the window. Counts are reset by whoever first sees a new
/// slice; a count racing that reset may be lost, which a breaker can afford.
#[derive(Debug, Default)]
struct Bucket {
    /// Which slice of time it counts (`now / bucket_ms`).
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
}

/// One breaker (a provider instance, or one of its models). A closed
/// breaker is read with plain loads and counted with one atomic add per
/// call, so healthy traffic never takes a lock; opening, probing and
/// closing are serialised by `transition`.
#[derive(Debug, Default)]
pub struct Breaker {
    /// Open until this time (ms); 0 = closed.
    open_until: AtomicU64,
    /// When the probe in flight was admitted (0 = none).
    probe_since: AtomicU64,
    consecutive: AtomicU32,
    /// Times it opened (the admin API shows it).
    opened: AtomicU64,
    buckets: [Bucket; BUCKETS],
    transition: Mutex<()>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.transition.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go at `now_ms`.
    pub fn admit(&self, p: &BreakerPolicy, now_ms: u64) -> Admission {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Allowed;
        }
        if now_ms < until {
            return Admission::Refused {
                retry_after_ms: until - now_ms,
            };
        }
        // Half-open: one caller claims the probe. A probe that never
        // reported (its caller went away) is given up on after a cooldown.
        let since = self.probe_since.load(Ordering::Acquire);
        if since != 0 && now_ms < since.saturating_add(millis(p.cooldown)) {
            return Admission::Refused { retry_after_ms: 1000 };
        }
        match self
            .probe_since
            .compare_exchange(since, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Refused { retry_after_ms: 1000 },
        }
    }

    /// Gives back a probe that was admitted but not used (another breaker
    /// on the same path refused the call).
    pub fn release_probe(&self) {
        self.probe_since.store(0, Ordering::Release);
    }

    /// Records a call's outcome.
    pub fn record(&self, p: &BreakerPolicy, now_ms: u64, ok: bool) {
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.record_open(p, now_ms, ok);
            return;
        }
        let bucket_ms = (millis(p.window) / BUCKETS as u64).max(1);
        let epoch = now_ms / bucket_ms;
        let b = &self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch.load(Ordering::Acquire) != epoch && b.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            b.calls.store(0, Ordering::Relaxed);
            b.failures.store(0, Ordering::Relaxed);
        }
        b.calls.fetch_add(1, Ordering::Relaxed);
        if ok {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        b.failures.fetch_add(1, Ordering::Relaxed);
        let streak = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (calls, failures) = self
            .buckets
            .iter()
            .filter(|b| (oldest..=epoch).contains(&b.epoch.load(Ordering::Acquire)))
            .fold((0u64, 0u64), |(c, f), b| {
                (
                    c + u64::from(b.calls.load(Ordering::Relaxed)),
                    f + u64::from(b.failures.load(Ordering::Relaxed)),
                )
            });
        let rate_trips = calls >= u64::from(p.min_requests.max(1)) && failures as f64 >= p.error_rate * calls as f64;
        if streak >= p.failures.max(1) || rate_trips {
            let _t = self.lock();
            if self.open_until.load(Ordering::Acquire) == 0 {
                self.open(p, now_ms);
            }
        }
    }

    /// An outcome while open: only the probe's (after the cooldown) counts;
    /// a call admitted before the circuit opened was already counted.
    fn record_open(&self, p: &BreakerPolicy, now_ms: u64, ok: bool) {
        let _t = self.lock();
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 || now_ms < until || self.probe_since.load(Ordering::Acquire) == 0 {
            return;
        }
        self.probe_since.store(0, Ordering::Release);
        if ok {
            self.consecutive.store(0, Ordering::Relaxed);
            for b in &self.buckets {
                b.calls.store(0, Ordering::Relaxed);
                b.failures.store(0, Ordering::Relaxed);
            }
            self.open_until.store(0, Ordering::Release);
        } else {
            self.open(p, now_ms);
        }
    }

    fn open(&self, p: &BreakerPolicy, now_ms: u64) {
        self.open_until
            .store(now_ms.saturating_add(millis(p.cooldown)).max(1), Ordering::Release);
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// What it shows at `now_ms`.
    pub fn state(&self, now_ms: u64) -> CircuitState {
        match self.open_until.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            t if now_ms < t => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Times this breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        }
    }

    #[test]
    fn consecutive_failures_open_then_a_probe_closes() {
        let (p, b) = (policy(), Breaker::default());
        b.record(&p, 1_000, false);
        b.record(&p, 1_001, false);
        assert_eq!(b.admit(&p, 1_002), Admission::Allowed);
        b.record(&p, 1_002, false);
        assert_eq!(b.state(1_003), CircuitState::Open);
        assert_eq!(b.admit(&p, 2_002), Admission::Refused { retry_after_ms: 4_000 });
        // Cooldown over: exactly one probe.
        assert_eq!(b.state(6_002), CircuitState::HalfOpen);
        assert_eq!(b.admit(&p, 6_002), Admission::Probe);
        assert!(matches!(b.admit(&p, 6_003), Admission::Refused { .. }));
        b.record(&p, 6_100, true);
        assert_eq!(b.state(6_101), CircuitState::Closed);
        assert_eq!(b.admit(&p, 6_101), Admission::Allowed);
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cooldown() {
        let (p, b) = (policy(), Breaker::default());
        for t in 0..3 {
            b.record(&p, 10 + t, false);
        }
        assert_eq!(b.admit(&p, 6_000), Admission::Probe);
        b.record(&p, 6_050, false);
        assert_eq!(b.admit(&p, 6_051), Admission::Refused { retry_after_ms: 4_999 });
        assert_eq!(b.times_opened(), 2);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_a_cooldown() {
        let (p, b) = (policy(), Breaker::default());
        for t in 0..3 {
            b.record(&p, t, false);
        }
        assert_eq!(b.admit(&p, 5_002), Admission::Probe);
        assert!(matches!(b.admit(&p, 10_001), Admission::Refused { .. }));
        assert_eq!(b.admit(&p, 10_002), Admission::Probe);
        b.release_probe();
        assert_eq!(b.admit(&p, 10_003), Admission::Probe);
    }

    #[test]
    fn the_error_rate_over_the_window_opens_without_a_streak() {
        let (p, b) = (policy(), Breaker::default());
        // Alternating: never 3 in a row, but half fail.
        for t in 0..9u64 {
            b.record(&p, t * 100, t % 2 == 0);
        }
        assert_eq!(b.state(900), CircuitState::Closed, "under min_requests");
        b.record(&p, 950, false);
        assert_eq!(b.state(951), CircuitState::Open);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let (p, b) = (policy(), Breaker::default());
        // Half of eight fail, never two in a row: under min_requests.
        for t in 0..8u64 {
            b.record(&p, t, t % 2 == 0);
        }
        // 30 s later those eight are out of the 10 s window: 2 of 4 fail,
        // where 6 of 12 would have opened it.
        for t in 0..4u64 {
            b.record(&p, 30_000 + t, t % 2 == 0);
        }
        assert_eq!(b.state(30_010), CircuitState::Closed);
    }
}
