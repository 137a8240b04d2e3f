//! What the gateway learns about its targets while it runs: circuit
//! breakers per provider instance and per (provider, model), and the live
//! numbers virtual models balance on (time to the response head, requests
//! in flight). Kept by name, outside the config snapshot, so a reload keeps
//! what was learnt; the policies come from the snapshot at each call.
//!
//! Nothing here is touched for a provider without `circuit_breaker:` or a
//! request outside a balancing virtual model.

pub mod balance;
pub mod breaker;

use arc_swap::ArcSwap;
use breaker::{Admission, Breaker, BreakerPolicy, CircuitState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Model breakers kept per provider; beyond it (callers can name any
/// `provider/model`), only the provider's own breaker applies.
const MAX_MODELS: usize = 1024;

/// What was learnt about one provider instance: its breakers (its own and
/// one per model) and its models' balancing numbers. A `Provider` keeps an
/// `Arc` of its instance's (fetched by name once), so a call reads them
/// without a registry lookup, and a reload's new `Provider` finds the same
/// state.
#[derive(Debug, Default)]
pub struct Circuits {
    own: Breaker,
    models: ArcSwap<HashMap<String, Arc<Breaker>>>,
    stats: ArcSwap<HashMap<String, Arc<TargetStats>>>,
}

impl Circuits {
    /// The live numbers of `model` on this instance (virtual-model members
    /// only, so the set is bounded by the config).
    pub fn stats(&self, model: &str) -> Arc<TargetStats> {
        if let Some(s) = self.stats.load().get(model) {
            return s.clone();
        }
        let mut out = None;
        self.stats.rcu(|map| {
            let mut map = HashMap::clone(map);
            out = Some(map.entry(model.to_string()).or_default().clone());
            map
        });
        out.unwrap_or_default()
    }

    /// Runs `f` on `model`'s breaker, adding it if there is room.
    fn with_model<R>(&self, model: &str, f: impl FnOnce(Option<&Breaker>) -> R) -> R {
        if let Some(b) = self.models.load().get(model) {
            return f(Some(b));
        }
        let mut added = None;
        self.models.rcu(|map| {
            let mut map = HashMap::clone(map);
            if map.len() < MAX_MODELS || map.contains_key(model) {
                added = Some(map.entry(model.to_string()).or_default().clone());
            }
            map
        });
        f(added.as_deref())
    }

    /// Whether a call to `model` may go at `now`: both breakers must admit
    /// it. `Err` carries how long until the next probe, ms.
    pub fn admit(&self, policy: &BreakerPolicy, model: &str, now: u64) -> Result<(), u64> {
        let m = self.with_model(model, |b| b.map_or(Admission::Allowed, |b| b.admit(policy, now)));
        if let Admission::Refused { retry_after_ms } = m {
            return Err(retry_after_ms);
        }
        match self.own.admit(policy, now) {
            Admission::Refused { retry_after_ms } => {
                if m == Admission::Probe {
                    self.with_model(model, |b| b.map(Breaker::release_probe));
                }
                Err(retry_after_ms)
            }
            Admission::Allowed | Admission::Probe => Ok(()),
        }
    }

    /// Records the outcome of an admitted call. A model's failure (an
    /// error status) counts against that model only; the instance's
    /// breaker counts what says the instance itself is down (connect
    /// errors, timeouts), so one broken model does not close off the rest.
    pub fn record(&self, policy: &BreakerPolicy, model: &str, now: u64, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.own.record(policy, now, true),
            Outcome::InstanceFailure => self.own.record(policy, now, false),
            // Says nothing either way about the instance; a probe it
            // admitted is given back.
            Outcome::ModelFailure => self.own.release_probe(),
        }
        self.with_model(model, |b| {
            if let Some(b) = b {
                b.record(policy, now, outcome == Outcome::Ok);
            }
        });
    }
}

/// Live numbers of one (provider, model) target.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Moving average of time to the response head, µs (0 = unmeasured).
    latency_us: AtomicU64,
    /// Requests in flight, streams until their last byte.
    busy: AtomicU32,
}

impl TargetStats {
    /// Folds one time to the response head into the average (weight 1/5).
    pub fn observe(&self, micros: u64) {
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros.max(1)
        } else {
            (old * 4 + micros) / 5
        };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }

    /// The average, µs.
    pub fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }

    /// Requests in flight.
    pub fn busy(&self) -> u32 {
        self.busy.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight on a target until dropped.
#[derive(Debug)]
pub struct Busy(Arc<TargetStats>);

impl Busy {
    /// Starts counting.
    pub fn start(stats: Arc<TargetStats>) -> Busy {
        stats.busy.fetch_add(1, Ordering::Relaxed);
        Busy(stats)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one call said about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (any status a healthy provider gives).
    Ok,
    /// The model failed (500, 502, 503, 504, 529).
    ModelFailure,
    /// The instance could not be reached or did not answer in time.
    InstanceFailure,
}

/// A circuit as the admin API and the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitView {
    /// Provider instance.
    pub provider: String,
    /// The model, or `None` for the instance's own breaker.
    pub model: Option<String>,
    /// Its state now.
    pub state: CircuitState,
    /// Times it has opened since start.
    pub opened: u64,
}

/// Milliseconds on a process-wide monotonic clock (never 0): the time
/// breakers and key cooldowns are kept in.
pub fn clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let e = EPOCH.get_or_init(Instant::now);
    u64::try_from(e.elapsed().as_millis()).unwrap_or(u64::MAX / 4) + 1
}

/// The process-wide registry.
#[derive(Default)]
pub struct Resilience {
    circuits: Mutex<HashMap<String, Arc<Circuits>>>,
}

impl Resilience {
    /// Now on [`clock_ms`].
    pub fn now_ms(&self) -> u64 {
        clock_ms()
    }

    /// The circuits of provider instance `name` (created on first use).
    pub fn circuits_of(&self, name: &str) -> Arc<Circuits> {
        let mut map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_string()).or_default().clone()
    }

    /// Every circuit seen, sorted by provider then model (the instance's own
    /// first).
    pub fn circuits(&self) -> Vec<CircuitView> {
        let now = self.now_ms();
        let map = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (name, pc) in map.iter() {
            out.push(CircuitView {
                provider: name.clone(),
                model: None,
                state: pc.own.state(now),
                opened: pc.own.times_opened(),
            });
            for (model, b) in pc.models.load().iter() {
                out.push(CircuitView {
                    provider: name.clone(),
                    model: Some(model.clone()),
                    state: b.state(now),
                    opened: b.times_opened(),
                });
            }
        }
        out.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_model_opens_its_own_circuit_and_an_unreachable_instance_all_of_them() {
        let r = Resilience::default();
        let p = BreakerPolicy {
            failures: 2,
            ..BreakerPolicy::default()
        };
        let c = r.circuits_of("openai");
        assert!(Arc::ptr_eq(&c, &r.circuits_of("openai")), "one state per instance name");
        let now = r.now_ms();
        assert_eq!(c.admit(&p, "gpt-4o", now), Ok(()));
        c.record(&p, "gpt-4o", now, Outcome::ModelFailure);
        c.record(&p, "gpt-4o", now, Outcome::ModelFailure);
        assert!(c.admit(&p, "gpt-4o", now).is_err());
        assert_eq!(c.admit(&p, "gpt-4o-mini", now), Ok(()), "other models still go");
        c.record(&p, "gpt-4o-mini", now, Outcome::InstanceFailure);
        c.record(&p, "gpt-4o-mini", now, Outcome::InstanceFailure);
        assert!(c.admit(&p, "o3", now).is_err(), "the instance is open");
        let c = r.circuits();
        assert_eq!(c[0].model, None);
        assert_eq!(c[0].state, CircuitState::Open);
        assert!(c.iter().any(|v| v.model.as_deref() == Some("gpt-4o") && v.opened == 1));
    }

    #[test]
    fn busy_counts_until_dropped_and_latency_averages() {
        let r = Resilience::default();
        let s = r.circuits_of("a").stats("m");
        let b = Busy::start(s.clone());
        assert_eq!(r.circuits_of("a").stats("m").busy(), 1);
        drop(b);
        assert_eq!(s.busy(), 0);
        s.observe(1000);
        s.observe(2000);
        assert_eq!(s.latency_us(), 1200);
    }
}
