//! Runtime endpoints: provider health, the model list with prices, and the
//! effective configuration with every secret masked.

use super::params::{fmt_time, Params};
use super::{AdminCtx, AdminError};
use crate::providers::{BaseUrl, Provider};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Window of `/admin/providers/status` statistics, seconds.
pub const STATUS_WINDOW_S: u64 = 15 * 60;

/// Shown instead of any secret (never any part of it).
pub const MASK: &str = "***";

fn base_url(b: &BaseUrl) -> String {
    let scheme = if b.tls { "https" } else { "http" };
    let default = if b.tls { 443 } else { 80 };
    let host = if b.host.contains(':') {
        format!("[{}]", b.host)
    } else {
        b.host.clone()
    };
    if b.port == default {
        format!("{scheme}://{host}{}", b.path)
    } else {
        format!("{scheme}://{host}:{}{}", b.port, b.path)
    }
}

/// Configured then discovered models of a provider, de-duplicated.
fn provider_models(ctx: &AdminCtx, p: &Provider) -> (Vec<String>, usize) {
    let configured: BTreeSet<&str> = p.models.iter().map(String::as_str).collect();
    let mut out: Vec<String> = p.models.clone();
    out.dedup();
    let mut discovered = 0;
    if let Some(set) = ctx.discovered.by_provider.get(&p.name) {
        let mut extra: Vec<&String> = set.iter().filter(|m| !configured.contains(m.as_str())).collect();
        extra.sort();
        discovered = extra.len();
        out.extend(extra.into_iter().cloned());
    }
    (out, discovered)
}

/// `GET /admin/providers/status`.
pub fn providers_status(ctx: &AdminCtx, query: Option<&str>, now: u64) -> Result<Value, AdminError> {
    let p = Params::parse(query, &["window"])?;
    let window_s = p.bounded("window", STATUS_WINDOW_S as usize, 7 * 86_400)? as u64;
    let providers: Vec<Value> = ctx
        .snapshot
        .providers
        .iter()
        .map(|p| {
            let (models, discovered) = provider_models(ctx, p);
            let w = ctx.provider_stats.window(&p.name, now, window_s * 1000);
            let mine = ctx.circuits.iter().filter(|c| c.provider == p.name);
            let (own, per_model): (Vec<_>, Vec<_>) = mine.partition(|c| c.model.is_none());
            // Without `circuit_breaker:` there is no circuit (null); with
            // one, an instance not yet called is closed.
            let circuit = p.breaker.map(|_| own.first().map_or("closed", |c| c.state.name()));
            let circuits: Vec<Value> = per_model
                .iter()
                .map(|c| json!({"model": c.model, "state": c.state.name(), "times_opened": c.opened}))
                .collect();
            let times_opened = own.first().map_or(0, |c| c.opened);
            json!({
                "circuit": circuit,
                "circuit_times_opened": times_opened,
                "model_circuits": circuits,
                "keys": p.keys.len(),
                "keys_cooling": p.keys_cooling(),
                "name": p.name,
                "type": p.family.name.to_string(),
                "base_url": base_url(&p.base),
                "models": models,
                "models_configured": p.models.len(),
                "models_discovered": discovered,
                "last_success": w.last_success_ms.map(fmt_time),
                "last_success_ms": w.last_success_ms,
                "window_seconds": window_s,
                "requests": w.samples,
                "errors": w.errors,
                "error_rate": if w.samples == 0 { Value::Null } else { json!(w.errors as f64 / w.samples as f64) },
                "p50_latency_ms": w.p50_ms,
                "p99_latency_ms": w.p99_ms,
            })
        })
        .collect();
    Ok(json!({ "providers": providers }))
}

fn model_json(ctx: &AdminCtx, p: &Provider, model: &str, id: String) -> Value {
    let kind = p.family.name.to_string();
    let mut price = (ctx.prices)(&kind, &p.name, model);
    let context_window = price
        .as_mut()
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove("context_window"))
        .unwrap_or(Value::Null);
    json!({
        "id": id,
        "provider": p.name,
        "provider_type": kind,
        "model": model,
        "price": price,
        "context_window": context_window,
    })
}

/// `GET /admin/models`: every public model id (`provider/model`, aliases
/// too) with its price per million tokens and context window where known.
pub fn models(ctx: &AdminCtx, query: Option<&str>) -> Result<Value, AdminError> {
    Params::parse(query, &[])?;
    let snap = &ctx.snapshot;
    let mut data = Vec::new();
    for p in &snap.providers {
        let (models, _) = provider_models(ctx, p);
        for m in models {
            let id = format!("{}/{m}", p.name);
            data.push(model_json(ctx, p, &m, id));
        }
    }
    for (alias, (i, m)) in &snap.aliases {
        if let Some(p) = snap.providers.get(*i) {
            let mut v = model_json(ctx, p, m, alias.clone());
            if let Value::Object(o) = &mut v {
                o.insert("alias_of".into(), json!(format!("{}/{m}", p.name)));
            }
            data.push(v);
        }
    }
    Ok(json!({ "data": data }))
}

/// `GET /admin/runtime/config`: the compiled config; credentials appear only
/// as `"***"` with a count, extra header values are masked (they often carry
/// credentials for proxies).
pub fn config(ctx: &AdminCtx, query: Option<&str>) -> Result<Value, AdminError> {
    Params::parse(query, &[])?;
    let s = &ctx.snapshot;
    let providers: Vec<Value> = s
        .providers
        .iter()
        .map(|p| {
            let headers: Map<String, Value> = p.headers.iter().map(|(k, _)| (k.clone(), json!(MASK))).collect();
            json!({
                "name": p.name,
                "type": p.family.name.to_string(),
                "base_url": base_url(&p.base),
                "api_keys": if p.keys.is_empty() { Value::Null } else { json!(MASK) },
                "api_key_count": p.keys.len(),
                "models": p.models,
                "headers": headers,
                "api_version": p.api_version,
                "connect_timeout_ms": p.connect_timeout.as_millis() as u64,
                "read_timeout_ms": p.read_timeout.as_millis() as u64,
                "discover_models": p.discover_models,
            })
        })
        .collect();
    let aliases: Map<String, Value> = s
        .aliases
        .iter()
        .filter_map(|(a, (i, m))| {
            s.providers
                .get(*i)
                .map(|p| (a.clone(), json!(format!("{}/{m}", p.name))))
        })
        .collect();
    Ok(json!({
        "listen": s.listen,
        "data_dir": s.data_dir.display().to_string(),
        "master_key": if s.master_key.is_some() { json!(MASK) } else { Value::Null },
        "max_body_bytes": s.max_body_bytes,
        "log": s.log_level,
        "server": {
            "threads": s.server.threads,
            "grace_period_seconds": s.server.grace_period_seconds,
            "graceful_shutdown_timeout_seconds": s.server.graceful_shutdown_timeout_seconds,
            "pid_file": s.server.pid_file.display().to_string(),
            "upgrade_sock": s.server.upgrade_sock.display().to_string(),
        },
        "providers": providers,
        "aliases": aliases,
        "model_refresh_seconds": s.model_refresh.as_secs(),
        "dns_ttl_seconds": s.dns_ttl.as_secs(),
    }))
}
