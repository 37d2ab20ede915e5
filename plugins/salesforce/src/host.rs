//! The host's capabilities as a trait, so the plugin's logic runs unchanged in the
//! component (where [`crate::WasmHost`] forwards to the WIT imports) and in native unit
//! tests (where [`testing::FakeHost`] answers from a script).

use crate::metrics_hub::source::http::{HttpError, Request, Response};
use crate::metrics_hub::source::log::Level;

/// Outbound HTTP, logging and the monotonic clock: everything the world imports.
pub trait Host {
    fn send(&mut self, request: &Request) -> Result<Response, HttpError>;
    /// `fields` must never carry a secret: the hub writes them to its log as they are.
    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]);
    /// Nanoseconds from an arbitrary start.
    fn monotonic_now(&mut self) -> u64;
}

/// A header's value, by case-insensitive name.
pub fn header<'a>(
    headers: &'a [crate::metrics_hub::source::http::Header],
    name: &str,
) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

#[cfg(test)]
pub mod testing {
    //! A scripted host for unit tests.

    use super::*;
    use crate::metrics_hub::source::http::Header;

    type Responder = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

    /// Answers each request with `respond` and records requests and log lines.
    pub struct FakeHost {
        pub requests: Vec<Request>,
        pub logs: Vec<String>,
        respond: Responder,
        clock: u64,
    }

    impl FakeHost {
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
