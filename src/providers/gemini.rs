//! Google Gemini's native API: the model goes in the path
//! (`{base}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:batchEmbedContents`, `:countTokens`), the key in `x-goog-api-key`, and
//! the model list reads `models[].name`.

use super::{encode_path_segment, Adapter, AuthStyle, Capabilities, Family, Operation, Provider};
use switchyard_filters::ir::WireDialect;

/// Model-in-path addressing.
#[derive(Debug)]
pub struct Gemini;

impl Adapter for Gemini {
    fn path(&self, p: &Provider, op: Operation, model: &str) -> String {
        let base = &p.base.path;
        let m = encode_path_segment(model.strip_prefix("models/").unwrap_or(model));
        match op {
            Operation::Chat { stream: true } => format!("{base}/models/{m}:streamGenerateContent?alt=sse"),
            Operation::Chat { stream: false } => format!("{base}/models/{m}:generateContent"),
            Operation::Embeddings => format!("{base}/models/{m}:batchEmbedContents"),
            Operation::CountTokens => format!("{base}/models/{m}:countTokens"),
            Operation::Models => format!("{base}/models"),
        }
    }
}

/// Gemini.
pub const FAMILY: Family = Family {
    name: "gemini",
    env_prefixes: &["GEMINI"],
    default_base_url: Some("https://generativelanguage.googleapis.com/v1beta"),
    bare_url_path: Some("/v1beta"),
    key_optional: false,
    auth: AuthStyle::GoogApiKey,
    wire: WireDialect::Gemini,
    capabilities: Capabilities {
        embeddings: true,
        count_tokens: true,
        responses: false,
        batches: true,
        files: true,
    },
    adapter: &Gemini,
};
