//! A circuit breaker as a pure state machine: the caller passes the time
//! and the policy, so the same breaker keeps its state across a reload that
//! changes the policy, and tests drive it without a clock.
//!
//! ```text
//! Closed --(N consecutive failures, or the error rate over the window)--> Open
//! Open   --(cooldown elapsed: one caller is admitted as the probe)-----> HalfOpen
//! HalfOpen --(probe succeeds)--> Closed      HalfOpen --(probe fails)--> Open
//! ```

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

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Which slice of time it counts (`now / bucket_ms`).
    epoch: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open until this time (ms); 0 = not open.
    open_until: u64,
    /// When the probe in flight was admitted (0 = none).
    probe_since: u64,
    consecutive: u32,
    buckets: [Bucket; BUCKETS],
    /// Times it opened (the admin API shows it).
    opened: u64,
}

/// One breaker (a provider instance, or one of its models).
#[derive(Debug, Default)]
pub struct Breaker {
    inner: Mutex<Inner>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go at `now_ms`.
    pub fn admit(&self, p: &BreakerPolicy, now_ms: u64) -> Admission {
        let mut i = self.lock();
        if i.open_until == 0 {
            return Admission::Allowed;
        }
        if now_ms < i.open_until {
            return Admission::Refused {
                retry_after_ms: i.open_until - now_ms,
            };
        }
        // Half-open. A probe that never reported (its caller went away) is
        // given up on after another cooldown.
        let cooldown = millis(p.cooldown);
        if i.probe_since != 0 && now_ms < i.probe_since.saturating_add(cooldown) {
            return Admission::Refused { retry_after_ms: 1000 };
        }
        i.probe_since = now_ms.max(1);
        Admission::Probe
    }

    /// Gives back a probe that was admitted but not used (another breaker
    /// on the same path refused the call).
    pub fn release_probe(&self) {
        self.lock().probe_since = 0;
    }

    /// Records a call's outcome.
    pub fn record(&self, p: &BreakerPolicy, now_ms: u64, ok: bool) {
        let mut i = self.lock();
        if i.open_until != 0 && now_ms >= i.open_until && i.probe_since != 0 {
            // The probe's answer (or any call admitted before it opened).
            i.probe_since = 0;
            if ok {
                *i = Inner {
                    opened: i.opened,
                    ..Inner::default()
                };
            } else {
                i.open_until = now_ms + millis(p.cooldown);
                i.opened += 1;
            }
            return;
        }
        if i.open_until != 0 {
            // A call admitted before the circuit opened: already counted.
            return;
        }
        let bucket_ms = (millis(p.window) / BUCKETS as u64).max(1);
        let epoch = now_ms / bucket_ms;
        let b = &mut i.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        b.calls += 1;
        if ok {
            i.consecutive = 0;
            return;
        }
        b.failures += 1;
        i.consecutive += 1;
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (calls, failures) = i
            .buckets
            .iter()
            .filter(|b| b.epoch >= oldest && b.calls > 0)
            .fold((0u32, 0u32), |(c, f), b| (c + b.calls, f + b.failures));
        let rate_trips = calls >= p.min_requests.max(1) && f64::from(failures) >= p.error_rate * f64::from(calls);
        if i.consecutive >= p.failures.max(1) || rate_trips {
            i.open_until = now_ms + millis(p.cooldown);
            i.opened += 1;
        }
    }

    /// What it shows at `now_ms`.
    pub fn state(&self, now_ms: u64) -> CircuitState {
        let i = self.lock();
        match i.open_until {
            0 => CircuitState::Closed,
            t if now_ms < t => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Times this breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.lock().opened
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
