//! Test support: the mock provider and the gateway process.
#![allow(dead_code)]

pub mod gateway;
pub mod llama;
pub mod mock;
pub mod mock_anthropic;
pub mod mock_gemini;
pub mod pytest;
pub mod redis;

/// Every file under `dir` (for greps of what the gateway wrote).
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
