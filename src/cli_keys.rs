//! `switchyard keys …`: hashing a secret for the config file, and a thin
//! client of a running gateway's `/admin/keys` API (plain HTTP to an admin
//! listener; put TLS in front of a remote one).

use crate::cli::KeysAction;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Runs one `keys` action.
pub fn run(action: KeysAction, url: &str, admin_key: Option<&str>) -> ExitCode {
    let r = match action {
        KeysAction::Hash => hash(),
        KeysAction::List => call(url, admin_key, "GET", "/admin/keys", None),
        KeysAction::Revoke { id } => call(url, admin_key, "DELETE", &format!("/admin/keys/{id}"), None),
        KeysAction::Rotate { id, grace_seconds } => call(
            url,
            admin_key,
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace_seconds": grace_seconds})),
        ),
        KeysAction::Create {
            name,
            user_path,
            models,
            rpm,
            tpm,
            concurrency,
            budget_usd,
            budget_period,
            expires_at,
            admin,
        } => {
            let mut body = json!({"name": name, "admin": admin,
                "limits": {"rpm": rpm, "tpm": tpm, "concurrency": concurrency}});
            if let Some(p) = user_path {
                body["user_path"] = json!(p);
            }
            if !models.is_empty() {
                body["models"] = json!(models);
            }
            if let Some(u) = budget_usd {
                body["budget"] = json!({"usd": u, "period": budget_period});
            }
            if let Some(e) = expires_at {
                body["expires_at"] = json!(e);
            }
            // `null` limits are not limits: leave them out.
            if let Some(l) = body["limits"].as_object_mut() {
                l.retain(|_, v| !v.is_null());
            }
            call(url, admin_key, "POST", "/admin/keys", Some(body))
        }
    };
    match r {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchyard keys: {e}");
            ExitCode::from(1)
        }
    }
}

fn hash() -> Result<String, String> {
    let mut secret = String::new();
    std::io::stdin()
        .read_to_string(&mut secret)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("no secret on stdin".into());
    }
    Ok(crate::governance::keys::hash_secret(secret))
}

/// One admin call; returns the pretty JSON answer, or an error naming the
/// status and the gateway's message.
fn call(url: &str, key: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Result<String, String> {
    let hostport = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` must be an http:// URL of the gateway"))?
        .trim_end_matches('/');
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| format!("cannot reach {hostport}: {e}"))?;
    let t = Some(std::time::Duration::from_secs(30));
    let _ = s.set_read_timeout(t);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("the gateway sent no HTTP answer")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the gateway sent no status")?;
    let v: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    if status >= 400 {
        let msg = v["error"]["message"].as_str().unwrap_or(body);
        return Err(format!("{status}: {msg}"));
    }
    Ok(serde_json::to_string_pretty(&v).unwrap_or_default())
}
