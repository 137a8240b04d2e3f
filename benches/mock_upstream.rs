//! A fast mock OpenAI / Anthropic upstream for load tests (`benches/load.sh`).
//!
//! Hand-written minimal HTTP/1.1 keep-alive server on tokio's multi-threaded
//! runtime, TCP_NODELAY, responses prebuilt at start-up and written in one
//! `write_all`, so the mock costs as little CPU per request as possible and
//! is not the bottleneck of the measurement.
//!
//! Usage: `mock_upstream [ADDR|PORT]` (default `127.0.0.1:0`); prints
//! `mock ready on ADDR` once it accepts.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: a fixed ~600-byte `chat.completion` with
//!   usage; with `"stream": true` a chunked SSE stream (role chunk, 20 content
//!   chunks, finish chunk, a usage chunk with `choices: []` when
//!   `stream_options.include_usage` is true, `[DONE]`).
//! - `POST /v1/messages` (Anthropic Messages API wire format): the same
//!   answer as a `message` object with usage; with `"stream": true` an SSE
//!   stream of named events (`message_start`, `content_block_start`, `ping`,
//!   20 `content_block_delta` text deltas, `content_block_stop`,
//!   `message_delta` with the stop reason and usage, `message_stop`).
//! - `GET /v1/models`: a small model list. `GET /health`: `{"status":"ok"}`.
//! - Failing providers (failover runs): under `/fail50/` the chat endpoints
//!   answer every second request (process-wide count) with an OpenAI-style
//!   `503`, under `/fail100/` every request; so a provider whose base URL is
//!   `http://MOCK/fail50/v1` fails half its calls.
//! - Holding streams open (open-streams RSS test): when the hold is N > 0 ms,
//!   a stream sends its head and every event up to and including the first
//!   one that carries text (OpenAI: role chunk + first content chunk;
//!   Anthropic: `message_start` … first `content_block_delta`) at once, then
//!   waits N ms before each later event. The hold comes from the request header
//!   `x-mock-hold-ms`, else from the process-wide setting: env
//!   `MOCK_STREAM_HOLD_MS` at start, changed at run time with
//!   `POST /mock/hold?ms=N` sent to the mock directly (a gateway does not
//!   forward caller headers). `POST /mock/release` sets the hold to 0 and
//!   wakes every held stream, which then finishes at once.
//!
//! Env: `MOCK_THREADS` (worker threads; default: number of cores).

#![cfg_attr(test, allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

/// Current process-wide hold between stream chunks, in ms (0 = none).
static HOLD_MS: AtomicU64 = AtomicU64::new(0);
/// Bumped by `/mock/release`; a held stream stops holding when it changes.
static RELEASE_GEN: AtomicU64 = AtomicU64::new(0);
static RELEASE: OnceLock<Notify> = OnceLock::new();
static RESPONSES: OnceLock<Responses> = OnceLock::new();

/// Largest request head / body we accept (bench traffic is ~1 KB).
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;

/// One prebuilt SSE response.
struct Stream {
    /// Head + every event + the chunked terminator, written at once.
    full: Vec<u8>,
    /// For held streams: the head alone, and each event already chunk-framed
    /// (the last element is the chunked terminator).
    head: Vec<u8>,
    events: Vec<Vec<u8>>,
    /// How many events a held stream sends with its head: up to and including
    /// the first one that carries text.
    prelude: usize,
}

impl Stream {
    fn new(head: Vec<u8>, mut events: Vec<Vec<u8>>, prelude: usize) -> Stream {
        events.push(b"0\r\n\r\n".to_vec());
        let mut full = head.clone();
        events.iter().for_each(|e| full.extend_from_slice(e));
        Stream {
            full,
            head,
            events,
            prelude,
        }
    }
}

struct Responses {
    /// Full non-stream OpenAI response (head + body).
    chat: Vec<u8>,
    /// OpenAI stream without / with the usage chunk.
    stream: Stream,
    stream_usage: Stream,
    /// Anthropic `message` (head + body) and its stream.
    message: Vec<u8>,
    message_stream: Stream,
    models: Vec<u8>,
    health: Vec<u8>,
    not_found: Vec<u8>,
    bad_request: Vec<u8>,
    ok: Vec<u8>,
    unavailable: Vec<u8>,
}

/// Requests seen under `/fail50/`.
static FAIL50: AtomicU64 = AtomicU64::new(0);

const CREATED: u64 = 1_732_000_000;
const ID: &str = "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012";
const MODEL: &str = "gpt-4o-mini-2024-07-18";
const FINGERPRINT: &str = "fp_0ba0d124f1";
const MSG_ID: &str = "msg_01XFDUDYJgAACzvnptvVoYEL";
const CLAUDE_MODEL: &str = "claude-3-5-haiku-20241022";
/// The assistant answer every endpoint returns, split into 20 stream pieces.
const CONTENT: &str = "Pingora is a Rust framework for building fast, reliable and programmable \
networked services. It handles connection pooling, HTTP/1 and HTTP/2, TLS, \
and graceful restarts, so a proxy built on it can focus on routing logic.";

fn json_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         openai-processing-ms: 412\r\nx-ratelimit-remaining-requests: 9999\r\n\
         x-request-id: req_0123456789abcdef0123456789abcdef\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Anthropic's response head (its rate-limit headers carry the same
/// information as OpenAI's `x-ratelimit-*`).
fn anthropic_head(content_type: &str, framing: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{framing}\r\n\
         anthropic-ratelimit-requests-remaining: 3999\r\n\
         request-id: req_011CSHoEeqs5C35K2UUqR7Fy\r\nanthropic-organization-id: 0f6a7b3e-2f21-4c3c-9d59-3b1c1d8e6a10\r\n\r\n"
    )
    .into_bytes()
}

/// The answer split into 20 pieces of whole words (spaces kept).
fn pieces() -> Vec<String> {
    let words: Vec<&str> = CONTENT.split_inclusive(' ').collect();
    let n = words.len();
    (0..20).map(|i| words[i * n / 20..(i + 1) * n / 20].concat()).collect()
}

/// `POST /v1/messages`: a `message` and its event stream, in the Anthropic
/// Messages API wire format (named events: `event:` + `data:` lines).
fn build_anthropic() -> (Vec<u8>, Stream) {
    let usage = serde_json::json!({
        "input_tokens": 243,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 48,
        "service_tier": "standard"
    });
    let body = serde_json::json!({
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "model": CLAUDE_MODEL,
        "content": [{"type": "text", "text": CONTENT}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage
    })
    .to_string();
    let mut message = anthropic_head("application/json", &format!("content-length: {}", body.len()));
    message.extend_from_slice(body.as_bytes());

    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = 1.into();
    let ev = |name: &str, data: serde_json::Value| chunk_frame(format!("event: {name}\ndata: {data}\n\n").as_bytes());
    let mut events = vec![
        ev(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {
                "id": MSG_ID, "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        ),
        ev(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", serde_json::json!({"type": "ping"})),
    ];
    let prelude = events.len() + 1; // through the first text delta
    for piece in pieces() {
        events.push(ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push(ev(
        "content_block_stop",
        serde_json::json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(ev(
        "message_delta",
        serde_json::json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"input_tokens": 243, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 48}}),
    ));
    events.push(ev("message_stop", serde_json::json!({"type": "message_stop"})));
    let head = anthropic_head(
        "text/event-stream; charset=utf-8",
        "cache-control: no-cache\r\ntransfer-encoding: chunked",
    );
    (message, Stream::new(head, events, prelude))
}

fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

fn build_responses() -> Responses {
    let content = CONTENT;
    let chat_body = serde_json::json!({
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 243,
            "completion_tokens": 48,
            "total_tokens": 291,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT
    })
    .to_string();
    let chat = json_response("200 OK", &chat_body);

    // SSE events.
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        serde_json::json!({
            "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
            "service_tier": "default", "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
        .to_string()
    };
    let mut sse: Vec<String> = Vec::new();
    sse.push(chunk(
        serde_json::json!({"role": "assistant", "content": "", "refusal": null}),
        serde_json::Value::Null,
    ));
    for piece in pieces() {
        sse.push(chunk(serde_json::json!({"content": piece}), serde_json::Value::Null));
    }
    sse.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
    let usage = serde_json::json!({
        "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
        "service_tier": "default", "system_fingerprint": FINGERPRINT, "choices": [],
        "usage": {"prompt_tokens": 243, "completion_tokens": 48, "total_tokens": 291,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    })
    .to_string();
    let frame = |s: &str| chunk_frame(format!("data: {s}\n\n").as_bytes());
    let mut events: Vec<Vec<u8>> = sse.iter().map(|s| frame(s)).collect();
    let mut events_usage = events.clone();
    events_usage.push(frame(&usage));
    let done = chunk_frame(b"data: [DONE]\n\n");
    events.push(done.clone());
    events_usage.push(done);
    let stream_head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
cache-control: no-cache\r\ntransfer-encoding: chunked\r\nopenai-processing-ms: 180\r\n\
x-ratelimit-remaining-requests: 9999\r\nx-request-id: req_0123456789abcdef0123456789abcdef\r\n\r\n"
        .to_vec();
    // Held streams send the role chunk and the first content chunk at once.
    let stream = Stream::new(stream_head.clone(), events, 2);
    let stream_usage = Stream::new(stream_head, events_usage, 2);
    let (message, message_stream) = build_anthropic();

    let models_body = serde_json::json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}
    ]})
    .to_string();
    Responses {
        chat,
        stream,
        stream_usage,
        message,
        message_stream,
        models: json_response("200 OK", &models_body),
        health: json_response("200 OK", r#"{"status":"ok"}"#),
        not_found: json_response(
            "404 Not Found",
            r#"{"error":{"message":"Unknown request URL","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#,
        ),
        bad_request: json_response(
            "400 Bad Request",
            r#"{"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":null}}"#,
        ),
        ok: json_response("200 OK", r#"{"ok":true}"#),
        unavailable: json_response(
            "503 Service Unavailable",
            r#"{"error":{"message":"The server is overloaded","type":"server_error","param":null,"code":null}}"#,
        ),
    }
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the JSON body has `"key": true` somewhere (cheap scan; bench bodies
/// are well-formed and do not contain the key inside strings).
fn json_true(body: &[u8], key: &[u8]) -> bool {
    let mut rest = body;
    while let Some(i) = find(rest, key) {
        let mut j = i + key.len();
        while j < rest.len() && rest[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < rest.len() && rest[j] == b':' {
            j += 1;
            while j < rest.len() && rest[j].is_ascii_whitespace() {
                j += 1;
            }
            return rest[j..].starts_with(b"true");
        }
        rest = &rest[i + key.len()..];
    }
    false
}

struct Head {
    method_post: bool,
    path: String,
    content_length: usize,
    chunked: bool,
    close: bool,
    hold_ms: Option<u64>,
    head_len: usize,
}

/// Parses the request head in `buf[..end]` (`end` = after `\r\n\r\n`).
fn parse_head(buf: &[u8], end: usize) -> Option<Head> {
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let mut rl = lines.next()?.split(' ');
    let method = rl.next()?;
    let target = rl.next()?;
    let version = rl.next().unwrap_or("HTTP/1.1");
    let mut h = Head {
        method_post: method == "POST",
        path: target.to_string(),
        content_length: 0,
        chunked: false,
        close: version == "HTTP/1.0",
        hold_ms: None,
        head_len: end,
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            h.content_length = v.parse().ok()?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            if v.contains("close") {
                h.close = true;
            } else if v.contains("keep-alive") {
                h.close = false;
            }
        } else if k.eq_ignore_ascii_case("x-mock-hold-ms") {
            h.hold_ms = v.parse().ok();
        }
    }
    Some(h)
}

/// Decodes a complete chunked body at the start of `buf`: returns (body,
/// bytes consumed) or None if incomplete. Trailers are not supported.
fn dechunk(buf: &[u8]) -> Option<Result<(Vec<u8>, usize), ()>> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let line_end = find(&buf[pos..], b"\r\n")? + pos;
        let size_txt = std::str::from_utf8(&buf[pos..line_end]).ok();
        let size_txt = size_txt.map(|s| s.split(';').next().unwrap_or("").trim());
        let Some(size) = size_txt.and_then(|s| usize::from_str_radix(s, 16).ok()) else {
            return Some(Err(()));
        };
        if size > MAX_BODY || body.len() + size > MAX_BODY {
            return Some(Err(()));
        }
        let data = line_end + 2;
        if size == 0 {
            if buf.len() < data + 2 {
                return None;
            }
            return Some(Ok((body, data + 2)));
        }
        if buf.len() < data + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[data..data + size]);
        pos = data + size + 2;
    }
}

fn query_u64(path: &str, key: &str) -> Option<u64> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

async fn held_stream(sock: &mut TcpStream, s: &Stream, hold: u64) -> std::io::Result<()> {
    let mut first = s.head.clone();
    s.events[..s.prelude].iter().for_each(|e| first.extend_from_slice(e));
    sock.write_all(&first).await?;
    let gen = RELEASE_GEN.load(Ordering::Acquire);
    let notify = RELEASE.get().expect("notify");
    let later = &s.events[s.prelude..];
    for (i, e) in later.iter().enumerate() {
        if RELEASE_GEN.load(Ordering::Acquire) == gen {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if RELEASE_GEN.load(Ordering::Acquire) == gen {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(hold)) => {}
                    _ = notified => {}
                }
            }
        }
        if RELEASE_GEN.load(Ordering::Acquire) != gen {
            // Released: send the rest at once.
            let mut rest = Vec::new();
            later[i..].iter().for_each(|e| rest.extend_from_slice(e));
            return sock.write_all(&rest).await;
        }
        sock.write_all(e).await?;
    }
    Ok(())
}

async fn serve_conn(mut sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let r = RESPONSES.get().expect("responses");
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        // Serve every complete request in the buffer (pipelining), batching
        // their responses into one write.
        out.clear();
        let mut close = false;
        let mut held: Option<(&Stream, u64)> = None;
        loop {
            let Some(he) = find(&buf, b"\r\n\r\n") else {
                if buf.len() > MAX_HEAD {
                    return;
                }
                break;
            };
            let Some(h) = parse_head(&buf, he + 4) else {
                out.extend_from_slice(&r.bad_request);
                close = true;
                break;
            };
            let (body, consumed): (Vec<u8>, usize) = if h.chunked {
                match dechunk(&buf[h.head_len..]) {
                    None => break,
                    Some(Err(())) => {
                        out.extend_from_slice(&r.bad_request);
                        close = true;
                        break;
                    }
                    Some(Ok((b, n))) => (b, h.head_len + n),
                }
            } else {
                if h.content_length > MAX_BODY {
                    out.extend_from_slice(&r.bad_request);
                    close = true;
                    break;
                }
                let total = h.head_len + h.content_length;
                if buf.len() < total {
                    break;
                }
                (buf[h.head_len..total].to_vec(), total)
            };
            buf.drain(..consumed);
            close |= h.close;
            let full_path = h.path.split('?').next().unwrap_or("");
            let (fail, path) = if let Some(rest) = full_path.strip_prefix("/fail50") {
                (FAIL50.fetch_add(1, Ordering::Relaxed).is_multiple_of(2), rest)
            } else if let Some(rest) = full_path.strip_prefix("/fail100") {
                (true, rest)
            } else {
                (false, full_path)
            };
            if fail && h.method_post {
                out.extend_from_slice(&r.unavailable);
                if close {
                    break;
                }
                continue;
            }
            match (h.method_post, path) {
                (true, "/v1/chat/completions" | "/v1/messages") => {
                    let openai = path == "/v1/chat/completions";
                    let stream = json_true(&body, b"\"stream\"");
                    let s = match (openai, stream && json_true(&body, b"\"include_usage\"")) {
                        _ if !stream => None,
                        (true, false) => Some(&r.stream),
                        (true, true) => Some(&r.stream_usage),
                        (false, _) => Some(&r.message_stream),
                    };
                    match s {
                        None => out.extend_from_slice(if openai { &r.chat } else { &r.message }),
                        Some(s) => {
                            let hold = h.hold_ms.unwrap_or_else(|| HOLD_MS.load(Ordering::Relaxed));
                            if hold > 0 {
                                held = Some((s, hold));
                                break;
                            }
                            out.extend_from_slice(&s.full);
                        }
                    }
                }
                (false, "/v1/models") => out.extend_from_slice(&r.models),
                (false, "/health") => out.extend_from_slice(&r.health),
                (true, "/mock/hold") => {
                    HOLD_MS.store(query_u64(&h.path, "ms").unwrap_or(0), Ordering::Relaxed);
                    out.extend_from_slice(&r.ok);
                }
                (true, "/mock/release") => {
                    HOLD_MS.store(0, Ordering::Relaxed);
                    RELEASE_GEN.fetch_add(1, Ordering::AcqRel);
                    RELEASE.get().expect("notify").notify_waiters();
                    out.extend_from_slice(&r.ok);
                }
                _ => out.extend_from_slice(&r.not_found),
            }
            if close {
                break;
            }
        }
        if !out.is_empty() && sock.write_all(&out).await.is_err() {
            return;
        }
        if let Some((s, hold)) = held {
            if held_stream(&mut sock, s, hold).await.is_err() {
                return;
            }
            continue; // more pipelined requests may be buffered
        }
        if close {
            let _ = sock.shutdown().await;
            return;
        }
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let addr = if arg.contains(':') {
        arg
    } else {
        format!("127.0.0.1:{arg}")
    };
    let hold = std::env::var("MOCK_STREAM_HOLD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    HOLD_MS.store(hold, Ordering::Relaxed);
    let _ = RESPONSES.set(build_responses());
    let _ = RELEASE.set(Notify::new());
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("MOCK_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        let sa: std::net::SocketAddr = addr.parse().expect("ADDR must be ip:port");
        let sock = if sa.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("socket");
        let _ = sock.set_reuseaddr(true);
        sock.bind(sa).expect("bind");
        // A deep backlog: the open-streams test connects hundreds at once.
        let listener = sock.listen(4096).expect("listen");
        let local = listener.local_addr().expect("local addr");
        println!("mock ready on {local}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    tokio::spawn(serve_conn(sock));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_true_scan() {
        assert!(json_true(br#"{"stream": true}"#, b"\"stream\""));
        assert!(!json_true(br#"{"stream":false}"#, b"\"stream\""));
        assert!(json_true(
            br#"{"stream_options":{"include_usage":true},"stream":true}"#,
            b"\"stream\""
        ));
        assert!(!json_true(br#"{"model":"x"}"#, b"\"stream\""));
    }

    /// The SSE events (name, data) of a prebuilt stream, de-chunked.
    fn sse_events(s: &Stream) -> Vec<(Option<String>, serde_json::Value)> {
        let (body, n) = dechunk(&s.full[s.head.len()..]).unwrap().unwrap();
        assert_eq!(n, s.full.len() - s.head.len());
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with("\n\n"));
        text.split_terminator("\n\n")
            .map(|ev| {
                let mut name = None;
                let mut data = String::new();
                for line in ev.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                let v = if data == "[DONE]" {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(&data).unwrap()
                };
                (name, v)
            })
            .collect()
    }

    #[test]
    fn anthropic_wire_format() {
        let r = build_responses();
        let he = find(&r.message, b"\r\n\r\n").unwrap() + 4;
        let m: serde_json::Value = serde_json::from_slice(&r.message[he..]).unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["content"][0]["text"], CONTENT);
        assert_eq!(m["usage"]["output_tokens"], 48);
        let evs = sse_events(&r.message_stream);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
        assert_eq!(
            &names[..4],
            ["message_start", "content_block_start", "ping", "content_block_delta"]
        );
        assert_eq!(
            &names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        let mut text = String::new();
        for (name, v) in &evs {
            assert_eq!(v["type"], name.as_deref().unwrap(), "event name = data type");
            if v["type"] == "content_block_delta" {
                assert_eq!(v["delta"]["type"], "text_delta");
                text.push_str(v["delta"]["text"].as_str().unwrap());
            }
        }
        assert_eq!(text, CONTENT);
        assert_eq!(names.iter().filter(|n| **n == "content_block_delta").count(), 20);
        assert_eq!(evs[names.len() - 2].1["usage"]["output_tokens"], 48);
    }

    #[test]
    fn held_prelude_ends_with_the_first_text() {
        let r = build_responses();
        for s in [&r.stream, &r.stream_usage, &r.message_stream] {
            let evs = sse_events(s);
            let has_text = |v: &serde_json::Value| {
                v["delta"]["text"].as_str().is_some_and(|t| !t.is_empty())
                    || v["choices"][0]["delta"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
            };
            let first = evs.iter().position(|(_, v)| has_text(v)).unwrap();
            assert_eq!(s.prelude, first + 1);
            assert_eq!(s.events.len(), evs.len() + 1, "events + terminator");
        }
    }

    #[test]
    fn dechunk_works() {
        let b = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nrest";
        let (body, n) = dechunk(b).unwrap().unwrap();
        assert_eq!(body, b"abcde");
        assert_eq!(&b[n..], b"rest");
        assert!(dechunk(b"3\r\nab").is_none());
    }
}
