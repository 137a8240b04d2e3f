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
//! * [`response_usage`] reads `usage` from a non-streamed response while
//!   skipping everything else.
//! * [`OpenAiStreamPassthrough`] forwards a stream byte for byte and parses an
//!   event only when a cheap byte scan says it may carry something the gateway
//!   records (usage, an error, the model, the first token).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use memchr::memmem::Finder;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::upstream_error_message;
use crate::sse::{SseDecoder, SseError, SseEvent, SseItem, DEFAULT_MAX_EVENT_BYTES};
use crate::usage::Usage;

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
        let Entries(mut entries) =
            serde_json::from_slice(body).map_err(|e| BodyError::MalformedJson(e.to_string()))?;
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
            None => self
                .entries
                .push((Cow::Owned(key.to_owned()), Cow::Owned(value))),
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

/// `[]` (with any inner whitespace), without parsing.
fn is_empty_array(raw: &RawValue) -> bool {
    match raw.get().as_bytes().split_first() {
        Some((b'[', rest)) => skip_ws(rest).first() == Some(&b']'),
        _ => false,
    }
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

// ---------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------

/// What the gateway needs to know about a chat request before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHead {
    /// The model the caller asked for (an alias the router resolves).
    pub model: String,
    /// `stream: true`: the response is SSE.
    pub stream: bool,
    /// The caller itself set `stream_options.include_usage: true`, so the
    /// usage chunk must reach it; otherwise the gateway injects the option
    /// for its own accounting and strips that chunk again.
    pub client_include_usage: bool,
}

/// Validates the fields the gateway relies on and returns them.
///
/// Checks that `model` is a non-empty string, `messages` a non-empty array
/// whose first element is an object, `stream` a boolean (or null/absent),
/// `stream_options` an object (or null/absent) whose `include_usage` is a
/// boolean if present. Later messages and their contents are left to the
/// provider: checking them would mean scanning the big part of the body a
/// second time (measured: it nearly doubles the cost of a 1 MiB image
/// request), while the byte checks here are O(1).
pub fn inspect_chat(obj: &JsonObject<'_>) -> Result<ChatHead, BodyError> {
    let model = required_string(obj, "model")?;
    check_messages(obj)?;
    let stream = optional_bool(obj.get("stream"), "stream")?;
    let client_include_usage = match obj.get("stream_options") {
        None => false,
        Some(raw) if is_null(raw) => false,
        Some(raw) => {
            let so = JsonObject::parse_raw(raw).map_err(|_| BodyError::InvalidField {
                field: "stream_options",
                expected: "an object",
            })?;
            optional_bool(so.get("include_usage"), "stream_options.include_usage")?
        }
    };
    Ok(ChatHead {
        model,
        stream,
        client_include_usage,
    })
}

/// Rewrites a validated chat request for the provider: `model` becomes the
/// provider's model id; when `stream` is true, `stream_options.include_usage`
/// is set to true (other `stream_options` keys of the caller are kept), so
/// the gateway can account tokens. Everything else, key order included, is
/// left as the caller sent it.
///
/// Fails only when `stream_options` is not an object (which
/// [`inspect_chat`] would already have reported).
pub fn rewrite_chat(
    obj: &mut JsonObject<'_>,
    upstream_model: &str,
    stream: bool,
) -> Result<(), BodyError> {
    let model = serde_json::value::to_raw_value(upstream_model).map_err(encode_error)?;
    obj.set_raw("model", model);
    if !stream {
        return Ok(());
    }
    let merged = match obj.get("stream_options") {
        Some(raw) if !is_null(raw) => {
            let mut so = JsonObject::parse_raw(raw).map_err(|_| BodyError::InvalidField {
                field: "stream_options",
                expected: "an object",
            })?;
            if so.get("include_usage").map(RawValue::get) == Some("true") {
                None
            } else {
                so.set_raw("include_usage", RawValue::TRUE.to_owned());
                Some(raw_from_vec(so.to_vec())?)
            }
        }
        _ => Some(raw_from_vec(br#"{"include_usage":true}"#.to_vec())?),
    };
    if let Some(m) = merged {
        obj.set_raw("stream_options", m);
    }
    Ok(())
}

fn raw_from_vec(v: Vec<u8>) -> Result<Box<RawValue>, BodyError> {
    let s = String::from_utf8(v).map_err(encode_error)?;
    RawValue::from_string(s).map_err(encode_error)
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

fn optional_bool(raw: Option<&RawValue>, field: &'static str) -> Result<bool, BodyError> {
    match raw.map(RawValue::get) {
        None | Some("null") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(BodyError::InvalidField {
            field,
            expected: "a boolean",
        }),
    }
}

fn check_messages(obj: &JsonObject<'_>) -> Result<(), BodyError> {
    let invalid = BodyError::InvalidField {
        field: "messages",
        expected: "a non-empty array of message objects",
    };
    let raw = match obj.get("messages") {
        Some(raw) if !is_null(raw) => raw,
        _ => return Err(BodyError::MissingField("messages")),
    };
    // Cheap byte checks: an array whose first element is an object. The
    // remaining elements are the provider's to validate; scanning them would
    // re-read megabytes of images we already validated as JSON.
    match raw.get().as_bytes().split_first() {
        Some((b'[', rest)) if skip_ws(rest).first() == Some(&b'{') => Ok(()),
        _ => Err(invalid),
    }
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

/// The wire form of embedding vectors (`encoding_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingEncoding {
    /// A JSON array of numbers (OpenAI's default).
    Float,
    /// A base64 string of little-endian `f32`s.
    Base64,
}

/// What the gateway needs to know about an embeddings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsHead {
    /// The model the caller asked for.
    pub model: String,
    /// The form the caller expects back; `Float` when it did not say.
    pub encoding: EmbeddingEncoding,
    /// The caller set `encoding_format` itself.
    pub explicit_encoding: bool,
}

/// Validates an embeddings request: `model` a non-empty string; `input` a
/// string, or a non-empty array of strings, of token ids, or of token-id
/// arrays; `encoding_format` absent, `"float"` or `"base64"`.
pub fn inspect_embeddings(obj: &JsonObject<'_>) -> Result<EmbeddingsHead, BodyError> {
    let model = required_string(obj, "model")?;
    let input = match obj.get("input") {
        Some(raw) if !is_null(raw) => raw,
        _ => return Err(BodyError::MissingField("input")),
    };
    if !matches!(
        serde_json::from_str::<InputOk>(input.get()),
        Ok(InputOk(true))
    ) {
        return Err(BodyError::InvalidField {
            field: "input",
            expected: "a string or a non-empty array of strings, token ids, or token id arrays",
        });
    }
    let (encoding, explicit_encoding) = match obj.get("encoding_format") {
        None => (EmbeddingEncoding::Float, false),
        Some(raw) if is_null(raw) => (EmbeddingEncoding::Float, false),
        Some(raw) => match raw_string(raw).as_deref() {
            Some("float") => (EmbeddingEncoding::Float, true),
            Some("base64") => (EmbeddingEncoding::Base64, true),
            _ => {
                return Err(BodyError::InvalidField {
                    field: "encoding_format",
                    expected: "\"float\" or \"base64\"",
                })
            }
        },
    };
    Ok(EmbeddingsHead {
        model,
        encoding,
        explicit_encoding,
    })
}

/// `true` when an embeddings `input` has one of the accepted shapes.
struct InputOk(bool);

#[derive(Clone, Copy, PartialEq, Eq)]
enum InputElem {
    Text,
    Token,
    Tokens,
    Bad,
}

impl<'de> Deserialize<'de> for InputOk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InputOk;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("embeddings input")
            }
            accept_kinds!(InputOk(false); unit bool i64 u64 f64 map);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<InputOk, E> {
                Ok(InputOk(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputOk, A::Error> {
                let mut kind = None;
                let mut ok = true;
                while let Some(e) = seq.next_element::<InputElem>()? {
                    match kind {
                        None => kind = Some(e),
                        Some(k) if k == e => {}
                        Some(_) => ok = false,
                    }
                    ok &= e != InputElem::Bad;
                }
                Ok(InputOk(ok && kind.is_some()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for InputElem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InputElem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an input element")
            }
            accept_kinds!(InputElem::Bad; unit bool i64 f64 map);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<InputElem, E> {
                Ok(InputElem::Text)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<InputElem, E> {
                Ok(InputElem::Token)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InputElem, A::Error> {
                let mut ok = true;
                while let Some(n) = seq.next_element::<Num>()? {
                    ok &= n == Num::Unsigned;
                }
                Ok(if ok {
                    InputElem::Tokens
                } else {
                    InputElem::Bad
                })
            }
        }
        d.deserialize_any(V)
    }
}

const EMBEDDING_FIELD: &str = "data[].embedding";
const EMBEDDING_EXPECTED: &str =
    "an array of numbers or a base64 string of little-endian float32 values";

fn bad_embedding() -> BodyError {
    BodyError::InvalidField {
        field: EMBEDDING_FIELD,
        expected: EMBEDDING_EXPECTED,
    }
}

/// Decodes base64 with or without padding: some servers drop it.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Makes an OpenAI embeddings response carry vectors in the form the caller
/// asked for.
///
/// Some OpenAI-compatible servers ignore `encoding_format`, and the Node
/// OpenAI SDK asks for base64 by default and silently turns a float array
/// into garbage. Returns `Ok(None)` when every `data[].embedding` already has
/// the wanted form (the common case: one scan, no allocation), otherwise the
/// rewritten body: floats become base64 of their little-endian `f32` bytes
/// (exactly OpenAI's base64 format) and base64 becomes floats (each `f32`
/// written as the shortest decimal that reads back to it, as OpenAI does).
/// All other fields are kept.
pub fn fix_embeddings_encoding(
    resp_body: &[u8],
    want: EmbeddingEncoding,
) -> Result<Option<Vec<u8>>, BodyError> {
    if skip_ws(resp_body).first() != Some(&b'{') {
        return Err(JsonObject::parse(resp_body)
            .err()
            .unwrap_or(BodyError::NotAnObject));
    }
    let scan: Scan = serde_json::from_slice::<ScanBody>(resp_body)
        .map_err(|e| BodyError::MalformedJson(e.to_string()))?
        .0
        .ok_or(BodyError::MissingField("data"))?;
    match scan {
        Scan::NotArray => {
            return Err(BodyError::InvalidField {
                field: "data",
                expected: "an array of embedding objects",
            })
        }
        Scan::MissingEmbedding => return Err(BodyError::MissingField(EMBEDDING_FIELD)),
        Scan::BadEmbedding => return Err(bad_embedding()),
        Scan::Forms { floats, base64 } => {
            let mismatched = match want {
                EmbeddingEncoding::Float => base64,
                EmbeddingEncoding::Base64 => floats,
            };
            if mismatched == 0 {
                return Ok(None);
            }
        }
    }

    // Rare path: rebuild `data`, converting each mismatched embedding.
    let top = JsonObject::parse(resp_body)?;
    let data = top.get("data").ok_or(BodyError::MissingField("data"))?;
    let items: Vec<&RawValue> =
        serde_json::from_str(data.get()).map_err(|e| BodyError::MalformedJson(e.to_string()))?;
    let mut data_out = Vec::with_capacity(data.get().len());
    let mut emb_out = Vec::new();
    data_out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            data_out.push(b',');
        }
        let o = JsonObject::parse_raw(item)?;
        let emb = o
            .get("embedding")
            .ok_or(BodyError::MissingField(EMBEDDING_FIELD))?;
        emb_out.clear();
        if convert_embedding(emb, want, &mut emb_out)? {
            o.write_replacing(&mut data_out, Some(("embedding", &emb_out)));
        } else {
            data_out.extend_from_slice(item.get().as_bytes());
        }
    }
    data_out.push(b']');
    let mut out = Vec::with_capacity(resp_body.len() + data_out.len() - data.get().len());
    top.write_replacing(&mut out, Some(("data", &data_out)));
    Ok(Some(out))
}

/// Writes `emb` in the `want` form to `out`; returns false (writing nothing)
/// when it already has that form.
fn convert_embedding(
    emb: &RawValue,
    want: EmbeddingEncoding,
    out: &mut Vec<u8>,
) -> Result<bool, BodyError> {
    match (emb.get().as_bytes().first(), want) {
        (Some(b'['), EmbeddingEncoding::Float) | (Some(b'"'), EmbeddingEncoding::Base64) => {
            Ok(false)
        }
        (Some(b'['), EmbeddingEncoding::Base64) => {
            let nums: Vec<&RawValue> =
                serde_json::from_str(emb.get()).map_err(|_| bad_embedding())?;
            let mut bytes = Vec::with_capacity(nums.len() * 4);
            for n in nums {
                // Parse the decimal text straight to f32: going through f64
                // would round twice and could be off by one ulp.
                let x: f32 = n.get().parse().map_err(|_| bad_embedding())?;
                if !x.is_finite() {
                    return Err(bad_embedding()); // e.g. 1e39 overflows f32
                }
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            out.push(b'"');
            out.extend_from_slice(STANDARD.encode(&bytes).as_bytes());
            out.push(b'"');
            Ok(true)
        }
        (Some(b'"'), EmbeddingEncoding::Float) => {
            let s = raw_string(emb).ok_or_else(bad_embedding)?;
            let bytes = BASE64_LENIENT
                .decode(s.trim())
                .map_err(|_| bad_embedding())?;
            if bytes.len() % 4 != 0 {
                return Err(bad_embedding());
            }
            out.push(b'[');
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if !x.is_finite() {
                    return Err(BodyError::InvalidField {
                        field: EMBEDDING_FIELD,
                        expected: "finite float32 values",
                    });
                }
                // The f64 shortest form of the exact f32 value: readers that
                // use f64 (Python, JS) get the f32 value itself.
                serde_json::to_writer(&mut *out, &f64::from(x)).map_err(encode_error)?;
            }
            out.push(b']');
            Ok(true)
        }
        _ => Err(bad_embedding()),
    }
}

/// What the one-pass scan of an embeddings response found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    NotArray,
    MissingEmbedding,
    BadEmbedding,
    Forms { floats: usize, base64: usize },
}

/// Top level of an embeddings response: only `data` is looked at.
struct ScanBody(Option<Scan>);

impl<'de> Deserialize<'de> for ScanBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScanBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an embeddings response object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScanBody, A::Error> {
                let mut scan = None;
                while let Some(Key(k)) = map.next_key()? {
                    if k == "data" {
                        scan = Some(map.next_value::<Scan>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ScanBody(scan))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Scan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scan;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the data array")
            }
            accept_kinds!(Scan::NotArray; unit bool i64 u64 f64 str map);
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scan, A::Error> {
                let (mut floats, mut base64) = (0, 0);
                let mut problem = None;
                while let Some(item) = seq.next_element::<ItemForm>()? {
                    match item {
                        ItemForm::Floats => floats += 1,
                        ItemForm::Base64 => base64 += 1,
                        ItemForm::Missing => {
                            problem.get_or_insert(Scan::MissingEmbedding);
                        }
                        ItemForm::Bad => {
                            problem.get_or_insert(Scan::BadEmbedding);
                        }
                    }
                }
                Ok(problem.unwrap_or(Scan::Forms { floats, base64 }))
            }
        }
        d.deserialize_any(V)
    }
}

/// The form of one `data[]` item's `embedding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemForm {
    Floats,
    Base64,
    Missing,
    Bad,
}

impl<'de> Deserialize<'de> for ItemForm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Item;
        impl<'de> Visitor<'de> for Item {
            type Value = ItemForm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an embedding object")
            }
            accept_kinds!(ItemForm::Bad; unit bool i64 u64 f64 str seq);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemForm, A::Error> {
                let mut form = ItemForm::Missing;
                while let Some(Key(k)) = map.next_key()? {
                    if k == "embedding" {
                        form = map.next_value::<EmbeddingForm>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(form)
            }
        }
        d.deserialize_any(Item)
    }
}

struct EmbeddingForm(ItemForm);

impl<'de> Deserialize<'de> for EmbeddingForm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingForm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an embedding")
            }
            accept_kinds!(EmbeddingForm(ItemForm::Bad); unit bool i64 u64 f64 map);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<EmbeddingForm, E> {
                Ok(EmbeddingForm(ItemForm::Base64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingForm, A::Error> {
                let mut ok = true;
                while let Some(n) = seq.next_element::<Num>()? {
                    ok &= n != Num::NotANumber;
                }
                Ok(EmbeddingForm(if ok {
                    ItemForm::Floats
                } else {
                    ItemForm::Bad
                }))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------

/// Token usage of a non-streamed chat or embeddings response (its top-level
/// `usage`), or `None` when there is none or the body is not a JSON object.
///
/// Everything but `usage` is skipped without being stored, so a 30 MiB batch
/// of embeddings costs one scan. Same semantics as
/// [`Usage::from_openai_value`] (tested against it).
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    usage_from_raw(serde_json::from_slice::<TopUsage>(body).ok()?.0?)
}

/// Usage from a raw `usage` value; `None` unless it is an object. Missing or
/// non-integer counts read as zero, like `Usage::from_openai_value`. The
/// object is small, so reading it as raw entries costs next to nothing.
fn usage_from_raw(raw: &RawValue) -> Option<Usage> {
    let u = JsonObject::parse_raw(raw).ok()?;
    let prompt_details = u
        .get("prompt_tokens_details")
        .and_then(|d| JsonObject::parse_raw(d).ok());
    let completion_details = u
        .get("completion_tokens_details")
        .and_then(|d| JsonObject::parse_raw(d).ok());
    let detail = |d: &Option<JsonObject<'_>>, k: &str| d.as_ref().map_or(0, |d| count(d.get(k)));
    let input = count(u.get("prompt_tokens"));
    let total = count(u.get("total_tokens"));
    let mut output = count(u.get("completion_tokens"));
    if output == 0 && total > input {
        output = total - input;
    }
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: detail(&prompt_details, "cached_tokens"),
        cache_write_tokens: detail(&prompt_details, "cache_creation_tokens"),
        reasoning_tokens: detail(&completion_details, "reasoning_tokens"),
    })
}

/// A token count: the raw text of a non-negative integer that fits in u64
/// (what `Value::as_u64` accepts); anything else, `1.0` included, is zero.
fn count(raw: Option<&RawValue>) -> u64 {
    raw.and_then(|r| r.get().parse().ok()).unwrap_or(0)
}

/// The top level of a response, keeping only `usage` (borrowed, raw).
struct TopUsage<'a>(Option<&'a RawValue>);

impl<'de> Deserialize<'de> for TopUsage<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopUsage<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a response object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut usage = None;
                while let Some(Key(k)) = map.next_key()? {
                    if k == "usage" {
                        usage = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(TopUsage(usage))
            }
        }
        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

/// Largest piece handed to the SSE decoder at once. The decoder caps its
/// buffer (unconsumed tail + new bytes), so a huge `push` of many small events
/// must not look like one oversized event.
const DECODER_PIECE: usize = 64 * 1024;

/// Forwards an OpenAI chat completions stream unchanged while extracting what
/// the gateway records.
///
/// An explicit state machine over [`SseDecoder`]: every completed event or
/// comment block is copied to the output byte for byte (its raw bytes, CRLFs
/// included), so the output depends only on the input bytes, never on how
/// they were split. The one exception: with `strip_usage_chunk` (the gateway
/// injected `stream_options.include_usage` and the caller did not ask for it)
/// the extra usage chunk — a `data:` object whose `choices` is empty or absent
/// and whose `usage` is an object — is recorded but not forwarded.
///
/// Events are parsed only when a byte scan says they may carry something to
/// record: a non-null `"usage"`, an `"error"`, the model (until known) or
/// `"choices"` (until the first token). With injected usage every chunk has
/// `"usage":null`; those are recognised without parsing. (A key spelled with
/// `\u` escapes would slip past the scan; no provider does that.)
#[derive(Debug)]
pub struct OpenAiStreamPassthrough {
    decoder: SseDecoder,
    strip_usage_chunk: bool,
    usage: Option<Usage>,
    model: Option<String>,
    error: Option<String>,
    saw_done: bool,
    first_token: bool,
    failed: bool,
    usage_finder: Finder<'static>,
    error_finder: Finder<'static>,
    model_finder: Finder<'static>,
    choices_finder: Finder<'static>,
}

impl OpenAiStreamPassthrough {
    /// A processor with the decoder's default per-event cap.
    /// `strip_usage_chunk`: drop the usage-only chunk (see the type docs).
    pub fn new(strip_usage_chunk: bool) -> Self {
        Self::with_max_event_bytes(strip_usage_chunk, DEFAULT_MAX_EVENT_BYTES)
    }

    /// A processor whose decoder rejects events larger than `max_event`.
    pub fn with_max_event_bytes(strip_usage_chunk: bool, max_event: usize) -> Self {
        OpenAiStreamPassthrough {
            decoder: SseDecoder::with_max_event_bytes(max_event),
            strip_usage_chunk,
            usage: None,
            model: None,
            error: None,
            saw_done: false,
            first_token: false,
            failed: false,
            usage_finder: Finder::new(b"\"usage\""),
            error_finder: Finder::new(b"\"error\""),
            model_finder: Finder::new(b"\"model\""),
            choices_finder: Finder::new(b"\"choices\""),
        }
    }

    /// Feeds bytes from the provider and appends to `out` every block they
    /// complete. Returns true when this call saw the stream's first token, so
    /// the gateway can stamp time-to-first-token as it sends `out`.
    ///
    /// After a decoder error (an event over the cap) nothing more is
    /// forwarded; [`Self::failed`] and [`Self::error`] report it and the
    /// gateway ends the stream with its own error event.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        let before = self.first_token;
        for piece in bytes.chunks(DECODER_PIECE) {
            if self.failed {
                break;
            }
            match self.decoder.push(piece) {
                Ok(()) => self.drain(out),
                Err(e) => self.fail(e),
            }
        }
        !before && self.first_token
    }

    /// Marks the end of the provider's stream and forwards a final event that
    /// lacked its blank line. Returns true if that produced the first token.
    /// Call once, after the last `push`.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if self.failed {
            return false;
        }
        let before = self.first_token;
        self.decoder.finish();
        self.drain(out);
        !before && self.first_token
    }

    /// The last non-null usage seen (top-level `usage`, or Groq's
    /// `x_groq.usage`).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// `data: [DONE]` arrived: the provider ended the stream properly.
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// Some chunk had non-empty delta content, reasoning, refusal, audio or
    /// tool calls.
    pub fn first_token_seen(&self) -> bool {
        self.first_token
    }

    /// The message of an in-stream error (`{"error":{...}}`, `{"object":
    /// "error",...}` or an `event: error` block; forwarded as is), or of a
    /// decoder failure. The latest one wins.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The decoder gave up (oversized event): forwarding stopped and the
    /// caller's stream needs a gateway error event.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The model the provider reported in its first chunk that named one.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn fail(&mut self, e: SseError) {
        self.failed = true;
        self.error = Some(e.to_string());
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        while let Some(item) = self.decoder.next_item() {
            let forward = match &item {
                SseItem::Comment => true,
                SseItem::Event(ev) => self.inspect_event(ev),
            };
            if forward {
                out.extend_from_slice(self.decoder.last_raw());
            }
        }
    }

    /// Records what `ev` carries; returns whether to forward it.
    fn inspect_event(&mut self, ev: &SseEvent) -> bool {
        if ev.event.as_deref() == Some("error") {
            self.error = Some(upstream_error_message(ev.data.as_bytes()));
            return true;
        }
        let data = ev.data.trim_matches(|c: char| c.is_ascii_whitespace());
        if data == "[DONE]" {
            self.saw_done = true;
            return true;
        }
        let d = data.as_bytes();
        if d.first() != Some(&b'{') {
            return true;
        }
        let interesting = self.has_non_null_usage(d)
            || self.error_finder.find(d).is_some()
            || (self.model.is_none() && self.model_finder.find(d).is_some())
            || (!self.first_token && self.choices_finder.find(d).is_some());
        if !interesting {
            return true;
        }
        let Ok(obj) = JsonObject::parse(d) else {
            return true; // not ours to judge; the client sees what was sent
        };

        if self.model.is_none() {
            self.model = obj
                .get("model")
                .and_then(raw_string)
                .filter(|m| !m.is_empty());
        }
        let is_error = obj.get("error").is_some_and(|e| !is_null(e))
            || obj.get("object").map(RawValue::get) == Some("\"error\"");
        if is_error {
            self.error = Some(upstream_error_message(d));
        }
        let top_usage = obj.get("usage").and_then(usage_from_raw);
        let usage = top_usage.or_else(|| {
            let groq = JsonObject::parse_raw(obj.get("x_groq")?).ok()?;
            usage_from_raw(groq.get("usage")?)
        });
        if usage.is_some() {
            self.usage = usage;
        }
        let choices = obj.get("choices");
        if !self.first_token && choices.is_some_and(choices_have_token) {
            self.first_token = true;
        }
        let usage_only = top_usage.is_some() && choices.is_none_or(is_empty_array);
        !(self.strip_usage_chunk && usage_only && !is_error)
    }

    /// Whether some `"usage"` key in `d` has a value other than `null`.
    fn has_non_null_usage(&self, d: &[u8]) -> bool {
        self.usage_finder.find_iter(d).any(|at| {
            let rest = skip_ws(&d[at + b"\"usage\"".len()..]);
            match rest.split_first() {
                Some((b':', v)) => !skip_ws(v).starts_with(b"null"),
                _ => false, // a string value "usage", not the key
            }
        })
    }
}

/// Delta fields whose non-empty value means the model produced output.
const TOKEN_FIELDS: [&str; 7] = [
    "content",
    "reasoning_content",
    "reasoning",
    "refusal",
    "audio",
    "tool_calls",
    "function_call",
];

/// Whether any choice's `delta` carries generated output. Only runs until the
/// first token, on small chunks, so reading raw entries level by level is fine.
fn choices_have_token(raw: &RawValue) -> bool {
    let Ok(choices) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        return false;
    };
    choices.into_iter().any(|c| {
        JsonObject::parse_raw(c).is_ok_and(|choice| {
            choice.get("delta").is_some_and(|d| {
                JsonObject::parse_raw(d).is_ok_and(|delta| {
                    TOKEN_FIELDS
                        .iter()
                        .any(|f| delta.get(f).is_some_and(non_empty))
                })
            })
        })
    })
}

/// A non-empty string, array or object, judged from the raw text alone.
fn non_empty(raw: &RawValue) -> bool {
    match raw.get().as_bytes().split_first() {
        Some((b'"', _)) => raw.get() != "\"\"",
        Some((b'[', rest)) => skip_ws(rest).first() != Some(&b']'),
        Some((b'{', rest)) => skip_ws(rest).first() != Some(&b'}'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn obj(s: &str) -> JsonObject<'_> {
        JsonObject::parse(s.as_bytes()).unwrap()
    }

    fn as_value(bytes: &[u8]) -> Value {
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
        assert_eq!(
            o.to_vec(),
            r#"{"b":[1, 2],"a":{"x" : "y"},"c":"é😀"}"#.as_bytes()
        );
    }

    #[test]
    fn malformed_and_non_objects_are_told_apart() {
        for bad in [
            "",
            "   ",
            "{",
            r#"{"a":}"#,
            r#"{"a":1} x"#,
            r#"{"a":1,}"#,
            "[1",
            "nul",
        ] {
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
        let mut p = OpenAiStreamPassthrough::new(false);
        let mut out = Vec::new();
        let ev = format!("data: {{\"choices\":{}}}\n\n", &deep[21..deep.len() - 1]);
        p.push(ev.as_bytes(), &mut out);
        assert_eq!(out, ev.as_bytes());
        assert!(!p.first_token_seen());
        assert!(ev.starts_with("data: {\"choices\":[[[") && p.error().is_none());
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
        assert_eq!(
            out,
            r#"{"a\"b":1,"tab\there":2,"é\u0001":3,"plain":4}"#.as_bytes()
        );
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

    // ----- chat -----

    const CHAT: &str = r#"{"model":"fast","temperature":0.2,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false},"user":"u1"}"#;

    #[test]
    fn inspect_chat_reads_head() {
        let head = inspect_chat(&obj(CHAT)).unwrap();
        assert_eq!(
            head,
            ChatHead {
                model: "fast".into(),
                stream: true,
                client_include_usage: false
            }
        );
        let head = inspect_chat(&obj(
            r#"{"model":"m","messages":[{}],"stream":null,"stream_options":{"include_usage":true}}"#,
        ))
        .unwrap();
        assert!(!head.stream);
        assert!(head.client_include_usage);
        let head = inspect_chat(&obj(
            r#"{"messages":[ {"role":"user"} ],"model":"m","stream_options":null}"#,
        ))
        .unwrap();
        assert!(!head.stream && !head.client_include_usage);
    }

    #[test]
    fn inspect_chat_rejects_bad_fields() {
        let cases: &[(&str, BodyError)] = &[
            (r#"{"messages":[{}]}"#, BodyError::MissingField("model")),
            (
                r#"{"model":null,"messages":[{}]}"#,
                BodyError::MissingField("model"),
            ),
            (r#"{"model":"m"}"#, BodyError::MissingField("messages")),
            (
                r#"{"model":7,"messages":[{}]}"#,
                BodyError::InvalidField {
                    field: "model",
                    expected: "a non-empty string",
                },
            ),
            (
                r#"{"model":"","messages":[{}]}"#,
                BodyError::InvalidField {
                    field: "model",
                    expected: "a non-empty string",
                },
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":{"role":"user"}}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":["hi"]}"#,
                BodyError::InvalidField {
                    field: "messages",
                    expected: "a non-empty array of message objects",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream":"yes"}"#,
                BodyError::InvalidField {
                    field: "stream",
                    expected: "a boolean",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream_options":[true]}"#,
                BodyError::InvalidField {
                    field: "stream_options",
                    expected: "an object",
                },
            ),
            (
                r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":1}}"#,
                BodyError::InvalidField {
                    field: "stream_options.include_usage",
                    expected: "a boolean",
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&inspect_chat(&obj(body)).unwrap_err(), want, "{body}");
        }
    }

    #[test]
    fn error_messages_and_params() {
        let e = BodyError::InvalidField {
            field: "messages",
            expected: "a non-empty array of message objects",
        };
        assert_eq!(
            e.to_string(),
            "`messages` must be a non-empty array of message objects"
        );
        assert_eq!(e.param(), Some("messages"));
        let e = BodyError::MissingField("model");
        assert_eq!(e.to_string(), "missing required parameter `model`");
        assert_eq!(e.param(), Some("model"));
        assert_eq!(
            BodyError::NotAnObject.to_string(),
            "body must be a JSON object"
        );
        assert_eq!(BodyError::NotAnObject.param(), None);
        let e = JsonObject::parse(b"{\"a\":").unwrap_err();
        assert!(
            e.to_string().starts_with("body is not valid JSON: EOF"),
            "{e}"
        );
        assert_eq!(e.param(), None);
    }

    #[test]
    fn rewrite_chat_sets_model_and_merges_stream_options_in_place() {
        let mut o = obj(CHAT);
        rewrite_chat(&mut o, "gpt-4o-\"mini\"", true).unwrap();
        assert_eq!(
            String::from_utf8(o.to_vec()).unwrap(),
            r#"{"model":"gpt-4o-\"mini\"","temperature":0.2,"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"user":"u1"}"#
        );
    }

    #[test]
    fn rewrite_chat_stream_options_cases() {
        let base = r#"{"model":"a","messages":[{}],"stream":true"#;
        let run = |extra: &str, stream: bool| {
            let body = format!("{base}{extra}}}");
            let mut o = JsonObject::parse(body.as_bytes()).unwrap();
            rewrite_chat(&mut o, "b", stream).unwrap();
            String::from_utf8(o.to_vec()).unwrap()
        };
        // Absent: appended at the end.
        assert_eq!(
            run("", true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        // Null: replaced in place.
        assert_eq!(
            run(r#","stream_options":null,"n":1"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true},"n":1}"#
        );
        // Explicit false: flipped, position of the key kept.
        assert_eq!(
            run(r#","stream_options":{"include_usage":false,"x":1}"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"include_usage":true,"x":1}}"#
        );
        // Already true: left byte-identical.
        assert_eq!(
            run(r#","stream_options":{ "include_usage" : true }"#, true),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{ "include_usage" : true }}"#
        );
        // Not streaming: stream_options untouched.
        assert_eq!(
            run(r#","stream_options":{"x":1}"#, false),
            r#"{"model":"b","messages":[{}],"stream":true,"stream_options":{"x":1}}"#
        );
        let mut o = obj(r#"{"model":"a","stream_options":3}"#);
        assert_eq!(
            rewrite_chat(&mut o, "b", true).unwrap_err().param(),
            Some("stream_options")
        );
    }

    #[test]
    fn rewrite_keeps_big_values_byte_identical() {
        let image = "A".repeat(300_000);
        let body = format!(
            r#"{{"model":"x","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}]}}"#
        );
        let mut o = JsonObject::parse(body.as_bytes()).unwrap();
        inspect_chat(&o).unwrap();
        rewrite_chat(&mut o, "y", false).unwrap();
        let out = o.to_vec();
        assert_eq!(out.len(), body.len());
        assert_eq!(&out[..13], br#"{"model":"y","#);
        assert_eq!(&out[13..], &body.as_bytes()[13..]);
    }

    // ----- embeddings -----

    #[test]
    fn inspect_embeddings_accepts_all_input_shapes() {
        for input in [
            r#""hello""#,
            r#"["a","b"]"#,
            "[1,2,3]",
            "[[1,2],[3]]",
            r#""""#,
        ] {
            let body = format!(r#"{{"model":"e","input":{input}}}"#);
            let head = inspect_embeddings(&obj(&body)).unwrap();
            assert_eq!(head.model, "e");
            assert_eq!(head.encoding, EmbeddingEncoding::Float);
            assert!(!head.explicit_encoding);
        }
        let head = inspect_embeddings(&obj(
            r#"{"model":"e","input":"x","encoding_format":"base64"}"#,
        ))
        .unwrap();
        assert_eq!(
            (head.encoding, head.explicit_encoding),
            (EmbeddingEncoding::Base64, true)
        );
        let head = inspect_embeddings(&obj(
            r#"{"model":"e","input":"x","encoding_format":"float"}"#,
        ))
        .unwrap();
        assert_eq!(
            (head.encoding, head.explicit_encoding),
            (EmbeddingEncoding::Float, true)
        );
    }

    #[test]
    fn inspect_embeddings_rejects_bad_fields() {
        assert_eq!(
            inspect_embeddings(&obj(r#"{"input":"x"}"#)).unwrap_err(),
            BodyError::MissingField("model")
        );
        assert_eq!(
            inspect_embeddings(&obj(r#"{"model":"e"}"#)).unwrap_err(),
            BodyError::MissingField("input")
        );
        for input in [
            "[]",
            "3",
            "{}",
            r#"["a",1]"#,
            "[-1]",
            "[1.5]",
            "[[1,\"a\"]]",
            "[null]",
            "[[1],2]",
        ] {
            let body = format!(r#"{{"model":"e","input":{input}}}"#);
            let err = inspect_embeddings(&obj(&body)).unwrap_err();
            assert_eq!(err.param(), Some("input"), "{input}");
        }
        let err = inspect_embeddings(&obj(
            r#"{"model":"e","input":"x","encoding_format":"int8"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"`encoding_format` must be "float" or "base64""#
        );
    }

    fn b64(floats: &[f32]) -> String {
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        STANDARD.encode(bytes)
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(b64(&[1.0]), "AACAPw==");
        let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,-2]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let out = fix_embeddings_encoding(body, EmbeddingEncoding::Base64)
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{}"}}],"model":"m","usage":{{"prompt_tokens":2,"total_tokens":2}}}}"#,
                b64(&[1.0, -2.0])
            )
        );
    }

    #[test]
    fn matching_form_needs_no_rewrite() {
        let floats = br#"{"data":[{"embedding":[0.1,2e-3,-4]},{"embedding":[]}],"usage":null}"#;
        assert_eq!(
            fix_embeddings_encoding(floats, EmbeddingEncoding::Float),
            Ok(None)
        );
        let text = format!(r#"{{"data":[{{"embedding":"{}"}}]}}"#, b64(&[0.5]));
        assert_eq!(
            fix_embeddings_encoding(text.as_bytes(), EmbeddingEncoding::Base64),
            Ok(None)
        );
        assert_eq!(
            fix_embeddings_encoding(br#"{"data":[]}"#, EmbeddingEncoding::Float),
            Ok(None)
        );
    }

    #[test]
    fn embeddings_round_trip_is_exact() {
        // Edge values plus pseudo-random bit patterns.
        let mut vals = vec![
            0.0f32,
            -0.0,
            0.1,
            -0.006_929_283,
            std::f32::consts::PI,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::from_bits(1), // smallest subnormal
            f32::from_bits(0x007f_ffff),
            1e-30,
            123_456_790.0,
        ];
        let mut x: u32 = 0x1234_5678;
        while vals.len() < 2000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let f = f32::from_bits(x);
            if f.is_finite() {
                vals.push(f);
            }
        }
        let (a, b) = vals.split_at(1000);
        let orig = format!(
            r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{}"}},{{"index":1,"embedding":"{}","object":"embedding"}}],"model":"m"}}"#,
            b64(a),
            b64(b)
        );
        let floats = fix_embeddings_encoding(orig.as_bytes(), EmbeddingEncoding::Float)
            .unwrap()
            .unwrap();
        // The float form reads back (through f64, as SDKs do) to the same f32s.
        let v = as_value(&floats);
        let got: Vec<f32> = v["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            got.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            a.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["model"], "m");
        // And back to base64: byte-identical to the original.
        let back = fix_embeddings_encoding(&floats, EmbeddingEncoding::Base64)
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), orig);
    }

    #[test]
    fn mixed_forms_convert_only_mismatches() {
        let body = format!(
            r#"{{"data":[{{"embedding":[0.5]}},{{"embedding":"{}"}}]}}"#,
            b64(&[0.25])
        );
        let out = fix_embeddings_encoding(body.as_bytes(), EmbeddingEncoding::Float)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            br#"{"data":[{"embedding":[0.5]},{"embedding":[0.25]}]}"#
        );
    }

    #[test]
    fn embeddings_errors() {
        let e = |b: &str, w| fix_embeddings_encoding(b.as_bytes(), w).unwrap_err();
        use EmbeddingEncoding::*;
        assert_eq!(
            e(r#"{"object":"list"}"#, Float),
            BodyError::MissingField("data")
        );
        assert_eq!(e(r#"{"data":{}}"#, Float).param(), Some("data"));
        assert_eq!(
            e(r#"{"data":[{"index":0}]}"#, Float),
            BodyError::MissingField(EMBEDDING_FIELD)
        );
        assert_eq!(
            e(r#"{"data":[{"embedding":null}]}"#, Float),
            bad_embedding()
        );
        assert_eq!(
            e(r#"{"data":[{"embedding":[1,"x"]}]}"#, Base64),
            bad_embedding()
        );
        assert_eq!(e(r#"{"data":[3]}"#, Float), bad_embedding());
        assert_eq!(
            e(r#"{"data":[{"embedding":[1e39]}]}"#, Base64),
            bad_embedding()
        );
        assert_eq!(
            e(r#"{"data":[{"embedding":"!!!"}]}"#, Float),
            bad_embedding()
        );
        // 3 bytes: not a whole f32.
        assert_eq!(
            e(r#"{"data":[{"embedding":"AAAA"}]}"#, Float),
            bad_embedding()
        );
        let nan = format!(r#"{{"data":[{{"embedding":"{}"}}]}}"#, b64(&[f32::NAN]));
        assert_eq!(e(&nan, Float).param(), Some(EMBEDDING_FIELD));
        assert_eq!(e("[1]", Float), BodyError::NotAnObject);
        assert!(matches!(e("{", Float), BodyError::MalformedJson(_)));
        // Unpadded base64 is accepted.
        let unpadded = r#"{"data":[{"embedding":"AACAPw"}]}"#;
        assert_eq!(
            fix_embeddings_encoding(unpadded.as_bytes(), Float)
                .unwrap()
                .unwrap(),
            br#"{"data":[{"embedding":[1.0]}]}"#
        );
    }

    // ----- usage -----

    #[test]
    fn response_usage_matches_from_openai_value() {
        let samples = [
            json!({"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64,"cache_creation_tokens":5},"completion_tokens_details":{"reasoning_tokens":8}}}),
            json!({"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":7,"total_tokens":7}}),
            json!({"usage":{"prompt_tokens":5,"total_tokens":9}}),
            json!({"usage":{"prompt_tokens":"5","completion_tokens":2.0,"total_tokens":-1,"prompt_tokens_details":null,"completion_tokens_details":[1]}}),
            json!({"usage":{}}),
        ];
        for s in samples {
            let want = Usage::from_openai_value(&s["usage"]);
            assert!(want.is_some());
            assert_eq!(response_usage(s.to_string().as_bytes()), want, "{s}");
        }
        assert_eq!(response_usage(br#"{"usage":null}"#), None);
        assert_eq!(response_usage(br#"{"usage":[1]}"#), None);
        assert_eq!(response_usage(br#"{"id":"x"}"#), None);
        assert_eq!(response_usage(b"[1]"), None);
        assert_eq!(response_usage(b"not json"), None);
    }

    // ----- streaming -----

    fn chunk(delta: &str, finish: &str, usage: &str) -> String {
        format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_1","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":{usage}}}"#
        )
    }

    const USAGE_JSON: &str = r#"{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}"#;

    fn usage_chunk() -> String {
        format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{USAGE_JSON}}}"#
        )
    }

    /// A realistic stream with injected usage: mixed LF/CRLF, a keep-alive
    /// comment, multi-byte UTF-8, a multi-line data field.
    fn fixture() -> (String, String) {
        let mut before = String::new();
        before.push_str(": OPENROUTER PROCESSING\r\n\r\n");
        before.push_str(&format!(
            "data: {}\r\n\r\n",
            chunk(
                r#"{"role":"assistant","content":"","refusal":null}"#,
                "null",
                "null"
            )
        ));
        before.push_str(&format!(
            "data: {}\n\n",
            chunk(r#"{"content":"Café "}"#, "null", "null")
        ));
        before.push_str(&format!(
            "data:{}\r\n\r\n",
            chunk(r#"{"content":"😀 ok"}"#, "null", "null")
        ));
        let split = chunk(r#"{"content":" \"usage\": x"}"#, "null", "null");
        let (l, r) = split.split_at(split.find("\"choices\"").unwrap());
        before.push_str(&format!("data: {l}\ndata: {r}\n\n"));
        before.push_str(&format!(
            "data: {}\r\n\r\n",
            chunk("{}", "\"stop\"", "null")
        ));
        let usage = format!("data: {}\r\n\r\n", usage_chunk());
        let after = "data: [DONE]\r\n\r\n".to_string();
        (before + &usage + &after, usage)
    }

    #[derive(Debug, PartialEq)]
    struct Run {
        out: Vec<u8>,
        first_token_at: Vec<usize>,
        usage: Option<Usage>,
        done: bool,
        model: Option<String>,
        error: Option<String>,
    }

    fn run(pieces: &[&[u8]], strip: bool) -> Run {
        let mut p = OpenAiStreamPassthrough::new(strip);
        let mut out = Vec::new();
        let mut first_token_at = Vec::new();
        for piece in pieces {
            if p.push(piece, &mut out) {
                first_token_at.push(out.len());
            }
        }
        if p.finish(&mut out) {
            first_token_at.push(out.len());
        }
        assert!(p.first_token_seen());
        Run {
            out,
            first_token_at,
            usage: p.usage(),
            done: p.saw_done(),
            model: p.model().map(str::to_string),
            error: p.error().map(str::to_string),
        }
    }

    fn expected_usage() -> Usage {
        Usage {
            input_tokens: 12,
            output_tokens: 4,
            cached_input_tokens: 2,
            cache_write_tokens: 0,
            reasoning_tokens: 1,
        }
    }

    #[test]
    fn stream_kept_is_byte_identical_and_usage_recorded() {
        let (stream, _) = fixture();
        let r = run(&[stream.as_bytes()], false);
        assert_eq!(r.out, stream.as_bytes());
        assert_eq!(r.usage, Some(expected_usage()));
        assert!(r.done);
        assert_eq!(r.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(r.error, None);
        assert_eq!(r.first_token_at.len(), 1);
    }

    #[test]
    fn stream_strip_removes_only_the_usage_chunk() {
        let (stream, usage_block) = fixture();
        let r = run(&[stream.as_bytes()], true);
        assert_eq!(
            String::from_utf8(r.out).unwrap(),
            stream.replace(&usage_block, "")
        );
        assert_eq!(r.usage, Some(expected_usage()));
        assert!(r.done);
    }

    #[test]
    fn stream_output_is_independent_of_splits() {
        let (stream, _) = fixture();
        let bytes = stream.as_bytes();
        for strip in [false, true] {
            let whole = run(&[bytes], strip);
            for cut in 0..=bytes.len() {
                let split = run(&[&bytes[..cut], &bytes[cut..]], strip);
                assert_eq!(split.out, whole.out, "strip={strip} cut={cut}");
                assert_eq!(split.usage, whole.usage);
                assert_eq!(split.done, whole.done);
                assert_eq!(split.model, whole.model);
                assert_eq!(split.first_token_at.len(), 1);
            }
            let ones: Vec<&[u8]> = bytes.chunks(1).collect();
            let single = run(&ones, strip);
            assert_eq!(single.out, whole.out);
            assert_eq!(single.usage, whole.usage);
            // One byte at a time, the first token is reported the moment the
            // "Café" event completes, i.e. right after it is written.
            let cafe_end = stream.find("Café").unwrap()
                + stream[stream.find("Café").unwrap()..].find("\n\n").unwrap()
                + 2;
            assert_eq!(single.first_token_at, vec![cafe_end]);
        }
    }

    #[test]
    fn first_token_only_on_real_content() {
        let mut p = OpenAiStreamPassthrough::new(false);
        let mut out = Vec::new();
        let role = format!(
            "data: {}\n\n",
            chunk(r#"{"role":"assistant","content":""}"#, "null", "null")
        );
        assert!(!p.push(role.as_bytes(), &mut out));
        assert!(!p.first_token_seen());
        let tool = format!(
            "data: {}\n\n",
            chunk(
                r#"{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":""}}]}"#,
                "null",
                "null"
            )
        );
        assert!(p.push(tool.as_bytes(), &mut out));
        assert!(p.first_token_seen());
        let more = format!("data: {}\n\n", chunk(r#"{"content":"x"}"#, "null", "null"));
        assert!(!p.push(more.as_bytes(), &mut out));

        let mut p = OpenAiStreamPassthrough::new(false);
        let reasoning = format!(
            "data: {}\n\n",
            chunk(r#"{"reasoning_content":"hm"}"#, "null", "null")
        );
        assert!(p.push(reasoning.as_bytes(), &mut out));
    }

    #[test]
    fn usage_on_content_chunk_and_groq_are_recorded_not_stripped() {
        let last = chunk(r#"{"content":"!"}"#, "\"stop\"", USAGE_JSON);
        let groq = r#"{"id":"x","object":"chat.completion.chunk","model":"llama","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"queue_time":0.01,"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}}"#;
        let stream = format!("data: {last}\n\ndata: {groq}\n\ndata: [DONE]\n\n");
        let r = run(&[stream.as_bytes()], true);
        assert_eq!(r.out, stream.as_bytes());
        let u = r.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (3, 5));
        let r = run(&[format!("data: {last}\n\n").as_bytes()], true);
        assert_eq!(r.usage, Some(expected_usage()));
    }

    #[test]
    fn usage_chunk_without_choices_is_stripped_too() {
        let stream = format!(
            "data: {}\n\ndata: {{\"id\":\"x\",\"usage\":{USAGE_JSON}}}\n\ndata: [DONE]\n\n",
            chunk(r#"{"content":"a"}"#, "null", "null")
        );
        let r = run(&[stream.as_bytes()], true);
        assert_eq!(
            String::from_utf8(r.out).unwrap(),
            format!(
                "data: {}\n\ndata: [DONE]\n\n",
                chunk(r#"{"content":"a"}"#, "null", "null")
            )
        );
        assert_eq!(r.usage, Some(expected_usage()));
    }

    #[test]
    fn in_stream_errors_are_recorded_and_forwarded() {
        let mut p = OpenAiStreamPassthrough::new(true);
        let mut out = Vec::new();
        let body =
            "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit\"}}\n\n";
        p.push(body.as_bytes(), &mut out);
        assert_eq!(p.error(), Some("Rate limit reached"));
        assert_eq!(out, body.as_bytes());
        assert!(!p.failed() && !p.saw_done());

        let mut p = OpenAiStreamPassthrough::new(false);
        let vllm = "data: {\"object\":\"error\",\"message\":\"bad\",\"type\":\"BadRequestError\",\"code\":400}\n\n";
        p.push(vllm.as_bytes(), &mut out);
        assert_eq!(p.error(), Some("bad"));

        let mut p = OpenAiStreamPassthrough::new(false);
        p.push(
            b"event: error\ndata: {\"message\":\"overloaded\"}\n\n",
            &mut out,
        );
        assert_eq!(p.error(), Some("overloaded"));

        // "error" inside content is not an error.
        let mut p = OpenAiStreamPassthrough::new(false);
        let c = format!(
            "data: {}\n\n",
            chunk(r#"{"content":"error"}"#, "null", "null")
        );
        p.push(c.as_bytes(), &mut out);
        assert_eq!(p.error(), None);
        assert!(p.first_token_seen());
    }

    #[test]
    fn oversized_event_stops_forwarding_without_panic() {
        let mut p = OpenAiStreamPassthrough::with_max_event_bytes(false, 64);
        let mut out = Vec::new();
        p.push(b"data: {\"a\":1}\n\n", &mut out);
        assert_eq!(out, b"data: {\"a\":1}\n\n");
        p.push(&[b'x'; 100], &mut out);
        assert!(p.failed());
        assert!(p.error().unwrap().contains("64"));
        p.push(b"\n\ndata: [DONE]\n\n", &mut out);
        assert!(!p.finish(&mut out));
        assert_eq!(out, b"data: {\"a\":1}\n\n");
        assert!(!p.saw_done());
    }

    #[test]
    fn huge_push_of_small_events_is_not_an_oversized_event() {
        let one = format!("data: {}\n\n", chunk(r#"{"content":"x"}"#, "null", "null"));
        let many = one.repeat(2000); // ~500 KB in one push, cap 64 KiB
        let mut p = OpenAiStreamPassthrough::with_max_event_bytes(false, 64 * 1024 + 1024);
        let mut out = Vec::new();
        assert!(p.push(many.as_bytes(), &mut out));
        assert!(!p.failed());
        assert_eq!(out, many.as_bytes());
    }

    #[test]
    fn unterminated_done_and_garbage_events() {
        let stream = "data: not json\n\n: ping\n\ndata: {\"broken\":\n\ndata: [DONE]";
        let mut p = OpenAiStreamPassthrough::new(true);
        let mut out = Vec::new();
        p.push(stream.as_bytes(), &mut out);
        assert!(!p.saw_done());
        p.finish(&mut out);
        assert!(p.saw_done());
        assert_eq!(out, stream.as_bytes());
        assert_eq!(p.usage(), None);
        assert_eq!(p.model(), None);
    }

    #[test]
    fn usage_null_is_detected_without_false_negatives() {
        let p = OpenAiStreamPassthrough::new(false);
        assert!(!p.has_non_null_usage(br#"{"usage":null}"#));
        assert!(!p.has_non_null_usage(br#"{"usage" : null ,"c":"usage"}"#));
        assert!(p.has_non_null_usage(br#"{"usage" :{"prompt_tokens":1}}"#));
        assert!(p.has_non_null_usage(br#"{"usage":null,"x":{"usage":{}}}"#));
        assert!(!p.has_non_null_usage(br#"{"content":"\"usage\": 1"}"#));
    }
}
