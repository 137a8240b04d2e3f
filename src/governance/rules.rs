//! The limits and budgets in force, and the checks one request must pass.
//!
//! Scopes: a managed key (its own `limits` and `budget`), a user-path
//! subtree (`/acme` covers `/acme/search/u1`; `/` covers every request),
//! the model name the caller asked for, and the provider instance of the
//! request's first target. Each (scope, limit) is one counter, named so
//! every node of a fleet names it alike.

use super::keys::{BudgetSpec, Limits, ScopeNames, Source};
use super::meters::{Check, Kind, Reading};
use super::{Ask, NANO};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A budget on a user-path subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathBudget {
    /// Stable id (`bud_…`, derived from the path and period).
    pub id: String,
    /// The subtree.
    pub user_path: String,
    /// The cap.
    #[serde(flatten)]
    pub spec: BudgetSpec,
    /// Config file or admin API.
    pub source: Source,
}

impl PathBudget {
    /// A budget with the id its path and period imply.
    pub fn new(user_path: String, spec: BudgetSpec, source: Source) -> PathBudget {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{user_path}\u{1f}{}", spec.period.label()).as_bytes(),
        );
        let id = format!("bud_{}", super::keys::hex(&d.as_ref()[..6]));
        PathBudget {
            id,
            user_path,
            spec,
            source,
        }
    }

    /// Its counters' names (`budget:<id>:usd`, …) and how errors name it.
    pub fn names(&self) -> ScopeNames {
        let base = format!("budget:{}", self.id);
        ScopeNames::new(format!("user path `{}`", self.user_path), &base, &base)
    }
}

/// Everything declared, compiled for the request path.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// Limits on user-path subtrees.
    pub path_limits: Vec<(String, Limits)>,
    /// Limits by requested model name.
    pub model_limits: HashMap<String, Limits>,
    /// Limits by provider instance.
    pub provider_limits: HashMap<String, Limits>,
    /// Budgets on user-path subtrees (config and admin API).
    pub budgets: Vec<PathBudget>,
}

/// Whether `path` lies in the subtree `root` (segment-wise).
pub fn covers(root: &str, path: &str) -> bool {
    root == "/" || path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

impl Rules {
    /// Whether any limit or budget is declared.
    pub fn any(&self) -> bool {
        !self.path_limits.is_empty()
            || !self.model_limits.is_empty()
            || !self.provider_limits.is_empty()
            || !self.budgets.is_empty()
    }

    /// These rules with `extra` budgets added (the admin API's).
    pub fn with_budgets(&self, extra: &[PathBudget]) -> Rules {
        let mut r = self.clone();
        r.budgets.extend(extra.iter().cloned());
        r
    }

    /// Every check `ask` must pass, in a fixed order (key, paths, model,
    /// provider; limits before budgets). A key's counter names are made
    /// when the key is loaded; other scopes' when they apply.
    pub fn checks(&self, ask: &Ask<'_>) -> Vec<Check> {
        let mut out = Vec::new();
        if let Some(k) = ask.key {
            limit_checks(&mut out, &k.names, &k.rec.limits, ask.tokens);
            if let Some(b) = &k.rec.budget {
                budget_checks(&mut out, &k.names, b, ask);
            }
        }
        for (root, l) in &self.path_limits {
            if covers(root, ask.user_path) {
                let base = format!("path:{root}");
                let n = ScopeNames::new(format!("user path `{root}`"), &base, &base);
                limit_checks(&mut out, &n, l, ask.tokens);
            }
        }
        if let Some(l) = self.model_limits.get(ask.model) {
            let base = format!("model:{}", ask.model);
            let n = ScopeNames::new(format!("model `{}`", ask.model), &base, &base);
            limit_checks(&mut out, &n, l, ask.tokens);
        }
        if let Some((p, l)) = ask.provider.and_then(|p| self.provider_limits.get(p).map(|l| (p, l))) {
            let base = format!("provider:{p}");
            let n = ScopeNames::new(format!("provider `{p}`"), &base, &base);
            limit_checks(&mut out, &n, l, ask.tokens);
        }
        for b in &self.budgets {
            if covers(&b.user_path, ask.user_path) {
                budget_checks(&mut out, &b.names(), &b.spec, ask);
            }
        }
        out
    }
}

fn limit_checks(out: &mut Vec<Check>, n: &ScopeNames, l: &Limits, tokens: i64) {
    let mut push = |meter: &Arc<str>, kind, limit: u64, amount| {
        out.push(Check {
            meter: meter.clone(),
            kind,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            amount,
            scope: n.scope.clone(),
            soft: None,
        })
    };
    if let Some(v) = l.rpm {
        push(&n.rpm, Kind::Requests, v, 1);
    }
    if let Some(v) = l.tpm {
        push(&n.tpm, Kind::Tokens, v, tokens);
    }
    if let Some(v) = l.concurrency {
        push(&n.concurrency, Kind::Concurrency, v, 1);
    }
}

/// A budget's checks. An unpriced model is counted in tokens only (its
/// USD cap cannot apply); the ticket's headers say so.
fn budget_checks(out: &mut Vec<Check>, n: &ScopeNames, b: &BudgetSpec, ask: &Ask<'_>) {
    if let (Some(usd), Some(nano)) = (b.usd, ask.nano_usd) {
        out.push(Check {
            meter: n.usd.clone(),
            kind: Kind::Usd(b.period),
            limit: (usd * NANO).round() as i64,
            amount: nano,
            scope: n.scope.clone(),
            soft: b.soft,
        });
    } else if b.usd.is_some() {
        // A check that always passes: it counts the tokens and carries the note.
        out.push(Check {
            meter: n.unpriced.clone(),
            kind: Kind::BudgetTokens(b.period),
            limit: i64::MAX,
            amount: 0,
            scope: n.scope.clone(),
            soft: None,
        });
    }
    if let Some(t) = b.tokens {
        out.push(Check {
            meter: n.tokens.clone(),
            kind: Kind::BudgetTokens(b.period),
            limit: i64::try_from(t).unwrap_or(i64::MAX),
            amount: ask.tokens,
            scope: n.scope.clone(),
            soft: b.soft,
        });
    }
}

fn header(name: http::HeaderName, value: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
    Some((name, http::HeaderValue::from_str(value).ok()?))
}

/// Writes a Go-style duration, as OpenAI's reset headers write them
/// (`20ms`, `1.5s`, `6m0s`), into `out` (integer arithmetic, no allocation
/// of its own: this runs for every limited answer).
fn write_reset(ms: u64, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    if ms < 1000 {
        out.extend_from_slice(n.format(ms).as_bytes());
        out.extend_from_slice(b"ms");
        return;
    }
    let (m, rest) = (ms / 60_000, ms % 60_000);
    if m > 0 {
        out.extend_from_slice(n.format(m).as_bytes());
        out.push(b'm');
    }
    out.extend_from_slice(n.format(rest / 1000).as_bytes());
    let frac = rest % 1000;
    if frac != 0 {
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let keep = digits.iter().rposition(|d| *d != b'0').map_or(0, |i| i + 1);
        out.push(b'.');
        out.extend_from_slice(&digits[..keep]);
    }
    out.push(b's');
}

/// The response headers of an admitted request: OpenAI's rate-limit trio
/// for requests and for tokens (the tightest scope's numbers), budget
/// warnings past a soft threshold, and a note when a USD budget could not
/// price the model. Also returns the warnings for the live log.
pub fn headers(checks: &[Check], readings: &[Reading]) -> (super::Headers, Vec<String>) {
    let mut h = Vec::new();
    let mut warnings = Vec::new();
    // Constants: `from_static` evaluated at run time parses the name.
    type Names = [http::HeaderName; 3];
    const REQUESTS: Names = [
        http::HeaderName::from_static("x-ratelimit-limit-requests"),
        http::HeaderName::from_static("x-ratelimit-remaining-requests"),
        http::HeaderName::from_static("x-ratelimit-reset-requests"),
    ];
    const TOKENS: Names = [
        http::HeaderName::from_static("x-ratelimit-limit-tokens"),
        http::HeaderName::from_static("x-ratelimit-remaining-tokens"),
        http::HeaderName::from_static("x-ratelimit-reset-tokens"),
    ];
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let mut spans: [Option<(Names, [usize; 4])>; 2] = [None, None];
    for (slot, (kind, names)) in spans
        .iter_mut()
        .zip([(Kind::Requests, REQUESTS), (Kind::Tokens, TOKENS)])
    {
        let best = checks
            .iter()
            .zip(readings)
            .filter(|(c, _)| c.kind == kind)
            .min_by_key(|(c, r)| c.limit - r.used - c.amount);
        if let Some((c, r)) = best {
            let remaining = (c.limit - r.used - c.amount).max(0);
            let mut n = itoa::Buffer::new();
            let at = buf.len();
            buf.extend_from_slice(n.format(c.limit).as_bytes());
            let mid = buf.len();
            buf.extend_from_slice(n.format(remaining).as_bytes());
            let reset = buf.len();
            write_reset(r.reset_ms, &mut buf);
            *slot = Some((names, [at, mid, reset, buf.len()]));
        }
    }
    // All six values are slices of one buffer: one allocation, not six.
    let buf = bytes::Bytes::from(buf);
    for (names, [a, b, c, d]) in spans.into_iter().flatten() {
        for (name, (from, to)) in names.into_iter().zip([(a, b), (b, c), (c, d)]) {
            if let Ok(v) = http::HeaderValue::from_maybe_shared(buf.slice(from..to)) {
                h.push((name, v));
            }
        }
    }
    for (c, r) in checks.iter().zip(readings) {
        if c.meter.ends_with(":unpriced") {
            h.extend(header(
                crate::header_name!("x-switchyard-budget-note"),
                &format!(
                    "the model has no known price: the USD budget of {} counts nothing for it",
                    c.scope
                ),
            ));
            continue;
        }
        let Some(soft) = c.soft else { continue };
        let frac = (r.used + r.reserved + c.amount) as f64 / c.limit.max(1) as f64;
        if frac >= soft {
            let what = if matches!(c.kind, Kind::Usd(_)) { "USD" } else { "token" };
            let period = match c.kind {
                Kind::Usd(p) | Kind::BudgetTokens(p) => p.label(),
                _ => String::new(),
            };
            let w = format!(
                "{} {what} budget ({period}): {:.0}% used",
                c.scope,
                (frac * 100.0).min(999.0)
            );
            h.extend(header(crate::header_name!("x-switchyard-budget-warning"), &w));
            warnings.push(w);
        }
    }
    (h, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::window::Period;

    #[test]
    fn subtrees_are_segment_wise() {
        assert!(covers("/acme", "/acme") && covers("/acme", "/acme/search/u1"));
        assert!(!covers("/acme", "/acmeco") && !covers("/acme/x", "/acme"));
        assert!(covers("/", "") && covers("/", "/anything"));
    }

    fn fmt_reset(ms: u64) -> String {
        let mut out = Vec::new();
        write_reset(ms, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn resets_read_like_openai_headers() {
        assert_eq!(fmt_reset(20), "20ms");
        assert_eq!(fmt_reset(1_500), "1.5s");
        assert_eq!(fmt_reset(59_000), "59s");
        assert_eq!(fmt_reset(360_000), "6m0s");
        assert_eq!(fmt_reset(61_250), "1m1.25s");
    }

    #[test]
    fn checks_cover_the_key_its_subtrees_the_model_and_the_provider() {
        let mut rules = Rules::default();
        rules.path_limits.push((
            "/acme".into(),
            Limits {
                rpm: Some(100),
                ..Limits::default()
            },
        ));
        rules.path_limits.push((
            "/other".into(),
            Limits {
                rpm: Some(1),
                ..Limits::default()
            },
        ));
        rules.model_limits.insert(
            "gpt".into(),
            Limits {
                tpm: Some(1000),
                ..Limits::default()
            },
        );
        rules.budgets.push(PathBudget::new(
            "/acme".into(),
            BudgetSpec {
                usd: Some(1.0),
                tokens: None,
                period: Period::Day,
                soft: Some(0.5),
            },
            Source::Config,
        ));
        let ask = |nano| Ask {
            key: None,
            user_path: "/acme/u1",
            model: "gpt",
            provider: Some("openai"),
            tokens: 40,
            nano_usd: nano,
        };
        let c = rules.checks(&ask(Some(600_000_000)));
        let names: Vec<&str> = c.iter().map(|c| &*c.meter).collect();
        let bid = &rules.budgets[0].id;
        assert_eq!(names, ["path:/acme:rpm", "model:gpt:tpm", &format!("budget:{bid}:usd")]);
        assert_eq!(c[1].amount, 40);
        // Past the soft threshold: a warning header.
        let r = vec![
            Reading {
                used: 0,
                reserved: 0,
                reset_ms: 60_000
            };
            3
        ];
        let (h, w) = headers(&c, &r);
        assert_eq!(w.len(), 1, "{h:?}");
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap_or("").to_string())
        };
        assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("99"));
        assert_eq!(get("x-ratelimit-remaining-tokens").as_deref(), Some("960"));
        assert_eq!(get("x-ratelimit-reset-requests").as_deref(), Some("1m0s"));
        // Unpriced: the USD budget is noted, not applied.
        let c = rules.checks(&ask(None));
        assert!(c.iter().any(|c| c.meter.ends_with(":unpriced")));
        let (h, _) = headers(
            &c,
            &vec![
                Reading {
                    used: 0,
                    reserved: 0,
                    reset_ms: 0
                };
                c.len()
            ],
        );
        assert!(h.iter().any(|(k, _)| k == "x-switchyard-budget-note"));
        // Budget ids depend on the path and period only.
        assert_eq!(
            rules.budgets[0].id,
            PathBudget::new("/acme".into(), rules.budgets[0].spec.clone(), Source::Admin).id
        );
    }
}
