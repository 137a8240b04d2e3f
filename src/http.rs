//! Reading request bodies from and writing responses to a Pingora session,
//! for the pipeline and the admin API alike. Every write goes through here,
//! so the request summary always knows the status and bytes sent, and the
//! audit capture sees exactly what the caller received.

use crate::error::GatewayError;
use crate::summary::RequestSummary;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

/// How much of an oversized body is read and discarded so the client sees
/// the 413 instead of a reset; beyond it the connection is closed.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

/// How long an unwanted body is read and discarded after the answer (a
/// lingering close: closing with unread bytes makes the kernel send a reset
/// that can destroy the answer before the client reads it).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The slowest body upload served beyond `server.body_timeout_seconds`, in
/// bytes per second: a client trickling a byte every few seconds cannot
/// hold a connection.
const MIN_BODY_RATE: u64 = 64 * 1024;

/// Whether the caller waits for `100 Continue` before sending its body
/// (curl does for uploads over 1 KiB, waiting a second when unanswered).
fn expects_continue(session: &Session) -> bool {
    let h = session.req_header();
    h.version == http::Version::HTTP_11
        && h.headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole request body, refusing more than `limit` bytes: at once
/// from a `Content-Length` over it (the client never has to send the body),
/// or as soon as a chunked body passes it. Answers `Expect: 100-continue`
/// first, and gives up on a body slower than [`MIN_BODY_RATE`].
pub async fn read_body(
    session: &mut Session,
    limit: usize,
    body_timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        session.set_keepalive(None);
        return Err(GatewayError::BodyTooLarge(limit));
    }
    if expects_continue(session) && !session.is_body_done() {
        // A failed write shows up as a failed body read just below. Pingora
        // would take any header before the body as an early answer and end
        // keep-alive; an interim 100 is not one.
        if let Ok(cont) = ResponseHeader::build(100, Some(0)) {
            session.set_close_on_response_before_downstream_finish(false);
            let _ = session.write_response_header(Box::new(cont), false).await;
            session.set_close_on_response_before_downstream_finish(true);
        }
    }
    let started = std::time::Instant::now();
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    loop {
        let allowed = body_timeout + std::time::Duration::from_secs(buf.len() as u64 / MIN_BODY_RATE);
        let Some(left) = allowed.checked_sub(started.elapsed()) else {
            return Err(body_too_slow(session));
        };
        let read = match tokio::time::timeout(left, session.read_request_body()).await {
            Ok(r) => r,
            Err(_) => return Err(body_too_slow(session)),
        };
        match read {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    session.set_keepalive(None);
                    return Err(GatewayError::BodyTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(GatewayError::InvalidRequest {
                    message: format!("could not read the request body: {}", e.etype().as_str()),
                    param: None,
                })
            }
        }
    }
}

/// The connection of a body too slow to wait for is not reused.
fn body_too_slow(session: &mut Session) -> GatewayError {
    session.set_keepalive(None);
    GatewayError::ClientTimeout("body")
}

/// Reads and discards an unread body so the connection stays reusable
/// (answering with a body unread makes Pingora close the connection). A
/// client waiting for `100 Continue` sends nothing, so nothing is read.
pub async fn drain_body(session: &mut Session, limit: usize) {
    if expects_continue(session) || !discard_body(session, limit).await {
        session.set_keepalive(None);
    }
}

/// After an answer sent before the body was read (a 413 from the header),
/// reads what the client is still sending, bounded in bytes and time, so
/// the close that follows cannot reset the answer away.
pub async fn linger(session: &mut Session) {
    if !session.is_body_done() {
        discard_body(session, DRAIN_CAP).await;
    }
}

/// Reads and discards the rest of the body, at most `cap` bytes and
/// [`LINGER`]; whether it ended within both.
async fn discard_body(session: &mut Session, cap: usize) -> bool {
    let read = async {
        let mut seen = 0usize;
        while let Ok(Some(c)) = session.read_request_body().await {
            seen += c.len();
            if seen > cap {
                return false;
            }
        }
        true
    };
    matches!(tokio::time::timeout(LINGER, read).await, Ok(true))
}

/// During a graceful stop or upgrade, answers with `Connection: close` so
/// keep-alive clients open their next request on a new connection (served
/// by the new process) instead of racing the old one closing this one.
pub fn close_if_shutting_down(session: &mut Session) {
    if crate::conns::draining() || session.is_process_shutting_down() {
        session.set_keepalive(None);
    }
}

/// Response headers, parsed (names and values are checked once, where they
/// are made, never again per response).
pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// A header name checked when the gateway is compiled: `HeaderName::from_static`
/// called at run time parses its name on every call, and these are on every
/// request's path.
#[macro_export]
macro_rules! header_name {
    ($name:literal) => {{
        const NAME: ::http::HeaderName = ::http::HeaderName::from_static($name);
        NAME
    }};
}

/// One header from text; `None` when it is not valid HTTP (the callers'
/// texts are constants, ids and names already checked). Name it with
/// [`header_name!`].
pub fn header(name: HeaderName, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((name, HeaderValue::from_str(value).ok()?))
}

/// A response head: `fixed`, the request id, then `headers` (appended),
/// with lowercase names and nothing parsed again.
fn response_head(
    status: u16,
    s: &RequestSummary,
    fixed: &[(HeaderName, HeaderValue)],
    headers: &[(HeaderName, HeaderValue)],
) -> Option<ResponseHeader> {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::from_u16(status).ok()?;
    let h = &mut parts.headers;
    h.reserve(fixed.len() + headers.len() + 1);
    for (k, v) in fixed {
        h.insert(k.clone(), v.clone());
    }
    if let Ok(id) = HeaderValue::from_str(&s.request_id) {
        h.insert(crate::header_name!("x-request-id"), id);
    }
    for (k, v) in headers {
        h.append(k.clone(), v.clone());
    }
    Some(ResponseHeader::from(parts))
}

/// Writes a complete response with a JSON (or `headers`' content-type) body.
pub async fn respond(
    session: &mut Session,
    s: &mut RequestSummary,
    status: u16,
    body: Vec<u8>,
    headers: &[(HeaderName, HeaderValue)],
) {
    let mut fixed = vec![(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()))];
    if !headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE) {
        fixed.push((http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    }
    let Some(resp) = response_head(status, s, &fixed, headers) else {
        return;
    };
    s.status = status;
    s.bytes_out = body.len();
    if let Some(c) = s.capture.as_mut() {
        c.response_bytes(&body);
    }
    close_if_shutting_down(session);
    let head_only = session.req_header().method == http::Method::HEAD;
    if session.write_response_header(Box::new(resp), head_only).await.is_err() {
        s.client_gone = true;
        return;
    }
    if !head_only
        && session
            .write_response_body(Some(Bytes::from(body)), true)
            .await
            .is_err()
    {
        s.client_gone = true;
    }
}

/// Writes `e` in the caller's dialect with its status (and `Allow` on 405).
pub async fn respond_error(
    session: &mut Session,
    s: &mut RequestSummary,
    e: &GatewayError,
    headers: &[(HeaderName, HeaderValue)],
) {
    let mut hs = headers.to_vec();
    if let GatewayError::MethodNotAllowed { path, .. } = e {
        let allow = match crate::endpoint::Endpoint::classify("GET", path) {
            Ok(ep) => ep.allow(),
            Err(_) => "POST",
        };
        hs.push((http::header::ALLOW, HeaderValue::from_static(allow)));
    }
    let body = e.body(s.dialect);
    respond(session, s, e.status(), body, &hs).await;
}

/// Starts a `text/event-stream` response (status 200, chunked).
pub async fn start_event_stream(
    session: &mut Session,
    s: &mut RequestSummary,
    headers: &[(HeaderName, HeaderValue)],
) -> bool {
    let fixed = [
        (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (http::header::TRANSFER_ENCODING, HeaderValue::from_static("chunked")),
    ];
    let Some(resp) = response_head(200, s, &fixed, headers) else {
        return false;
    };
    s.status = 200;
    close_if_shutting_down(session);
    if session.write_response_header(Box::new(resp), false).await.is_err() {
        s.client_gone = true;
        return false;
    }
    true
}

/// Writes one piece of a streamed body in one write (`end` finishes it).
/// `false` when the client went away.
pub async fn write_stream_chunk(session: &mut Session, s: &mut RequestSummary, out: &[u8], end: bool) -> bool {
    if out.is_empty() && !end {
        return true;
    }
    s.bytes_out += out.len();
    if let Some(c) = s.capture.as_mut() {
        c.response_bytes(out);
    }
    let data = (!out.is_empty()).then(|| Bytes::copy_from_slice(out));
    if session.write_response_body(data, end).await.is_err() {
        s.client_gone = true;
        session.set_keepalive(None);
        return false;
    }
    true
}
