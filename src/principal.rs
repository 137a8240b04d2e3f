//! Who is calling: the second step of the lifecycle. A typed principal, not
//! a flag, so later stages (limits, budgets, key scopes) and every record
//! know whose request it is; managed keys add a variant.

use crate::error::GatewayError;
use crate::governance::keys::{KeyRing, ManagedKey};
use crate::secret::{constant_time_eq, Secret};
use http::HeaderMap;
use std::sync::Arc;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Neither a master key nor any managed key is configured: `/v1/*` is
    /// open (start-up warns).
    Anonymous,
    /// The gateway's master key.
    Master,
    /// A managed key (`sk-sy-…`).
    Key(Arc<ManagedKey>),
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Principal::Anonymous, Principal::Anonymous) | (Principal::Master, Principal::Master) => true,
            (Principal::Key(a), Principal::Key(b)) => a.rec.id == b.rec.id,
            _ => false,
        }
    }
}

impl Eq for Principal {}

impl Principal {
    /// The managed key id usage is attributed to (empty for the master key
    /// and anonymous callers).
    pub fn key_id(&self) -> &str {
        match self {
            Principal::Anonymous | Principal::Master => "",
            Principal::Key(k) => &k.rec.id,
        }
    }

    /// The managed key's name (empty otherwise).
    pub fn key_name(&self) -> &str {
        match self {
            Principal::Anonymous | Principal::Master => "",
            Principal::Key(k) => &k.rec.name,
        }
    }

    /// The managed key, if one was used.
    pub fn key(&self) -> Option<&ManagedKey> {
        match self {
            Principal::Key(k) => Some(k),
            Principal::Anonymous | Principal::Master => None,
        }
    }
}

/// The credential a caller presented: `Authorization: Bearer` (OpenAI SDKs,
/// new Anthropic SDKs; the scheme is case-insensitive, RFC 9110) or
/// `x-api-key` (older Anthropic clients, the Vercel AI SDK).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    // Bytes first, text last: this runs on every request of a gateway with
    // keys, and only the key itself needs checking as text.
    fn text(b: &[u8]) -> Option<&str> {
        std::str::from_utf8(b.trim_ascii()).ok()
    }
    let bearer = headers.get(http::header::AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes().trim_ascii_start();
        let (scheme, rest) = v.split_at_checked(6)?;
        (scheme.eq_ignore_ascii_case(b"bearer") && rest.first() == Some(&b' ')).then_some(rest)
    });
    bearer
        .and_then(text)
        .or_else(|| headers.get("x-api-key").and_then(|v| text(v.as_bytes())))
}

/// Authenticates an API request (`/v1/*`): the master key, or a managed
/// key that is neither disabled nor expired. With neither configured the
/// API is open.
pub fn authenticate(
    headers: &HeaderMap,
    master: Option<&Secret>,
    keys: &KeyRing,
    now_ms: u64,
) -> Result<Principal, GatewayError> {
    if master.is_none() && keys.is_empty() {
        return Ok(Principal::Anonymous);
    }
    let Some(k) = presented_key(headers) else {
        return Err(GatewayError::Unauthorized(
            "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`) with the gateway key",
        ));
    };
    if master.is_some_and(|m| constant_time_eq(k.as_bytes(), m.expose().as_bytes())) {
        return Ok(Principal::Master);
    }
    match keys.find(k, now_ms) {
        Some(key) => match key.rec.refusal(now_ms) {
            Some(why) => Err(GatewayError::Unauthorized(why)),
            None => {
                key.touch(now_ms);
                Ok(Principal::Key(key))
            }
        },
        None => Err(GatewayError::Unauthorized("Invalid API key for this gateway")),
    }
}

/// Authenticates an admin request: the master key when one is set;
/// otherwise loopback clients only.
pub fn authenticate_admin(
    headers: &HeaderMap,
    master: Option<&Secret>,
    keys: &KeyRing,
    from_loopback: bool,
) -> Result<Principal, GatewayError> {
    // A managed key with `admin: true` is as good as the master key (a
    // presented key no managed key matches may still be the master key).
    if let Some(k) = presented_key(headers) {
        let now = crate::governance::now_ms();
        if let Some(key) = keys.find(k, now) {
            return if key.rec.admin && key.rec.refusal(now).is_none() {
                Ok(Principal::Key(key))
            } else {
                Err(GatewayError::Unauthorized("This API key may not use the admin API"))
            };
        }
    }
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
        let ring = KeyRing::default();
        for h in [
            headers(&[("authorization", "Bearer mk")]),
            headers(&[("authorization", "BEARER mk")]),
            headers(&[("authorization", "bearer  mk ")]),
            headers(&[("authorization", "  Bearer mk")]),
            headers(&[("x-api-key", "mk")]),
            // Not a bearer credential: the `x-api-key` is the one presented.
            headers(&[("authorization", "Bearermk"), ("x-api-key", "mk")]),
            headers(&[("authorization", "Basic bWs="), ("x-api-key", "mk")]),
        ] {
            assert_eq!(authenticate(&h, Some(&m), &ring, 0), Ok(Principal::Master), "{h:?}");
        }
        for bad in ["Basic mk", "Bearer", "Bearer ", "Bearermk", "Bearer\tmk", "mk"] {
            assert!(
                authenticate(&headers(&[("authorization", bad)]), Some(&m), &ring, 0).is_err(),
                "{bad}"
            );
        }
        assert!(authenticate(&headers(&[("authorization", "Bearer nope")]), Some(&m), &ring, 0).is_err());
        assert_eq!(
            authenticate(&HeaderMap::new(), None, &ring, 0),
            Ok(Principal::Anonymous)
        );
    }

    #[test]
    fn managed_keys_authenticate_until_disabled_or_expired_and_close_the_open_api() {
        use crate::governance::keys::{hash_secret, KeyRecord, Source};
        let rec = |disabled, expires| KeyRecord {
            expires_at_ms: expires,
            disabled,
            ..KeyRecord::new("key_1".into(), "app".into(), hash_secret("sk-sy-good"), Source::Admin)
        };
        let ring = KeyRing::default();
        ring.set(vec![rec(false, Some(100))]);
        let with = |k: &str| headers(&[("authorization", &format!("Bearer {k}"))]);
        let p = authenticate(&with("sk-sy-good"), None, &ring, 50).expect("valid key");
        assert_eq!(p.key_id(), "key_1");
        assert_eq!(
            authenticate(&with("sk-sy-good"), None, &ring, 100),
            Err(GatewayError::Unauthorized("This API key has expired"))
        );
        // Keys exist, so a caller without one is refused even with no master key.
        assert!(authenticate(&HeaderMap::new(), None, &ring, 0).is_err());
        assert!(authenticate(&with("sk-sy-bad"), None, &ring, 0).is_err());
        ring.set(vec![rec(true, None)]);
        assert_eq!(
            authenticate(&with("sk-sy-good"), None, &ring, 0),
            Err(GatewayError::Unauthorized("This API key is disabled"))
        );
        // Not an admin key.
        assert!(authenticate_admin(&with("sk-sy-good"), None, &ring, true).is_err());
        // A master key that looks like a managed one still opens the admin API.
        let m = Secret::new("sk-sy-master");
        assert_eq!(
            authenticate_admin(&with("sk-sy-master"), Some(&m), &ring, false),
            Ok(Principal::Master)
        );
    }

    #[test]
    fn admin_without_a_master_key_is_loopback_only() {
        let ring = KeyRing::default();
        assert_eq!(
            authenticate_admin(&HeaderMap::new(), None, &ring, true),
            Ok(Principal::Anonymous)
        );
        assert!(authenticate_admin(&HeaderMap::new(), None, &ring, false).is_err());
        let m = Secret::new("mk");
        assert!(authenticate_admin(&HeaderMap::new(), Some(&m), &ring, true).is_err());
    }
}
