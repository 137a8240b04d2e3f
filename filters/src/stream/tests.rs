//! The stream rules, mode by mode. (Fixture goldens and every-byte split
//! invariance for every dialect pair live in `filters/tests/`.)

use super::*;
use crate::ir::ResponseOptions;
use serde_json::{json, Value};

const PROVIDER: &str = "mock-east";

fn opts(include_usage: bool) -> ResponseOptions {
    ResponseOptions {
        model: None,
        id: None,
        created: 1_700_000_000,
        include_usage,
    }
}

fn processor(up: WireDialect, caller: Dialect, include_usage: bool) -> StreamProcessor {
    StreamProcessor::new(StreamSpec::new(up, caller, PROVIDER, opts(include_usage)))
}

/// Pushes every piece, finishes (cleanly unless `cut` is given), returns the
/// caller's bytes as text and the processor.
fn run(mut p: StreamProcessor, pieces: &[&[u8]], cut: Option<ErrorInfo>) -> (String, StreamProcessor) {
    let mut out = Vec::new();
    for piece in pieces {
        p.push(piece, &mut out);
    }
    p.finish(cut, &mut out);
    (String::from_utf8(out).expect("utf-8"), p)
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",
               "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}]})
    )
}

const USAGE_JSON: &str = r#"{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}"#;

fn usage_chunk() -> String {
    format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{USAGE_JSON}}}\n\n")
}

/// A realistic OpenAI stream with injected usage: mixed LF/CRLF, a
/// keep-alive comment, multi-byte UTF-8, a multi-line data field.
fn openai_stream() -> (String, String) {
    let mut s = String::from(": OPENROUTER PROCESSING\r\n\r\n");
    s.push_str(&chunk(json!({"role":"assistant","content":"","refusal":null}), None).replace("\n\n", "\r\n\r\n"));
    s.push_str(&chunk(json!({"content":"Café "}), None));
    s.push_str(&chunk(json!({"content":"😀 ok"}), None).replacen("data: ", "data:", 1));
    let split = chunk(json!({"content":" \"usage\": x"}), None);
    let at = split.find("\"choices\"").expect("choices");
    s.push_str(&format!("{}\ndata: {}", &split[..at], &split[at..]));
    s.push_str(&chunk(json!({}), Some("stop")));
    let usage = usage_chunk();
    s.push_str(&usage);
    s.push_str("data: [DONE]\r\n\r\n");
    (s, usage)
}

fn data_of(out: &str) -> Vec<Value> {
    out.split("\n\n")
        .filter_map(|b| {
            let d: Vec<&str> = b
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(|x| x.strip_prefix(' ').unwrap_or(x)))
                .collect();
            (!d.is_empty()).then(|| d.join("\n"))
        })
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}")))
        .collect()
}

// ------------------------------------------------------------ OpenAI relay

#[test]
fn openai_relay_is_byte_identical_and_reads_usage() {
    let (stream, _) = openai_stream();
    let (out, mut p) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, true),
        &[stream.as_bytes()],
        None,
    );
    assert_eq!(out, stream);
    assert!(p.failure().is_none() && p.is_finished() && p.first_token_seen());
    let (u, src) = p.usage();
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.reasoning_tokens
        ),
        (12, 4, 2, 1)
    );
    assert_eq!(src, UsageSource::Provider);
}

#[test]
fn openai_relay_strips_only_the_injected_usage_chunk() {
    let (stream, usage) = openai_stream();
    let (out, mut p) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[stream.as_bytes()],
        None,
    );
    assert_eq!(out, stream.replace(&usage, ""));
    assert_eq!(p.usage().0.total(), 16, "usage is recorded even when hidden");
}

#[test]
fn openai_relay_output_is_independent_of_splits() {
    let (stream, _) = openai_stream();
    let bytes = stream.as_bytes();
    for include_usage in [false, true] {
        let (whole, _) = run(
            processor(WireDialect::OpenAi, Dialect::OpenAi, include_usage),
            &[bytes],
            None,
        );
        for cut in 0..=bytes.len() {
            let (split, _) = run(
                processor(WireDialect::OpenAi, Dialect::OpenAi, include_usage),
                &[&bytes[..cut], &bytes[cut..]],
                None,
            );
            assert_eq!(split, whole, "cut at {cut}");
        }
    }
}

#[test]
fn openai_stream_closed_before_finish_reason_ends_with_an_error_event() {
    let body = chunk(json!({"role":"assistant","content":"Hel"}), None) + &chunk(json!({"content":"lo"}), None);
    let (out, p) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[body.as_bytes()],
        None,
    );
    assert!(out.starts_with(&body), "what arrived is forwarded first");
    let last = data_of(&out).pop().expect("events");
    assert_eq!(
        last["error"]["message"],
        "Provider `mock-east` ended the stream before the response was complete"
    );
    assert_eq!(last["error"]["code"], "upstream_stream_truncated");
    assert!(!out.contains("[DONE]"), "a truncated stream must not look complete");
    assert_eq!(p.failure(), Some(&StreamFailure::Truncated));
}

#[test]
fn openai_stream_with_finish_reason_but_no_done_is_completed() {
    let body = chunk(json!({"content":"Hi"}), None) + &chunk(json!({}), Some("stop"));
    let (out, p) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[body.as_bytes()],
        None,
    );
    assert_eq!(out, format!("{body}data: [DONE]\n\n"));
    assert!(p.failure().is_none());
}

#[test]
fn a_cut_mid_event_drops_the_partial_line_and_writes_the_error_on_its_own() {
    let first = chunk(json!({"content":"partial"}), None);
    let partial = "data: {\"id\":\"zz-partial";
    for caller in [Dialect::OpenAi, Dialect::Anthropic] {
        let info = ErrorInfo {
            message: "Could not reach provider `mock-east`: connection reset".into(),
            kind: "api_error",
            param: None,
            code: Some("upstream_unreachable"),
            anthropic_kind: "api_error",
        };
        let (out, p) = run(
            processor(WireDialect::OpenAi, caller, false),
            &[first.as_bytes(), partial.as_bytes()],
            Some(info.clone()),
        );
        assert!(
            !out.contains("zz-partial"),
            "{caller:?}: the partial event leaked: {out}"
        );
        assert!(out.ends_with("\n\n"));
        let last = data_of(&out).pop().expect("events");
        let msg = match caller {
            Dialect::OpenAi => &last["error"]["message"],
            Dialect::Anthropic => &last["error"]["message"],
        };
        assert_eq!(msg, &json!(info.message), "{caller:?}: {out}");
        assert_eq!(p.failure(), Some(&StreamFailure::Interrupted(info)));
    }
}

#[test]
fn a_malformed_event_becomes_an_error_event_and_is_not_forwarded() {
    let body =
        chunk(json!({"content":"ok"}), None) + "data: {\"broken\":\n\n" + &chunk(json!({"content":"late"}), None);
    let (out, p) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[body.as_bytes()],
        None,
    );
    assert!(!out.contains("broken") && !out.contains("late"), "{out}");
    let last = data_of(&out).pop().expect("events");
    assert!(last["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Provider `mock-east` sent an invalid stream")));
    assert!(matches!(p.failure(), Some(StreamFailure::Malformed(_))));
}

#[test]
fn an_oversized_event_ends_the_stream_with_an_error_event() {
    let mut spec = StreamSpec::new(WireDialect::OpenAi, Dialect::OpenAi, PROVIDER, opts(false));
    spec.max_event_bytes = 256;
    let first = chunk(json!({"content":"a"}), None);
    let huge = format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(400));
    let (out, p) = run(StreamProcessor::new(spec), &[first.as_bytes(), huge.as_bytes()], None);
    assert!(out.starts_with(&first));
    let last = data_of(&out).pop().expect("events");
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("256 bytes")),
        "{out}"
    );
    assert_eq!(p.failure(), Some(&StreamFailure::TooLarge { limit: 256 }));
}

#[test]
fn in_band_errors_end_the_stream_in_the_callers_envelope() {
    let cases = [
        "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}\n\n",
        "data: {\"object\":\"error\",\"message\":\"Rate limit reached\",\"type\":\"BadRequestError\",\"code\":400}\n\n",
        "event: error\ndata: {\"message\":\"Rate limit reached\"}\n\n",
    ];
    for case in cases {
        let body = chunk(json!({"content":"a"}), None) + case;
        let (out, p) = run(
            processor(WireDialect::OpenAi, Dialect::OpenAi, false),
            &[body.as_bytes()],
            None,
        );
        let last = data_of(&out).pop().expect("events");
        assert_eq!(
            last["error"]["message"], "Provider `mock-east` reported an error mid-stream: Rate limit reached",
            "{case}"
        );
        assert!(matches!(p.failure(), Some(StreamFailure::Upstream(_))));
    }
}

#[test]
fn credentials_quoted_in_a_mid_stream_error_are_scrubbed_in_every_mode() {
    let quoted = "Incorrect API key provided: Bearer sk-hostile-999 (key sk-hostile-999)";
    let bodies = [
        (WireDialect::OpenAi, Dialect::OpenAi, format!("{}data: {{\"error\":{{\"message\":\"{quoted}\"}}}}\n\n", chunk(json!({"content":"a"}), None))),
        (WireDialect::OpenAi, Dialect::Anthropic, format!("{}data: {{\"error\":{{\"message\":\"{quoted}\"}}}}\n\n", chunk(json!({"content":"a"}), None))),
        (WireDialect::Anthropic, Dialect::Anthropic, format!("event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"{quoted}\"}}}}\n\n")),
    ];
    for (up, caller, body) in bodies {
        let spec = StreamSpec {
            scrubber: Some(std::sync::Arc::new(crate::scrub::Scrubber::new(["sk-hostile-999"]))),
            ..StreamSpec::new(up, caller, "mock-east", opts(false))
        };
        let (out, p) = run(StreamProcessor::new(spec), &[body.as_bytes()], None);
        assert!(!out.contains("sk-hostile"), "{up:?}->{caller:?}: {out}");
        assert!(out.contains("Bearer [REDACTED] (key [REDACTED])"), "{out}");
        let f = p.failure().expect("failed");
        assert!(!f.info("x").message.contains("sk-hostile"), "{f:?}");
    }
}

#[test]
fn repeated_tool_call_ids_and_names_are_sent_once_per_call() {
    // llama.cpp repeats `id`, `type` and `function.name` in every fragment.
    let frag = |args: &str| {
        chunk(
            json!({"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":args}}]}),
            None,
        )
    };
    let body = frag("") + &frag("{\"city\":") + &frag("\"Paris\"}") + &chunk(json!({}), Some("tool_calls"));
    let (out, _) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[body.as_bytes()],
        None,
    );
    let events = data_of(&out);
    let calls: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    for later in &calls[1..] {
        assert!(later.get("id").is_none() && later.get("type").is_none(), "{later}");
        assert!(later["function"].get("name").is_none(), "{later}");
    }
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    // A name that arrives late (after the id) is still delivered once.
    let late = chunk(
        json!({"tool_calls":[{"index":0,"id":"c","function":{"arguments":""}}]}),
        None,
    ) + &chunk(
        json!({"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}),
        None,
    );
    let (out, _) = run(
        processor(WireDialect::OpenAi, Dialect::OpenAi, false),
        &[late.as_bytes()],
        None,
    );
    assert!(out.starts_with(&late), "nothing repeated, nothing rewritten");
}

#[test]
fn a_stream_without_usage_gets_an_estimate_and_says_so() {
    let request = bytes::Bytes::from_static(
        br#"{"model":"smollm2","messages":[{"role":"user","content":"Say something nice please"}]}"#,
    );
    let body = chunk(json!({"role":"assistant","content":""}), None)
        + &chunk(json!({"content":"Hello there, friend"}), None)
        + &chunk(json!({}), Some("stop"))
        + "data: [DONE]\n\n";
    let mut spec = StreamSpec::new(WireDialect::OpenAi, Dialect::OpenAi, PROVIDER, opts(true));
    spec.input = InputEstimate::Request {
        dialect: WireDialect::OpenAi,
        body: request,
    };
    let (out, mut p) = run(StreamProcessor::new(spec), &[body.as_bytes()], None);
    let (u, src) = p.usage();
    assert_eq!(src, UsageSource::Estimated);
    // "Say something nice please" = 25 chars → 7, + 4 per message + 3 primer.
    assert_eq!(u.input_tokens, 14);
    assert_eq!(u.output_tokens, 5, "19 generated characters");
    let usage = data_of(&out)
        .into_iter()
        .find(|e| e["usage"].is_object())
        .expect("the caller asked for usage: an estimated usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 14);
    assert_eq!(usage["usage"]["total_tokens"], 19);
    assert_eq!(usage["id"], "chatcmpl-1");
    assert!(out.ends_with("data: [DONE]\n\n"));
}

// --------------------------------------------------------- Anthropic relay

const ANTHROPIC: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hé😀\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn anthropic_relay_is_byte_identical_and_merges_usage() {
    let (out, mut p) = run(
        processor(WireDialect::Anthropic, Dialect::Anthropic, false),
        &[ANTHROPIC.as_bytes()],
        None,
    );
    assert_eq!(out, ANTHROPIC);
    let (u, src) = p.usage();
    assert_eq!((u.input_tokens, u.cached_input_tokens, u.output_tokens), (125, 100, 15));
    assert_eq!(src, UsageSource::Provider);
    assert!(p.failure().is_none() && p.first_token_seen());
    let bytes = ANTHROPIC.as_bytes();
    for cut in 0..bytes.len() {
        let (split, _) = run(
            processor(WireDialect::Anthropic, Dialect::Anthropic, false),
            &[&bytes[..cut], &bytes[cut..]],
            None,
        );
        assert_eq!(split, out, "cut at {cut}");
    }
}

#[test]
fn anthropic_stream_without_message_start_is_refused_naming_the_provider() {
    let body = &ANTHROPIC[ANTHROPIC.find("event: ping").expect("ping")..];
    let (out, p) = run(
        processor(WireDialect::Anthropic, Dialect::Anthropic, false),
        &[body.as_bytes()],
        None,
    );
    assert!(!out.contains("\"type\":\"content_block_start\""), "{out}");
    assert!(out.ends_with("\n\n") && out.contains("event: error\n"));
    let last = data_of(&out).pop().expect("events");
    assert_eq!(last["type"], "error");
    assert!(last["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("`mock-east`") && m.contains("message_start")));
    assert!(matches!(p.failure(), Some(StreamFailure::Malformed(_))));
}

#[test]
fn anthropic_truncation_and_a_lost_message_stop() {
    let cut = &ANTHROPIC[..ANTHROPIC.find("event: content_block_stop").expect("stop")];
    let (out, p) = run(
        processor(WireDialect::Anthropic, Dialect::Anthropic, false),
        &[cut.as_bytes()],
        None,
    );
    assert!(out.ends_with("\n\n"));
    assert_eq!(data_of(&out).pop().expect("events")["type"], "error");
    assert_eq!(p.failure(), Some(&StreamFailure::Truncated));
    let no_stop = &ANTHROPIC[..ANTHROPIC.find("event: message_stop").expect("stop")];
    let (out, p) = run(
        processor(WireDialect::Anthropic, Dialect::Anthropic, false),
        &[no_stop.as_bytes()],
        None,
    );
    assert_eq!(out, ANTHROPIC, "the message_stop is written for the provider");
    assert!(p.failure().is_none());
}

// ---------------------------------------------------------------- translation

#[test]
fn translated_streams_report_estimates_when_the_provider_reports_nothing() {
    let body = chunk(json!({"role":"assistant","content":""}), None)
        + &chunk(json!({"content":"12345678"}), None)
        + &chunk(json!({}), Some("stop"))
        + "data: [DONE]\n\n";
    let mut spec = StreamSpec::new(WireDialect::OpenAi, Dialect::Anthropic, PROVIDER, opts(false));
    spec.input = InputEstimate::Tokens(42);
    let (out, mut p) = run(StreamProcessor::new(spec), &[body.as_bytes()], None);
    let events = data_of(&out);
    assert_eq!(events[0]["type"], "message_start");
    assert_eq!(events[0]["message"]["usage"]["input_tokens"], 42);
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["usage"]["output_tokens"], 2);
    assert_eq!(delta["usage"]["input_tokens"], 42);
    assert_eq!(
        p.usage(),
        (
            Usage {
                input_tokens: 42,
                output_tokens: 2,
                ..Usage::default()
            },
            UsageSource::Estimated
        )
    );
}

#[test]
fn vllm_stop_reason_becomes_anthropic_stop_sequence() {
    let body = chunk(json!({"content":"one two"}), None)
        + &format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
                   "choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"THREE"}]})
        )
        + "data: [DONE]\n\n";
    let (out, _) = run(
        processor(WireDialect::OpenAi, Dialect::Anthropic, false),
        &[body.as_bytes()],
        None,
    );
    let delta = data_of(&out)
        .into_iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "THREE");
}

#[test]
fn a_whole_response_replays_as_a_spec_exact_stream() {
    let resp = crate::codec::decode_response(
        WireDialect::OpenAi,
        br#"{"id":"chatcmpl-9","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
    )
    .expect("decodes");
    let anthropic = String::from_utf8(replay(&resp, Dialect::Anthropic, opts(false))).expect("utf-8");
    let types: Vec<String> = data_of(&anthropic)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let openai = String::from_utf8(replay(&resp, Dialect::OpenAi, opts(true))).expect("utf-8");
    assert!(openai.ends_with("data: [DONE]\n\n"));
    assert!(data_of(&openai).iter().any(|e| e["usage"]["total_tokens"] == 5));
}
