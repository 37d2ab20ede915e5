//! The wire side of `kind: rest`: one request with retries (exponential backoff with
//! jitter on connection errors, 5xx and 429, honouring `Retry-After` in seconds or as an
//! HTTP date) inside the source's deadline, and bodies read under a size cap while they
//! stream in.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::kinds::SourceError;
use crate::retry::{backoff, parse_retry_after};

/// The longest pause between two attempts when the server does not say.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How much of an error answer is kept for the log.
const ERROR_SNIPPET: usize = 2048;

/// When a whole fetch must be done, and the limit it came from (for messages).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// An answer, whatever its status: callers decide what a status means.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The whole body for a success; the first few KiB otherwise.
    pub body: Vec<u8>,
    /// What `Retry-After` asked for, if anything.
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// The start of the body as text, for logs.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut text: String = text.chars().take(300).collect();
        if text.len() < self.body.len() {
            text.push('…');
        }
        text.replace(['\r', '\n'], " ")
    }
}

/// Retry and size settings of one source, around its HTTP client.
#[derive(Debug, Clone)]
pub struct Transport {
    pub client: reqwest::Client,
    pub retries: u32,
    pub backoff: Duration,
    pub request_timeout: Option<Duration>,
    pub max_bytes: u64,
}

enum Failure {
    Http(reqwest::Error),
    TooLarge,
}

impl Transport {
    /// Sends what `build` makes (called once per attempt), retrying connection errors, 5xx
    /// and 429 while attempts and the deadline last. Returns the last answer whatever its
    /// status; errors are only for when there was no answer at all. `clean` redacts.
    pub async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        deadline: Deadline,
        clean: &(dyn Fn(String) -> String + Sync),
    ) -> Result<Reply, SourceError> {
        let mut attempt: u32 = 0;
        loop {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(SourceError::Timeout(deadline.limit));
            }
            let timeout = self
                .request_timeout
                .map_or(remaining, |limit| limit.min(remaining));
            let outcome = match build().timeout(timeout).send().await {
                Ok(response) => self.read(response).await,
                Err(err) => Err(Failure::Http(err)),
            };
            let (outcome, wait) = match outcome {
                Ok(reply) if !retriable_status(reply.status) => return Ok(reply),
                Ok(reply) => {
                    let wait = reply
                        .retry_after
                        .unwrap_or_else(|| backoff(self.backoff, attempt, MAX_BACKOFF));
                    (Ok(reply), wait)
                }
                Err(Failure::TooLarge) => return Err(SourceError::TooLarge(self.max_bytes)),
                Err(Failure::Http(err)) if err.is_builder() || err.is_redirect() => {
                    return Err(SourceError::Unreachable(clean(describe(&err))));
                }
                Err(failure) => (Err(failure), backoff(self.backoff, attempt, MAX_BACKOFF)),
            };
            let give_up = attempt >= self.retries || wait >= deadline.remaining();
            if give_up {
                return match outcome {
                    Ok(reply) => Ok(reply),
                    Err(Failure::Http(err)) if err.is_timeout() => {
                        Err(SourceError::Timeout(timeout))
                    }
                    Err(Failure::Http(err)) => Err(SourceError::Unreachable(clean(describe(&err)))),
                    Err(Failure::TooLarge) => Err(SourceError::TooLarge(self.max_bytes)),
                };
            }
            let why = match &outcome {
                Ok(reply) => format!("HTTP {}", reply.status.as_u16()),
                Err(Failure::Http(err)) => clean(describe(err)),
                Err(Failure::TooLarge) => String::new(),
            };
            tracing::debug!(attempt, ?wait, "retrying after {why}");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads the body while it streams in: a success up to `max_bytes` (refused beyond,
    /// without buffering the rest), an error answer up to a snippet.
    async fn read(&self, mut response: Response) -> Result<Reply, Failure> {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let limit = if status.is_success() {
            self.max_bytes
        } else {
            ERROR_SNIPPET as u64
        };
        if status.is_success() && response.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Failure::Http)? {
            if (body.len() + chunk.len()) as u64 > limit {
                if status.is_success() {
                    return Err(Failure::TooLarge);
                }
                let room = (limit as usize).saturating_sub(body.len());
                body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
            retry_after,
        })
    }
}

fn retriable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// An error and its causes on one line, without the URL (which may carry an API key).
pub fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "the request timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
