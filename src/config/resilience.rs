//! The resilience parts of the config: circuit-breaker policies (top-level
//! defaults, a provider's own block wins field by field) and virtual models
//! (members resolved to providers, chains checked for cycles and depth).

use super::file::{BreakerFile, FileConfig};
use super::{err, ConfigError};
use crate::pricing::Pricing;
use crate::providers::Provider;
use crate::resilience::balance::{Member, Sticky, Strategy};
use crate::resilience::breaker::BreakerPolicy;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Virtual models may name each other this deep.
pub const MAX_CHAIN: usize = 8;

/// A public model name served by a set of targets.
#[derive(Debug)]
pub struct VirtualModel {
    /// How the set spreads traffic.
    pub strategy: Strategy,
    /// What keeps a caller on one member.
    pub sticky: Option<Sticky>,
    /// The members, in config order.
    pub members: Vec<VirtualMember>,
    turn: AtomicUsize,
}

impl VirtualModel {
    /// The round-robin counter's next value.
    pub fn next_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }
}

/// One member of a virtual model.
#[derive(Debug, Clone)]
pub struct VirtualMember {
    /// Where it goes.
    pub to: MemberRef,
    /// Its share (0 = a backup, tried after the others).
    pub weight: u32,
    /// Known price per token (input + output), for `strategy: cost`.
    pub cost: Option<f64>,
}

impl VirtualMember {
    /// What the strategy sees before live numbers are added.
    pub fn member(&self) -> Member {
        Member {
            weight: self.weight,
            cost: self.cost,
            ..Member::default()
        }
    }
}

/// A member's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    /// A provider (index) and the model it knows.
    Target(usize, String),
    /// Another virtual model.
    Virtual(String),
}

/// The breaker policy of provider `name`: its own block over the top-level
/// one, field by field; `None` when neither is set or `enabled: false`.
/// Only the provider's own fields are reported here ([`check_top`] reports
/// the top-level block once).
pub(super) fn breaker_policy(
    name: &str,
    top: Option<BreakerFile>,
    own: Option<BreakerFile>,
    errs: &mut Vec<ConfigError>,
) -> Option<BreakerPolicy> {
    if top.is_none() && own.is_none() {
        return None;
    }
    let (t, o) = (top.unwrap_or_default(), own.unwrap_or_default());
    let merged = BreakerFile {
        enabled: o.enabled.or(t.enabled),
        failures: o.failures.or(t.failures),
        error_rate: o.error_rate.or(t.error_rate),
        min_requests: o.min_requests.or(t.min_requests),
        window_seconds: o.window_seconds.or(t.window_seconds),
        cooldown_seconds: o.cooldown_seconds.or(t.cooldown_seconds),
    };
    if own.is_some() {
        policy_of(&o, &format!("providers.{name}.circuit_breaker"), errs);
    }
    merged
        .enabled
        .unwrap_or(true)
        .then(|| policy_of(&merged, "", &mut Vec::new()))
}

/// Reports what is wrong with the top-level `circuit_breaker:`.
pub(super) fn check_top(top: Option<BreakerFile>, errs: &mut Vec<ConfigError>) {
    if let Some(t) = top {
        policy_of(&t, "circuit_breaker", errs);
    }
}

/// The policy a block gives (defaults for what it leaves out), reporting
/// each bad field under `path`.
fn policy_of(f: &BreakerFile, path: &str, errs: &mut Vec<ConfigError>) -> BreakerPolicy {
    let d = BreakerPolicy::default();
    let mut secs = |v: Option<f64>, field: &str, default: Duration| match v {
        None => default,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
        Some(s) => {
            errs.push(err(
                &format!("{path}.{field}"),
                format!("{s} is not between 0 and 86400 seconds"),
            ));
            default
        }
    };
    let window = secs(f.window_seconds, "window_seconds", d.window);
    let cooldown = secs(f.cooldown_seconds, "cooldown_seconds", d.cooldown);
    let failures = f.failures.unwrap_or(d.failures);
    if failures == 0 {
        errs.push(err(&format!("{path}.failures"), "must be at least 1".into()));
    }
    let mut error_rate = f.error_rate.unwrap_or(d.error_rate);
    if !(error_rate > 0.0 && error_rate <= 1.0) {
        errs.push(err(
            &format!("{path}.error_rate"),
            format!("{error_rate} is not in (0, 1]"),
        ));
        error_rate = d.error_rate;
    }
    BreakerPolicy {
        failures: failures.max(1),
        error_rate,
        min_requests: f.min_requests.unwrap_or(d.min_requests),
        window,
        cooldown,
    }
}

/// Compiles `virtual_models:`. A member names another virtual model, an
/// alias, or `provider/model`, in that order.
pub(super) fn virtual_models(
    file: &FileConfig,
    providers: &[Arc<Provider>],
    by_name: &HashMap<String, usize>,
    aliases: &BTreeMap<String, (usize, String)>,
    pricing: &Pricing,
    errs: &mut Vec<ConfigError>,
) -> HashMap<String, VirtualModel> {
    let Some(files) = &file.virtual_models else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for (name, vf) in files {
        let path = format!("virtual_models.{name}");
        if aliases.contains_key(name) {
            errs.push(err(
                &path,
                format!("`{name}` is also an alias; a public name means one thing"),
            ));
        }
        let strategy = match vf.strategy.as_deref() {
            None => Strategy::Weighted,
            Some(s) => Strategy::parse(s).unwrap_or_else(|| {
                errs.push(err(
                    &format!("{path}.strategy"),
                    format!("unknown strategy `{s}` (known: weighted, round_robin, least_latency, least_busy, cost)"),
                ));
                Strategy::Weighted
            }),
        };
        let sticky = vf.sticky.as_deref().and_then(|s| {
            let parsed = Sticky::parse(s);
            if parsed.is_none() {
                errs.push(err(
                    &format!("{path}.sticky"),
                    format!("`{s}` is not key, user_path or header:<Header-Name>"),
                ));
            }
            parsed
        });
        let mut members = Vec::new();
        for (i, t) in vf.targets.iter().enumerate() {
            let tpath = format!("{path}.targets[{i}]");
            let target = t.target.trim();
            let to = if files.contains_key(target) {
                MemberRef::Virtual(target.to_string())
            } else if let Some((p, m)) = aliases.get(target) {
                MemberRef::Target(*p, m.clone())
            } else {
                match target.split_once('/') {
                    Some((prov, model)) if !model.is_empty() => match by_name.get(prov) {
                        Some(&p) => MemberRef::Target(p, model.to_string()),
                        None => {
                            errs.push(err(&tpath, format!("unknown provider `{prov}` in `{target}`")));
                            continue;
                        }
                    },
                    _ => {
                        errs.push(err(
                            &tpath,
                            format!("`{target}` is not a virtual model, an alias or `provider/model`"),
                        ));
                        continue;
                    }
                }
            };
            let cost = match &to {
                MemberRef::Target(p, m) => providers
                    .get(*p)
                    .and_then(|p| pricing.lookup(p.family.name, &p.name, m))
                    .map(|(price, _)| price.input + price.output),
                MemberRef::Virtual(_) => None,
            };
            members.push(VirtualMember {
                to,
                weight: t.weight.unwrap_or(1),
                cost,
            });
        }
        if vf.targets.is_empty() {
            errs.push(err(&format!("{path}.targets"), "lists no targets".into()));
        } else if vf.targets.iter().all(|t| t.weight == Some(0)) {
            errs.push(err(&format!("{path}.targets"), "every weight is 0".into()));
        }
        out.insert(
            name.clone(),
            VirtualModel {
                strategy,
                sticky,
                members,
                turn: AtomicUsize::new(0),
            },
        );
    }
    let mut names: Vec<&String> = out.keys().collect();
    names.sort();
    for name in names {
        if let Some(problem) = chain_problem(&out, &mut vec![name.as_str()]) {
            errs.push(err(&format!("virtual_models.{name}"), problem));
        }
    }
    out
}

/// The first cycle or over-deep chain reachable from the path's last name.
fn chain_problem<'a>(vms: &'a HashMap<String, VirtualModel>, path: &mut Vec<&'a str>) -> Option<String> {
    let last = *path.last()?;
    for m in &vms.get(last)?.members {
        let MemberRef::Virtual(next) = &m.to else { continue };
        if path.contains(&next.as_str()) {
            return Some(format!("cycle: {} -> {next}", path.join(" -> ")));
        }
        path.push(next);
        if path.len() > MAX_CHAIN + 1 {
            return Some(format!("chain deeper than {MAX_CHAIN}: {}", path.join(" -> ")));
        }
        if let Some(p) = chain_problem(vms, path) {
            return Some(p);
        }
        path.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::{compile, read_sources_for_test, ConfigError, MemberRef, Snapshot};
    use crate::resilience::balance::{Sticky, Strategy};

    fn build(yaml: &str) -> Result<Snapshot, Vec<ConfigError>> {
        compile(&read_sources_for_test(
            &[("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "a")],
            Some(yaml),
        ))
    }

    fn paths(errs: &[ConfigError]) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
    }

    #[test]
    fn members_resolve_to_providers_aliases_and_other_virtual_models() {
        let snap = build(
            "aliases:\n  mini: openai/gpt-4o-mini\nvirtual_models:\n  smart:\n    strategy: cost\n    sticky: header:X-Session-Id\n    targets:\n      - {target: openai/gpt-4o, weight: 3}\n      - {target: mini}\n      - {target: cheap, weight: 0}\n  cheap:\n    targets: [{target: anthropic/claude-haiku-4-5}]\n",
        )
        .expect("valid");
        let vm = &snap.virtual_models["smart"];
        assert_eq!(vm.strategy, Strategy::Cost);
        assert_eq!(vm.sticky, Some(Sticky::Header("x-session-id".into())));
        let to: Vec<(&MemberRef, u32)> = vm.members.iter().map(|m| (&m.to, m.weight)).collect();
        let openai = snap.provider_index("openai").expect("openai");
        assert_eq!(
            to,
            [
                (&MemberRef::Target(openai, "gpt-4o".into()), 3),
                (&MemberRef::Target(openai, "gpt-4o-mini".into()), 1),
                (&MemberRef::Virtual("cheap".into()), 0),
            ]
        );
        assert!(vm.members[0].cost.is_some(), "gpt-4o has a catalog price");
        assert_eq!(snap.virtual_models["cheap"].strategy, Strategy::Weighted);
    }

    #[test]
    fn cycles_and_deep_chains_are_refused_with_their_path() {
        let errs = build(
            "virtual_models:\n  a: {targets: [{target: b}]}\n  b: {targets: [{target: openai/x}, {target: a}]}\n",
        )
        .expect_err("cycle");
        assert_eq!(
            paths(&errs),
            [
                "virtual_models.a: cycle: a -> b -> a",
                "virtual_models.b: cycle: b -> a -> b"
            ]
        );
        // v0 -> v1 -> ... -> v9: nine hops, one over the limit.
        let mut yaml = String::from("virtual_models:\n");
        for i in 0..9 {
            yaml.push_str(&format!("  v{i}: {{targets: [{{target: v{}}}]}}\n", i + 1));
        }
        yaml.push_str("  v9: {targets: [{target: openai/gpt-4o}]}\n");
        let errs = build(&yaml).expect_err("too deep");
        assert_eq!(
            paths(&errs)[0],
            "virtual_models.v0: chain deeper than 8: v0 -> v1 -> v2 -> v3 -> v4 -> v5 -> v6 -> v7 -> v8 -> v9"
        );
        // Eight hops are fine.
        let ok = yaml.replace("  v0: {targets: [{target: v1}]}\n", "");
        build(&ok).expect("eight hops");
    }

    #[test]
    fn bad_members_strategies_and_breakers_say_where() {
        let errs = build(
            "virtual_models:\n  s:\n    strategy: fastest\n    sticky: cookie\n    targets: [{target: nope/m}, {target: bare}]\n  e: {targets: []}\n  z: {targets: [{target: openai/a, weight: 0}]}\ncircuit_breaker: {error_rate: 1.5}\nproviders:\n  openai:\n    circuit_breaker: {failures: 0, cooldown_seconds: -1}\n",
        )
        .expect_err("invalid");
        let p = paths(&errs);
        for want in [
            "virtual_models.s.strategy: unknown strategy `fastest`",
            "virtual_models.s.sticky: `cookie` is not key, user_path or header:<Header-Name>",
            "virtual_models.s.targets[0]: unknown provider `nope` in `nope/m`",
            "virtual_models.s.targets[1]: `bare` is not a virtual model, an alias or `provider/model`",
            "virtual_models.e.targets: lists no targets",
            "virtual_models.z.targets: every weight is 0",
            "providers.openai.circuit_breaker.failures: must be at least 1",
            "providers.openai.circuit_breaker.cooldown_seconds: -1 is not between 0 and 86400 seconds",
            "circuit_breaker.error_rate: 1.5 is not in (0, 1]",
        ] {
            assert!(p.iter().any(|e| e.starts_with(want)), "missing {want:?} in {p:#?}");
        }
    }

    #[test]
    fn a_provider_breaker_overrides_the_top_level_one_field_by_field() {
        let snap = build(
            "circuit_breaker: {failures: 3, cooldown_seconds: 0.5}\nproviders:\n  anthropic:\n    circuit_breaker: {failures: 7}\n  openai:\n    circuit_breaker: {enabled: false}\n",
        )
        .expect("valid");
        let b = |n: &str| snap.providers[snap.provider_index(n).expect("known")].breaker;
        assert_eq!(b("openai"), None);
        let a = b("anthropic").expect("anthropic breaker");
        assert_eq!((a.failures, a.cooldown.as_millis()), (7, 500));
    }
}
