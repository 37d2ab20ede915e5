//! Metrics Hub source plugin for HubSpot CRM, a component of the `data-source` world.
//!
//! - [`settings`]: the YAML `config:` entries (private app token, API base URL, page size),
//!   checked at `initialize`.
//! - [`api`]: CRM v3 search with `after` cursor paging, the stop rules (no `paging`; the
//!   10,000-result cap, read past with follow-up searches) and HubSpot's errors, 429 with
//!   Retry-After included, as `source-error`.
//! - [`metrics`]: records -> the unified model (contacts -> users, deals -> events,
//!   companies -> clients).
//!
//! The imports, the export glue and config reading come from `guest-support`; everything
//! here takes the host as a [`guest_support::Host`], so it is unit-tested natively with
//! `cargo test`. All HTTP goes through the host's `http.send`, which enforces the source's
//! `allowed_hosts`.

pub mod api;
pub mod dates;
pub mod metrics;
pub mod settings;

use guest_support::log::Level;
use guest_support::{ConfigEntry, DataSource, Host, Metrics, QueryParams, SourceError};

use crate::api::{Client, Filter, Search};
use crate::settings::Settings;

/// One initialized source.
pub struct Plugin {
    client: Client,
}

impl Plugin {
    /// A source ready to search with the settings' token.
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
            "HubSpot plugin initialized",
            &[
                ("base_url".into(), settings.base_url.clone()),
                ("page_size".into(), settings.page_size.to_string()),
            ],
        );
        Ok(Plugin::new(settings))
    }

    /// Reads the window's contacts and deals and the top companies, and maps them.
    fn fetch_metrics(
        &mut self,
        host: &mut dyn Host,
        params: &QueryParams,
    ) -> Result<Metrics, SourceError> {
        let (from, until) = window_millis(params)?;
        let contacts =
            self.client
                .created_within(host, "contacts", from, until, &["createdate"])?;
        let deals =
            self.client
                .created_within(host, "deals", from, until, &metrics::DEAL_PROPERTIES)?;
        let companies =
            self.client
                .search_page(host, &top_companies(), metrics::TOP_CLIENTS, None)?;
        metrics::metrics(&contacts, &deals, &companies)
    }

    /// One minimal search: proves the token works and the API answers.
    fn health_check(&mut self, host: &mut dyn Host) -> Result<(), SourceError> {
        let search = Search {
            object: "contacts",
            filters: vec![],
            sort: ("createdate", "DESCENDING"),
            properties: vec!["createdate"],
        };
        self.client.search_page(host, &search, 1, None).map(|_| ())
    }

    // No `cleanup`: the default drops the state, and with it the settings and the token.
}

/// Companies with at least one deal, most deals first; its `total` counts them all.
fn top_companies() -> Search {
    Search {
        object: "companies",
        filters: vec![Filter {
            property: "num_associated_deals",
            operator: "GT",
            value: "0".into(),
        }],
        sort: ("num_associated_deals", "DESCENDING"),
        properties: metrics::COMPANY_PROPERTIES.to_vec(),
    }
}

/// The inclusive window as `[start midnight, day after end midnight)` in epoch milliseconds.
fn window_millis(params: &QueryParams) -> Result<(i64, i64), SourceError> {
    let (start, end) = guest_support::window_dates(params)?;
    Ok((start.midnight_millis(), end.next().midnight_millis()))
}

guest_support::export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use guest_support::host::testing::{body_text, json, FakeHost};
    use serde_json::{json, Value};

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
            access_token: "pat".into(),
            base_url: "http://127.0.0.1:1".into(),
            page_size: 200,
        })
    }

    #[test]
    fn a_fetch_searches_contacts_deals_and_companies_over_the_window() {
        let mut host = FakeHost::new(|request| {
            if request.url.ends_with("/companies/search") {
                return json(
                    200,
                    r#"{"total":1,"results":[{"id":"5","properties":{"name":"Acme","num_associated_deals":"2","num_associated_contacts":"1","total_revenue":"10"}}]}"#,
                );
            }
            json(
                200,
                r#"{"total":1,"results":[{"id":"1","properties":{"createdate":"2026-01-31T23:00:00Z","amount":"5"}}]}"#,
            )
        });
        let metrics = plugin()
            .fetch_metrics(&mut host, &params("2026-01-01", "2026-01-31"))
            .unwrap();
        let summary = metrics.summary.unwrap();
        assert_eq!(
            (
                summary.total_users,
                summary.total_events,
                summary.active_clients
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(metrics.clients.unwrap()[0].client, "Acme");

        let urls: Vec<&str> = host.requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:1/crm/v3/objects/contacts/search",
                "http://127.0.0.1:1/crm/v3/objects/deals/search",
                "http://127.0.0.1:1/crm/v3/objects/companies/search"
            ]
        );
        let deals: Value = serde_json::from_str(&body_text(&host.requests[1])).unwrap();
        assert_eq!(
            deals["filterGroups"][0]["filters"],
            json!([
                {"propertyName": "createdate", "operator": "GTE", "value": "1767225600000"},
                {"propertyName": "createdate", "operator": "LT", "value": "1769904000000"}
            ])
        );
        let companies: Value = serde_json::from_str(&body_text(&host.requests[2])).unwrap();
        assert_eq!(
            companies["sorts"],
            json!([{"propertyName": "num_associated_deals", "direction": "DESCENDING"}])
        );
        assert_eq!(companies["limit"], 20);
    }

    #[test]
    fn a_bad_window_is_an_internal_error() {
        let mut host = FakeHost::new(|_| json(500, ""));
        let error = plugin()
            .fetch_metrics(&mut host, &params("2026-01-02", "2026-01-01"))
            .unwrap_err();
        assert!(matches!(error, SourceError::Internal(_)), "{error:?}");
        assert!(host.requests.is_empty());
    }
}
