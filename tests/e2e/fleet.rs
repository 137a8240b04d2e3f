//! Governance across a fleet (issue 12): three gateway processes sharing
//! one real Redis hold a limit and a budget exactly, see a key revoked on
//! any node within a second, and keep serving (fail-open) or refuse
//! (fail-closed) while Redis is down, counting again once it is back.

use crate::support::gateway::Gateway;
use crate::support::mock::MockUpstream;
use crate::support::redis::RedisServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MASTER: &str = "mk-fleet-master";
const SECRET: &str = "sk-sy-fleet-shared-key-0123456789abcdef0123456789";

fn hash(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

async fn node(mock: &MockUpstream, redis: &RedisServer, yaml: &str) -> Gateway {
    let env = [
        ("SWITCHYARD_MASTER_KEY", MASTER.to_string()),
        ("OPENAI_API_KEY", "sk-openai-provider-secret".to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", "gpt-4o-mini".to_string()),
        ("SWITCHYARD_REDIS_URL", redis.url()),
    ];
    Gateway::start_with(&env, Some(yaml)).await
}

async fn fleet(mock: &MockUpstream, redis: &RedisServer, yaml: &str) -> Vec<Gateway> {
    vec![
        node(mock, redis, yaml).await,
        node(mock, redis, yaml).await,
        node(mock, redis, yaml).await,
    ]
}

async fn chat(http: &reqwest::Client, gw: &Gateway, key: &str) -> reqwest::Response {
    http.post(format!("{}/v1/chat/completions", gw.base_url))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("send")
}

async fn status(http: &reqwest::Client, gw: &Gateway, key: &str) -> u16 {
    chat(http, gw, key).await.status().as_u16()
}

async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", gw.base_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Polls `cond` every 20 ms until it holds; the time it took, or `None`
/// past `within`.
async fn until<F, Fut>(within: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while t.elapsed() < within {
        if cond().await {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn three_nodes_sharing_redis_admit_exactly_the_shared_rpm() {
    let mock = MockUpstream::openai().await;
    let redis = RedisServer::start().await;
    let yaml = format!(
        "keys:\n  - {{name: shared, hash: \"{}\", limits: {{rpm: 30}}}}\n",
        hash(SECRET)
    );
    let nodes = fleet(&mock, &redis, &yaml).await;
    let http = reqwest::Client::new();
    // 300 requests, spread over the three, 24 at a time.
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(24));
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (http, url, sem) = (http.clone(), nodes[i % 3].base_url.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("semaphore");
            let r = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(SECRET)
                .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .expect("send");
            r.status().as_u16()
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.expect("task")).or_insert(0) += 1;
    }
    assert_eq!(by_status.get(&200), Some(&30), "{by_status:?}");
    assert_eq!(by_status.get(&429), Some(&270), "{by_status:?}");
    assert_eq!(mock.requests().len(), 30, "refused requests never reach the provider");
    for n in &nodes {
        assert_eq!(metric(n, "switchyard_limiter_backend_errors_total").await, 0.0);
        assert_eq!(metric(n, "switchyard_limiter_backend_up").await, 1.0);
    }
}

#[tokio::test]
async fn a_shared_budget_overshoots_by_at_most_one_request_in_flight_per_node() {
    let mock = MockUpstream::openai().await;
    let redis = RedisServer::start().await;
    // $1000 per million tokens: each chat costs about a cent.
    let yaml = format!(
        "prices:\n  openai/gpt-4o-mini: {{input: 1000, output: 1000}}\nkeys:\n  - {{name: shared-budget, hash: \"{}\", budget: {{usd: 0.05, period: day}}}}\n",
        hash(SECRET)
    );
    let nodes = fleet(&mock, &redis, &yaml).await;
    let http = reqwest::Client::new();
    // One caller per node, each sending until refused.
    let mut tasks = Vec::new();
    for n in &nodes {
        let (http, url) = (http.clone(), n.base_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut costs = Vec::new();
            for _ in 0..40 {
                let r = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(SECRET)
                    .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}))
                    .send()
                    .await
                    .expect("send");
                match r.status().as_u16() {
                    200 => {
                        // $1000 per million tokens, input and output alike.
                        let v: Value = r.json().await.expect("json");
                        let tokens = v["usage"]["total_tokens"].as_f64().expect("usage");
                        costs.push(tokens * 1000.0 / 1e6);
                    }
                    429 => {
                        let v: Value = r.json().await.expect("json");
                        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
                        break;
                    }
                    s => panic!("status {s}"),
                }
            }
            costs
        }));
    }
    let mut costs = Vec::new();
    for t in tasks {
        costs.extend(t.await.expect("task"));
    }
    let admitted = costs.len();
    let total: f64 = costs.iter().sum();
    let largest = costs.iter().copied().fold(0.0, f64::max);
    for n in &nodes {
        let r = http
            .post(format!("{}/admin/runtime/flush", n.base_url))
            .bearer_auth(MASTER)
            .send()
            .await
            .expect("flush");
        assert_eq!(r.status(), 200);
    }
    // Every node reads the same spend from Redis.
    let mut spends = Vec::new();
    for n in &nodes {
        let u: Value = http
            .get(format!("{}/v1/usage", n.base_url))
            .bearer_auth(SECRET)
            .send()
            .await
            .expect("usage")
            .json()
            .await
            .expect("json");
        spends.push(u["spend_usd"].as_f64().expect("spend"));
    }
    assert!(
        spends.iter().all(|s| (s - total).abs() < 1e-9),
        "every node reports the fleet's spend ${total}: {spends:?}"
    );
    assert!(admitted >= 2, "{admitted}");
    assert!(
        total <= 0.05 + 3.0 * largest + 1e-9,
        "spent ${total} in {admitted} requests: more than the budget plus one request per node"
    );
    assert_eq!(mock.requests().len(), admitted);
}

#[tokio::test]
async fn a_key_made_or_revoked_on_one_node_changes_on_every_node_within_a_second() {
    let mock = MockUpstream::openai().await;
    let redis = RedisServer::start().await;
    let nodes = fleet(&mock, &redis, "{}\n").await;
    let http = reqwest::Client::new();
    let v: Value = http
        .post(format!("{}/admin/keys", nodes[0].base_url))
        .bearer_auth(MASTER)
        .json(&json!({"name": "roaming"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let (id, key) = (v["id"].as_str().expect("id"), v["key"].as_str().expect("secret"));
    for n in &nodes {
        let t = until(Duration::from_secs(1), || async { status(&http, n, key).await == 200 }).await;
        assert!(t.is_some(), "the key reached {} within a second", n.base_url);
    }
    // Node 2 lists it, without its secret or hash.
    let list = http
        .get(format!("{}/admin/keys", nodes[2].base_url))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(
        list.contains(id) && !list.contains(key) && !list.contains("sha256:"),
        "{list}"
    );
    // Revoked on node 1: refused everywhere within a second.
    let r = http
        .delete(format!("{}/admin/keys/{id}", nodes[1].base_url))
        .bearer_auth(MASTER)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    let revoked = Instant::now();
    for n in &nodes {
        let left = Duration::from_secs(1).saturating_sub(revoked.elapsed());
        let t = until(left, || async { status(&http, n, key).await == 401 }).await;
        assert!(
            t.is_some(),
            "{} still accepted the key a second after it was revoked",
            n.base_url
        );
    }
}

#[tokio::test]
async fn with_redis_down_fail_open_serves_fail_closed_refuses_and_counting_resumes() {
    let mock = MockUpstream::openai().await;
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let key_yaml = format!(
        "keys:\n  - {{name: five, hash: \"{}\", limits: {{rpm: 5}}}}\n",
        hash(SECRET)
    );
    let open = node(&mock, &redis, &key_yaml).await;
    let closed = node(
        &mock,
        &redis,
        &format!("limiter: {{on_error: fail_closed}}\n{key_yaml}"),
    )
    .await;
    let http = reqwest::Client::new();
    for i in 0..5 {
        assert_eq!(status(&http, [&open, &closed][i % 2], SECRET).await, 200, "request {i}");
    }
    assert_eq!(status(&http, &open, SECRET).await, 429);
    assert_eq!(status(&http, &closed, SECRET).await, 429);

    redis.kill().await;
    // Fail-open: served, uncounted, and said so in the metric; never a hang.
    let t = Instant::now();
    for _ in 0..10 {
        assert_eq!(status(&http, &open, SECRET).await, 200);
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(metric(&open, "switchyard_limiter_backend_errors_total").await >= 10.0);
    // Fail-closed: 503 in the caller's dialect.
    let r = chat(&http, &closed, SECRET).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "limiter_unavailable", "{v}");
    assert!(!v.to_string().contains(SECRET));

    // Back (empty, on the same port): both reconnect and count again.
    let _redis = RedisServer::start_on(port).await;
    for n in [&open, &closed] {
        let up = until(Duration::from_secs(10), || async {
            metric(n, "switchyard_limiter_backend_up").await == 1.0
        })
        .await;
        assert!(up.is_some(), "{} reconnected", n.base_url);
    }
    let mut got = Vec::new();
    for i in 0..6 {
        got.push(status(&http, [&open, &closed][i % 2], SECRET).await);
    }
    assert_eq!(got, [200, 200, 200, 200, 200, 429]);
}
