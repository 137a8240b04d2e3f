//! Runs official-SDK conformance tests (`tests/python/*.py`) with pytest
//! against a running gateway.
//!
//! The interpreter is `$SWITCHYARD_PYTHON` if set, else `<repo>/.venv/bin/python` (a virtualenv
//! with `tests/python/requirements.txt` installed). Without either the test fails: it never passes
//! silently for want of Python.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::gateway::Gateway;

/// Generous: each suite takes seconds; the SDKs' own per-request timeouts are shorter.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Variables of the developer's environment that could redirect the SDKs away from the gateway
/// or change how they authenticate.
const SCRUBBED: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_LOG",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_LOG",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "SWITCHYARD_ANTHROPIC_AUTH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "PYTEST_ADDOPTS",
];

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$SWITCHYARD_PYTHON` (a path or a command on `PATH`), else the repo's `.venv`; panics with
/// setup instructions when there is none.
pub fn python(root: &Path) -> PathBuf {
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

/// Runs pytest on `files` with `env` (plus a clean proxy environment) and returns its stdout;
/// panics with pytest's output and the gateway log's tail if any test failed.
pub async fn run(gateway: &Gateway, files: &[&str], env: &[(&str, String)]) -> String {
    let root = repo_root();
    let python = python(&root);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.current_dir(&root)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--tb=short"])
        .args(files)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
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
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytest {} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- gateway log (tail) ---\n{}",
        files.join(" "),
        output.status,
        tail(&gateway.log(), 60)
    );
    println!("{stdout}");
    stdout
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
