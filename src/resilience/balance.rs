//! How a virtual model orders its targets: a pure function of the
//! strategy, each member's weight and live numbers, an optional sticky
//! hash and a random source. The first member serves; the rest are the
//! failover order inside the set.

/// How a virtual model spreads its traffic (`strategy:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// At random in proportion to `weight`.
    Weighted,
    /// Each member in turn.
    RoundRobin,
    /// Lowest moving average of time to the response head first; a member
    /// never measured goes first, so every member gets measured.
    LeastLatency,
    /// Fewest requests in flight first.
    LeastBusy,
    /// Cheapest known price (input + output per token) first; unknown last.
    Cost,
}

impl Strategy {
    /// Parses the config value.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "weighted" => Strategy::Weighted,
            "round_robin" => Strategy::RoundRobin,
            "least_latency" => Strategy::LeastLatency,
            "least_busy" => Strategy::LeastBusy,
            "cost" => Strategy::Cost,
            _ => return None,
        })
    }

    /// Whether the strategy reads live per-target numbers (so the attempt
    /// loop must keep them).
    pub fn needs_stats(self) -> bool {
        matches!(self, Strategy::LeastLatency | Strategy::LeastBusy)
    }
}

/// What keeps one caller on one member (`sticky:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// The managed key (or the master key).
    Key,
    /// `X-Switchyard-User-Path`.
    UserPath,
    /// A request header, named lowercase.
    Header(String),
}

impl Sticky {
    /// Parses `key`, `user_path` or `header:<Name>`.
    pub fn parse(s: &str) -> Option<Sticky> {
        match s {
            "key" => Some(Sticky::Key),
            "user_path" => Some(Sticky::UserPath),
            _ => {
                let name = s.strip_prefix("header:")?.trim();
                http::HeaderName::from_bytes(name.as_bytes()).ok()?;
                Some(Sticky::Header(name.to_ascii_lowercase()))
            }
        }
    }
}

/// One member as the strategy sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Member {
    /// Share of traffic; 0 = used only when the others failed.
    pub weight: u32,
    /// Moving average of time to the response head, µs (0 = never measured).
    pub latency_us: u64,
    /// Requests in flight.
    pub busy: u32,
    /// Known price per token (input + output), if any.
    pub cost: Option<f64>,
}

/// The order in which to try `members` (indices). `sticky` is a hash of the
/// caller's sticky value: the same value picks the same first member while
/// the set is unchanged (weighted rendezvous hashing, so removing a member
/// moves only its own callers). `turn` is the round-robin counter.
pub fn order(
    strategy: Strategy,
    members: &[Member],
    sticky: Option<u64>,
    turn: usize,
    rng: &mut fastrand::Rng,
) -> Vec<usize> {
    let n = members.len();
    // Weight-0 members are backups: after every weighted one, in order.
    let (mut live, backups): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| members[i].weight > 0);
    match strategy {
        Strategy::Weighted => {
            let mut out = Vec::with_capacity(n);
            while !live.is_empty() {
                let total: u64 = live.iter().map(|&i| u64::from(members[i].weight)).sum();
                let mut pick = rng.u64(0..total);
                let pos = live
                    .iter()
                    .position(|&i| {
                        let w = u64::from(members[i].weight);
                        if pick < w {
                            true
                        } else {
                            pick -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                out.push(live.remove(pos));
            }
            live = out;
        }
        Strategy::RoundRobin => {
            if !live.is_empty() {
                let k = turn % live.len();
                live.rotate_left(k);
            }
        }
        Strategy::LeastLatency => live.sort_by_key(|&i| members[i].latency_us),
        Strategy::LeastBusy => {
            // Ties (an idle set) rotate, so they do not all pile on the first.
            if !live.is_empty() {
                let k = turn % live.len();
                live.rotate_left(k);
            }
            live.sort_by_key(|&i| members[i].busy);
        }
        Strategy::Cost => live.sort_by(|&a, &b| {
            let key = |i: usize| members[i].cost.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        }),
    }
    if let Some(h) = sticky {
        if let Some(first) = rendezvous(members, &live, h) {
            if let Some(pos) = live.iter().position(|&i| i == first) {
                let i = live.remove(pos);
                live.insert(0, i);
            }
        }
    }
    live.extend(backups);
    live
}

/// The member with the highest weighted score for `h`: score =
/// −w / ln(u), u uniform in (0,1) from a hash of (h, member).
fn rendezvous(members: &[Member], live: &[usize], h: u64) -> Option<usize> {
    live.iter()
        .copied()
        .max_by(|&a, &b| score(members, a, h).total_cmp(&score(members, b, h)))
}

fn score(members: &[Member], i: usize, h: u64) -> f64 {
    let x = mix(h ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // 53 random bits in (0, 1).
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(members[i].weight) / u.ln()
}

/// A 64-bit finaliser (SplitMix64), enough to spread similar inputs.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of a sticky value (FNV-1a, then mixed): the same value
/// maps to the same member in every process of a fleet.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .map(|&weight| Member {
                weight,
                ..Member::default()
            })
            .collect()
    }

    #[test]
    fn weighted_first_picks_follow_the_weights_and_backups_go_last() {
        let m = w(&[3, 1, 0]);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut first = [0u32; 3];
        for _ in 0..40_000 {
            let o = order(Strategy::Weighted, &m, None, 0, &mut rng);
            assert_eq!(o.len(), 3);
            assert_eq!(o[2], 2, "the weight-0 backup is always last");
            first[o[0]] += 1;
        }
        let share = f64::from(first[0]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "share {share}");
    }

    #[test]
    fn round_robin_rotates_and_least_busy_prefers_idle() {
        let m = w(&[1, 1, 1]);
        let mut rng = fastrand::Rng::with_seed(1);
        let firsts: Vec<usize> = (0..6)
            .map(|t| order(Strategy::RoundRobin, &m, None, t, &mut rng)[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        let mut busy = w(&[1, 1, 1]);
        busy[0].busy = 4;
        busy[1].busy = 1;
        busy[2].busy = 2;
        assert_eq!(order(Strategy::LeastBusy, &busy, None, 0, &mut rng), [1, 2, 0]);
    }

    #[test]
    fn latency_measures_the_unmeasured_first_and_cost_puts_unknown_last() {
        let mut m = w(&[1, 1, 1]);
        m[0].latency_us = 900;
        m[1].latency_us = 300;
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(order(Strategy::LeastLatency, &m, None, 0, &mut rng), [2, 1, 0]);
        m[0].cost = Some(2e-6);
        m[2].cost = Some(1e-6);
        assert_eq!(order(Strategy::Cost, &m, None, 0, &mut rng), [2, 0, 1]);
    }

    #[test]
    fn sticky_values_keep_their_member_and_spread_by_weight() {
        let m = w(&[1, 1, 2]);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut counts = [0u32; 3];
        for k in 0..8_000 {
            let h = hash_str(&format!("session-{k}"));
            let a = order(Strategy::RoundRobin, &m, Some(h), k, &mut rng)[0];
            let b = order(Strategy::Weighted, &m, Some(h), k + 1, &mut rng)[0];
            assert_eq!(a, b, "the sticky pick ignores the strategy's own choice");
            counts[a] += 1;
        }
        let share = f64::from(counts[2]) / 8_000.0;
        assert!((share - 0.5).abs() < 0.03, "share {share}");
        // Removing member 0 moves only member 0's sessions.
        let two = [Member { weight: 0, ..m[0] }, m[1], m[2]];
        for k in 0..2_000 {
            let h = hash_str(&format!("session-{k}"));
            let before = order(Strategy::Weighted, &m, Some(h), 0, &mut rng)[0];
            let after = order(Strategy::Weighted, &two, Some(h), 0, &mut rng)[0];
            if before != 0 {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn config_names() {
        assert_eq!(Strategy::parse("least_latency"), Some(Strategy::LeastLatency));
        assert_eq!(Strategy::parse("fastest"), None);
        assert_eq!(
            Sticky::parse("header:X-Session-Id"),
            Some(Sticky::Header("x-session-id".into()))
        );
        assert_eq!(Sticky::parse("header:bad name"), None);
        assert_eq!(Sticky::parse("user_path"), Some(Sticky::UserPath));
    }
}
