//! Governance in the lifecycle: a managed key's grant (endpoints, user
//! path, tags, models) and admission against limits and budgets. Skipped
//! entirely when no key, limit or budget is configured.

use super::plan::Plan;
use super::request::Request;
use super::Failure;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::governance::{Ask, Governance};
use crate::principal::Principal;
use crate::summary::RequestSummary;

/// Applies a managed key's grant to the request head: the endpoint must be
/// allowed, the attribution header may only narrow the key's user path
/// (none sent: the key's own), and the key's tags are added to the
/// caller's.
pub fn grant(p: &Principal, endpoint: Endpoint, s: &mut RequestSummary) -> Result<(), GatewayError> {
    let Some(k) = p.key() else { return Ok(()) };
    let rec = &k.rec;
    if !rec.allows_endpoint(endpoint.label()) {
        return Err(GatewayError::Forbidden {
            message: format!("The API key `{}` may not call `{}`", rec.name, endpoint.label()),
            code: "endpoint_not_allowed",
        });
    }
    if !rec.user_path.is_empty() {
        if s.user_path.is_empty() {
            // Validated when the key was made.
            s.user_path.clone_from(&rec.user_path);
        } else if !crate::governance::rules::covers(&rec.user_path, &s.user_path) {
            return Err(GatewayError::Forbidden {
                message: format!(
                    "X-Switchyard-User-Path `{}` is outside the key's user path `{}`: it may only narrow it",
                    s.user_path, rec.user_path
                ),
                code: "user_path_not_allowed",
            });
        }
    }
    for (tk, tv) in &rec.tags {
        if !s.tags.iter().any(|(k, _)| k == tk) {
            s.tags.push((tk.clone(), tv.clone()));
        }
    }
    Ok(())
}

/// Keeps only the targets a managed key may use. The name the caller asked
/// for is allowed when it matches one of the key's patterns (then every
/// target behind it is); otherwise a target is, when its
/// `provider/model` matches. 403 when none is left.
pub fn allowed_targets(p: &Principal, model: &str, plan: &mut Plan) -> Result<(), GatewayError> {
    let Some(k) = p.key() else { return Ok(()) };
    if k.rec.allows_model(model) {
        return Ok(());
    }
    let ok = |t: &super::plan::Target| k.rec.allows_model(&format!("{}/{}", t.provider.name, t.upstream_model));
    let any = match plan {
        Plan::Upstream(targets) => {
            targets.retain(ok);
            !targets.is_empty()
        }
        Plan::Local { target, .. } => ok(target),
    };
    if any {
        Ok(())
    } else {
        Err(GatewayError::Forbidden {
            message: format!("The API key `{}` may not use the model `{model}`", k.rec.name),
            code: "model_not_allowed",
        })
    }
}

/// Admits the planned request against every limit and budget covering it;
/// the ticket is kept in the summary and settled when the request ends.
pub async fn admit(
    gov: &Governance,
    snap: &crate::config::Snapshot,
    p: &Principal,
    request: &Request<'_>,
    plan: &Plan,
    s: &mut RequestSummary,
) -> Result<(), Failure> {
    let first = match plan {
        Plan::Upstream(t) => t.first(),
        Plan::Local { target, .. } => Some(target),
    };
    let max_out = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|f| request.obj.get(f).and_then(|v| v.get().parse::<u64>().ok()))
        .unwrap_or(0);
    let input = (request.body.len() as u64).div_ceil(4);
    let usage = switchyard_filters::usage::Usage {
        input_tokens: input,
        output_tokens: max_out,
        ..Default::default()
    };
    let nano_usd = first.and_then(|t| {
        snap.pricing
            .price_usage(t.provider.family.name, &t.provider.name, &t.upstream_model, &usage)
            .0
            .map(|c| (c * crate::governance::NANO).round() as i64)
    });
    let ask = Ask {
        key: p.key(),
        user_path: &s.user_path,
        model: &request.model,
        provider: first.map(|t| t.provider.name.as_str()),
        tokens: i64::try_from(input + max_out).unwrap_or(i64::MAX),
        nano_usd,
    };
    // A refusal's `Retry-After` is added where every error is answered.
    s.ticket = gov.admit(&ask).await?;
    Ok(())
}

/// The admitted request's headers, added to its answer: OpenAI's rate-limit
/// headers (which replace the provider's own, when the gateway limits the
/// caller), budget warnings and notes.
/// (Moved out of the ticket, not copied: an answer is headed once.)
pub fn add_headers(s: &mut RequestSummary, headers: &mut crate::http::Headers) {
    let Some(t) = &mut s.ticket else { return };
    if t.headers.iter().any(|(k, _)| k.as_str().starts_with("x-ratelimit-")) {
        headers.retain(|(k, _)| !k.as_str().starts_with("x-ratelimit-"));
    }
    headers.append(&mut t.headers);
}
