//! Time to first token (`benches/load.sh`): sends K streaming requests one
//! after another on one keep-alive connection and measures, for each, the
//! time from writing the request to reading the first SSE event that carries
//! text: an OpenAI chunk with a non-empty `choices[0].delta.content`, or an
//! Anthropic `content_block_delta` with a non-empty `delta.text`. Every
//! stream is read to its end (and must end with `[DONE]` / `message_stop`)
//! before the next request, so the connection is reused like a real client's.
//!
//! Usage: `ttft ADDR PATH BODY_FILE K [WARMUP] [TIMEOUT_SECS]`; ADDR is
//! ip:port, BODY_FILE a JSON request body with `"stream": true`. WARMUP
//! requests (default 20) are sent first and not counted.
//!
//! Prints one result line (times in µs):
//! `TTFT_RESULT n= errors= p50= p90= p99= max= mean= total_p50= total_p99=`
//! where `total_*` is the time to the end of the stream. Raw blocking TCP,
//! `TCP_NODELAY`, HTTP/1.1 with chunked or length-delimited bodies.

#![cfg_attr(test, allow(dead_code))]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What one SSE event means to the measurement.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// Carries text: the first one is the first token.
    Text,
    /// The end of the stream (`[DONE]`, `message_stop`).
    End,
    /// An error event.
    Error(String),
    Other,
}

/// Classifies one SSE event (the text between blank lines).
fn classify(ev: &[u8]) -> Event {
    let text = String::from_utf8_lossy(ev);
    let mut name = "";
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.trim() == "[DONE]" {
        return Event::End;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
        return Event::Other;
    };
    let ty = v.get("type").and_then(|t| t.as_str()).unwrap_or(name);
    let non_empty = |x: &serde_json::Value| x.as_str().is_some_and(|s| !s.is_empty());
    if name == "error" || ty == "error" || v.get("error").is_some() {
        return Event::Error(data.chars().take(300).collect());
    }
    match ty {
        "message_stop" => Event::End,
        "content_block_delta" if non_empty(&v["delta"]["text"]) => Event::Text,
        _ if non_empty(&v["choices"][0]["delta"]["content"]) => Event::Text,
        _ => Event::Other,
    }
}

/// Incremental HTTP/1.1 response reader over one connection.
struct Conn {
    addr: String,
    sock: Option<TcpStream>,
    buf: Vec<u8>,
    timeout: Duration,
    /// When the last read returned.
    last_read: Instant,
}

/// One measured exchange.
struct Sample {
    first_text: Duration,
    total: Duration,
}

impl Conn {
    fn sock(&mut self) -> Result<&mut TcpStream, String> {
        if self.sock.is_none() {
            let s = TcpStream::connect(&self.addr).map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = s.set_nodelay(true);
            s.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
            self.buf.clear();
            self.sock = Some(s);
        }
        Ok(self.sock.as_mut().expect("connected"))
    }

    /// Reads more bytes; returns the instant the read returned.
    fn fill(&mut self) -> Result<Instant, String> {
        let mut tmp = [0u8; 16 * 1024];
        let s = self.sock()?;
        let n = s.read(&mut tmp).map_err(|e| format!("read: {e}"))?;
        let at = Instant::now();
        self.last_read = at;
        if n == 0 {
            self.sock = None;
            return Err("connection closed mid-response".into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(at)
    }

    fn exchange(&mut self, req: &[u8]) -> Result<Sample, String> {
        let start = Instant::now();
        if let Err(e) = self.sock()?.write_all(req) {
            self.sock = None;
            return Err(format!("write: {e}"));
        }
        let r = self.read_response(start);
        if r.is_err() {
            self.sock = None; // never reuse a connection in an unknown state
        }
        r
    }

    fn read_response(&mut self, start: Instant) -> Result<Sample, String> {
        // Head.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("");
        let (mut chunked, mut length, mut close, mut sse) = (false, None, false, false);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else { continue };
            match (k.trim(), v.trim()) {
                ("transfer-encoding", v) => chunked = v.contains("chunked"),
                ("content-length", v) => length = v.parse::<usize>().ok(),
                ("connection", v) => close = v.contains("close"),
                ("content-type", v) => sse = v.starts_with("text/event-stream"),
                _ => {}
            }
        }
        let ok = status.starts_with("http/1.1 200") && sse;
        self.buf.drain(..head_end);
        if !chunked {
            // A length-delimited body is never a stream here: read it for the
            // error message.
            let n = length.unwrap_or(0).min(1 << 20);
            while self.buf.len() < n {
                self.fill()?;
            }
            let body = String::from_utf8_lossy(&self.buf[..n]).into_owned();
            self.buf.drain(..n);
            return Err(format!("not a stream: {} {}", status, &body[..body.len().min(300)]));
        }
        if !ok {
            return Err(format!("bad response head: {}", head.replace("\r\n", " | ")));
        }
        // Chunked SSE body: de-chunk into `sse`, classify complete events as
        // the reads that complete them arrive.
        let mut body: Vec<u8> = Vec::with_capacity(8192);
        let mut scanned = 0; // events in body[..scanned] are classified
        let mut first_text = None;
        let mut ended = false;
        // Bytes that came with the head arrived with the read that ended it.
        let mut at = self.last_read;
        loop {
            // Decode every complete chunk in the buffer.
            let mut last = false;
            while let Some(le) = find(&self.buf, b"\r\n") {
                let size_txt = String::from_utf8_lossy(&self.buf[..le]);
                let size_txt = size_txt.split(';').next().unwrap_or("").trim().to_string();
                let size = usize::from_str_radix(&size_txt, 16).map_err(|_| format!("bad chunk size {size_txt:?}"))?;
                if self.buf.len() < le + 2 + size + 2 {
                    break;
                }
                if size == 0 {
                    self.buf.drain(..le + 4); // no trailers from these servers
                    last = true;
                    break;
                }
                body.extend_from_slice(&self.buf[le + 2..le + 2 + size]);
                self.buf.drain(..le + 2 + size + 2);
            }
            while let Some(e) = find(&body[scanned..], b"\n\n") {
                let ev = &body[scanned..scanned + e];
                scanned += e + 2;
                match classify(ev) {
                    Event::Text if first_text.is_none() => first_text = Some(at - start),
                    Event::End => ended = true,
                    Event::Error(m) => return Err(format!("error event: {m}")),
                    _ => {}
                }
            }
            if last {
                break;
            }
            at = self.fill()?;
        }
        let total = at - start;
        if close {
            self.sock = None;
        }
        match (first_text, ended) {
            (Some(first_text), true) => Ok(Sample { first_text, total }),
            (None, _) => Err("stream carried no text".into()),
            (_, false) => Err("stream ended without [DONE] / message_stop".into()),
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: ttft ADDR PATH BODY_FILE K [WARMUP] [TIMEOUT_SECS]");
        std::process::exit(2);
    }
    let (addr, path) = (args[1].clone(), &args[2]);
    let body = std::fs::read(&args[3]).unwrap_or_else(|e| {
        eprintln!("ttft: cannot read {}: {e}", args[3]);
        std::process::exit(2)
    });
    let k: usize = args[4].parse().expect("K");
    let warmup: usize = args.get(5).and_then(|v| v.parse().ok()).unwrap_or(20);
    let deadline = Instant::now() + Duration::from_secs(args.get(6).and_then(|v| v.parse().ok()).unwrap_or(60));

    let auth = if path.starts_with("/v1/messages") {
        "x-api-key: bench\r\nanthropic-version: 2023-06-01"
    } else {
        "authorization: Bearer bench"
    };
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\n\
         {auth}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);

    let mut conn = Conn {
        addr,
        sock: None,
        buf: Vec::with_capacity(16 * 1024),
        timeout: Duration::from_secs(10),
        last_read: Instant::now(),
    };
    let (mut first, mut total) = (Vec::with_capacity(k), Vec::with_capacity(k));
    let mut errors = 0usize;
    let mut first_err = None;
    for i in 0..warmup + k {
        if Instant::now() > deadline {
            first_err.get_or_insert_with(|| "overall timeout".to_string());
            errors += warmup + k - i;
            break;
        }
        match conn.exchange(&req) {
            Ok(s) if i >= warmup => {
                first.push(s.first_text.as_nanos() as u64);
                total.push(s.total.as_nanos() as u64);
            }
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                first_err.get_or_insert(e);
                // A refused connect fails again at once: do not spin.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    if let Some(e) = first_err {
        eprintln!("ttft: first error: {e}");
    }
    let mean = if first.is_empty() {
        0.0
    } else {
        first.iter().sum::<u64>() as f64 / first.len() as f64 / 1000.0
    };
    first.sort_unstable();
    total.sort_unstable();
    println!(
        "TTFT_RESULT n={} errors={errors} p50={:.1} p90={:.1} p99={:.1} max={:.1} mean={mean:.1} total_p50={:.1} total_p99={:.1}",
        first.len(),
        percentile(&first, 50.0),
        percentile(&first, 90.0),
        percentile(&first, 99.0),
        percentile(&first, 100.0),
        percentile(&total, 50.0),
        percentile(&total, 99.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_both_dialects() {
        let c = |s: &str| classify(s.as_bytes());
        assert_eq!(
            c(r#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Event::Other
        );
        assert_eq!(c(r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#), Event::Text);
        assert_eq!(c("data: [DONE]"), Event::End);
        assert_eq!(
            c("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0}"),
            Event::Other
        );
        assert_eq!(
            c("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}"),
            Event::Text
        );
        assert_eq!(c("event: message_stop\ndata: {\"type\":\"message_stop\"}"), Event::End);
        assert!(matches!(c(r#"data: {"error":{"message":"x"}}"#), Event::Error(_)));
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
    }
}
