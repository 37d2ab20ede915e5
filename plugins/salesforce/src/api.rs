//! The Salesforce REST API as this plugin uses it: an OAuth 2.0 client-credentials token,
//! authorized GETs that re-authenticate once when the session expired, SOQL queries
//! followed through `nextRecordsUrl` until `done`, and Salesforce's error arrays turned
//! into the world's `source-error`.

use guest_support::http::{Header, HttpError, Request, Response};
use guest_support::log::Level;
use guest_support::{header, Host, SourceError};
use serde_json::Value;

use crate::settings::Settings;
use crate::soql::percent_encode;

/// A guard against a server that never says `done`; the host's per-call request cap
/// usually stops such a loop first. 500 pages of 2,000 records is a million records.
const MAX_PAGES: usize = 500;

/// Longest remote message quoted in an error, in characters.
const MAX_MESSAGE: usize = 300;

/// An access token and the instance it is valid for.
struct Session {
    access_token: String,
    /// Where queries go: the token response's `instance_url`, which may differ from the
    /// configured login URL (My Domain).
    instance_url: String,
}

/// All records of one SOQL query.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryResult {
    /// `totalSize`: for `SELECT COUNT() ...` the count itself.
    pub total_size: u64,
    pub records: Vec<Value>,
    /// How many responses the query took.
    pub pages: usize,
}

/// Why an authorized call failed, before it becomes a `source-error`.
#[derive(Debug)]
enum Failure {
    /// 401 INVALID_SESSION_ID: the token expired or was revoked; worth one re-authentication.
    SessionExpired,
    Error(SourceError),
}

/// One org's API client. It keeps the token between calls: Salesforce's client-credentials
/// tokens carry no expiry, so the plugin learns of one from a 401.
pub struct Client {
    settings: Settings,
    session: Option<Session>,
}

impl Client {
    pub fn new(settings: Settings) -> Client {
        Client {
            settings,
            session: None,
        }
    }

    /// Drops the token (at cleanup, so a secret does not outlive the source).
    pub fn forget_session(&mut self) {
        self.session = None;
    }

    /// Runs `soql` and follows `nextRecordsUrl` until Salesforce says `done`.
    pub fn query(&mut self, host: &mut dyn Host, soql: &str) -> Result<QueryResult, SourceError> {
        let started = host.monotonic_now();
        let mut path = format!(
            "/services/data/v{}/query?q={}",
            self.settings.api_version,
            percent_encode(soql)
        );
        let mut result = QueryResult::default();
        loop {
            let page = self.get_json(host, &path)?;
            result.pages += 1;
            let page = parse_query_page(&page)?;
            if result.pages == 1 {
                result.total_size = page.total_size;
            }
            result.records.extend(page.records);
            if page.done {
                break;
            }
            let Some(next) = page.next_records_url else {
                return Err(upstream(
                    "a query page said done: false without a nextRecordsUrl",
                ));
            };
            // Only a path on the same instance: a full URL in the answer must not send the
            // token elsewhere.
            if !next.starts_with("/services/data/") || next == path {
                return Err(upstream(format!("unusable nextRecordsUrl {}", clip(&next))));
            }
            if result.pages >= MAX_PAGES {
                return Err(upstream(format!(
                    "a query was still not done after {MAX_PAGES} pages"
                )));
            }
            path = next;
        }
        let elapsed_ms = host.monotonic_now().saturating_sub(started) / 1_000_000;
        host.log(
            Level::Debug,
            "SOQL query answered",
            &[
                ("soql".into(), soql.into()),
                ("records".into(), result.records.len().to_string()),
                ("pages".into(), result.pages.to_string()),
                ("elapsed_ms".into(), elapsed_ms.to_string()),
            ],
        );
        Ok(result)
    }

    /// A cheap authorized call: the org's API limits.
    pub fn check_limits(&mut self, host: &mut dyn Host) -> Result<(), SourceError> {
        let path = format!("/services/data/v{}/limits", self.settings.api_version);
        self.get_json(host, &path).map(|_| ())
    }

    /// An authorized GET of `path` on the instance; on 401 INVALID_SESSION_ID it fetches a
    /// new token and tries once more.
    fn get_json(&mut self, host: &mut dyn Host, path: &str) -> Result<Value, SourceError> {
        let mut reauthenticated = false;
        loop {
            let session = match self.session.take() {
                Some(session) => session,
                None => self.authenticate(host)?,
            };
            let request = Request {
                method: "GET".into(),
                url: format!("{}{}", session.instance_url, path),
                headers: vec![
                    Header {
                        name: "Authorization".into(),
                        value: format!("Bearer {}", session.access_token),
                    },
                    Header {
                        name: "Accept".into(),
                        value: "application/json".into(),
                    },
                ],
                body: None,
            };
            let response = match host.send(&request) {
                Ok(response) => response,
                Err(error) => {
                    self.session = Some(session);
                    return Err(http_error(error));
                }
            };
            match api_answer(&response) {
                Ok(value) => {
                    self.session = Some(session);
                    return Ok(value);
                }
                Err(Failure::SessionExpired) if !reauthenticated => {
                    host.log(
                        Level::Info,
                        "Salesforce session expired; re-authenticating",
                        &[],
                    );
                    reauthenticated = true;
                }
                Err(Failure::SessionExpired) => {
                    return Err(SourceError::Auth(
                        "Salesforce refused a token it had just issued (INVALID_SESSION_ID)".into(),
                    ))
                }
                Err(Failure::Error(error)) => {
                    self.session = Some(session);
                    return Err(error);
                }
            }
        }
    }

    /// The client-credentials grant against `{instance_url}/services/oauth2/token`.
    fn authenticate(&mut self, host: &mut dyn Host) -> Result<Session, SourceError> {
        let settings = &self.settings;
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            percent_encode(&settings.client_id),
            percent_encode(&settings.client_secret)
        );
        let request = Request {
            method: "POST".into(),
            url: format!("{}/services/oauth2/token", settings.instance_url),
            headers: vec![
                Header {
                    name: "Content-Type".into(),
                    value: "application/x-www-form-urlencoded".into(),
                },
                Header {
                    name: "Accept".into(),
                    value: "application/json".into(),
                },
            ],
            body: Some(body.into_bytes()),
        };
        let response = host.send(&request).map_err(http_error)?;
        let session = token_answer(&response, &settings.instance_url)?;
        host.log(
            Level::Info,
            "authenticated to Salesforce",
            &[("instance_url".into(), session.instance_url.clone())],
        );
        Ok(session)
    }
}

/// Reads the token endpoint's answer.
fn token_answer(response: &Response, configured_instance: &str) -> Result<Session, SourceError> {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    if !(200..300).contains(&response.status) {
        // `{"error":"invalid_client","error_description":"invalid client credentials"}`
        let text = |key: &str| {
            body.as_ref()
                .and_then(|b| b.get(key))
                .and_then(Value::as_str)
                .map(clip)
        };
        let reason = match (text("error"), text("error_description")) {
            (Some(error), Some(description)) => format!("{error}: {description}"),
            (Some(error), None) => error,
            _ => format!("HTTP {}", response.status),
        };
        return Err(if response.status >= 500 {
            upstream(format!("the token endpoint failed: {reason}"))
        } else {
            SourceError::Auth(format!(
                "Salesforce refused the client credentials: {reason}"
            ))
        });
    }
    let body =
        body.ok_or_else(|| upstream("the token endpoint answered something that is not JSON"))?;
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| upstream("the token endpoint's answer has no access_token"))?;
    let instance_url = match body.get("instance_url").and_then(Value::as_str) {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            url.trim_end_matches('/')
        }
        Some(url) => {
            return Err(upstream(format!(
                "the token endpoint gave an unusable instance_url {}",
                clip(url)
            )))
        }
        None => configured_instance,
    };
    Ok(Session {
        access_token: access_token.to_owned(),
        instance_url: instance_url.to_owned(),
    })
}

/// Reads an authorized API answer: JSON on success, else Salesforce's error array.
fn api_answer(response: &Response) -> Result<Value, Failure> {
    if (200..300).contains(&response.status) {
        return serde_json::from_slice(&response.body).map_err(|_| {
            Failure::Error(upstream("Salesforce answered something that is not JSON"))
        });
    }
    // `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`
    let errors: Vec<(String, String)> = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| body.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|error| {
            let text = |key: &str| {
                error
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("errorCode"), text("message"))
        })
        .collect();
    let has = |code: &str| errors.iter().any(|(c, _)| c == code);
    let described = match errors.first() {
        Some((code, message)) => format!("{code}: {}", clip(message)),
        None => format!("HTTP {}", response.status),
    };
    let retry_after = header(&response.headers, "Retry-After").and_then(|v| v.trim().parse().ok());
    Err(if response.status == 401 && has("INVALID_SESSION_ID") {
        Failure::SessionExpired
    } else if has("REQUEST_LIMIT_EXCEEDED") || response.status == 429 {
        Failure::Error(SourceError::RateLimited(retry_after))
    } else if response.status == 401 || response.status == 403 {
        Failure::Error(SourceError::Auth(format!(
            "Salesforce refused the request: {described}"
        )))
    } else {
        Failure::Error(upstream(format!(
            "Salesforce answered HTTP {}: {described}",
            response.status
        )))
    })
}

/// One response of a query.
struct QueryPage {
    total_size: u64,
    done: bool,
    next_records_url: Option<String>,
    records: Vec<Value>,
}

fn parse_query_page(page: &Value) -> Result<QueryPage, SourceError> {
    let total_size = page.get("totalSize").and_then(Value::as_u64);
    let done = page.get("done").and_then(Value::as_bool);
    let records = page.get("records").and_then(Value::as_array);
    match (total_size, done, records) {
        (Some(total_size), Some(done), Some(records)) => Ok(QueryPage {
            total_size,
            done,
            next_records_url: page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_owned),
            records: records.clone(),
        }),
        _ => Err(upstream("a query answer lacks totalSize, done or records")),
    }
}

/// What a refused or failed `http.send` means for this source.
fn http_error(error: HttpError) -> SourceError {
    match error {
        HttpError::Denied(target) => SourceError::InvalidConfig(format!(
            "the hub refused a request to {target}: add the org's host to allowed_hosts"
        )),
        HttpError::Timeout => upstream("Salesforce did not answer in time"),
        HttpError::TooLarge(limit) => upstream(format!(
            "a Salesforce answer exceeded the {limit}-byte response limit"
        )),
        HttpError::TooManyRequests(limit) => upstream(format!(
            "one fetch needed more than the {limit} requests allowed per call"
        )),
        HttpError::Transport(reason) => {
            upstream(format!("cannot reach Salesforce: {}", clip(&reason)))
        }
    }
}

pub fn upstream(message: impl Into<String>) -> SourceError {
    SourceError::Upstream(message.into())
}

/// At most [`MAX_MESSAGE`] characters of a remote text.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use guest_support::host::testing::{body_text, json, FakeHost};

    use super::*;
    use crate::settings::Settings;

    fn settings() -> Settings {
        Settings {
            instance_url: "https://login.example.com".into(),
            api_version: "62.0".into(),
            client_id: "the id".into(),
            client_secret: "s&cret".into(),
        }
    }

    const TOKEN: &str = r#"{"access_token":"tok-1","instance_url":"https://acme.my.salesforce.com","token_type":"Bearer","issued_at":"1704067200000","scope":"api","id":"x","signature":"y"}"#;

    fn authorization(request: &Request) -> Option<String> {
        header(&request.headers, "authorization").map(str::to_owned)
    }

    #[test]
    fn authenticates_then_follows_next_records_url_until_done() {
        let mut host = FakeHost::new(|request| {
            if request.url.ends_with("/services/oauth2/token") {
                return json(200, TOKEN);
            }
            if request.url.contains("/query?q=") {
                return json(
                    200,
                    r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gXX-2","records":[{"Id":"1"},{"Id":"2"}]}"#,
                );
            }
            if request.url.ends_with("/query/01gXX-2") {
                return json(200, r#"{"totalSize":3,"done":true,"records":[{"Id":"3"}]}"#);
            }
            json(404, r#"[{"errorCode":"NOT_FOUND","message":"no"}]"#)
        });
        let mut client = Client::new(settings());
        let result = client.query(&mut host, "SELECT Id FROM Account").unwrap();
        assert_eq!(result.total_size, 3);
        assert_eq!(result.pages, 2);
        let ids: Vec<&str> = result
            .records
            .iter()
            .map(|r| r["Id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);

        let token = &host.requests[0];
        assert_eq!(token.method, "POST");
        assert_eq!(token.url, "https://login.example.com/services/oauth2/token");
        assert_eq!(
            body_text(token),
            "grant_type=client_credentials&client_id=the%20id&client_secret=s%26cret"
        );
        // Queries go to the instance the token names, with the token.
        assert_eq!(
            host.requests[1].url,
            "https://acme.my.salesforce.com/services/data/v62.0/query?q=SELECT%20Id%20FROM%20Account"
        );
        assert_eq!(
            authorization(&host.requests[2]).as_deref(),
            Some("Bearer tok-1")
        );
        assert!(host
            .logs
            .iter()
            .all(|line| !line.contains("s&cret") && !line.contains("tok-1")));

        // The token is kept for the next query.
        client.query(&mut host, "SELECT Id FROM Account").unwrap();
        assert_eq!(
            host.requests
                .iter()
                .filter(|r| r.url.ends_with("/token"))
                .count(),
            1
        );
    }

    #[test]
    fn re_authenticates_once_when_the_session_expired() {
        let tokens = Rc::new(RefCell::new(0));
        let issued = tokens.clone();
        let mut host = FakeHost::new(move |request| {
            if request.url.ends_with("/token") {
                *issued.borrow_mut() += 1;
                return json(
                    200,
                    &format!(
                        r#"{{"access_token":"tok-{}","instance_url":"https://acme.my.salesforce.com"}}"#,
                        issued.borrow()
                    ),
                );
            }
            if authorization(request).as_deref() == Some("Bearer tok-1") {
                return json(
                    401,
                    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
                );
            }
            json(200, r#"{"totalSize":7,"done":true,"records":[]}"#)
        });
        let mut client = Client::new(settings());
        let result = client
            .query(&mut host, "SELECT COUNT() FROM Contact")
            .unwrap();
        assert_eq!(result.total_size, 7);
        assert_eq!(*tokens.borrow(), 2);
        assert_eq!(host.requests.len(), 4);
    }

    #[test]
    fn a_second_invalid_session_is_an_auth_error() {
        let mut host = FakeHost::new(|request| {
            if request.url.ends_with("/token") {
                return json(200, TOKEN);
            }
            json(
                401,
                r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            )
        });
        let error = Client::new(settings())
            .query(&mut host, "SELECT COUNT() FROM Contact")
            .unwrap_err();
        assert!(matches!(error, SourceError::Auth(_)), "{error:?}");
        // token, query, token, query: one re-authentication and no more.
        assert_eq!(host.requests.len(), 4);
    }

    #[test]
    fn refused_credentials_are_an_auth_error_with_the_reason() {
        let mut host = FakeHost::new(|_| {
            json(
                400,
                r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
            )
        });
        let error = Client::new(settings()).check_limits(&mut host).unwrap_err();
        assert_eq!(
            error,
            SourceError::Auth("Salesforce refused the client credentials: invalid_client: invalid client credentials".into())
        );
    }

    #[test]
    fn error_arrays_become_typed_errors() {
        let cases = [
            (403, r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#, SourceError::RateLimited(None)),
            (
                400,
                r#"[{"message":"unexpected token: FROM","errorCode":"MALFORMED_QUERY"}]"#,
                SourceError::Upstream("Salesforce answered HTTP 400: MALFORMED_QUERY: unexpected token: FROM".into()),
            ),
            (
                403,
                r#"[{"message":"API is not enabled for this Organization or Partner","errorCode":"API_DISABLED_FOR_ORG"}]"#,
                SourceError::Auth(
                    "Salesforce refused the request: API_DISABLED_FOR_ORG: API is not enabled for this Organization or Partner".into(),
                ),
            ),
            (503, "<html>down</html>", SourceError::Upstream("Salesforce answered HTTP 503: HTTP 503".into())),
        ];
        for (status, body, expected) in cases {
            let mut host = FakeHost::new(move |request| {
                if request.url.ends_with("/token") {
                    return json(200, TOKEN);
                }
                json(status, body)
            });
            let error = Client::new(settings())
                .query(&mut host, "SELECT Id FROM Account")
                .unwrap_err();
            assert_eq!(error, expected);
        }
    }

    #[test]
    fn a_next_records_url_off_the_instance_is_refused() {
        let mut host = FakeHost::new(|request| {
            if request.url.ends_with("/token") {
                return json(200, TOKEN);
            }
            json(
                200,
                r#"{"totalSize":3,"done":false,"nextRecordsUrl":"https://evil.example/steal","records":[]}"#,
            )
        });
        let error = Client::new(settings())
            .query(&mut host, "SELECT Id FROM Account")
            .unwrap_err();
        assert!(
            matches!(error, SourceError::Upstream(ref m) if m.contains("nextRecordsUrl")),
            "{error:?}"
        );
        assert_eq!(host.requests.len(), 2);
    }

    #[test]
    fn a_host_refusal_points_at_allowed_hosts() {
        let mut host = FakeHost::new(|_| Err(HttpError::Denied("login.example.com".into())));
        let error = Client::new(settings()).check_limits(&mut host).unwrap_err();
        assert!(
            matches!(error, SourceError::InvalidConfig(ref m) if m.contains("allowed_hosts")),
            "{error:?}"
        );
    }
}
