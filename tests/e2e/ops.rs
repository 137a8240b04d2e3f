//! Operations: hot reload under load, invalid configs, SIGHUP, graceful stop,
//! zero-downtime upgrade.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_chunk, sse_data, MockResponse, MockUpstream, RecordedRequest, Step};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

fn two_provider_yaml(a: &MockUpstream, b: &MockUpstream, alias_target: &str) -> String {
    format!(
        "providers:\n  pa:\n    type: openai\n    base_url: {}/v1\n    api_key: ka\n    models: [m]\n  pb:\n    type: openai\n    base_url: {}/v1\n    api_key: kb\n    models: [m]\naliases:\n  fast: {alias_target}\n",
        a.base_url(),
        b.base_url()
    )
}

/// A stream that sends `first`, waits for the test to release `gate`, then
/// sends `second` with `finish_reason: stop` and `[DONE]`.
fn gated_stream(first: &str, second: &str, gate: &Arc<Semaphore>) -> MockResponse {
    MockResponse::Stream {
        status: 200,
        headers: vec![],
        steps: vec![
            Step::Send(sse_data(&openai_chat_chunk(
                "m",
                json!({"role": "assistant", "content": first}),
                None,
            ))),
            Step::Wait(gate.clone()),
            Step::Send(sse_data(&openai_chat_chunk(
                "m",
                json!({"content": second}),
                Some("stop"),
            ))),
            Step::Send(b"data: [DONE]\n\n".to_vec()),
        ],
    }
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends requests back to back until `stop`; returns (ok, failed, dropped).
///
/// One connection per request, and — like the official OpenAI/Anthropic
/// SDKs — one retry when the server closed the connection before sending
/// any response byte (`IncompleteMessage`): Pingora drops a connection it
/// accepted but had not read a request from when a stop or handover begins
/// (HTTP/1.1 allows a server to close such a connection). Those drops are
/// counted and returned, so a test can bound them; anything else — a status
/// other than 200, a broken body, a second failure — is a failed request.
fn spawn_load(base: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>, usize)> {
    spawn_load_with(base, stop, 1, false)
}

/// `workers` clients sending back to back until `stop`, on keep-alive
/// connections or a new connection per request. Returns (ok, failures,
/// connections dropped unread — retried once, and counted).
fn spawn_load_with(
    base: String,
    stop: Arc<AtomicBool>,
    workers: usize,
    keep_alive: bool,
) -> tokio::task::JoinHandle<(usize, Vec<String>, usize)> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (base, stop) = (base.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = reqwest::Client::builder();
                if !keep_alive {
                    b = b.pool_max_idle_per_host(0);
                }
                let c = b.build().expect("client");
                let (mut ok, mut failed, mut dropped) = (0, Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let sent = c
                            .post(format!("{base}/v1/chat/completions"))
                            .json(&chat_body("fast", false))
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                                Ok(_) => ok += 1,
                                Err(e) => failed.push(format!("body: {e}")),
                            },
                            Ok(r) => failed.push(format!("status {}", r.status())),
                            Err(e) if attempt == 1 && format!("{e:?}").contains("IncompleteMessage") => {
                                dropped += 1;
                                continue;
                            }
                            Err(e) => failed.push(format!("send: {e:?}")),
                        }
                        break;
                    }
                }
                (ok, failed, dropped)
            }));
        }
        let (mut ok, mut failed, mut dropped) = (0, Vec::new(), 0);
        for t in tasks {
            let (o, f, d) = t.await.expect("load worker");
            ok += o;
            failed.extend(f);
            dropped += d;
        }
        (ok, failed, dropped)
    })
}

#[tokio::test]
async fn config_file_change_reroutes_under_load_and_invalid_files_are_rejected() {
    // Provider A holds one stream open until the test releases it.
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let a = MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if r.json()["stream"] == true {
            gated_stream("old", " route", &g)
        } else {
            MockResponse::Json {
                status: 200,
                body: crate::support::mock::openai_chat_completion("m", "from a", (1, 1))
                    .to_string()
                    .into_bytes(),
                headers: vec![],
            }
        }
    }))
    .await;
    let b = MockUpstream::openai().await;
    let gw = Gateway::start_with(&[], Some(&two_provider_yaml(&a, &b, "pa/m"))).await;
    let c = reqwest::Client::new();

    // A stream that starts on the old route.
    let mut stream = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat_body("fast", true))
        .send()
        .await
        .expect("stream");
    let first = stream.chunk().await.expect("chunk").expect("first chunk");
    assert!(String::from_utf8_lossy(&first).contains("old"));

    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(gw.base_url.clone(), stop.clone());
    let mut rx = gw.log_lines();
    std::fs::write(gw.data_dir.join("switchyard.yaml"), two_provider_yaml(&a, &b, "pb/m")).expect("write");
    Gateway::wait_log(&mut rx, "config reloaded (file change)").await;
    let before_b = b.requests().len();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat_body("fast", false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(b.requests().len() > before_b, "new requests use the new route");

    // The in-flight stream finishes on the snapshot it started with.
    gate.add_permits(1);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.expect("chunk") {
        rest.extend_from_slice(&chunk);
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains(" route") && rest.contains("[DONE]"), "{rest}");

    // An invalid file: rejected with every error logged, old config serves on.
    std::fs::write(
        gw.data_dir.join("switchyard.yaml"),
        "providers:\n  pa:\n    type: nonsense\nbogus_key: 1\n",
    )
    .expect("write");
    let line = Gateway::wait_log(&mut rx, "rejected").await;
    assert!(line.contains("2 error(s)"), "{line}");
    let r = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat_body("fast", false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "the previous config keeps serving");

    stop.store(true, Ordering::Relaxed);
    let (ok, failed, dropped) = load.await.expect("load task");
    assert_eq!(dropped, 0, "no connection is dropped by a reload");
    assert!(ok > 0);
    assert!(failed.is_empty(), "requests failed during reload: {failed:?}");
}

#[tokio::test]
async fn sighup_reloads() {
    let a = MockUpstream::openai().await;
    let b = MockUpstream::openai().await;
    let mut gw = Gateway::start_with(&[], Some(&two_provider_yaml(&a, &b, "pa/m"))).await;
    let mut rx = gw.log_lines();
    // SAFETY: kill(2) on our child.
    unsafe {
        libc::kill(gw.pid() as i32, libc::SIGHUP);
    }
    Gateway::wait_log(&mut rx, "config reloaded (SIGHUP)").await;
    let r = reqwest::Client::new()
        .get(format!("{}/health", gw.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "SIGHUP must not stop the gateway");
    let status = gw.signal_and_wait(libc::SIGTERM).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits_zero() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let mock = MockUpstream::start(Arc::new(move |_r: &RecordedRequest| {
        gated_stream("before", " after", &g)
    }))
    .await;
    let yaml = format!(
        "server:\n  grace_period_seconds: 20\n  graceful_shutdown_timeout_seconds: 2\nproviders:\n  openai:\n    base_url: {}/v1\n    api_key: k\n    models: [m]\n",
        mock.base_url()
    );
    let mut gw = Gateway::start_with(&[], Some(&yaml)).await;
    let c = reqwest::Client::new();
    let mut stream = c
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&chat_body("m", true))
        .send()
        .await
        .expect("stream");
    let first = stream.chunk().await.expect("chunk").expect("first");
    assert!(String::from_utf8_lossy(&first).contains("before"));
    let mut rx = gw.log_lines();
    // SAFETY: kill(2) on our child.
    unsafe {
        libc::kill(gw.pid() as i32, libc::SIGTERM);
    }
    Gateway::wait_log(&mut rx, "SIGTERM").await;
    gate.add_permits(1);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.expect("stream survives shutdown") {
        rest.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
    let status = gw.signal_and_wait(0).await;
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    // The stream that finished during the grace period was recorded.
    let dir = gw.data_dir.clone();
    let again = Gateway::spawn(&[], Some(&yaml), dir, None, &[]).await;
    let r = reqwest::Client::new()
        .get(format!("{}/admin/usage/log", again.base_url))
        .send()
        .await
        .expect("admin");
    let v: Value = r.json().await.expect("json");
    let recs = v["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(recs.len(), 1, "{v}");
    assert_eq!(recs[0]["partial"], false);
    assert_eq!(recs[0]["status"], 200);
}

#[tokio::test]
async fn an_idle_gateway_stops_within_a_second_of_sigterm() {
    let yaml = "server:\n  grace_period_seconds: 30\n";
    let mut gw = Gateway::start_with(&[], Some(yaml)).await;
    // One finished request on a keep-alive connection that stays open.
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/health", gw.base_url)).send().await.expect("health");
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    let status = gw.signal_and_wait(libc::SIGTERM).await;
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(1), "an idle stop took {took:?}");
}

/// Continuous load and one long stream across `serve --upgrade` + SIGQUIT:
/// zero failed requests, the stream intact.
#[tokio::test]
async fn zero_downtime_upgrade() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let streams = Arc::new(AtomicUsize::new(0));
    let s2 = streams.clone();
    let mock = MockUpstream::start(Arc::new(move |r: &RecordedRequest| {
        if r.json()["stream"] == true && s2.fetch_add(1, Ordering::SeqCst) == 0 {
            gated_stream("long", " stream", &g)
        } else {
            MockResponse::Json {
                status: 200,
                body: crate::support::mock::openai_chat_completion("m", "ok", (1, 1))
                    .to_string()
                    .into_bytes(),
                headers: vec![],
            }
        }
    }))
    .await;
    let yaml = format!(
        "server:\n  grace_period_seconds: 30\n  graceful_shutdown_timeout_seconds: 2\nproviders:\n  openai:\n    base_url: {}/v1\n    api_key: k\n    models: [m]\naliases:\n  fast: openai/m\n",
        mock.base_url()
    );
    let mut old = Gateway::start_with(&[], Some(&yaml)).await;
    let base = old.base_url.clone();
    let c = reqwest::Client::new();
    let mut stream = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat_body("m", true))
        .send()
        .await
        .expect("stream");
    let first = stream.chunk().await.expect("chunk").expect("first");
    assert!(String::from_utf8_lossy(&first).contains("long"));

    let stop = Arc::new(AtomicBool::new(false));
    // Busy keep-alive connections: the old process must end each one only
    // after a response carrying `Connection: close`.
    let load = spawn_load_with(base.clone(), stop.clone(), 4, true);
    // A load balancer's probe on fresh connections, reaching both processes
    // during the handover: ready must mean "can serve" throughout.
    let probe = {
        let (base, stop) = (base.clone(), stop.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let (mut ok, mut not_ready, mut opening) = (0, Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                match c.get(format!("{base}/health/ready")).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok += 1;
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if v["store"] == "opening" {
                            opening += 1;
                        }
                    }
                    Ok(r) => not_ready.push(r.status().as_u16()),
                    Err(e) => not_ready.push(if e.is_connect() { 1 } else { 0 }),
                }
            }
            (ok, not_ready, opening)
        })
    };
    // The new process: same address, data dir and upgrade socket.
    let new_dir = old.data_dir.clone();
    let env = [(
        "SWITCHYARD_CONFIG",
        new_dir.join("switchyard.yaml").display().to_string(),
    )];
    let listen = old.addr.to_string();
    let new_start =
        tokio::spawn(
            async move { Gateway::spawn(&env, None, new_dir, None, &["--upgrade", "--listen", &listen]).await },
        );
    // Pingora's handover: the new process listens on the upgrade socket; the
    // old one sends its listeners on SIGQUIT, retrying (5 x 1 s) until the
    // new one is there, so the order of these two steps does not matter.
    let mut rx = old.log_lines();
    // SAFETY: kill(2) on our child.
    unsafe {
        libc::kill(old.pid() as i32, libc::SIGQUIT);
    }
    let quit_at = std::time::Instant::now();
    let new = new_start.await.expect("new gateway task");
    let _ = Gateway::wait_log(&mut rx, "SIGQUIT").await;
    // Requests keep succeeding against the new process; finish the stream.
    gate.add_permits(1);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.expect("stream intact across the upgrade") {
        rest.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
    let status = old.signal_and_wait(0).await;
    assert!(status.success(), "old process exits cleanly: {status:?}");
    let waited = quit_at.elapsed();
    // Pingora's 5 s handover pause, then no grace period to sit out.
    assert!(
        waited < Duration::from_secs(12),
        "old process lingered {waited:?} with nothing in flight"
    );
    let r = c.get(format!("{base}/health")).send().await.expect("new serves");
    assert_eq!(r.status(), 200);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, dropped) = load.await.expect("load");
    let (probed, not_ready, opening) = probe.await.expect("probe");
    assert!(probed > 10, "the probe ran ({probed})");
    assert!(
        not_ready.is_empty(),
        "readiness failed during the upgrade: {not_ready:?}"
    );
    eprintln!("readiness probes: {probed} ready, {opening} of them while the new process waited for the store");
    assert_eq!(dropped, 0, "keep-alive connections closed under a sending client");
    assert!(ok > 10, "load ran ({ok})");
    assert!(failed.is_empty(), "failed during upgrade: {failed:?}");
    drop(new);
}
