//! Who is calling: the second step of the lifecycle. A typed principal, not
//! a flag, so later stages (limits, budgets, key scopes) and every record
//! know whose request it is; managed keys add a variant.

use crate::error::GatewayError;
use crate::secret::{constant_time_eq, Secret};
use http::HeaderMap;

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No master key is configured: `/v1/*` is open (start-up warns).
    Anonymous,
    /// The gateway's master key.
    Master,
}

impl Principal {
    /// The managed key id usage is attributed to (empty for the master key
    /// and anonymous callers).
    pub fn key_id(&self) -> &str {
        match self {
            Principal::Anonymous | Principal::Master => "",
        }
    }
}

/// The credential a caller presented: `Authorization: Bearer` (OpenAI SDKs,
/// new Anthropic SDKs; the scheme is case-insensitive, RFC 9110) or
/// `x-api-key` (older Anthropic clients, the Vercel AI SDK).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Authenticates an API request (`/v1/*`).
pub fn authenticate(headers: &HeaderMap, master: Option<&Secret>) -> Result<Principal, GatewayError> {
    let Some(master) = master else {
        return Ok(Principal::Anonymous);
    };
    match presented_key(headers) {
        None => Err(GatewayError::Unauthorized(
            "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`) with the gateway key",
        )),
        Some(k) if constant_time_eq(k.as_bytes(), master.expose().as_bytes()) => Ok(Principal::Master),
        Some(_) => Err(GatewayError::Unauthorized("Invalid API key for this gateway")),
    }
}

/// Authenticates an admin request: the master key when one is set;
/// otherwise loopback clients only.
pub fn authenticate_admin(
    headers: &HeaderMap,
    master: Option<&Secret>,
    from_loopback: bool,
) -> Result<Principal, GatewayError> {
    match master {
        Some(m) => match presented_key(headers) {
            Some(k) if constant_time_eq(k.as_bytes(), m.expose().as_bytes()) => Ok(Principal::Master),
            Some(_) => Err(GatewayError::Unauthorized("Invalid admin key")),
            None => Err(GatewayError::Unauthorized(
                "The admin API needs the master key: `Authorization: Bearer <key>`",
            )),
        },
        None if from_loopback => Ok(Principal::Anonymous),
        None => Err(GatewayError::Unauthorized(
            "No master key is configured: the admin API answers loopback clients only",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn bearer_is_case_insensitive_and_x_api_key_works() {
        let m = Secret::new("mk");
        for h in [
            headers(&[("authorization", "Bearer mk")]),
            headers(&[("authorization", "BEARER mk")]),
            headers(&[("authorization", "bearer  mk ")]),
            headers(&[("x-api-key", "mk")]),
        ] {
            assert_eq!(authenticate(&h, Some(&m)), Ok(Principal::Master), "{h:?}");
        }
        assert!(authenticate(&headers(&[("authorization", "Basic mk")]), Some(&m)).is_err());
        assert!(authenticate(&headers(&[("authorization", "Bearer nope")]), Some(&m)).is_err());
        assert_eq!(authenticate(&HeaderMap::new(), None), Ok(Principal::Anonymous));
    }

    #[test]
    fn admin_without_a_master_key_is_loopback_only() {
        assert_eq!(
            authenticate_admin(&HeaderMap::new(), None, true),
            Ok(Principal::Anonymous)
        );
        assert!(authenticate_admin(&HeaderMap::new(), None, false).is_err());
        let m = Secret::new("mk");
        assert!(authenticate_admin(&HeaderMap::new(), Some(&m), true).is_err());
    }
}
