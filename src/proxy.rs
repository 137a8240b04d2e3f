//! The one `ProxyHttp` implementation: glue between Pingora and the
//! pipeline. Pingora accepts connections, parses HTTP and keeps connections
//! alive; `request_filter` hands every request to [`pipeline::run`], which
//! answers it (so the proxy phases after it never run), and `logging` hands
//! the finished summary to [`pipeline::record::finish`].

use crate::pipeline;
use crate::state::Gateway;
use crate::summary::RequestSummary;
use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result as PResult};
use pingora_proxy::{ProxyHttp, Session};
use std::time::Instant;

/// Per-request state: the summary the pipeline fills (its in-flight guard
/// is dropped once the request is recorded).
pub struct RequestCtx {
    summary: RequestSummary,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            summary: RequestSummary::new(self.next_request_id()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> PResult<bool> {
        ctx.summary.start = Instant::now();
        crate::conns::request_started();
        // Pipelined requests are answered in order (RFC 9112 §9.3.2).
        session.set_pipelining_enabled(true);
        pipeline::run(self, session, &mut ctx.summary).await;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> PResult<Box<HttpPeer>> {
        // Unreachable: request_filter always answers. Fail loudly, not silently.
        Error::e_explain(
            ErrorType::InternalError,
            "switchyard answers every request in request_filter",
        )
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // Client disconnects are normal for an API gateway; we log our own line.
        matches!(
            error.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError | ErrorType::ReadTimedout
        )
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        pipeline::record::finish(self, session, &mut ctx.summary);
        ctx.summary.in_flight = None;
        crate::conns::request_finished();
    }
}
