//! What the gateway remembers about each request: a usage record (cost,
//! tokens, attribution) and an audit entry (who, what, route, timings,
//! errors, optionally bodies). Both are produced once per request in the
//! `logging` phase and handed to the recorder, which batches them into the
//! store off the request path.

use serde::{Deserialize, Serialize};
use switchyard_filters::stream::UsageSource;
use switchyard_filters::usage::Usage;

/// Where a cost figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// The built-in price table (derived from the public model catalog).
    Builtin,
    /// A price from the config file (`prices:`), overriding or adding.
    Config,
    /// No price known: `cost_usd` is `None`, never 0.
    Unknown,
}

/// One request that reached routing (chat, messages, embeddings, count
/// tokens), streamed or not, successful or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Gateway request id (`x-request-id`).
    pub request_id: String,
    /// Completion time, Unix milliseconds.
    pub ts_ms: u64,
    /// `chat`, `messages`, `embeddings`, `count_tokens`.
    pub endpoint: String,
    /// Caller dialect: `openai` or `anthropic`.
    pub dialect: String,
    /// Provider instance name (`openai-east`); empty when routing failed.
    pub provider: String,
    /// Provider type (`openai`, `anthropic`, …).
    pub provider_type: String,
    /// Model string the caller sent.
    pub model: String,
    /// Model name sent to the provider.
    pub upstream_model: String,
    /// HTTP status answered to the caller.
    pub status: u16,
    /// Tokens as reported by the provider (or estimated, see `usage_source`).
    pub usage: Usage,
    /// `provider` when the provider reported the tokens, `estimated` when it
    /// reported none and the gateway counted them itself.
    #[serde(with = "usage_source")]
    pub usage_source: UsageSource,
    /// Cost in USD; `None` when the price is unknown.
    pub cost_usd: Option<f64>,
    /// Where the price came from.
    pub cost_source: CostSource,
    /// Total duration in milliseconds.
    pub duration_ms: u32,
    /// Time to first token in milliseconds (streams).
    pub ttft_ms: Option<u32>,
    /// Hierarchical attribution (`/org/team/user`), empty when not sent.
    pub user_path: String,
    /// `X-Switchyard-Tags` pairs.
    pub tags: Vec<(String, String)>,
    /// Managed key id; empty for the master key (or no key).
    pub key_id: String,
    /// The response did not complete (the client went away, or a stream
    /// that had begun failed): tokens are what was seen.
    pub partial: bool,
    /// Error kind when the request failed.
    pub error: Option<String>,
}

/// `usage_source` as its label (`provider` / `estimated`).
mod usage_source {
    use super::UsageSource;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(u: &UsageSource, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.label())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UsageSource, D::Error> {
        match String::deserialize(d)?.as_str() {
            "estimated" => Ok(UsageSource::Estimated),
            _ => Ok(UsageSource::Provider),
        }
    }
}

/// One audit entry per request. Secrets never reach this struct: headers are
/// redacted when it is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Gateway request id.
    pub request_id: String,
    /// Completion time, Unix milliseconds.
    pub ts_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path (query string redacted of credentials).
    pub path: String,
    /// Client address.
    pub client: String,
    /// `provider/upstream_model`, empty when routing failed.
    pub route: String,
    /// Status answered to the caller.
    pub status: u16,
    /// Status the provider answered, if it was reached.
    pub upstream_status: Option<u16>,
    /// Total duration in milliseconds.
    pub duration_ms: u32,
    /// Time to first token in milliseconds.
    pub ttft_ms: Option<u32>,
    /// Error kind and message, if any.
    pub error: Option<String>,
    /// Attribution.
    pub user_path: String,
    /// Managed key id (empty for master key).
    pub key_id: String,
    /// Request headers with credentials replaced by `[REDACTED]`.
    pub request_headers: Vec<(String, String)>,
    /// Request body (only with `SWITCHYARD_AUDIT_BODIES=true`, capped).
    pub request_body: Option<String>,
    /// Response body, streams reassembled (same conditions).
    pub response_body: Option<String>,
    /// A body was cut at the cap.
    pub bodies_truncated: bool,
}

/// Header names whose values are never stored or shown.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
];

/// Query parameters whose values are credentials (`?key=` is Gemini's).
pub const SECRET_QUERY_PARAMS: &[&str] = &["key", "api_key", "api-key", "apikey", "token", "access_token"];

/// Replaces secret header values with `[REDACTED]`.
pub fn redact_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers
        .map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let v = if SECRET_HEADERS.contains(&k.as_str()) {
                "[REDACTED]".to_string()
            } else {
                v.to_string()
            };
            (k, v)
        })
        .collect()
}

/// Redacts credential-like query parameters of a path.
pub fn redact_path(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_QUERY_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=[REDACTED]")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let h = redact_headers(
            [
                ("Authorization", "Bearer sk-x"),
                ("X-Goog-Api-Key", "g"),
                ("content-type", "json"),
            ]
            .into_iter(),
        );
        assert_eq!(h[0], ("authorization".into(), "[REDACTED]".into()));
        assert_eq!(h[1].1, "[REDACTED]");
        assert_eq!(h[2].1, "json");
        assert_eq!(redact_path("/v1/x?key=abc&alt=sse"), "/v1/x?key=[REDACTED]&alt=sse");
        assert_eq!(redact_path("/v1/x"), "/v1/x");
    }
}
