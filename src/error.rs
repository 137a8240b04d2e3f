//! Every way a request can fail, with its HTTP status and caller-dialect body.
//!
//! `status()` and `info()` are exhaustive matches (no `_ =>`): adding a variant
//! forces a decision about its status and wording.

use switchyard_filters::codec::CodecError;
use switchyard_filters::error::{render, Dialect, ErrorInfo};
use switchyard_filters::passthrough::BodyError;
use switchyard_filters::scrub::Scrubber;
use switchyard_filters::stream::StreamFailure;

/// A request failure the gateway answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// Body is not valid JSON.
    MalformedJson(String),
    /// A field is missing or has the wrong type/value.
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The offending field.
        param: Option<String>,
    },
    /// No provider serves this model.
    ModelNotFound(String),
    /// The model is disabled by an operator override.
    ModelDisabled(String),
    /// Body larger than the configured limit.
    BodyTooLarge(usize),
    /// The request head or body arrived slower than the gateway waits for.
    ClientTimeout(&'static str),
    /// Bytes that are not an HTTP/1.1 request (Pingora's parser refused
    /// them before any of the pipeline ran).
    MalformedHttp,
    /// No such endpoint.
    RouteNotFound(String),
    /// Endpoint exists, method doesn't.
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
    },
    /// Missing or wrong gateway key.
    Unauthorized(&'static str),
    /// Could not connect to the provider (DNS, refused, TLS).
    UpstreamConnect {
        /// Provider name.
        provider: String,
        /// What failed (no secrets).
        detail: String,
    },
    /// Provider did not answer in time.
    UpstreamTimeout {
        /// Provider name.
        provider: String,
    },
    /// Provider rejected the gateway's own credential (401/403).
    UpstreamAuth {
        /// Provider name.
        provider: String,
        /// Upstream status.
        status: u16,
        /// Upstream message.
        message: String,
    },
    /// Provider answered with an error status; passed through.
    UpstreamStatus {
        /// Provider name.
        provider: String,
        /// Upstream status (4xx/5xx).
        status: u16,
        /// Upstream message.
        message: String,
    },
    /// Provider broke the protocol (bad response, reset mid-body).
    UpstreamProtocol {
        /// Provider name.
        provider: String,
        /// What went wrong.
        detail: String,
    },
    /// A stream that had begun did not complete (the caller already has
    /// status 200 and received an error event saying the same thing).
    UpstreamStream {
        /// Provider name.
        provider: String,
        /// Why, as the stream processor saw it (boxed: it is rare and large).
        failure: Box<StreamFailure>,
    },
    /// The gateway is not ready (store closed).
    NotReady(String),
    /// The shared limiter (Redis) did not answer and the gateway is set to
    /// fail closed: nothing was sent.
    LimiterUnavailable,
    /// Every target of the model has an open circuit: nothing was sent.
    CircuitOpen {
        /// The model the caller asked for.
        model: String,
        /// Seconds until the first probe may go (the `Retry-After`).
        retry_after_s: u64,
    },
    /// A managed key may not do this (model, endpoint or user path outside
    /// its grant).
    Forbidden {
        /// What was refused, naming the key.
        message: String,
        /// `model_not_allowed`, `endpoint_not_allowed`, `user_path_not_allowed`.
        code: &'static str,
    },
    /// A rate limit (requests or tokens per minute, or requests in flight)
    /// is reached.
    RateLimited {
        /// Whose limit, e.g. "key `checkout-app`".
        scope: String,
        /// `requests`, `tokens` or `concurrency`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Seconds until a request of this size fits (the `Retry-After`).
        retry_after_s: u64,
    },
    /// A budget is spent.
    BudgetExceeded {
        /// Whose budget, e.g. "user path `/acme`".
        scope: String,
        /// `day`, `month`, `24h`, …
        period: String,
        /// What was spent of what, e.g. "$0.0012 of $0.0010".
        spent: String,
        /// Seconds until the period resets (the `Retry-After`).
        retry_after_s: u64,
    },
}

impl GatewayError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::MalformedJson(_) => 400,
            GatewayError::InvalidRequest { .. } => 400,
            GatewayError::ModelNotFound(_) => 404,
            GatewayError::ModelDisabled(_) => 403,
            GatewayError::BodyTooLarge(_) => 413,
            GatewayError::ClientTimeout(_) => 408,
            GatewayError::MalformedHttp => 400,
            GatewayError::RouteNotFound(_) => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::Unauthorized(_) => 401,
            GatewayError::UpstreamConnect { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::UpstreamAuth { .. } => 502,
            GatewayError::UpstreamStatus { status, .. } => *status,
            GatewayError::UpstreamProtocol { .. } => 502,
            GatewayError::UpstreamStream { .. } => 502,
            GatewayError::NotReady(_) => 503,
            GatewayError::CircuitOpen { .. } | GatewayError::LimiterUnavailable => 503,
            GatewayError::Forbidden { .. } => 403,
            GatewayError::RateLimited { .. } | GatewayError::BudgetExceeded { .. } => 429,
        }
    }

    /// A short machine label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::MalformedJson(_) => "malformed_json",
            GatewayError::InvalidRequest { .. } => "invalid_request",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::ModelDisabled(_) => "model_disabled",
            GatewayError::BodyTooLarge(_) => "body_too_large",
            GatewayError::ClientTimeout(_) => "client_timeout",
            GatewayError::MalformedHttp => "malformed_http",
            GatewayError::RouteNotFound(_) => "route_not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::UpstreamConnect { .. } => "upstream_connect",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::UpstreamAuth { .. } => "upstream_auth",
            GatewayError::UpstreamStatus { .. } => "upstream_status",
            GatewayError::UpstreamProtocol { .. } => "upstream_protocol",
            GatewayError::UpstreamStream { failure, .. } => failure.kind(),
            GatewayError::NotReady(_) => "not_ready",
            GatewayError::CircuitOpen { .. } => "circuit_open",
            GatewayError::LimiterUnavailable => "limiter_unavailable",
            GatewayError::Forbidden { code, .. } => code,
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::BudgetExceeded { .. } => "budget_exceeded",
        }
    }

    /// Seconds the caller should wait before trying again, for the errors
    /// the gateway itself answers with a `Retry-After` (an open circuit, a
    /// rate limit, a spent budget).
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            GatewayError::CircuitOpen { retry_after_s, .. }
            | GatewayError::RateLimited { retry_after_s, .. }
            | GatewayError::BudgetExceeded { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// The kind of provider failure, for `switchyard_upstream_errors_total`;
    /// `None` when the provider is not to blame.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            GatewayError::UpstreamConnect { .. } => Some("connect"),
            GatewayError::UpstreamTimeout { .. } => Some("timeout"),
            GatewayError::UpstreamAuth { .. } => Some("auth"),
            GatewayError::UpstreamProtocol { .. } => Some("protocol"),
            GatewayError::UpstreamStream { failure, .. } => Some(match **failure {
                StreamFailure::Truncated => "truncated",
                StreamFailure::Malformed(_) | StreamFailure::TooLarge { .. } => "protocol",
                StreamFailure::Upstream(_) => "stream",
                StreamFailure::Interrupted(_) => "interrupted",
            }),
            GatewayError::UpstreamStatus { status, .. } => {
                Some(if *status >= 500 { "status_5xx" } else { "status_4xx" })
            }
            GatewayError::MalformedJson(_)
            | GatewayError::InvalidRequest { .. }
            | GatewayError::ModelNotFound(_)
            | GatewayError::ModelDisabled(_)
            | GatewayError::BodyTooLarge(_)
            | GatewayError::ClientTimeout(_)
            | GatewayError::MalformedHttp
            | GatewayError::RouteNotFound(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::Unauthorized(_)
            | GatewayError::NotReady(_)
            | GatewayError::LimiterUnavailable
            | GatewayError::CircuitOpen { .. }
            | GatewayError::Forbidden { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::BudgetExceeded { .. } => None,
        }
    }

    /// Dialect-neutral description (message never contains secrets).
    pub fn info(&self) -> ErrorInfo {
        let e = |message: String, kind, param: Option<String>, code, anthropic_kind| ErrorInfo {
            message,
            kind,
            param,
            code,
            anthropic_kind,
        };
        match self {
            GatewayError::MalformedJson(m) => e(
                format!("We could not parse the JSON body of your request: {m}"),
                "invalid_request_error",
                None,
                Some("invalid_json"),
                "invalid_request_error",
            ),
            GatewayError::InvalidRequest { message, param } => e(
                message.clone(),
                "invalid_request_error",
                param.clone(),
                None,
                "invalid_request_error",
            ),
            GatewayError::ModelNotFound(m) => e(
                format!("The model `{m}` does not exist or no configured provider serves it"),
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_found"),
                "not_found_error",
            ),
            GatewayError::ModelDisabled(m) => e(
                format!("The model `{m}` is disabled on this gateway"),
                "invalid_request_error",
                Some("model".into()),
                Some("model_disabled"),
                "permission_error",
            ),
            GatewayError::BodyTooLarge(limit) => e(
                format!("Request body exceeds the gateway limit of {limit} bytes"),
                "invalid_request_error",
                None,
                Some("request_too_large"),
                "request_too_large",
            ),
            GatewayError::ClientTimeout(part) => e(
                format!("The request {part} did not arrive in time"),
                "invalid_request_error",
                None,
                Some("request_timeout"),
                "invalid_request_error",
            ),
            GatewayError::MalformedHttp => e(
                "The request is not valid HTTP/1.1 (request line, header syntax, Content-Length, or a head over the size limit)".into(),
                "invalid_request_error",
                None,
                Some("malformed_http"),
                "invalid_request_error",
            ),
            GatewayError::RouteNotFound(p) => e(
                format!("Unknown endpoint `{p}`"),
                "invalid_request_error",
                None,
                Some("unknown_url"),
                "not_found_error",
            ),
            GatewayError::MethodNotAllowed { method, path } => e(
                format!("Method {method} is not allowed on `{path}`"),
                "invalid_request_error",
                None,
                Some("method_not_allowed"),
                "invalid_request_error",
            ),
            GatewayError::Unauthorized(why) => e(
                (*why).to_string(),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
                "authentication_error",
            ),
            GatewayError::UpstreamConnect { provider, detail } => e(
                format!("Could not reach provider `{provider}`: {detail}"),
                "api_error",
                None,
                Some("upstream_unreachable"),
                "api_error",
            ),
            GatewayError::UpstreamTimeout { provider } => e(
                format!("Provider `{provider}` did not respond in time"),
                "api_error",
                None,
                Some("upstream_timeout"),
                "timeout_error",
            ),
            GatewayError::UpstreamAuth {
                provider,
                status,
                message,
            } => e(
                format!(
                    "Provider `{provider}` rejected the gateway's credential for it (upstream {status}: {message}); check the gateway's configured API key for `{provider}`"
                ),
                "api_error",
                None,
                Some("upstream_auth_failed"),
                "api_error",
            ),
            GatewayError::UpstreamStatus {
                provider,
                status,
                message,
            } => {
                let (kind, akind) = match status {
                    400 | 404 | 409 | 413 | 422 => ("invalid_request_error", "invalid_request_error"),
                    429 => ("rate_limit_error", "rate_limit_error"),
                    529 => ("api_error", "overloaded_error"),
                    _ => ("api_error", "api_error"),
                };
                let akind = if *status == 404 { "not_found_error" } else { akind };
                e(
                    format!("Provider `{provider}` returned {status}: {message}"),
                    kind,
                    None,
                    None,
                    akind,
                )
            }
            GatewayError::UpstreamProtocol { provider, detail } => e(
                format!("Provider `{provider}` sent an invalid response: {detail}"),
                "api_error",
                None,
                Some("upstream_protocol_error"),
                "api_error",
            ),
            GatewayError::UpstreamStream { provider, failure } => failure.info(provider),
            GatewayError::NotReady(why) => e(
                format!("Gateway not ready: {why}"),
                "api_error",
                None,
                Some("not_ready"),
                "api_error",
            ),
            GatewayError::LimiterUnavailable => e(
                "The shared rate limiter is unreachable and this gateway is set to fail closed; try again shortly".into(),
                "api_error",
                None,
                Some("limiter_unavailable"),
                "overloaded_error",
            ),
            GatewayError::CircuitOpen { model, retry_after_s } => e(
                format!(
                    "Every provider serving `{model}` is failing (circuit open); try again in {retry_after_s} s"
                ),
                "api_error",
                Some("model".into()),
                Some("circuit_open"),
                "overloaded_error",
            ),
            GatewayError::Forbidden { message, code } => e(
                message.clone(),
                "invalid_request_error",
                None,
                Some(code),
                "permission_error",
            ),
            GatewayError::RateLimited {
                scope,
                what,
                limit,
                retry_after_s,
            } => e(
                match *what {
                    "concurrency" => format!(
                        "Rate limit reached for {scope}: {limit} requests in flight at most; try again in {retry_after_s} s"
                    ),
                    _ => format!(
                        "Rate limit reached for {scope}: {limit} {what} per minute; try again in {retry_after_s} s"
                    ),
                },
                // OpenAI's own 429s say which limit in `type`.
                if *what == "tokens" { "tokens" } else { "requests" },
                None,
                Some("rate_limit_exceeded"),
                "rate_limit_error",
            ),
            GatewayError::BudgetExceeded {
                scope,
                period,
                spent,
                retry_after_s,
            } => e(
                format!(
                    "Budget exceeded for {scope} this {period}: {spent} spent; it resets in {retry_after_s} s"
                ),
                "budget_exceeded",
                None,
                Some("budget_exceeded"),
                "budget_exceeded",
            ),
        }
    }

    /// Removes credentials from the provider text this error carries (a
    /// provider may quote the key it was sent), before it is shown or stored.
    pub fn scrub(&mut self, s: &Scrubber) {
        match self {
            GatewayError::UpstreamConnect { detail, .. } | GatewayError::UpstreamProtocol { detail, .. } => {
                s.scrub_in_place(detail)
            }
            GatewayError::UpstreamAuth { message, .. } | GatewayError::UpstreamStatus { message, .. } => {
                s.scrub_in_place(message)
            }
            GatewayError::UpstreamStream { failure, .. } => failure.scrub(s),
            GatewayError::MalformedJson(_)
            | GatewayError::InvalidRequest { .. }
            | GatewayError::ModelNotFound(_)
            | GatewayError::ModelDisabled(_)
            | GatewayError::BodyTooLarge(_)
            | GatewayError::ClientTimeout(_)
            | GatewayError::MalformedHttp
            | GatewayError::RouteNotFound(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::Unauthorized(_)
            | GatewayError::UpstreamTimeout { .. }
            | GatewayError::NotReady(_)
            | GatewayError::LimiterUnavailable
            | GatewayError::CircuitOpen { .. }
            | GatewayError::Forbidden { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::BudgetExceeded { .. } => {}
        }
    }

    /// The body in the caller's dialect.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        render(dialect, &self.info())
    }
}

impl From<BodyError> for GatewayError {
    fn from(e: BodyError) -> Self {
        match &e {
            BodyError::MalformedJson(m) => GatewayError::MalformedJson(m.clone()),
            BodyError::NotAnObject | BodyError::MissingField(_) | BodyError::InvalidField { .. } => {
                GatewayError::InvalidRequest {
                    message: e.to_string(),
                    param: e.param().map(str::to_string),
                }
            }
        }
    }
}

impl From<CodecError> for GatewayError {
    fn from(e: CodecError) -> Self {
        GatewayError::InvalidRequest {
            message: e.message,
            param: e.param,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(GatewayError::ModelNotFound("x".into()).status(), 404);
        assert_eq!(
            GatewayError::UpstreamAuth {
                provider: "p".into(),
                status: 401,
                message: "bad".into()
            }
            .status(),
            502
        );
        assert_eq!(
            GatewayError::UpstreamStatus {
                provider: "p".into(),
                status: 429,
                message: "slow down".into()
            }
            .status(),
            429
        );
        assert_eq!(GatewayError::BodyTooLarge(1).status(), 413);
        let open = GatewayError::CircuitOpen {
            model: "smart".into(),
            retry_after_s: 3,
        };
        assert_eq!((open.status(), open.kind()), (503, "circuit_open"));
        let v: serde_json::Value = serde_json::from_slice(&open.body(Dialect::Anthropic)).expect("json");
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("`smart`")));
    }

    #[test]
    fn model_not_found_names_the_model() {
        let b = GatewayError::ModelNotFound("gpt-9".into()).body(Dialect::OpenAi);
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("gpt-9")));
        assert_eq!(v["error"]["code"], "model_not_found");
    }
}
