//! Query-string parsing for the admin API: every endpoint declares the
//! parameters it knows, and anything unknown, repeated or malformed is a 400
//! naming the parameter (a typo like `group-by` must not silently return
//! ungrouped data). Also the UTC calendar helpers the API speaks in.

use super::AdminError;
use crate::store::query::{day_of, DAY_MS};
use crate::store::{Cursor, GroupBy, StatusFilter};
use base64::Engine;

/// Largest page size of the logs.
pub const MAX_LIMIT: usize = 1000;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;

/// Parsed, validated query parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

fn bad(param: &str, message: impl Into<String>) -> AdminError {
    AdminError::BadParam {
        param: param.to_string(),
        message: message.into(),
    }
}

impl Params {
    /// Parses `query`, accepting only the `allowed` names, each at most once.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, AdminError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                let known = if allowed.is_empty() {
                    "this endpoint takes no parameters".to_string()
                } else {
                    format!("known parameters: {}", allowed.join(", "))
                };
                return Err(bad(&k, format!("unknown parameter `{k}` ({known})")));
            }
            if pairs.iter().any(|(x, _)| *x == k) {
                return Err(bad(&k, format!("parameter `{k}` given more than once")));
            }
            if v.is_empty() {
                return Err(bad(&k, format!("parameter `{k}` must not be empty")));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params { pairs })
    }

    /// The raw value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A time bound: Unix ms, `YYYY-MM-DD` (start of the day, or its last
    /// millisecond when `end_of_day`), or RFC 3339.
    pub fn time(&self, name: &str, end_of_day: bool) -> Result<Option<u64>, AdminError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        parse_time(v, end_of_day).map(Some).ok_or_else(|| {
            bad(
                name,
                format!(
                    "`{name}` must be Unix milliseconds, YYYY-MM-DD or RFC 3339 (2025-01-31T12:00:00Z), got `{}`",
                    shorten(v)
                ),
            )
        })
    }

    /// `from`/`to` as an inclusive ms range (either may be open); `from`
    /// after `to` is an error naming `from`.
    pub fn time_range(&self) -> Result<(Option<u64>, Option<u64>), AdminError> {
        let from = self.time("from", false)?;
        let to = self.time("to", true)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(bad("from", "`from` is after `to`"));
            }
        }
        Ok((from, to))
    }

    /// `from`/`to` as whole UTC days (roll-ups are daily); defaults to the
    /// 30 days ending today.
    pub fn day_range(&self, now_ms: u64) -> Result<(u32, u32), AdminError> {
        let (from, to) = self.time_range()?;
        let to_day = day_of(to.unwrap_or(now_ms));
        let from_day = match from {
            Some(f) => day_of(f),
            None => to_day.saturating_sub(29),
        };
        if from_day > to_day {
            return Err(bad("from", "`from` is after `to`"));
        }
        if to_day - from_day > 3660 {
            return Err(bad("from", "the range may span at most 10 years"));
        }
        Ok((from_day, to_day))
    }

    /// `limit`: 1..=1000, default 100.
    pub fn limit(&self) -> Result<usize, AdminError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| bad("limit", format!("`limit` must be an integer from 1 to {MAX_LIMIT}"))),
        }
    }

    /// `cursor` as returned in `next_cursor`.
    pub fn cursor(&self) -> Result<Option<Cursor>, AdminError> {
        self.get("cursor")
            .map(|c| decode_cursor(c).ok_or_else(|| bad("cursor", "`cursor` is not a value returned as `next_cursor`")))
            .transpose()
    }

    /// `status`: a code (`429`) or a class (`4xx`).
    pub fn status(&self) -> Result<Option<StatusFilter>, AdminError> {
        let Some(v) = self.get("status") else {
            return Ok(None);
        };
        let err = || bad("status", "`status` must be an HTTP status (429) or a class (4xx)");
        let lower = v.to_ascii_lowercase();
        if let Some(c) = lower.strip_suffix("xx") {
            let c: u16 = c.parse().map_err(|_| err())?;
            return if (1..=5).contains(&c) {
                Ok(Some(StatusFilter::Class(c)))
            } else {
                Err(err())
            };
        }
        let s: u16 = v.parse().map_err(|_| err())?;
        if (100..=599).contains(&s) {
            Ok(Some(StatusFilter::Exact(s)))
        } else {
            Err(err())
        }
    }

    /// `group_by`: model, provider, user_path, tag or key (default: none).
    pub fn group_by(&self) -> Result<GroupBy, AdminError> {
        match self.get("group_by") {
            None => Ok(GroupBy::Total),
            Some("model") => Ok(GroupBy::Model),
            Some("provider") => Ok(GroupBy::Provider),
            Some("user_path") => Ok(GroupBy::UserPath),
            Some("tag") => Ok(GroupBy::Tag),
            Some("key") => Ok(GroupBy::Key),
            Some(v) => Err(bad(
                "group_by",
                format!(
                    "`group_by` must be one of model, provider, user_path, tag, key; got `{}`",
                    shorten(v)
                ),
            )),
        }
    }

    /// A positive integer parameter with a bound.
    pub fn bounded(&self, name: &str, default: usize, max: usize) -> Result<usize, AdminError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| bad(name, format!("`{name}` must be an integer from 1 to {max}"))),
        }
    }
}

/// Cuts a value for an error message.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(64).collect();
        t.push('…');
        t
    }
}

// ------------------------------------------------------------- calendar

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn fmt_day(day: u32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 (UTC, milliseconds) of a Unix-ms timestamp.
pub fn fmt_time(ms: u64) -> String {
    let day = ms / DAY_MS;
    let (y, m, d) = civil_from_days(day as i64);
    let r = ms % DAY_MS;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        r / 3_600_000,
        r / 60_000 % 60,
        r / 1000 % 60,
        r % 1000
    )
}

fn num(s: &str, len: usize) -> Option<u32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_date(s: &str) -> Option<i64> {
    let y = num(s.get(0..4)?, 4)?;
    let m = num(s.get(5..7)?, 2)?;
    let d = num(s.get(8..10)?, 2)?;
    if s.len() != 10 || &s[4..5] != "-" || &s[7..8] != "-" {
        return None;
    }
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) {
        return None;
    }
    Some(days_from_civil(i64::from(y), m, d))
}

/// Parses Unix ms, `YYYY-MM-DD` or RFC 3339 into Unix ms.
pub fn parse_time(s: &str, end_of_day: bool) -> Option<u64> {
    if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let day = parse_date(s.get(..10)?)?;
    let rest = &s[10..];
    if rest.is_empty() {
        let start = u64::try_from(day).ok()? * DAY_MS;
        return Some(if end_of_day { start + DAY_MS - 1 } else { start });
    }
    // THH:MM:SS[.frac](Z|±HH:MM)
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let h = num(rest.get(0..2)?, 2)?;
    let mi = num(rest.get(3..5)?, 2)?;
    let se = num(rest.get(6..8)?, 2)?;
    if &rest[2..3] != ":" || &rest[5..6] != ":" || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut tail = &rest[8..];
    let mut frac_ms = 0u64;
    if let Some(f) = tail.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms3: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms3.parse().ok()?;
        tail = &f[digits..];
    }
    let offset_s: i64 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.get(..1)? {
                // A `+` left unencoded in a query string arrives as a space.
                "+" | " " => 1,
                "-" => -1,
                _ => return None,
            };
            let oh = num(tail.get(1..3)?, 2)?;
            let om = num(tail.get(4..6)?, 2)?;
            if tail.len() != 6 || &tail[3..4] != ":" || oh > 23 || om > 59 {
                return None;
            }
            sign * i64::from(oh * 3600 + om * 60)
        }
    };
    let secs = day * 86_400 + i64::from(h * 3600 + mi * 60 + se.min(59)) - offset_s;
    u64::try_from(secs).ok().map(|s| s * 1000 + frac_ms)
}

// --------------------------------------------------------------- cursors

/// The opaque `next_cursor` string of a log position.
pub fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", c.ts_ms, c.request_id))
}

/// Reads a cursor produced by [`encode_cursor`].
pub fn decode_cursor(s: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (ts, id) = raw.split_once(':')?;
    Some(Cursor {
        ts_ms: ts.parse().ok()?,
        request_id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        assert_eq!(parse_time("1735689600000", false), Some(1_735_689_600_000));
        assert_eq!(parse_time("2025-01-01", false), Some(1_735_689_600_000));
        assert_eq!(parse_time("2025-01-01", true), Some(1_735_689_600_000 + DAY_MS - 1));
        assert_eq!(
            parse_time("2025-01-01T01:02:03Z", false),
            Some(1_735_689_600_000 + 3_723_000)
        );
        assert_eq!(
            parse_time("2025-01-01T01:02:03.5+01:00", false),
            Some(1_735_689_600_000 + 123_500)
        );
        assert_eq!(
            parse_time("2025-01-01T01:02:03.5 01:00", false),
            Some(1_735_689_600_000 + 123_500)
        );
        for badv in [
            "2025-13-01",
            "2025-02-30",
            "2025-1-01",
            "yesterday",
            "2025-01-01T25:00:00Z",
            "2025-01-01T01:02:03",
            "2025-01-01T01:02:03.Z",
            "1969-12-31T00:00:00Z",
        ] {
            assert_eq!(parse_time(badv, false), None, "{badv}");
        }
        assert_eq!(parse_time("2024-02-29", false).map(day_of), Some(19_782));
    }

    #[test]
    fn calendar_round_trips() {
        for day in [0u32, 59, 60, 365, 10_956, 19_782, 20_089, 30_000] {
            let s = fmt_day(day);
            assert_eq!(parse_time(&s, false).map(day_of), Some(day), "{s}");
        }
        assert_eq!(fmt_time(1_735_689_600_000 + 3_723_004), "2025-01-01T01:02:03.004Z");
    }

    #[test]
    fn unknown_duplicate_and_bad_params_name_the_param() {
        let name = |r: Result<Params, AdminError>| match r {
            Err(AdminError::BadParam { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(name(Params::parse(Some("group-by=model"), &["group_by"])), "group-by");
        assert_eq!(name(Params::parse(Some("limit=1&limit=2"), &["limit"])), "limit");
        assert_eq!(name(Params::parse(Some("limit="), &["limit"])), "limit");
        let p = Params::parse(Some("limit=0&status=6xx&cursor=%21"), &["limit", "status", "cursor"]).expect("parse");
        assert!(matches!(p.limit(), Err(AdminError::BadParam { param, .. }) if param == "limit"));
        assert!(matches!(p.status(), Err(AdminError::BadParam { param, .. }) if param == "status"));
        assert!(matches!(p.cursor(), Err(AdminError::BadParam { param, .. }) if param == "cursor"));
        let p = Params::parse(Some("from=2025-02-01&to=2025-01-01"), &["from", "to"]).expect("p");
        assert!(matches!(p.time_range(), Err(AdminError::BadParam { param, .. }) if param == "from"));
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            ts_ms: 42,
            request_id: "a:b".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("###"), None);
    }
}
