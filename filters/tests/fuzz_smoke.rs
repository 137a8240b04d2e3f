//! Runs every fuzz target's body (`fuzz/bodies.rs`) over deterministic
//! pseudo-random mutations of the fixtures, so the fuzz invariants are
//! exercised on the stable toolchain in every `cargo test` (cargo-fuzz needs
//! nightly; see `fuzz/`).

mod common;

#[path = "../../fuzz/bodies.rs"]
mod bodies;

use common::*;

/// xorshift64*: tiny, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that make mutations structurally interesting.
const TOKENS: &[&str] = &[
    "data: ",
    "\n\n",
    "\r\n",
    "\r",
    "event: error\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    "data: [DONE]\n\n",
    "{",
    "}",
    "\"",
    ":",
    ",",
    "null",
    "[]",
    "é",
    "🎉",
    "\\u00e9",
    "\"finish_reason\":\"stop\"",
    "\"type\":\"content_block_stop\",\"index\":0",
    "\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"{\"}}]",
    "\"functionCall\":{\"name\":\"f\",\"args\":{}}",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let i = rng.below(len + 1);
                d.splice(i..i, t.iter().copied());
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                d.drain(a..b);
            }
            3 if len > 0 => {
                // Duplicate a range (repeated events: message_start, tool deltas…).
                let a = rng.below(len);
                let b = (a + rng.below(400)).min(len);
                let copy = d[a..b].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, copy);
            }
            4 => d.truncate(rng.below(len + 1)),
            5 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = (a + rng.below(300)).min(other.len());
                let at = rng.below(len + 1);
                d.splice(at..at, other[a..b].iter().copied());
            }
            _ => {
                let i = rng.below(len + 1);
                d.insert(i, rng.next() as u8);
            }
        }
    }
    d
}

fn corpus(suffix: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (p, _) in PROVIDERS {
        for (_, path) in fixtures(p, suffix) {
            out.push(std::fs::read(path).unwrap());
        }
    }
    out
}

fn run(seed: u64, iterations: usize, suffix: &str, body: impl Fn(&[u8])) {
    let seeds = corpus(suffix);
    assert!(!seeds.is_empty());
    for s in &seeds {
        body(s);
    }
    // FUZZ_SMOKE_ITERS=N (and FUZZ_SMOKE_SEED) run longer/other campaigns.
    let iterations = std::env::var("FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(iterations);
    let salt: u64 = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rng = Rng(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for _ in 0..iterations {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, a, b);
        body(&input);
    }
}

#[test]
fn fuzz_sse_decoder() {
    run(0x5EED_0001, 3000, ".stream.sse", bodies::sse_decoder);
}

#[test]
fn fuzz_decode_request() {
    run(0x5EED_0002, 3000, ".req.json", bodies::decode_requests);
}

#[test]
fn fuzz_decode_response() {
    run(0x5EED_0003, 3000, ".resp.json", bodies::decode_responses);
}

#[test]
fn fuzz_stream_translator() {
    run(0x5EED_0004, 3000, ".stream.sse", |d| {
        bodies::stream_translator(d, validate_anthropic, validate_openai)
    });
}
