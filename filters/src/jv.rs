//! Small JSON accessors shared by the codecs: typed field reads that report
//! the offending `param` instead of panicking on unexpected input.

use crate::ir::CodecError;
use serde_json::{Map, Value};

/// Parses a body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, CodecError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CodecError::body("request body must be a JSON object")),
        Err(e) => Err(CodecError::body(format!("request body is not valid JSON: {e}"))),
    }
}

/// An optional string field; wrong type is an error.
pub fn opt_str(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<String>, CodecError> {
    str_value(m.get(key), param)
}

/// [`opt_str`] of a value already looked up (`None`: absent).
pub fn str_value(v: Option<&Value>, param: &str) -> Result<Option<String>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a string"))),
    }
}

/// An optional non-negative integer that fits u32.
pub fn opt_u32(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<u32>, CodecError> {
    u32_value(m.get(key), param)
}

/// [`opt_u32`] of a value already looked up.
pub fn u32_value(v: Option<&Value>, param: &str) -> Result<Option<u32>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a non-negative integer"))),
    }
}

/// An optional number.
pub fn opt_f64(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<f64>, CodecError> {
    f64_value(m.get(key), param)
}

/// [`opt_f64`] of a value already looked up.
pub fn f64_value(v: Option<&Value>, param: &str) -> Result<Option<f64>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a number"))),
    }
}

/// An optional boolean.
pub fn opt_bool(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, CodecError> {
    bool_value(m.get(key), param)
}

/// [`opt_bool`] of a value already looked up.
pub fn bool_value(v: Option<&Value>, param: &str) -> Result<Option<bool>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a boolean"))),
    }
}

/// A field that must be an object.
pub fn as_obj<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, CodecError> {
    v.as_object()
        .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an object")))
}

/// A field that must be an array.
pub fn as_arr<'a>(v: &'a Value, param: &str) -> Result<&'a Vec<Value>, CodecError> {
    v.as_array()
        .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be an array")))
}

/// A required string inside an object.
pub fn req_str<'a>(m: &'a Map<String, Value>, key: &str, param: &str) -> Result<&'a str, CodecError> {
    m.get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| CodecError::invalid(param, format!("`{param}` is required and must be a string")))
}

/// Stop sequences: a string or an array of strings.
pub fn stop_list(v: Option<&Value>, param: &str) -> Result<Vec<String>, CodecError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must contain strings")))
            })
            .collect(),
        Some(_) => Err(CodecError::invalid(
            param,
            format!("`{param}` must be a string or an array of strings"),
        )),
    }
}

/// Reads a u64 at `key`, 0 when missing or not a number (usage counters).
pub fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A string field read leniently and borrowed: a string gives `Some` (owned
/// only when it had escapes), any other value — `null`, a number, an object
/// — gives `None` and is skipped. The typed decoders use it to read a
/// provider's body in one pass, as tolerant as a `Value` walk but without
/// building the tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LenientStr<'a>(pub Option<std::borrow::Cow<'a, str>>);

impl<'a> LenientStr<'a> {
    /// The string, or `""`.
    pub fn or_empty(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The string, owned, or `""`.
    pub fn into_string(self) -> String {
        self.0.map(std::borrow::Cow::into_owned).unwrap_or_default()
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for LenientStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(std::borrow::Cow::Borrowed(s))))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(std::borrow::Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(std::borrow::Cow::Owned(s))))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(LenientStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(LenientStr(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(LenientStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A raw JSON value that is present even when it is `null` (serde reads an
/// `Option` field holding `null` as absent).
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// A usage counter read leniently in a typed decoder: a non-negative
/// integer is itself, anything else (a float, a negative number, a string,
/// `null`, an object) reads 0 — what [`count`] reads from a `Value`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(n).unwrap_or(0)))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Count(0))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}
