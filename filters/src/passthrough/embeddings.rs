//! Embeddings: validating requests and repairing the vector encoding of
//! responses.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    accept_kinds, encode_error, is_null, raw_string, required_string, skip_ws, BodyError, JsonObject, Key, Num,
};

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
    if !matches!(serde_json::from_str::<InputOk>(input.get()), Ok(InputOk(true))) {
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
                Ok(if ok { InputElem::Tokens } else { InputElem::Bad })
            }
        }
        d.deserialize_any(V)
    }
}

const EMBEDDING_FIELD: &str = "data[].embedding";
const EMBEDDING_EXPECTED: &str = "an array of numbers or a base64 string of little-endian float32 values";

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
pub fn fix_embeddings_encoding(resp_body: &[u8], want: EmbeddingEncoding) -> Result<Option<Vec<u8>>, BodyError> {
    if skip_ws(resp_body).first() != Some(&b'{') {
        return Err(JsonObject::parse(resp_body).err().unwrap_or(BodyError::NotAnObject));
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
        let emb = o.get("embedding").ok_or(BodyError::MissingField(EMBEDDING_FIELD))?;
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
fn convert_embedding(emb: &RawValue, want: EmbeddingEncoding, out: &mut Vec<u8>) -> Result<bool, BodyError> {
    match (emb.get().as_bytes().first(), want) {
        (Some(b'['), EmbeddingEncoding::Float) | (Some(b'"'), EmbeddingEncoding::Base64) => Ok(false),
        (Some(b'['), EmbeddingEncoding::Base64) => {
            let nums: Vec<&RawValue> = serde_json::from_str(emb.get()).map_err(|_| bad_embedding())?;
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
            let bytes = BASE64_LENIENT.decode(s.trim()).map_err(|_| bad_embedding())?;
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
                Ok(EmbeddingForm(if ok { ItemForm::Floats } else { ItemForm::Bad }))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passthrough::tests::{as_value, obj};

    #[test]
    fn inspect_embeddings_accepts_all_input_shapes() {
        for input in [r#""hello""#, r#"["a","b"]"#, "[1,2,3]", "[[1,2],[3]]", r#""""#] {
            let body = format!(r#"{{"model":"e","input":{input}}}"#);
            let head = inspect_embeddings(&obj(&body)).unwrap();
            assert_eq!(head.model, "e");
            assert_eq!(head.encoding, EmbeddingEncoding::Float);
            assert!(!head.explicit_encoding);
        }
        let head = inspect_embeddings(&obj(r#"{"model":"e","input":"x","encoding_format":"base64"}"#)).unwrap();
        assert_eq!(
            (head.encoding, head.explicit_encoding),
            (EmbeddingEncoding::Base64, true)
        );
        let head = inspect_embeddings(&obj(r#"{"model":"e","input":"x","encoding_format":"float"}"#)).unwrap();
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
        let err = inspect_embeddings(&obj(r#"{"model":"e","input":"x","encoding_format":"int8"}"#)).unwrap_err();
        assert_eq!(err.to_string(), r#"`encoding_format` must be "float" or "base64""#);
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
        assert_eq!(fix_embeddings_encoding(floats, EmbeddingEncoding::Float), Ok(None));
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
        assert_eq!(out, br#"{"data":[{"embedding":[0.5]},{"embedding":[0.25]}]}"#);
    }

    #[test]
    fn embeddings_errors() {
        let e = |b: &str, w| fix_embeddings_encoding(b.as_bytes(), w).unwrap_err();
        use EmbeddingEncoding::*;
        assert_eq!(e(r#"{"object":"list"}"#, Float), BodyError::MissingField("data"));
        assert_eq!(e(r#"{"data":{}}"#, Float).param(), Some("data"));
        assert_eq!(
            e(r#"{"data":[{"index":0}]}"#, Float),
            BodyError::MissingField(EMBEDDING_FIELD)
        );
        assert_eq!(e(r#"{"data":[{"embedding":null}]}"#, Float), bad_embedding());
        assert_eq!(e(r#"{"data":[{"embedding":[1,"x"]}]}"#, Base64), bad_embedding());
        assert_eq!(e(r#"{"data":[3]}"#, Float), bad_embedding());
        assert_eq!(e(r#"{"data":[{"embedding":[1e39]}]}"#, Base64), bad_embedding());
        assert_eq!(e(r#"{"data":[{"embedding":"!!!"}]}"#, Float), bad_embedding());
        // 3 bytes: not a whole f32.
        assert_eq!(e(r#"{"data":[{"embedding":"AAAA"}]}"#, Float), bad_embedding());
        let nan = format!(r#"{{"data":[{{"embedding":"{}"}}]}}"#, b64(&[f32::NAN]));
        assert_eq!(e(&nan, Float).param(), Some(EMBEDDING_FIELD));
        assert_eq!(e("[1]", Float), BodyError::NotAnObject);
        assert!(matches!(e("{", Float), BodyError::MalformedJson(_)));
        // Unpadded base64 is accepted.
        let unpadded = r#"{"data":[{"embedding":"AACAPw"}]}"#;
        assert_eq!(
            fix_embeddings_encoding(unpadded.as_bytes(), Float).unwrap().unwrap(),
            br#"{"data":[{"embedding":[1.0]}]}"#
        );
    }
}
