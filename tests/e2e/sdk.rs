//! Conformance with the official `openai` Python SDK: the gateway, pointed at the mock OpenAI
//! upstream, is called by `tests/python/test_openai_sdk.py` through pytest.
//!
//! The interpreter is `$SWITCHYARD_PYTHON` if set, else `<repo>/.venv/bin/python` (a virtualenv
//! with `tests/python/requirements.txt` installed). Without either the test fails: it never passes
//! silently for want of Python.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::mock::MockUpstream;

/// The key callers present to the gateway.
const MASTER_KEY: &str = "sk-switchyard-sdk-test-master";
/// The gateway's credential for the mock provider.
const UPSTREAM_KEY: &str = "sk-mock-upstream-sdk-test";
const CHAT_MODEL: &str = "gpt-4o-mini";
const EMBED_MODEL: &str = "text-embedding-3-small";
/// Generous: the whole suite takes about two seconds; the SDK's own per-request timeout is 30 s.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$SWITCHYARD_PYTHON` (a path or a command on `PATH`), else the repo's `.venv`; panics with
/// setup instructions when there is none.
fn python(root: &Path) -> PathBuf {
    if let Some(python) = std::env::var_os("SWITCHYARD_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(python);
    }
    let venv = root.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the Python SDK conformance tests need a virtualenv at {} with tests/python/requirements.txt \
         installed: run the project's test setup script (or `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/python/requirements.txt`), or set SWITCHYARD_PYTHON to an \
         interpreter that has them",
        venv.display()
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_conformance() {
    let root = repo_root();
    let python = python(&root);

    let mock = MockUpstream::openai().await;
    let gateway = Gateway::start(&[
        ("OPENAI_API_KEY", UPSTREAM_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", mock.base_url())),
        ("OPENAI_MODELS", format!("{CHAT_MODEL},{EMBED_MODEL}")),
        ("SWITCHYARD_MASTER_KEY", MASTER_KEY.to_string()),
    ])
    .await;

    let mut cmd = tokio::process::Command::new(&python);
    cmd.current_dir(&root)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/python/test_openai_sdk.py",
        ])
        .env("SWITCHYARD_BASE_URL", format!("{}/v1", gateway.base_url))
        .env("SWITCHYARD_API_KEY", MASTER_KEY)
        .env("SWITCHYARD_CHAT_MODEL", CHAT_MODEL)
        .env("SWITCHYARD_EMBED_MODEL", EMBED_MODEL)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Nothing from the developer's environment may redirect the SDK away from the gateway.
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_LOG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "PYTEST_ADDOPTS",
    ] {
        cmd.env_remove(var);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "could not run {} (set SWITCHYARD_PYTHON or run the test setup script): {e}",
            python.display()
        )
    });
    let output = match tokio::time::timeout(PYTEST_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.expect("wait for pytest"),
        // Dropping the future drops the child, which kills it (kill_on_drop).
        Err(_) => panic!("pytest did not finish within {PYTEST_TIMEOUT:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytest tests/python/test_openai_sdk.py failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");

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
