//! HubSpot's CRM v3 search as this plugin uses it: `POST /crm/v3/objects/{object}/search`
//! with the private app token, `after` cursor paging, HubSpot's stop rules, and its error
//! bodies turned into the world's `source-error`.
//!
//! Stop rules: a page without `paging` is the last one; and one search never reads past
//! [`RESULT_CAP`] results, because HubSpot answers 400 beyond that even while it still
//! offers a `paging.next`. A window holding more records is read in several searches:
//! sorted by `createdate` ascending, each next search starts at the last `createdate`
//! seen, and records already read (same millisecond) are skipped by id.

use std::collections::HashSet;

use guest_support::http::{Header, HttpError, Request, Response};
use guest_support::log::Level;
use guest_support::{header, Host, SourceError};
use serde_json::{json, Map, Value};

use crate::dates::parse_timestamp_millis;
use crate::settings::Settings;

/// The most results one search can return, whatever its paging says.
pub const RESULT_CAP: usize = 10_000;

/// Longest remote message quoted in an error, in characters.
const MAX_MESSAGE: usize = 300;

/// One CRM object as a search returns it. Property values are strings or null.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub properties: Map<String, Value>,
}

impl Record {
    /// A property's text; absent and null are both `None`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

/// One answer of the search endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// How many records match, beyond the cap too.
    pub total: u64,
    pub results: Vec<Record>,
    /// `paging.next.after`, absent on the last page.
    pub next_after: Option<String>,
}

/// One filter of a search's single filter group (filters in a group are ANDed).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub property: &'static str,
    pub operator: &'static str,
    pub value: String,
}

/// A search request without its cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// `contacts`, `deals`, `companies`...
    pub object: &'static str,
    pub filters: Vec<Filter>,
    /// HubSpot sorts by one property.
    pub sort: (&'static str, &'static str),
    pub properties: Vec<&'static str>,
}

impl Search {
    /// The JSON body of one page.
    pub fn body(&self, limit: usize, after: Option<&str>) -> Value {
        let filters: Vec<Value> = self
            .filters
            .iter()
            .map(|f| json!({"propertyName": f.property, "operator": f.operator, "value": f.value}))
            .collect();
        let mut body = json!({
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": self.sort.0, "direction": self.sort.1}],
            "properties": self.properties,
            "limit": limit,
        });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        body
    }
}

/// What to do after a page of a search that has read `read` results so far.
#[derive(Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Ask for the page at this cursor.
    Page(String),
    /// The search hit [`RESULT_CAP`] with more to come: start a new search.
    Capped,
    Done,
}

/// HubSpot's stop rules as a pure decision.
pub fn next_step(next_after: Option<&str>, read: usize) -> NextStep {
    match next_after {
        None => NextStep::Done,
        Some(_) if read >= RESULT_CAP => NextStep::Capped,
        Some(after) => NextStep::Page(after.to_owned()),
    }
}

/// One account's API client.
pub struct Client {
    settings: Settings,
}

impl Client {
    pub fn new(settings: Settings) -> Client {
        Client { settings }
    }

    /// One page of `search`.
    pub fn search_page(
        &self,
        host: &mut dyn Host,
        search: &Search,
        limit: usize,
        after: Option<&str>,
    ) -> Result<SearchPage, SourceError> {
        let body = search.body(limit, after).to_string();
        let request = Request {
            method: "POST".into(),
            url: format!(
                "{}/crm/v3/objects/{}/search",
                self.settings.base_url, search.object
            ),
            headers: vec![
                Header {
                    name: "Authorization".into(),
                    value: format!("Bearer {}", self.settings.access_token),
                },
                Header {
                    name: "Content-Type".into(),
                    value: "application/json".into(),
                },
                Header {
                    name: "Accept".into(),
                    value: "application/json".into(),
                },
            ],
            body: Some(body.into_bytes()),
        };
        let response = host.send(&request).map_err(http_error)?;
        let answer = answer(&response);
        if let Err(SourceError::RateLimited(retry_after)) = &answer {
            let wait = retry_after.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
            host.log(
                Level::Warn,
                "HubSpot rate limit reached",
                &[("retry_after_seconds".into(), wait)],
            );
        }
        parse_page(&answer?)
    }

    /// Every record of `object` created in `[from_millis, until_millis)`, with `properties`.
    pub fn created_within(
        &self,
        host: &mut dyn Host,
        object: &'static str,
        from_millis: i64,
        until_millis: i64,
        properties: &[&'static str],
    ) -> Result<Vec<Record>, SourceError> {
        let started = host.monotonic_now();
        let page_size = self.settings.page_size as usize;
        let mut properties = properties.to_vec();
        if !properties.contains(&"createdate") {
            properties.push("createdate");
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut records = Vec::new();
        let mut from = from_millis;
        let mut pages = 0;
        let mut searches = 0;
        'searches: loop {
            searches += 1;
            let search = Search {
                object,
                filters: vec![
                    Filter {
                        property: "createdate",
                        operator: "GTE",
                        value: from.to_string(),
                    },
                    Filter {
                        property: "createdate",
                        operator: "LT",
                        value: until_millis.to_string(),
                    },
                ],
                sort: ("createdate", "ASCENDING"),
                properties: properties.clone(),
            };
            let mut after: Option<String> = None;
            let mut read = 0;
            let mut last_created = from;
            loop {
                // Never ask past the cap: the last page of a search may be a short one.
                let limit = page_size.min(RESULT_CAP - read);
                let page = self.search_page(host, &search, limit, after.as_deref())?;
                pages += 1;
                read += page.results.len();
                for record in page.results {
                    if let Some(created) = record
                        .property("createdate")
                        .and_then(parse_timestamp_millis)
                    {
                        last_created = last_created.max(created);
                    }
                    if seen.insert(record.id.clone()) {
                        records.push(record);
                    }
                }
                match next_step(page.next_after.as_deref(), read) {
                    NextStep::Done => break 'searches,
                    NextStep::Page(next) if after.as_deref() == Some(next.as_str()) => {
                        return Err(upstream(format!(
                            "HubSpot repeated the paging cursor {}",
                            clip(&next)
                        )));
                    }
                    NextStep::Page(next) => after = Some(next),
                    NextStep::Capped if last_created > from => {
                        from = last_created;
                        continue 'searches;
                    }
                    NextStep::Capped => {
                        return Err(upstream(format!(
                            "more than {RESULT_CAP} {object} share one createdate; the window cannot be read"
                        )));
                    }
                }
            }
        }
        let elapsed_ms = host.monotonic_now().saturating_sub(started) / 1_000_000;
        host.log(
            Level::Debug,
            "HubSpot search answered",
            &[
                ("object".into(), object.into()),
                ("records".into(), records.len().to_string()),
                ("pages".into(), pages.to_string()),
                ("searches".into(), searches.to_string()),
                ("elapsed_ms".into(), elapsed_ms.to_string()),
            ],
        );
        Ok(records)
    }
}

/// Reads an answer: JSON on success, else HubSpot's error body
/// `{"status":"error","message":..,"correlationId":..,"category":..}`.
fn answer(response: &Response) -> Result<Value, SourceError> {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    if (200..300).contains(&response.status) {
        return body.ok_or_else(|| upstream("HubSpot answered something that is not JSON"));
    }
    let text = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .map(clip)
    };
    let described = match (text("category"), text("message")) {
        (Some(category), Some(message)) => format!("{category}: {message}"),
        (None, Some(message)) => message,
        _ => format!("HTTP {}", response.status),
    };
    Err(match response.status {
        429 => SourceError::RateLimited(
            header(&response.headers, "Retry-After").and_then(|v| v.trim().parse().ok()),
        ),
        401 | 403 => SourceError::Auth(format!(
            "HubSpot refused the private app token: {described}"
        )),
        status => upstream(format!("HubSpot answered HTTP {status}: {described}")),
    })
}

fn parse_page(body: &Value) -> Result<SearchPage, SourceError> {
    let total = body.get("total").and_then(Value::as_u64);
    let results = body.get("results").and_then(Value::as_array);
    let (Some(total), Some(results)) = (total, results) else {
        return Err(upstream("a search answer lacks total or results"));
    };
    let results = results
        .iter()
        .map(|result| {
            let id = result.get("id").and_then(Value::as_str);
            let properties = result.get("properties").and_then(Value::as_object);
            match (id, properties) {
                (Some(id), Some(properties)) => Ok(Record {
                    id: id.to_owned(),
                    properties: properties.clone(),
                }),
                _ => Err(upstream("a search result lacks id or properties")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next_after = body
        .pointer("/paging/next/after")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(SearchPage {
        total,
        results,
        next_after,
    })
}

/// What a refused or failed `http.send` means for this source.
fn http_error(error: HttpError) -> SourceError {
    match error {
        HttpError::Denied(target) => SourceError::InvalidConfig(format!(
            "the hub refused a request to {target}: add HubSpot's API host to allowed_hosts"
        )),
        HttpError::Timeout => upstream("HubSpot did not answer in time"),
        HttpError::TooLarge(limit) => upstream(format!(
            "a HubSpot answer exceeded the {limit}-byte response limit"
        )),
        HttpError::TooManyRequests(limit) => upstream(format!(
            "one fetch needed more than the {limit} requests allowed per call"
        )),
        HttpError::Transport(reason) => {
            upstream(format!("cannot reach HubSpot: {}", clip(&reason)))
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
    use guest_support::host::testing::{body_text, json, FakeHost};

    use super::*;

    fn client(page_size: u32) -> Client {
        Client::new(Settings {
            access_token: "pat-na1-secret".into(),
            base_url: "https://api.hubapi.com".into(),
            page_size,
        })
    }

    fn request_body(request: &Request) -> Value {
        serde_json::from_str(&body_text(request)).unwrap()
    }

    /// HubSpot's timestamp format, e.g. `2024-01-01T00:00:01.000Z`.
    fn iso(millis: i64) -> String {
        let of_day = millis.rem_euclid(86_400_000);
        let (hours, minutes) = (of_day / 3_600_000, of_day / 60_000 % 60);
        let (seconds, millis_part) = (of_day / 1000 % 60, of_day % 1000);
        format!(
            "{}T{hours:02}:{minutes:02}:{seconds:02}.{millis_part:03}Z",
            crate::dates::Date::of_millis(millis)
        )
    }

    /// A search endpoint over `count` records created one second apart from `start`,
    /// honouring `createdate` GTE/LT filters, `after`, `limit` and the result cap.
    fn server(count: usize, start: i64) -> impl FnMut(&Request) -> Result<Response, HttpError> {
        move |request| {
            let body = request_body(request);
            let filter = |operator: &str| -> i64 {
                body["filterGroups"][0]["filters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["operator"] == operator)
                    .map(|f| f["value"].as_str().unwrap().parse().unwrap())
                    .unwrap()
            };
            let (gte, lt) = (filter("GTE"), filter("LT"));
            let matching: Vec<i64> = (0..count as i64)
                .map(|i| start + i * 1000)
                .filter(|t| *t >= gte && *t < lt)
                .collect();
            let after: usize = body
                .get("after")
                .map_or(0, |a| a.as_str().unwrap().parse().unwrap());
            let limit = body["limit"].as_u64().unwrap() as usize;
            if after >= RESULT_CAP {
                return json(
                    400,
                    r#"{"status":"error","message":"Cannot page beyond 10000 results","category":"VALIDATION_ERROR"}"#,
                );
            }
            let end = (after + limit).min(matching.len()).min(RESULT_CAP);
            let results: Vec<Value> = matching[after.min(end)..end]
                .iter()
                .map(|t| json!({"id": t.to_string(), "properties": {"createdate": iso(*t)}, "archived": false}))
                .collect();
            let mut answer = json!({"total": matching.len(), "results": results});
            if end < matching.len() {
                answer["paging"] =
                    json!({"next": {"after": end.to_string(), "link": format!("?after={end}")}});
            }
            json(200, &answer.to_string())
        }
    }

    #[test]
    fn pages_with_after_until_there_is_no_paging() {
        let mut host = FakeHost::new(server(450, 1_000_000));
        let records = client(200)
            .created_within(&mut host, "contacts", 0, i64::MAX, &[])
            .unwrap();
        assert_eq!(records.len(), 450);
        assert_eq!(host.requests.len(), 3);
        let first = &host.requests[0];
        assert_eq!(first.method, "POST");
        assert_eq!(
            first.url,
            "https://api.hubapi.com/crm/v3/objects/contacts/search"
        );
        assert_eq!(
            header(&first.headers, "authorization"),
            Some("Bearer pat-na1-secret")
        );
        assert_eq!(
            request_body(first),
            json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "createdate", "operator": "GTE", "value": "0"},
                    {"propertyName": "createdate", "operator": "LT", "value": i64::MAX.to_string()}
                ]}],
                "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
                "properties": ["createdate"],
                "limit": 200
            })
        );
        assert_eq!(request_body(&host.requests[1])["after"], "200");
        assert_eq!(request_body(&host.requests[2])["after"], "400");
        assert!(host
            .logs
            .iter()
            .all(|line| !line.contains("pat-na1-secret")));
    }

    #[test]
    fn reads_past_the_result_cap_in_several_searches() {
        let mut host = FakeHost::new(server(RESULT_CAP + 250, 5_000));
        let records = client(200)
            .created_within(&mut host, "deals", 0, i64::MAX, &["amount"])
            .unwrap();
        let ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(records.len(), RESULT_CAP + 250);
        assert_eq!(ids.len(), records.len());
        // 50 pages reach the cap; the second search starts at the last createdate read.
        let second = request_body(&host.requests[50]);
        assert_eq!(second.get("after"), None);
        let last = 5_000 + (RESULT_CAP as i64 - 1) * 1000;
        assert_eq!(
            second["filterGroups"][0]["filters"][0]["value"],
            last.to_string()
        );
        assert_eq!(host.requests.len(), 52);
        assert!(host
            .requests
            .iter()
            .all(|r| request_body(r).get("after").and_then(Value::as_str) != Some("10000")));
    }

    #[test]
    fn an_odd_page_size_never_asks_past_the_cap() {
        let mut host = FakeHost::new(server(RESULT_CAP + 10, 0));
        let records = client(150)
            .created_within(&mut host, "contacts", 0, i64::MAX, &[])
            .unwrap();
        assert_eq!(records.len(), RESULT_CAP + 10);
        let limits: Vec<u64> = host
            .requests
            .iter()
            .map(|r| request_body(r)["limit"].as_u64().unwrap())
            .collect();
        assert_eq!(
            limits[66], 100,
            "9,900 read: the 67th page asks for the last 100"
        );
    }

    #[test]
    fn the_stop_rules() {
        assert_eq!(next_step(None, 3), NextStep::Done);
        assert_eq!(next_step(None, RESULT_CAP), NextStep::Done);
        assert_eq!(next_step(Some("200"), 200), NextStep::Page("200".into()));
        assert_eq!(next_step(Some("10000"), RESULT_CAP), NextStep::Capped);
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let mut host = FakeHost::new(|_| {
            Ok(Response {
                status: 429,
                headers: vec![Header { name: "Retry-After".into(), value: "3".into() }],
                body: br#"{"status":"error","message":"You have reached your secondly limit.","correlationId":"c","category":"RATE_LIMITS"}"#.to_vec(),
            })
        });
        let error = client(200)
            .created_within(&mut host, "contacts", 0, 1, &[])
            .unwrap_err();
        assert_eq!(error, SourceError::RateLimited(Some(3)));
        assert!(host.logs.iter().any(|line| line.contains("rate limit")));

        let mut host = FakeHost::new(|_| {
            json(
                429,
                r#"{"status":"error","message":"slow down","category":"RATE_LIMITS"}"#,
            )
        });
        assert_eq!(
            client(200)
                .created_within(&mut host, "contacts", 0, 1, &[])
                .unwrap_err(),
            SourceError::RateLimited(None)
        );
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let cases = [
            (
                401,
                r#"{"status":"error","message":"Authentication credentials not found.","correlationId":"c","category":"INVALID_AUTHENTICATION"}"#,
                SourceError::Auth("HubSpot refused the private app token: INVALID_AUTHENTICATION: Authentication credentials not found.".into()),
            ),
            (
                400,
                r#"{"status":"error","message":"Invalid input JSON","category":"VALIDATION_ERROR"}"#,
                SourceError::Upstream("HubSpot answered HTTP 400: VALIDATION_ERROR: Invalid input JSON".into()),
            ),
            (502, "bad gateway", SourceError::Upstream("HubSpot answered HTTP 502: HTTP 502".into())),
        ];
        for (status, body, expected) in cases {
            let mut host = FakeHost::new(move |_| json(status, body));
            assert_eq!(
                client(200)
                    .created_within(&mut host, "deals", 0, 1, &[])
                    .unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn a_repeated_cursor_is_an_error_not_a_loop() {
        let mut host = FakeHost::new(|_| {
            json(
                200,
                r#"{"total":5,"results":[{"id":"1","properties":{"createdate":"2024-01-01T00:00:00Z"}}],"paging":{"next":{"after":"1"}}}"#,
            )
        });
        let error = client(200)
            .created_within(&mut host, "deals", 0, i64::MAX, &[])
            .unwrap_err();
        assert!(
            matches!(error, SourceError::Upstream(ref m) if m.contains("cursor")),
            "{error:?}"
        );
        assert_eq!(host.requests.len(), 2);
    }
}
