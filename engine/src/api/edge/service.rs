//! The router as one connection serves it: each request marks the connection busy until
//! its response body is done (what the watchdog and the cap go by), carries the peer's
//! address (for trusted proxies), and on a reserve connection only health, metrics and
//! admin requests are let through.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use super::conn::ConnState;
use crate::api::ApiError;

/// The router for one connection.
#[derive(Clone)]
pub struct Tracked {
    app: Router,
    conn: Arc<ConnState>,
    peer: SocketAddr,
    reserve: bool,
}

impl Tracked {
    pub fn new(app: Router, conn: Arc<ConnState>, peer: SocketAddr, reserve: bool) -> Tracked {
        Tracked {
            app,
            conn,
            peer,
            reserve,
        }
    }
}

/// What a reserve connection may ask: what an operator needs when the hub is full.
fn reserve_allows(path: &str) -> bool {
    path == "/api/health" || path == "/metrics" || path.starts_with("/api/admin/")
}

impl Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        self.conn.serving();
        let conn = self.conn.clone();
        let reserve = self.reserve;
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let answer = (!reserve || reserve_allows(request.uri().path()))
            .then(|| self.app.clone().oneshot(request));
        Box::pin(async move {
            let mut response = match answer {
                Some(answer) => answer.await?,
                None => ApiError::retry_after(StatusCode::SERVICE_UNAVAILABLE, 1).into_response(),
            };
            if reserve {
                // A reserve connection serves one request and makes way again.
                let close = HeaderValue::from_static("close");
                response.headers_mut().insert(header::CONNECTION, close);
            }
            Ok(response.map(|inner| TrackedBody { inner, conn }))
        })
    }
}

/// A response body that marks its connection idle once hyper is done with it.
pub struct TrackedBody {
    inner: Body,
    conn: Arc<ConnState>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.conn.done();
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
