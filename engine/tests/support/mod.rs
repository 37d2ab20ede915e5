//! What the engine's process-level tests share: the binary run as a process, raw HTTP,
//! and small fixtures.

#![allow(dead_code)] // each test file uses a part

pub mod process;
pub mod raw;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped demo source.
pub fn demo_yaml() -> String {
    std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap()
}

/// Where `plugins/build.sh` leaves the components.
pub fn plugins_dir() -> PathBuf {
    repo_root().join("plugins/target/wasm32-wasip2/release")
}

/// Writes `files` (name -> text) into a fresh temporary directory.
pub fn sources_dir(files: &[(&str, String)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Serves `router` on a loopback port until the returned sender is dropped.
pub async fn serve_in_background(
    router: axum::Router,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (base, stop)
}
