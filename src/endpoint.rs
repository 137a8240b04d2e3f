//! Which endpoint a request targets: the first step of the lifecycle, and
//! the label every log line, metric and usage record carries.

use crate::error::GatewayError;
use switchyard_filters::error::Dialect;

/// The endpoints the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /health`: liveness.
    Health,
    /// `GET /health/ready`: can serve.
    Ready,
    /// `GET /metrics`: Prometheus.
    Metrics,
    /// `/admin/*`: the admin API (its own router checks methods).
    Admin,
    /// `GET /v1/models`.
    Models,
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic Messages API).
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `GET /v1/usage`: the calling key's spend, budget and limits.
    Usage,
}

impl Endpoint {
    /// Matches method and path; `Err` is the error to answer (404 for an
    /// unknown path, 405 for a known path with another method).
    pub fn classify(method: &str, path: &str) -> Result<Endpoint, GatewayError> {
        if path.starts_with("/admin/") {
            return Ok(Endpoint::Admin);
        }
        let ep = match path {
            "/health" => Endpoint::Health,
            "/health/ready" => Endpoint::Ready,
            "/metrics" => Endpoint::Metrics,
            "/v1/models" => Endpoint::Models,
            "/v1/chat/completions" => Endpoint::Chat,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::CountTokens,
            "/v1/usage" => Endpoint::Usage,
            _ => return Err(GatewayError::RouteNotFound(path.to_string())),
        };
        let get = ep.allow() == "GET, HEAD";
        if (get && (method == "GET" || method == "HEAD")) || (!get && method == "POST") {
            Ok(ep)
        } else {
            Err(GatewayError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
            })
        }
    }

    /// The methods it accepts (the `Allow` header of a 405).
    pub fn allow(self) -> &'static str {
        match self {
            Endpoint::Health | Endpoint::Ready | Endpoint::Metrics | Endpoint::Models | Endpoint::Usage => "GET, HEAD",
            Endpoint::Admin | Endpoint::Chat | Endpoint::Embeddings | Endpoint::Messages | Endpoint::CountTokens => {
                "POST"
            }
        }
    }

    /// Label for logs, metrics and usage records.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::Ready => "ready",
            Endpoint::Metrics => "metrics",
            Endpoint::Admin => "admin",
            Endpoint::Models => "models",
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::Usage => "usage",
        }
    }

    /// The dialect its callers speak (errors are rendered in it).
    pub fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Anthropic,
            Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Metrics
            | Endpoint::Admin
            | Endpoint::Models
            | Endpoint::Usage
            | Endpoint::Chat
            | Endpoint::Embeddings => Dialect::OpenAi,
        }
    }

    /// Whether the request is routed to a model (and so gets a usage record).
    pub fn routed(self) -> bool {
        matches!(
            self,
            Endpoint::Chat | Endpoint::Embeddings | Endpoint::Messages | Endpoint::CountTokens
        )
    }

    /// The dialect of a path that did not classify, so even a 404 under
    /// `/v1/messages…` reaches an Anthropic caller in its own envelope.
    pub fn dialect_of_path(path: &str) -> Dialect {
        if path.starts_with("/v1/messages") {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_methods() {
        assert_eq!(Endpoint::classify("POST", "/v1/chat/completions"), Ok(Endpoint::Chat));
        assert!(matches!(
            Endpoint::classify("GET", "/v1/chat/completions"),
            Err(GatewayError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            Endpoint::classify("GET", "/v2/x"),
            Err(GatewayError::RouteNotFound(_))
        ));
        assert_eq!(Endpoint::classify("HEAD", "/health"), Ok(Endpoint::Health));
        assert_eq!(Endpoint::classify("DELETE", "/admin/keys/x"), Ok(Endpoint::Admin));
        assert!(matches!(
            Endpoint::classify("POST", "/metrics"),
            Err(GatewayError::MethodNotAllowed { .. })
        ));
        assert_eq!(Endpoint::dialect_of_path("/v1/messages/x"), Dialect::Anthropic);
    }
}
