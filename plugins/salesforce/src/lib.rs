//! Metrics Hub source plugin for Salesforce CRM, a component of the `data-source` world.
//!
//! - [`settings`]: the YAML `config:` entries (instance URL, API version, client id and
//!   secret), checked at `initialize`.
//! - [`api`]: OAuth 2.0 client credentials, authorized GETs that re-authenticate once on
//!   401 INVALID_SESSION_ID, SOQL paging through `nextRecordsUrl`, error arrays -> `source-error`.
//! - [`soql`]: the queries, built from the request window.
//! - [`metrics`]: answers -> the unified model (contacts -> users, opportunities -> events,
//!   accounts -> clients).
//!
//! The imports, the export glue and config reading come from `guest-support`; everything
//! here takes the host as a [`guest_support::Host`], so it is unit-tested natively with
//! `cargo test`. All HTTP goes through the host's `http.send`, which enforces the source's
//! `allowed_hosts`.

pub mod api;
pub mod dates;
pub mod metrics;
pub mod settings;
pub mod soql;

use guest_support::log::Level;
use guest_support::{ConfigEntry, DataSource, Host, Metrics, QueryParams, SourceError};

use crate::api::Client;
use crate::settings::Settings;
use crate::soql::{Queries, Window};

/// One initialized source: its API client and the token it holds.
pub struct Plugin {
    client: Client,
}

impl Plugin {
    /// A source that has not authenticated yet: the first query fetches a token.
    pub fn new(settings: Settings) -> Plugin {
        Plugin {
            client: Client::new(settings),
        }
    }
}

impl DataSource for Plugin {
    fn initialize(host: &mut dyn Host, config: &[ConfigEntry]) -> Result<Plugin, SourceError> {
        let settings = Settings::from_entries(config)?;
        host.log(
            Level::Info,
            "Salesforce plugin initialized",
            &[
                ("instance_url".into(), settings.instance_url.clone()),
                ("api_version".into(), settings.api_version.clone()),
            ],
        );
        Ok(Plugin::new(settings))
    }

    /// Runs every query for the window and maps the answers.
    fn fetch_metrics(
        &mut self,
        host: &mut dyn Host,
        params: &QueryParams,
    ) -> Result<Metrics, SourceError> {
        let (start, end) = guest_support::window_dates(params)?;
        let queries = Queries::for_window(&Window { start, end });
        let mut run = |soql: &str| self.client.query(host, soql);
        let answers = metrics::Answers {
            new_contacts: run(&queries.new_contacts)?,
            opportunity_totals: run(&queries.opportunity_totals)?,
            opportunity_outcomes: run(&queries.opportunity_outcomes)?,
            daily_contacts: run(&queries.daily_contacts)?,
            daily_opportunities: run(&queries.daily_opportunities)?,
            client_opportunities: run(&queries.client_opportunities)?,
            contacts_per_account: run(&queries.contacts_per_account)?,
        };
        metrics::metrics(&answers)
    }

    fn health_check(&mut self, host: &mut dyn Host) -> Result<(), SourceError> {
        self.client.check_limits(host)
    }

    fn cleanup(&mut self) {
        self.client.forget_session();
    }
}

guest_support::export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use guest_support::host::testing::{json, FakeHost};

    use super::*;

    fn params(start: &str, end: &str) -> QueryParams {
        QueryParams {
            days: 0,
            start_date: start.into(),
            end_date: end.into(),
            filters: vec![],
            deadline_ms: 10_000,
        }
    }

    fn plugin() -> Plugin {
        Plugin::new(Settings {
            instance_url: "https://acme.my.salesforce.com".into(),
            api_version: "62.0".into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
        })
    }

    #[test]
    fn a_fetch_runs_every_query_over_the_window() {
        let mut host = FakeHost::new(|request| {
            if request.url.ends_with("/token") {
                return json(
                    200,
                    r#"{"access_token":"t","instance_url":"https://acme.my.salesforce.com"}"#,
                );
            }
            let q = request.url.split("q=").nth(1).unwrap_or_default();
            if q.contains("COUNT_DISTINCT") {
                json(
                    200,
                    r#"{"totalSize":1,"done":true,"records":[{"opportunities":0,"accounts":0}]}"#,
                )
            } else {
                json(200, r#"{"totalSize":0,"done":true,"records":[]}"#)
            }
        });
        let metrics = plugin()
            .fetch_metrics(&mut host, &params("2026-01-01", "2026-01-31"))
            .unwrap();
        assert_eq!(metrics.summary.unwrap().total_events, Some(0));
        assert_eq!(metrics.features, None);
        // One token, seven queries, each bounded by the window.
        assert_eq!(host.requests.len(), 8);
        for request in &host.requests[1..] {
            assert!(
                request.url.contains("2026-01-01T00%3A00%3A00Z"),
                "{}",
                request.url
            );
            assert!(
                request.url.contains("2026-02-01T00%3A00%3A00Z"),
                "{}",
                request.url
            );
        }
    }

    #[test]
    fn a_bad_window_is_an_internal_error() {
        let mut host = FakeHost::new(|_| json(500, ""));
        for (start, end) in [("2026-02-30", "2026-03-01"), ("2026-03-02", "2026-03-01")] {
            let error = plugin()
                .fetch_metrics(&mut host, &params(start, end))
                .unwrap_err();
            assert!(matches!(error, SourceError::Internal(_)), "{error:?}");
        }
        assert!(host.requests.is_empty());
    }
}
