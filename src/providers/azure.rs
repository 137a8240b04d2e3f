//! Azure OpenAI: the OpenAI dialect behind Azure's URLs. With a base URL
//! ending in `/openai/v1` (the newer API) paths are the OpenAI ones; otherwise
//! each model is a deployment (`{base}/openai/deployments/{model}/{op}?api-version=`).
//! The key goes in `api-key`.

use super::openai::{operation_path, OpenAiCompatible};
use super::{encode_path_segment, Adapter, AuthStyle, Capabilities, Family, Operation, Provider};
use switchyard_filters::ir::WireDialect;

/// `api-version` sent when the config names none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Deployment URLs, or the OpenAI paths on `/openai/v1`.
#[derive(Debug)]
pub struct Azure;

/// Whether the instance uses deployment-style URLs.
fn deployments(p: &Provider) -> bool {
    !p.base.path.ends_with("/v1")
}

impl Adapter for Azure {
    fn path(&self, p: &Provider, op: Operation, model: &str) -> String {
        if !deployments(p) || op == Operation::Models {
            return OpenAiCompatible.path(p, op, model);
        }
        let version = p.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        format!(
            "{}/openai/deployments/{}/{}?api-version={version}",
            p.base.path,
            encode_path_segment(model),
            operation_path(op)
        )
    }

    /// Deployments are named by the operator; there is no list to fetch.
    fn lists_models(&self, p: &Provider) -> bool {
        !deployments(p)
    }
}

/// Azure OpenAI.
pub const FAMILY: Family = Family {
    name: "azure",
    env_prefixes: &["AZURE_OPENAI", "AZURE"],
    default_base_url: None,
    bare_url_path: None,
    key_optional: false,
    auth: AuthStyle::ApiKeyHeader,
    wire: WireDialect::OpenAi,
    capabilities: Capabilities {
        embeddings: true,
        count_tokens: false,
        responses: true,
        batches: true,
        files: true,
    },
    adapter: &Azure,
};
