//! Starts the real `switchyard` binary on port 0 for a test.
//!
//! The process gets a clean environment (only what the test passes, plus
//! PATH), its own temporary data dir, and is killed when the handle drops.
//! Readiness is the gateway's own `switchyard ready on ADDR` line, printed
//! once its listener accepts connections — no sleeps, no polling here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running gateway process.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Its data directory (deleted on drop unless `keep`).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    child: Option<Child>,
    log_tx: tokio::sync::broadcast::Sender<String>,
}

impl Gateway {
    /// Starts with these environment variables and no config file.
    pub async fn start(env: &[(&str, String)]) -> Gateway {
        Self::start_with(env, None).await
    }

    /// Starts with env and an optional YAML config (written to the data dir).
    pub async fn start_with(env: &[(&str, String)], yaml: Option<&str>) -> Gateway {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        Self::spawn(env, yaml, data_dir, Some(tmp), &[]).await
    }

    /// Starts on an existing data dir (restart tests) with extra CLI args.
    pub async fn spawn(
        env: &[(&str, String)],
        yaml: Option<&str>,
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        extra_args: &[&str],
    ) -> Gateway {
        Self::spawn_limited(env, yaml, data_dir, tmp, extra_args, None).await
    }

    /// Like [`Gateway::spawn`], with the largest file the process may write
    /// (`RLIMIT_FSIZE`): writes past it fail like a full disk (`EFBIG`).
    pub async fn spawn_limited(
        env: &[(&str, String)],
        yaml: Option<&str>,
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        extra_args: &[&str],
        max_file_bytes: Option<u64>,
    ) -> Gateway {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        if let Some(limit) = max_file_bytes {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.arg("serve").args(extra_args).env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("SWITCHYARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD_DATA_DIR", &data_dir)
            .env("SWITCHYARD_LOG", "info");
        if let Some(y) = yaml {
            let p = data_dir.join("switchyard.yaml");
            std::fs::write(&p, y).expect("write config");
            cmd.env("SWITCHYARD_CONFIG", &p);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn switchyard");
        let stdout = child.stdout.take().expect("stdout");
        // stderr (the log) goes to <data_dir>/gateway.log line by line and to
        // subscribers, so tests can wait for a log line without polling.
        let (log_tx, _) = tokio::sync::broadcast::channel::<String>(4096);
        let stderr = child.stderr.take().expect("stderr");
        let log_path = data_dir.join("gateway.log");
        let tx = log_tx.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let Ok(mut file) = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .await
            else {
                return;
            };
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                let _ = file.flush().await;
                let _ = tx.send(line);
            }
        });
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("switchyard ready on ") {
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        let addr = match ready {
            Ok(Some(a)) => a,
            _ => {
                let log = std::fs::read_to_string(data_dir.join("gateway.log")).unwrap_or_default();
                panic!("gateway did not become ready; its log:\n{log}");
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Gateway {
            base_url: format!("http://{addr}"),
            addr,
            data_dir,
            _tmp: tmp,
            child: Some(child),
            log_tx,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).unwrap_or(0)
    }

    /// Subscribes to log lines written from now on.
    pub fn log_lines(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.log_tx.subscribe()
    }

    /// Waits (up to 30 s) for a log line containing `needle` written after
    /// `rx` was subscribed, and returns it.
    pub async fn wait_log(rx: &mut tokio::sync::broadcast::Receiver<String>, needle: &str) -> String {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match rx.recv().await {
                    Ok(line) if line.contains(needle) => return Some(line),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return None,
                }
            }
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no log line containing `{needle}` within 30 s"),
        }
    }

    /// The gateway's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("gateway.log")).unwrap_or_default()
    }

    /// Sends a signal and waits for the exit status.
    pub async fn signal_and_wait(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        if let Some(pid) = child.id() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("gateway exits within 60 s")
            .expect("wait")
    }
}
