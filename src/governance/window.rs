//! Time arithmetic for limits and budgets, pure: every function is given
//! the time, so tests drive the clock.
//!
//! * [`Window`]: a sliding window of 60 buckets (one second each for the
//!   per-minute limits). A count stays in the window for one full window
//!   after the bucket it fell in began, so "at most N in any minute" holds
//!   exactly — an admission counts up to one bucket longer, never shorter.
//!   Memory is fixed (60 pairs), whatever the rate.
//! * [`Period`]: UTC-anchored budget periods (hour, day, ISO week, month)
//!   and rolling windows, with their start and end.

use serde::{Deserialize, Serialize};

/// Buckets in a window.
pub const BUCKETS: usize = 60;

/// Counts over the last `BUCKETS` buckets of `width_ms` each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    width_ms: u64,
    /// Bucket number (time / width) each slot holds.
    slots: Vec<u64>,
    counts: Vec<i64>,
}

impl Window {
    /// An empty window spanning `span_ms` (60 buckets of `span_ms / 60`).
    pub fn new(span_ms: u64) -> Window {
        Window {
            width_ms: (span_ms / BUCKETS as u64).max(1),
            slots: vec![u64::MAX; BUCKETS],
            counts: vec![0; BUCKETS],
        }
    }

    /// The bucket number of time `ms`.
    pub fn bucket_of(&self, ms: u64) -> u64 {
        ms / self.width_ms
    }

    fn live(&self, slot: u64, now_bucket: u64) -> bool {
        slot != u64::MAX && slot <= now_bucket && now_bucket - slot < BUCKETS as u64
    }

    /// The sum over the window ending at `now_ms`.
    pub fn total(&self, now_ms: u64) -> i64 {
        // One comparison pair per bucket and no early exits (every
        // admission sums a window): a bucket is live when
        // `b - 59 <= slot <= b`; the empty mark `u64::MAX` is never `<= b`.
        let b = self.bucket_of(now_ms);
        let oldest = b.saturating_sub(BUCKETS as u64 - 1);
        self.slots
            .iter()
            .zip(&self.counts)
            .map(|(&s, &c)| if s >= oldest && s <= b { c } else { 0 })
            .sum()
    }

    /// Adds `n` (may be negative) to the bucket of `at_ms`, if that bucket
    /// is still in the window ending at `now_ms` (a late correction to an
    /// expired bucket changes nothing: it already left the window).
    pub fn add(&mut self, at_ms: u64, now_ms: u64, n: i64) {
        let b = self.bucket_of(at_ms);
        if !self.live(b, self.bucket_of(now_ms)) {
            return;
        }
        let i = (b % BUCKETS as u64) as usize;
        if self.slots[i] != b {
            self.slots[i] = b;
            self.counts[i] = 0;
        }
        self.counts[i] += n;
    }

    /// Milliseconds from `now_ms` until the window's total has dropped to
    /// `target` or below (0 when it already has): the oldest buckets leave
    /// first.
    pub fn ms_until_at_most(&self, now_ms: u64, target: i64) -> u64 {
        let b = self.bucket_of(now_ms);
        let mut total = self.total(now_ms);
        if total <= target {
            return 0;
        }
        let mut live: Vec<(u64, i64)> = self
            .slots
            .iter()
            .zip(&self.counts)
            .filter(|(s, _)| self.live(**s, b))
            .map(|(s, c)| (*s, *c))
            .collect();
        live.sort_unstable();
        for (slot, c) in live {
            total -= c;
            if total <= target {
                // The bucket leaves when the window no longer reaches it.
                let leaves = (slot + BUCKETS as u64) * self.width_ms;
                return leaves.saturating_sub(now_ms);
            }
        }
        0
    }

    /// Milliseconds until what is counted now leaves the window (when the
    /// current bucket does).
    pub fn ms_until_leaves(&self, now_ms: u64) -> u64 {
        ((self.bucket_of(now_ms) + BUCKETS as u64) * self.width_ms).saturating_sub(now_ms)
    }

    /// Milliseconds until every count has left the window: when the
    /// newest non-empty bucket leaves (no allocation: every admitted
    /// request's reset header is this).
    pub fn ms_until_empty(&self, now_ms: u64) -> u64 {
        let b = self.bucket_of(now_ms);
        self.slots
            .iter()
            .zip(&self.counts)
            .filter(|(s, c)| **c != 0 && self.live(**s, b))
            .map(|(s, _)| *s)
            .max()
            .map_or(0, |newest| {
                ((newest + BUCKETS as u64) * self.width_ms).saturating_sub(now_ms)
            })
    }
}

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From the top of each UTC hour.
    Hour,
    /// From each UTC midnight.
    Day,
    /// From each Monday 00:00 UTC (ISO week).
    Week,
    /// From the first of each month, 00:00 UTC.
    Month,
    /// The last N milliseconds, sliding.
    Rolling(u64),
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

impl Period {
    /// Parses `hour`, `day`, `week`, `month`, or a rolling window written
    /// as a duration (`30m`, `24h`, `7d`).
    pub fn parse(s: &str) -> Result<Period, String> {
        match s {
            "hour" => Ok(Period::Hour),
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => {
                let bad = || format!("`{s}` is not a period: hour, day, week, month, or a rolling window like 24h");
                let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
                let n: u64 = num.parse().map_err(|_| bad())?;
                let unit_ms = match unit {
                    "s" => 1000,
                    "m" => 60_000,
                    "h" => HOUR_MS,
                    "d" => DAY_MS,
                    _ => return Err(bad()),
                };
                let ms = n.checked_mul(unit_ms).filter(|ms| (60_000..=366 * DAY_MS).contains(ms));
                ms.map(Period::Rolling)
                    .ok_or_else(|| format!("rolling window `{s}` must be between 1m and 366d"))
            }
        }
    }

    /// The text [`Period::parse`] reads.
    pub fn label(&self) -> String {
        match self {
            Period::Hour => "hour".into(),
            Period::Day => "day".into(),
            Period::Week => "week".into(),
            Period::Month => "month".into(),
            Period::Rolling(ms) if ms % DAY_MS == 0 => format!("{}d", ms / DAY_MS),
            Period::Rolling(ms) if ms % HOUR_MS == 0 => format!("{}h", ms / HOUR_MS),
            Period::Rolling(ms) if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
            Period::Rolling(ms) => format!("{}s", ms / 1000),
        }
    }

    /// The calendar period holding `now_ms`: (start, end) in Unix ms;
    /// `None` for a rolling window.
    pub fn bounds(&self, now_ms: u64) -> Option<(u64, u64)> {
        match self {
            Period::Hour => {
                let s = now_ms - now_ms % HOUR_MS;
                Some((s, s + HOUR_MS))
            }
            Period::Day => {
                let s = now_ms - now_ms % DAY_MS;
                Some((s, s + DAY_MS))
            }
            Period::Week => {
                let day = now_ms / DAY_MS;
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let monday = day - (day + 3) % 7;
                Some((monday * DAY_MS, (monday + 7) * DAY_MS))
            }
            Period::Month => {
                let (y, m, _) = civil_from_days((now_ms / DAY_MS) as i64);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, nm, 1);
                Some((start as u64 * DAY_MS, end as u64 * DAY_MS))
            }
            Period::Rolling(_) => None,
        }
    }
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_stays_in_the_window_for_a_full_minute_then_leaves() {
        let mut w = Window::new(60_000);
        w.add(10_500, 10_500, 1);
        w.add(11_200, 11_200, 2);
        assert_eq!(w.total(11_200), 3);
        assert_eq!(w.total(69_999), 3, "still inside the minute of the first bucket");
        assert_eq!(w.total(70_000), 2, "the 10 s bucket left at 70 s");
        assert_eq!(w.total(71_000), 0);
        // Oldest first: to get down to 2 the 10 s bucket must leave.
        assert_eq!(w.ms_until_at_most(11_200, 2), 70_000 - 11_200);
        assert_eq!(w.ms_until_empty(11_200), 71_000 - 11_200);
        assert_eq!(w.ms_until_at_most(11_200, 3), 0);
    }

    #[test]
    fn the_total_is_the_sum_of_the_live_buckets_at_every_moment() {
        // A deterministic walk: adds at and behind "now", read back at and
        // after it, checked against the definition of a live bucket.
        let mut w = Window::new(60_000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 0;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            now += x % 3_000;
            let at = now.saturating_sub(x % 70_000);
            w.add(at, now, (x % 7) as i64 - 2);
            let read = now + x % 90_000;
            let b = w.bucket_of(read);
            let expect: i64 = (0..BUCKETS)
                .filter(|&i| w.live(w.slots[i], b))
                .map(|i| w.counts[i])
                .sum();
            assert_eq!(w.total(read), expect, "at {read}");
        }
    }

    #[test]
    fn slots_are_reused_and_late_corrections_to_expired_buckets_are_ignored() {
        let mut w = Window::new(60_000);
        w.add(1_000, 1_000, 5);
        // 60 s later the same slot holds a new bucket: the old count is gone.
        w.add(61_000, 61_000, 1);
        assert_eq!(w.total(61_000), 1);
        w.add(1_000, 61_000, -5);
        assert_eq!(w.total(61_000), 1, "bucket 1 already left the window");
        w.add(61_000, 61_500, 4);
        assert_eq!(w.total(61_500), 5);
    }

    #[test]
    fn periods_are_utc_anchored() {
        // 2026-12-03T17:49:21Z (a Thursday).
        let now = 1_796_320_161_000;
        let (d0, d1) = Period::Day.bounds(now).unwrap();
        assert_eq!((d0, d1 - d0), (1_796_256_000_000, DAY_MS));
        let (h0, _) = Period::Hour.bounds(now).unwrap();
        assert_eq!(h0, 1_796_320_800_000 - HOUR_MS);
        // The week began Monday 2026-11-30.
        let (w0, w1) = Period::Week.bounds(now).unwrap();
        assert_eq!(w0, d0 - 3 * DAY_MS);
        assert_eq!(w1 - w0, 7 * DAY_MS);
        // December 2026 has 31 days; November 30.
        let (m0, m1) = Period::Month.bounds(now).unwrap();
        assert_eq!(m0, d0 - 2 * DAY_MS);
        assert_eq!(m1 - m0, 31 * DAY_MS);
        let (n0, n1) = Period::Month.bounds(m0 - 1).unwrap();
        assert_eq!((n1, n1 - n0), (m0, 30 * DAY_MS));
        // A leap February.
        let feb = days_from_civil(2028, 2, 10) as u64 * DAY_MS;
        let (f0, f1) = Period::Month.bounds(feb).unwrap();
        assert_eq!(f1 - f0, 29 * DAY_MS);
        assert_eq!(civil_from_days(days_from_civil(2026, 12, 3)), (2026, 12, 3));
    }

    #[test]
    fn periods_parse_and_print() {
        for s in ["hour", "day", "week", "month", "36h", "30m", "7d"] {
            assert_eq!(Period::parse(s).unwrap().label(), s);
        }
        assert_eq!(Period::parse("24h"), Ok(Period::Rolling(DAY_MS)));
        for bad in ["", "fortnight", "5x", "10s", "400d", "h"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }
}
