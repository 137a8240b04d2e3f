//! The one record of a request: filled in as the pipeline runs, read by every
//! sink once the request ends (the access log line, metrics, provider
//! health, the usage record, the audit entry, the live log). Sinks read it;
//! none keeps its own copy of what happened.

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::principal::Principal;
use crate::record::{redact_headers, redact_path, AuditEntry, CostSource, UsageRecord};
use crate::telemetry::metrics::RequestObservation;
use std::fmt;
use std::time::{Duration, Instant};
use switchyard_filters::error::Dialect;
use switchyard_filters::scrub::Scrubber;
use switchyard_filters::stream::UsageSource;
use switchyard_filters::usage::Usage;

/// Cap on each stored audit body.
pub const AUDIT_BODY_CAP: usize = 1024 * 1024;

/// Where a request was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Provider instance (`openai-east`).
    pub provider: String,
    /// Its family (`openai`).
    pub family: &'static str,
    /// Model name sent upstream.
    pub upstream_model: String,
}

/// One upstream attempt: what was tried and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Provider instance.
    pub provider: String,
    /// Model name sent upstream.
    pub upstream_model: String,
    /// Status the provider answered, if it answered.
    pub status: Option<u16>,
    /// Error kind, if the attempt failed.
    pub error: Option<&'static str>,
    /// Time from sending to the response head (or the failure).
    pub duration: Duration,
}

/// Request and response bodies kept for the audit log (audit bodies on).
#[derive(Debug, Default)]
pub struct Capture {
    /// The request body, capped.
    pub request: Vec<u8>,
    /// The response body as the caller received it, streams reassembled.
    pub response: Vec<u8>,
    /// A body was cut at the cap.
    pub truncated: bool,
}

impl Capture {
    /// Keeps the first [`AUDIT_BODY_CAP`] bytes of the request body.
    pub fn of_request(body: &[u8]) -> Capture {
        Capture {
            request: body[..body.len().min(AUDIT_BODY_CAP)].to_vec(),
            response: Vec::new(),
            truncated: body.len() > AUDIT_BODY_CAP,
        }
    }

    /// Appends response bytes, up to the cap.
    pub fn response_bytes(&mut self, bytes: &[u8]) {
        let room = AUDIT_BODY_CAP.saturating_sub(self.response.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.response.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Everything known about one request.
#[derive(Debug)]
pub struct RequestSummary {
    /// Gateway request id (sent as `x-request-id`).
    pub request_id: String,
    /// When the request head arrived.
    pub start: Instant,
    /// The endpoint, once classified.
    pub endpoint: Option<Endpoint>,
    /// The caller's dialect (errors are rendered in it).
    pub dialect: Dialect,
    /// Who called, once authenticated.
    pub principal: Option<Principal>,
    /// The model the caller asked for.
    pub model: Option<String>,
    /// Where it was served from (the last attempt's target).
    pub served: Option<Served>,
    /// Every upstream attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Status answered to the caller (0 until a response head was sent).
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes written.
    pub bytes_out: usize,
    /// Token usage, when the response carried or implied it.
    pub usage: Option<Usage>,
    /// Whether `usage` was reported or estimated.
    pub usage_source: UsageSource,
    /// Time to the first generated token (streams).
    pub ttft: Option<Duration>,
    /// Why the request failed, if it did (also after a 200 stream began).
    pub error: Option<GatewayError>,
    /// The client went away before the end of the response.
    pub client_gone: bool,
    /// `X-Switchyard-User-Path`, validated.
    pub user_path: String,
    /// `X-Switchyard-Tags`, validated.
    pub tags: Vec<(String, String)>,
    /// Bodies for the audit log, when kept.
    pub capture: Option<Capture>,
    /// The admitted request's claim on limits and budgets, settled when it
    /// ends (`record`).
    pub ticket: Option<crate::governance::Ticket>,
    /// Counts this request in `switchyard_in_flight_requests` from its
    /// classification as model traffic until the summary is dropped or the
    /// proxy's logging phase clears it, after the request is recorded.
    pub in_flight: Option<crate::telemetry::metrics::InFlight>,
}

impl RequestSummary {
    /// A fresh summary for request `request_id`.
    pub fn new(request_id: String) -> RequestSummary {
        RequestSummary {
            request_id,
            start: Instant::now(),
            endpoint: None,
            dialect: Dialect::OpenAi,
            principal: None,
            model: None,
            served: None,
            attempts: Vec::new(),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            usage: None,
            usage_source: UsageSource::Provider,
            ttft: None,
            error: None,
            client_gone: false,
            user_path: String::new(),
            tags: Vec::new(),
            capture: None,
            ticket: None,
            in_flight: None,
        }
    }

    /// The endpoint label (`unknown` before classification).
    pub fn endpoint_label(&self) -> &'static str {
        self.endpoint.map_or("unknown", Endpoint::label)
    }

    /// The response did not complete: the client left, or a stream that had
    /// begun failed. Its tokens are what was seen.
    pub fn partial(&self) -> bool {
        self.client_gone || (self.status == 200 && self.error.is_some())
    }

    /// The error kind label, if the request failed.
    pub fn error_kind(&self) -> Option<&'static str> {
        self.error.as_ref().map(GatewayError::kind)
    }

    /// The status the provider answered on the last attempt.
    pub fn upstream_status(&self) -> Option<u16> {
        self.attempts.last().and_then(|a| a.status)
    }

    /// Cost of the request from the price table: `(None, Unknown)` when the
    /// price is not known (never a silent 0).
    pub fn price(&self, pricing: &crate::pricing::Pricing) -> (Option<f64>, CostSource) {
        match &self.served {
            Some(s) => pricing.price_usage(
                s.family,
                &s.provider,
                &s.upstream_model,
                &self.usage.unwrap_or_default(),
            ),
            None => (None, CostSource::Unknown),
        }
    }

    /// The metrics' view of it.
    pub fn observation(&self, cost_usd: Option<f64>) -> RequestObservation<'_> {
        RequestObservation {
            endpoint: self.endpoint_label(),
            provider: self.served.as_ref().map(|s| s.provider.as_str()),
            model: self.model.as_deref(),
            status: self.status,
            duration: self.start.elapsed(),
            ttft: self.ttft,
            usage: self.usage,
            cost_usd,
            upstream_error: self.error.as_ref().and_then(GatewayError::upstream_kind),
        }
    }

    /// The usage record, for requests that named a model (requests refused
    /// before that — bad JSON, a wrong key — are in the access log and
    /// metrics only: they never reached routing).
    pub fn usage_record(&self, ts_ms: u64, cost: (Option<f64>, CostSource)) -> Option<UsageRecord> {
        let model = self.model.clone()?;
        let served = self.served.clone();
        Some(UsageRecord {
            request_id: self.request_id.clone(),
            ts_ms,
            endpoint: self.endpoint_label().to_string(),
            dialect: match self.dialect {
                Dialect::OpenAi => "openai".into(),
                Dialect::Anthropic => "anthropic".into(),
            },
            provider: served.as_ref().map(|s| s.provider.clone()).unwrap_or_default(),
            provider_type: served.as_ref().map(|s| s.family.to_string()).unwrap_or_default(),
            model,
            upstream_model: served.map(|s| s.upstream_model).unwrap_or_default(),
            status: self.status,
            usage: self.usage.unwrap_or_default(),
            usage_source: self.usage_source,
            cost_usd: cost.0,
            cost_source: cost.1,
            duration_ms: millis(self.start.elapsed()),
            ttft_ms: self.ttft.map(millis),
            user_path: self.user_path.clone(),
            tags: self.tags.clone(),
            key_id: self
                .principal
                .as_ref()
                .map(|p| p.key_id().to_string())
                .unwrap_or_default(),
            key_name: self
                .principal
                .as_ref()
                .map(|p| p.key_name().to_string())
                .unwrap_or_default(),
            partial: self.partial(),
            error: self.error_kind().map(str::to_string),
            attempts: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
        })
    }

    /// The audit entry; headers and query are redacted here, so no secret
    /// ever reaches the store.
    pub fn audit_entry(
        &mut self,
        ts_ms: u64,
        req: &pingora_http::RequestHeader,
        client: String,
        scrubber: &Scrubber,
    ) -> AuditEntry {
        let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let capture = self.capture.take();
        AuditEntry {
            request_id: self.request_id.clone(),
            ts_ms,
            method: req.method.to_string(),
            path: redact_path(path, scrubber),
            client,
            route: self
                .served
                .as_ref()
                .map(|s| format!("{}/{}", s.provider, s.upstream_model))
                .unwrap_or_default(),
            status: self.status,
            upstream_status: self.upstream_status(),
            duration_ms: millis(self.start.elapsed()),
            ttft_ms: self.ttft.map(millis),
            error: self.error_kind().map(str::to_string),
            user_path: self.user_path.clone(),
            key_id: self
                .principal
                .as_ref()
                .map(|p| p.key_id().to_string())
                .unwrap_or_default(),
            request_headers: redact_headers(
                req.headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
                scrubber,
            ),
            bodies_truncated: capture.as_ref().is_some_and(|c| c.truncated),
            request_body: capture
                .as_ref()
                .map(|c| String::from_utf8_lossy(&c.request).into_owned()),
            response_body: capture.map(|c| String::from_utf8_lossy(&c.response).into_owned()),
            // The last use of the attempts (the status above read them):
            // their strings move instead of being copied.
            attempts: std::mem::take(&mut self.attempts)
                .into_iter()
                .map(|a| crate::record::AttemptRecord {
                    provider: a.provider,
                    model: a.upstream_model,
                    status: a.status,
                    error: a.error.map(str::to_string),
                    duration_ms: millis(a.duration),
                })
                .collect(),
        }
    }

    /// One line of `GET /admin/live/logs`, serialised from borrowed fields.
    pub fn live_line<'a>(&'a self, ts_ms: u64, record: &'a UsageRecord) -> LiveLine<'a> {
        LiveLine {
            request_id: &self.request_id,
            ts_ms,
            endpoint: &record.endpoint,
            model: &record.model,
            provider: &record.provider,
            upstream_model: &record.upstream_model,
            status: record.status,
            duration_ms: record.duration_ms,
            ttft_ms: record.ttft_ms,
            input_tokens: record.usage.input_tokens,
            output_tokens: record.usage.output_tokens,
            usage_source: record.usage_source.label(),
            cost_usd: record.cost_usd,
            user_path: &record.user_path,
            partial: record.partial,
            error: record.error.as_deref(),
        }
    }

    /// The access log line.
    pub fn access_line<'a>(&'a self, method: &'a str, path: &'a str) -> AccessLine<'a> {
        AccessLine { s: self, method, path }
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A completed request as the live log shows it.
#[derive(serde::Serialize)]
pub struct LiveLine<'a> {
    request_id: &'a str,
    ts_ms: u64,
    endpoint: &'a str,
    model: &'a str,
    provider: &'a str,
    upstream_model: &'a str,
    status: u16,
    duration_ms: u32,
    ttft_ms: Option<u32>,
    input_tokens: u64,
    output_tokens: u64,
    usage_source: &'static str,
    cost_usd: Option<f64>,
    user_path: &'a str,
    partial: bool,
    error: Option<&'a str>,
}

/// `request_id=… method=… path=… …`: one line per request, no bodies, no
/// secrets; caller-chosen strings are cut and made log-safe.
pub struct AccessLine<'a> {
    s: &'a RequestSummary,
    method: &'a str,
    path: &'a str,
}

impl fmt::Display for AccessLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        let u = s.usage.unwrap_or_default();
        write!(
            f,
            "request_id={} method={} path={} endpoint={} model={} provider={} status={} duration_ms={:.3}",
            s.request_id,
            self.method,
            LogSafe(self.path),
            s.endpoint_label(),
            LogSafe(s.model.as_deref().unwrap_or("-")),
            s.served.as_ref().map_or("-", |r| r.provider.as_str()),
            s.status,
            s.start.elapsed().as_secs_f64() * 1000.0,
        )?;
        match s.ttft {
            Some(t) => write!(f, " ttft_ms={:.3}", t.as_secs_f64() * 1000.0)?,
            None => f.write_str(" ttft_ms=-")?,
        }
        write!(
            f,
            " bytes_in={} bytes_out={} tokens_in={} tokens_out={} usage={} attempts={} client_gone={} error={}",
            s.bytes_in,
            s.bytes_out,
            u.input_tokens,
            u.output_tokens,
            s.usage_source.label(),
            s.attempts.len(),
            s.client_gone,
            s.error_kind().unwrap_or("-"),
        )
    }
}

/// A caller-supplied string on one log line and bounded: whitespace, quotes
/// and control characters become `_`, at most 128 characters.
struct LogSafe<'a>(&'a str);

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.0.chars().take(128) {
            f.write_char(if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_stream_is_partial_and_says_why() {
        let mut s = RequestSummary::new("r1".into());
        s.endpoint = Some(Endpoint::Chat);
        s.model = Some("m".into());
        s.status = 200;
        assert!(!s.partial());
        s.error = Some(GatewayError::UpstreamStream {
            provider: "p".into(),
            failure: Box::new(switchyard_filters::stream::StreamFailure::Truncated),
        });
        assert!(s.partial());
        let r = s.usage_record(1, (None, CostSource::Unknown)).expect("routed");
        assert_eq!(r.error.as_deref(), Some("upstream_truncated"));
        assert!(r.partial);
    }

    #[test]
    fn access_lines_are_one_line_and_bounded() {
        let mut s = RequestSummary::new("r1".into());
        s.model = Some(format!("evil model\n{}", "x".repeat(500)));
        let line = s.access_line("POST", "/v1/chat/completions").to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("model=evil_model_x"));
        assert!(line.len() < 600, "{}", line.len());
    }

    #[test]
    fn captures_stop_at_the_cap() {
        let mut c = Capture::of_request(b"abc");
        c.response_bytes(&vec![b'x'; AUDIT_BODY_CAP + 5]);
        assert_eq!(c.response.len(), AUDIT_BODY_CAP);
        assert!(c.truncated);
    }
}
