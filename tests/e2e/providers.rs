//! Provider specifics: TLS with SNI and system roots, Azure deployment URLs,
//! keyless local servers, and the CLI's config check.

use crate::support::gateway::Gateway;
use crate::support::mock::{openai_chat_completion, MockResponse, MockUpstream, RecordedRequest};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn recording_handler() -> Arc<dyn Fn(&RecordedRequest) -> MockResponse + Send + Sync> {
    Arc::new(|r: &RecordedRequest| {
        let model = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["model"].as_str().map(str::to_string))
            .unwrap_or_else(|| "deployment".into());
        MockResponse::Json {
            status: 200,
            body: openai_chat_completion(&model, "ok", (1, 1)).to_string().into_bytes(),
            headers: vec![],
        }
    })
}

async fn chat(gw: &Gateway, model: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base_url))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    let s = r.status().as_u16();
    (s, r.json().await.expect("json"))
}

#[tokio::test]
async fn azure_deployment_urls_api_version_and_api_key_header() {
    let mock = MockUpstream::start(recording_handler()).await;
    let gw = Gateway::start(&[
        ("AZURE_OPENAI_API_KEY", "az-key".into()),
        ("AZURE_OPENAI_BASE_URL", mock.base_url()),
        ("AZURE_OPENAI_MODELS", "my-gpt4o".into()),
    ])
    .await;
    let (s, v) = chat(&gw, "azure/my-gpt4o").await;
    assert_eq!(s, 200, "{v}");
    let r = mock.requests().pop().expect("request");
    assert_eq!(
        r.path,
        "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key"), Some("az-key"));
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn local_servers_register_from_base_url_alone_without_a_key() {
    let mock = MockUpstream::start(recording_handler()).await;
    let gw = Gateway::start(&[
        // Ollama users write the native URL without /v1; we append it.
        ("OLLAMA_BASE_URL", mock.base_url()),
        ("OLLAMA_MODELS", "llama3.2".into()),
    ])
    .await;
    let (s, v) = chat(&gw, "llama3.2").await;
    assert_eq!(s, 200, "{v}");
    let r = mock.requests().pop().expect("request");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), None);
}

/// A one-shot HTTPS provider with a fresh self-signed certificate for
/// `localhost`; records the SNI the gateway sent.
async fn tls_provider(dir: &std::path::Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(dir.join("ca.pem"), cert.cert.pem()).expect("write ca");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let snis = Arc::new(Mutex::new(Vec::new()));
    let seen = snis.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Some(sni) = tls.get_ref().1.server_name() {
                    seen.lock().expect("lock").push(sni.to_string());
                }
                // Read the head and a Content-Length body, answer, close.
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let cl = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + cl {
                            break;
                        }
                    }
                }
                let body = openai_chat_completion("tls-model", "over tls", (1, 2)).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, snis)
}

#[tokio::test]
async fn tls_upstream_verifies_against_system_roots_with_sni() {
    let dir = tempfile::tempdir().expect("tmp");
    let (port, snis) = tls_provider(dir.path()).await;
    let ca = dir.path().join("ca.pem").display().to_string();
    let gw = Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        // A hostname, not an IP: resolved asynchronously by the gateway.
        ("OPENAI_BASE_URL", format!("https://localhost:{port}/v1")),
        ("OPENAI_MODELS", "tls-model".into()),
        // rustls-native-certs reads the platform store from here.
        ("SSL_CERT_FILE", ca),
    ])
    .await;
    let (s, v) = chat(&gw, "tls-model").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "over tls");
    assert_eq!(
        snis.lock().expect("lock").first().map(String::as_str),
        Some("localhost")
    );

    // Trusting another CA only, the certificate is untrusted: a clean 502.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).expect("write");
    let gw2 = Gateway::start(&[
        ("OPENAI_API_KEY", "k".into()),
        ("OPENAI_BASE_URL", format!("https://localhost:{port}/v1")),
        ("OPENAI_MODELS", "tls-model".into()),
        ("SSL_CERT_FILE", other_ca.display().to_string()),
    ])
    .await;
    let (s, v) = chat(&gw2, "tls-model").await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.contains("openai")),
        "{v}"
    );

    // An unreadable CA file is a configuration error, not a start-up panic.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("check-config")
        .env_clear()
        .env("OPENAI_API_KEY", "k")
        .env("SSL_CERT_FILE", dir.path().join("missing.pem"))
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSL_CERT_FILE"));
}

#[tokio::test]
async fn check_config_prints_every_error_and_exits_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "listen: nope\nbogus: 1\nproviders:\n  x:\n    type: wat\n").expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("GROQ_BASE_URL", "not a url")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["listen", "bogus", "providers.x.type", "env GROQ_BASE_URL"] {
        assert!(err.contains(want), "{want} missing in:\n{err}");
    }
    let ok = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check-config"])
        .env_clear()
        .env("OPENAI_API_KEY", "sk-secret-value")
        .output()
        .await
        .expect("run");
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("provider openai"), "{text}");
    assert!(!text.contains("sk-secret-value"), "secrets must not be printed");
    let v = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("version")
        .output()
        .await
        .expect("run");
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("switchyard "));
}
