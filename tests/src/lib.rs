//! Test harness for end-to-end tests and benchmarks: a real PostgreSQL server in a
//! temporary cluster, the hub served on port 0 over a sources directory, and a headless
//! Chromium driven through chromedriver ([`browser`]) for the built-in pages, and the
//! vendors' stand-ins (BigQuery's executes its SQL over a GA4 export, [`ga4_export`]).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI does) the
//! cluster belongs to the `postgres` user and every server command goes through
//! `runuser -u postgres`.

pub mod bigquery_sql;
pub mod bigquery_standin;
pub mod browser;
pub mod expected;
pub mod ga4_export;
pub mod ga4_originals;
pub mod hubspot_standin;
pub mod planted;
pub mod rest_standin;
pub mod salesforce_standin;
pub mod tally_standin;
pub mod vendor_standins;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use metrics_hub::api::serve::ServeSettings;
use metrics_hub::hub::{Hub, HubSettings};
use metrics_hub::load;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A PostgreSQL server on 127.0.0.1 and a free port, stopped on drop (and, should the
/// test process end first, by a watchdog that sees it gone and removes the directory).
pub struct Postgres {
    url: String,
    data: PathBuf,
    bin: PathBuf,
    /// `pg_ctl -o` options (port, socket directory), to start it again the same way.
    options: String,
    dir: TempDir,
}

fn postgres_bin() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found in /usr/lib/postgresql: install postgresql-15 (the README's test command does)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL version with initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Postgres {
    /// Initializes a cluster in a temporary directory and starts the server.
    pub fn start() -> anyhow::Result<Postgres> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("metrics-hub-pg")
            .tempdir()?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("cannot chown {} to postgres", dir.path().display());
            }
        }
        let data = dir.path().join("data");
        let output = pg_command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        // Retry on another port if a concurrent process took ours between probe and start.
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                dir.path().display()
            );
            let status = pg_command(&bin, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .status()?;
            if status.success() {
                let server = Postgres {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    data,
                    bin,
                    options,
                    dir,
                };
                server.watchdog();
                return Ok(server);
            }
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        bail!("PostgreSQL did not start: {log}")
    }

    /// Stops the server (an outage); [`Postgres::resume`] starts it again on its port.
    pub fn pause(&self) -> anyhow::Result<()> {
        let status = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .status()?;
        anyhow::ensure!(status.success(), "pg_ctl stop failed");
        Ok(())
    }

    /// Starts the server again after [`Postgres::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        let status = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &self.options, "-w", "-t", "60", "start"])
            .status()?;
        if !status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            bail!("pg_ctl start failed: {log}");
        }
        Ok(())
    }

    /// The connection URL (trust authentication, database `postgres`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One server per test binary, started on first use: tests isolate themselves with
    /// their own databases ([`Postgres::database`]).
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| Postgres::start().expect("start PostgreSQL"))
    }

    /// Creates a fresh database and returns its URL.
    pub async fn database(&self, name: &str) -> anyhow::Result<String> {
        let admin = sqlx::PgPool::connect(&self.url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await?;
        admin.close().await;
        let server = self
            .url
            .rsplit_once('/')
            .map_or(self.url.as_str(), |(server, _)| server);
        Ok(format!("{server}/{name}"))
    }

    fn watchdog(&self) {
        // Runs as this process's own user: a `postgres` shell could not `kill -0` a root
        // process and would stop the server at once.
        let stop = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}{ctl} -D {data} -m immediate stop; rm -rf {dir}",
            pid = std::process::id(),
            ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
            // A shared server lives in a static, which is never dropped: without this its
            // half-gigabyte directory outlives every test run.
            dir = self.dir.path().display(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        // Not waited for: it outlives this call by design.
        drop(spawned);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// The repository's top directory (for `sources.d/`, `schemas/`, fixtures).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_owned()
}

/// Where `plugins/build.sh` leaves the components.
pub fn plugins_dir() -> PathBuf {
    repo_root().join("plugins/target/wasm32-wasip2/release")
}

/// The component of the plugin crate `name` (e.g. `test-trivial`), built by
/// `plugins/build.sh`; panics with the command to run when it is missing.
pub fn plugin_component(name: &str) -> PathBuf {
    // Precompiled artefacts in the temporary directory rather than ./data under tests/.
    let _ = metrics_hub::plugin::Runtime::init_shared(Some(
        std::env::temp_dir().join("metrics-hub-tests-plugin-cache"),
    ));
    let path = plugins_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: build the plugins with plugins/build.sh (tests/run.sh does)",
        path.display()
    );
    path
}

/// A hub serving on 127.0.0.1:0 inside this process.
pub struct TestHub {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub hub: Arc<Hub>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestHub {
    /// Loads `dir` with exactly the variables in `env` (the process environment is not
    /// read, so tests are hermetic), initializes the sources and serves, open to all.
    pub async fn start(
        dir: &Path,
        env: &HashMap<String, String>,
        settings: HubSettings,
    ) -> anyhow::Result<TestHub> {
        TestHub::start_with(dir, env, settings, ServeSettings::default()).await
    }

    /// [`TestHub::start`] with the access rules and edge limits of `serve`.
    pub async fn start_with(
        dir: &Path,
        env: &HashMap<String, String>,
        settings: HubSettings,
        serve: ServeSettings,
    ) -> anyhow::Result<TestHub> {
        let loaded = load::load_dir_with(dir, &|name| env.get(name).cloned())?;
        let hub = Arc::new(Hub::new(loaded, settings));
        hub.initialize().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = oneshot::channel::<()>();
        let served = hub.clone();
        let task = tokio::spawn(metrics_hub::api::serve::run_with(
            listener,
            served,
            serve,
            async {
                let _ = rx.await;
            },
        ));
        Ok(TestHub {
            base,
            hub,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops serving (draining in-flight requests) and cleans up the sources.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A stand-in server running on a background task; dropping this handle stops it
/// gracefully (the channel closes, which ends the shutdown future).
pub struct Background {
    _stop: oneshot::Sender<()>,
}

/// Serves `router` on `listener` until the returned handle is dropped.
pub fn serve_in_background(listener: tokio::net::TcpListener, router: axum::Router) -> Background {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Background { _stop: stop }
}

/// `GET path` on `hub`: the status and the JSON body (any status; a body that is not
/// JSON fails the test).
pub async fn get(hub: &TestHub, path: &str) -> (u16, Value) {
    let response = reqwest::get(hub.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `POST path` (no body) on `hub`: the status and the JSON body.
pub async fn post(hub: &TestHub, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(hub.url(path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The `metadata.sourceDetails` entry of source `id` in a metrics answer.
pub fn details<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["metadata"]["sourceDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no details for {id} in {body}"))
}

/// Writes `files` (name -> YAML) into a fresh temporary directory.
pub fn sources_dir(files: &[(&str, String)]) -> anyhow::Result<TempDir> {
    let dir = tempfile::tempdir()?;
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text)?;
    }
    Ok(dir)
}
