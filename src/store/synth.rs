//! Deterministic, realistic usage records for tests and the scale bench:
//! 5 providers × 4 models (~20-char names), 50 user paths (~20 chars, three
//! levels), two tags, gateway-style hex request ids, mostly successes with a
//! few errors and unknown prices.

use crate::record::{AuditEntry, CostSource, UsageRecord};
use switchyard_filters::usage::Usage;

/// Provider instances used by the generator.
pub const PROVIDERS: [&str; 5] = ["openai", "anthropic", "gemini", "groq", "mistral"];

/// A small xorshift PRNG: reproducible data without a dependency.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next pseudo-random value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Model `m` (0..20) of the generator, ~20 characters.
pub fn model_name(m: u64) -> String {
    format!(
        "{}-model-2025-{:02}-{:02}",
        PROVIDERS[(m % 5) as usize],
        m + 1,
        m % 28 + 1
    )
}

/// User path `u` (0..50) of the generator.
pub fn user_path(u: u64) -> String {
    format!("/acme/team-{:02}/user-{:03}", u % 7, u)
}

/// One realistic record with request id derived from `i`.
pub fn record(i: u64, ts_ms: u64) -> UsageRecord {
    let mut rng = Rng::new(i);
    let m = rng.below(20);
    let u = rng.below(50);
    let status = match rng.below(100) {
        0 => 429,
        1 => 500,
        _ => 200,
    };
    let input = 200 + rng.below(4000);
    let output = if status == 200 { 20 + rng.below(800) } else { 0 };
    let unknown = m == 19;
    let cost = (input as f64 * 2.5 + output as f64 * 10.0) / 1e6;
    UsageRecord {
        request_id: format!("{:016x}{:08x}", 0x5eed_0000_0000_0000u64 | (i >> 20), i & 0xffff_ffff),
        ts_ms,
        endpoint: if m.is_multiple_of(7) { "messages" } else { "chat" }.into(),
        dialect: if m.is_multiple_of(7) { "anthropic" } else { "openai" }.into(),
        provider: PROVIDERS[(m % 5) as usize].into(),
        provider_type: PROVIDERS[(m % 5) as usize].into(),
        model: model_name(m),
        upstream_model: model_name(m),
        status,
        usage: Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: if rng.below(4) == 0 { input / 2 } else { 0 },
            cache_write_tokens: 0,
            reasoning_tokens: if m.is_multiple_of(4) { output / 3 } else { 0 },
        },
        usage_source: switchyard_filters::stream::UsageSource::Provider,
        cost_usd: if unknown { None } else { Some(cost) },
        cost_source: if unknown {
            CostSource::Unknown
        } else {
            CostSource::Builtin
        },
        duration_ms: 100 + rng.below(5000) as u32,
        ttft_ms: Some(50 + rng.below(500) as u32),
        user_path: user_path(u),
        tags: vec![
            (
                "env".into(),
                if u.is_multiple_of(3) { "staging" } else { "prod" }.into(),
            ),
            ("app".into(), format!("app-{}", u % 5)),
        ],
        key_id: String::new(),
        partial: rng.below(200) == 0,
        error: match status {
            429 => Some("rate_limited".into()),
            500 => Some("upstream_error".into()),
            _ => None,
        },
        // Most requests take one call; a failure may have been retried.
        key_name: String::new(),
        attempts: if status == 200 { 1 } else { 1 + (i % 2) as u32 },
    }
}

/// `n` records spread evenly (with jitter) over `span_ms` from `start_ms`,
/// in time order, as a gateway would produce them.
pub fn records(n: u64, start_ms: u64, span_ms: u64) -> Vec<UsageRecord> {
    let step = (span_ms / n.max(1)).max(1);
    let mut rng = Rng::new(n ^ start_ms);
    (0..n)
        .map(|i| record(i, start_ms + i * step + rng.below(step)))
        .collect()
}

/// The audit entry the gateway would write next to `r`: eight typical
/// request headers (credentials redacted) and, with `bodies`, a small
/// request and response body.
pub fn audit_for(r: &UsageRecord, bodies: bool) -> AuditEntry {
    let h = |k: &str, v: &str| (k.to_string(), v.to_string());
    AuditEntry {
        request_id: r.request_id.clone(),
        ts_ms: r.ts_ms,
        method: "POST".into(),
        path: if r.dialect == "anthropic" {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        }
        .into(),
        client: format!("10.0.{}.{}", r.duration_ms % 7, r.duration_ms % 251),
        route: format!("{}/{}", r.provider, r.upstream_model),
        status: r.status,
        upstream_status: Some(r.status),
        duration_ms: r.duration_ms,
        ttft_ms: r.ttft_ms,
        error: r.error.clone(),
        user_path: r.user_path.clone(),
        key_id: r.key_id.clone(),
        request_headers: vec![
            h("host", "gateway.internal:8080"),
            h("content-type", "application/json"),
            h("authorization", "[REDACTED]"),
            h("user-agent", "OpenAI/Python 1.54.4"),
            h("accept", "application/json"),
            h("content-length", &(r.usage.input_tokens * 4).to_string()),
            h("x-stainless-lang", "python"),
            h("x-stainless-runtime-version", "3.12.7"),
        ],
        request_body: bodies.then(|| {
            format!(
                "{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}",
                r.model
            )
        }),
        response_body: bodies.then(|| format!("{{\"id\":\"chatcmpl-{}\",\"choices\":[]}}", r.request_id)),
        bodies_truncated: false,
        // One call per request, as most are.
        attempts: vec![crate::record::AttemptRecord {
            provider: r.provider.clone(),
            model: r.upstream_model.clone(),
            status: Some(r.status),
            error: None,
            duration_ms: r.ttft_ms.unwrap_or(r.duration_ms),
        }],
    }
}
