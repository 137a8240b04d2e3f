//! Same-dialect fast path: an OpenAI-compatible caller talking to an
//! OpenAI-compatible provider.
//!
//! Requests are often megabytes (base64 images, long histories) while the
//! gateway only has to change one or two top-level fields, so nothing here
//! turns a body into a `serde_json::Value` tree:
//!
//! * [`JsonObject`] validates a whole body in one pass and keeps each top-level
//!   value as a borrowed raw slice; re-encoding is concatenation.
//! * [`inspect_chat`] / [`inspect_embeddings`] read only the fields the gateway
//!   decides on; [`rewrite_chat`] changes `model` and `stream_options`.
//! * [`fix_embeddings_encoding`] repairs servers that ignore `encoding_format`.
//! * [`checked_response_usage`] checks a non-streamed response's shape and
//!   reads its `usage` while skipping everything else.
//!
//! Streams are relayed by [`crate::stream::StreamProcessor`].

mod chat;
mod embeddings;
mod usage;

pub use chat::{inspect_chat, rewrite_chat, ChatHead};
pub use embeddings::{fix_embeddings_encoding, inspect_embeddings, EmbeddingEncoding, EmbeddingsHead};
pub(crate) use usage::usage_from_raw;
pub use usage::{checked_response_usage, response_usage, ResponseKind};

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a body was rejected; the gateway turns it into a 400 (requests) or a
/// 502 (provider responses), with [`BodyError::param`] as OpenAI's `param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The bytes are not one well-formed JSON document (serde_json's message,
    /// which carries line and column).
    MalformedJson(String),
    /// Well-formed JSON, but not an object at the top level.
    NotAnObject,
    /// A required field is absent (or `null`).
    MissingField(&'static str),
    /// A field is present but has the wrong type or value.
    InvalidField {
        /// The offending field, dotted for nested ones.
        field: &'static str,
        /// What it must be, phrased to follow "must be".
        expected: &'static str,
    },
}

impl BodyError {
    /// The request field this error is about, for OpenAI's `error.param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            BodyError::MalformedJson(_) | BodyError::NotAnObject => None,
            BodyError::MissingField(field) | BodyError::InvalidField { field, .. } => Some(field),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::MalformedJson(e) => write!(f, "body is not valid JSON: {e}"),
            BodyError::NotAnObject => f.write_str("body must be a JSON object"),
            BodyError::MissingField(field) => write!(f, "missing required parameter `{field}`"),
            BodyError::InvalidField { field, expected } => {
                write!(f, "`{field}` must be {expected}")
            }
        }
    }
}

impl std::error::Error for BodyError {}

/// Maps a failure to encode JSON we built ourselves. Serialising strings and
/// numbers into memory cannot fail in practice; this keeps the code free of
/// panics should serde_json ever say otherwise.
fn encode_error(e: impl fmt::Display) -> BodyError {
    BodyError::MalformedJson(format!("internal encoding error: {e}"))
}

// ---------------------------------------------------------------------------
// JsonObject
// ---------------------------------------------------------------------------

type Entry<'a> = (Cow<'a, str>, Cow<'a, RawValue>);

/// A top-level JSON object kept as an ordered list of keys and raw values.
///
/// Parsing validates the whole document (syntax and UTF-8) but builds no tree:
/// each value is a slice of the input, so a 10 MiB base64 image costs one scan
/// and one copy when the object is written back. Key order is preserved. With
/// duplicate keys the last value wins (as in serde_json) and the key keeps its
/// first position; only one copy is written, so the provider sees exactly the
/// value the gateway validated.
#[derive(Debug, Clone, Default)]
pub struct JsonObject<'a> {
    entries: Vec<Entry<'a>>,
}

impl<'a> JsonObject<'a> {
    /// Parses `body`, which must be one JSON object (surrounding whitespace
    /// allowed).
    pub fn parse(body: &'a [u8]) -> Result<Self, BodyError> {
        if skip_ws(body).first() != Some(&b'{') {
            // Tell "valid JSON of the wrong kind" from "not JSON at all".
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => BodyError::NotAnObject,
                Err(e) => BodyError::MalformedJson(e.to_string()),
            });
        }
        let Entries(mut entries) = serde_json::from_slice(body).map_err(|e| BodyError::MalformedJson(e.to_string()))?;
        dedupe(&mut entries);
        Ok(JsonObject { entries })
    }

    /// Parses a nested value (for example `stream_options`) as an object.
    pub fn parse_raw(raw: &'a RawValue) -> Result<Self, BodyError> {
        Self::parse(raw.get().as_bytes())
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Sets `key` to `value`: replaced in place when present (order kept),
    /// appended otherwise. `Box<RawValue>` guarantees the value is valid JSON
    /// (build one with `serde_json::value::to_raw_value` or `RawValue::from_string`).
    pub fn set_raw(&mut self, key: &str, value: Box<RawValue>) {
        match self.entries.iter_mut().find(|(k, _)| k.as_ref() == key) {
            Some((_, v)) => *v = Cow::Owned(value),
            None => self.entries.push((Cow::Owned(key.to_owned()), Cow::Owned(value))),
        }
    }

    /// Removes `key`, returning its value; the other keys keep their order.
    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, RawValue>> {
        let i = self.entries.iter().position(|(k, _)| k.as_ref() == key)?;
        Some(self.entries.remove(i).1)
    }

    /// The keys and raw values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Number of (distinct) keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the compact encoding `{"k":v,...}` to `out`: keys re-escaped,
    /// values copied verbatim (their inner whitespace kept).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_replacing(out, None);
    }

    /// The compact encoding as a new buffer, allocated once at its final size.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.write_to(&mut out);
        out
    }

    /// Writes the object with the value of one key replaced by `bytes` (which
    /// the caller guarantees to be valid JSON); used to splice large rebuilt
    /// values without validating them twice.
    fn write_replacing(&self, out: &mut Vec<u8>, replace: Option<(&str, &[u8])>) {
        out.reserve(self.encoded_len_hint());
        out.push(b'{');
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match k {
                // A borrowed key had no escapes in the input, and JSON strings
                // cannot hold raw control characters, so it needs none now.
                Cow::Borrowed(k) => {
                    out.push(b'"');
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'"');
                }
                Cow::Owned(k) => write_json_str(out, k),
            }
            out.push(b':');
            match replace {
                Some((rk, bytes)) if rk == k.as_ref() => out.extend_from_slice(bytes),
                _ => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        out.push(b'}');
    }

    fn encoded_len_hint(&self) -> usize {
        2 + self
            .entries
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
    }
}

/// The entry list as deserialised, before duplicate removal.
struct Entries<'a>(Vec<Entry<'a>>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(k)) = map.next_key()? {
                    let v: &'de RawValue = map.next_value()?;
                    entries.push((k, Cow::Borrowed(v)));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the input when it had no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Keeps one entry per key: the last value, at the first key's position.
/// Linear scan for typical objects, a hash map for big (possibly hostile) ones
/// so a body with 100k keys stays O(n).
fn dedupe(entries: &mut Vec<Entry<'_>>) {
    const LINEAR_MAX: usize = 32;
    let n = entries.len();
    if n < 2 {
        return;
    }
    // (later index, index of the first occurrence)
    let mut dups: Vec<(usize, usize)> = Vec::new();
    if n <= LINEAR_MAX {
        for j in 1..n {
            if let Some(i) = (0..j).find(|&i| entries[i].0 == entries[j].0) {
                dups.push((j, i));
            }
        }
    } else {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (j, (k, _)) in entries.iter().enumerate() {
            match first.entry(k.as_ref()) {
                std::collections::hash_map::Entry::Occupied(e) => dups.push((j, *e.get())),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(j);
                }
            }
        }
    }
    if dups.is_empty() {
        return;
    }
    let mut drop = vec![false; n];
    for &(j, i) in &dups {
        let v = std::mem::replace(&mut entries[j].1, Cow::Borrowed(RawValue::NULL));
        entries[i].1 = v;
        drop[j] = true;
    }
    let mut idx = 0;
    entries.retain(|_| {
        let keep = !drop[idx];
        idx += 1;
        keep
    });
}

/// Appends `s` as a JSON string literal, escaped exactly as serde_json does
/// (tested against it), without a fallible writer.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(b.len());
    &b[n..]
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

// ---------------------------------------------------------------------------
// Lenient value inspection
// ---------------------------------------------------------------------------

/// Generates `Visitor` methods for the JSON kinds a lenient visitor does not
/// care about: each consumes the value and yields `$default`, so a wrong type
/// deep inside a body is a value to report, never a parse failure.
macro_rules! accept_kinds {
    ($default:expr; $($kind:ident)*) => { $( accept_kinds!(@one $default; $kind); )* };
    (@one $d:expr; unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($d) }
    };
    (@one $d:expr; seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($d)
        }
    };
    (@one $d:expr; map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($d)
        }
    };
}
use accept_kinds;

/// What kind of number a JSON value is, found without keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// A non-negative integer (a token id).
    Unsigned,
    /// Any other number.
    Other,
    /// Not a number at all.
    NotANumber,
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_kinds!(Num::NotANumber; unit bool str seq map);
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(if v >= 0 { Num::Unsigned } else { Num::Other })
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Num, E> {
                Ok(Num::Unsigned)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Num, E> {
                Ok(Num::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a raw value's string, or `None` when it is not a string.
fn raw_string(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

fn required_string(obj: &JsonObject<'_>, field: &'static str) -> Result<String, BodyError> {
    let raw = match obj.get(field) {
        Some(raw) if !is_null(raw) => raw,
        _ => return Err(BodyError::MissingField(field)),
    };
    match raw_string(raw) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(BodyError::InvalidField {
            field,
            expected: "a non-empty string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    pub(super) fn obj(s: &str) -> JsonObject<'_> {
        JsonObject::parse(s.as_bytes()).unwrap()
    }

    pub(super) fn as_value(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn keys(o: &JsonObject<'_>) -> Vec<String> {
        o.iter().map(|(k, _)| k.to_string()).collect()
    }

    // ----- JsonObject -----

    #[test]
    fn parse_keeps_order_and_raw_values() {
        let body = r#" { "b" : [1, 2] , "a":{"x" : "y"}, "c":"é😀" } "#;
        let o = obj(body);
        assert_eq!(keys(&o), ["b", "a", "c"]);
        assert_eq!(o.get("b").unwrap().get(), "[1, 2]");
        assert_eq!(o.get("a").unwrap().get(), r#"{"x" : "y"}"#);
        assert_eq!(o.get("c").unwrap().get(), "\"é😀\"");
        assert!(o.get("z").is_none());
        assert_eq!(o.to_vec(), r#"{"b":[1, 2],"a":{"x" : "y"},"c":"é😀"}"#.as_bytes());
    }

    #[test]
    fn malformed_and_non_objects_are_told_apart() {
        for bad in ["", "   ", "{", r#"{"a":}"#, r#"{"a":1} x"#, r#"{"a":1,}"#, "[1", "nul"] {
            match JsonObject::parse(bad.as_bytes()) {
                Err(BodyError::MalformedJson(msg)) => assert!(!msg.is_empty(), "{bad}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        for not_obj in ["[1]", "\"x\"", "null", " 3 ", "true"] {
            assert_eq!(
                JsonObject::parse(not_obj.as_bytes()).unwrap_err(),
                BodyError::NotAnObject,
                "{not_obj}"
            );
        }
        // Invalid UTF-8 inside a string is malformed too.
        assert!(matches!(
            JsonObject::parse(b"{\"a\":\"\xff\"}"),
            Err(BodyError::MalformedJson(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_or_ok_never_a_crash() {
        let deep = format!(
            r#"{{"model":"e","input":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Raw values are skipped iteratively: fine.
        let o = obj(&deep);
        // Typed inspection hits serde_json's depth limit: a clean error.
        assert_eq!(inspect_embeddings(&o).unwrap_err().param(), Some("input"));
        assert_eq!(response_usage(deep.as_bytes()), None);
        // A stream event nested that deep is relayed or refused, never a crash.
        use crate::stream::{StreamProcessor, StreamSpec};
        let mut p = StreamProcessor::new(StreamSpec::new(
            crate::ir::WireDialect::OpenAi,
            crate::error::Dialect::OpenAi,
            "p",
            crate::ir::ResponseOptions::default(),
        ));
        let mut out = Vec::new();
        let ev = format!("data: {{\"choices\":{}}}\n\n", &deep[21..deep.len() - 1]);
        p.push(ev.as_bytes(), &mut out);
        assert!(ev.starts_with("data: {\"choices\":[[["));
        assert!(out == ev.as_bytes() || (out.starts_with(b"data: {\"error\"") && p.failure().is_some()));
        assert!(!p.first_token_seen());
    }

    #[test]
    fn duplicate_keys_last_wins_at_first_position() {
        let o = obj(r#"{"model":"a","x":1,"model":"b","y":2,"model":"c"}"#);
        assert_eq!(keys(&o), ["model", "x", "y"]);
        assert_eq!(o.get("model").unwrap().get(), "\"c\"");
        assert_eq!(o.to_vec(), br#"{"model":"c","x":1,"y":2}"#);
    }

    #[test]
    fn duplicate_keys_in_large_objects_use_the_hash_path() {
        let mut body = String::from("{");
        for i in 0..100 {
            body.push_str(&format!("\"k{}\":{},", i % 40, i));
        }
        body.push_str("\"end\":true}");
        let o = obj(&body);
        assert_eq!(o.len(), 41);
        assert_eq!(keys(&o)[..3], ["k0", "k1", "k2"]);
        assert_eq!(o.get("k0").unwrap().get(), "80");
        assert_eq!(o.get("k39").unwrap().get(), "79");
        let v = as_value(&o.to_vec());
        assert_eq!(v, as_value(body.as_bytes()));
    }

    #[test]
    fn escaped_keys_are_re_escaped() {
        let body = r#"{"a\"b":1,"tab\there":2,"\u00e9\u0001":3,"plain":4}"#;
        let o = obj(body);
        assert_eq!(keys(&o), ["a\"b", "tab\there", "é\u{1}", "plain"]);
        let out = o.to_vec();
        assert_eq!(out, r#"{"a\"b":1,"tab\there":2,"é\u0001":3,"plain":4}"#.as_bytes());
        assert_eq!(as_value(&out), as_value(body.as_bytes()));
    }

    #[test]
    fn key_escaping_matches_serde_json() {
        let mut s: String = (0u8..0x80).map(char::from).collect();
        s.push_str("é😀\u{2028}");
        let mut ours = Vec::new();
        write_json_str(&mut ours, &s);
        assert_eq!(ours, serde_json::to_vec(&s).unwrap());
    }

    #[test]
    fn set_replaces_in_place_or_appends_and_remove_keeps_order() {
        let mut o = obj(r#"{"a":1,"b":2,"c":3}"#);
        o.set_raw("b", RawValue::from_string("\"two\"".into()).unwrap());
        o.set_raw("new key\n", RawValue::from_string("[]".into()).unwrap());
        assert_eq!(o.to_vec(), br#"{"a":1,"b":"two","c":3,"new key\n":[]}"#);
        assert_eq!(o.remove("a").unwrap().get(), "1");
        assert!(o.remove("a").is_none());
        assert_eq!(o.to_vec(), br#"{"b":"two","c":3,"new key\n":[]}"#);
        let empty = obj("{}");
        assert!(empty.is_empty());
        empty.write_to(&mut Vec::new());
        assert_eq!(empty.to_vec(), b"{}");
    }

    #[test]
    fn error_messages_and_params() {
        let e = BodyError::InvalidField {
            field: "messages",
            expected: "a non-empty array of message objects",
        };
        assert_eq!(e.to_string(), "`messages` must be a non-empty array of message objects");
        assert_eq!(e.param(), Some("messages"));
        let e = BodyError::MissingField("model");
        assert_eq!(e.to_string(), "missing required parameter `model`");
        assert_eq!(e.param(), Some("model"));
        assert_eq!(BodyError::NotAnObject.to_string(), "body must be a JSON object");
        assert_eq!(BodyError::NotAnObject.param(), None);
        let e = JsonObject::parse(b"{\"a\":").unwrap_err();
        assert!(e.to_string().starts_with("body is not valid JSON: EOF"), "{e}");
        assert_eq!(e.param(), None);
    }
}
