//! The attempt loop: for each planned target, encode the request for that
//! provider (the only serialisation on the path), send it, and either return
//! the exchange as the response source or record why the attempt failed and
//! decide whether another target may try. Nothing has reached the caller
//! while this runs, so any failure here can still be retried elsewhere.

use super::circuits;
use super::plan::{Plan, Target};
use super::request::{Call, Request};
use super::Failure;
use crate::error::GatewayError;
use crate::policy::Answer;
use crate::providers::{request_head, CallerHeaders, Operation, Provider};
use crate::resilience::{Busy, Outcome};
use crate::state::Gateway;
use crate::summary::{Attempt, RequestSummary, Served};
use crate::upstream::Exchange;
use bytes::Bytes;
use pingora_http::RequestHeader;
use std::sync::Arc;
use std::time::Instant;
use switchyard_filters::codec::{encode_request, fields_map};
use switchyard_filters::error::{upstream_error_message, Dialect};
use switchyard_filters::estimate::input_tokens;
use switchyard_filters::gemini::{embeddings_request_map, EmbeddingsMeta};
use switchyard_filters::ir::WireDialect;
use switchyard_filters::passthrough::{rewrite_chat, EmbeddingEncoding};
use switchyard_filters::stream::InputEstimate;

/// Largest upstream error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How the provider's answer becomes the caller's.
#[derive(Debug)]
pub enum Reply {
    /// Chat in any dialect pair, streamed or not.
    Chat {
        /// The provider's dialect.
        upstream: WireDialect,
        /// The caller's dialect.
        caller: Dialect,
        /// The caller asked for a stream.
        stream: bool,
        /// OpenAI callers: they asked for the usage chunk.
        include_usage: bool,
        /// Input tokens, for when the provider reports no usage.
        input: InputEstimate,
    },
    /// OpenAI-compatible embeddings, in the encoding the caller expects.
    Embeddings {
        /// `encoding_format` asked for.
        encoding: EmbeddingEncoding,
    },
    /// Gemini `batchEmbedContents`, translated back.
    GeminiEmbeddings {
        /// What the response side needs.
        meta: EmbeddingsMeta,
    },
    /// Anthropic `count_tokens`, passed through.
    CountTokens,
}

/// Where the response comes from.
// Built once per request and moved once: boxing the exchange would only add
// an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A provider answered 2xx; its body is still unread.
    Upstream {
        /// The exchange in progress.
        exchange: Exchange,
        /// Who answered.
        provider: Arc<Provider>,
        /// How to turn it into the caller's answer.
        reply: Reply,
        /// Counts the request in flight on its target until the answer is
        /// done (balancing virtual models only).
        busy: Option<Busy>,
    },
    /// The gateway answers itself.
    Local(Answer),
}

/// A request ready to send to one target.
struct Outbound {
    path: String,
    stream: bool,
    caller_headers: CallerHeaders,
    body: Bytes,
    reply: Reply,
}

impl Outbound {
    /// The request head for `p` with key `key` (built per connection tried).
    fn head(&self, p: &Provider, key: usize) -> Result<RequestHeader, GatewayError> {
        request_head(
            p,
            key,
            http::Method::POST,
            &self.path,
            self.body.len(),
            self.stream,
            &self.caller_headers,
        )
        .map_err(|e| GatewayError::UpstreamProtocol {
            provider: p.name.clone(),
            detail: e.0,
        })
    }
}

/// Walks the plan until a target answers 2xx.
pub async fn run(
    g: &Gateway,
    plan: Plan,
    request: &mut Request<'_>,
    s: &mut RequestSummary,
) -> Result<Source, Failure> {
    let targets = match plan {
        Plan::Local { target, answer } => {
            s.served = Some(served(&target));
            return Ok(Source::Local(answer));
        }
        Plan::Upstream(targets) => targets,
    };
    let mut last: Option<Failure> = None;
    // After a prompt too long for a target: the context window a fallback
    // must exceed to be worth trying.
    let mut need_window: Option<u64> = None;
    // The soonest an open circuit that was skipped lets a probe through, ms.
    let mut open_for: Option<u64> = None;
    for target in targets {
        if need_window.is_some_and(|w| context_window(g, &target).is_none_or(|c| c <= w)) {
            continue;
        }
        if let Err(ms) = admit(g, &target) {
            open_for = Some(open_for.map_or(ms, |o| o.min(ms)));
            continue;
        }
        s.served = Some(served(&target));
        // A request this provider cannot take fails the same everywhere.
        let out = encode(request, &target)?;
        let provider = target.provider.clone();
        let stats = target
            .balanced
            .then(|| super::circuits(g, &provider).stats(&target.upstream_model));
        let busy = stats.clone().map(Busy::start);
        let policy = provider.retry;
        let (mut tries, mut other_keys) = (0u32, 0usize);
        // Tries this target until it answers, its retries are spent, or the
        // failure is one a retry cannot fix.
        let failure = loop {
            let started = Instant::now();
            let key = provider.pick_key();
            let head = || out.head(&provider, key);
            let sent = match provider.first_byte_timeout {
                None => g.upstream.send(&provider, &head, out.body.clone()).await,
                // Boxed: a timer beside the connector's future would grow
                // every request's state, configured or not.
                Some(limit) => Box::pin(tokio::time::timeout(
                    limit,
                    g.upstream.send(&provider, &head, out.body.clone()),
                ))
                .await
                .unwrap_or_else(|_| Err(timeout(&provider))),
            };
            let f = match accept(g, &provider, &out, sent, started, stats.is_some()).await {
                Ok(exchange) => {
                    if let Some(st) = &stats {
                        st.observe(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    record_outcome(g, &target, Outcome::Ok);
                    s.attempts
                        .push(attempt(&target, Some(exchange.status()), None, started));
                    return Ok(Source::Upstream {
                        exchange,
                        provider,
                        reply: out.reply,
                        busy,
                    });
                }
                Err((f, status)) => {
                    s.attempts.push(attempt(&target, status, Some(f.error.kind()), started));
                    record_outcome(g, &target, outcome(&f));
                    f
                }
            };
            // A rate-limited key is set aside; another free key tries at
            // once, without spending a retry.
            if matches!(f.error, GatewayError::UpstreamStatus { status: 429, .. })
                && provider.keys.len() > 1
                && provider.cool_key(key, retry_after(&f.headers))
                && other_keys + 1 < provider.keys.len()
            {
                other_keys += 1;
                continue;
            }
            tries += 1;
            if tries >= policy.attempts || !f.retryable() {
                break f;
            }
            match policy.delay(tries - 1, retry_after(&f.headers)) {
                Some(wait) => tokio::time::sleep(wait).await,
                // The provider asked for longer than the cap: move on.
                None => break f,
            }
            // The breaker may have opened meanwhile.
            if admit(g, &target).is_err() {
                break f;
            }
        };
        let next = if failure.context_exceeded() {
            need_window = Some(context_window(g, &target).unwrap_or(0));
            true
        } else {
            failure.fails_over()
        };
        last = Some(failure);
        if !next {
            break;
        }
    }
    let mut f = match (last, open_for) {
        (Some(f), _) => f,
        (None, Some(ms)) => {
            // `pipeline::run` adds its `Retry-After`.
            Failure::from(GatewayError::CircuitOpen {
                model: request.model.clone(),
                retry_after_s: ms.div_ceil(1000).max(1),
            })
        }
        (None, None) => Failure::from(GatewayError::ModelNotFound(request.model.clone())),
    };
    f.headers.extend(attempts_header(s));
    super::govern::add_headers(s, &mut f.headers);
    Err(f)
}

/// What became of one call: a 2xx exchange, or why not and the status, if
/// one came. A stream's first bytes are read here too when
/// `first_byte_timeout` covers them or the target is `balanced` (its
/// latency is the time to those bytes, not to a head sent at once).
/// (The send itself is awaited in the loop: the connector's future is
/// kilobytes, and each async layer around it would copy it once more.)
async fn accept(
    g: &Gateway,
    p: &Provider,
    out: &Outbound,
    sent: Result<Exchange, GatewayError>,
    started: Instant,
    balanced: bool,
) -> Result<Exchange, (Failure, Option<u16>)> {
    let mut exchange = match sent {
        Ok(ex) if ex.status() < 300 => ex,
        Ok(ex) => {
            let status = ex.status();
            // Boxed: the error path's state stays out of every call's.
            return Err((Box::pin(upstream_failure(g, p, ex)).await, Some(status)));
        }
        Err(e) => return Err((Failure::from(e), None)),
    };
    if out.stream && (balanced || p.first_byte_timeout.is_some()) {
        let first = exchange.prefetch();
        let read = match p.first_byte_timeout {
            None => first.await,
            Some(limit) => match tokio::time::timeout(limit.saturating_sub(started.elapsed()), first).await {
                Ok(read) => read,
                Err(_) => return Err((Failure::from(timeout(p)), None)),
            },
        };
        if let Err(e) = read {
            return Err((Failure::from(e), Some(exchange.status())));
        }
    }
    Ok(exchange)
}

fn timeout(p: &Provider) -> GatewayError {
    GatewayError::UpstreamTimeout {
        provider: p.name.clone(),
    }
}

/// Whether the target's circuits let a call through (`Err`: ms until a
/// probe may go). Free for a provider without `circuit_breaker:`.
fn admit(g: &Gateway, t: &Target) -> Result<(), u64> {
    match &t.provider.breaker {
        None => Ok(()),
        Some(policy) => circuits(g, &t.provider).admit(policy, &t.upstream_model, g.resilience.now_ms()),
    }
}

fn record_outcome(g: &Gateway, t: &Target, o: Outcome) {
    if let Some(policy) = &t.provider.breaker {
        circuits(g, &t.provider).record(policy, &t.upstream_model, g.resilience.now_ms(), o);
    }
}

/// What a failure says about its target, for the breakers.
fn outcome(f: &Failure) -> Outcome {
    match &f.error {
        GatewayError::UpstreamConnect { .. } | GatewayError::UpstreamTimeout { .. } => Outcome::InstanceFailure,
        GatewayError::UpstreamProtocol { .. } => Outcome::ModelFailure,
        _ if f.retryable() => Outcome::ModelFailure,
        // A refusal of this request (4xx) says the provider is up.
        _ => Outcome::Ok,
    }
}

/// How long the provider asked the caller to wait: `retry-after-ms`
/// (OpenAI) or `retry-after` in seconds. An HTTP-date is not honoured (the
/// backoff applies).
fn retry_after(headers: &crate::http::Headers) -> Option<std::time::Duration> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    value("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| value("retry-after"))
        .map(|secs| std::time::Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `x-switchyard-attempts`: how many upstream calls this answer took.
pub fn attempts_header(s: &RequestSummary) -> crate::http::Headers {
    crate::http::header(
        crate::header_name!("x-switchyard-attempts"),
        &s.attempts.len().to_string(),
    )
    .into_iter()
    .collect()
}

/// The target's known context window (catalog or `prices:`).
fn context_window(g: &Gateway, t: &Target) -> Option<u64> {
    let snap = g.live.snapshot();
    let (price, _) = snap
        .pricing
        .lookup(t.provider.family.name, &t.provider.name, &t.upstream_model)?;
    price.context_window
}

fn served(t: &Target) -> Served {
    Served {
        provider: t.provider.name.clone(),
        family: t.provider.family.name,
        upstream_model: t.upstream_model.clone(),
    }
}

fn attempt(t: &Target, status: Option<u16>, error: Option<&'static str>, started: Instant) -> Attempt {
    Attempt {
        provider: t.provider.name.clone(),
        upstream_model: t.upstream_model.clone(),
        status,
        error,
        duration: started.elapsed(),
    }
}

/// The request in the target's dialect, with its head.
fn encode(r: &mut Request<'_>, t: &Target) -> Result<Outbound, GatewayError> {
    let p = &t.provider;
    let model = t.upstream_model.as_str();
    let wire = p.wire();
    let (op, body, reply) = match r.call {
        Call::Chat | Call::Messages if WireDialect::from(r.dialect()) == wire => {
            if r.call == Call::Chat {
                rewrite_chat(&mut r.obj, model, r.stream)?;
            } else {
                r.obj.set_raw("model", model_json(model)?);
            }
            let reply = Reply::Chat {
                upstream: wire,
                caller: r.dialect(),
                stream: r.stream,
                include_usage: r.include_usage,
                input: InputEstimate::Request {
                    dialect: wire,
                    body: r.body.clone(),
                },
            };
            (Operation::Chat { stream: r.stream }, r.obj.to_vec(), reply)
        }
        Call::Chat | Call::Messages => {
            let caller = r.dialect();
            let (stream, include_usage) = (r.stream, r.include_usage);
            let ir = r.ir_mut()?;
            let caller_model = std::mem::replace(&mut ir.model, model.to_string());
            let encoded = encode_request(wire, ir);
            let estimate = input_tokens(ir);
            ir.model = caller_model;
            let reply = Reply::Chat {
                upstream: wire,
                caller,
                stream,
                include_usage: caller == Dialect::OpenAi && include_usage,
                input: InputEstimate::Tokens(estimate),
            };
            (Operation::Chat { stream }, encoded?, reply)
        }
        Call::CountTokens => {
            r.obj.set_raw("model", model_json(model)?);
            (Operation::CountTokens, r.obj.to_vec(), Reply::CountTokens)
        }
        Call::Embeddings if wire == WireDialect::Gemini => {
            let (body, meta) = embeddings_request_map(&fields_map(&r.obj)?, model)?;
            (Operation::Embeddings, body, Reply::GeminiEmbeddings { meta })
        }
        Call::Embeddings => {
            r.obj.set_raw("model", model_json(model)?);
            let reply = Reply::Embeddings { encoding: r.encoding };
            (Operation::Embeddings, r.obj.to_vec(), reply)
        }
    };
    Ok(Outbound {
        path: p.path(op, model),
        stream: matches!(op, Operation::Chat { stream: true }),
        caller_headers: r.caller_headers.clone(),
        body: Bytes::from(body),
        reply,
    })
}

fn model_json(model: &str) -> Result<Box<serde_json::value::RawValue>, GatewayError> {
    serde_json::value::to_raw_value(model).map_err(|e| GatewayError::InvalidRequest {
        message: format!("model name cannot be encoded: {e}"),
        param: Some("model".into()),
    })
}

/// Turns an upstream error status into the caller's error (401/403 → 502:
/// it is the gateway's credential that failed, not the caller's), keeping
/// the headers a caller acts on (`retry-after`, rate limits).
async fn upstream_failure(g: &Gateway, p: &Provider, mut ex: Exchange) -> Failure {
    let status = ex.status();
    let headers = ex.passthrough_headers();
    let body = ex.read_all(MAX_ERROR_BODY).await.unwrap_or_default();
    g.upstream.release(ex).await;
    let message = upstream_error_message(&body);
    let error = if status == 401 || status == 403 {
        GatewayError::UpstreamAuth {
            provider: p.name.clone(),
            status,
            message,
        }
    } else if (400..600).contains(&status) {
        GatewayError::UpstreamStatus {
            provider: p.name.clone(),
            status,
            message,
        }
    } else {
        GatewayError::UpstreamProtocol {
            provider: p.name.clone(),
            detail: format!("unexpected status {status}"),
        }
    };
    Failure { error, headers }
}
