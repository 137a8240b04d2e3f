//! Everything the gateway knows about a provider, in one place per family.
//!
//! A [`Family`] is one provider type (`openai`, `groq`, `anthropic`, …): its
//! environment prefixes, default base URL, credential header, wire dialect,
//! capabilities, and an [`Adapter`] that owns the paths and headers of each
//! [`Operation`] and how its model list reads. A [`Provider`] is one
//! configured instance of a family (`openai-east`).
//!
//! * An OpenAI-compatible provider is one row in [`openai::FAMILIES`].
//! * A provider with its own URL scheme but an existing dialect is one
//!   adapter file (see [`azure`]).
//! * A new dialect is one adapter file here plus one codec in
//!   `switchyard_filters` (see [`anthropic`], [`gemini`]).

pub mod anthropic;
pub mod azure;
pub mod gemini;
pub mod openai;

use crate::secret::Secret;
use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_filters::ir::WireDialect;

/// How the provider credential is sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI family).
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKeyHeader,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    GoogApiKey,
}

impl AuthStyle {
    /// The header that carries `key` in this style.
    pub fn header(self, key: &str) -> (&'static str, String) {
        match self {
            AuthStyle::Bearer => ("authorization", format!("Bearer {key}")),
            AuthStyle::ApiKeyHeader => ("api-key", key.to_string()),
            AuthStyle::XApiKey => ("x-api-key", key.to_string()),
            AuthStyle::GoogApiKey => ("x-goog-api-key", key.to_string()),
        }
    }
}

/// What a family serves, so the gateway can refuse clearly (or pick another
/// path) instead of sending a request the provider does not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// An embeddings endpoint.
    pub embeddings: bool,
    /// A native token-counting endpoint.
    pub count_tokens: bool,
    /// The OpenAI Responses API, natively.
    pub responses: bool,
    /// A batch API.
    pub batches: bool,
    /// A files API.
    pub files: bool,
}

/// An upstream operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Chat completions / messages / generateContent.
    Chat {
        /// A streamed response is wanted.
        stream: bool,
    },
    /// Embeddings.
    Embeddings,
    /// Native token counting.
    CountTokens,
    /// Model listing (background discovery).
    Models,
}

/// The per-family behaviour: how each operation is addressed, which caller
/// headers the provider understands, how its model list reads.
pub trait Adapter: Sync + fmt::Debug {
    /// Path (and query) of `op` for `model` at instance `p`.
    fn path(&self, p: &Provider, op: Operation, model: &str) -> String;

    /// Family-specific request headers; `caller` holds the caller headers
    /// the gateway keeps for providers that understand them.
    fn headers(&self, _caller: &CallerHeaders, _out: &mut Vec<(&'static str, String)>) {}

    /// Whether the instance can list its models (background discovery).
    fn lists_models(&self, _p: &Provider) -> bool {
        true
    }

    /// The model ids in a `Models` response body.
    fn parse_models(&self, body: &[u8]) -> Result<HashSet<String>, String> {
        openai::parse_model_list(body)
    }
}

/// Static facts about a provider type.
#[derive(Debug)]
pub struct Family {
    /// Name used in config `type:` and as the default instance name.
    pub name: &'static str,
    /// Environment prefixes (`OPENAI` → `OPENAI_API_KEY`); the longest match wins.
    pub env_prefixes: &'static [&'static str],
    /// Default base URL (SDK convention, `/v1` included where the SDK has it).
    pub default_base_url: Option<&'static str>,
    /// Path appended to a base URL given without one: `/v1` for local
    /// OpenAI-compatible servers (users write `http://localhost:11434`),
    /// `/v1beta` for Gemini.
    pub bare_url_path: Option<&'static str>,
    /// Whether an API key is optional (local servers).
    pub key_optional: bool,
    /// Credential header style.
    pub auth: AuthStyle,
    /// The wire dialect its chat endpoint speaks.
    pub wire: WireDialect,
    /// What it serves.
    pub capabilities: Capabilities,
    /// Paths, headers, model lists.
    pub adapter: &'static dyn Adapter,
}

impl Family {
    /// Every family, in the order environment providers are listed.
    pub fn all() -> impl Iterator<Item = &'static Family> {
        openai::FAMILIES
            .iter()
            .take(1)
            .chain(std::iter::once(&azure::FAMILY))
            .chain(openai::FAMILIES.iter().skip(1))
            .chain([&anthropic::FAMILY, &gemini::FAMILY])
    }

    /// The family named `name` (config `type:`).
    pub fn by_name(name: &str) -> Option<&'static Family> {
        Family::all().find(|f| f.name == name)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A parsed upstream base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// https?
    pub tls: bool,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// Port (default 443/80).
    pub port: u16,
    /// Path prefix without trailing slash (`/v1`, `/openai/v1`, ``).
    pub path: String,
    /// Value for the `Host` header.
    pub host_header: String,
}

impl BaseUrl {
    /// Parses `http(s)://host[:port][/path]`.
    pub fn parse(s: &str) -> Result<BaseUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("`{s}` must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!(
                "`{s}` is not a plain base URL (no credentials, query or fragment)"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err(format!("`{s}`: unterminated IPv6 literal"));
            };
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("`{s}`: bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("`{s}`: bad authority")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| format!("`{s}`: bad port `{p}`"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("`{s}`: empty host"));
        }
        let host_header = if port == default_port {
            authority
                .rsplit_once(':')
                .filter(|_| !authority.ends_with(']'))
                .map_or(authority, |(h, _)| h)
                .to_string()
        } else {
            authority.to_string()
        };
        Ok(BaseUrl {
            tls,
            host,
            port,
            path: path.trim_end_matches('/').to_string(),
            host_header,
        })
    }

    /// `scheme://host:port/path`, for display.
    pub fn display(&self) -> String {
        format!(
            "{}://{}:{}{}",
            if self.tls { "https" } else { "http" },
            self.host,
            self.port,
            self.path
        )
    }
}

/// How often one target is tried before the plan moves on (`retry:` of a
/// provider): failures in the retryable set wait a full-jitter backoff, or
/// the provider's `Retry-After` when it fits under the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub attempts: u32,
    /// Backoff before the first retry; doubles each retry.
    pub backoff: Duration,
    /// Longest wait, and the longest `Retry-After` honoured: a provider
    /// asking for more is skipped (the next target is tried at once).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first), or `None`
    /// when the provider asked for longer than [`RetryPolicy::max_backoff`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(d) = retry_after {
            return (d <= self.max_backoff).then_some(d);
        }
        let cap = self
            .backoff
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(fastrand::u64(0..=ms)))
    }
}

/// A configured provider instance.
#[derive(Debug)]
pub struct Provider {
    /// Instance name (`openai`, `openai-east`).
    pub name: String,
    /// Its type.
    pub family: &'static Family,
    /// Where it lives.
    pub base: BaseUrl,
    /// Credentials used in rotation (may be empty for local servers).
    pub keys: Vec<Secret>,
    next_key: AtomicUsize,
    /// Headers every request carries, parsed once: `host`, `user-agent`,
    /// then the configured extra headers.
    fixed_headers: Vec<(HeaderName, HeaderValue)>,
    /// The credential header for each key, in rotation order (marked
    /// sensitive, so HTTP/2 never indexes them).
    auth_headers: Vec<(HeaderName, HeaderValue)>,
    /// Models configured explicitly (`_MODELS` / `models:`).
    pub models: Vec<String>,
    /// Extra headers sent on every upstream request.
    pub headers: Vec<(String, String)>,
    /// Azure `api-version` (deployment-style URLs).
    pub api_version: Option<String>,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Per-read timeout (long: reasoning models pause for minutes).
    pub read_timeout: Duration,
    /// Whether to fetch `/models` in the background.
    pub discover_models: bool,
    /// Retries of a failed call to this provider.
    pub retry: RetryPolicy,
    /// Its circuit breakers' policy (`None`: no breaker).
    pub breaker: Option<crate::resilience::breaker::BreakerPolicy>,
    /// How long the response head (and, for a stream, its first bytes) may
    /// take before the attempt fails over.
    pub first_byte_timeout: Option<Duration>,
    /// How long a stream may go without a byte before it ends with an error
    /// event (defaults to the read timeout).
    pub stream_idle_timeout: Option<Duration>,
    /// How long a key answering 429 without `Retry-After` is set aside.
    pub key_cooldown: Duration,
    /// Per key: set aside until this time (`resilience::clock_ms`; 0 = ready).
    key_until: Box<[AtomicU64]>,
    /// Its breakers' state, taken from the gateway's registry by instance
    /// name on first use (so a reload's new instance keeps it).
    pub circuits: std::sync::OnceLock<std::sync::Arc<crate::resilience::Circuits>>,
}

/// The settings of an instance, as the config resolved them.
#[derive(Debug)]
pub struct ProviderSettings {
    /// Instance name.
    pub name: String,
    /// Its type.
    pub family: &'static Family,
    /// Where it lives.
    pub base: BaseUrl,
    /// Credentials in rotation order.
    pub keys: Vec<Secret>,
    /// Explicit model list.
    pub models: Vec<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Per-read timeout.
    pub read_timeout: Duration,
    /// Background model discovery.
    pub discover_models: bool,
    /// Retries.
    pub retry: RetryPolicy,
    /// Circuit-breaker policy.
    pub breaker: Option<crate::resilience::breaker::BreakerPolicy>,
    /// Time-to-first-byte timeout.
    pub first_byte_timeout: Option<Duration>,
    /// Stream idle timeout.
    pub stream_idle_timeout: Option<Duration>,
    /// Cooldown of a rate-limited key.
    pub key_cooldown: Duration,
}

impl Provider {
    /// An instance from resolved settings. Header names and values were
    /// validated by the config; one that is not valid HTTP is left out.
    pub fn new(s: ProviderSettings) -> Provider {
        let parse = |k: &str, v: &str| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        };
        let mut fixed_headers: Vec<(HeaderName, HeaderValue)> = [
            ("host", s.base.host_header.as_str()),
            ("user-agent", concat!("switchyard/", env!("CARGO_PKG_VERSION"))),
        ]
        .into_iter()
        .chain(s.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .filter_map(|(k, v)| parse(k, v))
        .collect();
        fixed_headers.shrink_to_fit();
        let auth_headers: Vec<(HeaderName, HeaderValue)> = s
            .keys
            .iter()
            .filter_map(|k| {
                let (name, value) = s.family.auth.header(k.expose());
                let (name, mut value) = parse(name, &value)?;
                value.set_sensitive(true);
                Some((name, value))
            })
            .collect();
        let key_until = auth_headers.iter().map(|_| AtomicU64::new(0)).collect();
        Provider {
            key_until,
            circuits: std::sync::OnceLock::new(),
            name: s.name,
            family: s.family,
            base: s.base,
            keys: s.keys,
            next_key: AtomicUsize::new(0),
            fixed_headers,
            auth_headers,
            models: s.models,
            headers: s.headers,
            api_version: s.api_version,
            connect_timeout: s.connect_timeout,
            read_timeout: s.read_timeout,
            discover_models: s.discover_models,
            retry: s.retry,
            breaker: s.breaker,
            first_byte_timeout: s.first_byte_timeout,
            stream_idle_timeout: s.stream_idle_timeout,
            key_cooldown: s.key_cooldown,
        }
    }

    /// The key for the next call: the next in rotation that is not set
    /// aside; when all are, the one free soonest.
    pub fn pick_key(&self) -> usize {
        let n = self.auth_headers.len();
        if n == 0 {
            return 0;
        }
        let start = self.next_key.fetch_add(1, Ordering::Relaxed) % n;
        if n == 1 {
            return 0;
        }
        let now = crate::resilience::clock_ms();
        let until = |i: usize| self.key_until.get(i).map_or(0, |u| u.load(Ordering::Relaxed));
        (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| (until(i).saturating_sub(now), (i + n - start) % n))
            .unwrap_or(start)
    }

    /// Sets key `i` aside for `for_` (a 429), so rotation continues with
    /// the others. Returns whether another key is free now.
    pub fn cool_key(&self, i: usize, for_: Option<Duration>) -> bool {
        let now = crate::resilience::clock_ms();
        let wait = for_.unwrap_or(self.key_cooldown);
        if let Some(u) = self.key_until.get(i) {
            u.store(
                now + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX / 4),
                Ordering::Relaxed,
            );
        }
        self.key_until
            .iter()
            .enumerate()
            .any(|(j, u)| j != i && u.load(Ordering::Relaxed) <= now)
    }

    /// Keys set aside now (the admin API shows the count).
    pub fn keys_cooling(&self) -> usize {
        let now = crate::resilience::clock_ms();
        self.key_until
            .iter()
            .filter(|u| u.load(Ordering::Relaxed) > now)
            .count()
    }

    /// The wire dialect of its chat endpoint.
    pub fn wire(&self) -> WireDialect {
        self.family.wire
    }

    /// Path of `op` for `model`.
    pub fn path(&self, op: Operation, model: &str) -> String {
        self.family.adapter.path(self, op, model)
    }

    /// Whether background discovery should list this instance's models.
    pub fn lists_models(&self) -> bool {
        self.discover_models && self.family.adapter.lists_models(self)
    }
}

/// Caller headers a provider may understand (Anthropic's `anthropic-version`
/// and `anthropic-beta`); every other caller header stays behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerHeaders {
    /// `anthropic-version`, if sent.
    pub anthropic_version: Option<String>,
    /// Every `anthropic-beta` value, in order.
    pub anthropic_beta: Vec<String>,
}

/// Why an upstream request head could not be built (a configured header
/// value that is not valid HTTP); never a secret in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError(pub String);

/// The upstream request head: the provider's credential injected (the
/// caller's never), the family's headers, the configured extra headers.
/// Built from headers parsed once per provider, written lowercase (header
/// names are case-insensitive). `key` is the index of the credential to
/// send (`Provider::pick_key`), so the caller knows which one a 429 was for.
pub fn request_head(
    p: &Provider,
    key: usize,
    method: http::Method,
    path: &str,
    body_len: usize,
    stream: bool,
    caller: &CallerHeaders,
) -> Result<RequestHeader, HeadError> {
    let bad = |what: &str| HeadError(format!("could not build the upstream request ({what})"));
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.uri = path.parse().map_err(|_| bad("path"))?;
    let post = method == http::Method::POST;
    parts.method = method;
    let h = &mut parts.headers;
    h.reserve(6 + p.fixed_headers.len());
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    h.insert(http::header::ACCEPT, HeaderValue::from_static(accept));
    if post {
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body_len));
    }
    if let Some((k, v)) = p.auth_headers.get(key) {
        h.insert(k.clone(), v.clone());
    }
    let mut extra = Vec::new();
    p.family.adapter.headers(caller, &mut extra);
    for (k, v) in extra {
        h.append(k, HeaderValue::from_str(&v).map_err(|_| bad(k))?);
    }
    // Host and user-agent first, configured headers last: they win.
    for (k, v) in &p.fixed_headers {
        h.insert(k.clone(), v.clone());
    }
    Ok(RequestHeader::from(parts))
}

/// Percent-encodes one path segment (model names go into Azure and Gemini
/// URLs).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_one_row_and_names_round_trip() {
        for f in Family::all() {
            assert_eq!(Family::all().filter(|o| o.name == f.name).count(), 1, "{}", f.name);
            assert_eq!(Family::by_name(f.name).map(|x| x.name), Some(f.name));
        }
        assert!(Family::by_name("nope").is_none());
    }

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("https://api.x.ai/v1/").expect("ok");
        assert_eq!(
            (b.tls, b.host.as_str(), b.port, b.path.as_str(), b.host_header.as_str()),
            (true, "api.x.ai", 443, "/v1", "api.x.ai")
        );
        let b = BaseUrl::parse("http://[::1]:8000").expect("ok");
        assert_eq!(
            (b.host.as_str(), b.port, b.host_header.as_str()),
            ("::1", 8000, "[::1]:8000")
        );
        assert!(BaseUrl::parse("localhost:1").is_err());
        assert!(BaseUrl::parse("http://u:p@h/").is_err());
    }

    fn provider(family: &'static Family, base: &str) -> Provider {
        Provider::new(ProviderSettings {
            name: family.name.to_string(),
            family,
            base: BaseUrl::parse(base).expect("url"),
            keys: vec![Secret::new("sk-test")],
            models: Vec::new(),
            headers: vec![("x-extra".into(), "1".into())],
            api_version: Some("2024-10-21".into()),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            discover_models: true,
            retry: RetryPolicy::default(),
            breaker: None,
            first_byte_timeout: None,
            stream_idle_timeout: None,
            key_cooldown: Duration::from_secs(60),
        })
    }

    #[test]
    fn retry_delays_are_full_jitter_under_a_doubling_cap() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        for (retry, cap) in [(0, 100), (1, 200), (2, 350), (9, 350), (40, 350)] {
            let waits: Vec<Duration> = (0..200).filter_map(|_| p.delay(retry, None)).collect();
            assert_eq!(waits.len(), 200);
            assert!(waits.iter().all(|w| *w <= Duration::from_millis(cap)), "retry {retry}");
            // Full jitter: spread over the range, not pinned to the cap.
            assert!(
                waits.iter().any(|w| *w < Duration::from_millis(cap / 2)),
                "retry {retry}"
            );
        }
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(300))),
            Some(Duration::from_millis(300))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(1))), None, "over the cap: move on");
    }

    #[test]
    fn each_family_addresses_its_operations() {
        let oa = provider(&openai::FAMILIES[0], "https://api.openai.com/v1");
        assert_eq!(
            oa.path(Operation::Chat { stream: true }, "gpt-4o"),
            "/v1/chat/completions"
        );
        assert_eq!(oa.path(Operation::Models, ""), "/v1/models");
        let az = provider(&azure::FAMILY, "https://r.openai.azure.com");
        assert_eq!(
            az.path(Operation::Embeddings, "my deploy"),
            "/openai/deployments/my%20deploy/embeddings?api-version=2024-10-21"
        );
        assert!(!az.lists_models());
        let an = provider(&anthropic::FAMILY, "https://api.anthropic.com");
        assert_eq!(an.path(Operation::CountTokens, "c"), "/v1/messages/count_tokens");
        let ge = provider(&gemini::FAMILY, "https://generativelanguage.googleapis.com/v1beta");
        assert_eq!(
            ge.path(Operation::Chat { stream: true }, "models/gemini-2.5-flash"),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn heads_carry_the_providers_credential_and_headers() {
        let an = provider(&anthropic::FAMILY, "https://api.anthropic.com");
        let caller = CallerHeaders {
            anthropic_version: Some("2026-01-01".into()),
            anthropic_beta: vec!["a".into(), "b".into()],
        };
        let h = request_head(&an, 0, http::Method::POST, "/v1/messages", 10, true, &caller).expect("head");
        let get = |k: &str| h.headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(get("x-api-key").as_deref(), Some("sk-test"));
        assert_eq!(get("anthropic-version").as_deref(), Some("2026-01-01"));
        assert_eq!(h.headers.get_all("anthropic-beta").iter().count(), 2);
        assert_eq!(get("x-extra").as_deref(), Some("1"));
        assert_eq!(get("content-length").as_deref(), Some("10"));
        let oa = provider(&openai::FAMILIES[0], "https://api.openai.com/v1");
        let h = request_head(&oa, 0, http::Method::GET, "/v1/models", 0, false, &caller).expect("head");
        assert!(h.headers.get("content-length").is_none());
        assert_eq!(
            h.headers.get("host").and_then(|v| v.to_str().ok()),
            Some("api.openai.com")
        );
        assert_eq!(
            h.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer sk-test")
        );
        assert!(h.headers.get("anthropic-version").is_none(), "only Anthropic gets them");
    }
}
