//! Opens N concurrent streaming chat requests through the gateway, waits until
//! every one has received its first SSE event, samples the gateway's RSS, then
//! closes them all (`benches/load.sh`, open-streams memory test).
//!
//! Usage: `hold_streams ADDR N GATEWAY_PID [MODEL] [TIMEOUT_SECS]`
//! (ADDR is host:port, 127.0.0.1 only in the bench). The upstream must keep the
//! streams open (mock_upstream with `POST /mock/hold?ms=...`).
//!
//! Prints one result line:
//! `HOLD_RESULT wanted=N ok=K failed=F rss_kib=R hwm_kib=H elapsed_ms=E`
//! where rss_kib is the largest VmRSS seen over ~1 s of sampling while all
//! streams are open. Raw TCP (no client pool limits), at most 100 connects in
//! flight at once so the listen backlog never overflows.

#![cfg_attr(test, allow(dead_code))]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn open_one(addr: String, req: Arc<Vec<u8>>) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(&addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.write_all(&req).await.map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before the first event: {}",
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(he) = find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 200") {
                return Err(format!("status: {}", String::from_utf8_lossy(&buf[..he.min(200)])));
            }
            if find(&buf[he..], b"data:").is_some() {
                return Ok(s);
            }
        }
        if buf.len() > 1 << 20 {
            return Err("no event in the first MiB".into());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: hold_streams ADDR N GATEWAY_PID [MODEL] [TIMEOUT_SECS]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let n: usize = args[2].parse().expect("N");
    let pid: u32 = args[3].parse().expect("PID");
    let model = args.get(4).cloned().unwrap_or_else(|| "gpt-4o-mini".into());
    let timeout = Duration::from_secs(args.get(5).and_then(|v| v.parse().ok()).unwrap_or(60));

    let body = serde_json::json!({
        "model": model,
        "stream": true,
        "temperature": 0.7,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a network engineering team. Answer in plain English, cite configuration keys exactly, and prefer short lists over long paragraphs."},
            {"role": "user", "content": "We run an AI gateway in front of several model providers. Explain what connection pooling to upstreams buys us, and what can go wrong when a provider closes idle keep-alive connections before we reuse them."},
            {"role": "assistant", "content": "Pooling saves a TCP and TLS handshake per request, which is often 1-3 round trips. The risk is a stale connection: the provider closed it, and the next write fails. A gateway should retry once on a fresh connection when nothing was received yet."},
            {"role": "user", "content": "Good. Now give me three settings to tune for long streaming responses."}
        ]
    })
    .to_string();
    let host = addr.clone();
    let req = Arc::new(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             accept: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let sem = Arc::new(Semaphore::new(100));
        let (tx, mut rx) = mpsc::channel::<Result<TcpStream, String>>(n.max(1));
        for _ in 0..n {
            let (addr, req, sem, tx) = (addr.clone(), req.clone(), sem.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return;
                };
                let r = tokio::time::timeout(Duration::from_secs(30), open_one(addr, req))
                    .await
                    .unwrap_or_else(|_| Err("timed out waiting for the first event".into()));
                let _ = tx.send(r).await;
            });
        }
        drop(tx);
        let mut open: Vec<TcpStream> = Vec::with_capacity(n);
        let mut failed = 0usize;
        let mut first_err: Option<String> = None;
        let deadline = tokio::time::Instant::now() + timeout;
        while open.len() + failed < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Ok(s))) => open.push(s),
                Ok(Some(Err(e))) => {
                    failed += 1;
                    first_err.get_or_insert(e);
                }
                Ok(None) => break,
                Err(_) => {
                    first_err.get_or_insert("overall timeout".into());
                    break;
                }
            }
        }
        let elapsed = start.elapsed().as_millis();
        // Sample while everything is open.
        let mut rss = 0u64;
        for _ in 0..10 {
            rss = rss.max(status_kib(pid, "VmRSS:").unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
        if let Some(e) = &first_err {
            eprintln!("hold_streams: first error: {e}");
        }
        println!(
            "HOLD_RESULT wanted={n} ok={} failed={failed} rss_kib={rss} hwm_kib={hwm} elapsed_ms={elapsed}",
            open.len()
        );
        drop(open);
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}
