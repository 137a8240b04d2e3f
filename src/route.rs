//! Pure model routing: (model string, snapshot, discovered models) → Route.
//!
//! Order: YAML alias, then `provider/model`, then a bare name configured by a
//! provider (`_MODELS` / `models:`), then a bare name from a provider's own
//! `/models` list (fetched in the background, never on the request path).

use crate::config::Snapshot;
use crate::error::GatewayError;
use crate::live::{Discovered, Overrides};
use crate::providers::Provider;
use std::collections::HashSet;
use std::sync::Arc;

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider instance.
    pub provider: Arc<Provider>,
    /// Model name as the provider knows it.
    pub upstream_model: String,
    /// Request parameters pinned by an override, applied when the caller
    /// did not set them.
    pub defaults: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Resolves `model` to a provider and upstream model name.
pub fn resolve(snap: &Snapshot, discovered: &Discovered, model: &str) -> Result<Route, GatewayError> {
    let to = |i: usize, m: &str| -> Option<Route> {
        snap.providers.get(i).map(|p| Route {
            provider: p.clone(),
            upstream_model: m.to_string(),
            defaults: None,
        })
    };
    if let Some((i, m)) = snap.aliases.get(model) {
        if let Some(r) = to(*i, m) {
            return Ok(r);
        }
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(i) = snap.provider_index(prefix) {
            if !rest.is_empty() {
                if let Some(r) = to(i, rest) {
                    return Ok(r);
                }
            }
        }
    }
    if let Some(i) = snap.configured_model(model) {
        if let Some(r) = to(i, model) {
            return Ok(r);
        }
    }
    for p in &snap.providers {
        if discovered
            .by_provider
            .get(&p.name)
            .is_some_and(|set| set.contains(model))
        {
            return Ok(Route {
                provider: p.clone(),
                upstream_model: model.to_string(),
                defaults: None,
            });
        }
    }
    Err(GatewayError::ModelNotFound(model.to_string()))
}

/// Like [`resolve`], with operator overrides first: a disabled model is
/// refused (403), an override target replaces the model string, pinned
/// defaults travel with the route.
pub fn resolve_with_overrides(
    snap: &Snapshot,
    discovered: &Discovered,
    overrides: &Overrides,
    model: &str,
) -> Result<Route, GatewayError> {
    let Some(o) = overrides.get(model) else {
        return resolve(snap, discovered, model);
    };
    if o.disabled {
        return Err(GatewayError::ModelDisabled(model.to_string()));
    }
    let mut route = resolve(snap, discovered, o.target.as_deref().unwrap_or(model))?;
    if !o.defaults.is_empty() {
        route.defaults = Some(o.defaults.clone());
    }
    Ok(route)
}

/// Every public model id: `provider/model` for configured and discovered
/// models, plus aliases and virtual models (owned by `switchyard`).
pub fn public_models(snap: &Snapshot, discovered: &Discovered) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in &snap.providers {
        let mut seen = HashSet::new();
        for m in &p.models {
            if seen.insert(m.as_str()) {
                out.push((format!("{}/{m}", p.name), p.name.clone()));
            }
        }
        if let Some(set) = discovered.by_provider.get(&p.name) {
            let mut ms: Vec<&String> = set.iter().filter(|m| !seen.contains(m.as_str())).collect();
            ms.sort();
            for m in ms {
                out.push((format!("{}/{m}", p.name), p.name.clone()));
            }
        }
    }
    for (alias, (i, _)) in &snap.aliases {
        if let Some(p) = snap.providers.get(*i) {
            out.push((alias.clone(), p.name.clone()));
        }
    }
    // A virtual model is served by a set: the gateway owns it.
    let mut virtuals: Vec<&String> = snap.virtual_models.keys().collect();
    virtuals.sort();
    out.extend(virtuals.into_iter().map(|v| (v.clone(), "switchyard".to_string())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{compile, read_sources_for_test};

    #[test]
    fn resolution_order() {
        let yaml = "aliases:\n  fast: groq/llama-3.1-8b\nvirtual_models:\n  smart: {targets: [{target: fast}]}\n";
        let snap = compile(&read_sources_for_test(
            &[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_MODELS", "gpt-4o"),
                ("GROQ_API_KEY", "g"),
                ("OPENROUTER_API_KEY", "o"),
            ],
            Some(yaml),
        ))
        .expect("valid");
        let mut d = Discovered::default();
        d.by_provider.insert(
            "openrouter".into(),
            Arc::new(["anthropic/claude-x".to_string()].into_iter().collect()),
        );
        let r = |m: &str| resolve(&snap, &d, m).map(|r| (r.provider.name.clone(), r.upstream_model));
        assert_eq!(r("fast").expect("alias"), ("groq".into(), "llama-3.1-8b".into()));
        assert_eq!(r("groq/x").expect("prefix"), ("groq".into(), "x".into()));
        assert_eq!(r("gpt-4o").expect("bare"), ("openai".into(), "gpt-4o".into()));
        assert_eq!(
            r("anthropic/claude-x").expect("discovered"),
            ("openrouter".into(), "anthropic/claude-x".into())
        );
        assert_eq!(r("nope"), Err(GatewayError::ModelNotFound("nope".into())));
        let ids: Vec<String> = public_models(&snap, &d).into_iter().map(|x| x.0).collect();
        assert!(ids.contains(&"openai/gpt-4o".to_string()));
        assert!(ids.contains(&"openrouter/anthropic/claude-x".to_string()));
        assert!(ids.contains(&"fast".to_string()));
        assert!(public_models(&snap, &d).contains(&("smart".into(), "switchyard".into())));
    }
}
