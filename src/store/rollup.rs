//! Daily roll-ups computed from a batch of records, before any engine is
//! involved: the backend adds these deltas to its stored rows within the same
//! write, so summaries read a few rows per day instead of every record.

use crate::record::UsageRecord;
use crate::store::encode::MAX_INTERNED_LEN;
use crate::store::query::{day_of, Counters};
use std::collections::HashMap;

/// One roll-up row's identity, with the strings borrowed from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollupKey<'a> {
    /// Per (day, provider, model, leaf user path, key id): the source of
    /// totals and of grouping by provider, model, key or user path (ancestor
    /// nodes are summed from their leaves when queried).
    Combo {
        /// UTC day.
        day: u32,
        /// Provider instance.
        provider: &'a str,
        /// Upstream model (the requested one when routing failed).
        model: &'a str,
        /// The request's own user path (not its ancestors).
        user_path: &'a str,
        /// Managed key id.
        key_id: &'a str,
    },
    /// Per (day, tag pair).
    Tag {
        /// UTC day.
        day: u32,
        /// Tag name.
        key: &'a str,
        /// Tag value.
        value: &'a str,
    },
}

/// Cuts a string used as a roll-up key to the interned maximum (at a char
/// boundary): a pathological model name must not become a huge key.
pub fn clip(s: &str) -> &str {
    if s.len() <= MAX_INTERNED_LEN {
        return s;
    }
    let mut end = MAX_INTERNED_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The model a record is rolled up under.
pub fn rollup_model(r: &UsageRecord) -> &str {
    clip(if r.upstream_model.is_empty() {
        &r.model
    } else {
        &r.upstream_model
    })
}

/// Sums a batch into roll-up deltas.
pub fn rollup_batch(records: &[UsageRecord]) -> HashMap<RollupKey<'_>, Counters> {
    let mut out: HashMap<RollupKey<'_>, Counters> = HashMap::new();
    for r in records {
        let day = day_of(r.ts_ms);
        let mut one = Counters::default();
        one.add_record(r);
        let combo = RollupKey::Combo {
            day,
            provider: clip(&r.provider),
            model: rollup_model(r),
            user_path: clip(&r.user_path),
            key_id: clip(&r.key_id),
        };
        out.entry(combo).or_default().merge(&one);
        for (k, v) in &r.tags {
            out.entry(RollupKey::Tag {
                day,
                key: clip(k),
                value: clip(v),
            })
            .or_default()
            .merge(&one);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::synth::record;

    #[test]
    fn combos_and_tags_roll_up() {
        let mut a = record(1, 1_000);
        a.user_path = "/org/team/alice".into();
        a.tags = vec![("env".into(), "prod".into())];
        let mut b = record(2, 2_000);
        b.user_path = "/org/ops".into();
        b.tags = vec![("env".into(), "prod".into()), ("app".into(), "x".into())];
        let batch = [a, b];
        let m = rollup_batch(&batch);
        let tag = |k: &str, v: &str| {
            m.get(&RollupKey::Tag {
                day: 0,
                key: k,
                value: v,
            })
            .map(|c| c.requests)
        };
        assert_eq!(tag("env", "prod"), Some(2));
        assert_eq!(tag("app", "x"), Some(1));
        let combos: u64 = m
            .iter()
            .filter(|(k, _)| matches!(k, RollupKey::Combo { .. }))
            .map(|(_, c)| c.requests)
            .sum();
        assert_eq!(combos, 2);
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(MAX_INTERNED_LEN);
        let c = clip(&s);
        assert!(c.len() <= MAX_INTERNED_LEN);
        assert!(s.starts_with(c));
    }
}
