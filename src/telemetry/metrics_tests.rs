//! The metrics' behaviour: names, labels, bounded cardinality, scrapes.
use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One parsed sample line: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition; enough for our label values, which never
/// contain quotes, commas or escapes.
fn parse(body: &[u8]) -> Vec<Sample> {
    let text = std::str::from_utf8(body).expect("exposition is UTF-8");
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect("label k=v");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// The value of the sample with exactly this name and label set.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
}

/// Every sample of one metric name.
fn series<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|(n, _, _)| n == name).collect()
}

fn scrape(m: &Metrics) -> Vec<Sample> {
    let (ctype, body) = m.render();
    assert_eq!(ctype, "text/plain; version=0.0.4");
    parse(&body)
}

fn configured() -> Metrics {
    let m = Metrics::new();
    m.set_known_models(["gpt-4o".to_string(), "claude-sonnet-4".to_string()]);
    m.set_known_providers(["openai".to_string(), "anthropic".to_string()]);
    m
}

fn ok_chat<'a>(provider: &'a str, model: &'a str) -> RequestObservation<'a> {
    RequestObservation {
        endpoint: "chat_completions",
        provider: Some(provider),
        model: Some(model),
        status: 200,
        duration: Duration::from_millis(800),
        ttft: None,
        usage: Some(Usage {
            input_tokens: 100,
            output_tokens: 20,
            cached_input_tokens: 40,
            cache_write_tokens: 0,
            reasoning_tokens: 5,
        }),
        cost_usd: Some(0.001),
        upstream_error: None,
    }
}

#[test]
fn known_mix_gives_exact_counts() {
    let m = configured();
    // 3 plain successes.
    for _ in 0..3 {
        m.observe(&ok_chat("openai", "gpt-4o"));
    }
    // 1 stream with a TTFT and cache writes.
    m.observe(&RequestObservation {
        endpoint: "messages",
        ttft: Some(Duration::from_millis(300)),
        duration: Duration::from_secs(45),
        usage: Some(Usage {
            input_tokens: 1000,
            output_tokens: 500,
            cached_input_tokens: 0,
            cache_write_tokens: 900,
            reasoning_tokens: 0,
        }),
        cost_usd: Some(0.25),
        ..ok_chat("anthropic", "claude-sonnet-4")
    });
    // 2 upstream failures: a timeout and a 5xx.
    for kind in ["timeout", "status_5xx"] {
        m.observe(&RequestObservation {
            status: 502,
            duration: Duration::from_millis(30_000),
            usage: None,
            cost_usd: None,
            upstream_error: Some(kind),
            ..ok_chat("openai", "gpt-4o")
        });
    }
    // 1 rejected before routing: a local 0.7 ms answer.
    m.observe(&RequestObservation {
        endpoint: "unknown",
        provider: None,
        model: None,
        status: 404,
        duration: Duration::from_micros(700),
        ttft: None,
        usage: None,
        cost_usd: None,
        upstream_error: None,
    });

    let s = scrape(&m);
    let req = |e, p, mo, st| {
        value(
            &s,
            "switchyard_requests_total",
            &[("endpoint", e), ("provider", p), ("model", mo), ("status", st)],
        )
    };
    assert_eq!(req("chat_completions", "openai", "gpt-4o", "200"), Some(3.0));
    assert_eq!(req("chat_completions", "openai", "gpt-4o", "502"), Some(2.0));
    assert_eq!(req("messages", "anthropic", "claude-sonnet-4", "200"), Some(1.0));
    assert_eq!(req("unknown", "none", "none", "404"), Some(1.0));
    assert_eq!(series(&s, "switchyard_requests_total").len(), 4);

    let hist = |name: &str, suffix: &str, e, p, extra: &[(&str, &str)]| {
        let mut labels = vec![("endpoint", e), ("provider", p)];
        labels.extend_from_slice(extra);
        value(&s, &format!("{name}{suffix}"), &labels)
    };
    let dur = "switchyard_request_duration_seconds";
    assert_eq!(hist(dur, "_count", "chat_completions", "openai", &[]), Some(5.0));
    assert_eq!(hist(dur, "_count", "messages", "anthropic", &[]), Some(1.0));
    assert_eq!(hist(dur, "_count", "unknown", "none", &[]), Some(1.0));
    // 0.7 ms lands in the 1 ms bucket, not the 0.5 ms one.
    assert_eq!(hist(dur, "_bucket", "unknown", "none", &[("le", "0.0005")]), Some(0.0));
    assert_eq!(hist(dur, "_bucket", "unknown", "none", &[("le", "0.001")]), Some(1.0));
    // 3 × 0.8 s ≤ 1 s; the two 30 s failures fall in le=30.
    assert_eq!(
        hist(dur, "_bucket", "chat_completions", "openai", &[("le", "1")]),
        Some(3.0)
    );
    assert_eq!(
        hist(dur, "_bucket", "chat_completions", "openai", &[("le", "30")]),
        Some(5.0)
    );
    assert_eq!(
        hist(dur, "_bucket", "chat_completions", "openai", &[("le", "+Inf")]),
        Some(5.0)
    );
    let sum = hist(dur, "_sum", "chat_completions", "openai", &[]).expect("sum");
    assert!((sum - 62.4).abs() < 1e-9, "{sum}");
    // All 18 buckets plus +Inf are exported.
    let buckets = s
        .iter()
        .filter(|(n, l, _)| {
            n == "switchyard_request_duration_seconds_bucket"
                && l.get("endpoint").map(String::as_str) == Some("messages")
        })
        .count();
    assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);

    let ttft = "switchyard_ttft_seconds";
    assert_eq!(hist(ttft, "_count", "messages", "anthropic", &[]), Some(1.0));
    assert_eq!(hist(ttft, "_count", "chat_completions", "openai", &[]), None);

    let tok = |p, mo, d| {
        value(
            &s,
            "switchyard_tokens_total",
            &[("provider", p), ("model", mo), ("direction", d)],
        )
    };
    assert_eq!(tok("openai", "gpt-4o", "input"), Some(300.0));
    assert_eq!(tok("openai", "gpt-4o", "output"), Some(60.0));
    assert_eq!(tok("openai", "gpt-4o", "cached_input"), Some(120.0));
    assert_eq!(tok("openai", "gpt-4o", "reasoning"), Some(15.0));
    // Zero counts create no series.
    assert_eq!(tok("openai", "gpt-4o", "cache_write"), None);
    assert_eq!(tok("anthropic", "claude-sonnet-4", "cache_write"), Some(900.0));
    assert_eq!(tok("anthropic", "claude-sonnet-4", "input"), Some(1000.0));
    assert_eq!(tok("anthropic", "claude-sonnet-4", "output"), Some(500.0));

    let cost = |p, mo| value(&s, "switchyard_cost_usd_total", &[("provider", p), ("model", mo)]);
    let c = cost("openai", "gpt-4o").expect("openai cost");
    assert!((c - 0.003).abs() < 1e-12, "{c}");
    assert_eq!(cost("anthropic", "claude-sonnet-4"), Some(0.25));

    let err = |p, k| value(&s, "switchyard_upstream_errors_total", &[("provider", p), ("kind", k)]);
    assert_eq!(err("openai", "timeout"), Some(1.0));
    assert_eq!(err("openai", "status_5xx"), Some(1.0));
    assert_eq!(series(&s, "switchyard_upstream_errors_total").len(), 2);

    // Deltas: one more success moves exactly one counter and one count.
    m.observe(&ok_chat("openai", "gpt-4o"));
    let s2 = scrape(&m);
    assert_eq!(
        value(
            &s2,
            "switchyard_requests_total",
            &[
                ("endpoint", "chat_completions"),
                ("provider", "openai"),
                ("model", "gpt-4o"),
                ("status", "200")
            ],
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s2,
            "switchyard_request_duration_seconds_count",
            &[("endpoint", "chat_completions"), ("provider", "openai")],
        ),
        Some(6.0)
    );
}

#[test]
fn unknown_names_collapse_to_other() {
    let m = configured();
    m.observe(&RequestObservation {
        upstream_error: Some("some new failure"),
        ..ok_chat("openai", "gpt-9-ultra")
    });
    m.observe(&ok_chat("rogue-provider", "gpt-4o"));
    m.observe(&ok_chat("x", "y"));
    let s = scrape(&m);
    let req = |p, mo| {
        value(
            &s,
            "switchyard_requests_total",
            &[
                ("endpoint", "chat_completions"),
                ("provider", p),
                ("model", mo),
                ("status", "200"),
            ],
        )
    };
    assert_eq!(req("openai", "other"), Some(1.0));
    assert_eq!(req("other", "gpt-4o"), Some(1.0));
    assert_eq!(req("other", "other"), Some(1.0));
    assert_eq!(series(&s, "switchyard_requests_total").len(), 3);
    assert_eq!(
        value(
            &s,
            "switchyard_tokens_total",
            &[("provider", "openai"), ("model", "other"), ("direction", "input")],
        ),
        Some(100.0)
    );
    assert_eq!(
        value(
            &s,
            "switchyard_upstream_errors_total",
            &[("provider", "openai"), ("kind", "other")],
        ),
        Some(1.0)
    );
    let text = String::from_utf8(m.render().1).expect("utf-8");
    assert!(!text.contains("gpt-9-ultra") && !text.contains("rogue-provider"));

    // After a reload that names the model, it gets its own series.
    m.set_known_models(["gpt-9-ultra".to_string()]);
    m.observe(&ok_chat("openai", "gpt-9-ultra"));
    m.observe(&ok_chat("openai", "gpt-4o"));
    let s = scrape(&m);
    let req = |mo| {
        value(
            &s,
            "switchyard_requests_total",
            &[
                ("endpoint", "chat_completions"),
                ("provider", "openai"),
                ("model", mo),
                ("status", "200"),
            ],
        )
    };
    assert_eq!(req("gpt-9-ultra"), Some(1.0));
    // gpt-4o is no longer configured: now `other`.
    assert_eq!(req("other"), Some(2.0));
}

#[test]
fn in_flight_guard_counts_until_dropped() {
    let m = Metrics::new();
    let gauge = |m: &Metrics| value(&scrape(m), "switchyard_in_flight_requests", &[]);
    assert_eq!(gauge(&m), Some(0.0));
    let a = m.in_flight();
    let b = m.in_flight();
    assert_eq!(gauge(&m), Some(2.0));
    drop(a);
    assert_eq!(gauge(&m), Some(1.0));
    // The guard is 'static and Send, so it can live in a request context
    // that moves between threads.
    std::thread::spawn(move || drop(b)).join().expect("thread");
    assert_eq!(gauge(&m), Some(0.0));
}

#[test]
fn dropped_records_follow_their_source() {
    let m = Metrics::new();
    let dropped = |m: &Metrics| value(&scrape(m), "switchyard_usage_records_dropped_total", &[]);
    assert_eq!(dropped(&m), Some(0.0));
    let src = Arc::new(AtomicU64::new(0));
    let reader = src.clone();
    m.set_dropped_source(move || reader.load(Ordering::Relaxed));
    src.fetch_add(3, Ordering::Relaxed);
    assert_eq!(dropped(&m), Some(3.0));
    assert_eq!(dropped(&m), Some(3.0), "a scrape must not re-add");
    src.fetch_add(2, Ordering::Relaxed);
    assert_eq!(dropped(&m), Some(5.0));
    // A new recorder starts from zero; its drops add to the total.
    let src2 = Arc::new(AtomicU64::new(1));
    let reader = src2.clone();
    m.set_dropped_source(move || reader.load(Ordering::Relaxed));
    assert_eq!(dropped(&m), Some(6.0));
    // A source going backwards never makes the counter go down.
    src2.store(0, Ordering::Relaxed);
    assert_eq!(dropped(&m), Some(6.0));
    src2.store(4, Ordering::Relaxed);
    assert_eq!(dropped(&m), Some(10.0));
}

#[test]
fn reloads_build_info_and_static_series() {
    let m = Metrics::new();
    let s = scrape(&m);
    let reloads = |s: &[Sample], r| value(s, "switchyard_config_reloads_total", &[("result", r)]);
    assert_eq!(reloads(&s, "success"), Some(0.0));
    assert_eq!(reloads(&s, "failure"), Some(0.0));
    assert_eq!(
        value(&s, "switchyard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    m.config_reload(true);
    m.config_reload(true);
    m.config_reload(false);
    let s = scrape(&m);
    assert_eq!(reloads(&s, "success"), Some(2.0));
    assert_eq!(reloads(&s, "failure"), Some(1.0));
    let (_, body) = m.render();
    let text = String::from_utf8(body).expect("utf-8");
    for name in [
        "switchyard_in_flight_requests",
        "switchyard_config_reloads_total",
        "switchyard_usage_records_dropped_total",
        "switchyard_build_info",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    assert!(text.contains("# TYPE switchyard_usage_records_dropped_total counter"));
}

#[test]
fn bad_costs_are_ignored_and_instances_are_independent() {
    let a = configured();
    let b = configured();
    for cost in [Some(-1.0), Some(f64::NAN), Some(f64::INFINITY), Some(0.0), None] {
        a.observe(&RequestObservation {
            cost_usd: cost,
            ..ok_chat("openai", "gpt-4o")
        });
    }
    let s = scrape(&a);
    assert!(series(&s, "switchyard_cost_usd_total").is_empty());
    assert_eq!(
        value(
            &s,
            "switchyard_requests_total",
            &[
                ("endpoint", "chat_completions"),
                ("provider", "openai"),
                ("model", "gpt-4o"),
                ("status", "200"),
            ],
        ),
        Some(5.0)
    );
    assert!(series(&scrape(&b), "switchyard_requests_total").is_empty());
}

#[test]
fn hash_collisions_fall_back_to_the_slow_path() {
    let m = configured();
    m.observe(&ok_chat("anthropic", "claude-sonnet-4"));
    // Plant the anthropic entry under the hash of the openai key.
    let key = SeriesKey {
        endpoint: "chat_completions",
        provider: "openai",
        model: "gpt-4o",
        status: 200,
    };
    let planted = m.series.load().values().next().cloned().expect("one cached series");
    m.series
        .store(Arc::new(std::iter::once((m.hasher.hash_one(key), planted)).collect()));
    for _ in 0..2 {
        m.observe(&ok_chat("openai", "gpt-4o"));
    }
    let s = scrape(&m);
    let req = |p, mo| {
        value(
            &s,
            "switchyard_requests_total",
            &[
                ("endpoint", "chat_completions"),
                ("provider", p),
                ("model", mo),
                ("status", "200"),
            ],
        )
    };
    assert_eq!(req("openai", "gpt-4o"), Some(2.0));
    assert_eq!(req("anthropic", "claude-sonnet-4"), Some(1.0));
    assert_eq!(
        value(
            &s,
            "switchyard_tokens_total",
            &[("provider", "openai"), ("model", "gpt-4o"), ("direction", "input")],
        ),
        Some(200.0)
    );
}

#[test]
fn status_codes_format_without_allocation() {
    let mut buf = [0u8; 5];
    for (code, text) in [
        (0, "0"),
        (7, "7"),
        (42, "42"),
        (200, "200"),
        (499, "499"),
        (65535, "65535"),
    ] {
        assert_eq!(status_text(code, &mut buf), text);
    }
}

/// Cost of one `observe` of a typical streamed chat request (status,
/// duration, TTFT, four token directions, cost). Run with
/// `cargo test --release metrics::tests::observe_cost -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run in release by hand"]
fn observe_cost() {
    let m = Arc::new(configured());
    let o = RequestObservation {
        ttft: Some(Duration::from_millis(250)),
        ..ok_chat("openai", "gpt-4o")
    };
    let n = 2_000_000u32;
    for _ in 0..10_000 {
        m.observe(&o);
    }
    let t = std::time::Instant::now();
    for _ in 0..n {
        m.observe(std::hint::black_box(&o));
    }
    let single = t.elapsed().as_nanos() as f64 / f64::from(n);

    let threads = 2;
    let t = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..n {
                    m.observe(std::hint::black_box(&o));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let contended = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "observe: {single:.0} ns/op single-threaded; {contended:.0} ns wall per op-pair \
         with {threads} threads on the same series"
    );
}
