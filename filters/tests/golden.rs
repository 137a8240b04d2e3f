//! Golden outputs for every fixture and dialect pair.
//!
//! `UPDATE_GOLDEN=1 cargo test -p switchyard-filters --test golden` rewrites
//! them; every golden file is meant to be read and checked against the
//! providers' specs by a human before it is committed.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use switchyard_filters::codec::{decode_request, encode_request, translate_response};
use switchyard_filters::ir::WireDialect;

fn check(rel: &str, actual: &[u8], failures: &mut Vec<String>) {
    let path = repo_root().join("tests/golden").join(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{rel} differs:\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        )),
        Err(_) => failures.push(format!("{rel} missing (run with UPDATE_GOLDEN=1)")),
    }
}

fn pretty(bytes: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(bytes).expect("output is JSON");
    let mut s = serde_json::to_string_pretty(&v).unwrap();
    s.push('\n');
    s.into_bytes()
}

fn finish(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn stream_goldens() {
    let mut failures = Vec::new();
    for (pname, up) in PROVIDERS {
        for (case, path) in fixtures(pname, ".stream.sse") {
            let input = std::fs::read(&path).unwrap();
            for (cname, caller) in CALLERS {
                let (out, _) = translate_chunks(up, caller, &[&input], true);
                check(&format!("{pname}_to_{cname}/{case}.sse"), &out, &mut failures);
            }
        }
    }
    finish(failures);
}

#[test]
fn response_goldens() {
    let mut failures = Vec::new();
    for (pname, up) in PROVIDERS {
        for (case, path) in fixtures(pname, ".resp.json") {
            let input = std::fs::read(&path).unwrap();
            for (cname, caller) in CALLERS {
                let (out, _) = translate_response(up, caller, &input, &options(false))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                check(
                    &format!("{pname}_to_{cname}/{case}.resp.json"),
                    &pretty(&out),
                    &mut failures,
                );
            }
        }
    }
    finish(failures);
}

#[test]
fn request_goldens() {
    let mut failures = Vec::new();
    for (cname, caller) in [("openai", WireDialect::OpenAi), ("anthropic", WireDialect::Anthropic)] {
        for (case, path) in fixtures(cname, ".req.json") {
            let input = std::fs::read(&path).unwrap();
            let req = decode_request(caller, &input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for (pname, up) in PROVIDERS {
                let out = encode_request(up, &req).unwrap_or_else(|e| panic!("{} → {pname}: {e}", path.display()));
                check(
                    &format!("{cname}_to_{pname}/{case}.req.json"),
                    &pretty(&out),
                    &mut failures,
                );
            }
        }
    }
    finish(failures);
}

#[test]
fn gemini_request_fixture_decodes() {
    for (_, path) in fixtures("gemini", ".req.json") {
        let req = decode_request(WireDialect::Gemini, &std::fs::read(&path).unwrap()).unwrap();
        // Same-dialect re-encode keeps unknown fields such as safetySettings.
        let out: Value = serde_json::from_slice(&encode_request(WireDialect::Gemini, &req).unwrap()).unwrap();
        let orig: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            out["safetySettings"],
            orig["safetySettings"],
            "{}",
            Path::new(&path).display()
        );
        assert_eq!(out["generationConfig"], orig["generationConfig"]);
        assert_eq!(out["systemInstruction"], orig["systemInstruction"]);
        assert_eq!(out["contents"], orig["contents"]);
    }
}
