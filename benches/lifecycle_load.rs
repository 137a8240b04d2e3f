//! A strict keep-alive load client for `benches/lifecycle.sh`: `WORKERS`
//! connections, each sending chat requests back to back over HTTP/1.1
//! keep-alive, reconnecting after a `Connection: close` answer. No retries:
//! a request that was sent and not answered is a failure, which is what a
//! reload, upgrade or stop must never cause.
//!
//! Usage: `lifecycle_load ADDR WORKERS SECONDS` — prints one JSON line:
//! `{"sent","ok","failed","connect_errors","errors":{kind: n}}`. Connection
//! refusals (nothing listening: after a stop) are counted apart, since no
//! request was sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    connect_errors: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn fail(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }
}

/// Reads one response; `Ok(close)` says whether the server closes after it.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, bool), &'static str> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                return Err(if buf.is_empty() {
                    "closed_unanswered"
                } else {
                    "closed_mid_head"
                })
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return Err("reset"),
            Err(_) => return Err("timeout"),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no_content_length")?;
    let close = head
        .lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"));
    while buf.len() < end + len {
        match tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err("closed_mid_body"),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return Err("reset"),
            Err(_) => return Err("timeout"),
        }
    }
    buf.drain(..end + len);
    Ok((status, close))
}

async fn worker(addr: String, stop: Arc<AtomicBool>) -> Tally {
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    )
    .into_bytes();
    let mut t = Tally::default();
    'connections: while !stop.load(Ordering::Relaxed) {
        let mut conn = match TcpStream::connect(&addr).await {
            Ok(c) => c,
            Err(_) => {
                t.connect_errors += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            t.sent += 1;
            if conn.write_all(&req).await.is_err() {
                t.fail("write");
                continue 'connections;
            }
            match read_response(&mut conn, &mut buf).await {
                Ok((200, close)) => {
                    t.ok += 1;
                    if close {
                        continue 'connections;
                    }
                }
                Ok((status, _)) => {
                    t.fail(&format!("status_{status}"));
                    continue 'connections;
                }
                Err(kind) => {
                    t.fail(kind);
                    continue 'connections;
                }
            }
        }
    }
    t
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(workers), Some(secs)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|w| w.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: lifecycle_load ADDR WORKERS SECONDS");
        std::process::exit(2);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(worker(addr.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            all.sent += t.sent;
            all.ok += t.ok;
            all.connect_errors += t.connect_errors;
            for (k, v) in t.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }
    }
    let failed: u64 = all.errors.values().sum();
    let errors: Vec<String> = all.errors.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!(
        "{{\"sent\":{},\"ok\":{},\"failed\":{failed},\"connect_errors\":{},\"errors\":{{{}}},\"seconds\":{:.1}}}",
        all.sent,
        all.ok,
        all.connect_errors,
        errors.join(","),
        started.elapsed().as_secs_f64()
    );
}
