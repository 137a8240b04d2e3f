//! Removing credentials from provider text before it leaves the gateway.
//!
//! Providers quote what they were sent (`Incorrect API key provided:
//! Bearer sk-…`). Every error message, stream error event and stored detail
//! that carries provider text goes through a [`Scrubber`] built from the
//! configured secrets, so a key never reaches a caller, a log or the store.

use std::borrow::Cow;

/// What a removed credential is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not scrubbed: replacing every `abc` in a
/// message would mangle it, and a key that short protects nothing anyway.
pub const MIN_SECRET_LEN: usize = 6;

/// Replaces the configured secrets, and any token after an authorization
/// scheme (`Bearer …`, `Basic …`), with [`REDACTED`].
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is removed whole.
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber for these secrets (empty and short ones are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// `text` with every credential replaced; borrowed when there was none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        match scrub_schemes(&out) {
            Some(fixed) => Cow::Owned(fixed),
            None => out,
        }
    }

    /// Scrubs a `String` in place.
    pub fn scrub_in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.scrub(text) {
            *text = s;
        }
    }
}

/// Shows how many secrets, never which: a snapshot's `Debug` must be safe
/// to log.
impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

/// Authorization schemes whose following token is a credential.
const SCHEMES: &[&str] = &["bearer ", "basic "];

/// Lowercase ASCII fragments looked for anywhere in a text, ignoring ASCII
/// case, without copying the text: a position whose byte starts no
/// fragment costs one table read. The credential checks run on every
/// audited header name and value, nearly all of which hold none, so they
/// share this instead of lowercasing a copy or comparing every fragment at
/// every position.
pub struct Fragments {
    parts: &'static [&'static str],
    /// Which bytes (either case) start a fragment.
    first: [bool; 256],
}

impl Fragments {
    /// The search for `parts` (each non-empty, lowercase ASCII: checked
    /// when the constant is built).
    pub const fn new(parts: &'static [&'static str]) -> Fragments {
        let mut first = [false; 256];
        let mut i = 0;
        while i < parts.len() {
            let c = parts[i].as_bytes()[0];
            assert!(c.is_ascii_lowercase(), "fragments start with a lowercase letter");
            first[c as usize] = true;
            first[c.to_ascii_uppercase() as usize] = true;
            i += 1;
        }
        Fragments { parts, first }
    }

    /// Whether any fragment occurs in `text`, ignoring ASCII case.
    pub fn found_in(&self, text: &str) -> bool {
        let b = text.as_bytes();
        (0..b.len()).any(|i| {
            self.first[b[i] as usize]
                && self.parts.iter().any(|p| {
                    let p = p.as_bytes();
                    p[0] == b[i].to_ascii_lowercase()
                        && b.len() - i >= p.len()
                        && b[i..i + p.len()].eq_ignore_ascii_case(p)
                })
        })
    }
}

/// [`SCHEMES`] as a search.
const SCHEME_WORDS: Fragments = Fragments::new(SCHEMES);

/// Whether a scheme word occurs anywhere in `text`, ignoring ASCII case.
fn has_scheme(text: &str) -> bool {
    SCHEME_WORDS.found_in(text)
}

/// Replaces the token after each authorization scheme word; `None` when
/// there is none.
fn scrub_schemes(text: &str) -> Option<String> {
    if !has_scheme(text) {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut changed = false;
    while i < text.len() {
        let rest = &lower[i..];
        let at_word_start = i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric();
        let scheme = SCHEMES.iter().find(|s| at_word_start && rest.starts_with(**s));
        let Some(scheme) = scheme else {
            let c = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + c]);
            i += c;
            continue;
        };
        let token_start = i + scheme.len();
        let token_len = text[token_start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(b))
            .count();
        out.push_str(&text[i..token_start]);
        if token_len > 0 && &text[token_start..token_start + token_len] != REDACTED {
            out.push_str(REDACTED);
            changed = true;
        } else {
            out.push_str(&text[token_start..token_start + token_len]);
        }
        i = token_start + token_len;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_are_replaced_wherever_they_appear() {
        let s = Scrubber::new(["sk-live-123456", "master-key-xyz", "abc"]);
        assert_eq!(
            s.scrub("Incorrect API key provided: sk-live-123456."),
            "Incorrect API key provided: [REDACTED]."
        );
        assert_eq!(
            s.scrub("x=master-key-xyz&y=sk-live-123456"),
            "x=[REDACTED]&y=[REDACTED]"
        );
        // Too short to scrub: left alone.
        assert_eq!(s.scrub("abc"), "abc");
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_containing_another_goes_whole() {
        let s = Scrubber::new(["secret", "secret-longer"]);
        assert_eq!(s.scrub("got secret-longer"), "got [REDACTED]");
    }

    #[test]
    fn tokens_after_an_auth_scheme_are_replaced_even_when_unknown() {
        let s = Scrubber::default();
        assert_eq!(
            s.scrub("Incorrect API key provided: Bearer sk-unknown_9.9/x=, check it"),
            "Incorrect API key provided: Bearer [REDACTED], check it"
        );
        assert_eq!(s.scrub("BEARER abc"), "BEARER [REDACTED]");
        assert_eq!(
            s.scrub("Authorization: Basic dXNlcjpw"),
            "Authorization: Basic [REDACTED]"
        );
        // Words merely ending in the scheme are not schemes.
        assert_eq!(s.scrub("cucumber token"), "cucumber token");
        assert_eq!(s.scrub("ünïcode Bearer tok ünï"), "ünïcode Bearer [REDACTED] ünï");
        assert!(matches!(s.scrub("Bearer "), Cow::Borrowed(_)));
    }

    #[test]
    fn a_scheme_is_seen_in_any_case_anywhere_and_nothing_else_is() {
        for t in ["bearer x", "x BeArEr y", "BASIC q", "a basic b", "Bearer ", "é basic "] {
            assert!(has_scheme(t), "{t}");
        }
        for t in ["", "b", "bearer", "basic", "bearerx", "xbasi c", "BEARE R", "ünïcode"] {
            assert!(!has_scheme(t), "{t}");
        }
        for s in SCHEMES {
            assert!(
                s.as_bytes()[0].is_ascii_lowercase(),
                "{s}: schemes start with a lowercase letter"
            );
        }
    }
}
