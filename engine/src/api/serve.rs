//! Serving: the hub's router on a listener through the [`edge`](super::edge) until the
//! shutdown future resolves, then draining in-flight requests and cleaning up every
//! source. Taking the listener and the shutdown signal as parameters lets tests bind
//! port 0 and stop the hub themselves.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::edge::{self, EdgeSettings};
use super::ApiSettings;
use crate::hub::Hub;

/// Everything about how the hub is served.
#[derive(Debug, Clone, Default)]
pub struct ServeSettings {
    pub api: ApiSettings,
    pub edge: EdgeSettings,
}

/// Serves `hub` on `listener` with the default (open) settings until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, hub, ServeSettings::default(), shutdown).await
}

/// Serves `hub` on `listener` with `settings` until `shutdown` resolves.
pub async fn run_with(
    listener: TcpListener,
    hub: Arc<Hub>,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = super::app(hub.clone(), &settings.api);
    let served = edge::serve(listener, app, settings.edge, shutdown).await;
    hub.cleanup().await;
    tracing::info!("stopped: every source cleaned up");
    served
}
/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
