//! The admin API under `/admin/`: usage and cost summaries, the usage and
//! audit logs, provider health, the model list with prices, and the
//! effective config with secrets masked.
//!
//! [`handle`] is a pure-ish router (method, path, query, body → status and
//! JSON) so it is tested without a server; [`serve`] authenticates the caller
//! (master key, or loopback when none is set), serves `/admin/live/logs`
//! (SSE over the live hub), the writes (reload, flush, overrides) and sends
//! the response.

pub mod keys;
pub mod params;
pub mod runtime;
pub mod serve;
pub mod usage;

use crate::config::Snapshot;
use crate::live::Discovered;
use crate::store::{Store, StoreError};
use crate::telemetry::provider_stats::ProviderStats;
use serde_json::{json, Value};
use std::sync::Arc;

/// Looks up a model's price: `(provider_type, provider, model)` → a JSON
/// object such as `{"input": 2.5, "output": 10.0, "cached_input": 1.25,
/// "cache_write": null, "context_window": 128000, "source": "builtin"}`
/// (USD per million tokens). Kept as a function so the admin API does not
/// depend on how the price table is built.
pub type PriceFn = dyn Fn(&str, &str, &str) -> Option<Value> + Send + Sync;

/// Everything the admin handlers read.
#[derive(Clone)]
pub struct AdminCtx {
    /// The store (usage, audit).
    pub store: Arc<dyn Store>,
    /// The config in force.
    pub snapshot: Arc<Snapshot>,
    /// Models discovered from providers.
    pub discovered: Arc<Discovered>,
    /// Recent per-provider latency and errors.
    pub provider_stats: Arc<ProviderStats>,
    /// Price lookup for `/admin/models`.
    pub prices: Arc<PriceFn>,
    /// Every circuit breaker's state now.
    pub circuits: Vec<crate::resilience::CircuitView>,
}

/// A response to send: status, JSON body and extra headers (`Allow` on 405).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl AdminResponse {
    /// 201 with a JSON value (an item was created).
    pub fn created(v: &Value) -> AdminResponse {
        AdminResponse {
            status: 201,
            ..AdminResponse::ok(v)
        }
    }

    /// 200 with a JSON value.
    pub fn ok(v: &Value) -> AdminResponse {
        AdminResponse {
            status: 200,
            body: v.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }
}

/// Why an admin request failed; rendered as the OpenAI error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// A query parameter is unknown, repeated or malformed (400).
    BadParam {
        /// The parameter.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such admin route or item (404).
    NotFound(String),
    /// The route exists with other methods (405).
    MethodNotAllowed {
        /// Methods it accepts.
        allow: &'static str,
    },
    /// The store failed (500).
    Store(String),
    /// The store stopped after a failed write (503: nothing is reported
    /// that a restart could lose).
    StoreStopped(String),
    /// The item exists, or cannot change this way (409).
    Conflict(String),
    /// A change could not reach the fleet's shared state (Redis), so it
    /// was not made (503).
    Fleet(String),
}

impl AdminError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::BadParam { .. } => 400,
            AdminError::NotFound(_) => 404,
            AdminError::MethodNotAllowed { .. } => 405,
            AdminError::Store(_) => 500,
            AdminError::StoreStopped(_) => 503,
            AdminError::Conflict(_) => 409,
            AdminError::Fleet(_) => 503,
        }
    }

    /// `{"error":{"message","type","param","code"}}`.
    pub fn response(&self) -> AdminResponse {
        let (message, kind, param, code) = match self {
            AdminError::BadParam { param, message } => (
                message.clone(),
                "invalid_request_error",
                Some(param.as_str()),
                "invalid_parameter",
            ),
            AdminError::NotFound(m) => (m.clone(), "not_found_error", None, "not_found"),
            AdminError::MethodNotAllowed { allow } => (
                format!("method not allowed; use {allow}"),
                "invalid_request_error",
                None,
                "method_not_allowed",
            ),
            AdminError::Store(m) => (m.clone(), "server_error", None, "store_error"),
            AdminError::StoreStopped(m) => (m.clone(), "server_error", None, "store_write_failed"),
            AdminError::Conflict(m) => (m.clone(), "invalid_request_error", None, "conflict"),
            AdminError::Fleet(m) => (m.clone(), "server_error", None, "fleet_unreachable"),
        };
        let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
        let headers = match self {
            AdminError::MethodNotAllowed { allow } => vec![("allow".to_string(), allow.to_string())],
            _ => Vec::new(),
        };
        AdminResponse {
            status: self.status(),
            body: body.to_string().into_bytes(),
            headers,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Failed(_) = e {
            return AdminError::StoreStopped(e.to_string());
        }
        log::error!("admin: {e}");
        AdminError::Store(e.to_string())
    }
}

/// Runs a store call on the blocking pool (sled calls may take
/// milliseconds; the proxy's workers must not stall).
pub async fn blocking<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, AdminError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let s = store.clone();
    match tokio::task::spawn_blocking(move || f(&*s)).await {
        Ok(r) => r.map_err(AdminError::from),
        Err(e) => Err(AdminError::Store(format!("store task failed: {e}"))),
    }
}

/// Current Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Routes one admin request. `path` excludes the query string; `body` is
/// unused by these read-only endpoints (later issues add writes).
pub async fn handle(ctx: &AdminCtx, method: &str, path: &str, query: Option<&str>, _body: &[u8]) -> AdminResponse {
    let path = match path.strip_suffix('/') {
        Some(p) if p.len() > "/admin".len() => p,
        _ => path,
    };
    let get = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let route: Option<Endpoint> = match path {
        "/admin/usage/summary" => Some(Endpoint::Summary),
        "/admin/usage/daily" => Some(Endpoint::Daily),
        "/admin/usage/models" => Some(Endpoint::UsageModels),
        "/admin/usage/user-paths" => Some(Endpoint::UserPaths),
        "/admin/usage/log" => Some(Endpoint::UsageLog),
        "/admin/audit/log" => Some(Endpoint::AuditLog),
        "/admin/providers/status" => Some(Endpoint::Providers),
        "/admin/models" => Some(Endpoint::Models),
        "/admin/runtime/config" => Some(Endpoint::Config),
        _ => path
            .strip_prefix("/admin/audit/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(|id| Endpoint::AuditGet(id.to_string())),
    };
    let Some(route) = route else {
        return AdminError::NotFound(format!("no admin endpoint {path}")).response();
    };
    if !get {
        return AdminError::MethodNotAllowed { allow: "GET" }.response();
    }
    let now = now_ms();
    let r = match route {
        Endpoint::Summary => usage::summary(ctx, query, now).await,
        Endpoint::Daily => usage::daily(ctx, query, now).await,
        Endpoint::UsageModels => usage::models(ctx, query, now).await,
        Endpoint::UserPaths => usage::user_paths(ctx, query, now).await,
        Endpoint::UsageLog => usage::usage_log(ctx, query).await,
        Endpoint::AuditLog => usage::audit_log(ctx, query).await,
        Endpoint::AuditGet(id) => usage::audit_get(ctx, query, id).await,
        Endpoint::Providers => runtime::providers_status(ctx, query, now),
        Endpoint::Models => runtime::models(ctx, query),
        Endpoint::Config => runtime::config(ctx, query),
    };
    match r {
        Ok(v) => AdminResponse::ok(&v),
        Err(e) => e.response(),
    }
}

enum Endpoint {
    Summary,
    Daily,
    UsageModels,
    UserPaths,
    UsageLog,
    AuditLog,
    AuditGet(String),
    Providers,
    Models,
    Config,
}

#[cfg(test)]
mod tests;
