//! A real OpenAI-compatible model server for tests: llama-cpp-python with
//! SmolLM2-135M (set up by `scripts/deps.sh --python`: `.venv-llama` and
//! `.cache/models`), started on port 0 by `tests/python/llama_server.py`.
//! Readiness is the server's own `llama ready on PORT` line; the process is
//! killed when the handle drops.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The model alias the server answers to.
pub const ALIAS: &str = "smollm2";

/// A running model server.
pub struct LlamaServer {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    _child: Child,
}

fn path_from(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

impl LlamaServer {
    /// Starts the server; panics with setup instructions when it cannot.
    pub async fn start() -> LlamaServer {
        let python = path_from("SWITCHYARD_LLAMA_PYTHON", ".venv-llama/bin/python");
        let model = path_from(
            "SWITCHYARD_LLAMA_MODEL",
            ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        );
        assert!(
            python.exists() && model.exists(),
            "the real-model tests need {} and {}: run `scripts/deps.sh --python` (it installs \
             llama-cpp-python from ../shared/wheels and downloads SmolLM2), or set \
             SWITCHYARD_LLAMA_PYTHON / SWITCHYARD_LLAMA_MODEL",
            python.display(),
            model.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/llama_server.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(&model)
            .arg(ALIAS)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = line.strip_prefix("llama ready on ") {
                    return p.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the llama.cpp server did not become ready within 120 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        LlamaServer {
            base_url: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }
}
