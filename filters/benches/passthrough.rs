//! Benchmarks of the same-dialect fast path: what the gateway adds to an
//! OpenAI-compatible request and stream when it only rewrites `model` and
//! `stream_options`.
//!
//! Run with `cargo bench -p switchyard-filters --bench passthrough`; add
//! `-- --quick` for a fast smoke run.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use switchyard_filters::passthrough::{inspect_chat, rewrite_chat, JsonObject};
use switchyard_filters::sse::{SseDecoder, SseItem};
use switchyard_filters::stream::{StreamProcessor, StreamSpec};

/// A typical ~1 KB chat request: system prompt, a few turns, a tool.
fn small_request() -> Vec<u8> {
    let body = serde_json::json!({
        "model": "fast",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences and cite sources when you can."},
            {"role": "user", "content": "What is the capital of France, and roughly how many people live there?"},
            {"role": "assistant", "content": "Paris is the capital of France; about 2.1 million people live in the city proper."},
            {"role": "user", "content": "And in the metropolitan area? Please also mention the river that crosses it."}
        ],
        "tools": [{"type": "function", "function": {
            "name": "search",
            "description": "Search the web for up-to-date facts.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
        }}],
        "temperature": 0.2,
        "max_tokens": 256,
        "stream": true,
        "user": "user-1234"
    });
    serde_json::to_vec(&body).unwrap()
}

/// A 1 MiB request: one user message carrying a base64 image.
fn large_request() -> Vec<u8> {
    let image: String = (0..1024 * 1024)
        .map(|i| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64] as char)
        .collect();
    let body = serde_json::json!({
        "model": "vision",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{image}")}}
        ]}],
        "stream": true
    });
    serde_json::to_vec(&body).unwrap()
}

/// A ~50-chunk OpenAI stream with injected usage (`"usage":null` on every
/// chunk, a usage-only chunk at the end), as a provider sends it.
fn stream() -> Vec<u8> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        )
    };
    let mut s = chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null");
    for i in 0..48 {
        s.push_str(&chunk(&format!(r#"{{"content":" word{i}"}}"#), "null"));
    }
    s.push_str(&chunk("{}", "\"stop\""));
    s.push_str("data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":49,\"total_tokens\":80,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// What the gateway does to a request body: parse, validate, rewrite, encode.
fn rewrite(body: &[u8]) -> Vec<u8> {
    let mut obj = JsonObject::parse(body).unwrap();
    let head = inspect_chat(&obj).unwrap();
    rewrite_chat(&mut obj, "gpt-4o-mini", head.stream).unwrap();
    obj.to_vec()
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("chat_request");
    for (name, body) in [("1kb", small_request()), ("1mib", large_request())] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("passthrough_{name}"), |b| b.iter(|| rewrite(black_box(&body))));
        // Baseline: what a full parse and re-encode through a Value tree costs.
        g.bench_function(format!("value_tree_{name}"), |b| {
            b.iter(|| {
                let mut v: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
                v["model"] = "gpt-4o-mini".into();
                v["stream_options"] = serde_json::json!({"include_usage": true});
                serde_json::to_vec(&v).unwrap()
            })
        });
    }
    g.finish();
}

fn streams(c: &mut Criterion) {
    let s = stream();
    let mut g = c.benchmark_group("openai_stream");
    g.throughput(Throughput::Bytes(s.len() as u64));
    g.bench_function("passthrough_50_chunks_1kb_pieces", |b| {
        b.iter(|| {
            let mut p = StreamProcessor::new(StreamSpec::new(
                switchyard_filters::ir::WireDialect::OpenAi,
                switchyard_filters::error::Dialect::OpenAi,
                "bench",
                switchyard_filters::codec::ResponseOptions::default(),
            ));
            let mut out = Vec::with_capacity(2048);
            for piece in black_box(&s).chunks(1024) {
                out.clear();
                p.push(piece, &mut out);
            }
            p.finish(None, &mut out);
            (p.usage(), out.len())
        })
    });
    // Baseline: the bare SSE decoder, to separate its cost from ours.
    g.bench_function("sse_decoder_only_1kb_pieces", |b| {
        b.iter(|| {
            let mut d = SseDecoder::new();
            let mut n = 0;
            for piece in black_box(&s).chunks(1024) {
                d.push(piece).unwrap();
                while let Some(item) = d.next_item() {
                    n += d.last_raw().len() + matches!(item, SseItem::Event(_)) as usize;
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, requests, streams);
criterion_main!(benches);
