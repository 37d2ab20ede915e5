//! The `metrics-hub` binary run as a separate process, for what only a process shows:
//! its exit code, its log, signals, and limits set on it (`prlimit`). Cargo builds the
//! binary for the engine's integration tests (`CARGO_BIN_EXE_metrics-hub`), so it is
//! never older than the code under test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The `metrics-hub` binary cargo built for these tests.
pub fn hub_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_metrics-hub"))
}

/// A running `metrics-hub serve`.
pub struct HubProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl HubProcess {
    /// Starts `serve --listen 127.0.0.1:0 ARGS...` (with `prefix` before the binary, e.g.
    /// `prlimit --nofile=1024:1024`) and waits until it says where it serves.
    pub fn start(
        prefix: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<HubProcess> {
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(hub_binary());
                command
            }
            None => Command::new(hub_binary()),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().context("spawn metrics-hub")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut hub = HubProcess {
            child,
            base: String::new(),
            log,
        };
        hub.base = hub.wait_for_address()?;
        Ok(hub)
    }

    fn wait_for_address(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(line) = self
                .log_lines()
                .iter()
                .find(|l| l.contains("serving on http://"))
            {
                let at = line.find("http://").unwrap_or_default();
                // The address ends the text line, or its JSON string (--log-format json).
                let address = line[at..].split(['"', ' ']).next().unwrap_or_default();
                return Ok(address.trim().to_owned());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "metrics-hub exited ({status}) before serving:\n{}",
                    self.log_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "metrics-hub did not start:\n{}",
            self.log_lines().join("\n")
        )
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the hub has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill() with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the log reader drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("metrics-hub still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid`, in bytes (from /proc).
pub fn rss_of(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Runs `metrics-hub ARGS` to completion: (exit status, stderr).
pub fn run_hub(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(ExitStatus, String)> {
    let mut command = Command::new(hub_binary());
    command.args(args).stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output()?;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}
