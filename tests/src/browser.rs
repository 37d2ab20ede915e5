//! A headless Chromium for the real-browser tests, driven over WebDriver: `chromedriver`
//! on a free port, one session with the flags a root CI container needs, screenshots in
//! the artefacts directory and the browser console read back so tests can fail on errors.
//!
//! Programs: `CHROMEDRIVER` (else `chromedriver` on `PATH`) and `CHROMIUM` (else
//! `chromium` on `PATH`), found as tests/run.sh's `command -v` finds them; it installs
//! both. Artefacts go to `METRICS_HUB_ARTIFACTS` (else `tests/artifacts/browser/`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Chromium's flags: headless, and no sandbox because the tests run as root in CI.
const CHROMIUM_ARGS: [&str; 5] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,1500",
];

/// How long [`Browser::wait_until`] polls before giving up. Generous: a debug-build hub
/// on two cores answers a cold request in well under a second, but CI machines vary.
const WAIT: Duration = Duration::from_secs(15);

/// The program the variable `var` names, else `name`, as tests/run.sh's
/// `command -v "${VAR:-name}"` finds it: a path as it is, a bare name on `PATH`.
fn program(var: &str, name: &str) -> Option<PathBuf> {
    let wanted = std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(name), PathBuf::from);
    if wanted.components().count() > 1 {
        return Some(wanted).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&wanted))
        .find(|p| p.is_file())
}

/// Where screenshots (and failure screenshots) are written; created on demand.
pub fn artifacts_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("METRICS_HUB_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("tests/artifacts/browser"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A `chromedriver` process in its own process group, so that killing the group also
/// ends the Chromium it started. Killed on drop, and by a watchdog should this test
/// process die without dropping it.
struct Driver {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
}

impl Driver {
    /// Starts chromedriver and waits until it says it is ready.
    async fn start(binary: &Path) -> anyhow::Result<Driver> {
        // Retry on another port if a concurrent process took ours between probe and start.
        for _ in 0..5 {
            let port = crate::free_port()?;
            let child = {
                use std::os::unix::process::CommandExt;
                Command::new(binary)
                    .arg(format!("--port={port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .with_context(|| format!("cannot start {}", binary.display()))?
            };
            let mut driver = Driver {
                child,
                watchdog: None,
                port,
            };
            driver.watchdog = driver.spawn_watchdog();
            if driver.wait_ready().await? {
                return Ok(driver);
            }
        }
        bail!("{} did not start on any of 5 ports", binary.display())
    }

    /// `true` once `GET /status` reports ready, `false` if the process exited first.
    async fn wait_ready(&mut self) -> anyhow::Result<bool> {
        let status = format!("http://127.0.0.1:{}/status", self.port);
        let http = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if self.child.try_wait()?.is_some() {
                return Ok(false);
            }
            if let Ok(response) = http.get(&status).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        return Ok(true);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("chromedriver did not answer on port {} in 20 s", self.port)
    }

    fn spawn_watchdog(&self) -> Option<Child> {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -KILL -{group} 2>/dev/null",
            parent = std::process::id(),
            group = self.child.id(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions; the group is the one this
            // process created for chromedriver and Chromium.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// chromedriver's legacy log endpoint: the browser console since the last call. The W3C
/// protocol has no console access; this is what Selenium uses with Chrome.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// One Chromium session. Close it with [`Browser::close`]; dropping it also kills the
/// processes, without ending the session politely.
pub struct Browser {
    client: Client,
    artifacts: PathBuf,
    // Dropped after the client.
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and opens a session. Fails, naming tests/run.sh, when
    /// chromedriver or Chromium is not installed: a missing browser must not pass as a
    /// skipped test.
    pub async fn start() -> anyhow::Result<Browser> {
        let driver_binary = program("CHROMEDRIVER", "chromedriver").context(
            "chromedriver not found (set CHROMEDRIVER or put it on PATH): \
             run tests/run.sh, which installs chromium and chromium-driver",
        )?;
        let chromium = program("CHROMIUM", "chromium").context(
            "Chromium not found (set CHROMIUM or put chromium on PATH): \
             run tests/run.sh, which installs chromium and chromium-driver",
        )?;
        let artifacts = artifacts_dir()?;
        let driver = Driver::start(&driver_binary).await?;

        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": CHROMIUM_ARGS}),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .context("cannot open a Chromium session through chromedriver")?;
        Ok(Browser {
            client,
            artifacts,
            _driver: driver,
        })
    }

    /// The WebDriver client, for navigation and elements.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The artefacts directory screenshots go to.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// Runs `script` (a function body: `return ...`) with `arguments` and returns its value.
    pub async fn script(&self, script: &str, arguments: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, arguments)
            .await
            .with_context(|| format!("script failed: {script}"))
    }

    /// Polls `probe` until it returns `Ok(Ok(value))`; `Ok(Err(state))` means not yet, and
    /// the last state is quoted when the wait times out.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, mut probe: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Result<T, String>>>,
    {
        let started = Instant::now();
        loop {
            let state = match probe().await? {
                Ok(value) => return Ok(value),
                Err(state) => state,
            };
            if started.elapsed() > WAIT {
                bail!("timed out after {WAIT:?} waiting for {what}; last state: {state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resizes the window and checks that the page's viewport followed.
    pub async fn set_viewport(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self.script("return window.innerWidth", vec![]).await?;
        if inner.as_u64() != Some(u64::from(width)) {
            bail!("asked for a {width} px wide window, the page sees innerWidth {inner}");
        }
        Ok(())
    }

    /// Saves a screenshot of the viewport as `name` in the artefacts directory.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.artifacts.join(name);
        std::fs::write(&path, png).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The console entries at level SEVERE since the last call (errors, failed loads,
    /// uncaught exceptions), each as `source: message`.
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .context("cannot read the browser console (POST /session/{id}/se/log)")?;
        let entries = entries
            .as_array()
            .with_context(|| format!("browser log is not a list: {entries}"))?;
        Ok(entries
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| {
                format!(
                    "{}: {}",
                    entry["source"].as_str().unwrap_or("?"),
                    entry["message"].as_str().unwrap_or_default()
                )
            })
            .collect())
    }

    /// Ends the session (Chromium exits), then chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}
