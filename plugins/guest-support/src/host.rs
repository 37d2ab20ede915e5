//! The host's capabilities as a trait, so a plugin's logic runs unchanged in the component
//! (where [`WasmHost`] forwards to the WIT imports) and in native unit tests (where
//! [`testing::FakeHost`] answers from a script).

use crate::clock;
use crate::http::{self, Header, HttpError, Request, Response};
use crate::log::{self, Level};

/// Outbound HTTP, logging and the monotonic clock: everything the world imports.
pub trait Host {
    /// Sends one request through the host, which checks it against the source's sandbox.
    fn send(&mut self, request: &Request) -> Result<Response, HttpError>;
    /// `fields` must never carry a secret: the hub writes them to its log as they are.
    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]);
    /// Nanoseconds from an arbitrary start.
    fn monotonic_now(&mut self) -> u64;
}

/// A header's value, by case-insensitive name.
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The real imports. Natively (in unit tests) the generated imports cannot be called, so
/// tests pass a [`testing::FakeHost`] instead.
pub struct WasmHost;

impl Host for WasmHost {
    fn send(&mut self, request: &Request) -> Result<Response, HttpError> {
        http::send(request)
    }

    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
        log::log(level, message, fields)
    }

    fn monotonic_now(&mut self) -> u64 {
        clock::monotonic_now()
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {
    //! A scripted host for unit tests (feature `testing`).

    use super::*;

    type Responder = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

    /// Answers each request with `respond` and records requests and log lines.
    pub struct FakeHost {
        /// Every request sent, in order.
        pub requests: Vec<Request>,
        /// Every log line, as `{level:?} {message} {fields:?}`.
        pub logs: Vec<String>,
        respond: Responder,
        clock: u64,
    }

    impl FakeHost {
        /// A host whose `send` answers with `respond`.
        pub fn new(
            respond: impl FnMut(&Request) -> Result<Response, HttpError> + 'static,
        ) -> FakeHost {
            FakeHost {
                requests: Vec::new(),
                logs: Vec::new(),
                respond: Box::new(respond),
                clock: 0,
            }
        }
    }

    impl Host for FakeHost {
        fn send(&mut self, request: &Request) -> Result<Response, HttpError> {
            self.requests.push(request.clone());
            (self.respond)(request)
        }

        fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
            self.logs.push(format!("{level:?} {message} {fields:?}"));
        }

        fn monotonic_now(&mut self) -> u64 {
            self.clock += 1_000_000;
            self.clock
        }
    }

    /// A JSON response with the given status.
    pub fn json(status: u16, body: &str) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: vec![Header {
                name: "Content-Type".into(),
                value: "application/json".into(),
            }],
            body: body.as_bytes().to_vec(),
        })
    }

    /// The request's body as text.
    pub fn body_text(request: &Request) -> String {
        String::from_utf8_lossy(request.body.as_deref().unwrap_or_default()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{body_text, json, FakeHost};
    use super::*;

    #[test]
    fn finds_a_header_whatever_its_case() {
        let headers = vec![Header {
            name: "Retry-After".into(),
            value: "7".into(),
        }];
        assert_eq!(header(&headers, "retry-after"), Some("7"));
        assert_eq!(header(&headers, "Location"), None);
    }

    #[test]
    fn the_fake_host_records_what_it_is_asked() {
        let mut host = FakeHost::new(|_| json(200, "{}"));
        let request = Request {
            method: "POST".into(),
            url: "http://127.0.0.1:1/search".into(),
            headers: vec![],
            body: Some(b"{\"limit\":1}".to_vec()),
        };
        let response = host.send(&request).unwrap();
        host.log(Level::Info, "sent", &[("page".into(), "1".into())]);
        assert_eq!(response.status, 200);
        assert_eq!(
            header(&response.headers, "content-type"),
            Some("application/json")
        );
        assert_eq!(body_text(&host.requests[0]), "{\"limit\":1}");
        assert_eq!(host.logs, [r#"Level::Info sent [("page", "1")]"#]);
        let first = host.monotonic_now();
        assert!(host.monotonic_now() > first);
    }
}
