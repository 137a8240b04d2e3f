//! Test support: the mock provider and the gateway process.
#![allow(dead_code)]

pub mod gateway;
pub mod llama;
pub mod mock;
pub mod mock_anthropic;
pub mod mock_gemini;
pub mod pytest;
