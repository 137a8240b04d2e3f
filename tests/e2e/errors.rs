//! Every error case answers in the OpenAI envelope with the right status.

use crate::core::{client, setup, MASTER};
use crate::support::gateway::Gateway;
use crate::support::mock::{MockResponse, MockUpstream, RecordedRequest};
use serde_json::{json, Value};
use std::sync::Arc;

/// Sends raw bytes and returns (status, parsed error envelope).
async fn send_raw(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = client().request(method, format!("{}{path}", gw.base_url)).body(body);
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("text");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v, headers)
}

fn assert_envelope(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {v}");
    assert!(e["type"].is_string(), "type: {v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "param/code keys: {v}"
    );
}

#[tokio::test]
async fn request_errors() {
    let (_mock, gw) = setup(&[("SWITCHYARD_MAX_BODY_BYTES", "65536".into())]).await;
    let chat = "/v1/chat/completions";
    // (method, path, body, key, expected status, expected `param`)
    type Case = (
        &'static str,
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        u16,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("POST", chat, b"{not json".to_vec(), Some(MASTER), 400, None),
        ("POST", chat, br#"[1,2]"#.to_vec(), Some(MASTER), 400, None),
        (
            "POST",
            chat,
            br#"{"messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            Some(MASTER),
            400,
            Some("model"),
        ),
        (
            "POST",
            chat,
            br#"{"model":"gpt-4o-mini"}"#.to_vec(),
            Some(MASTER),
            400,
            Some("messages"),
        ),
        (
            "POST",
            chat,
            br#"{"model":"gpt-4o-mini","messages":[],"stream":"yes"}"#.to_vec(),
            Some(MASTER),
            400,
            None,
        ),
        (
            "POST",
            chat,
            json!({"model": "gpt-9-ultra", "messages": [{"role": "user", "content": "x"}]})
                .to_string()
                .into_bytes(),
            Some(MASTER),
            404,
            Some("model"),
        ),
        ("POST", chat, vec![b' '; 70_000], Some(MASTER), 413, None),
        ("POST", "/v1/nope", b"{}".to_vec(), Some(MASTER), 404, None),
        ("GET", chat, Vec::new(), Some(MASTER), 405, None),
        ("POST", chat, b"{}".to_vec(), None, 401, None),
        ("POST", chat, b"{}".to_vec(), Some("wrong-key"), 401, None),
        (
            "POST",
            "/v1/embeddings",
            br#"{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}"#.to_vec(),
            Some(MASTER),
            400,
            Some("encoding_format"),
        ),
    ];
    for (method, path, body, key, want, param) in cases {
        let (status, v, headers) = send_raw(&gw, method, path, body, key).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        assert_envelope(&v);
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{v}");
        }
        if want == 404 && path == chat {
            assert_eq!(v["error"]["code"], "model_not_found");
            assert!(v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("gpt-9-ultra")));
        }
        if want == 405 {
            assert_eq!(headers.get("allow").map(|h| h.to_str().ok()), Some(Some("POST")));
        }
    }
    // The gateway is still healthy after all of that.
    let r = client()
        .get(format!("{}/health", gw.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

async fn gateway_for(mock_base: String, yaml: Option<&str>) -> Gateway {
    Gateway::start_with(
        &[
            ("OPENAI_API_KEY", "sk-bad-or-good".into()),
            ("OPENAI_BASE_URL", format!("{mock_base}/v1")),
            ("OPENAI_MODELS", "m".into()),
        ],
        yaml,
    )
    .await
}

async fn chat_status(gw: &Gateway) -> (u16, Value, reqwest::header::HeaderMap) {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        .to_string()
        .into_bytes();
    send_raw(gw, "POST", "/v1/chat/completions", body, None).await
}

#[tokio::test]
async fn upstream_refused_is_502() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let gw = gateway_for(format!("http://127.0.0.1:{port}"), None).await;
    let (s, v, _) = chat_status(&gw).await;
    assert_eq!(s, 502, "{v}");
    assert_envelope(&v);
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let mock = MockUpstream::start(Arc::new(|_r: &RecordedRequest| MockResponse::Stall)).await;
    let yaml = format!(
        "providers:\n  openai:\n    base_url: {}/v1\n    api_key: k\n    models: [m]\n    read_timeout_ms: 300\n",
        mock.base_url()
    );
    let gw = Gateway::start_with(&[], Some(&yaml)).await;
    let started = std::time::Instant::now();
    let (s, v, _) = chat_status(&gw).await;
    assert_eq!(s, 504, "{v}");
    assert_envelope(&v);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn upstream_statuses_pass_through_and_bad_provider_key_is_502() {
    let handler = Arc::new(|r: &RecordedRequest| {
        let model = r.json()["messages"][0]["content"].as_str().unwrap_or("").to_string();
        let (status, msg, headers) = match model.as_str() {
            "429" => (
                429,
                "Rate limit reached for requests",
                vec![("retry-after".to_string(), "7".to_string())],
            ),
            "401" => (401, "Incorrect API key provided: sk-bad***", vec![]),
            "500" => (500, "The server had an error", vec![]),
            _ => (400, "Invalid value for 'temperature'", vec![]),
        };
        MockResponse::Json {
            status,
            body: json!({"error": {"message": msg, "type": "x", "param": null, "code": null}})
                .to_string()
                .into_bytes(),
            headers,
        }
    });
    let mock = MockUpstream::start(handler).await;
    let gw = gateway_for(mock.base_url(), None).await;
    for (trigger, want) in [("429", 429), ("401", 502), ("500", 500), ("400", 400)] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": trigger}]})
            .to_string()
            .into_bytes();
        let (s, v, h) = send_raw(&gw, "POST", "/v1/chat/completions", body, None).await;
        assert_eq!(s, want, "{trigger}: {v}");
        assert_envelope(&v);
        let msg = v["error"]["message"].as_str().unwrap_or("");
        match trigger {
            "429" => {
                assert!(msg.contains("Rate limit reached"), "{msg}");
                assert_eq!(h.get("retry-after").map(|x| x.to_str().ok()), Some(Some("7")));
                assert_eq!(v["error"]["type"], "rate_limit_error");
            }
            "401" => assert!(msg.contains("gateway's credential") && msg.contains("openai"), "{msg}"),
            _ => assert!(msg.contains(&format!("returned {want}")), "{msg}"),
        }
    }
}
