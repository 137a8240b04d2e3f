//! What the gateway remembers about each request: a usage record (cost,
//! tokens, attribution) and an audit entry (who, what, route, timings,
//! errors, optionally bodies). Both are produced once per request in the
//! `logging` phase and handed to the recorder, which batches them into the
//! store off the request path.

use serde::{Deserialize, Serialize};
use switchyard_filters::percent::percent_decode;
use switchyard_filters::scrub::{Fragments, Scrubber, REDACTED};
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
    /// Managed key name (as it was when the request was made).
    #[serde(default)]
    pub key_name: String,
    /// The response did not complete (the client went away, or a stream
    /// that had begun failed): tokens are what was seen.
    pub partial: bool,
    /// Error kind when the request failed.
    pub error: Option<String>,
    /// Upstream calls made (retries, other keys, fallbacks; 0 when none
    /// was needed or routing failed). The audit entry lists each.
    #[serde(default)]
    pub attempts: u32,
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
    /// Every upstream call the request made, in order (retries, other
    /// keys, fallbacks); the last one that answered 2xx served it.
    #[serde(default)]
    pub attempts: Vec<AttemptRecord>,
}

/// One upstream call of a request, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Provider instance.
    pub provider: String,
    /// Model name sent upstream.
    pub model: String,
    /// Status the provider answered, if it answered.
    pub status: Option<u16>,
    /// Error kind, if the call failed (`upstream_status`, `upstream_timeout`, …).
    pub error: Option<String>,
    /// Time from sending to the response head (or the failure), ms.
    pub duration_ms: u32,
}

/// Name fragments that mark a header or query parameter as a credential:
/// `authorization`, `x-api-key`, `x-goog-api-key`, `cookie`, Gemini's `key`,
/// `access_token`, `client_secret`, `password`, `sig`, `session`, `bearer`,
/// and also names no list would hold (`X-Custom-Api-Key`, `refresh_token`,
/// `X-Amz-Signature`).
const SECRET_NAME_PARTS: &[&str] = &[
    "key",
    "token",
    "secret",
    "passw",
    "auth",
    "sig",
    "session",
    "cookie",
    "credential",
    "bearer",
];

/// [`SECRET_NAME_PARTS`] as a search.
const SECRET_NAMES: Fragments = Fragments::new(SECRET_NAME_PARTS);

/// Whether a header or query parameter name looks like it carries a secret
/// (runs once per header of every audited request; see [`Fragments`]).
pub fn is_secret_name(name: &str) -> bool {
    SECRET_NAMES.found_in(name)
}

/// Replaces secret header values with `[REDACTED]`: by name, and any known
/// secret inside any other value.
pub fn redact_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    scrubber: &Scrubber,
) -> Vec<(String, String)> {
    headers
        .map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let v = if is_secret_name(&k) {
                REDACTED.to_string()
            } else {
                scrubber.scrub(v).into_owned()
            };
            (k, v)
        })
        .collect()
}

/// A query name decoded for matching (`x%2Dapi%2Dkey`); as sent when it
/// does not decode.
fn decoded(name: &str) -> String {
    percent_decode(name).unwrap_or_else(|| name.to_string())
}

/// Redacts credential-like query parameters of a path, and any known
/// secret anywhere in it.
pub fn redact_path(path_and_query: &str, scrubber: &Scrubber) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return scrubber.scrub(path_and_query).into_owned();
    };
    let q: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(&decoded(k)) => format!("{k}={REDACTED}"),
            None if is_secret_name(&decoded(pair)) => REDACTED.to_string(),
            _ => pair.to_string(),
        })
        .collect();
    scrubber.scrub(&format!("{path}?{}", q.join("&"))).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_found_in_any_case_anywhere_in_the_name() {
        for n in [
            "Authorization",
            "X-API-KEY",
            "x-goog-api-key",
            "Refresh_Token",
            "COOKIE",
            "x-amz-signature",
            "k-e-y-apikey",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["content-type", "host", "ke", "", "x-request-id", "accept-encoding"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn every_fragment_is_found_in_any_case_at_any_position() {
        for part in SECRET_NAME_PARTS {
            assert_eq!(*part, part.to_ascii_lowercase(), "fragments are lowercase");
            let upper = part.to_ascii_uppercase();
            for n in [
                part.to_string(),
                format!("x-{upper}"),
                format!("{upper}-id"),
                format!("a{part}b"),
            ] {
                assert!(is_secret_name(&n), "{n}");
            }
            // One letter short of the fragment, at the end of the name.
            let cut = &part[..part.len() - 1];
            assert!(
                !is_secret_name(&format!("x-{cut}")) || SECRET_NAME_PARTS.iter().any(|p| cut.contains(p)),
                "{cut}"
            );
        }
    }

    #[test]
    fn redaction() {
        let none = Scrubber::default();
        let h = redact_headers(
            [
                ("Authorization", "Bearer sk-x"),
                ("X-Goog-Api-Key", "g"),
                ("content-type", "json"),
                ("X-Custom-Refresh-Token", "t"),
            ]
            .into_iter(),
            &none,
        );
        assert_eq!(h[0], ("authorization".into(), "[REDACTED]".into()));
        assert_eq!(h[1].1, "[REDACTED]");
        assert_eq!(h[2].1, "json");
        assert_eq!(h[3].1, "[REDACTED]");
        assert_eq!(
            redact_path("/v1/x?key=abc&alt=sse", &none),
            "/v1/x?key=[REDACTED]&alt=sse"
        );
        assert_eq!(redact_path("/v1/x", &none), "/v1/x");
    }

    #[test]
    fn every_credential_like_query_parameter_is_redacted() {
        let none = Scrubber::default();
        for name in [
            "x-api-key",
            "x-goog-api-key",
            "auth",
            "authorization",
            "password",
            "secret",
            "client_secret",
            "sig",
            "signature",
            "session",
            "bearer",
            "X-Amz-Signature",
            "refresh_token",
            "x%2Dapi%2Dkey",
        ] {
            let out = redact_path(&format!("/v1/chat/completions?{name}=hunter2&alt=sse"), &none);
            assert_eq!(out, format!("/v1/chat/completions?{name}=[REDACTED]&alt=sse"));
        }
        // A bare flag with a secret name, and harmless parameters.
        assert_eq!(redact_path("/x?token&limit=3", &none), "/x?[REDACTED]&limit=3");
        assert_eq!(redact_path("/x?alt=sse&limit=3", &none), "/x?alt=sse&limit=3");
    }

    #[test]
    fn known_secrets_are_redacted_wherever_they_appear() {
        let s = Scrubber::new(["sy-master-0123456789"]);
        assert_eq!(
            redact_path("/v1/chat/completions?q=sy-master-0123456789", &s),
            "/v1/chat/completions?q=[REDACTED]"
        );
        let h = redact_headers([("x-note", "key is sy-master-0123456789")].into_iter(), &s);
        assert_eq!(h[0].1, "key is [REDACTED]");
    }
}
