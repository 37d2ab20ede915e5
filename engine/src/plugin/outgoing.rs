//! `wasi:http/outgoing-handler` for guests whose HTTP client speaks WASI (Python's and
//! JavaScript's, e.g. componentize-js's `fetch`): every request a guest hands to the
//! handler is taken whole (body capped), turned into the contract's request, and goes
//! through the source's [`HttpGate`] exactly as `http.send` does: the same allowlist,
//! address check, pacing, retries, caps, deadline and log lines. `wasmtime-wasi-http`
//! is built without its own client (`default-send-request` off), so there is no other
//! way out.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::{Error as WasiHttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::bindings::http::{Header, HttpError, Request, Response};
use super::http::{CallTally, HttpGate};

/// The largest request body a guest may send through `wasi:http`.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

type IoFuture = Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(hyper::Response<WasiBody>, IoFuture), WasiHttpError>> + Send>;

/// One instance's way out, for both HTTP paths (`http.send` uses it too): its source's
/// gate, and the current call's deadline and tally (reset by
/// [`super::host::HostState::begin`] at the start of every call).
pub(crate) struct GateHooks {
    pub(crate) gate: Arc<HttpGate>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) deadline: Instant,
    pub(crate) tally: Arc<CallTally>,
}

impl WasiHttpHooks for GateHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _io: IoFuture,
    ) -> SendFuture {
        let (gate, tally, deadline) = (self.gate.clone(), self.tally.clone(), self.deadline);
        // On the hub's runtime, whatever thread polls the handle: reqwest needs its
        // drivers, and dropping the guest's future aborts the exchange.
        let task = AbortOnDropJoinHandle::from(self.runtime.spawn(async move {
            let guest = guest_request(request).await?;
            let outbound = gate.admit(guest, &tally).map_err(wasi_error)?;
            let response = gate.exchange(outbound, deadline, tally).await;
            response.map(buffered).map_err(wasi_error)
        }));
        Box::new(async move {
            let response = task.await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// The guest's request as the contract spells it, its body read whole (capped).
async fn guest_request(request: hyper::Request<WasiBody>) -> Result<Request, WasiHttpError> {
    let (parts, mut body) = request.into_parts();
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if bytes.len() + data.len() > MAX_REQUEST_BODY {
                let size = (bytes.len() + data.len()) as u64;
                return Err(WasiHttpError::HttpRequestBodySize(Some(size)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_owned(),
        url: parts.uri.to_string(),
        headers,
        body: (!bytes.is_empty()).then(|| bytes.to_vec()),
    })
}

/// A whole response as the body `wasi:http` streams to the guest.
fn buffered(response: Response) -> hyper::Response<WasiBody> {
    let body = Full::new(Bytes::from(response.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut out = hyper::Response::new(body);
    *out.status_mut() =
        hyper::StatusCode::from_u16(response.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    let headers = out.headers_mut();
    for Header { name, value } in response.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    out
}

/// The gate's refusals in `wasi:http`'s terms.
fn wasi_error(err: HttpError) -> WasiHttpError {
    match err {
        HttpError::Denied(_) => WasiHttpError::HttpRequestDenied,
        HttpError::Timeout => WasiHttpError::ConnectionTimeout,
        HttpError::TooLarge(limit) => WasiHttpError::HttpResponseBodySize(Some(limit)),
        HttpError::TooManyRequests(_) => WasiHttpError::ConnectionLimitReached,
        HttpError::Transport(why) => WasiHttpError::InternalError(Some(why)),
    }
}
