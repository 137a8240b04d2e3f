//! Benchmarks of a translated chat request: an OpenAI caller routed to an
//! Anthropic provider, each step the gateway takes on a non-streamed
//! request (decode the caller's body, encode it for the provider, decode
//! the provider's answer, encode it for the caller).
//!
//! Run with `cargo bench -p switchyard-filters --bench translate`; add
//! `-- --quick` for a fast smoke run.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchyard_filters::codec::{decode_fields, decode_response, encode_request, encode_response, ResponseOptions};
use switchyard_filters::error::Dialect;
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::JsonObject;

/// The ~1 KB request `benches/load.sh` sends: a system prompt and three turns.
fn request() -> Vec<u8> {
    let body = serde_json::json!({
        "model": "claude-3-5-haiku-20241022",
        "temperature": 0.7,
        "max_tokens": 512,
        "user": "bench-user-42",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for an operations team. Answer precisely, quote configuration keys verbatim, and keep answers under two hundred words unless asked for detail."},
            {"role": "user", "content": "Our API gateway sits in front of three model providers. Requests sometimes take 30 seconds when a provider is slow. What timeouts should we configure on the gateway, and how should retries interact with streaming responses?"},
            {"role": "assistant", "content": "Set a short connect timeout (2-5 s), a generous per-read timeout for streams (60-300 s, since models pause while thinking), and retry only before the first response byte has been sent to the caller. Once a stream has started, a retry would duplicate tokens."},
            {"role": "user", "content": "Makes sense. Summarize that as a checklist, and add one line about idle keep-alive connections to upstreams."}
        ]
    });
    serde_json::to_vec(&body).unwrap()
}

/// An Anthropic `message` as the API returns it (usage with cache fields).
const MESSAGE: &[u8] = br#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[{"type":"text","text":"Pingora is a Rust framework for building fast, reliable and programmable networked services. It handles connection pooling, HTTP/1 and HTTP/2, TLS, and graceful restarts, so a proxy built on it can focus on routing logic."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":243,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":48,"service_tier":"standard"}}"#;

fn options() -> ResponseOptions {
    ResponseOptions {
        model: Some("claude-3-5-haiku-20241022".into()),
        id: None,
        created: 1_700_000_000,
        include_usage: false,
    }
}

fn translate(c: &mut Criterion) {
    let body = request();
    let obj = JsonObject::parse(&body).expect("a JSON object");
    let req = decode_fields(WireDialect::OpenAi, &obj).expect("an OpenAI request");
    let resp = decode_response(WireDialect::Anthropic, MESSAGE).expect("an Anthropic message");
    let opts = options();
    let mut g = c.benchmark_group("openai_to_anthropic");
    g.bench_function("decode_request", |b| {
        b.iter(|| decode_fields(WireDialect::OpenAi, black_box(&obj)).map(|r| r.messages.len()))
    });
    g.bench_function("encode_request", |b| {
        b.iter(|| encode_request(WireDialect::Anthropic, black_box(&req)).map(|v| v.len()))
    });
    g.bench_function("decode_response", |b| {
        b.iter(|| decode_response(WireDialect::Anthropic, black_box(MESSAGE)).map(|r| r.content.len()))
    });
    g.bench_function("encode_response", |b| {
        b.iter(|| encode_response(Dialect::OpenAi, black_box(&resp), &opts).len())
    });
    g.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
