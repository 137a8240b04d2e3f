//! Bodies of the fuzz targets, shared with the stable-toolchain smoke test
//! (`filters/tests/fuzz_smoke.rs`) so both exercise exactly the same checks.
//!
//! Each body must never panic for any input; the asserts are the invariants.

use switchyard_filters::codec::{decode_request, decode_response, encode_request, encode_response, ResponseOptions};
use switchyard_filters::error::Dialect;
use switchyard_filters::estimate::input_tokens as estimate_input_tokens;
use switchyard_filters::gemini::{embeddings_request, embeddings_response};
use switchyard_filters::ir::WireDialect;
use switchyard_filters::sse::{SseDecoder, SseItem};
use switchyard_filters::stream::{StreamProcessor, StreamSpec};

const UPSTREAMS: [WireDialect; 3] = [WireDialect::OpenAi, WireDialect::Anthropic, WireDialect::Gemini];
const CALLERS: [Dialect; 2] = [Dialect::OpenAi, Dialect::Anthropic];

/// A split point derived from the input itself (deterministic).
fn cut_of(data: &[u8]) -> usize {
    match data.first() {
        Some(b) => (*b as usize * 7919) % (data.len() + 1),
        None => 0,
    }
}

fn sse_items(chunks: &[&[u8]]) -> Vec<(SseItem, Vec<u8>)> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        if d.push(c).is_err() {
            return out;
        }
        while let Some(i) = d.next_item() {
            out.push((i, d.last_raw().to_vec()));
        }
    }
    d.finish();
    while let Some(i) = d.next_item() {
        out.push((i, d.last_raw().to_vec()));
    }
    out
}

/// SSE decoder: no panic, and split-invariant.
pub fn sse_decoder(data: &[u8]) {
    let whole = sse_items(&[data]);
    let cut = cut_of(data);
    assert_eq!(sse_items(&[&data[..cut], &data[cut..]]), whole, "split at {cut}");
}

/// Request decoders of every dialect, and every encoder on what decodes.
pub fn decode_requests(data: &[u8]) {
    for d in UPSTREAMS {
        if let Ok(req) = decode_request(d, data) {
            let _ = estimate_input_tokens(&req);
            for t in UPSTREAMS {
                if let Ok(body) = encode_request(t, &req) {
                    assert!(
                        serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                        "encoder wrote invalid JSON"
                    );
                }
            }
        }
    }
    if let Ok((body, meta)) = embeddings_request(data, "gemini-embedding-001") {
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        let _ = embeddings_response(data, &meta);
    }
}

/// Response decoders of every dialect, re-encoded for every caller.
pub fn decode_responses(data: &[u8]) {
    let opts = ResponseOptions {
        created: 1,
        ..ResponseOptions::default()
    };
    for up in UPSTREAMS {
        if let Ok(resp) = decode_response(up, data) {
            for c in CALLERS {
                let body = encode_response(c, &resp, &opts);
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                    "response is not JSON"
                );
            }
        }
    }
}

fn translate(up: WireDialect, caller: Dialect, chunks: &[&[u8]]) -> Vec<u8> {
    let opts = ResponseOptions {
        model: None,
        id: None,
        created: 1,
        include_usage: true,
    };
    let mut t = StreamProcessor::new(StreamSpec::new(up, caller, "fuzz", opts));
    let mut out = Vec::new();
    for c in chunks {
        t.push(c, &mut out);
    }
    t.finish(None, &mut out);
    assert!(t.is_finished());
    out
}

/// The last event of a relayed stream: relays forward the provider's events
/// as they are, so all they promise is a proper ending — the provider's own
/// terminal event or exactly one error event, last.
fn relay_ending(caller: Dialect, bytes: &[u8]) -> Result<String, String> {
    let mut d = SseDecoder::new();
    d.push(bytes).map_err(|e| e.to_string())?;
    d.finish();
    let mut last = None;
    while let Some(item) = d.next_item() {
        if let SseItem::Event(e) = item {
            last = Some(e);
        }
    }
    let last = last.ok_or("empty stream")?;
    let v: serde_json::Value = serde_json::from_str(&last.data).unwrap_or(serde_json::Value::Null);
    let ok = match caller {
        Dialect::OpenAi => last.data == "[DONE]" || v["error"]["message"].is_string(),
        // The JSON `type` decides, the `event:` line when it has none (as the relay reads it).
        Dialect::Anthropic => {
            let ty = v["type"].as_str().or(last.event.as_deref());
            ty == Some("message_stop") || (ty == Some("error") && v["error"]["message"].is_string())
        }
    };
    if ok {
        Ok(last.data)
    } else {
        Err(format!("relayed stream ends with {:?}", last.data))
    }
}

/// The stream processor for every dialect pair: split-invariant, and the
/// output always obeys the caller's protocol (validators passed in by the
/// harness, which shares them with the integration tests); relays always end
/// properly.
pub fn stream_translator(
    data: &[u8],
    validate_anthropic: fn(&[u8], bool) -> Result<String, String>,
    validate_openai: fn(&[u8], bool) -> Result<String, String>,
) {
    let cut = cut_of(data);
    for up in UPSTREAMS {
        for caller in CALLERS {
            let whole = translate(up, caller, &[data]);
            let split = translate(up, caller, &[&data[..cut], &data[cut..]]);
            assert!(whole == split, "{up:?}→{caller:?}: split at {cut} differs");
            let relay = WireDialect::from(caller) == up;
            let r = match caller {
                _ if relay => relay_ending(caller, &whole),
                // Only an OpenAI upstream can legally interleave tool-call
                // argument fragments (see anthropic::StreamEncoder docs).
                Dialect::Anthropic => validate_anthropic(&whole, up == WireDialect::OpenAi),
                Dialect::OpenAi => validate_openai(&whole, true),
            };
            if let Err(e) = r {
                panic!(
                    "{up:?}→{caller:?}: invalid output: {e}\n{}",
                    String::from_utf8_lossy(&whole)
                );
            }
        }
    }
}
