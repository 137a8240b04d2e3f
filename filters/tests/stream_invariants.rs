//! Stream translation invariants over every streaming fixture:
//! byte-split invariance (every split point, and one byte at a time — which
//! also splits multi-byte UTF-8 characters) and protocol validity of the
//! output in both caller dialects.

mod common;

use common::*;
use switchyard_filters::error::Dialect;

#[test]
fn output_is_identical_for_every_byte_split() {
    for (pname, up) in PROVIDERS {
        for (case, path) in fixtures(pname, ".stream.sse") {
            let input = std::fs::read(&path).unwrap();
            for (cname, caller) in CALLERS {
                for include_usage in [true, false] {
                    let (whole, mut t) = translate_chunks(up, caller, &[&input], include_usage);
                    let (usage, error) = (t.usage(), t.failure().cloned());
                    for cut in 0..=input.len() {
                        let (split, mut t2) =
                            translate_chunks(up, caller, &[&input[..cut], &input[cut..]], include_usage);
                        assert!(split == whole, "{pname}/{case} → {cname}: split at {cut} differs");
                        assert_eq!(t2.usage(), usage);
                        assert_eq!(t2.failure().cloned(), error);
                    }
                    let bytes: Vec<&[u8]> = input.chunks(1).collect();
                    let (one, _) = translate_chunks(up, caller, &bytes, include_usage);
                    assert!(one == whole, "{pname}/{case} → {cname}: byte-at-a-time differs");
                }
            }
        }
    }
}

#[test]
fn every_output_is_protocol_valid() {
    for (pname, up) in PROVIDERS {
        for (case, path) in fixtures(pname, ".stream.sse") {
            let input = std::fs::read(&path).unwrap();
            let expect_error = case.contains("error") || case.contains("truncated");
            let (out, t) = translate_chunks(up, Dialect::Anthropic, &[&input], true);
            let r = if is_relay(up, Dialect::Anthropic) {
                validate_anthropic_relay(&out)
            } else {
                validate_anthropic(&out, false)
            }
            .unwrap_or_else(|e| panic!("{pname}/{case} → anthropic: {e}\n{}", String::from_utf8_lossy(&out)));
            assert_eq!(
                r.starts_with("error:"),
                expect_error,
                "{pname}/{case} → anthropic ended with {r}"
            );
            assert_eq!(t.failure().is_some(), expect_error);
            for include_usage in [true, false] {
                let (out, _) = translate_chunks(up, Dialect::OpenAi, &[&input], include_usage);
                let r = if is_relay(up, Dialect::OpenAi) {
                    validate_openai_relay(&out, include_usage)
                } else {
                    validate_openai(&out, include_usage)
                }
                .unwrap_or_else(|e| panic!("{pname}/{case} → openai: {e}\n{}", String::from_utf8_lossy(&out)));
                assert_eq!(
                    r.starts_with("error:"),
                    expect_error,
                    "{pname}/{case} → openai ended with {r}"
                );
            }
        }
    }
}

#[test]
fn tool_streams_report_tool_use_in_both_dialects() {
    for (pname, up) in PROVIDERS {
        let Some((_, path)) = fixtures(pname, ".stream.sse")
            .into_iter()
            .find(|(c, _)| c == "parallel_tools")
        else {
            panic!("{pname} has no parallel_tools fixture");
        };
        let input = std::fs::read(&path).unwrap();
        let (out, _) = translate_chunks(up, Dialect::Anthropic, &[&input], true);
        let r = if is_relay(up, Dialect::Anthropic) {
            validate_anthropic_relay(&out)
        } else {
            validate_anthropic(&out, false)
        };
        assert_eq!(r.unwrap(), "tool_use", "{pname}");
        // No argument fragment lost: both calls' inputs are complete JSON.
        let inputs = anthropic_tool_inputs(&out);
        assert_eq!(inputs.len(), 2, "{pname}");
        let parsed: Vec<serde_json::Value> = inputs.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
        assert_eq!(parsed[0]["location"], "Paris, Île-de-France", "{pname}");
        assert_eq!(parsed[1]["tz"], "Asia/東京", "{pname}");
        let (out, _) = translate_chunks(up, Dialect::OpenAi, &[&input], true);
        assert_eq!(validate_openai_relay(&out, true).unwrap(), "tool_calls", "{pname}");
    }
}

#[test]
fn usage_is_merged_not_replaced() {
    // Anthropic: message_start input (incl. cache reads) + message_delta output.
    let path = repo_root().join("tests/fixtures/anthropic/text.stream.sse");
    let (_, mut t) = translate_chunks(
        switchyard_filters::ir::WireDialect::Anthropic,
        Dialect::OpenAi,
        &[&std::fs::read(path).unwrap()],
        true,
    );
    let (u, _) = t.usage();
    assert_eq!(
        (u.input_tokens, u.cached_input_tokens, u.output_tokens),
        (1200, 1024, 12)
    );
}
