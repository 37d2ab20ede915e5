//! HubSpot records -> the unified model.
//!
//! - summary: contacts created in the window -> `total_users`, deals created in the window
//!   -> `total_events`, companies with at least one deal -> `active_clients`; `page_views`
//!   is absent (a CRM has none). Extra: `pipeline_amount` (open deals' amount), `won_deals`, `won_amount`.
//! - daily, by the UTC day of `createdate`: contacts -> `users`, deals -> `events`;
//!   extra `amount`. Days with neither are absent, as in SQL sources.
//! - clients: companies ranked by associated deals, top [`TOP_CLIENTS`]: deals -> `events`,
//!   contacts -> `users`, extra `won_amount` (HubSpot's `total_revenue`). Search results
//!   carry no associations, so these are the companies' own all-time rollups, not the
//!   window's. Companies sharing a name are one client, since the unified model keys
//!   clients by name.
//! - features: none; a CRM has no product feature usage.

use std::collections::BTreeMap;

use guest_support::types::{ClientMetric, DailyMetric, ExtraField, FieldValue, Summary};
use guest_support::{Metrics, SourceError};

use crate::api::{upstream, Record, SearchPage};
use crate::dates::{parse_timestamp_millis, Date};

/// How many companies the clients dataset lists, as the SQL sources do.
pub const TOP_CLIENTS: usize = 20;

/// Deal properties the mapping reads.
pub const DEAL_PROPERTIES: [&str; 4] = ["amount", "createdate", "hs_is_closed", "hs_is_closed_won"];
/// Company properties the mapping reads.
pub const COMPANY_PROPERTIES: [&str; 4] = [
    "name",
    "num_associated_deals",
    "num_associated_contacts",
    "total_revenue",
];

/// `contacts` and `deals`: the window's records; `companies`: the first page of companies
/// with deals, sorted by `num_associated_deals` descending.
pub fn metrics(
    contacts: &[Record],
    deals: &[Record],
    companies: &SearchPage,
) -> Result<Metrics, SourceError> {
    #[derive(Default)]
    struct Day {
        users: i64,
        events: i64,
        amount: f64,
    }
    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    for contact in contacts {
        days.entry(created_day(contact)?).or_default().users += 1;
    }
    let (mut pipeline_amount, mut won_deals, mut won_amount) = (0.0, 0, 0.0);
    for deal in deals {
        let amount = number(deal, "amount")?;
        let day = days.entry(created_day(deal)?).or_default();
        day.events += 1;
        day.amount += amount;
        if !flag(deal, "hs_is_closed")? {
            pipeline_amount += amount;
        }
        if flag(deal, "hs_is_closed_won")? {
            won_deals += 1;
            won_amount += amount;
        }
    }

    let summary = Summary {
        total_users: Some(to_i64(contacts.len())?),
        total_events: Some(to_i64(deals.len())?),
        // A CRM has no page views: absent, not zero.
        page_views: None,
        active_clients: Some(
            i64::try_from(companies.total).map_err(|_| upstream("a total does not fit 64 bits"))?,
        ),
        extra: vec![
            extra("pipeline_amount", FieldValue::Float(pipeline_amount)),
            extra("won_deals", FieldValue::Integer(won_deals)),
            extra("won_amount", FieldValue::Float(won_amount)),
        ],
    };
    let daily = days
        .into_iter()
        .map(|(date, day)| DailyMetric {
            date: date.to_string(),
            users: day.users,
            events: day.events,
            extra: vec![extra("amount", FieldValue::Float(day.amount))],
        })
        .collect();
    Ok(Metrics {
        summary: Some(summary),
        daily: Some(daily),
        features: None,
        clients: Some(clients(companies)?),
    })
}

fn clients(companies: &SearchPage) -> Result<Vec<ClientMetric>, SourceError> {
    // The unified model keys clients by name (the hub refuses a name twice and merges
    // sources by name), so companies sharing a name count as one client.
    #[derive(Default)]
    struct Client {
        deals: i64,
        contacts: i64,
        revenue: f64,
    }
    let mut by_name: BTreeMap<&str, Client> = BTreeMap::new();
    for company in &companies.results {
        let name = company
            .property("name")
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&company.id);
        let client = by_name.entry(name).or_default();
        client.deals += whole(company, "num_associated_deals")?;
        client.contacts += whole(company, "num_associated_contacts")?;
        client.revenue += number(company, "total_revenue")?;
    }
    let mut clients: Vec<ClientMetric> = by_name
        .into_iter()
        .map(|(name, client)| ClientMetric {
            client: name.to_owned(),
            events: client.deals,
            users: client.contacts,
            page_views: 0,
            extra: vec![extra("won_amount", FieldValue::Float(client.revenue))],
        })
        .collect();
    // HubSpot sorts by one property; ties are put in a stable order here.
    clients.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then_with(|| a.client.cmp(&b.client))
    });
    clients.truncate(TOP_CLIENTS);
    Ok(clients)
}

fn extra(name: &str, value: FieldValue) -> ExtraField {
    ExtraField {
        name: name.into(),
        value,
    }
}

fn unusable(record: &Record, property: &str) -> SourceError {
    upstream(format!(
        "HubSpot record {} has an unusable `{property}`",
        record.id
    ))
}

fn created_day(record: &Record) -> Result<Date, SourceError> {
    record
        .property("createdate")
        .and_then(parse_timestamp_millis)
        .map(Date::of_millis)
        .ok_or_else(|| unusable(record, "createdate"))
}

/// A numeric property; empty or absent counts as 0 (a deal without an amount).
fn number(record: &Record, property: &str) -> Result<f64, SourceError> {
    match record.property(property).map(str::trim) {
        None | Some("") => Ok(0.0),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| unusable(record, property)),
    }
}

/// A count property such as `num_associated_deals`; empty or absent counts as 0.
fn whole(record: &Record, property: &str) -> Result<i64, SourceError> {
    match record.property(property).map(str::trim) {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| unusable(record, property)),
    }
}

/// A boolean property (`"true"` / `"false"`); absent counts as false.
fn flag(record: &Record, property: &str) -> Result<bool, SourceError> {
    match record.property(property) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(unusable(record, property)),
    }
}

fn to_i64(n: usize) -> Result<i64, SourceError> {
    i64::try_from(n).map_err(|_| upstream("a count does not fit 64 bits"))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn record(id: &str, properties: Value) -> Record {
        Record {
            id: id.into(),
            properties: properties.as_object().unwrap().clone(),
        }
    }

    fn contacts() -> Vec<Record> {
        vec![
            record("1", json!({"createdate": "2026-01-05T23:59:59.999Z"})),
            record("2", json!({"createdate": "2026-01-05T00:00:00Z"})),
            record("3", json!({"createdate": "2026-01-07T08:00:00.000Z"})),
        ]
    }

    fn deals() -> Vec<Record> {
        vec![
            record(
                "10",
                json!({"createdate": "2026-01-05T10:00:00Z", "amount": "1500", "hs_is_closed": "false", "hs_is_closed_won": "false"}),
            ),
            record(
                "11",
                json!({"createdate": "2026-01-06T10:00:00Z", "amount": "250.5", "hs_is_closed": "true", "hs_is_closed_won": "true"}),
            ),
            record(
                "12",
                json!({"createdate": "2026-01-06T11:00:00Z", "amount": null, "hs_is_closed": "true", "hs_is_closed_won": "false"}),
            ),
            record(
                "13",
                json!({"createdate": "2026-01-06T12:00:00Z", "amount": "", "hs_is_closed": null}),
            ),
        ]
    }

    fn companies() -> SearchPage {
        SearchPage {
            total: 42,
            results: vec![
                record(
                    "100",
                    json!({"name": "Zeta", "num_associated_deals": "5", "num_associated_contacts": "2", "total_revenue": "900"}),
                ),
                record(
                    "101",
                    json!({"name": "Acme", "num_associated_deals": "5", "num_associated_contacts": null, "total_revenue": null}),
                ),
                record(
                    "102",
                    json!({"name": "", "num_associated_deals": "1", "num_associated_contacts": "7", "total_revenue": "10.25"}),
                ),
            ],
            next_after: Some("3".into()),
        }
    }

    #[test]
    fn maps_the_summary() {
        let summary = metrics(&contacts(), &deals(), &companies())
            .unwrap()
            .summary
            .unwrap();
        assert_eq!(
            (
                summary.total_users,
                summary.total_events,
                summary.page_views,
                summary.active_clients
            ),
            (Some(3), Some(4), None, Some(42))
        );
        assert_eq!(
            summary.extra,
            vec![
                extra("pipeline_amount", FieldValue::Float(1500.0)),
                extra("won_deals", FieldValue::Integer(1)),
                extra("won_amount", FieldValue::Float(250.5)),
            ]
        );
    }

    #[test]
    fn groups_by_the_utc_day_of_createdate() {
        let daily = metrics(&contacts(), &deals(), &companies())
            .unwrap()
            .daily
            .unwrap();
        let rows: Vec<(&str, i64, i64)> = daily
            .iter()
            .map(|d| (d.date.as_str(), d.users, d.events))
            .collect();
        assert_eq!(
            rows,
            [
                ("2026-01-05", 2, 1),
                ("2026-01-06", 0, 3),
                ("2026-01-07", 1, 0)
            ]
        );
        assert_eq!(
            daily[1].extra,
            vec![extra("amount", FieldValue::Float(250.5))]
        );
    }

    #[test]
    fn ranks_companies_by_deals_then_name() {
        let clients = metrics(&contacts(), &deals(), &companies())
            .unwrap()
            .clients
            .unwrap();
        let rows: Vec<(&str, i64, i64)> = clients
            .iter()
            .map(|c| (c.client.as_str(), c.events, c.users))
            .collect();
        assert_eq!(rows, [("Acme", 5, 0), ("Zeta", 5, 2), ("102", 1, 7)]);
        assert_eq!(
            clients[1].extra,
            vec![extra("won_amount", FieldValue::Float(900.0))]
        );
    }

    #[test]
    fn companies_sharing_a_name_are_one_client() {
        let page = SearchPage {
            total: 2,
            results: vec![
                record(
                    "1",
                    json!({"name": "Acme", "num_associated_deals": "2", "num_associated_contacts": "1", "total_revenue": "5"}),
                ),
                record(
                    "2",
                    json!({"name": "Acme", "num_associated_deals": "3", "num_associated_contacts": "1", "total_revenue": "7"}),
                ),
            ],
            next_after: None,
        };
        let clients = metrics(&[], &[], &page).unwrap().clients.unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!((clients[0].events, clients[0].users), (5, 2));
        assert_eq!(
            clients[0].extra,
            vec![extra("won_amount", FieldValue::Float(12.0))]
        );
    }

    #[test]
    fn rejects_unusable_properties() {
        let bad_date = vec![record("9", json!({"createdate": "yesterday"}))];
        assert!(
            matches!(metrics(&bad_date, &[], &companies()), Err(SourceError::Upstream(m)) if m.contains("record 9"))
        );
        let bad_amount = vec![record(
            "8",
            json!({"createdate": "2026-01-05T00:00:00Z", "amount": "lots"}),
        )];
        assert!(
            matches!(metrics(&[], &bad_amount, &companies()), Err(SourceError::Upstream(m)) if m.contains("`amount`"))
        );
    }
}
