//! HTTP edges (issue 10, items 1–4): what a hostile or merely unusual
//! client sends on the wire — oversized declarations, `Expect:
//! 100-continue`, trickled bodies and heads, malformed requests — gets a
//! prompt answer with a JSON body, and never holds a connection for long.
//!
//! Every wait here is a bounded timer on a read, never a sleep.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, MockResponse, MockUpstream, RecordedRequest};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than any answer here should take, far shorter than the 60 s
/// read timeouts the defects waited for.
const PROMPT: Duration = Duration::from_secs(5);

fn echo(r: &RecordedRequest) -> MockResponse {
    let model = r.json()["model"].as_str().unwrap_or("").to_string();
    MockResponse::json(200, &openai_chat_completion(&model, "ok", (3, 1)))
}

async fn gateway(yaml: Option<&str>) -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start(Arc::new(echo)).await;
    let gw = Gateway::start_with(
        &[
            ("OPENAI_API_KEY", "sk-edges".to_string()),
            ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
            ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
            ("SWITCHYARD_MAX_BODY_BYTES", "4096".to_string()),
        ],
        yaml,
    )
    .await;
    (mock, gw)
}

/// One parsed HTTP/1.1 response off a raw connection.
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {} {}", self.head, String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Reads one response (head, then a `Content-Length` body) within `PROMPT`;
/// `buf` keeps bytes read past it for the next call.
pub async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    let deadline = Instant::now() + PROMPT;
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(conn, buf, deadline).await;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let mut r = RawResponse {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    buf.drain(..end);
    while buf.len() < len {
        fill(conn, buf, deadline).await;
    }
    r.body = buf.drain(..len).collect();
    r
}

async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut chunk = vec![0u8; 16384];
    let n = tokio::time::timeout(left, conn.read(&mut chunk))
        .await
        .expect("answered promptly")
        .expect("read");
    assert!(
        n > 0,
        "connection closed before a whole response: {}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Whether the peer closes the connection within `PROMPT` (no more bytes).
pub async fn closes(conn: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(PROMPT, conn.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn chat_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})).expect("json")
}

fn post_head(len: usize, extra: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_from_the_header_without_waiting_for_the_body() {
    let (_mock, gw) = gateway(None).await;
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(post_head(1 << 30, "").as_bytes()).await.expect("write");
    let started = Instant::now();
    let r = read_response(&mut conn, &mut Vec::new()).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(started.elapsed() < PROMPT);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

#[tokio::test]
async fn a_client_sending_an_oversized_body_anyway_reads_the_413_instead_of_a_reset() {
    let (_mock, gw) = gateway(None).await;
    let big = vec![b'x'; 2 << 20];
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("the answer arrives, not a reset");
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_and_refused_at_once_when_too_large() {
    let (_mock, gw) = gateway(None).await;
    let body = chat_body();
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    let mut buf = Vec::new();
    conn.write_all(post_head(body.len(), "Expect: 100-continue\r\n").as_bytes())
        .await
        .expect("write");
    let cont = read_response(&mut conn, &mut buf).await;
    assert_eq!(cont.status, 100, "{}", cont.head);
    conn.write_all(&body).await.expect("body");
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "ok");

    // Too large: the final answer comes instead of 100, and no body is read.
    conn.write_all(post_head(1 << 20, "Expect: 100-continue\r\n").as_bytes())
        .await
        .expect("write");
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(closes(&mut conn).await, "a refused upload's connection is closed");
}

#[tokio::test]
async fn a_body_trickled_slower_than_the_minimum_rate_is_cut_off_with_408() {
    let (_mock, gw) = gateway(Some("server:\n  body_timeout_seconds: 1\n")).await;
    let body = chat_body();
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(post_head(body.len(), "").as_bytes())
        .await
        .expect("head");
    conn.write_all(&body[..3]).await.expect("first bytes");
    let started = Instant::now();
    let r = read_response(&mut conn, &mut Vec::new()).await;
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited the body timeout"
    );
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    assert!(closes(&mut conn).await);
}

#[tokio::test]
async fn a_head_trickled_past_the_header_timeout_gets_408_and_the_connection_closes() {
    let (_mock, gw) = gateway(Some("server:\n  header_timeout_seconds: 1\n")).await;
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("partial head");
    let started = Instant::now();
    let r = read_response(&mut conn, &mut Vec::new()).await;
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited the header timeout"
    );
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    assert!(closes(&mut conn).await);
}

#[tokio::test]
async fn past_max_connections_the_longest_waiting_are_shed_and_health_still_answers() {
    let (_mock, gw) = gateway(Some("server:\n  max_connections: 16\n")).await;
    // Slow clients: each holds a connection with a head that never ends.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut c = TcpStream::connect(gw.addr).await.expect("connect");
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("partial head");
        slow.push(c);
    }
    let r = tokio::time::timeout(
        PROMPT,
        reqwest::Client::new().get(format!("{}/health", gw.base_url)).send(),
    )
    .await
    .expect("health answers promptly")
    .expect("send");
    assert_eq!(r.status(), 200);
    assert!(closes(&mut slow[0]).await, "the longest-waiting slow client was shed");
}

#[tokio::test]
async fn requests_the_http_parser_refuses_get_a_json_400_and_a_close() {
    let (_mock, gw) = gateway(None).await;
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_url = format!(
        "GET /v1/models?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bad content-length",
            post_head(0, "")
                .replace("Content-Length: 0", "Content-Length: 12abc")
                .into_bytes(),
        ),
        (
            "duplicate content-length",
            post_head(5, "Content-Length: 7\r\n").into_bytes(),
        ),
        (
            "control byte in a header",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
        ),
        (
            "500 headers",
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
        ),
        ("100 KB URL", long_url.into_bytes()),
        ("garbage request line", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
        conn.write_all(&bytes).await.expect("write");
        let r = read_response(&mut conn, &mut Vec::new()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.head);
        assert_eq!(r.json()["error"]["code"], "malformed_http", "{what}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{what}");
        assert!(
            r.header("server").is_none(),
            "{what}: Pingora's own answer leaked: {}",
            r.head
        );
    }
    // The Anthropic path answers in the Anthropic envelope.
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .await
        .expect("write");
    let r = read_response(&mut conn, &mut Vec::new()).await;
    assert_eq!(r.status, 400, "{}", r.head);
    assert_eq!(r.json()["type"], "error");
}

#[tokio::test]
async fn three_pipelined_requests_are_answered_in_order_on_one_connection() {
    let (_mock, gw) = gateway(None).await;
    let body = chat_body();
    let mut bytes = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    bytes.extend_from_slice(post_head(body.len(), "").as_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(&bytes).await.expect("write");
    let mut buf = Vec::new();
    let health = read_response(&mut conn, &mut buf).await;
    let chat = read_response(&mut conn, &mut buf).await;
    let models = read_response(&mut conn, &mut buf).await;
    assert_eq!((health.status, chat.status, models.status), (200, 200, 200));
    assert_eq!(chat.json()["choices"][0]["message"]["content"], "ok");
    assert_eq!(models.json()["object"], "list");
}
