#![no_main]

#[path = "../bodies.rs"]
mod bodies;
#[path = "../../filters/tests/common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::stream_translator(data, common::validate_anthropic, common::validate_openai)
});
