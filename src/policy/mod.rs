//! Policy stages: what may stop, rewrite or answer a request after it is
//! decoded and before it is planned — rate limits, budgets, guardrails, the
//! response cache. Each stage is one file here, runs in the configured order,
//! and costs nothing when it is not configured (the list is empty today).
//!
//! Adding a stage: implement [`Stage`], build it from the config snapshot,
//! and push it onto [`Policy`] in order; the pipeline calls
//! [`Policy::check`] between decoding and planning.

use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::principal::Principal;

/// What a stage sees of a request.
#[derive(Debug)]
// Read by the stages the governance, guardrail and cache issues add; the
// mechanism is exercised by the tests below.
#[allow(dead_code)]
pub struct Subject<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The model the caller asked for.
    pub model: &'a str,
    /// Attribution (`/org/team/user`), empty when not sent.
    pub user_path: &'a str,
    /// The caller asked for a stream.
    pub stream: bool,
    /// Request body bytes.
    pub body_len: usize,
}

/// A response the gateway gives itself, without an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (JSON unless `headers` says otherwise).
    pub body: Vec<u8>,
    /// Extra response headers.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A stage's decision.
#[derive(Debug)]
#[allow(dead_code)] // `Reject`/`Answer` come from the stages later issues add
pub enum Verdict {
    /// Go on to the next stage.
    Pass,
    /// Refuse with this error (in the caller's dialect).
    Reject(GatewayError),
    /// Answer now (a cache hit); no upstream is called.
    Answer(Answer),
}

/// One policy stage.
#[async_trait::async_trait]
pub trait Stage: Send + Sync {
    /// Name for logs and the request flow.
    fn name(&self) -> &'static str;
    /// Decides about one request.
    async fn check(&self, subject: &Subject<'_>) -> Verdict;
}

/// The configured stages, in order.
#[derive(Default)]
pub struct Policy {
    stages: Vec<Box<dyn Stage>>,
}

impl Policy {
    /// No stages: every request passes, at no cost.
    pub fn none() -> Policy {
        Policy::default()
    }

    /// Runs the stages in order; the first that does not pass decides.
    pub async fn check(&self, subject: &Subject<'_>) -> Verdict {
        for stage in &self.stages {
            match stage.check(subject).await {
                Verdict::Pass => {}
                other => {
                    log::debug!("policy stage {} decided {other:?}", stage.name());
                    return other;
                }
            }
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refuse;

    #[async_trait::async_trait]
    impl Stage for Refuse {
        fn name(&self) -> &'static str {
            "refuse"
        }
        async fn check(&self, s: &Subject<'_>) -> Verdict {
            if s.model == "forbidden" {
                Verdict::Reject(GatewayError::ModelDisabled(s.model.into()))
            } else {
                Verdict::Pass
            }
        }
    }

    #[tokio::test]
    async fn stages_run_in_order_and_the_first_refusal_decides() {
        let subject = |model| Subject {
            endpoint: Endpoint::Chat,
            principal: &Principal::Master,
            model,
            user_path: "",
            stream: false,
            body_len: 0,
        };
        assert!(matches!(
            Policy::none().check(&subject("forbidden")).await,
            Verdict::Pass
        ));
        let p = Policy {
            stages: vec![Box::new(Refuse)],
        };
        assert!(matches!(p.check(&subject("ok")).await, Verdict::Pass));
        assert!(matches!(p.check(&subject("forbidden")).await, Verdict::Reject(_)));
    }
}
