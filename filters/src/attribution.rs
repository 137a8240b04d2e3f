//! Attribution headers: who a request is for, so usage rolls up per team.
//!
//! `X-Switchyard-User-Path: /org/team/user` is hierarchical; usage counts for
//! every ancestor. `X-Switchyard-Tags: k=v,k=v` adds flat dimensions. Bad
//! values are rejected with a message naming the header, never dropped
//! silently (a silently dropped attribution is a wrong invoice).

use std::fmt;

/// Most path segments accepted.
pub const MAX_PATH_DEPTH: usize = 8;
/// Longest path segment accepted.
pub const MAX_SEGMENT_LEN: usize = 64;
/// Most tags accepted.
pub const MAX_TAGS: usize = 10;
/// Longest tag key or value accepted.
pub const MAX_TAG_LEN: usize = 64;

/// Why an attribution header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributionError {
    /// The user path is malformed.
    UserPath(String),
    /// The tags header is malformed.
    Tags(String),
}

impl AttributionError {
    /// The header at fault.
    pub fn header(&self) -> &'static str {
        match self {
            AttributionError::UserPath(_) => "x-switchyard-user-path",
            AttributionError::Tags(_) => "x-switchyard-tags",
        }
    }
}

impl fmt::Display for AttributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributionError::UserPath(m) => write!(f, "invalid X-Switchyard-User-Path: {m}"),
            AttributionError::Tags(m) => write!(f, "invalid X-Switchyard-Tags: {m}"),
        }
    }
}

fn valid_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')
}

/// Validates and normalises a user path: leading `/`, no trailing `/`, 1 to
/// [`MAX_PATH_DEPTH`] segments of `[A-Za-z0-9._@-]`, each at most
/// [`MAX_SEGMENT_LEN`] characters, none of them `.` or `..`.
pub fn parse_user_path(raw: &str) -> Result<String, AttributionError> {
    let err = |m: String| Err(AttributionError::UserPath(m));
    let s = raw.trim();
    let Some(rest) = s.strip_prefix('/') else {
        return err(format!("`{}` must start with `/` (e.g. /org/team/user)", shorten(s)));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return err("needs at least one segment (e.g. /org)".into());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > MAX_PATH_DEPTH {
        return err(format!("at most {MAX_PATH_DEPTH} segments"));
    }
    for seg in &segments {
        if seg.is_empty() {
            return err("empty segment (`//`)".into());
        }
        if *seg == "." || *seg == ".." {
            // A path that climbs would roll usage up under someone else.
            return err(format!("segment `{seg}` is not allowed"));
        }
        if seg.len() > MAX_SEGMENT_LEN {
            return err(format!("segment longer than {MAX_SEGMENT_LEN} characters"));
        }
        if !seg.chars().all(valid_segment_char) {
            return err(format!(
                "segment `{}` may only contain letters, digits and - _ . @",
                shorten(seg)
            ));
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Every ancestor of a normalised path, shortest first, itself included:
/// `/a/b/c` → `/a`, `/a/b`, `/a/b/c`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
        .filter(|p| !p.is_empty() && *p != "/")
}

/// Parses `k=v,k=v`: keys and values of `[A-Za-z0-9._:@/-]`, at most
/// [`MAX_TAGS`] pairs, no duplicate keys. Whitespace around items is ignored.
pub fn parse_tags(raw: &str) -> Result<Vec<(String, String)>, AttributionError> {
    let err = |m: String| Err(AttributionError::Tags(m));
    let mut out: Vec<(String, String)> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return err(format!("`{}` is not key=value", shorten(item)));
        };
        let (k, v) = (k.trim(), v.trim());
        for (what, x) in [("key", k), ("value", v)] {
            if x.is_empty() || x.len() > MAX_TAG_LEN {
                return err(format!(
                    "{what} in `{}` must be 1 to {MAX_TAG_LEN} characters",
                    shorten(item)
                ));
            }
            if !x.chars().all(|c| valid_segment_char(c) || c == ':' || c == '/') {
                return err(format!(
                    "{what} `{}` may only contain letters, digits and - _ . @ : /",
                    shorten(x)
                ));
            }
        }
        if out.iter().any(|(ek, _)| ek == k) {
            return err(format!("duplicate key `{}`", shorten(k)));
        }
        if out.len() == MAX_TAGS {
            return err(format!("at most {MAX_TAGS} tags"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused() {
        for p in ["/..", "/../etc", "/a/./b", "/a/..", "/."] {
            assert!(parse_user_path(p).is_err(), "{p}");
        }
        assert_eq!(parse_user_path("/a.b/..c").as_deref(), Ok("/a.b/..c"));
    }

    #[test]
    fn user_paths() {
        assert_eq!(parse_user_path("/acme/ml/alice").as_deref(), Ok("/acme/ml/alice"));
        assert_eq!(parse_user_path(" /acme/ ").as_deref(), Ok("/acme"));
        for bad in ["acme", "/", "//a", "/a//b", "/a b", "/a/é", "/1/2/3/4/5/6/7/8/9"] {
            assert!(parse_user_path(bad).is_err(), "{bad}");
        }
        assert!(parse_user_path(&format!("/{}", "x".repeat(65))).is_err());
        let e = parse_user_path("nope").expect_err("invalid");
        assert_eq!(e.header(), "x-switchyard-user-path");
        assert!(e.to_string().contains("must start with `/`"));
    }

    #[test]
    fn ancestors_of_a_path() {
        let a: Vec<&str> = ancestors("/a/b/c").collect();
        assert_eq!(a, ["/a", "/a/b", "/a/b/c"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), ["/a"]);
    }

    #[test]
    fn tags() {
        assert_eq!(
            parse_tags("env=prod, feature=chat").expect("valid"),
            [
                ("env".to_string(), "prod".to_string()),
                ("feature".into(), "chat".into())
            ]
        );
        assert_eq!(parse_tags("").expect("empty ok"), []);
        for bad in ["env", "env=", "=x", "a=1,a=2", "k=v w", &"k=v,".repeat(11)] {
            assert!(parse_tags(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tags(&many.join(",")).is_err());
    }
}
