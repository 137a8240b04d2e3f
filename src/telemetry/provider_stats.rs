//! Recent per-provider health for `/admin/providers/status`: a fixed ring of
//! the last [`RING`] upstream calls per provider (time, latency, success),
//! written lock-free from the request path and summarised on demand.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Samples kept per provider.
pub const RING: usize = 1024;

/// One provider's ring. A slot packs `ts_seconds << 32 | latency_ms << 1 |
/// ok` into one atomic, so writers never lock and readers never see a torn
/// sample (0 = empty).
struct Ring {
    slots: Box<[AtomicU64]>,
    head: AtomicUsize,
    last_success_ms: AtomicU64,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicUsize::new(0),
            last_success_ms: AtomicU64::new(0),
        }
    }
}

/// A provider's health over the recent window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProviderWindow {
    /// Calls in the window.
    pub samples: u64,
    /// Failed calls in the window.
    pub errors: u64,
    /// Median latency, ms (`None` without samples).
    pub p50_ms: Option<u64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<u64>,
    /// Last successful call ever seen (Unix ms), if any.
    pub last_success_ms: Option<u64>,
}

/// Per-provider rings, keyed by provider instance name.
#[derive(Default)]
pub struct ProviderStats {
    rings: ArcSwap<HashMap<String, Arc<Ring>>>,
}

impl ProviderStats {
    /// Empty stats.
    pub fn new() -> Self {
        Self::default()
    }

    fn ring(&self, provider: &str) -> Arc<Ring> {
        if let Some(r) = self.rings.load().get(provider) {
            return r.clone();
        }
        // First call for this provider: copy-on-write insert (rare).
        let mut out = None;
        self.rings.rcu(|cur| {
            let mut next = HashMap::clone(cur);
            let r = next
                .entry(provider.to_string())
                .or_insert_with(|| Arc::new(Ring::new()))
                .clone();
            out = Some(r);
            next
        });
        out.unwrap_or_else(|| Arc::new(Ring::new()))
    }

    /// Records one upstream call (from the `logging` phase).
    pub fn observe(&self, provider: &str, latency_ms: u64, ok: bool, ts_ms: u64) {
        if provider.is_empty() {
            return;
        }
        let r = self.ring(provider);
        let ts_s = (ts_ms / 1000).clamp(1, u64::from(u32::MAX));
        let lat = latency_ms.min((1 << 31) - 1);
        let packed = (ts_s << 32) | (lat << 1) | u64::from(ok);
        let i = r.head.fetch_add(1, Ordering::Relaxed) % RING;
        if let Some(slot) = r.slots.get(i) {
            slot.store(packed, Ordering::Relaxed);
        }
        if ok {
            r.last_success_ms.fetch_max(ts_ms, Ordering::Relaxed);
        }
    }

    /// Summary of the samples no older than `window_ms` before `now_ms`.
    pub fn window(&self, provider: &str, now_ms: u64, window_ms: u64) -> ProviderWindow {
        let Some(r) = self.rings.load().get(provider).cloned() else {
            return ProviderWindow::default();
        };
        let since_s = now_ms.saturating_sub(window_ms) / 1000;
        let mut lat = Vec::with_capacity(RING);
        let mut errors = 0;
        for s in r.slots.iter() {
            let v = s.load(Ordering::Relaxed);
            if v == 0 || (v >> 32) < since_s {
                continue;
            }
            lat.push((v & 0xffff_ffff) >> 1);
            if v & 1 == 0 {
                errors += 1;
            }
        }
        lat.sort_unstable();
        let pct = |p: f64| -> Option<u64> {
            if lat.is_empty() {
                return None;
            }
            // Nearest rank.
            let rank = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
            lat.get(rank - 1).copied()
        };
        let last = r.last_success_ms.load(Ordering::Relaxed);
        ProviderWindow {
            samples: lat.len() as u64,
            errors,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            last_success_ms: (last > 0).then_some(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_errors_and_window() {
        let s = ProviderStats::new();
        let now = 1_700_000_000_000;
        for i in 1..=100u64 {
            s.observe("openai", i, i % 10 != 0, now - 1000);
        }
        s.observe("openai", 5000, true, now - 3_600_000); // outside the window
        let w = s.window("openai", now, 60_000);
        assert_eq!(w.samples, 100);
        assert_eq!(w.errors, 10);
        assert_eq!(w.p50_ms, Some(50));
        assert_eq!(w.p99_ms, Some(99));
        assert_eq!(w.last_success_ms, Some(now - 1000));
        assert_eq!(s.window("nobody", now, 60_000), ProviderWindow::default());
    }

    #[test]
    fn ring_keeps_only_the_newest_samples() {
        let s = ProviderStats::new();
        let now = 1_700_000_000_000;
        for _ in 0..RING {
            s.observe("p", 1, false, now);
        }
        for _ in 0..RING {
            s.observe("p", 7, true, now);
        }
        let w = s.window("p", now, 60_000);
        assert_eq!((w.samples, w.errors, w.p99_ms), (RING as u64, 0, Some(7)));
    }
}
