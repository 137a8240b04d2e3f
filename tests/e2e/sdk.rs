//! Conformance with the official `openai` Python SDK: the gateway, pointed at the mock OpenAI
//! upstream, is called by `tests/python/test_openai_sdk.py` through pytest.
//!
//! The interpreter is chosen by [`pytest::python`].

use crate::support::gateway::Gateway;
use crate::support::mock::MockUpstream;
use crate::support::pytest;

/// The key callers present to the gateway.
const MASTER_KEY: &str = "sk-switchyard-sdk-test-master";
/// The gateway's credential for the mock provider.
const UPSTREAM_KEY: &str = "sk-mock-upstream-sdk-test";
const CHAT_MODEL: &str = "gpt-4o-mini";
const EMBED_MODEL: &str = "text-embedding-3-small";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_conformance() {
    let mock = MockUpstream::openai().await;
    let gateway = Gateway::start(&[
        ("OPENAI_API_KEY", UPSTREAM_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", format!("{CHAT_MODEL},{EMBED_MODEL}")),
        ("SWITCHYARD_MASTER_KEY", MASTER_KEY.to_string()),
    ])
    .await;

    pytest::run(
        &gateway,
        &["tests/python/test_openai_sdk.py"],
        &[
            ("SWITCHYARD_BASE_URL", format!("{}/v1", gateway.base_url)),
            ("SWITCHYARD_API_KEY", MASTER_KEY.to_string()),
            ("SWITCHYARD_CHAT_MODEL", CHAT_MODEL.to_string()),
            ("SWITCHYARD_EMBED_MODEL", EMBED_MODEL.to_string()),
        ],
    )
    .await;

    // The SDK calls really went through to the provider, with the gateway's credential only.
    let requests = mock.requests();
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        assert!(
            requests.iter().any(|r| r.path_only() == path),
            "the mock never received {path}"
        );
    }
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {UPSTREAM_KEY}").as_str()),
            "{} {} reached the provider without the gateway's provider key",
            r.method,
            r.path
        );
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(MASTER_KEY)),
            "the caller's key leaked to the provider on {} {}",
            r.method,
            r.path
        );
    }
    drop(gateway);
}
