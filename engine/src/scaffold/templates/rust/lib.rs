//! The `{{name}}` Metrics Hub source plugin, in Rust: daily users and events from a paged
//! API (see plugins/README.md, "Rust"). Written by `metrics-hub plugin new` for this
//! example API; replace the request and the mapping with your API's:
//!
//! ```text
//! GET {base_url}/v1/days?from=YYYY-MM-DD&to=YYYY-MM-DD&page=N
//! Authorization: Bearer {api_key}
//! -> {"data": [{"date", "users", "events"}, ...], "next_page": N | null}
//! ```
//!
//! Built by plugins/build.sh into a `data-source` component. Everything takes the host as
//! a [`guest_support::Host`], so `cargo test` runs the logic natively against a scripted
//! host (the tests below). The HTTP goes through the host's `http.send`, which checks
//! `allowed_hosts`, paces and retries 429s for the plugin.

use guest_support::http::{HttpError, Request};
use guest_support::log::Level;
use guest_support::types::{DailyMetric, Summary};
use guest_support::{
    header, window_dates, Config, ConfigEntry, DataSource, Host, Metrics, QueryParams, SourceError,
};
use serde_json::Value;

/// The `config:` keys the plugin reads; any other key is reported as a typo.
const KEYS: &[&str] = &["base_url", "api_key"];

/// The checked `config:` entries.
pub struct Settings {
    base_url: String,
    api_key: String,
}

impl Settings {
    /// Reads the entries, reporting every problem at once.
    pub fn from_entries(entries: &[ConfigEntry]) -> Result<Settings, SourceError> {
        let mut config = Config::read(entries, KEYS);
        let base_url = config
            .required("base_url")
            .and_then(|url| config.http_url("base_url", url, "https://api.example.com"));
        let api_key = config.required("api_key");
        config.finish(|| {
            Some(Settings {
                base_url: base_url?,
                api_key: api_key?,
            })
        })
    }
}

/// One initialized source: the instance keeps it between calls.
pub struct Plugin {
    settings: Settings,
}

impl DataSource for Plugin {
    fn initialize(host: &mut dyn Host, config: &[ConfigEntry]) -> Result<Plugin, SourceError> {
        let settings = Settings::from_entries(config)?;
        host.log(Level::Info, "{{name}} plugin ready", &[]);
        Ok(Plugin { settings })
    }

    /// Every page of the window, added up.
    fn fetch_metrics(
        &mut self,
        host: &mut dyn Host,
        params: &QueryParams,
    ) -> Result<Metrics, SourceError> {
        let (start, end) = window_dates(params)?;
        let (start, end) = (start.to_string(), end.to_string());
        let mut totals = Totals::default();
        let mut page = Some(1);
        while let Some(number) = page {
            let body = self.get(host, &start, &end, number)?;
            page = totals.add_page(&body)?;
        }
        Ok(totals.into_metrics())
    }

    fn health_check(&mut self, host: &mut dyn Host) -> Result<(), SourceError> {
        self.get(host, "2024-01-01", "2024-01-01", 1).map(drop)
    }
}

impl Plugin {
    /// One page of the API; errors as the contract's source errors. The dates come
    /// checked from `window_dates`, so they need no escaping in the query string.
    fn get(
        &self,
        host: &mut dyn Host,
        start: &str,
        end: &str,
        page: u64,
    ) -> Result<Value, SourceError> {
        let request = Request {
            method: "GET".into(),
            url: format!(
                "{}/v1/days?from={start}&to={end}&page={page}",
                self.settings.base_url
            ),
            headers: vec![guest_support::http::Header {
                name: "authorization".into(),
                value: format!("Bearer {}", self.settings.api_key),
            }],
            body: None,
        };
        let response = host
            .send(&request)
            .map_err(|err: HttpError| SourceError::Upstream(format!("request failed: {err:?}")))?;
        match response.status {
            200 => serde_json::from_slice(&response.body).map_err(|_| {
                SourceError::Upstream("the API answered something that is not JSON".into())
            }),
            401 => Err(SourceError::Auth("the API refused the key".into())),
            429 => Err(SourceError::RateLimited(
                header(&response.headers, "retry-after").and_then(|s| s.trim().parse().ok()),
            )),
            status => Err(SourceError::Upstream(format!(
                "the API answered HTTP {status}"
            ))),
        }
    }
}

/// The running totals of a window's pages.
#[derive(Default)]
struct Totals {
    users: i64,
    events: i64,
    days: Vec<DailyMetric>,
}

impl Totals {
    /// Adds one page's days; the next page's number, if there is one.
    fn add_page(&mut self, body: &Value) -> Result<Option<u64>, SourceError> {
        let rows = body["data"].as_array().map_or(&[][..], Vec::as_slice);
        for row in rows {
            let date = row["date"].as_str().unwrap_or_default();
            let (Some(users), Some(events)) = (row["users"].as_i64(), row["events"].as_i64())
            else {
                return Err(SourceError::Upstream(format!("no counts on {date}")));
            };
            if users < 0 || events < 0 {
                return Err(SourceError::Upstream(format!("negative counts on {date}")));
            }
            self.users += users;
            self.events += events;
            self.days.push(DailyMetric {
                date: date.to_owned(),
                users,
                events,
                extra: vec![],
            });
        }
        Ok(body["next_page"].as_u64())
    }

    fn into_metrics(self) -> Metrics {
        Metrics {
            summary: Some(Summary {
                total_users: Some(self.users),
                total_events: Some(self.events),
                // This API has no page views or clients: absent (None), not zero.
                page_views: None,
                active_clients: None,
                extra: vec![],
            }),
            daily: Some(self.days),
            features: None,
            clients: None,
        }
    }
}

guest_support::export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use guest_support::host::testing::{json, FakeHost};

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Vec<ConfigEntry> {
        pairs
            .iter()
            .map(|(key, value)| ConfigEntry {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect()
    }

    fn params(start: &str, end: &str) -> QueryParams {
        QueryParams {
            days: 0,
            start_date: start.into(),
            end_date: end.into(),
            filters: vec![],
            deadline_ms: 10_000,
        }
    }

    fn plugin(host: &mut FakeHost) -> Plugin {
        let entries = config(&[("base_url", "https://api.example.com/"), ("api_key", "k")]);
        Plugin::initialize(host, &entries).unwrap()
    }

    #[test]
    fn settings_report_every_problem_at_once() {
        let Err(SourceError::InvalidConfig(text)) =
            Settings::from_entries(&config(&[("base_url", "api.example.com"), ("apikey", "k")]))
        else {
            panic!("accepted a bad config");
        };
        for part in ["base_url", "api_key", "unknown key `apikey`"] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn pages_are_followed_with_the_key_and_added_up() {
        let mut host = FakeHost::new(|request| {
            assert_eq!(request.headers[0].value, "Bearer k");
            if request.url.ends_with("page=1") {
                json(
                    200,
                    r#"{"data":[{"date":"2026-01-01","users":2,"events":5}],"next_page":2}"#,
                )
            } else {
                json(
                    200,
                    r#"{"data":[{"date":"2026-01-02","users":3,"events":1}],"next_page":null}"#,
                )
            }
        });
        let mut source = plugin(&mut host);
        let metrics = source
            .fetch_metrics(&mut host, &params("2026-01-01", "2026-01-02"))
            .unwrap();
        let summary = metrics.summary.unwrap();
        assert_eq!(
            (summary.total_users, summary.total_events),
            (Some(5), Some(6))
        );
        assert_eq!(summary.page_views, None);
        assert_eq!(metrics.daily.unwrap().len(), 2);
        assert_eq!(
            host.requests[0].url,
            "https://api.example.com/v1/days?from=2026-01-01&to=2026-01-02&page=1"
        );
        assert_eq!(host.requests.len(), 2);
    }

    #[test]
    fn refusals_become_the_contracts_errors() {
        for (status, expected) in [(401, "auth"), (429, "rate-limited"), (500, "upstream")] {
            let mut host = FakeHost::new(move |_| json(status, "{}"));
            let mut source = plugin(&mut host);
            let err = source
                .fetch_metrics(&mut host, &params("2026-01-01", "2026-01-01"))
                .unwrap_err();
            let kind = match err {
                SourceError::Auth(_) => "auth",
                SourceError::RateLimited(_) => "rate-limited",
                SourceError::Upstream(_) => "upstream",
                _ => "other",
            };
            assert_eq!(kind, expected, "HTTP {status}");
        }
    }
}
