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
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CodecError::invalid(param, format!("`{param}` must be a string"))),
    }
}

/// An optional non-negative integer that fits u32.
pub fn opt_u32(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<u32>, CodecError> {
    match m.get(key) {
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
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| CodecError::invalid(param, format!("`{param}` must be a number"))),
    }
}

/// An optional boolean.
pub fn opt_bool(m: &Map<String, Value>, key: &str, param: &str) -> Result<Option<bool>, CodecError> {
    match m.get(key) {
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
