//! OpenAI `/v1/embeddings` ⇄ Gemini `batchEmbedContents`.

use crate::ir::CodecError;
use crate::jv;
use crate::usage::Usage;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// What the response side needs to remember from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingsMeta {
    /// Model name to report to the caller.
    pub model: String,
    /// The caller asked for `encoding_format: base64`.
    pub base64: bool,
    /// Number of inputs sent (the response must have as many embeddings).
    pub count: usize,
    /// Estimated input tokens (Gemini's batch endpoint reports none):
    /// `ceil(chars / 4)` per input.
    pub estimated_tokens: u64,
}

/// Translates an OpenAI embeddings request into a `batchEmbedContents` body
/// for `upstream_model` (`models/` is prefixed when missing). Inputs may be a
/// string or an array of strings; token-id inputs cannot be translated and
/// are rejected with `param: input`. `dimensions` → `outputDimensionality`.
pub fn embeddings_request(body: &[u8], upstream_model: &str) -> Result<(Vec<u8>, EmbeddingsMeta), CodecError> {
    embeddings_request_map(&jv::parse_object(body)?, upstream_model)
}

/// [`embeddings_request`] from the already-parsed top-level fields.
pub fn embeddings_request_map(
    m: &serde_json::Map<String, Value>,
    upstream_model: &str,
) -> Result<(Vec<u8>, EmbeddingsMeta), CodecError> {
    let caller_model = jv::req_str(m, "model", "model")?.to_string();
    let inputs: Vec<String> = match m.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    CodecError::invalid(
                        "input",
                        "only string inputs can be sent to this provider (no token arrays)",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(CodecError::invalid(
                "input",
                "`input` must be a string or a non-empty array of strings",
            ))
        }
    };
    let base64 = match jv::opt_str(m, "encoding_format", "encoding_format")?.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(CodecError::invalid(
                "encoding_format",
                "`encoding_format` must be float or base64",
            ))
        }
    };
    let dims = jv::opt_u32(m, "dimensions", "dimensions")?;
    let model_path = if upstream_model.starts_with("models/") {
        upstream_model.to_string()
    } else {
        format!("models/{upstream_model}")
    };
    let requests: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let mut r = json!({"model": model_path, "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    let estimated_tokens = inputs.iter().map(|s| (s.chars().count() as u64).div_ceil(4)).sum();
    let body = serde_json::to_vec(&json!({"requests": requests})).map_err(|e| CodecError::body(e.to_string()))?;
    Ok((
        body,
        EmbeddingsMeta {
            model: caller_model,
            base64,
            count: inputs.len(),
            estimated_tokens,
        },
    ))
}

/// Translates a `batchEmbedContents` response (`embeddings[].values`) into an
/// OpenAI embeddings list: float arrays, or base64 of little-endian f32 when
/// the caller asked for base64 (what OpenAI SDKs decode). Usage is the
/// request-side estimate (see [`EmbeddingsMeta::estimated_tokens`]).
pub fn embeddings_response(body: &[u8], meta: &EmbeddingsMeta) -> Result<(Vec<u8>, Usage), CodecError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::body(format!("upstream body is not valid JSON: {e}")))?;
    let embs = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| CodecError::body("upstream response has no `embeddings`"))?;
    if embs.len() != meta.count {
        return Err(CodecError::body(format!(
            "upstream returned {} embeddings for {} inputs",
            embs.len(),
            meta.count
        )));
    }
    let mut data = Vec::with_capacity(embs.len());
    for (i, e) in embs.iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| CodecError::body(format!("upstream embedding {i} has no `values`")))?;
        let embedding = if meta.base64 {
            let mut bytes = Vec::with_capacity(values.len() * 4);
            for x in values {
                bytes.extend_from_slice(&(x.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
            }
            json!(STANDARD.encode(bytes))
        } else {
            Value::Array(values.clone())
        };
        data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
    }
    let usage = Usage {
        input_tokens: meta.estimated_tokens,
        ..Usage::default()
    };
    let out = json!({
        "object": "list",
        "data": data,
        "model": meta.model,
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
    });
    Ok((out.to_string().into_bytes(), usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_request_and_base64_response() {
        let (body, meta) = embeddings_request(
            r#"{"model":"text-embedding-3-small","input":["hello","wörld"],"encoding_format":"base64","dimensions":3}"#
                .as_bytes(),
            "gemini-embedding-001",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["requests"][1],
            json!({"model": "models/gemini-embedding-001",
            "content": {"parts": [{"text": "wörld"}]}, "outputDimensionality": 3})
        );
        assert_eq!(meta.count, 2);
        let (out, usage) = embeddings_response(
            br#"{"embeddings":[{"values":[1.0,-0.5,0.25]},{"values":[0,0,0]}]}"#,
            &meta,
        )
        .unwrap();
        let o: Value = serde_json::from_slice(&out).unwrap();
        let b = STANDARD.decode(o["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let f: Vec<f32> = b
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(f, vec![1.0, -0.5, 0.25]);
        assert_eq!(o["model"], "text-embedding-3-small");
        assert_eq!(usage.input_tokens, 4);
    }

    #[test]
    fn token_inputs_and_count_mismatch_are_errors() {
        let e = embeddings_request(br#"{"model":"m","input":[[1,2,3]]}"#, "g").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
        let (_, meta) = embeddings_request(br#"{"model":"m","input":"x"}"#, "g").unwrap();
        assert!(embeddings_response(br#"{"embeddings":[]}"#, &meta).is_err());
    }
}
