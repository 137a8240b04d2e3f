//! The request lifecycle, top to bottom. [`run`] is the whole story of a
//! request; each step is one module:
//!
//! ```text
//! endpoint   classify method + path; answer locally what needs no upstream
//! principal  who is calling (typed); 401 in the caller's dialect
//! body       read the bounded body once
//! request    decode the caller's dialect once (the head; fields kept raw)
//! policy     ordered stages: pass, reject, or answer (empty today)
//! plan       ordered attempts: provider + upstream model (or a local answer)
//! attempt    encode for the target, send; on failure, maybe the next target
//! respond    whole body or stream, in the caller's dialect
//! record     (Pingora's logging phase) one summary to every sink
//! ```
//!
//! Why the pipeline answers inside `request_filter` instead of using
//! Pingora's proxy phases: Pingora picks the upstream before the body is
//! read and replays a pre-read body only through a 64 KiB buffer, while an
//! LLM request is routed by a field inside a body that is often megabytes
//! (see `upstream.rs`).

mod attempt;
mod govern;
mod local;
mod plan;
pub mod record;
mod request;
mod respond;

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::http;
use crate::policy::{Subject, Verdict};
use crate::principal::authenticate;
use crate::state::Gateway;
use crate::summary::{Capture, RequestSummary};
use pingora_proxy::Session;
use request::Request;

/// A failure before anything was sent: the error and the headers to answer
/// it with (a provider's `retry-after` and rate-limit headers).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: GatewayError,
    /// Headers for the caller.
    pub headers: crate::http::Headers,
}

impl From<GatewayError> for Failure {
    fn from(error: GatewayError) -> Self {
        Failure {
            error,
            headers: Vec::new(),
        }
    }
}

impl Failure {
    /// Whether another target could succeed where this attempt failed: the
    /// provider was unreachable, slow, overloaded or failing — not a request
    /// the provider refused as invalid.
    pub fn retryable(&self) -> bool {
        match &self.error {
            GatewayError::UpstreamConnect { .. } | GatewayError::UpstreamTimeout { .. } => true,
            GatewayError::UpstreamStatus { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504 | 529),
            _ => false,
        }
    }

    /// Whether the provider refused the prompt as longer than the model's
    /// context window (OpenAI "maximum context length", Anthropic "prompt
    /// is too long", Gemini "input token count … exceeds"): a fallback with
    /// a larger window may take it.
    pub fn context_exceeded(&self) -> bool {
        let GatewayError::UpstreamStatus {
            status: 400 | 413,
            message,
            ..
        } = &self.error
        else {
            return false;
        };
        let m = message.to_ascii_lowercase();
        [
            "context_length_exceeded",
            "maximum context length",
            "prompt is too long",
            "input token count",
        ]
        .iter()
        .any(|p| m.contains(p))
    }

    /// Whether the next planned target (a fallback) should be tried: the
    /// retryable set, a provider that does not know the model (404), and a
    /// provider refusing the gateway's own credential (401/403): another
    /// provider may do better in each case. Never a request refused as
    /// invalid, which would fail everywhere.
    pub fn fails_over(&self) -> bool {
        self.retryable()
            || matches!(
                &self.error,
                GatewayError::UpstreamStatus { status: 404, .. } | GatewayError::UpstreamAuth { .. }
            )
    }
}

/// What was learnt about provider `p` (looked up by name once per
/// instance).
fn instance<'p>(
    r: &crate::resilience::Resilience,
    p: &'p crate::providers::Provider,
) -> &'p crate::resilience::Circuits {
    p.circuits.get_or_init(|| r.circuits_of(&p.name))
}

/// [`instance`] through the gateway.
fn circuits<'p>(g: &Gateway, p: &'p crate::providers::Provider) -> &'p crate::resilience::Circuits {
    instance(&g.resilience, p)
}

/// Serves one request; whatever happens, the caller gets an answer in its
/// dialect and the summary says what happened.
pub async fn run(g: &Gateway, session: &mut Session, s: &mut RequestSummary) {
    if let Err(mut f) = lifecycle(g, session, s).await {
        // Provider text may quote the credential it was sent.
        f.error.scrub(&g.live.snapshot().scrubber);
        // The gateway's own refusals say when to come back (a provider's
        // `retry-after`, passed through, wins).
        if let Some(secs) = f.error.retry_after_s() {
            if !f.headers.iter().any(|(k, _)| k == "retry-after") {
                f.headers
                    .extend(http::header(crate::header_name!("retry-after"), &secs.to_string()));
            }
        }
        if s.status == 0 {
            http::respond_error(session, s, &f.error, &f.headers).await;
        }
        http::linger(session).await;
        s.error = Some(f.error);
    }
}

async fn lifecycle(g: &Gateway, session: &mut Session, s: &mut RequestSummary) -> Result<(), Failure> {
    let snap = g.live.snapshot();

    // Endpoint.
    let (method, path) = {
        let h = session.req_header();
        (h.method.as_str().to_owned(), h.uri.path().to_owned())
    };
    s.dialect = Endpoint::dialect_of_path(&path);
    let endpoint = match Endpoint::classify(&method, &path) {
        Ok(e) => e,
        Err(e) => {
            http::drain_body(session, snap.max_body_bytes).await;
            return Err(e.into());
        }
    };
    s.endpoint = Some(endpoint);
    s.dialect = endpoint.dialect();
    match endpoint {
        Endpoint::Health | Endpoint::Ready | Endpoint::Metrics => {
            http::drain_body(session, snap.max_body_bytes).await;
            return Box::pin(local::probe(g, session, s, endpoint)).await;
        }
        // Boxed, like every branch off the proxy path: an async call's
        // state is part of this future, which is copied whole into a box
        // for every request (the admin API's alone was kilobytes).
        Endpoint::Admin => {
            return Box::pin(crate::admin::serve::serve(g, session, s))
                .await
                .map_err(Failure::from)
        }
        Endpoint::Models
        | Endpoint::Usage
        | Endpoint::Chat
        | Endpoint::Embeddings
        | Endpoint::Messages
        | Endpoint::CountTokens => {}
    }
    // Only model traffic counts as in flight: a probe, a scrape or an admin
    // call counting itself made the gauge (and the admin flush, which waits
    // for it to clear) depend on their own timing.
    s.in_flight = Some(g.svc.metrics.in_flight());

    // Principal.
    let gov = &g.governance;
    let now = crate::governance::now_ms();
    let principal = match authenticate(&session.req_header().headers, snap.master_key.as_ref(), &gov.keys, now) {
        Ok(p) => p,
        Err(e) => {
            http::drain_body(session, snap.max_body_bytes).await;
            return Err(e.into());
        }
    };
    s.principal = Some(principal.clone());
    if let Err(e) = attribute(session, s).and_then(|()| govern::grant(&principal, endpoint, s)) {
        http::drain_body(session, snap.max_body_bytes).await;
        return Err(e.into());
    }
    match endpoint {
        Endpoint::Models => {
            Box::pin(local::models(g, session, s)).await;
            return Ok(());
        }
        Endpoint::Usage => {
            http::drain_body(session, snap.max_body_bytes).await;
            return Box::pin(local::usage(g, session, s)).await;
        }
        _ => {}
    }

    // Body, read once.
    let body = http::read_body(session, snap.max_body_bytes, snap.server.body_timeout).await?;
    s.bytes_in = body.len();
    if snap.audit_bodies {
        s.capture = Some(Capture::of_request(&body));
    }

    // The caller's request, decoded once.
    let mut request = Request::decode(endpoint, &body, &session.req_header().headers)?;
    s.model = Some(request.model.clone());

    // Policy stages.
    let subject = Subject {
        endpoint,
        principal: &principal,
        model: &request.model,
        user_path: &s.user_path,
        stream: request.stream,
        body_len: body.len(),
    };
    match g.policy.check(&subject).await {
        Verdict::Pass => {}
        Verdict::Reject(e) => return Err(e.into()),
        Verdict::Answer(a) => {
            http::respond(session, s, a.status, a.body, &a.headers).await;
            return Ok(());
        }
    }

    // Plan, attempts, response.
    let (discovered, overrides) = (g.live.discovered(), g.live.overrides());
    let lookup = plan::Lookup {
        snap: &snap,
        discovered: &discovered,
        overrides: &overrides,
        resilience: &g.resilience,
    };
    let key = match &principal {
        crate::principal::Principal::Master => "master",
        p => p.key_id(),
    };
    let who = plan::Affinity {
        key,
        user_path: &s.user_path,
        headers: &session.req_header().headers,
    };
    let mut plan = plan::build(&lookup, &who, &mut request)?;

    // Governance: the key's models, then limits and budgets (admission
    // needs the first target's price).
    if gov.active() {
        govern::allowed_targets(&principal, &request.model, &mut plan)?;
        govern::admit(gov, &snap, &principal, &request, &plan, s).await?;
    }
    // Boxed: the upstream exchange's futures are kilobytes, and every future
    // that holds them inline is copied when it is set up (measured: memmove
    // was the top symbol of a gateway profile).
    let source = Box::pin(attempt::run(g, plan, &mut request, s)).await?;
    Box::pin(respond::send(g, session, s, source)).await
}

/// Validates the attribution headers (400 naming the header if bad).
fn attribute(session: &Session, s: &mut RequestSummary) -> Result<(), GatewayError> {
    use switchyard_filters::attribution::{parse_tags, parse_user_path};
    let h = &session.req_header().headers;
    let text = |name: &str| -> Result<Option<&str>, GatewayError> {
        if h.get_all(name).iter().nth(1).is_some() {
            // Two attributions: which one to bill is a guess; refuse.
            return Err(GatewayError::InvalidRequest {
                message: format!("header {name} may be sent only once"),
                param: Some(name.to_string()),
            });
        }
        match h.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| GatewayError::InvalidRequest {
                message: format!("header {name} must be visible ASCII"),
                param: Some(name.to_string()),
            }),
        }
    };
    let bad = |e: switchyard_filters::attribution::AttributionError| GatewayError::InvalidRequest {
        message: e.to_string(),
        param: Some(e.header().to_string()),
    };
    if let Some(p) = text("x-switchyard-user-path")? {
        s.user_path = parse_user_path(p).map_err(bad)?;
    }
    if let Some(t) = text("x-switchyard-tags")? {
        s.tags = parse_tags(t).map_err(bad)?;
    }
    Ok(())
}
