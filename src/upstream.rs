//! Talking to providers: async DNS with a TTL cache, and one HTTP exchange
//! driven through Pingora's connector (TLS via rustls + SNI, keep-alive pool).
//!
//! We own the exchange instead of using Pingora's proxy phases because the
//! proxy calls `upstream_peer` before the body is read, and a body pre-read to
//! find its `model` is only replayed through a 64 KiB retry buffer. Here the
//! whole (bounded) body is in memory before we pick the peer, so any size up to
//! the limit routes correctly, and a stale pooled connection can be retried.

use crate::error::GatewayError;
use crate::providers::{BaseUrl, Provider};
use bytes::Bytes;
use pingora_core::connectors::http::v1::Connector;
use pingora_core::protocols::http::v1::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{ErrorType, Result as PResult};
use pingora_http::RequestHeader;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds an upstream request head (see [`Upstream::send`]).
pub type HeadFn<'a> = dyn Fn() -> Result<RequestHeader, GatewayError> + Send + Sync + 'a;

/// Idle time a pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// A cached resolution: addresses, when resolved, round-robin cursor.
type DnsEntry = (Vec<SocketAddr>, Instant, usize);

/// Resolved addresses cached for a TTL; resolution runs on tokio's blocking
/// pool (`lookup_host`), never on a worker thread.
pub struct Dns {
    ttl: Duration,
    cache: Mutex<HashMap<(String, u16), DnsEntry>>,
}

impl Dns {
    /// A cache with the given TTL.
    pub fn new(ttl: Duration) -> Self {
        Dns {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Every address of host:port, rotated by one on each call so load
    /// spreads over them; callers try the next one when a connect fails.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let key = (host.to_string(), port);
        if let Ok(mut c) = self.cache.lock() {
            if let Some((addrs, at, rr)) = c.get_mut(&key) {
                if at.elapsed() < self.ttl && !addrs.is_empty() {
                    *rr = rr.wrapping_add(1);
                    let mut out = addrs.clone();
                    out.rotate_left(*rr % addrs.len());
                    return Ok(out);
                }
            }
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("DNS lookup of {host} returned no address"));
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (addrs.clone(), Instant::now(), 0));
        }
        Ok(addrs)
    }
}

/// Shared upstream machinery of one proxy service.
pub struct Upstream {
    connector: Connector,
    dns: Dns,
}

/// An exchange in progress: the response header has been read.
pub struct Exchange {
    /// Boxed, like the peer: together they are over a kilobyte, and the
    /// exchange moves through several futures (the attempt, the response
    /// source, the reply), each of which would hold — and copy — it inline.
    session: Box<HttpSession>,
    /// Where the connection returns to the pool.
    peer: Box<HttpPeer>,
    provider: String,
    /// A chunk read ahead by [`Exchange::prefetch`] (`Some(None)`: the end).
    pending: Option<Option<Bytes>>,
}

impl Upstream {
    /// New connector pool and DNS cache.
    pub fn new(dns_ttl: Duration) -> Self {
        Upstream {
            connector: Connector::new(None),
            dns: Dns::new(dns_ttl),
        }
    }

    fn peer(provider: &Provider, base: &BaseUrl, addr: SocketAddr) -> Box<HttpPeer> {
        let mut peer = Box::new(HttpPeer::new(addr, base.tls, base.host.clone()));
        let o = &mut peer.options;
        o.connection_timeout = Some(provider.connect_timeout);
        o.total_connection_timeout = Some(provider.connect_timeout);
        o.read_timeout = Some(provider.read_timeout);
        o.write_timeout = Some(provider.read_timeout);
        o.idle_timeout = Some(POOL_IDLE);
        peer
    }

    /// Sends `req` + `body` and reads the response header. Each resolved
    /// address is tried in turn while connecting fails (dual-stack hosts,
    /// one dead backend).
    ///
    /// `head` builds the request head: called once per connection tried, so
    /// a retry gets a fresh one without a copy kept for the common case.
    pub async fn send(&self, provider: &Provider, head: &HeadFn<'_>, body: Bytes) -> Result<Exchange, GatewayError> {
        let addrs = self
            .dns
            .resolve(&provider.base.host, provider.base.port)
            .await
            .map_err(|detail| GatewayError::UpstreamConnect {
                provider: provider.name.clone(),
                detail,
            })?;
        let mut last = None;
        for addr in addrs.into_iter().take(4) {
            let peer = Self::peer(provider, &provider.base, addr);
            match self.send_to(provider, peer, head, &body).await {
                Err(e @ GatewayError::UpstreamConnect { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| GatewayError::UpstreamConnect {
            provider: provider.name.clone(),
            detail: "no address to connect to".into(),
        }))
    }

    /// One peer. A failure on a reused (pooled) connection before any
    /// response byte is retried once on a fresh connection: the provider may
    /// have closed it while it sat idle in the pool.
    async fn send_to(
        &self,
        provider: &Provider,
        peer: Box<HttpPeer>,
        head: &HeadFn<'_>,
        body: &Bytes,
    ) -> Result<Exchange, GatewayError> {
        for attempt in 0..2 {
            // A pooled connection first (a small future); only a new one goes
            // through the connect future (TCP + TLS, ~9 KiB), boxed so no
            // future around this one holds it inline.
            let (session, reused) = match self.connector.reused_http_session(&*peer).await {
                Some(s) => (s, true),
                None => match Box::pin(self.connector.get_http_session(&*peer)).await {
                    Ok(got) => got,
                    Err(e) => return Err(map_err(&provider.name, &e)),
                },
            };
            let mut session = Box::new(session);
            // The connector does not apply these; Pingora's proxy sets them per session too.
            session.read_timeout = Some(provider.read_timeout);
            session.write_timeout = Some(provider.read_timeout);
            match exchange_head(&mut session, head()?, body).await {
                Ok(()) => {
                    return Ok(Exchange {
                        session,
                        peer,
                        provider: provider.name.clone(),
                        pending: None,
                    })
                }
                Err(e) if reused && attempt == 0 && retryable_on_reuse(&e) => {
                    log::debug!("retrying on a fresh connection to {}: {e}", provider.name);
                    continue;
                }
                Err(e) => return Err(map_err(&provider.name, &e)),
            }
        }
        Err(GatewayError::UpstreamConnect {
            provider: provider.name.clone(),
            detail: "connection closed twice".into(),
        })
    }

    /// Returns the connection to the pool if the body was read completely.
    pub async fn release(&self, ex: Exchange) {
        let Exchange { mut session, peer, .. } = ex;
        if session.is_body_done() {
            self.connector
                .release_http_session(*session, &*peer, Some(POOL_IDLE))
                .await;
        } else {
            session.shutdown().await;
        }
    }
}

async fn exchange_head(session: &mut HttpSession, req: RequestHeader, body: &Bytes) -> PResult<()> {
    session.write_request_header(Box::new(req)).await?;
    if !body.is_empty() {
        session.write_body(body).await?;
    }
    session.finish_body().await?;
    session.read_response().await?;
    Ok(())
}

fn retryable_on_reuse(e: &pingora_core::Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError | ErrorType::InvalidHTTPHeader
    )
}

/// Maps a Pingora error to ours: timeouts 504, everything else 502.
pub fn map_err(provider: &str, e: &pingora_core::Error) -> GatewayError {
    let provider = provider.to_string();
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => GatewayError::UpstreamTimeout { provider },
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::ConnectError
        | ErrorType::SocketError
        | ErrorType::ConnectProxyFailure
        | ErrorType::BindError => GatewayError::UpstreamConnect {
            provider,
            detail: e.etype().as_str().to_string(),
        },
        ErrorType::ConnectionClosed | ErrorType::ReadError => GatewayError::UpstreamProtocol {
            provider,
            detail: "the connection closed before the response was complete".into(),
        },
        _ => GatewayError::UpstreamProtocol {
            provider,
            detail: e.etype().as_str().to_string(),
        },
    }
}

impl Exchange {
    /// Upstream status code.
    pub fn status(&self) -> u16 {
        self.session.resp_header().map(|h| h.status.as_u16()).unwrap_or(502)
    }

    /// A response header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.session
            .resp_header()
            .and_then(|h| h.headers.get(name))
            .and_then(|v| v.to_str().ok())
    }

    /// Response headers worth passing to the caller: rate limits (OpenAI and
    /// Anthropic style), `retry-after`, and the provider's `request-id`, which
    /// the Anthropic SDK reports and support asks for. Account identifiers
    /// and cookies stay behind.
    pub fn passthrough_headers(&self) -> crate::http::Headers {
        let Some(h) = self.session.resp_header() else {
            return Vec::new();
        };
        h.headers
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k.starts_with("x-ratelimit-")
                    || k.starts_with("anthropic-ratelimit-")
                    || matches!(
                        k,
                        "retry-after" | "retry-after-ms" | "openai-processing-ms" | "request-id"
                    )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether the provider answered with a JSON body (`application/json`,
    /// `…+json`): a provider that ignored `stream: true` does.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|c| {
            let c = c.split(';').next().unwrap_or("").trim();
            c.eq_ignore_ascii_case("application/json") || c.ends_with("+json")
        })
    }

    /// Next body chunk; `None` at the end.
    pub async fn read_chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        if let Some(chunk) = self.pending.take() {
            return Ok(chunk);
        }
        self.session
            .read_body_bytes()
            .await
            .map_err(|e| map_err(&self.provider, &e))
    }

    /// Reads the first body chunk ahead (kept for the next `read_chunk`),
    /// so a time-to-first-byte deadline covers a stream's first event, not
    /// only its head.
    pub async fn prefetch(&mut self) -> Result<(), GatewayError> {
        if self.pending.is_none() {
            let chunk = self.read_chunk().await?;
            self.pending = Some(chunk);
        }
        Ok(())
    }

    /// The whole body, up to `limit` bytes.
    pub async fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, GatewayError> {
        let mut out = Vec::new();
        while let Some(c) = self.read_chunk().await? {
            if out.len() + c.len() > limit {
                return Err(GatewayError::UpstreamProtocol {
                    provider: self.provider.clone(),
                    detail: format!("response body larger than {limit} bytes"),
                });
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    /// Every future that holds an exchange inline is copied when it is set
    /// up (moved into a box, returned, awaited): the exchange stays a few
    /// pointers (its session and peer, a kilobyte, are boxed), and the send
    /// future holds neither Pingora's ~9 KiB connect future nor a peer by
    /// value (measured with `-Zprint-type-sizes`: 1,920 bytes).
    #[test]
    fn the_exchange_and_its_future_stay_small() {
        assert!(
            std::mem::size_of::<super::Exchange>() <= 96,
            "{} bytes",
            std::mem::size_of::<super::Exchange>()
        );
        let snap = crate::config::compile(&crate::config::read_sources_for_test(
            &[("OPENAI_API_KEY", "k"), ("OPENAI_MODELS", "m")],
            None,
        ))
        .expect("valid");
        let p = snap.providers[0].clone();
        let u = super::Upstream::new(std::time::Duration::from_secs(1));
        let head = || {
            pingora_http::RequestHeader::build("GET", b"/", None)
                .map_err(|_| crate::error::GatewayError::NotReady("x".into()))
        };
        let f = u.send(&p, &head, bytes::Bytes::new());
        assert!(std::mem::size_of_val(&f) < 2560, "{} bytes", std::mem::size_of_val(&f));
    }
}
