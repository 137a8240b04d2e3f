//! Answering the caller from the response source: a local answer, a whole
//! upstream body (checked, translated when the dialects differ), or a stream
//! relayed event by event through one [`StreamProcessor`] — written as each
//! event completes, in one write, never buffered.

use super::attempt::{Reply, Source};
use super::Failure;
use crate::error::GatewayError;
use crate::http;
use crate::providers::Provider;
use crate::state::Gateway;
use crate::summary::RequestSummary;
use crate::upstream::Exchange;
use pingora_proxy::Session;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_filters::anthropic::passthrough::{checked_count_tokens, checked_message_usage};
use switchyard_filters::codec::{decode_response, encode_response, ResponseOptions};
use switchyard_filters::error::Dialect;
use switchyard_filters::estimate::output_tokens;
use switchyard_filters::gemini::embeddings_response;
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::{checked_response_usage, fix_embeddings_encoding, ResponseKind};
use switchyard_filters::stream::{replay, InputEstimate, StreamProcessor, StreamSpec, UsageSource};
use switchyard_filters::usage::Usage;

/// Largest non-streamed upstream response accepted (embeddings of big
/// batches are large; anything beyond this is a broken upstream).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// Sends the response.
pub async fn send(g: &Gateway, session: &mut Session, s: &mut RequestSummary, source: Source) -> Result<(), Failure> {
    // `_busy` counts the request in flight until this returns.
    let (ex, provider, reply, _busy) = match source {
        Source::Local(a) => {
            http::respond(session, s, a.status, a.body, &a.headers).await;
            return Ok(());
        }
        Source::Upstream {
            exchange,
            provider,
            reply,
            busy,
        } => (exchange, provider, reply, busy),
    };
    let mut headers = ex.passthrough_headers();
    // Room for what follows (provider, attempts, a governed key's six
    // rate-limit headers): one allocation, not a regrowth per addition.
    headers.reserve(8);
    headers.extend(http::header(
        crate::header_name!("x-switchyard-provider"),
        &provider.name,
    ));
    headers.extend(super::attempt::attempts_header(s));
    super::govern::add_headers(s, &mut headers);
    if let Reply::Chat {
        upstream,
        caller,
        stream: true,
        include_usage,
        input,
    } = reply
    {
        // Relayed as SSE whatever the content type says — unless the
        // provider ignored `stream: true` and answered JSON, which is then
        // replayed as the stream the caller asked for.
        if !ex.is_json() {
            let spec = StreamSpec {
                input,
                scrubber: Some(g.live.snapshot().scrubber.clone()),
                ..StreamSpec::new(upstream, caller, provider.name.clone(), options(include_usage))
            };
            // Boxed: the relay's state (the stream processor, the timer)
            // would otherwise be part of every request's future, which is
            // copied whole when it is boxed, streamed or not.
            Box::pin(relay(
                g,
                session,
                s,
                &provider,
                ex,
                StreamProcessor::new(spec),
                &headers,
            ))
            .await;
            return Ok(());
        }
        let raw = read_whole(g, ex).await?;
        let resp = decode_response(upstream, &raw).map_err(|e| bad_body(&provider, e.message))?;
        s.usage = Some(resp.usage);
        let out = replay(&resp, caller, options(include_usage));
        if http::start_event_stream(session, s, &headers).await {
            http::write_stream_chunk(session, s, &out, true).await;
        }
        return Ok(());
    }
    let raw = read_whole(g, ex).await?;
    let body = match reply {
        Reply::Chat {
            upstream,
            caller,
            input,
            ..
        } => whole_chat(s, &provider, upstream, caller, input, raw)?,
        Reply::Embeddings { encoding } => {
            let fixed = match fix_embeddings_encoding(&raw, encoding) {
                Ok(Some(fixed)) => fixed,
                Ok(None) => raw,
                Err(e) => return Err(bad_body(&provider, format!("embeddings response: {e}")).into()),
            };
            s.usage = checked_response_usage(&fixed, ResponseKind::Embeddings).map_err(|e| bad_body(&provider, e))?;
            fixed
        }
        Reply::GeminiEmbeddings { meta } => {
            let (b, u) = embeddings_response(&raw, &meta)
                .map_err(|e| bad_body(&provider, format!("embeddings response: {}", e.message)))?;
            s.usage = Some(u);
            b
        }
        Reply::CountTokens => {
            checked_count_tokens(&raw).map_err(|e| bad_body(&provider, e))?;
            raw
        }
    };
    http::respond(session, s, 200, body, &headers).await;
    Ok(())
}

/// A whole chat response in the caller's dialect: same-dialect bodies are
/// checked and passed on, others translated. Usage the provider did not
/// report is estimated, and recorded as such.
fn whole_chat(
    s: &mut RequestSummary,
    p: &Provider,
    upstream: WireDialect,
    caller: Dialect,
    mut input: InputEstimate,
    raw: Vec<u8>,
) -> Result<Vec<u8>, GatewayError> {
    let (body, usage) = if WireDialect::from(caller) == upstream {
        let usage = match upstream {
            WireDialect::Anthropic => checked_message_usage(&raw),
            WireDialect::OpenAi | WireDialect::Gemini => checked_response_usage(&raw, ResponseKind::Chat),
        }
        .map_err(|e| bad_body(p, e))?;
        (raw, usage)
    } else {
        let resp = decode_response(upstream, &raw).map_err(|e| bad_body(p, e.message))?;
        let usage = (resp.usage != Usage::default()).then_some(resp.usage);
        (encode_response(caller, &resp, &options(false)), usage)
    };
    match usage {
        Some(u) => s.usage = Some(u),
        None => {
            // Only here is a same-dialect body decoded: to count its text.
            let out = decode_response(upstream, &body).map(|r| output_tokens(&r)).unwrap_or(0);
            s.usage = Some(Usage {
                input_tokens: input.tokens(),
                output_tokens: out,
                ..Usage::default()
            });
            s.usage_source = UsageSource::Estimated;
        }
    }
    Ok(body)
}

/// Relays a stream: each completed event is written as soon as it completes,
/// in one write; usage and the first token are read on the way; however it
/// ends, the summary says how.
async fn relay(
    g: &Gateway,
    session: &mut Session,
    s: &mut RequestSummary,
    p: &Provider,
    mut ex: Exchange,
    mut proc: StreamProcessor,
    headers: &[(::http::HeaderName, ::http::HeaderValue)],
) {
    if !http::start_event_stream(session, s, headers).await {
        return;
    }
    let mut out = Vec::with_capacity(8192);
    let mut clean_end = false;
    // One timer per stream, re-armed per chunk, boxed so a stream without
    // `stream_idle_timeout` carries no timer in its state.
    let mut idle = p.stream_idle_timeout.map(|d| (d, Box::pin(tokio::time::sleep(d))));
    loop {
        out.clear();
        let next = match &mut idle {
            None => ex.read_chunk().await,
            Some((d, timer)) => {
                timer.as_mut().reset(tokio::time::Instant::now() + *d);
                tokio::select! {
                    read = ex.read_chunk() => read,
                    () = timer.as_mut() => Err(GatewayError::UpstreamTimeout {
                        provider: p.name.clone(),
                    }),
                }
            }
        };
        let end = match next {
            Ok(Some(chunk)) => {
                proc.push(&chunk, &mut out);
                proc.is_finished()
            }
            Ok(None) => {
                proc.finish(None, &mut out);
                clean_end = true;
                true
            }
            Err(e) => {
                // The caller's error event and the record say the same thing.
                proc.finish(Some(e.info()), &mut out);
                s.error = Some(e);
                true
            }
        };
        if s.ttft.is_none() && proc.first_token_seen() {
            s.ttft = Some(s.start.elapsed());
        }
        if !http::write_stream_chunk(session, s, &out, end).await || end {
            break;
        }
    }
    let (usage, source) = proc.usage();
    s.usage = Some(usage);
    s.usage_source = source;
    if let Some(f) = proc.failure() {
        if s.error.is_none() {
            s.error = Some(GatewayError::UpstreamStream {
                provider: p.name.clone(),
                failure: Box::new(f.clone()),
            });
        }
    }
    if clean_end {
        g.upstream.release(ex).await;
    } else if proc.is_finished() && proc.failure().is_none() {
        // The stream completed before the body ended ([DONE] came before
        // the final chunk): read the rest, briefly, so the connection can
        // be pooled again.
        let rest = tokio::time::timeout(REUSE_DRAIN, async { while let Ok(Some(_)) = ex.read_chunk().await {} });
        if rest.await.is_ok() {
            g.upstream.release(ex).await;
        }
    }
}

/// How long a completed stream's remaining body bytes are awaited for the
/// connection to be reused.
const REUSE_DRAIN: std::time::Duration = std::time::Duration::from_millis(250);

async fn read_whole(g: &Gateway, mut ex: Exchange) -> Result<Vec<u8>, GatewayError> {
    let raw = ex.read_all(MAX_RESPONSE).await?;
    g.upstream.release(ex).await;
    Ok(raw)
}

fn bad_body(p: &Provider, detail: String) -> GatewayError {
    GatewayError::UpstreamProtocol {
        provider: p.name.clone(),
        detail,
    }
}

/// Options for translated output: the upstream's id and model, now.
fn options(include_usage: bool) -> ResponseOptions {
    ResponseOptions {
        model: None,
        id: None,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        include_usage,
    }
}
