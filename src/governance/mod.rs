//! Governance: managed keys, rate limits and budgets — who may call, how
//! often, and how much they may spend.
//!
//! * `keys.rs`: the key model, secrets and hashes, the in-memory ring.
//! * `window.rs`: sliding windows and UTC budget periods (pure).
//! * `meters.rs`: the in-process counters and the admission rule.
//! * `rules.rs`: the limits and budgets the config and admin API declare,
//!   and the checks one request must pass.
//!
//! The pipeline asks [`Governance::admit`] once a request is planned (the
//! route's price is needed for a budget's estimate); the [`Ticket`] it gets
//! rides in the request summary and is settled with the real tokens and
//! cost in the logging phase. Nothing here runs when no key, limit or
//! budget is configured.

pub mod keys;
pub mod meters;
#[cfg(test)]
mod parity;
pub mod persist;
pub mod redis;
pub mod resp;
pub mod rules;
mod script;
pub mod shared;
pub mod sync;
pub mod window;

use crate::error::GatewayError;
use arc_swap::ArcSwap;
use keys::{KeyRecord, KeyRing, ManagedKey};
use meters::{Admit, Check, Kind, Meters, Reading};
use rules::Rules;
use shared::{OnError, Shared};
use std::sync::{Arc, OnceLock};

/// Response headers (the same shape as `crate::http::Headers`, named here
/// so this module needs nothing from the HTTP side).
pub type Headers = Vec<(http::HeaderName, http::HeaderValue)>;

/// Nano-USD per USD: budgets count integers.
pub const NANO: f64 = 1e9;

/// Process-wide governance state; survives reloads (keys and rules are
/// swapped in, counters stay).
#[derive(Default)]
pub struct Governance {
    /// Every managed key (config file and admin API).
    pub keys: KeyRing,
    rules: ArcSwap<Rules>,
    meters: Arc<Meters>,
    /// Keys created through the admin API (the store's copy).
    admin_keys: std::sync::Mutex<Vec<KeyRecord>>,
    /// Keys declared in the config file.
    config_keys: std::sync::Mutex<Vec<KeyRecord>>,
    /// Limits and budgets declared in the config file.
    config_rules: std::sync::Mutex<Rules>,
    /// Budgets created through the admin API.
    admin_budgets: std::sync::Mutex<Vec<rules::PathBudget>>,
    /// The Redis backend, when counters are shared by a fleet (set once,
    /// at start).
    shared: OnceLock<Arc<Shared>>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What admission needs to know about a request.
pub struct Ask<'a> {
    /// The managed key, if one was used.
    pub key: Option<&'a ManagedKey>,
    /// Attribution (after the key's narrowing).
    pub user_path: &'a str,
    /// The model name the caller asked for.
    pub model: &'a str,
    /// The first target's provider instance.
    pub provider: Option<&'a str>,
    /// Estimated tokens (input ≈ body characters / 4, plus `max_tokens`).
    pub tokens: i64,
    /// Estimated cost at the first target's price; `None` when unpriced.
    pub nano_usd: Option<i64>,
}

/// An admitted request's claim on the counters, settled when it ends
/// (dropping it unsettled releases it as if nothing was used).
pub struct Ticket {
    meters: Arc<Meters>,
    /// Where the counters are when shared, and this ticket's name there.
    shared: Option<(Arc<Shared>, String)>,
    checks: Vec<Check>,
    at_ms: u64,
    settled: bool,
    /// Response headers: OpenAI's rate-limit headers, budget warnings.
    pub headers: Headers,
    /// Soft-threshold warnings crossed (for the live log).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("checks", &self.checks.len()).finish()
    }
}

impl Ticket {
    /// Ends the request with what it really used.
    pub fn settle(mut self, tokens: u64, cost_usd: Option<f64>) {
        self.finish(tokens, cost_usd);
    }

    fn finish(&mut self, tokens: u64, cost_usd: Option<f64>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let nano = cost_usd.map_or(0, |c| (c * NANO).round() as i64);
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        match &self.shared {
            Some((sh, name)) => sh.settle(&self.checks, name, self.at_ms, now_ms(), tokens, nano),
            None => self.meters.settle(&self.checks, self.at_ms, now_ms(), tokens, nano),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(0, None);
    }
}

impl Governance {
    /// Installs the config's keys and rules (start and every reload).
    pub fn configure(&self, config_keys: Vec<KeyRecord>, rules: Rules) {
        *lock(&self.config_rules) = rules;
        *lock(&self.config_keys) = config_keys;
        self.rebuild_rules();
        self.rebuild_ring();
    }

    /// Installs the admin API's budgets (loaded from the store, or after a
    /// change).
    pub fn set_admin_budgets(&self, budgets: Vec<rules::PathBudget>) {
        *lock(&self.admin_budgets) = budgets;
        self.rebuild_rules();
    }

    /// The admin API's budgets.
    pub fn admin_budgets(&self) -> Vec<rules::PathBudget> {
        lock(&self.admin_budgets).clone()
    }

    /// The admin API's keys.
    pub fn admin_keys(&self) -> Vec<KeyRecord> {
        lock(&self.admin_keys).clone()
    }

    fn rebuild_rules(&self) {
        let r = lock(&self.config_rules).with_budgets(&lock(&self.admin_budgets));
        self.rules.store(Arc::new(r));
    }

    /// Installs the admin API's keys (loaded from the store, or after a
    /// change).
    pub fn set_admin_keys(&self, keys: Vec<KeyRecord>) {
        *lock(&self.admin_keys) = keys;
        self.rebuild_ring();
    }

    fn rebuild_ring(&self) {
        let mut all = lock(&self.config_keys).clone();
        all.extend(lock(&self.admin_keys).iter().cloned());
        self.keys.set(all);
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.load_full()
    }

    /// Whether admission has anything to check (false: skip it entirely).
    pub fn active(&self) -> bool {
        self.rules.load().any() || !self.keys.is_empty()
    }

    /// Shares the counters through Redis from now on (at start, before
    /// requests; once).
    pub fn share(&self, backend: Arc<Shared>) {
        let _ = self.shared.set(backend);
    }

    /// The Redis backend, when counters are shared.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.get()
    }

    /// Admits or refuses one request against every limit and budget that
    /// covers it. `None` when nothing covers it (or, failing open, when the
    /// shared backend did not answer).
    pub async fn admit(&self, ask: &Ask<'_>) -> Result<Option<Ticket>, GatewayError> {
        let checks = self.rules.load().checks(ask);
        if checks.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let (outcome, shared) = match self.shared.get() {
            None => (self.meters.admit(&checks, now), None),
            Some(sh) => {
                let name = sh.ticket();
                // Boxed: the Redis call's state would otherwise enlarge
                // every request's future, in-process ones too (each move
                // of it copies the bytes).
                match Box::pin(sh.admit(&checks, now, &name)).await {
                    Ok(a) => (a, Some((sh.clone(), name))),
                    Err(e) => {
                        sh.failed("admission", &e);
                        return match sh.on_error() {
                            OnError::FailOpen => Ok(None),
                            OnError::FailClosed => Err(GatewayError::LimiterUnavailable),
                        };
                    }
                }
            }
        };
        match outcome {
            Admit::Yes(readings) => {
                let (headers, warnings) = rules::headers(&checks, &readings);
                Ok(Some(Ticket {
                    meters: self.meters.clone(),
                    shared,
                    checks,
                    at_ms: now,
                    settled: false,
                    headers,
                    warnings,
                }))
            }
            Admit::No(i, r) => Err(refusal(&checks[i], &r)),
        }
    }
}

/// The error for check `c` refusing with reading `r`.
fn refusal(c: &Check, r: &Reading) -> GatewayError {
    let retry_after_s = r.reset_ms.div_ceil(1000).max(1);
    let scope = c.scope.to_string();
    let limit = u64::try_from(c.limit).unwrap_or(0);
    match c.kind {
        Kind::Requests => GatewayError::RateLimited {
            scope,
            what: "requests",
            limit,
            retry_after_s,
        },
        Kind::Tokens => GatewayError::RateLimited {
            scope,
            what: "tokens",
            limit,
            retry_after_s,
        },
        Kind::Concurrency => GatewayError::RateLimited {
            scope,
            what: "concurrency",
            limit,
            retry_after_s,
        },
        Kind::Usd(p) => GatewayError::BudgetExceeded {
            scope,
            period: p.label(),
            spent: format!(
                "${:.4} of ${:.4}",
                (r.used + r.reserved) as f64 / NANO,
                c.limit as f64 / NANO
            ),
            retry_after_s,
        },
        Kind::BudgetTokens(p) => GatewayError::BudgetExceeded {
            scope,
            period: p.label(),
            spent: format!("{} of {} tokens", r.used + r.reserved, c.limit),
            retry_after_s,
        },
    }
}

/// Wall-clock Unix milliseconds (budget periods are calendar periods).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What `GET /v1/usage` says about key `k`: its limits with what is used
/// and left this minute (or in flight), and its budget's spend this
/// period with what is left and when it resets.
pub async fn usage_view(gov: &Governance, k: &ManagedKey, now: u64) -> serde_json::Value {
    use serde_json::json;
    let (id, n, l) = (&k.rec.id, &k.names, &k.rec.limits);
    let period = k.rec.budget.as_ref().map_or(window::Period::Day, |b| b.period);
    let items: [(&str, Kind); 6] = [
        (&n.rpm, Kind::Requests),
        (&n.tpm, Kind::Tokens),
        (&n.concurrency, Kind::Concurrency),
        (&n.usd, Kind::Usd(period)),
        (&n.tokens, Kind::BudgetTokens(period)),
        (&n.unpriced, Kind::BudgetTokens(period)),
    ];
    let r = gov.read(&items, now).await;
    let mut limits = serde_json::Map::new();
    for (i, (name, limit)) in [("rpm", l.rpm), ("tpm", l.tpm), ("concurrency", l.concurrency)]
        .into_iter()
        .enumerate()
    {
        if let Some(limit) = limit {
            let used = u64::try_from(r[i].0).unwrap_or(0);
            limits.insert(
                name.into(),
                json!({"limit": limit, "used": used, "remaining": limit.saturating_sub(used)}),
            );
        }
    }
    let mut out = json!({
        "object": "usage",
        "key": {"id": id, "name": k.rec.name, "user_path": k.rec.user_path},
        "limits": limits,
        "budget": null,
    });
    if let Some(b) = &k.rec.budget {
        let ((usd_used, usd_res), (tok_used, tok_res), (unpriced, _)) = (r[3], r[4], r[5]);
        let resets = b.period.bounds(now).map(|(_, end)| (end - now).div_ceil(1000));
        out["period"] = json!(b.period.label());
        out["spend_usd"] = json!(usd_used as f64 / NANO);
        out["tokens"] = json!(tok_used.max(unpriced));
        out["budget"] = json!({
            "usd": b.usd,
            "tokens": b.tokens,
            "period": b.period.label(),
            "remaining_usd": b.usd.map(|u| (u - (usd_used + usd_res) as f64 / NANO).max(0.0)),
            "remaining_tokens": b.tokens.map(|t| t.saturating_sub(u64::try_from(tok_used + tok_res).unwrap_or(0))),
            "reserved_usd": usd_res as f64 / NANO,
            "resets_in_seconds": resets,
        });
    }
    out
}

impl Governance {
    /// Used and reserved of each counter now, wherever counters live (for
    /// `/v1/usage` and the admin API); zeros when it never counted, or when
    /// the shared backend does not answer.
    pub async fn read(&self, items: &[(&str, Kind)], now: u64) -> Vec<(i64, i64)> {
        match self.shared.get() {
            None => items.iter().map(|(m, k)| self.meters.read(m, *k, now)).collect(),
            Some(sh) => match sh.read(items, now).await {
                Ok(v) => v,
                Err(e) => {
                    sh.failed("reading counters", &e);
                    vec![(0, 0); items.len()]
                }
            },
        }
    }
}

impl Governance {
    /// Loads the admin API's keys and budgets and the spend counters from
    /// `dir` (start-up, before requests). A damaged file is an error: the
    /// gateway must not start without keys it issued or with spend reset.
    pub fn load(&self, dir: &std::path::Path) -> Result<persist::SpendState, String> {
        let admin = persist::load_admin(dir)?;
        self.set_admin_keys(admin.keys);
        self.set_admin_budgets(admin.budgets);
        let spend = persist::load_spend(dir)?;
        for (name, m) in &spend.meters {
            self.meters.restore(name.as_str().into(), m.clone());
        }
        self.keys.restore_last_used(&spend.last_used);
        Ok(spend)
    }
}

/// Writes changed budget spend and keys' last use to the data dir once a
/// second, and once more on shutdown.
pub struct Saver {
    /// The governance state.
    pub gov: Arc<Governance>,
    /// Where `spend.json` lives.
    pub dir: std::path::PathBuf,
    /// What was loaded at start (all counters, updated as they change).
    pub state: std::sync::Mutex<persist::SpendState>,
}

impl Saver {
    /// Writes if anything changed since the last write.
    pub fn save_changes(&self) {
        let dirty = self.gov.meters.take_dirty();
        let used: Vec<(String, u64)> = self
            .gov
            .keys
            .all()
            .iter()
            .map(|k| {
                (
                    k.rec.id.clone(),
                    k.last_used_ms.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .filter(|(_, t)| *t > 0)
            .collect();
        let mut st = lock(&self.state);
        let mut changed = !dirty.is_empty();
        for (name, m) in dirty {
            st.meters.insert(name.to_string(), m);
        }
        for (id, t) in used {
            // Last use is kept to the second: no write per request.
            let old = st.last_used.get(&id).copied().unwrap_or(0);
            if t / 1000 != old / 1000 {
                st.last_used.insert(id, t);
                changed = true;
            }
        }
        if changed {
            if let Err(e) = persist::save_spend(&self.dir, &st) {
                log::error!("governance: {e}");
            }
        }
    }
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for Saver {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => self.save_changes(),
                _ = shutdown.changed() => break,
            }
        }
        self.save_changes();
    }
}
