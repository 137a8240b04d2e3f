//! Managed API keys: what a key is, how its secret is made and hashed, and
//! the in-memory ring the request path looks keys up in (a hash map behind
//! an `ArcSwap`: one SHA-256 and one map lookup per request, never store
//! I/O).
//!
//! A secret is `sk-sy-` followed by 32 random bytes (base64url, 43
//! characters). Only its SHA-256 is kept (`sha256:<hex>`): the secret has
//! 256 bits of entropy, so a slow password hash would add cost and no
//! safety. The same hash declares a key in the config file, so a fleet
//! managed as code shares keys without sharing secrets.

use super::window::Period;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What every managed key secret starts with.
pub const PREFIX: &str = "sk-sy-";

/// Per-scope rate limits (`limits:` on a key, a user path, a model or a
/// provider).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute (sliding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute, input + output (admission uses the estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
}

/// A spending cap (`budget:` on a key, `budgets:` on a user path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// USD per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Tokens (input + output) per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// `hour`, `day`, `week`, `month` or a rolling window (`24h`).
    #[serde(with = "period_text")]
    pub period: Period,
    /// Fraction (0–1) past which answers carry a warning header and the
    /// live log an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft: Option<f64>,
}

impl BudgetSpec {
    /// Why the spec is unusable, if it is.
    pub fn validate(&self) -> Result<(), String> {
        if self.usd.is_none() && self.tokens.is_none() {
            return Err("a budget needs `usd`, `tokens` or both".into());
        }
        if self.usd.is_some_and(|u| !u.is_finite() || u < 0.0) {
            return Err("`usd` must be a non-negative number".into());
        }
        if self.soft.is_some_and(|s| !(s > 0.0 && s < 1.0)) {
            return Err("`soft` must be a fraction between 0 and 1".into());
        }
        Ok(())
    }
}

mod period_text {
    use super::Period;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Period, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.label())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Period, D::Error> {
        let s = String::deserialize(d)?;
        Period::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret that was replaced and still works until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// Its hash.
    pub hash: String,
    /// When it stops working (Unix ms).
    pub until_ms: u64,
}

/// Where a key was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `keys:` in the config file (changed by editing it).
    Config,
    /// `POST /admin/keys` (kept in the store).
    Admin,
}

/// One key as stored and as the admin API shows it (without its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable id (`key_…`); usage records carry it.
    pub id: String,
    /// Human name; usage records carry it too.
    pub name: String,
    /// `sha256:<hex>` of the secret.
    pub hash: String,
    /// The secret's last four characters, to tell keys apart.
    #[serde(default)]
    pub hint: String,
    /// Usage rolls up here; a request may only narrow it.
    #[serde(default)]
    pub user_path: String,
    /// Tags added to every request made with the key.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Allowed models: names and globs (`openai/*`); empty allows all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Allowed endpoints by label (`chat`, `messages`, …); empty allows all.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// When the key stops working (Unix ms).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// A disabled key is refused (revocation deletes it).
    #[serde(default)]
    pub disabled: bool,
    /// May call the admin API.
    #[serde(default)]
    pub admin: bool,
    /// Creation time (Unix ms).
    #[serde(default)]
    pub created_ms: u64,
    /// Its own rate limits.
    #[serde(default)]
    pub limits: Limits,
    /// Its own budget.
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    /// The secret a rotation replaced, while it still works.
    #[serde(default)]
    pub previous: Option<Previous>,
    /// Config file or admin API.
    pub source: Source,
}

impl KeyRecord {
    /// A key with every optional field empty: no limits, no budget, all
    /// models and endpoints, no expiry.
    pub fn new(id: String, name: String, hash: String, source: Source) -> KeyRecord {
        KeyRecord {
            id,
            name,
            hash,
            hint: String::new(),
            user_path: String::new(),
            tags: Vec::new(),
            models: Vec::new(),
            endpoints: Vec::new(),
            expires_at_ms: None,
            disabled: false,
            admin: false,
            created_ms: 0,
            limits: Limits::default(),
            budget: None,
            previous: None,
            source,
        }
    }

    /// Whether requests made now with it are refused, and why.
    pub fn refusal(&self, now_ms: u64) -> Option<&'static str> {
        if self.disabled {
            Some("This API key is disabled")
        } else if self.expires_at_ms.is_some_and(|t| now_ms >= t) {
            Some("This API key has expired")
        } else {
            None
        }
    }

    /// Whether it may call `endpoint` (a label).
    pub fn allows_endpoint(&self, label: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|e| e == label)
    }

    /// Whether `name` (a public model name or `provider/model`) is allowed.
    pub fn allows_model(&self, name: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| glob(p, name))
    }
}

/// A key in the ring: its record plus what changes per request.
#[derive(Debug)]
pub struct ManagedKey {
    /// The record.
    pub rec: KeyRecord,
    /// Last request made with it (Unix ms; 0 never).
    pub last_used_ms: AtomicU64,
    /// Its counters' names and scope label, made once (not per request).
    pub names: ScopeNames,
    /// The current secret's hash, parsed once (a rotated-out secret's
    /// hash finds the key too, and is told apart by this).
    hash: [u8; 32],
}

/// The names of one scope's counters (`<base>:rpm`, …) and how errors name
/// the scope ("key `app`").
#[derive(Debug)]
pub struct ScopeNames {
    /// "key `name`", "user path `/acme`", …
    pub scope: Arc<str>,
    /// `<base>:rpm`.
    pub rpm: Arc<str>,
    /// `<base>:tpm`.
    pub tpm: Arc<str>,
    /// `<base>:concurrency`.
    pub concurrency: Arc<str>,
    /// `<base>:budget:usd` (keys) or `<base>:usd` (path budgets).
    pub usd: Arc<str>,
    /// … `:tokens`.
    pub tokens: Arc<str>,
    /// … `:unpriced`: tokens of models with no known price.
    pub unpriced: Arc<str>,
}

impl ScopeNames {
    /// Names under `base` for limits and `budget_base` for a budget.
    pub fn new(scope: String, base: &str, budget_base: &str) -> ScopeNames {
        let n = |b: &str, s: &str| -> Arc<str> { format!("{b}:{s}").into() };
        ScopeNames {
            scope: scope.into(),
            rpm: n(base, "rpm"),
            tpm: n(base, "tpm"),
            concurrency: n(base, "concurrency"),
            usd: n(budget_base, "usd"),
            tokens: n(budget_base, "tokens"),
            unpriced: n(budget_base, "unpriced"),
        }
    }

    /// The names of key `rec`'s counters.
    pub fn of_key(rec: &KeyRecord) -> ScopeNames {
        let base = format!("key:{}", rec.id);
        ScopeNames::new(format!("key `{}`", rec.name), &base, &format!("{base}:budget"))
    }
}

impl ManagedKey {
    /// Notes a use at `now_ms` (a relaxed store: approximate is enough).
    /// Written at most once a second, so workers on other
    /// cores do not fight over the cache line on every request.
    pub fn touch(&self, now_ms: u64) {
        if self.last_used_ms.load(Ordering::Relaxed) / 1000 != now_ms / 1000 {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
        }
    }
}

/// `*` matches any run of characters (also `/`); everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == s;
    };
    let Some(mut s) = s.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    let (last, middle) = parts.split_last().unwrap_or((&"", &[]));
    for p in middle {
        match s.find(p) {
            Some(i) => s = &s[i + p.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last)
}

/// A new secret: the prefix and 32 random bytes from the OS.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "the OS random source failed".to_string())?;
    Ok(format!("{PREFIX}{}", base64url(&bytes)))
}

/// A new key id (`key_` and 12 random hex digits).
pub fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "the OS random source failed".to_string())?;
    Ok(format!("key_{}", hex(&bytes)))
}

/// The stored form of a secret: `sha256:<hex>`.
pub fn hash_secret(secret: &str) -> String {
    format!("sha256:{}", hex(digest(secret).as_ref()))
}

fn digest(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Parses `sha256:<64 hex digits>`.
pub fn parse_hash(h: &str) -> Result<[u8; 32], String> {
    let bad =
        || format!("`{h}` is not a key hash: expected sha256:<64 hex digits> (`switchyard keys hash` prints one)");
    let hexpart = h.strip_prefix("sha256:").ok_or_else(bad)?;
    if hexpart.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hexpart[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Lowercase hex of `b` (ids derived from digests, hashes).
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn base64url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | u32::from(*x) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Every key, by hash of its secret (and of a rotated-out secret still in
/// its grace period), swapped whole when keys change.
#[derive(Default)]
pub struct KeyRing {
    by_hash: ArcSwap<HashMap<[u8; 32], Arc<ManagedKey>, DigestHash>>,
}

/// Hashes a SHA-256 digest by its first eight bytes: it is already
/// uniformly random, and no caller can choose a secret whose digest
/// collides (SipHash would add nothing but time on every request).
#[derive(Default, Clone, Copy)]
pub struct DigestHash;

impl std::hash::BuildHasher for DigestHash {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// See [`DigestHash`].
#[derive(Default)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes (no length prefix for arrays).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

impl KeyRing {
    /// Replaces the ring with `records`; a key already in the ring keeps its
    /// last-used time. Records whose hash does not parse are skipped (config
    /// validation reports them).
    pub fn set(&self, records: Vec<KeyRecord>) {
        let old: HashMap<String, u64> = self
            .by_hash
            .load()
            .values()
            .map(|k| (k.rec.id.clone(), k.last_used_ms.load(Ordering::Relaxed)))
            .collect();
        let last = |id: &str| old.get(id).copied().unwrap_or(0);
        let mut map = HashMap::with_capacity_and_hasher(records.len(), DigestHash);
        for rec in records {
            let Ok(h) = parse_hash(&rec.hash) else { continue };
            let prev = rec.previous.as_ref().and_then(|p| parse_hash(&p.hash).ok());
            let k = Arc::new(ManagedKey {
                last_used_ms: AtomicU64::new(last(&rec.id)),
                names: ScopeNames::of_key(&rec),
                hash: h,
                rec,
            });
            if let Some(p) = prev {
                map.insert(p, k.clone());
            }
            map.insert(h, k);
        }
        self.by_hash.store(Arc::new(map));
    }

    /// Restores last-use times saved by an earlier run.
    pub fn restore_last_used(&self, times: &std::collections::BTreeMap<String, u64>) {
        for k in self.by_hash.load().values() {
            if let Some(t) = times.get(&k.rec.id) {
                k.last_used_ms.fetch_max(*t, Ordering::Relaxed);
            }
        }
    }

    /// Whether no key is declared.
    pub fn is_empty(&self) -> bool {
        self.by_hash.load().is_empty()
    }

    /// The key whose secret is `secret`, if any, and whether `secret` is a
    /// rotated-out one (valid only until its grace period ends).
    pub fn find(&self, secret: &str, now_ms: u64) -> Option<Arc<ManagedKey>> {
        if !secret.starts_with(PREFIX) {
            return None;
        }
        let h = digest(secret);
        let k = self.by_hash.load().get(&h).cloned()?;
        let current = k.hash == h;
        if !current && k.rec.previous.as_ref().is_none_or(|p| now_ms >= p.until_ms) {
            return None;
        }
        Some(k)
    }

    /// Every key (each once).
    pub fn all(&self) -> Vec<Arc<ManagedKey>> {
        let mut seen = std::collections::HashSet::new();
        let mut v: Vec<Arc<ManagedKey>> = self
            .by_hash
            .load()
            .values()
            .filter(|k| seen.insert(k.rec.id.clone()))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.rec.created_ms.cmp(&b.rec.created_ms).then(a.rec.id.cmp(&b.rec.id)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, secret: &str) -> KeyRecord {
        KeyRecord::new(id.into(), id.into(), hash_secret(secret), Source::Admin)
    }

    #[test]
    fn secrets_are_long_random_and_only_their_hash_finds_them() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{a}");
        assert_ne!(a, b);
        let h = hash_secret(&a);
        assert!(h.starts_with("sha256:") && h.len() == 71 && !h.contains(&a[PREFIX.len()..]));
        assert_eq!(parse_hash(&h).unwrap().len(), 32);
        assert!(parse_hash("sha256:xyz").is_err() && parse_hash("md5:00").is_err());
        let ring = KeyRing::default();
        ring.set(vec![rec("key_a", &a)]);
        assert_eq!(ring.find(&a, 0).unwrap().rec.id, "key_a");
        assert!(ring.find(&b, 0).is_none());
        assert!(ring.find("not-a-managed-key", 0).is_none());
    }

    #[test]
    fn a_rotated_secret_works_until_its_grace_period_ends() {
        let (old, new) = ("sk-sy-old", "sk-sy-new");
        let mut r = rec("key_a", new);
        r.previous = Some(Previous {
            hash: hash_secret(old),
            until_ms: 1000,
        });
        let ring = KeyRing::default();
        ring.set(vec![r]);
        assert!(ring.find(new, 5000).is_some());
        assert!(ring.find(old, 999).is_some());
        assert!(ring.find(old, 1000).is_none());
        assert_eq!(ring.all().len(), 1);
    }

    #[test]
    fn refusals_endpoints_and_model_globs() {
        let mut r = rec("k", "sk-sy-x");
        assert_eq!(r.refusal(0), None);
        r.expires_at_ms = Some(10);
        assert!(r.refusal(10).is_some() && r.refusal(9).is_none());
        r.disabled = true;
        assert_eq!(r.refusal(0), Some("This API key is disabled"));
        r.models = vec!["openai/*".into(), "claude-*-latest".into(), "fast".into()];
        for ok in ["openai/gpt-4o", "claude-3-5-sonnet-latest", "fast"] {
            assert!(r.allows_model(ok), "{ok}");
        }
        for no in ["anthropic/claude", "gpt-4o", "faster", "claude-3-5-sonnet"] {
            assert!(!r.allows_model(no), "{no}");
        }
        assert!(glob("*", "") && glob("a*b*c", "a-b-c") && !glob("a*b*c", "a-c-b"));
        r.endpoints = vec!["chat".into()];
        assert!(r.allows_endpoint("chat") && !r.allows_endpoint("messages"));
    }

    #[test]
    fn base64url_matches_the_rfc_examples() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
