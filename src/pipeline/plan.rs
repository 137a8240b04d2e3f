//! Planning: the ordered list of upstream attempts for a request (a provider
//! instance and the model name it knows), or a local answer when no
//! provider is needed. Routing lives in `route.rs`; this step applies what
//! the route implies (pinned defaults, capability checks). Retries, failover
//! and virtual-model targets extend the list; the attempt loop walks it.

use super::request::{Call, Request};
use crate::config::Snapshot;
use crate::error::GatewayError;
use crate::http::header;
use crate::live::{Discovered, Overrides};
use crate::policy::Answer;
use crate::providers::Provider;
use crate::route::resolve_with_overrides;
use std::sync::Arc;
use switchyard_filters::estimate::input_tokens;
use switchyard_filters::ir::WireDialect;

/// One upstream target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider instance.
    pub provider: Arc<Provider>,
    /// The model name it knows.
    pub upstream_model: String,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Plan {
    /// Try these targets in order.
    Upstream(Vec<Target>),
    /// Answer locally (an estimate the provider cannot give).
    Local {
        /// Where the request would have gone (for the records).
        target: Target,
        /// The answer.
        answer: Answer,
    },
}

/// Plans `request`: resolves its model (overrides first), applies pinned
/// defaults, and checks that the target can serve the call.
pub fn build(
    snap: &Snapshot,
    discovered: &Discovered,
    overrides: &Overrides,
    request: &mut Request<'_>,
) -> Result<Plan, GatewayError> {
    let route = resolve_with_overrides(snap, discovered, overrides, &request.model)?;
    request.apply_defaults(route.defaults.as_ref());
    let target = Target {
        provider: route.provider,
        upstream_model: route.upstream_model,
    };
    let caps = target.provider.family.capabilities;
    match request.call {
        Call::CountTokens if !caps.count_tokens || target.provider.wire() != WireDialect::Anthropic => {
            // No Anthropic counting endpoint: the documented estimate,
            // marked as one.
            let n = input_tokens(request.ir()?);
            let answer = Answer {
                status: 200,
                body: serde_json::json!({"input_tokens": n}).to_string().into_bytes(),
                headers: [
                    header("x-switchyard-token-count", "estimate"),
                    header("x-switchyard-provider", &target.provider.name),
                ]
                .into_iter()
                .flatten()
                .collect(),
            };
            Ok(Plan::Local { target, answer })
        }
        Call::Embeddings if !caps.embeddings => Err(GatewayError::InvalidRequest {
            message: format!(
                "provider `{}` ({}) has no embeddings API; route this model to an embeddings provider",
                target.provider.name, target.provider.family.name
            ),
            param: Some("model".into()),
        }),
        Call::Chat | Call::Messages => {
            // The caller's name picks the fallbacks; each is encoded for its
            // own dialect when its turn comes.
            let mut targets = vec![target];
            // (A lookup in an empty map returns before hashing the name.)
            for (i, model) in snap.fallbacks.get(&request.model).into_iter().flatten() {
                if let Some(p) = snap.providers.get(*i) {
                    targets.push(Target {
                        provider: p.clone(),
                        upstream_model: model.clone(),
                    });
                }
            }
            Ok(Plan::Upstream(targets))
        }
        Call::CountTokens | Call::Embeddings => Ok(Plan::Upstream(vec![target])),
    }
}
