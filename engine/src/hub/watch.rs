//! What starts a reload without an HTTP call: a change under the sources directory or
//! in the `metrics.d/` beside it, watched with `notify` and debounced (an editor's save is several events, a `git
//! checkout` many), and `SIGHUP`. Each trigger calls [`Hub::reload`], which takes one
//! reload at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Hub;
use crate::derived::metrics_dir;

/// Files whose change can change a source: source files and plugin components.
fn relevant(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "wasm")
    )
}

/// Watches `dir` (recursively) and its derived metrics' directory, when there is one, and
/// reloads `hub` once events have been quiet for `debounce`. The watch ends when the
/// returned handle is dropped.
pub fn watch_dir(
    hub: Arc<Hub>,
    dir: &Path,
    debounce: Duration,
) -> Result<WatchHandle, notify::Error> {
    let (events, mut changes) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        for path in event.paths.into_iter().filter(|p| relevant(p)) {
            let _ = events.send(path);
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let metrics = metrics_dir(dir);
    if metrics.is_dir() {
        watcher.watch(&metrics, RecursiveMode::NonRecursive)?;
    }
    let task = tokio::spawn(async move {
        while let Some(first) = changes.recv().await {
            let mut last = first;
            // Quiet for `debounce` since the last event: the burst is over.
            while let Ok(Some(path)) = tokio::time::timeout(debounce, changes.recv()).await {
                last = path;
            }
            tracing::info!(changed = %last.display(), "sources directory changed: reloading");
            if let Err(err) = hub.reload().await {
                tracing::error!("reload failed: {err}");
            }
        }
    });
    Ok(WatchHandle {
        _watcher: watcher,
        task,
    })
}

/// A running watch; dropping it stops the watcher and its task.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reloads `hub` on every `SIGHUP` until the process ends.
pub fn reload_on_hangup(hub: Arc<Hub>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading sources");
            if let Err(err) = hub.reload().await {
                tracing::error!("reload failed: {err}");
            }
        }
    }))
}
