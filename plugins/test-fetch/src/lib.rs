//! A plugin that exercises the host's HTTP capability: `fetch-metrics` GETs the configured
//! `url` `repeat` times (default 1), following up to `follow` redirects (default 0) by
//! itself, as the host never follows them. It answers a summary with `total_events` = the
//! size of the last body and the last status as an extra field; any HTTP error becomes an
//! `upstream` error quoting it, which is what a careless plugin would do.
//!
//! It also logs each request (with a config value `token`, if given, in a header and a log
//! field) so tests can check that secrets never reach the hub's log.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

use metrics_hub::source::http::{self, Header, Request};
use metrics_hub::source::log::{self, Level};
use metrics_hub::source::types::{ExtraField, FieldValue, Summary};

#[derive(Default, Clone)]
struct Settings {
    url: String,
    repeat: u32,
    follow: u32,
    token: String,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings::default());
}

struct Fetch;

fn get(url: &str, token: &str) -> Result<http::Response, SourceError> {
    log::log(
        Level::Info,
        "fetching",
        &[("url".into(), url.into()), ("token".into(), token.into())],
    );
    http::send(&Request {
        method: "GET".into(),
        url: url.into(),
        headers: vec![Header {
            name: "authorization".into(),
            value: format!("Bearer {token}"),
        }],
        body: None,
    })
    .map_err(|err| SourceError::Upstream(format!("{url}: {err:?}")))
}

impl Guest for Fetch {
    fn initialize(config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        let mut settings = Settings {
            repeat: 1,
            ..Settings::default()
        };
        for entry in config {
            let number = || {
                entry.value.parse().map_err(|_| {
                    SourceError::InvalidConfig(format!("{} is not a number", entry.key))
                })
            };
            match entry.key.as_str() {
                "url" => settings.url = entry.value.clone(),
                "repeat" => settings.repeat = number()?,
                "follow" => settings.follow = number()?,
                "token" => settings.token = entry.value.clone(),
                other => return Err(SourceError::InvalidConfig(format!("unknown key {other}"))),
            }
        }
        if settings.url.is_empty() {
            return Err(SourceError::InvalidConfig("url is required".into()));
        }
        SETTINGS.with(|s| *s.borrow_mut() = settings);
        Ok(())
    }

    fn fetch_metrics(_params: QueryParams) -> Result<Metrics, SourceError> {
        let settings = SETTINGS.with(|s| s.borrow().clone());
        let mut last = None;
        for _ in 0..settings.repeat {
            let mut url = settings.url.clone();
            let mut response = get(&url, &settings.token)?;
            let mut hops = 0;
            while (300..400).contains(&response.status) && hops < settings.follow {
                let location = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("location"))
                    .map(|h| h.value.clone())
                    .ok_or_else(|| SourceError::Upstream("redirect without location".into()))?;
                url = location;
                response = get(&url, &settings.token)?;
                hops += 1;
            }
            last = Some(response);
        }
        let response = last.ok_or_else(|| SourceError::InvalidConfig("repeat is 0".into()))?;
        Ok(Metrics {
            summary: Some(Summary {
                total_users: Some(0),
                total_events: Some(response.body.len() as i64),
                page_views: Some(0),
                active_clients: Some(0),
                extra: vec![ExtraField {
                    name: "status".into(),
                    value: FieldValue::Integer(i64::from(response.status)),
                }],
            }),
            daily: None,
            features: None,
            clients: None,
        })
    }

    fn health_check() -> Result<(), SourceError> {
        Ok(())
    }

    fn cleanup() {}
}

export!(Fetch);
