//! Crash consistency: a clean-shutdown marker, and at a start after an
//! unclean stop (kill, crash, full disk) a check that the roll-ups agree
//! with the usage log they summarise, repaired from the log if not.
//!
//! Every batch is atomic and flushed before it is visible, so log and
//! roll-ups can only disagree if the engine lost the tail of its log (a
//! write that failed after an earlier one reached disk). The log is the
//! truth: it holds each record; a roll-up row is a sum.

use super::{be, rollup_key, Pending, SledStore};
use crate::store::encode::{decode_block, decode_counters, encode_counters, RecView};
use crate::store::query::{day_of, DAY_MS};
use crate::store::rollup::rollup_batch;
use crate::store::{Counters, StoreError};
use std::collections::HashMap;

/// `m` key: `1` after a clean shutdown, `0` while the store is in use.
const META_CLEAN: &[u8] = b"mclean";

/// What a start-up check found.
#[derive(Debug, Default, PartialEq)]
pub struct Repair {
    /// Usage records read from the log.
    pub records: u64,
    /// Roll-up rows rewritten, added or removed to match the log.
    pub rows_fixed: u64,
}

/// Equal up to float summation order (`cost_usd` is summed per batch).
fn same(a: &Counters, b: &Counters) -> bool {
    let mut x = *a;
    x.cost_usd = b.cost_usd;
    x == *b && (a.cost_usd - b.cost_usd).abs() <= 1e-9 * a.cost_usd.abs().max(1.0)
}

impl SledStore {
    /// Sets the clean-shutdown marker (after the last write) or clears it
    /// (at open, before the first).
    pub(super) fn mark_clean(&self, clean: bool) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(META_CLEAN, if clean { b"1" } else { b"0" });
        self.apply(batch)
    }

    /// Run once after open: if the last stop was not clean, recomputes the
    /// roll-ups of every day the log fully covers and rewrites those that
    /// disagree. Days up to the usage retention boundary (`usage_days`, 0 =
    /// keep forever) keep their rows: retention has already trimmed their
    /// log. Then clears the marker until the next clean shutdown.
    pub fn recover(&self, now_ms: u64, usage_days: u32) -> Result<Option<Repair>, StoreError> {
        let clean = self.db.get(META_CLEAN).map_err(be)?.is_some_and(|v| &*v == b"1");
        let empty = self.db.scan_prefix(b"u").next().is_none() && self.db.scan_prefix(b"r").next().is_none();
        let report = if clean || empty {
            None
        } else {
            let first_day = if usage_days == 0 {
                0
            } else {
                day_of(now_ms.saturating_sub(u64::from(usage_days) * DAY_MS)) + 1
            };
            Some(self.repair_rollups(first_day)?)
        };
        self.mark_clean(false)?;
        Ok(report)
    }

    fn repair_rollups(&self, first_day: u32) -> Result<Repair, StoreError> {
        let _w = super::lock(&self.write_lock);
        let dict = self.dict();
        let mut pend = Pending::new(&dict);
        let mut report = Repair::default();
        // What the log says, summed per roll-up key, one block at a time.
        let mut want: HashMap<Vec<u8>, Counters> = HashMap::new();
        for kv in self.db.scan_prefix(b"u") {
            let (_, stored) = kv.map_err(be)?;
            let Some(v) = self.resolve(&self.usage, &stored)? else {
                continue;
            };
            let records: Vec<_> = {
                let (_, views) = decode_block(&v, &*dict)?;
                views
                    .iter()
                    .filter(|r| day_of(r.ts_ms) >= first_day)
                    .map(RecView::to_record)
                    .collect()
            };
            report.records += records.len() as u64;
            for (key, c) in rollup_batch(&records) {
                want.entry(rollup_key(&key, &mut pend)?).or_default().merge(&c);
            }
        }
        // What the roll-ups say, for the same days.
        let mut batch = sled::Batch::default();
        for prefix in [b'r', b't'] {
            let mut lo = vec![prefix];
            lo.extend_from_slice(&first_day.to_be_bytes());
            for kv in self.db.range(lo..vec![prefix + 1]) {
                let (k, v) = kv.map_err(be)?;
                match want.remove(&*k) {
                    Some(c) if same(&c, &decode_counters(&v)?) => {}
                    Some(c) => {
                        batch.insert(k, encode_counters(&c));
                        report.rows_fixed += 1;
                    }
                    None => {
                        batch.remove(k);
                        report.rows_fixed += 1;
                    }
                }
            }
        }
        for (k, c) in want {
            batch.insert(k, encode_counters(&c));
            report.rows_fixed += 1;
        }
        for (i, s) in pend.new.iter().enumerate() {
            let id = (dict.by_id.len() + i) as u32;
            batch.insert(super::prefixed(b'd', &id.to_be_bytes()), s.as_bytes());
        }
        let new = std::mem::take(&mut pend.new);
        drop(pend);
        drop(dict);
        if report.rows_fixed > 0 {
            self.apply(batch)?;
            self.commit_dict(new);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{open, reopen, T0};
    use crate::store::query::{GroupBy, RollupQuery};
    use crate::store::{synth, LogFilter, Store};

    fn totals(s: &super::SledStore) -> (u64, u64) {
        let q = RollupQuery {
            from_day: 0,
            to_day: u32::MAX,
            group_by: GroupBy::Total,
            per_day: false,
        };
        let rolled = s
            .usage_rollup(&q)
            .expect("rollup")
            .iter()
            .map(|r| r.counters.requests)
            .sum();
        let logged = s.usage_log(&LogFilter::default(), None, 1000).expect("log").items.len() as u64;
        (rolled, logged)
    }

    #[test]
    fn a_clean_stop_skips_the_check_and_an_unclean_one_finds_agreement() {
        let (dir, s) = open();
        assert_eq!(
            s.recover(T0, 0).expect("recover"),
            None,
            "an empty store needs no check"
        );
        s.write_batch(&synth::records(300, T0, 3_600_000), &[]).expect("write");
        drop(s); // no close: an unclean stop
        let s = reopen(dir.path());
        let r = s
            .recover(T0, 0)
            .expect("recover")
            .expect("checked after an unclean stop");
        assert_eq!((r.records, r.rows_fixed), (300, 0));
        s.close().expect("close");
        drop(s);
        let s = reopen(dir.path());
        assert_eq!(s.recover(T0, 0).expect("recover"), None, "a clean stop is trusted");
    }

    #[test]
    fn roll_ups_that_outlived_their_log_blocks_are_rebuilt_from_the_log() {
        let (dir, s) = open();
        let recs = synth::records(600, T0, 2 * 86_400_000);
        for c in recs.chunks(100) {
            s.write_batch(c, &[]).expect("write");
        }
        // The engine lost a block of the log, as after a failed write.
        let lost = s.db.scan_prefix(b"u").next().expect("a block").expect("kv").0;
        s.db.remove(lost).expect("remove");
        let (rolled, logged) = totals(&s);
        assert!(rolled > logged, "{rolled} rolled up, {logged} logged");
        drop(s);
        let s = reopen(dir.path());
        let r = s.recover(T0, 0).expect("recover").expect("checked");
        assert!(r.rows_fixed > 0);
        assert_eq!(r.records, logged);
        assert_eq!(totals(&s), (logged, logged));
    }
}
