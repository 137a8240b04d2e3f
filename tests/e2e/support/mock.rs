//! A mock upstream model provider for end-to-end tests.
//!
//! [`MockUpstream`] is a real HTTP/1.1 server on `127.0.0.1:0` with hand-written request parsing
//! (request line, headers, `Content-Length` and chunked request bodies, `Expect: 100-continue`,
//! keep-alive with any number of requests per connection, pipelining) and `TCP_NODELAY`. Every
//! request is recorded ([`MockUpstream::requests`]) before its handler runs, so a test can inspect
//! what the gateway sent even when the mock never answers ([`MockResponse::Stall`]).
//!
//! Each mock runs on its own OS thread with its own small Tokio runtime, so it keeps serving even
//! when the test's runtime is a blocked `current_thread` runtime, and a handler that blocks (say,
//! to forward a request synchronously) stalls only that mock. Dropping the [`MockUpstream`] stops
//! it and closes every connection it holds.
//!
//! [`MockUpstream::openai`] is a ready-made OpenAI-compatible provider reproducing api.openai.com's
//! wire formats (see [`openai_handler`] for exactly what it answers); [`MockUpstream::start`] takes
//! any [`Handler`], and the `openai_*`/[`sse_data`] helpers build realistic bodies for custom ones.

// A helper library for many tests: not every item is used by every build of the test binary.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

/// Largest request head (request line + headers) the mock accepts before answering 431.
const MAX_HEAD: usize = 64 * 1024;

/// The `created` timestamp every body built by this module carries (fixed, so outputs are
/// deterministic and byte-comparable across runs).
pub const MOCK_CREATED: u64 = 1_750_000_000;

/// The `id` of completions and chunks built by the public helpers. The [`openai_handler`] replaces
/// it with a per-request id `chatcmpl-mock<N>` (N counts the mock's chat requests from 1).
pub const MOCK_COMPLETION_ID: &str = "chatcmpl-mock";

/// The `system_fingerprint` every completion and chunk carries.
pub const MOCK_FINGERPRINT: &str = "fp_mock";

/// Default content of the [`openai_handler`]'s chat answers (when the last user message does not
/// start with `echo:`).
pub const MOCK_REPLY: &str = "Hello from mock";

/// Length of the [`openai_handler`]'s embedding vectors when the request has no `dimensions`.
pub const MOCK_EMBED_DIMS: usize = 8;

/// `prompt_tokens` reported by [`openai_stream_steps`]'s usage chunk.
pub const HELPER_PROMPT_TOKENS: u64 = 10;

/// Model ids listed by the [`openai_handler`] at `GET /v1/models`.
pub const MOCK_MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"];

/// One request as the mock received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The request method, as sent (e.g. `"POST"`).
    pub method: String,
    /// The request target, including any query string (e.g. `"/v1/models?limit=2"`).
    pub path: String,
    /// Every header in the order received; names lowercased, values with surrounding whitespace trimmed.
    pub headers: Vec<(String, String)>,
    /// The body after removing any chunked transfer coding (trailers are dropped).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The value of the first header named `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON. Panics with the method, path and body if it is not JSON (test-only).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "mock upstream: body of {} {} is not JSON ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The path without its query string (e.g. `"/v1/models"`).
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// One step of a streamed ([`MockResponse::Stream`]) response body.
#[derive(Clone, Debug)]
pub enum Step {
    /// Send these bytes as one HTTP chunk, in one `write` followed by a flush. An empty `Send` is
    /// skipped (a zero-length chunk would end the body).
    Send(Vec<u8>),
    /// Pause before the next step.
    Sleep(Duration),
    /// Acquire one permit from the semaphore (and forget it) before continuing, so a test can prove
    /// chunk N reached the client before chunk N+1 is even sent, without sleeping. A closed
    /// semaphore lets the stream continue.
    Wait(Arc<Semaphore>),
    /// Close the TCP connection (FIN, no final chunk) right here, mid-body. Steps after it are ignored.
    Abort,
}

/// What the mock answers to one request.
#[derive(Clone, Debug)]
pub enum MockResponse {
    /// A complete response with a `Content-Length` body. `content-type: application/json` and
    /// `content-length` are added unless `headers` has them (so a test can send a lying length).
    Json {
        /// HTTP status code.
        status: u16,
        /// The exact body bytes.
        body: Vec<u8>,
        /// Extra response headers, written in order.
        headers: Vec<(String, String)>,
    },
    /// A `Transfer-Encoding: chunked` response: the head is written and flushed at once, then the
    /// steps run, then the final `0\r\n\r\n` chunk (unless a step aborted). `content-type:
    /// text/event-stream` is added unless `headers` has a content-type.
    Stream {
        /// HTTP status code.
        status: u16,
        /// Extra response headers, written in order.
        headers: Vec<(String, String)>,
        /// The body, step by step.
        steps: Vec<Step>,
    },
    /// Read the request and never answer: the connection stays open until the client closes it or
    /// the mock is dropped (for timeout tests).
    Stall,
    /// Read the request and close the connection without sending a single byte.
    Close,
    /// Wait, then answer (a provider slow to send its response head).
    Delayed(Duration, Box<MockResponse>),
}

impl MockResponse {
    /// A [`MockResponse::Json`] whose body is `body` serialised ([`to_openai_json`]), with no extra headers.
    pub fn json(status: u16, body: &Value) -> MockResponse {
        MockResponse::Json {
            status,
            body: to_openai_json(body),
            headers: Vec::new(),
        }
    }

    /// A [`MockResponse::Json`] carrying OpenAI's error envelope (see [`openai_error`]).
    pub fn openai_error(
        status: u16,
        message: &str,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> MockResponse {
        MockResponse::json(status, &openai_error(message, kind, param, code))
    }

    /// A [`MockResponse::Stream`] with status 200, no extra headers and these steps.
    pub fn sse(steps: Vec<Step>) -> MockResponse {
        MockResponse::Stream {
            status: 200,
            headers: Vec::new(),
            steps,
        }
    }
}

/// The request handler of a [`MockUpstream`]: called once per request, after the whole body has
/// been read and recorded. A panicking handler makes the mock answer 500 with the panic message in
/// an OpenAI error envelope (and print it), rather than dropping the connection.
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> MockResponse + Send + Sync>;

#[derive(Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    connections: AtomicUsize,
}

/// A running mock provider. Stopped (with every connection closed) when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0` answering every request with `handler`. It is accepting
    /// connections when this returns.
    pub async fn start(handler: Handler) -> MockUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("mock upstream: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("mock upstream: set_nonblocking");
        let addr = listener.local_addr().expect("mock upstream: local_addr");
        let state = Arc::new(State::default());
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread_state = state.clone();
        std::thread::Builder::new()
            .name(format!("mock-upstream-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("mock-upstream-worker")
                    .enable_all()
                    .build()
                    .expect("mock upstream: build runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("mock upstream: register listener");
                    tokio::select! {
                        _ = stop => {}
                        _ = accept_loop(listener, handler, thread_state) => {}
                    }
                });
                // Cancels every connection task, which closes their sockets.
                rt.shutdown_background();
            })
            .expect("mock upstream: spawn thread");
        MockUpstream {
            addr,
            state,
            shutdown: Some(shutdown),
        }
    }

    /// Starts the default OpenAI-compatible provider ([`openai_handler`]).
    pub async fn openai() -> MockUpstream {
        MockUpstream::start(openai_handler()).await
    }

    /// `"http://127.0.0.1:PORT"`, without `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order (a request is recorded as soon as its body
    /// has been read, before the handler runs).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    /// TCP connections accepted so far (a client that pools keep-alive connections shows fewer
    /// connections than requests).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_connection(sock, handler.clone(), state.clone()));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("mock upstream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 server side
// ---------------------------------------------------------------------------------------------

/// Why reading a request stopped.
enum ReadError {
    /// The socket failed or closed mid-request: just drop the connection.
    Io,
    /// The request is malformed: answer this status and close.
    Bad(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

struct ParsedRequest {
    rec: RecordedRequest,
    keep_alive: bool,
}

/// A connection's read side: the socket plus bytes read but not yet consumed (pipelining-safe).
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 * 1024);
        self.sock.read_buf(&mut self.buf).await
    }

    /// Removes and returns one CRLF-terminated line (without the CRLF).
    async fn read_line(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > limit {
                return Err(ReadError::Bad(400, "line too long in chunked body".into()));
            }
            if self.fill().await? == 0 {
                return Err(ReadError::Io);
            }
        }
    }

    /// Removes and returns exactly `n` bytes.
    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(ReadError::Io);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one whole request; `Ok(None)` if the peer closed cleanly between requests.
    async fn read_request(&mut self) -> Result<Option<ParsedRequest>, ReadError> {
        let head_end = loop {
            // RFC 9112 §2.2: ignore empty lines before a request line.
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431, "request head too large".into()));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io)
                };
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = std::str::from_utf8(&head[..head_end])
            .map_err(|_| ReadError::Bad(400, "request head is not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, path, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(p), Some(v), None) if !m.is_empty() && !p.is_empty() && v.starts_with("HTTP/1.") => {
                (m, p, v)
            }
            _ => return Err(ReadError::Bad(400, format!("bad request line {request_line:?}"))),
        };
        let mut headers = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(ReadError::Bad(400, format!("bad header line {line:?}")));
            };
            if name.is_empty() || name.ends_with(' ') || name.ends_with('\t') {
                return Err(ReadError::Bad(400, format!("bad header name {name:?}")));
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let values = |n: &'static str| header_values(&headers, n);
        let has_token = |n: &'static str, token: &str| {
            values(n)
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let chunked = values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        let content_length = if chunked {
            None
        } else {
            let mut lengths = values("content-length")
                .flat_map(|v| v.split(','))
                .map(|v| v.trim().parse::<usize>());
            match lengths.next() {
                None => None,
                Some(Ok(n)) if lengths.all(|m| m.as_ref().ok() == Some(&n)) => Some(n),
                _ => return Err(ReadError::Bad(400, "bad content-length".into())),
            }
        };
        let keep_alive = if version == "HTTP/1.0" {
            has_token("connection", "keep-alive")
        } else {
            !has_token("connection", "close")
        };
        let expects_body = chunked || content_length.unwrap_or(0) > 0;
        if expects_body && values("expect").any(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let line = self.read_line(4096).await?;
                let line = String::from_utf8_lossy(&line);
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| ReadError::Bad(400, format!("bad chunk size line {line:?}")))?;
                if size == 0 {
                    // Trailer section: header lines up to an empty line.
                    while !self.read_line(MAX_HEAD).await?.is_empty() {}
                    break;
                }
                body.extend_from_slice(&self.read_exact(size).await?);
                if !self.read_exact(2).await?.starts_with(b"\r\n") {
                    return Err(ReadError::Bad(400, "chunk not followed by CRLF".into()));
                }
            }
            body
        } else {
            self.read_exact(content_length.unwrap_or(0)).await?
        };
        Ok(Some(ParsedRequest {
            rec: RecordedRequest {
                method: method.to_string(),
                path: path.to_string(),
                headers,
                body,
            },
            keep_alive,
        }))
    }
}

/// The values of every header named `name` (already lowercased).
fn header_values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn serve_connection(sock: TcpStream, handler: Handler, state: Arc<State>) {
    let mut conn = Conn { sock, buf: Vec::new() };
    loop {
        let req = match conn.read_request().await {
            Ok(Some(req)) => req,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(status, message)) => {
                let body = to_openai_json(&openai_error(&message, "invalid_request_error", None, None));
                let resp = MockResponse::Json {
                    status,
                    body,
                    headers: Vec::new(),
                };
                let _ = write_response(&mut conn, resp, false, false).await;
                return;
            }
        };
        state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.rec.clone());
        let resp = match catch_unwind(AssertUnwindSafe(|| handler(&req.rec))) {
            Ok(resp) => resp,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                eprintln!(
                    "mock upstream: handler panicked on {} {}: {msg}",
                    req.rec.method, req.rec.path
                );
                MockResponse::openai_error(
                    500,
                    &format!("mock handler panicked: {msg}"),
                    "server_error",
                    None,
                    None,
                )
            }
        };
        let is_head = req.rec.method.eq_ignore_ascii_case("HEAD");
        match write_response(&mut conn, resp, req.keep_alive, is_head).await {
            Ok(true) if req.keep_alive => continue,
            _ => return,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

fn write_head(status: u16, headers: &[(String, String)], defaults: &[(&str, String)], keep_alive: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in defaults {
        if !has_header(headers, name) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep_alive && !has_header(headers, "connection") {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Writes one response; `Ok(true)` if the connection may carry another request.
async fn write_response(conn: &mut Conn, resp: MockResponse, keep_alive: bool, is_head: bool) -> io::Result<bool> {
    match resp {
        MockResponse::Json { status, body, headers } => {
            let defaults = [
                ("content-type", "application/json".to_string()),
                ("content-length", body.len().to_string()),
            ];
            let mut out = write_head(status, &headers, &defaults, keep_alive);
            if !is_head {
                out.extend_from_slice(&body);
            }
            conn.sock.write_all(&out).await?;
            conn.sock.flush().await?;
            Ok(true)
        }
        MockResponse::Stream { status, headers, steps } => {
            let defaults = [
                ("content-type", "text/event-stream".to_string()),
                ("transfer-encoding", "chunked".to_string()),
            ];
            conn.sock
                .write_all(&write_head(status, &headers, &defaults, keep_alive))
                .await?;
            conn.sock.flush().await?;
            for step in steps {
                match step {
                    Step::Send(bytes) if bytes.is_empty() => {}
                    Step::Send(bytes) => {
                        let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                        chunk.extend_from_slice(&bytes);
                        chunk.extend_from_slice(b"\r\n");
                        conn.sock.write_all(&chunk).await?;
                        conn.sock.flush().await?;
                    }
                    Step::Sleep(d) => tokio::time::sleep(d).await,
                    Step::Wait(sem) => {
                        if let Ok(permit) = sem.acquire().await {
                            permit.forget();
                        }
                    }
                    Step::Abort => return Ok(false),
                }
            }
            conn.sock.write_all(b"0\r\n\r\n").await?;
            conn.sock.flush().await?;
            Ok(true)
        }
        MockResponse::Stall => {
            // Hold the connection until the peer goes away (or the mock is dropped).
            let mut sink = [0u8; 4096];
            while matches!(conn.sock.read(&mut sink).await, Ok(n) if n > 0) {}
            Ok(false)
        }
        MockResponse::Close => Ok(false),
        MockResponse::Delayed(wait, then) => {
            tokio::time::sleep(wait).await;
            Box::pin(write_response(conn, *then, keep_alive, is_head)).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Body builders (OpenAI wire formats)
// ---------------------------------------------------------------------------------------------

/// OpenAI's error envelope: `{"error":{"message","type","param","code"}}` (absent param/code are `null`).
pub fn openai_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// OpenAI's `usage` object for chat completions, with the detail objects api.openai.com sends.
pub fn openai_usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// A non-streamed `chat.completion` object (id [`MOCK_COMPLETION_ID`], created [`MOCK_CREATED`])
/// with one assistant message `content`, `finish_reason: "stop"` and `usage` =
/// `(prompt_tokens, completion_tokens)`.
pub fn openai_chat_completion(model: &str, content: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": MOCK_COMPLETION_ID,
        "object": "chat.completion",
        "created": MOCK_CREATED,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": openai_usage(usage.0, usage.1),
        "service_tier": "default",
        "system_fingerprint": MOCK_FINGERPRINT
    })
}

/// One `chat.completion.chunk` (id [`MOCK_COMPLETION_ID`], created [`MOCK_CREATED`]) with a single
/// choice at index 0 carrying `delta` (e.g. `json!({"content": "Hi"})`) and `finish_reason`. It has
/// no `usage` key: add `"usage": null` yourself to mimic a stream with `include_usage`.
pub fn openai_chat_chunk(model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": MOCK_COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": MOCK_CREATED,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": MOCK_FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    })
}

/// One SSE event as OpenAI frames it: `b"data: <compact JSON>\n\n"`, keys in OpenAI's order
/// ([`to_openai_json`]).
pub fn sse_data(v: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    write_ordered(v, OPENAI_KEY_ORDER, &mut out);
    out.extend_from_slice(b"\n\n");
    out
}

/// Object keys in the order api.openai.com writes them (as in its stream chunks); keys not listed
/// follow, alphabetically.
#[rustfmt::skip]
pub const OPENAI_KEY_ORDER: &[&str] = &[
    "id", "object", "data", "created", "model", "service_tier", "system_fingerprint", "choices",
    "index", "delta", "message", "role", "content", "refusal", "annotations", "tool_calls", "type",
    "function", "name", "arguments", "embedding", "logprobs", "finish_reason", "usage",
    "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
    "completion_tokens_details", "cached_tokens", "reasoning_tokens", "audio_tokens",
    "accepted_prediction_tokens", "rejected_prediction_tokens", "owned_by", "obfuscation", "error",
    "param", "code",
];

/// Compact JSON with object keys ordered like OpenAI's (`{"id":…,"object":…,"created":…,"model":…`),
/// whatever order a `Value` keeps its keys in (sorted, unless serde_json's `preserve_order` is on).
/// [`sse_data`], [`MockResponse::json`] and the [`openai_handler`] write bodies this way.
pub fn to_openai_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_ordered(v, OPENAI_KEY_ORDER, &mut out);
    out
}

/// Compact JSON of `v` with each object's keys in `order` first, the rest alphabetically.
fn write_ordered(v: &Value, order: &[&str], out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (order.iter().position(|o| o == k).unwrap_or(usize::MAX), k.as_str()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("serialise JSON key");
                out.push(b':');
                write_ordered(&map[k], order, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_ordered(item, order, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("serialise JSON"),
    }
}

/// The `data: [DONE]` event that ends every OpenAI stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

struct StreamSpec<'a> {
    id: &'a str,
    model: &'a str,
    pieces: &'a [&'a str],
    finish_reason: &'a str,
    /// `Some((prompt, completion))`: `"usage": null` on every chunk plus a final usage chunk.
    usage: Option<(u64, u64)>,
    obfuscation: bool,
}

fn stream_steps(spec: &StreamSpec<'_>) -> Vec<Step> {
    let mut chunks = Vec::with_capacity(spec.pieces.len() + 3);
    chunks.push(openai_chat_chunk(
        spec.model,
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ));
    for piece in spec.pieces {
        chunks.push(openai_chat_chunk(spec.model, json!({"content": piece}), None));
    }
    chunks.push(openai_chat_chunk(spec.model, json!({}), Some(spec.finish_reason)));
    if spec.usage.is_some() {
        for chunk in &mut chunks {
            chunk["usage"] = Value::Null;
        }
    }
    if let Some((prompt, completion)) = spec.usage {
        let mut last = openai_chat_chunk(spec.model, json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = openai_usage(prompt, completion);
        chunks.push(last);
    }
    let mut steps = Vec::with_capacity(chunks.len() + 1);
    for (i, mut chunk) in chunks.into_iter().enumerate() {
        chunk["id"] = json!(spec.id);
        if spec.obfuscation {
            // api.openai.com pads every chunk with random characters; this padding is deterministic.
            chunk["obfuscation"] = json!(&"Xq7Lm2Pz9K"[..3 + i % 8]);
        }
        steps.push(Step::Send(sse_data(&chunk)));
    }
    steps.push(Step::Send(SSE_DONE.to_vec()));
    steps
}

/// The body of an OpenAI chat stream, one [`Step::Send`] per SSE event: a role chunk (`delta:
/// {"role":"assistant","content":"","refusal":null}`), one content chunk per piece, a finish chunk
/// (`delta: {}`, `finish_reason: "stop"`), and with `include_usage` `"usage": null` on each of those
/// plus a final chunk with `choices: []` and usage `(HELPER_PROMPT_TOKENS, pieces.len())`; then
/// `data: [DONE]`. Ids and timestamps as in [`openai_chat_chunk`].
pub fn openai_stream_steps(model: &str, pieces: &[&str], include_usage: bool) -> Vec<Step> {
    stream_steps(&StreamSpec {
        id: MOCK_COMPLETION_ID,
        model,
        pieces,
        finish_reason: "stop",
        usage: include_usage.then_some((HELPER_PROMPT_TOKENS, pieces.len() as u64)),
        obfuscation: false,
    })
}

/// The mock's deterministic embedding of `text`: `dims` values `((h ^ (i * 0x9E3779B97F4A7C15)) %
/// 2001 - 1000) / 1024` for `i` in `0..dims` (wrapping u64 arithmetic), where `h` is the 64-bit
/// FNV-1a hash of the text's UTF-8 bytes. Every value is exactly representable as both f32 and a
/// short decimal, so the float and base64 encodings of a vector decode to identical numbers.
/// (`tests/python/_mock.py` implements the same function.) A token-array input is embedded as
/// the text of its ids joined with `,` (e.g. `"1,2,3"`).
pub fn mock_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..dims as u64)
        .map(|i| {
            let k = (h ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 2001;
            (k as f32 - 1000.0) / 1024.0
        })
        .collect()
}

/// Standard base64 (with padding) of the vector's little-endian f32 bytes: exactly what OpenAI
/// returns for `encoding_format: "base64"`.
pub fn embedding_base64(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = (u32::from(group[0]) << 16)
            | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
            | u32::from(*group.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whitespace-separated words: the mock's token count for a text.
pub fn mock_token_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a chat message's `content`: a string, or the `text` of its `{"type":"text"}` parts
/// concatenated; anything else is empty.
fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The content the [`openai_handler`] answers to a chat request: the text after `echo:` (one
/// following space dropped) when the last user message starts with `echo:`, else [`MOCK_REPLY`].
pub fn mock_reply_for(messages: &[Value]) -> String {
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| message_text(&m["content"]));
    match last_user.as_deref().and_then(|t| t.strip_prefix("echo:")) {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_string(),
        None => MOCK_REPLY.to_string(),
    }
}

/// Splits a reply into stream pieces, one per word with its trailing space (`"Hello from mock"` →
/// `["Hello ", "from ", "mock"]`); their concatenation is the reply. The count is the
/// `completion_tokens` the [`openai_handler`] reports.
pub fn mock_pieces(content: &str) -> Vec<&str> {
    content.split_inclusive(' ').collect()
}

// ---------------------------------------------------------------------------------------------
// The default OpenAI-compatible provider
// ---------------------------------------------------------------------------------------------

/// The handler behind [`MockUpstream::openai`], for tests that wrap it (e.g. fail the first request,
/// then delegate). It behaves like api.openai.com:
///
/// - **Auth first**: no `Authorization: Bearer <non-empty>` → 401 (`type: invalid_request_error`,
///   `code: null`); a key starting with `sk-bad` or equal to `invalid` → 401 `invalid_api_key`.
/// - `POST /v1/chat/completions`: 400 for a body that is not JSON, or lacks `model` or `messages`;
///   404 `model_not_found` for a model starting with `no-such-`. Otherwise the reply is
///   [`mock_reply_for`] the messages (`"Hello from mock"`, or the text after `echo:` in the last
///   user message), split into [`mock_pieces`]; `max_completion_tokens`/`max_tokens` smaller than
///   the piece count truncates it with `finish_reason: "length"`. Usage: `prompt_tokens` = words
///   in all messages' text ([`mock_token_count`]), `completion_tokens` = pieces. The `model` is
///   echoed, the id is `chatcmpl-mock<N>` (N counts chat requests from 1). With `stream: true`:
///   `text/event-stream; charset=utf-8`, a role chunk, one chunk per piece, a finish chunk, each
///   with a deterministic `obfuscation` field (unless `stream_options.include_obfuscation` is
///   false) and `"usage": null` when `stream_options.include_usage` is true, then that usage chunk
///   with `choices: []`, then `data: [DONE]`.
/// - `POST /v1/embeddings`: `input` a string, strings, token ids or arrays of token ids; one
///   [`mock_embedding`] per input of `dimensions` (default [`MOCK_EMBED_DIMS`]) values, as float
///   arrays (`encoding_format` absent or `"float"`) or [`embedding_base64`] (`"base64"`); any other
///   format → 400. Usage `prompt_tokens` = `total_tokens` = words (or token ids) in all inputs.
/// - `GET /v1/models`: a list of [`MOCK_MODELS`]; `GET /v1/models/{id}`: that model object.
/// - Anything else: 404 `Invalid URL (METHOD /path)`.
///
/// Every answer carries `x-request-id: req_mock<N>` plus `openai-organization`,
/// `openai-processing-ms`, `openai-version` and `x-ratelimit-*` headers like the real API's.
pub fn openai_handler() -> Handler {
    let requests = Arc::new(AtomicU64::new(0));
    let chats = Arc::new(AtomicU64::new(0));
    Arc::new(move |req: &RecordedRequest| {
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        let resp = openai_route(req, &chats);
        with_openai_headers(resp, n)
    })
}

fn with_openai_headers(resp: MockResponse, n: u64) -> MockResponse {
    let extra = [
        ("x-request-id", format!("req_mock{n}")),
        ("openai-organization", "mock-org".to_string()),
        ("openai-processing-ms", "7".to_string()),
        ("openai-version", "2020-10-01".to_string()),
        ("x-ratelimit-limit-requests", "10000".to_string()),
        ("x-ratelimit-remaining-requests", "9999".to_string()),
        ("x-ratelimit-limit-tokens", "30000000".to_string()),
        ("x-ratelimit-remaining-tokens", "29999990".to_string()),
        ("x-ratelimit-reset-requests", "6ms".to_string()),
        ("x-ratelimit-reset-tokens", "0s".to_string()),
    ];
    let add = |headers: &mut Vec<(String, String)>| {
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    };
    match resp {
        MockResponse::Json {
            status,
            body,
            mut headers,
        } => {
            add(&mut headers);
            MockResponse::Json { status, body, headers }
        }
        MockResponse::Stream {
            status,
            mut headers,
            steps,
        } => {
            add(&mut headers);
            MockResponse::Stream { status, headers, steps }
        }
        other => other,
    }
}

fn invalid_request(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> MockResponse {
    MockResponse::openai_error(status, message, "invalid_request_error", param, code)
}

fn openai_route(req: &RecordedRequest, chats: &AtomicU64) -> MockResponse {
    let key = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return invalid_request(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            None,
            None,
        );
    };
    if key.starts_with("sk-bad") || key == "invalid" {
        let tail: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return invalid_request(
            401,
            &format!("Incorrect API key provided: sk-bad****{tail}. You can find your API key at https://platform.openai.com/account/api-keys."),
            None,
            Some("invalid_api_key"),
        );
    }
    let path = req.path_only();
    match (req.method.as_str(), path) {
        ("POST", "/v1/chat/completions") => openai_chat(req, chats),
        ("POST", "/v1/embeddings") => openai_embeddings(req),
        ("GET", "/v1/models") => MockResponse::json(
            200,
            &json!({"object": "list", "data": MOCK_MODELS.iter().map(|id| model_object(id)).collect::<Vec<_>>()}),
        ),
        ("GET", p) if p.starts_with("/v1/models/") => {
            let id = &p["/v1/models/".len()..];
            if MOCK_MODELS.contains(&id) {
                MockResponse::json(200, &model_object(id))
            } else {
                invalid_request(
                    404,
                    &format!("The model '{id}' does not exist"),
                    Some("model"),
                    Some("model_not_found"),
                )
            }
        }
        (method, path) => invalid_request(404, &format!("Invalid URL ({method} {path})"), None, None),
    }
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_721_172_741u64, "owned_by": "system"})
}

fn parse_json_body(req: &RecordedRequest) -> Result<Value, MockResponse> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(invalid_request(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
            None,
            None,
        )),
    }
}

fn openai_chat(req: &RecordedRequest, chats: &AtomicU64) -> MockResponse {
    let body = match parse_json_body(req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(model) = body["model"].as_str() else {
        return invalid_request(400, "you must provide a model parameter", None, None);
    };
    let Some(messages) = body["messages"].as_array() else {
        return invalid_request(
            400,
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        );
    };
    if model.starts_with("no-such-") {
        return invalid_request(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            None,
            Some("model_not_found"),
        );
    }
    let id = format!("chatcmpl-mock{}", chats.fetch_add(1, Ordering::SeqCst) + 1);
    let reply = mock_reply_for(messages);
    let mut pieces = mock_pieces(&reply);
    let mut finish_reason = "stop";
    let max = body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64());
    if let Some(max) = max.and_then(|m| usize::try_from(m).ok()) {
        if pieces.len() > max {
            pieces.truncate(max);
            finish_reason = "length";
        }
    }
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| mock_token_count(&message_text(&m["content"])))
        .sum();
    let completion_tokens = pieces.len() as u64;
    if body["stream"] == true {
        let options = &body["stream_options"];
        let steps = stream_steps(&StreamSpec {
            id: &id,
            model,
            pieces: &pieces,
            finish_reason,
            usage: (options["include_usage"] == true).then_some((prompt_tokens, completion_tokens)),
            obfuscation: options["include_obfuscation"] != false,
        });
        MockResponse::Stream {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream; charset=utf-8".into())],
            steps,
        }
    } else {
        let mut completion = openai_chat_completion(model, &pieces.concat(), (prompt_tokens, completion_tokens));
        completion["id"] = json!(id);
        completion["choices"][0]["finish_reason"] = json!(finish_reason);
        MockResponse::json(200, &completion)
    }
}

fn openai_embeddings(req: &RecordedRequest) -> MockResponse {
    let body = match parse_json_body(req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(model) = body["model"].as_str() else {
        return invalid_request(400, "you must provide a model parameter", None, None);
    };
    if model.starts_with("no-such-") {
        return invalid_request(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            None,
            Some("model_not_found"),
        );
    }
    let base64 = match &body["encoding_format"] {
        Value::Null => false,
        Value::String(f) if f == "float" => false,
        Value::String(f) if f == "base64" => true,
        other => {
            return invalid_request(
                400,
                &format!("{other} is not one of ['float', 'base64'] - 'encoding_format'"),
                Some("encoding_format"),
                Some("invalid_value"),
            )
        }
    };
    let dims = match &body["dimensions"] {
        Value::Null => MOCK_EMBED_DIMS,
        v => match v.as_u64() {
            Some(d @ 1..=4096) => d as usize,
            _ => {
                return invalid_request(
                    400,
                    "Invalid value for 'dimensions'.",
                    Some("dimensions"),
                    Some("invalid_value"),
                )
            }
        },
    };
    let tokens_text = |ids: &[Value]| -> Option<String> {
        ids.iter()
            .map(|t| t.as_u64().map(|t| t.to_string()))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(","))
    };
    // (text to embed, token count) per input.
    let inputs: Option<Vec<(String, u64)>> = match &body["input"] {
        Value::String(s) => Some(vec![(s.clone(), mock_token_count(s))]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| (s.to_string(), mock_token_count(s)))
                .collect(),
        ),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            tokens_text(items).map(|t| vec![(t, items.len() as u64)])
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_array) => items
            .iter()
            .map(|ids| {
                let ids = ids.as_array().map(Vec::as_slice).unwrap_or_default();
                tokens_text(ids).map(|t| (t, ids.len() as u64))
            })
            .collect(),
        _ => None,
    };
    let Some(inputs) = inputs else {
        return invalid_request(
            400,
            "'input' : input must be a string, an array of strings, or an array of token ids",
            Some("input"),
            None,
        );
    };
    let prompt_tokens: u64 = inputs.iter().map(|(_, n)| n).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = mock_embedding(text, dims);
            let embedding = if base64 {
                json!(embedding_base64(&v))
            } else {
                json!(v.iter().map(|f| f64::from(*f)).collect::<Vec<_>>())
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    MockResponse::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Tests of the mock itself
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Sends raw bytes on a fresh connection and reads until the server closes it.
    async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn keep_alive_reuses_one_connection() {
        let mock = MockUpstream::openai().await;
        let c = client();
        for _ in 0..2 {
            let resp = c
                .get(format!("{}/v1/models", mock.base_url()))
                .bearer_auth("sk-test")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["object"], "list");
            assert_eq!(body["data"][0]["object"], "model");
        }
        assert_eq!(mock.requests().len(), 2);
        assert_eq!(mock.connections(), 1);
    }

    #[tokio::test]
    async fn pipelined_requests_and_http10_close() {
        let mock = MockUpstream::start(Arc::new(|r: &RecordedRequest| MockResponse::Json {
            status: 200,
            body: r.path.clone().into_bytes(),
            headers: vec![],
        }))
        .await;
        let out = raw_exchange(
            mock.addr(),
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
        assert!(out.ends_with("\r\n\r\n/b?q=1"), "{out}");
        assert!(out.contains("connection: close"), "{out}");
        let out = raw_exchange(mock.addr(), b"GET /c HTTP/1.0\r\n\r\n").await;
        assert!(out.ends_with("/c"), "{out}");
        let paths: Vec<_> = mock.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/a", "/b?q=1", "/c"]);
    }

    #[tokio::test]
    async fn stream_chunks_arrive_before_the_next_is_sent() {
        let gate = Arc::new(Semaphore::new(0));
        let steps = vec![
            Step::Send(b"data: one\n\n".to_vec()),
            Step::Wait(gate.clone()),
            Step::Send(b"data: two\n\n".to_vec()),
        ];
        let mock = MockUpstream::start(Arc::new(move |_: &RecordedRequest| MockResponse::sse(steps.clone()))).await;
        let resp = client()
            .post(format!("{}/stream", mock.base_url()))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["transfer-encoding"], "chunked");
        let mut body = resp.bytes_stream();
        // The mock is parked on the semaphore: the first chunk must already be here.
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"data: one\n\n");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), body.next())
                .await
                .is_err(),
            "second chunk must not be sent before the gate opens"
        );
        gate.add_permits(1);
        let second = body.next().await.unwrap().unwrap();
        assert_eq!(&second[..], b"data: two\n\n");
        assert!(
            body.next().await.is_none(),
            "the stream ends cleanly after the final chunk"
        );
    }

    #[tokio::test]
    async fn abort_cuts_the_body() {
        let mock = MockUpstream::start(Arc::new(|_: &RecordedRequest| {
            MockResponse::sse(vec![
                Step::Send(b"data: partial\n\n".to_vec()),
                Step::Abort,
                Step::Send(b"never".to_vec()),
            ])
        }))
        .await;
        let resp = client().get(mock.base_url()).send().await.unwrap();
        let mut body = resp.bytes_stream();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"data: partial\n\n");
        let end = body.next().await;
        assert!(
            matches!(end, Some(Err(_))),
            "an aborted chunked body must be an error, got {end:?}"
        );

        // On the wire: the chunk, then EOF without the terminating 0-chunk.
        let out = raw_exchange(mock.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(out.ends_with("f\r\ndata: partial\n\n\r\n"), "{out:?}");
    }

    #[tokio::test]
    async fn chunked_request_bodies_are_decoded() {
        let mock = MockUpstream::start(Arc::new(|r: &RecordedRequest| MockResponse::Json {
            status: 200,
            body: r.body.clone(),
            headers: vec![("x-echo".into(), "1".into())],
        }))
        .await;
        // reqwest sends a streamed body with Transfer-Encoding: chunked.
        let parts: Vec<Result<&'static [u8], std::io::Error>> = vec![Ok(b"{\"a\":"), Ok(b"1,"), Ok(b"\"b\":[2]}")];
        let resp = client()
            .post(format!("{}/v1/echo", mock.base_url()))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(parts)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-echo"], "1");
        assert_eq!(resp.text().await.unwrap(), r#"{"a":1,"b":[2]}"#);
        let rec = mock.last_request().unwrap();
        assert_eq!(rec.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(rec.json(), json!({"a": 1, "b": [2]}));

        // Chunk extensions, upper-case hex, a trailer and Expect: 100-continue, by hand.
        let out = raw_exchange(
            mock.addr(),
            b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n\
              A;name=value\r\n0123456789\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{out}"
        );
        assert!(out.ends_with("0123456789!"), "{out}");
        assert_eq!(mock.last_request().unwrap().body, b"0123456789!");
    }

    #[tokio::test]
    async fn stall_close_and_bad_requests() {
        let mock = MockUpstream::start(Arc::new(|r: &RecordedRequest| match r.path.as_str() {
            "/stall" => MockResponse::Stall,
            "/close" => MockResponse::Close,
            _ => panic!("boom"),
        }))
        .await;
        let stalled = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = stalled
            .get(format!("{}/stall", mock.base_url()))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(raw_exchange(mock.addr(), b"GET /close HTTP/1.1\r\n\r\n").await, "");
        let out = raw_exchange(mock.addr(), b"GET /panic HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(
            out.starts_with("HTTP/1.1 500 ") && out.contains("mock handler panicked: boom"),
            "{out}"
        );
        let out = raw_exchange(mock.addr(), b"NONSENSE\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
        assert_eq!(mock.requests().len(), 3, "malformed requests are not recorded");
    }

    #[tokio::test]
    async fn openai_chat_non_stream() {
        let mock = MockUpstream::openai().await;
        let resp = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["x-request-id"], "req_mock1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "chatcmpl-mock1");
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["choices"][0]["message"]["content"], MOCK_REPLY);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 4);
        assert_eq!(body["usage"]["completion_tokens"], 3);
        assert_eq!(body["usage"]["total_tokens"], 7);
        assert_eq!(
            mock.last_request().unwrap().header("authorization"),
            Some("Bearer sk-test")
        );

        let echo = client()
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": [{"type": "text", "text": "echo: a b c"}]}]}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(echo["choices"][0]["message"]["content"], "a b ");
        assert_eq!(echo["choices"][0]["finish_reason"], "length");
    }

    fn sse_events(body: &str) -> Vec<&str> {
        body.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("data: line"))
            .collect()
    }

    #[tokio::test]
    async fn openai_chat_stream_with_and_without_usage() {
        let mock = MockUpstream::openai().await;
        for include_usage in [false, true] {
            let mut req =
                json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi there"}]});
            if include_usage {
                req["stream_options"] = json!({"include_usage": true});
            }
            let resp = client()
                .post(format!("{}/v1/chat/completions", mock.base_url()))
                .bearer_auth("sk-test")
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
            let text = resp.text().await.unwrap();
            let events = sse_events(&text);
            assert_eq!(*events.last().unwrap(), "[DONE]");
            let chunks: Vec<Value> = events[..events.len() - 1]
                .iter()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            assert_eq!(chunks.len(), if include_usage { 6 } else { 5 });
            let mut content = String::new();
            for c in &chunks {
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["model"], "gpt-4o");
                assert_eq!(c["id"], chunks[0]["id"]);
                assert!(c["obfuscation"].is_string());
                assert_eq!(c.get("usage").is_some(), include_usage, "{c}");
                if let Some(piece) = c["choices"][0]["delta"]["content"].as_str() {
                    content.push_str(piece);
                }
            }
            assert_eq!(content, MOCK_REPLY);
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            let finish = &chunks[4];
            assert_eq!(finish["choices"][0]["finish_reason"], "stop");
            if include_usage {
                assert_eq!(chunks[5]["choices"], json!([]));
                assert_eq!(chunks[5]["usage"]["prompt_tokens"], 2);
                assert_eq!(chunks[5]["usage"]["completion_tokens"], 3);
                assert!(chunks[..5].iter().all(|c| c["usage"].is_null()));
            }
        }
    }

    #[test]
    fn helpers_build_openai_stream() {
        let steps = openai_stream_steps("m", &["a", "b"], true);
        let bodies: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Send(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("unexpected step {other:?}"),
            })
            .collect();
        assert_eq!(bodies.len(), 6);
        assert!(
            bodies[0].starts_with("data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\""),
            "{}",
            bodies[0]
        );
        assert_eq!(bodies[5], "data: [DONE]\n\n");
        let usage: Value = serde_json::from_str(bodies[4].strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], HELPER_PROMPT_TOKENS);
        assert_eq!(usage["usage"]["completion_tokens"], 2);
        assert_eq!(usage["choices"], json!([]));
        assert!(!bodies[1].contains("obfuscation"));
        assert_eq!(
            bodies[2],
            "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1750000000,\"model\":\"m\",\
             \"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\
             \"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
        );
        let err = String::from_utf8(to_openai_json(&openai_error("m", "t", None, Some("c")))).unwrap();
        assert_eq!(err, r#"{"error":{"message":"m","type":"t","param":null,"code":"c"}}"#);
        assert_eq!(openai_stream_steps("m", &["a"], false).len(), 4);
    }

    #[test]
    fn base64_matches_known_encodings() {
        assert_eq!(embedding_base64(&[]), "");
        assert_eq!(embedding_base64(&[1.0]), "AACAPw==");
        assert_eq!(embedding_base64(&[1.0, -2.5]), "AACAPwAAIMA=");
        assert_eq!(embedding_base64(&[0.5, 0.25, 2.0]), "AAAAPwAAgD4AAABA");
        let v = mock_embedding("hello", 8);
        assert_eq!(v, mock_embedding("hello", 8));
        assert_ne!(v, mock_embedding("hello!", 8));
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x) && (x * 1024.0).fract() == 0.0));
    }

    #[tokio::test]
    async fn openai_embeddings_float_and_base64_agree() {
        let mock = MockUpstream::openai().await;
        let c = client();
        let mut answers = Vec::new();
        for format in ["float", "base64"] {
            let body: Value = c
                .post(format!("{}/v1/embeddings", mock.base_url()))
                .bearer_auth("sk-test")
                .json(&json!({"model": "text-embedding-3-small", "input": ["hello world", "x"], "encoding_format": format}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(body["object"], "list");
            assert_eq!(body["model"], "text-embedding-3-small");
            assert_eq!(body["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
            assert_eq!(body["data"][1]["index"], 1);
            answers.push(body);
        }
        let floats: Vec<f32> = answers[0]["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(floats, mock_embedding("hello world", MOCK_EMBED_DIMS));
        assert_eq!(answers[1]["data"][0]["embedding"], json!(embedding_base64(&floats)));

        let tokens: Value = c
            .post(format!("{}/v1/embeddings", mock.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "e", "input": [[1, 2, 3], [4]], "dimensions": 3}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(tokens["data"][0]["embedding"].as_array().unwrap().len(), 3);
        assert_eq!(tokens["usage"]["prompt_tokens"], 4);
        let bad = c
            .post(format!("{}/v1/embeddings", mock.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "e", "input": "x", "encoding_format": "int8"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
    }

    #[tokio::test]
    async fn openai_errors_use_the_envelope() {
        let mock = MockUpstream::openai().await;
        let c = client();
        let cases = [
            (None, "POST", "/v1/chat/completions", 401, Value::Null),
            (
                Some("sk-bad-key-1234"),
                "POST",
                "/v1/chat/completions",
                401,
                json!("invalid_api_key"),
            ),
            (Some("sk-test"), "POST", "/v1/nope", 404, Value::Null),
            (
                Some("sk-test"),
                "GET",
                "/v1/models/missing",
                404,
                json!("model_not_found"),
            ),
        ];
        for (key, method, path, status, code) in cases {
            let mut req = c
                .request(method.parse().unwrap(), format!("{}{path}", mock.base_url()))
                .json(&json!({"model": "gpt-4o-mini", "messages": []}));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), status, "{method} {path}");
            let body: Value = resp.json().await.unwrap();
            let err = &body["error"];
            assert!(err["message"].is_string() && err["type"].is_string(), "{body}");
            assert!(err.as_object().unwrap().contains_key("param"), "{body}");
            assert_eq!(err["code"], code, "{body}");
        }
        let resp = c
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("sk-test")
            .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "model_not_found");
        let resp = c
            .post(format!("{}/v1/chat/completions", mock.base_url()))
            .bearer_auth("sk-test")
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
}
