//! Same-dialect fast path (OpenAI caller → OpenAI-compatible provider).
//! Filled in by the passthrough work; see module docs there.
