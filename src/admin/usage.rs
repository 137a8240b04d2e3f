//! Usage and audit endpoints: summaries from the daily roll-ups, and the
//! paginated, filterable logs.

use super::params::{encode_cursor, fmt_day, fmt_time, Params};
use super::{blocking, AdminCtx, AdminError};
use crate::store::query::path_ancestors;
use crate::store::{Counters, GroupBy, GroupKey, GroupRow, LogFilter, RollupQuery};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Rounds away float noise (`0.30000000000000004`) below a nano-dollar.
fn usd(x: f64) -> f64 {
    (x * 1e10).round() / 1e10
}

/// The JSON fields of a set of counters.
pub fn counters_json(c: &Counters) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("requests", json!(c.requests));
    put("errors", json!(c.errors));
    put("partial", json!(c.partial));
    put("input_tokens", json!(c.input_tokens));
    put("output_tokens", json!(c.output_tokens));
    put("cached_input_tokens", json!(c.cached_input_tokens));
    put("cache_write_tokens", json!(c.cache_write_tokens));
    put("reasoning_tokens", json!(c.reasoning_tokens));
    put("total_tokens", json!(c.input_tokens.saturating_add(c.output_tokens)));
    // Unknown stays unknown: a group none of whose requests has a known
    // price has no cost (null), not a cost of 0.
    let priced = c.requests.saturating_sub(c.cost_unknown);
    put(
        "cost_usd",
        if priced == 0 && c.requests > 0 {
            Value::Null
        } else {
            json!(usd(c.cost_usd))
        },
    );
    put("cost_unknown_requests", json!(c.cost_unknown));
    put(
        "avg_duration_ms",
        json!(c.duration_ms.checked_div(c.requests).unwrap_or(0)),
    );
    m
}

/// Orders groups by cost, then requests (biggest first), then label.
fn by_cost(a: (&str, &Counters), b: (&str, &Counters)) -> std::cmp::Ordering {
    b.1.cost_usd
        .total_cmp(&a.1.cost_usd)
        .then(b.1.requests.cmp(&a.1.requests))
        .then(a.0.cmp(b.0))
}

/// A model group: (`provider/model`, counters, provider, model).
type ModelRow = (String, Counters, String, String);

fn model_rows(rows: Vec<GroupRow>) -> Vec<ModelRow> {
    let mut v: Vec<ModelRow> = rows
        .into_iter()
        .filter_map(|r| {
            let id = r.key.label();
            match r.key {
                GroupKey::Model { provider, model } => Some((id, r.counters, provider, model)),
                _ => None,
            }
        })
        .collect();
    v.sort_by(|a, b| by_cost((&a.0, &a.1), (&b.0, &b.1)));
    v
}

async fn rollup(
    ctx: &AdminCtx,
    from_day: u32,
    to_day: u32,
    group_by: GroupBy,
    per_day: bool,
) -> Result<Vec<GroupRow>, AdminError> {
    let q = RollupQuery {
        from_day,
        to_day,
        group_by,
        per_day,
    };
    blocking(&ctx.store, move |s| s.usage_rollup(&q)).await
}

fn range_json(from_day: u32, to_day: u32) -> (Value, Value) {
    (json!(fmt_day(from_day)), json!(fmt_day(to_day)))
}

fn model_entry(provider: &str, model: &str, c: &Counters) -> Value {
    let mut m = counters_json(c);
    let id = GroupKey::Model {
        provider: provider.to_string(),
        model: model.to_string(),
    }
    .label();
    m.insert("id".into(), json!(id));
    m.insert("provider".into(), json!(provider));
    m.insert("model".into(), json!(model));
    Value::Object(m)
}

/// `GET /admin/usage/summary`: totals plus the top models and providers.
pub async fn summary(ctx: &AdminCtx, query: Option<&str>, now: u64) -> Result<Value, AdminError> {
    let p = Params::parse(query, &["from", "to", "top"])?;
    let (from_day, to_day) = p.day_range(now)?;
    let top = p.bounded("top", 10, 1000)?;
    // One scan: totals and providers are sums of the model groups.
    let models = model_rows(rollup(ctx, from_day, to_day, GroupBy::Model, false).await?);
    let mut total = Counters::default();
    let mut providers: HashMap<&str, Counters> = HashMap::new();
    for (_, c, provider, _) in &models {
        total.merge(c);
        providers.entry(provider).or_default().merge(c);
    }
    let mut provs: Vec<(&str, Counters)> = providers.into_iter().collect();
    provs.sort_by(|a, b| by_cost((a.0, &a.1), (b.0, &b.1)));
    let (f, t) = range_json(from_day, to_day);
    Ok(json!({
        "from": f,
        "to": t,
        "granularity": "day",
        "totals": counters_json(&total),
        "models_count": models.len(),
        "top_models": models.iter().take(top).map(|(_, c, p, m)| model_entry(p, m, c)).collect::<Vec<_>>(),
        "top_providers": provs.iter().take(top).map(|(p, c)| {
            let mut m = counters_json(c);
            m.insert("provider".into(), json!(p));
            Value::Object(m)
        }).collect::<Vec<_>>(),
    }))
}

fn group_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Total => "none",
        GroupBy::Provider => "provider",
        GroupBy::Model => "model",
        GroupBy::UserPath => "user_path",
        GroupBy::Tag => "tag",
        GroupBy::Key => "key",
    }
}

/// `GET /admin/usage/daily`: one row per day (and group).
pub async fn daily(ctx: &AdminCtx, query: Option<&str>, now: u64) -> Result<Value, AdminError> {
    let p = Params::parse(query, &["from", "to", "group_by"])?;
    let (from_day, to_day) = p.day_range(now)?;
    let g = p.group_by()?;
    let rows = rollup(ctx, from_day, to_day, g, true).await?;
    let mut rows: Vec<(u32, String, GroupKey, Counters)> = rows
        .into_iter()
        .map(|r| (r.day.unwrap_or(0), r.key.label(), r.key, r.counters))
        .collect();
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.3.cost_usd.total_cmp(&a.3.cost_usd))
            .then(b.3.requests.cmp(&a.3.requests))
            .then(a.1.cmp(&b.1))
    });
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(day, label, key, c)| {
            let mut m = counters_json(&c);
            m.insert("day".into(), json!(fmt_day(day)));
            if g != GroupBy::Total {
                m.insert("group".into(), json!(label));
            }
            match key {
                GroupKey::Model { provider, model } => {
                    m.insert("provider".into(), json!(provider));
                    m.insert("model".into(), json!(model));
                }
                GroupKey::Tag { key, value } => {
                    m.insert("tag_key".into(), json!(key));
                    m.insert("tag_value".into(), json!(value));
                }
                _ => {}
            }
            Value::Object(m)
        })
        .collect();
    let (f, t) = range_json(from_day, to_day);
    Ok(json!({"from": f, "to": t, "group_by": group_name(g), "rows": out}))
}

/// `GET /admin/usage/models`: usage per `provider/model`, costliest first.
pub async fn models(ctx: &AdminCtx, query: Option<&str>, now: u64) -> Result<Value, AdminError> {
    let p = Params::parse(query, &["from", "to"])?;
    let (from_day, to_day) = p.day_range(now)?;
    let v = model_rows(rollup(ctx, from_day, to_day, GroupBy::Model, false).await?);
    let (f, t) = range_json(from_day, to_day);
    Ok(json!({
        "from": f,
        "to": t,
        "models": v.iter().map(|(_, c, p, m)| model_entry(p, m, c)).collect::<Vec<_>>(),
    }))
}

/// `GET /admin/usage/user-paths`: usage per user path node, every ancestor
/// summing its subtree; `user_path` limits it to one subtree.
pub async fn user_paths(ctx: &AdminCtx, query: Option<&str>, now: u64) -> Result<Value, AdminError> {
    let p = Params::parse(query, &["from", "to", "user_path"])?;
    let (from_day, to_day) = p.day_range(now)?;
    let prefix = p.get("user_path").map(str::to_string);
    let rows = rollup(ctx, from_day, to_day, GroupBy::UserPath, false).await?;
    let mut v: Vec<(String, Counters)> = rows
        .into_iter()
        .filter_map(|r| match r.key {
            GroupKey::UserPath(path) => Some((path, r.counters)),
            _ => None,
        })
        .filter(|(path, _)| {
            prefix
                .as_deref()
                .is_none_or(|pre| crate::store::query::path_under(path, pre))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let (f, t) = range_json(from_day, to_day);
    Ok(json!({
        "from": f,
        "to": t,
        "user_paths": v.iter().map(|(path, c)| {
            let mut m = counters_json(c);
            m.insert("user_path".into(), json!(path));
            m.insert("depth".into(), json!(path_ancestors(path).filter(|s| !s.is_empty()).count()));
            Value::Object(m)
        }).collect::<Vec<_>>(),
    }))
}

const LOG_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "model",
    "provider",
    "user_path",
    "status",
    "from",
    "to",
];

fn log_filter(p: &Params) -> Result<LogFilter, AdminError> {
    let (from_ms, to_ms) = p.time_range()?;
    Ok(LogFilter {
        from_ms,
        to_ms,
        model: p.get("model").map(str::to_string),
        provider: p.get("provider").map(str::to_string),
        user_path: p.get("user_path").map(str::to_string),
        status: p.status()?,
    })
}

/// `GET /admin/usage/log`: records newest first, `next_cursor` for more.
pub async fn usage_log(ctx: &AdminCtx, query: Option<&str>) -> Result<Value, AdminError> {
    let p = Params::parse(query, LOG_PARAMS)?;
    let filter = log_filter(&p)?;
    let limit = p.limit()?;
    let cursor = p.cursor()?;
    let page = blocking(&ctx.store, move |s| s.usage_log(&filter, cursor.as_ref(), limit)).await?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("time".into(), json!(fmt_time(r.ts_ms)));
            }
            v
        })
        .collect();
    Ok(json!({"data": data, "next_cursor": page.next.as_ref().map(encode_cursor)}))
}

/// `GET /admin/audit/log`: entries newest first without bodies.
pub async fn audit_log(ctx: &AdminCtx, query: Option<&str>) -> Result<Value, AdminError> {
    let p = Params::parse(query, LOG_PARAMS)?;
    let filter = log_filter(&p)?;
    let limit = p.limit()?;
    let cursor = p.cursor()?;
    let page = blocking(&ctx.store, move |s| s.audit_log(&filter, cursor.as_ref(), limit)).await?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.remove("request_body");
                m.remove("response_body");
                m.insert("time".into(), json!(fmt_time(a.ts_ms)));
            }
            v
        })
        .collect();
    Ok(json!({"data": data, "next_cursor": page.next.as_ref().map(encode_cursor)}))
}

/// `GET /admin/audit/{request_id}`: one entry with its bodies.
pub async fn audit_get(ctx: &AdminCtx, query: Option<&str>, id: String) -> Result<Value, AdminError> {
    Params::parse(query, &[])?;
    let shown = super::params::shorten(&id);
    let entry = blocking(&ctx.store, move |s| s.audit_get(&id)).await?;
    match entry {
        Some(a) => {
            let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("time".into(), json!(fmt_time(a.ts_ms)));
            }
            Ok(v)
        }
        None => Err(AdminError::NotFound(format!("no audit entry for request id `{shown}`"))),
    }
}
