//! Usage of non-streamed responses and the streaming passthrough.

use std::fmt;

use memchr::memmem::Finder;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{is_empty_array, is_null, raw_string, skip_ws, JsonObject, Key};
use crate::error::upstream_error_message;
use crate::sse::{SseDecoder, SseError, SseEvent, SseItem, DEFAULT_MAX_EVENT_BYTES};
use crate::usage::Usage;

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
            self.model = obj.get("model").and_then(raw_string).filter(|m| !m.is_empty());
        }
        let is_error =
            obj.get("error").is_some_and(|e| !is_null(e)) || obj.get("object").map(RawValue::get) == Some("\"error\"");
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
                JsonObject::parse_raw(d)
                    .is_ok_and(|delta| TOKEN_FIELDS.iter().any(|f| delta.get(f).is_some_and(non_empty)))
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
    use serde_json::json;

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
            chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null", "null")
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
        before.push_str(&format!("data: {}\r\n\r\n", chunk("{}", "\"stop\"", "null")));
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
        assert_eq!(String::from_utf8(r.out).unwrap(), stream.replace(&usage_block, ""));
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
            let cafe_end =
                stream.find("Café").unwrap() + stream[stream.find("Café").unwrap()..].find("\n\n").unwrap() + 2;
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
        let reasoning = format!("data: {}\n\n", chunk(r#"{"reasoning_content":"hm"}"#, "null", "null"));
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
        let body = "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit\"}}\n\n";
        p.push(body.as_bytes(), &mut out);
        assert_eq!(p.error(), Some("Rate limit reached"));
        assert_eq!(out, body.as_bytes());
        assert!(!p.failed() && !p.saw_done());

        let mut p = OpenAiStreamPassthrough::new(false);
        let vllm = "data: {\"object\":\"error\",\"message\":\"bad\",\"type\":\"BadRequestError\",\"code\":400}\n\n";
        p.push(vllm.as_bytes(), &mut out);
        assert_eq!(p.error(), Some("bad"));

        let mut p = OpenAiStreamPassthrough::new(false);
        p.push(b"event: error\ndata: {\"message\":\"overloaded\"}\n\n", &mut out);
        assert_eq!(p.error(), Some("overloaded"));

        // "error" inside content is not an error.
        let mut p = OpenAiStreamPassthrough::new(false);
        let c = format!("data: {}\n\n", chunk(r#"{"content":"error"}"#, "null", "null"));
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
