//! `/admin/keys` and `/admin/budgets`: managed keys (created, listed,
//! changed, revoked, rotated) and user-path budgets. Secrets are shown once,
//! in the answer that created them; only their hashes are kept, and no
//! answer shows a hash. Every change is also an audit entry (the caller
//! records it: see `serve.rs`).

use super::{AdminError, AdminResponse};
use crate::config::governance::{check_key_fields, parse_time};
use crate::governance::keys::{hash_secret, new_id, new_secret, BudgetSpec, KeyRecord, Limits, Previous, Source};
use crate::governance::persist::{save_admin, AdminState};
use crate::governance::rules::PathBudget;
use crate::governance::{now_ms, Governance};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// What an admin change did, for its audit entry.
pub type Change = Option<String>;

/// A timestamp given as a string (`2026-12-31`, RFC 3339 UTC) or Unix
/// seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum When {
    Secs(u64),
    Text(String),
}

impl When {
    fn ms(&self) -> Result<u64, AdminError> {
        match self {
            When::Secs(s) => Ok(s.saturating_mul(1000)),
            When::Text(t) => parse_time(t).map_err(|m| bad("expires_at", m)),
        }
    }
}

/// The body of `POST /admin/keys` and `PATCH /admin/keys/{id}` (every field
/// optional on PATCH; `null` clears an optional one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    user_path: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    models: Option<Vec<String>>,
    endpoints: Option<Vec<String>>,
    #[serde(default, with = "double_option")]
    expires_at: Option<Option<When>>,
    disabled: Option<bool>,
    admin: Option<bool>,
    limits: Option<Limits>,
    #[serde(default, with = "double_option")]
    budget: Option<Option<BudgetSpec>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn bad(param: &str, message: impl Into<String>) -> AdminError {
    AdminError::BadParam {
        param: param.into(),
        message: message.into(),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AdminError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| bad("body", format!("invalid JSON body: {e}")))
}

/// How the admin API shows a key: everything but its hash.
pub fn key_view(k: &KeyRecord, last_used_ms: u64) -> Value {
    json!({
        "id": k.id, "object": "key", "name": k.name, "hint": k.hint,
        "user_path": k.user_path,
        "tags": k.tags.iter().cloned().collect::<BTreeMap<_, _>>(),
        "models": k.models, "endpoints": k.endpoints,
        "expires_at_ms": k.expires_at_ms, "disabled": k.disabled, "admin": k.admin,
        "created_ms": k.created_ms,
        "last_used_ms": (last_used_ms > 0).then_some(last_used_ms),
        "limits": k.limits, "budget": k.budget,
        "rotating_until_ms": k.previous.as_ref().map(|p| p.until_ms),
        "source": k.source,
    })
}

fn apply(rec: &mut KeyRecord, b: KeyBody) -> Result<(), AdminError> {
    check_key_fields(
        b.user_path.as_deref(),
        b.endpoints.as_deref(),
        b.budget.as_ref().and_then(|b| b.as_ref()),
    )
    .map_err(|(f, m)| bad(&f, m))?;
    if let Some(n) = b.name {
        if n.trim().is_empty() {
            return Err(bad("name", "`name` must not be empty"));
        }
        rec.name = n;
    }
    if let Some(p) = b.user_path {
        rec.user_path = p;
    }
    if let Some(t) = b.tags {
        rec.tags = t.into_iter().collect();
    }
    if let Some(m) = b.models {
        rec.models = m;
    }
    if let Some(e) = b.endpoints {
        rec.endpoints = e;
    }
    if let Some(e) = b.expires_at {
        rec.expires_at_ms = e.map(|w| w.ms()).transpose()?;
    }
    if let Some(d) = b.disabled {
        rec.disabled = d;
    }
    if let Some(a) = b.admin {
        rec.admin = a;
    }
    if let Some(l) = b.limits {
        rec.limits = l;
    }
    if let Some(bu) = b.budget {
        rec.budget = bu;
    }
    Ok(())
}

/// Writes the admin state, then installs it (a failed write changes nothing).
fn commit(gov: &Governance, dir: &Path, keys: Vec<KeyRecord>, budgets: Vec<PathBudget>) -> Result<(), AdminError> {
    let state = AdminState { keys, budgets };
    save_admin(dir, &state).map_err(AdminError::Store)?;
    gov.set_admin_keys(state.keys);
    gov.set_admin_budgets(state.budgets);
    Ok(())
}

/// Shares a change the admin API just made with the fleet (when counters
/// live in Redis): what differs from `before` is written there. If Redis
/// does not take it, the change is undone here too and the caller gets 503
/// — a key must not exist on one node only.
pub async fn share(
    gov: &Governance,
    dir: &Path,
    before: (Vec<KeyRecord>, Vec<PathBudget>),
    answer: (AdminResponse, Change),
) -> (AdminResponse, Change) {
    let Some(sh) = gov.shared() else { return answer };
    if answer.1.is_none() {
        return answer;
    }
    let after = (gov.admin_keys(), gov.admin_budgets());
    match sh.publish((&before.0, &before.1), (&after.0, &after.1)).await {
        Ok(()) => answer,
        Err(e) => {
            let undo = commit(gov, dir, before.0, before.1);
            let m = format!(
                "the change could not be shared with the fleet (Redis {e}){}; nothing was changed",
                if undo.is_err() {
                    ", and undoing it here failed"
                } else {
                    ""
                }
            );
            (AdminError::Fleet(m).response(), None)
        }
    }
}

fn new_secret_or_500() -> Result<String, AdminError> {
    new_secret().map_err(AdminError::Store)
}

fn hint(secret: &str) -> String {
    secret[secret.len().saturating_sub(4)..].to_string()
}

/// An answer and its change, or the error's answer and no change.
fn answer(r: Result<(AdminResponse, Change), AdminError>) -> (AdminResponse, Change) {
    r.unwrap_or_else(|e| (e.response(), None))
}

/// `/admin/keys[/{id}[/rotate]]`.
pub fn keys(gov: &Governance, dir: &Path, method: &str, path: &str, body: &[u8]) -> (AdminResponse, Change) {
    answer(keys_inner(gov, dir, method, path, body))
}

fn keys_inner(
    gov: &Governance,
    dir: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(AdminResponse, Change), AdminError> {
    let rest = path.strip_prefix("/admin/keys").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let now = now_ms();
    let all = gov.keys.all();
    let used = |k: &crate::governance::keys::ManagedKey| k.last_used_ms.load(std::sync::atomic::Ordering::Relaxed);
    let last = |id: &str| all.iter().find(|k| k.rec.id == id).map_or(0, |k| used(k));
    let find = |id: &str| all.iter().find(|k| k.rec.id == id).map(|k| k.rec.clone());
    match (method, parts.as_slice()) {
        ("GET", []) => {
            let data: Vec<Value> = all.iter().map(|k| key_view(&k.rec, used(k))).collect();
            Ok((AdminResponse::ok(&json!({"object": "list", "data": data})), None))
        }
        ("POST", []) => {
            let b: KeyBody = parse(body)?;
            if b.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                return Err(bad("name", "a key needs a `name`"));
            }
            let secret = new_secret_or_500()?;
            let mut rec = KeyRecord {
                hint: hint(&secret),
                created_ms: now,
                ..KeyRecord::new(
                    new_id().map_err(AdminError::Store)?,
                    String::new(),
                    hash_secret(&secret),
                    Source::Admin,
                )
            };
            apply(&mut rec, b)?;
            let mut list = gov.admin_keys();
            list.push(rec.clone());
            commit(gov, dir, list, gov.admin_budgets())?;
            let mut v = key_view(&rec, 0);
            v["key"] = json!(secret);
            let change = format!("key.create {} ({})", rec.id, rec.name);
            Ok((AdminResponse::created(&v), Some(change)))
        }
        ("GET", [id]) => {
            let rec = find(id).ok_or_else(|| AdminError::NotFound(format!("no key `{id}`")))?;
            Ok((AdminResponse::ok(&key_view(&rec, last(id))), None))
        }
        ("PATCH" | "DELETE", [id]) | ("POST", [id, "rotate"]) => {
            let rec = find(id).ok_or_else(|| AdminError::NotFound(format!("no key `{id}`")))?;
            if rec.source == Source::Config {
                return Err(AdminError::Conflict(format!(
                    "key `{id}` is declared in the config file; change it there"
                )));
            }
            let mut list = gov.admin_keys();
            let i = list
                .iter()
                .position(|k| k.id == *id)
                .ok_or_else(|| AdminError::NotFound(format!("no key `{id}`")))?;
            match method {
                "DELETE" => {
                    let gone = list.remove(i);
                    commit(gov, dir, list, gov.admin_budgets())?;
                    let change = format!("key.revoke {} ({})", gone.id, gone.name);
                    Ok((
                        AdminResponse::ok(&json!({"id": gone.id, "object": "key", "deleted": true})),
                        Some(change),
                    ))
                }
                "PATCH" => {
                    let b: KeyBody = parse(body)?;
                    apply(&mut list[i], b)?;
                    let rec = list[i].clone();
                    commit(gov, dir, list, gov.admin_budgets())?;
                    let change = format!("key.update {} ({})", rec.id, rec.name);
                    Ok((AdminResponse::ok(&key_view(&rec, last(id))), Some(change)))
                }
                _ => {
                    #[derive(Deserialize, Default)]
                    #[serde(deny_unknown_fields)]
                    struct Rotate {
                        grace_seconds: Option<u64>,
                    }
                    let r: Rotate = parse(body)?;
                    let secret = new_secret_or_500()?;
                    let grace = r.grace_seconds.unwrap_or(0).min(30 * 86_400);
                    let k = &mut list[i];
                    k.previous = (grace > 0).then(|| Previous {
                        hash: k.hash.clone(),
                        until_ms: now + grace * 1000,
                    });
                    k.hash = hash_secret(&secret);
                    k.hint = hint(&secret);
                    let rec = k.clone();
                    commit(gov, dir, list, gov.admin_budgets())?;
                    let mut v = key_view(&rec, last(id));
                    v["key"] = json!(secret);
                    let change = format!("key.rotate {} ({}) grace {grace} s", rec.id, rec.name);
                    Ok((AdminResponse::ok(&v), Some(change)))
                }
            }
        }
        (_, [] | [_]) => Err(AdminError::MethodNotAllowed {
            allow: if parts.is_empty() {
                "GET, POST"
            } else {
                "GET, PATCH, DELETE"
            },
        }),
        (_, [_, "rotate"]) => Err(AdminError::MethodNotAllowed { allow: "POST" }),
        _ => Err(AdminError::NotFound(format!("no admin route `{path}`"))),
    }
}

/// The body of `POST /admin/budgets` and `PATCH /admin/budgets/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    user_path: Option<String>,
    usd: Option<f64>,
    tokens: Option<u64>,
    period: Option<String>,
    soft: Option<f64>,
}

/// How the admin API shows a budget: its cap and what is spent of it now.
fn budget_view(spent: &Spent, b: &PathBudget, now: u64) -> Value {
    let [(usd, usd_res), (tok, tok_res)] = spent.get(&b.id).copied().unwrap_or_default();
    let mut v = serde_json::to_value(b).unwrap_or(Value::Null);
    v["object"] = json!("budget");
    v["spent_usd"] = json!(usd as f64 / crate::governance::NANO);
    v["reserved_usd"] = json!(usd_res as f64 / crate::governance::NANO);
    v["spent_tokens"] = json!(tok);
    v["reserved_tokens"] = json!(tok_res);
    v["resets_in_seconds"] = json!(b.spec.period.bounds(now).map(|(_, end)| (end - now).div_ceil(1000)));
    v
}

/// Each budget's spent and reserved, USD then tokens, by budget id.
type Spent = std::collections::HashMap<String, [(i64, i64); 2]>;

/// `/admin/budgets[/{id}]`.
pub async fn budgets(gov: &Governance, dir: &Path, method: &str, path: &str, body: &[u8]) -> (AdminResponse, Change) {
    use crate::governance::meters::Kind;
    let now = now_ms();
    let rules = gov.rules();
    // Every budget's counters in one read (one round trip when shared).
    let names: Vec<_> = rules.budgets.iter().map(|b| (b, b.names())).collect();
    let items: Vec<(&str, Kind)> = names
        .iter()
        .flat_map(|(b, n)| {
            [
                (&*n.usd, Kind::Usd(b.spec.period)),
                (&*n.tokens, Kind::BudgetTokens(b.spec.period)),
            ]
        })
        .collect();
    let r = gov.read(&items, now).await;
    let spent: Spent = names
        .iter()
        .zip(r.chunks(2))
        .map(|((b, _), v)| (b.id.clone(), [v[0], v.get(1).copied().unwrap_or_default()]))
        .collect();
    answer(budgets_inner(gov, dir, method, path, body, &rules, &spent, now))
}

#[allow(clippy::too_many_arguments)]
fn budgets_inner(
    gov: &Governance,
    dir: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    rules: &crate::governance::rules::Rules,
    spent: &Spent,
    now: u64,
) -> Result<(AdminResponse, Change), AdminError> {
    let rest = path.strip_prefix("/admin/budgets").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let build = |b: BudgetBody, base: Option<&PathBudget>| -> Result<PathBudget, AdminError> {
        let user_path = b
            .user_path
            .or_else(|| base.map(|x| x.user_path.clone()))
            .ok_or_else(|| bad("user_path", "a budget needs a `user_path`"))?;
        let user_path = if user_path == "/" {
            user_path
        } else {
            switchyard_filters::attribution::parse_user_path(&user_path).map_err(|e| bad("user_path", e.to_string()))?
        };
        let period = match b.period {
            Some(p) => crate::governance::window::Period::parse(&p).map_err(|m| bad("period", m))?,
            None => base
                .map(|x| x.spec.period)
                .ok_or_else(|| bad("period", "a budget needs a `period`"))?,
        };
        let spec = BudgetSpec {
            usd: b.usd.or_else(|| base.and_then(|x| x.spec.usd)),
            tokens: b.tokens.or_else(|| base.and_then(|x| x.spec.tokens)),
            period,
            soft: b.soft.or_else(|| base.and_then(|x| x.spec.soft)),
        };
        spec.validate().map_err(|m| bad("body", m))?;
        Ok(PathBudget::new(user_path, spec, Source::Admin))
    };
    match (method, parts.as_slice()) {
        ("GET", []) => {
            let data: Vec<Value> = rules.budgets.iter().map(|b| budget_view(spent, b, now)).collect();
            Ok((AdminResponse::ok(&json!({"object": "list", "data": data})), None))
        }
        ("POST", []) => {
            let b = build(parse(body)?, None)?;
            if rules.budgets.iter().any(|o| o.id == b.id) {
                return Err(AdminError::Conflict(format!(
                    "a budget for `{}` per {} exists (`{}`)",
                    b.user_path,
                    b.spec.period.label(),
                    b.id
                )));
            }
            let mut list = gov.admin_budgets();
            list.push(b.clone());
            commit(gov, dir, gov.admin_keys(), list)?;
            let change = format!("budget.create {} ({} per {})", b.id, b.user_path, b.spec.period.label());
            let v = budget_view(spent, &b, now);
            Ok((AdminResponse::created(&v), Some(change)))
        }
        ("GET", [id]) => {
            let b = rules
                .budgets
                .iter()
                .find(|b| b.id == *id)
                .ok_or_else(|| AdminError::NotFound(format!("no budget `{id}`")))?;
            Ok((AdminResponse::ok(&budget_view(spent, b, now)), None))
        }
        ("PATCH" | "DELETE", [id]) => {
            if rules.budgets.iter().any(|b| b.id == *id && b.source == Source::Config) {
                return Err(AdminError::Conflict(format!(
                    "budget `{id}` is declared in the config file; change it there"
                )));
            }
            let mut list = gov.admin_budgets();
            let i = list
                .iter()
                .position(|b| b.id == *id)
                .ok_or_else(|| AdminError::NotFound(format!("no budget `{id}`")))?;
            if method == "DELETE" {
                let gone = list.remove(i);
                commit(gov, dir, gov.admin_keys(), list)?;
                return Ok((
                    AdminResponse::ok(&json!({"id": gone.id, "object": "budget", "deleted": true})),
                    Some(format!("budget.delete {} ({})", gone.id, gone.user_path)),
                ));
            }
            let b: BudgetBody = parse(body)?;
            if b.user_path.is_some() || b.period.is_some() {
                return Err(bad(
                    "body",
                    "a budget's user_path and period are its identity: delete it and create another",
                ));
            }
            let nb = build(b, Some(&list[i]))?;
            list[i] = nb.clone();
            commit(gov, dir, gov.admin_keys(), list)?;
            Ok((
                AdminResponse::ok(&budget_view(spent, &nb, now)),
                Some(format!("budget.update {} ({})", nb.id, nb.user_path)),
            ))
        }
        (_, [] | [_]) => Err(AdminError::MethodNotAllowed {
            allow: if parts.is_empty() {
                "GET, POST"
            } else {
                "GET, PATCH, DELETE"
            },
        }),
        _ => Err(AdminError::NotFound(format!("no admin route `{path}`"))),
    }
}
