//! The price table's tests: lookups, overrides, the generated table.

use super::*;

#[test]
fn remembered_lookups_answer_like_fresh_ones_and_stay_bounded() {
    let p = Pricing::builtin().with_overrides(vec![(
        "acme/m1".into(),
        Price {
            input: 1.0,
            output: 2.0,
            cached_input: None,
            cache_write: None,
            context_window: None,
        },
    )]);
    for _ in 0..3 {
        for (t, i, m) in [
            ("openai", "openai", "gpt-4o"),
            ("openai", "acme", "m1"),
            ("openai", "x", "nope-model"),
        ] {
            assert_eq!(p.lookup_remembered(t, i, m), p.lookup(t, i, m), "{t} {i} {m}");
        }
    }
    for n in 0..(MEMO_CAP + 10) {
        p.lookup_remembered("openai", "openai", &format!("model-{n}"));
    }
    assert!(p.memo.0.read().map(|m| m.len()).unwrap_or(0) <= MEMO_CAP);
}
use std::path::Path;
use std::time::Instant;

fn price(input: f64, output: f64) -> Price {
    Price {
        input,
        output,
        cached_input: None,
        cache_write: None,
        context_window: None,
    }
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Usage::default()
    }
}

fn builtin(provider: &str, model: &str) -> Price {
    match Pricing::builtin().lookup(provider, provider, model) {
        Some((p, CostSource::Builtin)) => p,
        other => panic!("{provider}/{model}: expected a built-in price, got {other:?}"),
    }
}

#[test]
fn table_parses_cleanly_and_covers_every_catalog_provider() {
    let t = builtin_table();
    assert_eq!(t.malformed, 0);
    assert_eq!(t.catalog_updated_at, Some("2026-05-04T08:34:18Z"));
    for p in [
        "openai",
        "azure",
        "groq",
        "xai",
        "deepseek",
        "mistral",
        "openrouter",
        "together",
        "fireworks",
        "anthropic",
        "gemini",
    ] {
        let n = Pricing::builtin().models_for(p).count();
        assert!(n > 0, "{p} has no built-in models");
    }
    // The shipped file is already in binary-search order (no repair at startup).
    let mut prev: Option<(&str, String)> = None;
    for line in BUILTIN_TSV.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split('\t');
        let (scope, key) = (f.next().unwrap_or(""), f.next().unwrap_or("").to_ascii_lowercase());
        if let Some((ps, pk)) = &prev {
            if *ps == scope {
                assert!(*pk < key, "{scope}: {pk} then {key}");
            }
        }
        prev = Some((scope, key));
    }
    assert_eq!(Pricing::builtin().models_for("ollama").count(), 0);
    assert_eq!(Pricing::builtin().models_for("nope").count(), 0);
}

#[test]
fn well_known_models_have_the_catalog_prices() {
    let p = builtin("openai", "gpt-4o-mini");
    assert_eq!(
        (p.input, p.output, p.cached_input, p.cache_write),
        (0.15, 0.6, Some(0.075), None)
    );
    assert_eq!(p.context_window, Some(128_000));

    let p = builtin("anthropic", "claude-sonnet-4-5");
    assert_eq!(
        (p.input, p.output, p.cached_input, p.cache_write),
        (3.0, 15.0, Some(0.3), Some(3.75))
    );
    let p = builtin("anthropic", "claude-sonnet-4-5-20250929");
    assert_eq!((p.input, p.output, p.cache_write), (3.0, 15.0, Some(3.75)));

    let p = builtin("gemini", "gemini-2.5-flash");
    assert_eq!((p.input, p.output, p.cached_input), (0.3, 2.5, Some(0.03)));
    assert_eq!(p.context_window, Some(1_048_576));

    let p = builtin("openai", "text-embedding-3-small");
    assert_eq!((p.input, p.output), (0.02, 0.0));
}

#[test]
fn gemini_models_prefix_is_stripped() {
    assert_eq!(
        builtin("gemini", "models/gemini-2.5-flash"),
        builtin("gemini", "gemini-2.5-flash")
    );
}

#[test]
fn dated_suffixes_fall_back_to_the_undated_model() {
    // Not in the catalog under these dates; the undated model's price applies.
    assert_eq!(
        builtin("openai", "gpt-4o-mini-2099-01-02"),
        builtin("openai", "gpt-4o-mini")
    );
    assert_eq!(
        builtin("anthropic", "claude-sonnet-4-5-20991231"),
        builtin("anthropic", "claude-sonnet-4-5")
    );
    // An exact dated row wins over the undated one.
    let dated = builtin("openai", "gpt-4o-2024-05-13");
    assert_eq!((dated.input, dated.output), (5.0, 15.0));
    assert_eq!(builtin("openai", "gpt-4o").input, 2.5);
    // Not dates: never stripped.
    assert_eq!(strip_date("grok-2-1212"), None);
    assert_eq!(strip_date("mixtral-8x7b-32768"), None);
    assert_eq!(strip_date("model-20241399"), None);
    assert_eq!(strip_date("-20241022"), None);
    assert_eq!(strip_date("x-2024-08-06"), Some("x"));
    assert_eq!(strip_date("x-20241022"), Some("x"));
}

#[test]
fn openrouter_vendor_ids() {
    // OpenRouter's own price for its vendor/model id.
    let p = builtin("openrouter", "openai/gpt-4o-mini");
    assert_eq!((p.input, p.output), (0.15, 0.6));
    let p = builtin("openrouter", "anthropic/claude-sonnet-4.5");
    assert_eq!((p.input, p.output), (3.0, 15.0));
    // `:free` variants are their own (zero) price, never the paid one.
    let free = builtin("openrouter", "google/gemma-3-27b-it:free");
    assert_eq!((free.input, free.output), (0.0, 0.0));
    // A vendor id on another OpenAI-compatible host falls back to the
    // bare model's canonical price.
    let p = builtin("cerebras", "openai/gpt-oss-120b");
    assert_eq!(p, builtin("cerebras", "gpt-oss-120b"));
    // Groq lists the vendor form itself.
    assert!(Pricing::builtin()
        .models_for("groq")
        .any(|(id, _)| id == "openai/gpt-oss-120b"));
}

#[test]
fn no_fuzzy_family_matching() {
    let pr = Pricing::builtin();
    for m in [
        "gpt-4o-mini-turbo",
        "gpt-4",
        "claude-sonnet-4-5-extended",
        "gemini-2.5-flashy",
        "my-finetune",
    ] {
        if m == "gpt-4" {
            // gpt-4 is a real model; just make sure it is not gpt-4o's price.
            let p = builtin("openai", m);
            assert_ne!(p.input, builtin("openai", "gpt-4o").input);
            continue;
        }
        assert_eq!(pr.lookup("openai", "openai", m), None, "{m}");
    }
    // A dated id whose undated base is unknown stays unknown.
    assert_eq!(pr.lookup("openai", "openai", "unknown-model-2024-08-06"), None);
}

#[test]
fn local_providers_have_no_builtin_price() {
    let pr = Pricing::builtin();
    assert_eq!(pr.lookup("ollama", "ollama", "gpt-oss-120b"), None);
    let pr = pr.with_overrides(vec![("ollama/llama3".into(), price(0.0, 0.0))]);
    assert_eq!(
        pr.price_usage("ollama", "ollama", "llama3", &usage(10, 10)),
        (Some(0.0), CostSource::Config)
    );
}

#[test]
fn override_precedence() {
    let pr = Pricing::builtin().with_overrides(vec![
        ("gpt-4o-mini".into(), price(1.0, 1.0)),
        ("openai/gpt-4o-mini".into(), price(2.0, 2.0)),
        ("OpenAI-East/GPT-4o-mini".into(), price(3.0, 3.0)),
        ("brand-new-model".into(), price(4.0, 4.0)),
        ("gpt-4o".into(), price(5.0, 5.0)),
        ("bad".into(), price(f64::NAN, 1.0)),
    ]);
    let got = |t: &str, i: &str, m: &str| pr.lookup(t, i, m).map(|(p, s)| (p.input, s));
    // instance/model beats type/model beats model beats built-in.
    assert_eq!(
        got("openai", "openai-east", "gpt-4o-mini"),
        Some((3.0, CostSource::Config))
    );
    assert_eq!(
        got("openai", "openai-west", "gpt-4o-mini"),
        Some((2.0, CostSource::Config))
    );
    assert_eq!(got("azure", "azure", "gpt-4o-mini"), Some((1.0, CostSource::Config)));
    // Config adds models the table lacks.
    assert_eq!(got("groq", "groq", "brand-new-model"), Some((4.0, CostSource::Config)));
    // A config price covers dated snapshots of its model.
    assert_eq!(
        got("openai", "openai", "gpt-4o-2024-08-06"),
        Some((5.0, CostSource::Config))
    );
    // Untouched models keep the built-in price; invalid overrides are dropped.
    assert_eq!(got("openai", "openai", "gpt-4.1"), Some((2.0, CostSource::Builtin)));
    assert_eq!(got("openai", "openai", "bad"), None);
}

#[test]
fn cache_tokens_are_priced_separately() {
    let pr = Pricing::builtin();
    // claude-sonnet-4-5: input 3, output 15, cache read 0.3, cache write 3.75.
    let u = Usage {
        input_tokens: 10_000, // includes the 4,000 cached and 2,000 cache-write tokens
        output_tokens: 1_000, // includes 200 reasoning tokens
        cached_input_tokens: 4_000,
        cache_write_tokens: 2_000,
        reasoning_tokens: 200,
    };
    // 4,000×3 + 4,000×0.3 + 2,000×3.75 + 1,000×15 = 35,700 µ$ = $0.0357
    let (cost, src) = pr.price_usage("anthropic", "anthropic", "claude-sonnet-4-5", &u);
    assert_eq!(src, CostSource::Builtin);
    let cost = cost.expect("priced");
    assert!((cost - 0.0357).abs() < 1e-12, "{cost}");

    // No cache prices listed: cached and cache-write tokens cost input.
    let flat = price(2.0, 8.0);
    let c = pr.cost(&flat, &u);
    assert!((c - (10_000.0 * 2.0 + 1_000.0 * 8.0) / 1e6).abs() < 1e-12, "{c}");

    // Misreported sub-counts larger than the total are clamped.
    let bad = Usage {
        input_tokens: 100,
        cached_input_tokens: 500,
        cache_write_tokens: 50,
        ..Usage::default()
    };
    let p = Price {
        cached_input: Some(1.0),
        cache_write: Some(9.0),
        ..price(5.0, 0.0)
    };
    assert!((pr.cost(&p, &bad) - 100.0 / 1e6).abs() < 1e-15);
}

#[test]
fn unknown_model_is_none_not_zero() {
    let pr = Pricing::builtin();
    assert_eq!(
        pr.price_usage("openai", "openai", "definitely-not-a-model", &usage(1000, 1000)),
        (None, CostSource::Unknown)
    );
    assert_eq!(
        pr.price_usage("openai", "openai", "", &usage(1, 1)),
        (None, CostSource::Unknown)
    );
}

#[test]
fn parse_is_fast() {
    // Parse from scratch (not the cached table) a few times and keep the
    // best run, so a busy CI machine does not make this flaky.
    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        let t = parse_table(BUILTIN_TSV);
        best = best.min(t0.elapsed().as_secs_f64() * 1e3);
        rows = t.scopes.iter().map(|s| s.rows.len()).sum::<usize>();
    }
    println!("parsed {rows} price rows in {best:.3} ms");
    // Release builds parse in well under a millisecond; unoptimised test
    // builds are an order of magnitude slower. Bounds leave CI headroom.
    let bound = if cfg!(debug_assertions) { 100.0 } else { 5.0 };
    assert!(best < bound, "parsing the price table took {best:.3} ms");
}

/// The committed table matches what the script makes from the catalog.
#[test]
fn generated_table_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = root.join("../shared/data/model-catalog.json");
    if !catalog.exists() {
        println!(
            "skipping: {} not found (a clone without ../shared); the committed table is used as is",
            catalog.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("prices.tsv");
    let status = std::process::Command::new("python3")
        .arg(root.join("scripts/gen_prices.py"))
        .arg(&catalog)
        .arg("-o")
        .arg(&out)
        .arg("-q")
        .status()
        .expect("python3 is needed to check the price table against the catalog");
    assert!(status.success(), "gen_prices.py failed");
    let fresh = std::fs::read_to_string(&out).expect("generated table");
    assert!(
        fresh == BUILTIN_TSV,
        "src/pricing/prices.tsv is stale: run `python3 scripts/gen_prices.py`"
    );
}
