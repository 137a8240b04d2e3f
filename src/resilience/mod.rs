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

use breaker::{Admission, Breaker, BreakerPolicy, CircuitState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Model breakers kept per provider; beyond it (callers can name any
/// `provider/model`), only the provider's own breaker applies.
const MAX_MODELS: usize = 1024;

#[derive(Default)]
struct ProviderCircuits {
    own: Arc<Breaker>,
    models: HashMap<String, Arc<Breaker>>,
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

/// The process-wide registry.
pub struct Resilience {
    circuits: RwLock<HashMap<String, ProviderCircuits>>,
    stats: RwLock<HashMap<(String, String), Arc<TargetStats>>>,
    epoch: Instant,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            circuits: RwLock::default(),
            stats: RwLock::default(),
            epoch: Instant::now(),
        }
    }
}

impl Resilience {
    /// Milliseconds since start (never 0).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 4) + 1
    }

    fn breakers(&self, provider: &str, model: &str) -> (Arc<Breaker>, Option<Arc<Breaker>>) {
        {
            let map = self.circuits.read().unwrap_or_else(|p| p.into_inner());
            if let Some(pc) = map.get(provider) {
                if let Some(m) = pc.models.get(model) {
                    return (pc.own.clone(), Some(m.clone()));
                }
                if pc.models.len() >= MAX_MODELS {
                    return (pc.own.clone(), None);
                }
            }
        }
        let mut map = self.circuits.write().unwrap_or_else(|p| p.into_inner());
        let pc = map.entry(provider.to_string()).or_default();
        if pc.models.len() >= MAX_MODELS && !pc.models.contains_key(model) {
            return (pc.own.clone(), None);
        }
        let m = pc.models.entry(model.to_string()).or_default().clone();
        (pc.own.clone(), Some(m))
    }

    /// Whether a call to (`provider`, `model`) may go: both its breakers
    /// must admit it. `Err` carries how long until the next probe, ms.
    pub fn admit(&self, policy: &BreakerPolicy, provider: &str, model: &str) -> Result<(), u64> {
        let now = self.now_ms();
        let (own, model_breaker) = self.breakers(provider, model);
        let m = match &model_breaker {
            Some(b) => b.admit(policy, now),
            None => Admission::Allowed,
        };
        if let Admission::Refused { retry_after_ms } = m {
            return Err(retry_after_ms);
        }
        match own.admit(policy, now) {
            Admission::Refused { retry_after_ms } => {
                if let (Admission::Probe, Some(b)) = (m, &model_breaker) {
                    b.release_probe();
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
    pub fn record(&self, policy: &BreakerPolicy, provider: &str, model: &str, outcome: Outcome) {
        let now = self.now_ms();
        let (own, model_breaker) = self.breakers(provider, model);
        match outcome {
            Outcome::Ok => own.record(policy, now, true),
            Outcome::InstanceFailure => own.record(policy, now, false),
            // Says nothing either way about the instance; a probe it
            // admitted is given back.
            Outcome::ModelFailure => own.release_probe(),
        }
        if let Some(b) = model_breaker {
            b.record(policy, now, outcome == Outcome::Ok);
        }
    }

    /// Every circuit seen, sorted by provider then model (the instance's own
    /// first).
    pub fn circuits(&self) -> Vec<CircuitView> {
        let now = self.now_ms();
        let map = self.circuits.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (name, pc) in map.iter() {
            out.push(CircuitView {
                provider: name.clone(),
                model: None,
                state: pc.own.state(now),
                opened: pc.own.times_opened(),
            });
            for (model, b) in &pc.models {
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

    /// The live numbers of (`provider`, `model`).
    pub fn stats(&self, provider: &str, model: &str) -> Arc<TargetStats> {
        let key = (provider.to_string(), model.to_string());
        if let Some(s) = self.stats.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return s.clone();
        }
        self.stats
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone()
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
        assert_eq!(r.admit(&p, "openai", "gpt-4o"), Ok(()));
        r.record(&p, "openai", "gpt-4o", Outcome::ModelFailure);
        r.record(&p, "openai", "gpt-4o", Outcome::ModelFailure);
        assert!(r.admit(&p, "openai", "gpt-4o").is_err());
        assert_eq!(r.admit(&p, "openai", "gpt-4o-mini"), Ok(()), "other models still go");
        r.record(&p, "openai", "gpt-4o-mini", Outcome::InstanceFailure);
        r.record(&p, "openai", "gpt-4o-mini", Outcome::InstanceFailure);
        assert!(r.admit(&p, "openai", "o3").is_err(), "the instance is open");
        let c = r.circuits();
        assert_eq!(c[0].model, None);
        assert_eq!(c[0].state, CircuitState::Open);
        assert!(c.iter().any(|v| v.model.as_deref() == Some("gpt-4o") && v.opened == 1));
    }

    #[test]
    fn busy_counts_until_dropped_and_latency_averages() {
        let r = Resilience::default();
        let s = r.stats("a", "m");
        let b = Busy::start(s.clone());
        assert_eq!(r.stats("a", "m").busy(), 1);
        drop(b);
        assert_eq!(s.busy(), 0);
        s.observe(1000);
        s.observe(2000);
        assert_eq!(s.latency_us(), 1200);
    }
}
