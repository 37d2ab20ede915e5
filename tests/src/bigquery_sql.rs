//! The worker that executes the BigQuery stand-in's GoogleSQL: `tests/standins/bigquery_sql.py`,
//! started once per stand-in with `python3`, speaking one JSON object per line over its
//! stdin and stdout. It translates each query with sqlglot and runs it on DuckDB over the
//! stand-in's GA4 export (see the script's header for the protocol and its rewrites).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::ga4_export::Ga4Export;

/// What to install when the worker cannot start; `tests/run.sh` installs exactly these.
pub const REQUIREMENTS: &str = "pip install sqlglot==30.31.0 duckdb==2.0.1";

/// A running worker holding one export; stopped on drop.
pub struct SqlWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl SqlWorker {
    /// Starts the worker and loads `export` into it.
    pub fn start(export: &Ga4Export) -> anyhow::Result<SqlWorker> {
        let script = crate::repo_root().join("tests/standins/bigquery_sql.py");
        let mut child = Command::new(std::env::var("PYTHON").unwrap_or("python3".to_owned()))
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Inherited: an import error (sqlglot or duckdb missing) shows in the test's output.
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run python3 {}: {REQUIREMENTS}", script.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the SQL worker's pipes were not set up");
        };
        let mut worker = SqlWorker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let mut rows = tempfile::Builder::new()
            .prefix("bigquery-standin")
            .suffix(".ndjson")
            .tempfile()?;
        rows.write_all(export.to_json_lines().as_bytes())?;
        rows.flush()?;
        let path = rows.path().display().to_string();
        let loaded = worker.call(&json!({"op": "load", "path": path}))?;
        if loaded["ok"] != true {
            bail!("the SQL worker could not load the export: {loaded}");
        }
        Ok(worker)
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, request: &Value) -> anyhow::Result<Value> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("the SQL worker is not running ({REQUIREMENTS})"))?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("the SQL worker exited (its error is above; {REQUIREMENTS})");
        }
        Ok(serde_json::from_str(&answer)?)
    }
}

impl Drop for SqlWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
