use super::*;
use crate::config::{compile, read_sources_for_test};
use crate::record::{AuditEntry, CostSource, UsageRecord};
use crate::store::sled::SledStore;
use crate::store::synth;
use std::collections::HashSet;

const DAY: u64 = 86_400_000;
const T0: u64 = 1_735_689_600_000; // 2025-01-01

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: AdminCtx,
}

fn fixture(recs: &[UsageRecord], audit: &[AuditEntry]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    store.write_batch(recs, audit).expect("write");
    let yaml = "aliases:\n  fast: openai/gpt-4o\nproviders:\n  local:\n    type: openai\n    base_url: http://127.0.0.1:9999/v1\n    api_key: local-secret-key-W8p2\n    headers:\n      X-Proxy-Token: proxy-secret-token-M5v4\n";
    let snap = compile(&read_sources_for_test(
        &[
            ("OPENAI_API_KEY", "sk-very-secret-openai-Q7x9"),
            ("OPENAI_MODELS", "gpt-4o,gpt-4o-mini"),
            ("SWITCHYARD_MASTER_KEY", "mk-very-secret-master-Z3k1"),
        ],
        Some(yaml),
    ))
    .expect("config");
    let mut discovered = Discovered::default();
    discovered
        .by_provider
        .insert("local".into(), Arc::new(["llama-3".to_string()].into_iter().collect()));
    let stats = ProviderStats::new();
    for i in 1..=10 {
        stats.observe("openai", i * 10, i != 10, now_ms() - 1000);
    }
    let prices: Arc<PriceFn> = Arc::new(|_kind: &str, _p: &str, m: &str| {
        (m == "gpt-4o").then(|| json!({"input": 2.5, "output": 10.0, "context_window": 128000}))
    });
    Fixture {
        _dir: dir,
        ctx: AdminCtx {
            store: Arc::new(store),
            snapshot: Arc::new(snap),
            discovered: Arc::new(discovered),
            provider_stats: Arc::new(stats),
            prices,
            circuits: vec![crate::resilience::CircuitView {
                provider: "openai".into(),
                model: Some("gpt-4o".into()),
                state: crate::resilience::breaker::CircuitState::Open,
                opened: 2,
            }],
        },
    }
}

async fn get(f: &Fixture, path_and_query: &str) -> (u16, Value) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let r = handle(&f.ctx, "GET", path, query, b"").await;
    let v: Value = serde_json::from_slice(&r.body).expect("json body");
    (r.status, v)
}

fn recs() -> Vec<UsageRecord> {
    synth::records(3_000, T0, 10 * DAY)
}

#[tokio::test]
async fn summary_totals_and_top_lists() {
    let rs = recs();
    let f = fixture(&rs, &[]);
    let (st, v) = get(&f, "/admin/usage/summary?from=2025-01-01&to=2025-01-31").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["totals"]["requests"], json!(rs.len()));
    let unknown = rs.iter().filter(|r| r.cost_source == CostSource::Unknown).count();
    assert!(unknown > 0);
    assert_eq!(v["totals"]["cost_unknown_requests"], json!(unknown));
    let cost: f64 = rs.iter().filter_map(|r| r.cost_usd).sum();
    let got = v["totals"]["cost_usd"].as_f64().expect("cost");
    assert!((got - cost).abs() < 1e-6, "{got} vs {cost}");
    assert_eq!(v["top_models"].as_array().expect("models").len(), 10);
    assert_eq!(v["top_providers"].as_array().expect("providers").len(), 5);
    assert_eq!(v["from"], "2025-01-01");
    // Costliest first.
    let costs: Vec<f64> = v["top_models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["cost_usd"].as_f64().expect("cost"))
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn daily_groups_and_user_path_ancestors() {
    let rs = recs();
    let f = fixture(&rs, &[]);
    let (st, v) = get(&f, "/admin/usage/daily?from=2025-01-01&to=2025-01-10").await;
    assert_eq!(st, 200, "{v}");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 10);
    let total: u64 = rows.iter().map(|r| r["requests"].as_u64().expect("n")).sum();
    assert_eq!(total, rs.len() as u64);

    let (_, v) = get(&f, "/admin/usage/daily?from=2025-01-02&to=2025-01-02&group_by=tag").await;
    let env: u64 = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["tag_key"] == "env")
        .map(|r| r["requests"].as_u64().expect("n"))
        .sum();
    let day2 = rs
        .iter()
        .filter(|r| r.ts_ms >= T0 + DAY && r.ts_ms < T0 + 2 * DAY)
        .count() as u64;
    assert_eq!(env, day2, "every record has one env tag");

    let (_, v) = get(&f, "/admin/usage/user-paths?from=2025-01-01&to=2025-01-31").await;
    let paths = v["user_paths"].as_array().expect("paths");
    let acme = paths.iter().find(|p| p["user_path"] == "/acme").expect("/acme");
    assert_eq!(acme["requests"], json!(rs.len()));
    assert_eq!(acme["depth"], 1);
    let team: u64 = paths
        .iter()
        .filter(|p| p["depth"] == 2)
        .map(|p| p["requests"].as_u64().expect("n"))
        .sum();
    assert_eq!(team, rs.len() as u64, "teams partition the org");
    let (_, sub) = get(
        &f,
        "/admin/usage/user-paths?from=2025-01-01&to=2025-01-31&user_path=/acme/team-01",
    )
    .await;
    assert!(sub["user_paths"]
        .as_array()
        .expect("paths")
        .iter()
        .all(|p| p["user_path"].as_str().expect("s").starts_with("/acme/team-01")));

    let (_, m) = get(&f, "/admin/usage/models?from=2025-01-01&to=2025-01-31").await;
    let models = m["models"].as_array().expect("models");
    assert_eq!(models.len(), 20);
    assert!(models[0]["id"].as_str().expect("id").contains('/'));
}

#[tokio::test]
async fn usage_log_paginates_and_filters() {
    let rs = recs();
    let f = fixture(&rs, &[]);
    let mut seen = Vec::new();
    let mut url = "/admin/usage/log?limit=400&provider=groq&status=2xx".to_string();
    loop {
        let (st, v) = get(&f, &url).await;
        assert_eq!(st, 200, "{v}");
        for r in v["data"].as_array().expect("data") {
            assert_eq!(r["provider"], "groq");
            seen.push(r["request_id"].as_str().expect("id").to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => url = format!("/admin/usage/log?limit=400&provider=groq&status=2xx&cursor={c}"),
            None => break,
        }
    }
    let want: HashSet<String> = rs
        .iter()
        .filter(|r| r.provider == "groq" && r.status < 300)
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(seen.len(), want.len());
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), want);
    let (_, v) = get(&f, "/admin/usage/log").await;
    assert_eq!(v["data"].as_array().expect("data").len(), 100, "default limit");
    assert!(v["data"][0]["time"].as_str().expect("time").ends_with('Z'));
}

#[tokio::test]
async fn audit_log_and_by_id() {
    let a = AuditEntry {
        request_id: "0000000000000abc00000001".into(),
        ts_ms: T0 + 5,
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        client: "127.0.0.1:1234".into(),
        route: "openai/gpt-4o".into(),
        status: 200,
        upstream_status: Some(200),
        duration_ms: 42,
        ttft_ms: Some(7),
        error: None,
        user_path: "/acme".into(),
        key_id: String::new(),
        request_headers: vec![("authorization".into(), "[REDACTED]".into())],
        request_body: Some("{\"messages\":[]}".into()),
        response_body: Some("{\"choices\":[]}".into()),
        bodies_truncated: false,
        attempts: vec![crate::record::AttemptRecord {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            status: Some(200),
            error: None,
            duration_ms: 12,
        }],
    };
    let f = fixture(&[], std::slice::from_ref(&a));
    let (st, v) = get(&f, "/admin/audit/log?model=gpt-4o").await;
    assert_eq!(st, 200);
    let d = v["data"].as_array().expect("data");
    assert_eq!(d.len(), 1);
    assert!(d[0].get("request_body").is_none(), "listing has no bodies");
    assert_eq!(
        d[0]["attempts"],
        json!([{"provider": "openai", "model": "gpt-4o", "status": 200, "error": null, "duration_ms": 12}])
    );
    let (st, v) = get(&f, "/admin/audit/0000000000000abc00000001").await;
    assert_eq!(st, 200);
    assert_eq!(v["response_body"], "{\"choices\":[]}");
    assert_eq!(v["upstream_status"], 200);
    let (st, v) = get(&f, "/admin/audit/nope").await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn bad_params_are_400_naming_the_param() {
    let f = fixture(&[], &[]);
    for (url, param) in [
        ("/admin/usage/summary?from=yesterday", "from"),
        ("/admin/usage/summary?from=2025-02-01&to=2025-01-01", "from"),
        ("/admin/usage/daily?group_by=team", "group_by"),
        ("/admin/usage/daily?groupby=model", "groupby"),
        ("/admin/usage/log?limit=5000", "limit"),
        ("/admin/usage/log?cursor=garbage!", "cursor"),
        ("/admin/usage/log?status=abc", "status"),
        ("/admin/audit/log?to=2025-99-01", "to"),
        ("/admin/models?x=1", "x"),
    ] {
        let (st, v) = get(&f, url).await;
        assert_eq!(st, 400, "{url}: {v}");
        assert_eq!(v["error"]["param"], param, "{url}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(!v["error"]["message"].as_str().expect("msg").is_empty());
    }
}

#[tokio::test]
async fn unknown_routes_404_and_wrong_methods_405() {
    let f = fixture(&[], &[]);
    let (st, v) = get(&f, "/admin/nothing").await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["type"], "not_found_error");
    let r = handle(&f.ctx, "POST", "/admin/usage/summary", None, b"{}").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers, vec![("allow".to_string(), "GET".to_string())]);
    let (st, _) = get(&f, "/admin/usage/summary/").await;
    assert_eq!(st, 200, "trailing slash tolerated");
}

#[tokio::test]
async fn providers_models_and_masked_config() {
    let f = fixture(&[], &[]);
    let (st, v) = get(&f, "/admin/providers/status").await;
    assert_eq!(st, 200);
    let ps = v["providers"].as_array().expect("providers");
    let openai = ps.iter().find(|p| p["name"] == "openai").expect("openai");
    assert_eq!(openai["requests"], 10);
    assert_eq!(openai["errors"], 1);
    assert_eq!(openai["p50_latency_ms"], 50);
    assert!(openai["last_success"].as_str().is_some());
    assert_eq!(openai["circuit"], Value::Null, "no circuit_breaker: configured");
    assert_eq!(
        openai["model_circuits"],
        json!([{"model": "gpt-4o", "state": "open", "times_opened": 2}])
    );
    let local = ps.iter().find(|p| p["name"] == "local").expect("local");
    assert_eq!(local["models"], json!(["llama-3"]));
    assert_eq!(local["requests"], 0);

    let (st, v) = get(&f, "/admin/models").await;
    assert_eq!(st, 200);
    let data = v["data"].as_array().expect("data");
    let g = data.iter().find(|m| m["id"] == "openai/gpt-4o").expect("gpt-4o");
    assert_eq!(g["price"]["input"], 2.5);
    assert_eq!(g["context_window"], 128000);
    assert!(data.iter().any(|m| m["id"] == "local/llama-3" && m["price"].is_null()));
    assert!(data
        .iter()
        .any(|m| m["id"] == "fast" && m["alias_of"] == "openai/gpt-4o"));

    let r = handle(&f.ctx, "GET", "/admin/runtime/config", None, b"").await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).expect("utf8");
    for secret in [
        "sk-very-secret-openai-Q7x9",
        "mk-very-secret-master-Z3k1",
        "local-secret-key-W8p2",
        "proxy-secret-token-M5v4",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
        // Not even a tail of it.
        assert!(!text.contains(&secret[secret.len() - 4..]), "tail of {secret} leaked");
    }
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["master_key"], "***");
    assert!(v["providers"]
        .as_array()
        .expect("p")
        .iter()
        .any(|p| p["api_key_count"] == 1));
}
