//! Pure request/response logic for Switchyard: no Pingora, no tokio, no I/O.
//!
//! Everything here is bytes in, bytes out, so it can be unit-tested, fuzzed and
//! benchmarked without a network. The gateway (`src/` of the root crate) calls
//! these functions from its Pingora phases.

pub mod anthropic;
pub mod attribution;
pub mod codec;
pub mod error;
pub mod estimate;
pub mod gemini;
pub mod ir;
pub(crate) mod jv;
pub mod openai;
pub mod passthrough;
pub mod percent;
pub mod scrub;
pub mod sse;
pub mod stream;
pub mod usage;
