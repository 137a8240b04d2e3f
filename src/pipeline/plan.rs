//! Planning: the ordered list of upstream attempts for a request (a provider
//! instance and the model name it knows), or a local answer when no
//! provider is needed. Routing lives in `route.rs`; this step applies what
//! the route implies (pinned defaults, capability checks). A virtual model
//! orders its members by its strategy; `fallbacks:` extend the list; the
//! attempt loop walks it.

use super::request::{Call, Request};
use crate::config::{MemberRef, Snapshot, VirtualModel, MAX_CHAIN};
use crate::error::GatewayError;
use crate::http::header;
use crate::live::{Discovered, Overrides};
use crate::policy::Answer;
use crate::providers::Provider;
use crate::resilience::balance::{hash_str, order, Sticky};
use crate::resilience::Resilience;
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
    /// Chosen by a strategy that balances on live numbers: the attempt
    /// keeps them (time to the response head, requests in flight).
    pub balanced: bool,
}

/// Who is asking, for a virtual model's `sticky:`.
pub struct Affinity<'a> {
    /// The key id (`master` for the master key; empty when anonymous).
    pub key: &'a str,
    /// `X-Switchyard-User-Path`.
    pub user_path: &'a str,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
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

/// Where the names a plan needs are looked up.
pub struct Lookup<'a> {
    /// The config.
    pub snap: &'a Snapshot,
    /// Models the providers listed.
    pub discovered: &'a Discovered,
    /// Operator overrides.
    pub overrides: &'a Overrides,
    /// Live per-target numbers.
    pub resilience: &'a Resilience,
}

/// Plans `request`: resolves its model (overrides first, then a virtual
/// model), applies pinned defaults, and checks that the first target can
/// serve the call.
pub fn build(at: &Lookup<'_>, who: &Affinity<'_>, request: &mut Request<'_>) -> Result<Plan, GatewayError> {
    let snap = at.snap;
    // An override may disable the name or point it at another, which may
    // itself be virtual.
    let over = at.overrides.get(&request.model);
    let vm = match over {
        Some(o) if o.disabled => return Err(GatewayError::ModelDisabled(request.model.clone())),
        Some(o) => snap.virtual_models.get(o.target.as_deref().unwrap_or(&request.model)),
        None => snap.virtual_models.get(&request.model),
    };
    let (mut targets, defaults) = match vm {
        Some(vm) => {
            let mut out = Vec::new();
            expand(at, vm, who, 0, &mut out);
            if out.is_empty() {
                return Err(GatewayError::ModelNotFound(request.model.clone()));
            }
            let defaults = over.filter(|o| !o.defaults.is_empty()).map(|o| o.defaults.clone());
            (out, defaults)
        }
        None => {
            let route = resolve_with_overrides(snap, at.discovered, at.overrides, &request.model)?;
            let target = Target {
                provider: route.provider,
                upstream_model: route.upstream_model,
                balanced: false,
            };
            (vec![target], route.defaults)
        }
    };
    request.apply_defaults(defaults.as_ref());
    // The first target (both branches above give at least one) decides
    // what the call may do.
    let first = &*targets[0].provider;
    let caps = first.family.capabilities;
    match request.call {
        Call::CountTokens if !caps.count_tokens || first.wire() != WireDialect::Anthropic => {
            // No Anthropic counting endpoint: the documented estimate,
            // marked as one.
            let n = input_tokens(request.ir()?);
            let answer = Answer {
                status: 200,
                body: serde_json::json!({"input_tokens": n}).to_string().into_bytes(),
                headers: [
                    header(crate::header_name!("x-switchyard-token-count"), "estimate"),
                    header(crate::header_name!("x-switchyard-provider"), &first.name),
                ]
                .into_iter()
                .flatten()
                .collect(),
            };
            Ok(Plan::Local {
                target: targets.swap_remove(0),
                answer,
            })
        }
        Call::Embeddings if !caps.embeddings => Err(GatewayError::InvalidRequest {
            message: format!(
                "provider `{}` ({}) has no embeddings API; route this model to an embeddings provider",
                first.name, first.family.name
            ),
            param: Some("model".into()),
        }),
        Call::Chat | Call::Messages => {
            // The rest of a virtual model's set, then the caller's name's
            // fallbacks; each is encoded for its own dialect when its turn
            // comes.
            // (A lookup in an empty map returns before hashing the name.)
            for (i, model) in snap.fallbacks.get(&request.model).into_iter().flatten() {
                if let Some(p) = snap.providers.get(*i) {
                    push_new(&mut targets, p, model, false);
                }
            }
            Ok(Plan::Upstream(targets))
        }
        Call::CountTokens | Call::Embeddings => {
            targets.truncate(1);
            Ok(Plan::Upstream(targets))
        }
    }
}

/// Appends a virtual model's members in the order its strategy gives,
/// expanding members that are virtual models themselves (the config bounds
/// the depth and refuses cycles; the depth check here is a second guard).
fn expand(at: &Lookup<'_>, vm: &VirtualModel, who: &Affinity<'_>, depth: usize, out: &mut Vec<Target>) {
    if depth > MAX_CHAIN {
        return;
    }
    let snap = at.snap;
    let balanced = vm.strategy.needs_stats();
    let members: Vec<_> = vm
        .members
        .iter()
        .map(|m| {
            let mut view = m.member();
            if let (true, MemberRef::Target(i, model)) = (balanced, &m.to) {
                if let Some(p) = snap.providers.get(*i) {
                    let st = super::instance(at.resilience, p).stats(model);
                    view.latency_us = st.latency_us();
                    view.busy = st.busy();
                }
            }
            view
        })
        .collect();
    let sticky = vm.sticky.as_ref().and_then(|s| sticky_value(s, who)).map(hash_str);
    let turn = vm.next_turn();
    let mut rng = fastrand::Rng::new();
    for i in order(vm.strategy, &members, sticky, turn, &mut rng) {
        match &vm.members[i].to {
            MemberRef::Target(p, model) => {
                if let Some(p) = snap.providers.get(*p) {
                    push_new(out, p, model, balanced);
                }
            }
            MemberRef::Virtual(name) => {
                if let Some(inner) = snap.virtual_models.get(name) {
                    expand(at, inner, who, depth + 1, out);
                }
            }
        }
    }
}

/// The caller's sticky value, if it sent one.
fn sticky_value<'a>(s: &Sticky, who: &Affinity<'a>) -> Option<&'a str> {
    let v = match s {
        Sticky::Key => who.key,
        Sticky::UserPath => who.user_path,
        Sticky::Header(name) => who.headers.get(name.as_str())?.to_str().ok()?,
    };
    (!v.is_empty()).then_some(v)
}

/// Adds a target unless the list already has it.
fn push_new(out: &mut Vec<Target>, p: &Arc<Provider>, model: &str, balanced: bool) {
    if !out
        .iter()
        .any(|t| Arc::ptr_eq(&t.provider, p) && t.upstream_model == model)
    {
        out.push(Target {
            provider: p.clone(),
            upstream_model: model.to_string(),
            balanced,
        });
    }
}
