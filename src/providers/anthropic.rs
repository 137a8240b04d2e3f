//! Anthropic's Messages API: `{base}/v1/messages` (the base URL has no `/v1`,
//! the SDK convention), `x-api-key`, and `anthropic-version` — the caller's
//! when it sent one (with its `anthropic-beta` flags), else a fixed default.

use super::{Adapter, AuthStyle, CallerHeaders, Capabilities, Family, Operation, Provider};
use switchyard_filters::ir::WireDialect;

/// `anthropic-version` sent when the caller did not choose one.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Messages API paths and version headers.
#[derive(Debug)]
pub struct Anthropic;

impl Adapter for Anthropic {
    fn path(&self, p: &Provider, op: Operation, _model: &str) -> String {
        let base = &p.base.path;
        match op {
            Operation::CountTokens => format!("{base}/v1/messages/count_tokens"),
            Operation::Models => format!("{base}/v1/models"),
            Operation::Chat { .. } | Operation::Embeddings => format!("{base}/v1/messages"),
        }
    }

    fn headers(&self, caller: &CallerHeaders, out: &mut Vec<(&'static str, String)>) {
        let version = caller.anthropic_version.as_deref().unwrap_or(DEFAULT_VERSION);
        out.push(("anthropic-version", version.to_string()));
        for b in &caller.anthropic_beta {
            out.push(("anthropic-beta", b.clone()));
        }
    }
}

/// Anthropic.
pub const FAMILY: Family = Family {
    name: "anthropic",
    env_prefixes: &["ANTHROPIC"],
    default_base_url: Some("https://api.anthropic.com"),
    bare_url_path: None,
    key_optional: false,
    auth: AuthStyle::XApiKey,
    wire: WireDialect::Anthropic,
    capabilities: Capabilities {
        embeddings: false,
        count_tokens: true,
        responses: false,
        batches: true,
        files: true,
    },
    adapter: &Anthropic,
};
