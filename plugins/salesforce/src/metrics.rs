//! Salesforce answers -> the unified model.
//!
//! - summary: new contacts -> `total_users`, new opportunities -> `total_events`,
//!   accounts with a new opportunity -> `active_clients`; `page_views` is absent (a CRM
//!   has none). Extra: `pipeline_amount` (open opportunities' Amount), `won_deals`, `won_amount`.
//! - daily, by `DAY_ONLY(CreatedDate)`: new contacts -> `users`, new opportunities ->
//!   `events`; extra `amount`. Days with neither are absent, as in SQL sources.
//! - clients: accounts ranked by new opportunities (then name), top [`TOP_CLIENTS`]:
//!   opportunities -> `events`, new contacts of the account -> `users`; extra as the summary.
//!   Accounts sharing a name are one client, since the unified model keys clients by name.
//! - features: none; Salesforce has no product feature usage.

use std::collections::{BTreeMap, HashMap};

use guest_support::types::{ClientMetric, DailyMetric, ExtraField, FieldValue, Summary};
use guest_support::{Metrics, SourceError};
use serde_json::Value;

use crate::api::{upstream, QueryResult};
use crate::dates::Date;

/// How many accounts the clients dataset lists, as the SQL sources do.
pub const TOP_CLIENTS: usize = 20;

/// The answers to [`crate::soql::Queries`], field for field.
#[derive(Debug, Default)]
pub struct Answers {
    pub new_contacts: QueryResult,
    pub opportunity_totals: QueryResult,
    pub opportunity_outcomes: QueryResult,
    pub daily_contacts: QueryResult,
    pub daily_opportunities: QueryResult,
    pub client_opportunities: QueryResult,
    pub contacts_per_account: QueryResult,
}

pub fn metrics(answers: &Answers) -> Result<Metrics, SourceError> {
    Ok(Metrics {
        summary: Some(summary(answers)?),
        daily: Some(daily(
            &answers.daily_contacts,
            &answers.daily_opportunities,
        )?),
        features: None,
        clients: Some(clients(
            &answers.client_opportunities,
            &answers.contacts_per_account,
        )?),
    })
}

/// Amounts of a set of opportunities.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Outcomes {
    pipeline_amount: f64,
    won_deals: i64,
    won_amount: f64,
}

impl Outcomes {
    fn add(&mut self, closed: bool, won: bool, count: i64, amount: f64) {
        if !closed {
            self.pipeline_amount += amount;
        }
        if won {
            self.won_deals += count;
            self.won_amount += amount;
        }
    }

    fn extra(self) -> Vec<ExtraField> {
        vec![
            extra("pipeline_amount", FieldValue::Float(self.pipeline_amount)),
            extra("won_deals", FieldValue::Integer(self.won_deals)),
            extra("won_amount", FieldValue::Float(self.won_amount)),
        ]
    }
}

fn summary(answers: &Answers) -> Result<Summary, SourceError> {
    // An aggregate without GROUP BY always answers one row.
    let totals = answers
        .opportunity_totals
        .records
        .first()
        .ok_or_else(|| upstream("the opportunity totals query answered no row"))?;
    let mut outcomes = Outcomes::default();
    for row in &answers.opportunity_outcomes.records {
        outcomes.add(
            boolean(row, "IsClosed")?,
            boolean(row, "IsWon")?,
            count(row, "opportunities")?,
            amount(row, "amount")?,
        );
    }
    Ok(Summary {
        total_users: Some(to_i64(answers.new_contacts.total_size)?),
        total_events: Some(count(totals, "opportunities")?),
        // A CRM has no page views: absent, not zero.
        page_views: None,
        active_clients: Some(count(totals, "accounts")?),
        extra: outcomes.extra(),
    })
}

fn daily(
    contacts: &QueryResult,
    opportunities: &QueryResult,
) -> Result<Vec<DailyMetric>, SourceError> {
    #[derive(Default)]
    struct Day {
        users: i64,
        events: i64,
        amount: f64,
    }
    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    for row in &contacts.records {
        days.entry(day(row)?).or_default().users += count(row, "contacts")?;
    }
    for row in &opportunities.records {
        let entry = days.entry(day(row)?).or_default();
        entry.events += count(row, "opportunities")?;
        entry.amount += amount(row, "amount")?;
    }
    Ok(days
        .into_iter()
        .map(|(date, day)| DailyMetric {
            date: date.to_string(),
            users: day.users,
            events: day.events,
            extra: vec![extra("amount", FieldValue::Float(day.amount))],
        })
        .collect())
}

fn clients(
    opportunities: &QueryResult,
    contacts_per_account: &QueryResult,
) -> Result<Vec<ClientMetric>, SourceError> {
    // The unified model keys clients by name (the hub refuses a name twice and merges
    // sources by name), so accounts sharing a name count as one client.
    #[derive(Default)]
    struct Client {
        opportunities: i64,
        contacts: i64,
        outcomes: Outcomes,
    }
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut clients: HashMap<&str, Client> = HashMap::new();
    for row in &opportunities.records {
        let id = text(row, "AccountId")?;
        let name = row
            .get("Account")
            .and_then(|account| account.get("Name"))
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
            .unwrap_or(id);
        names.insert(id, name);
        let client = clients.entry(name).or_default();
        client.opportunities += 1;
        client.outcomes.add(
            boolean(row, "IsClosed")?,
            boolean(row, "IsWon")?,
            1,
            amount(row, "Amount")?,
        );
    }
    for row in &contacts_per_account.records {
        // Accounts without a new opportunity are not listed, whatever their contacts.
        if let Some(client) = names
            .get(text(row, "AccountId")?)
            .and_then(|name| clients.get_mut(name))
        {
            client.contacts += count(row, "contacts")?;
        }
    }
    let mut ranked: Vec<(&str, Client)> = clients.into_iter().collect();
    ranked.sort_by(|(a_name, a), (b_name, b)| {
        b.opportunities
            .cmp(&a.opportunities)
            .then_with(|| a_name.cmp(b_name))
    });
    Ok(ranked
        .into_iter()
        .take(TOP_CLIENTS)
        .map(|(name, client)| ClientMetric {
            client: name.to_owned(),
            events: client.opportunities,
            users: client.contacts,
            page_views: 0,
            extra: client.outcomes.extra(),
        })
        .collect())
}

fn extra(name: &str, value: FieldValue) -> ExtraField {
    ExtraField {
        name: name.into(),
        value,
    }
}

fn missing(field: &str) -> SourceError {
    upstream(format!("a Salesforce record lacks a usable `{field}`"))
}

fn count(row: &Value, field: &str) -> Result<i64, SourceError> {
    row.get(field)
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .ok_or_else(|| missing(field))
}

/// A currency amount; `null` (no Amount, or SUM over nothing) counts as 0.
fn amount(row: &Value, field: &str) -> Result<f64, SourceError> {
    match row.get(field) {
        Some(Value::Null) => Ok(0.0),
        Some(value) => value.as_f64().ok_or_else(|| missing(field)),
        None => Err(missing(field)),
    }
}

fn boolean(row: &Value, field: &str) -> Result<bool, SourceError> {
    row.get(field)
        .and_then(Value::as_bool)
        .ok_or_else(|| missing(field))
}

fn text<'a>(row: &'a Value, field: &str) -> Result<&'a str, SourceError> {
    row.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(field))
}

fn day(row: &Value) -> Result<Date, SourceError> {
    Date::parse(text(row, "day")?).ok_or_else(|| missing("day"))
}

fn to_i64(n: u64) -> Result<i64, SourceError> {
    i64::try_from(n).map_err(|_| upstream("a count does not fit 64 bits"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn result(records: Value) -> QueryResult {
        let records = records.as_array().unwrap().clone();
        QueryResult {
            total_size: records.len() as u64,
            records,
            pages: 1,
        }
    }

    fn answers() -> Answers {
        Answers {
            new_contacts: QueryResult {
                total_size: 12,
                records: vec![],
                pages: 1,
            },
            opportunity_totals: result(
                json!([{"attributes":{"type":"AggregateResult"},"opportunities":5,"accounts":2}]),
            ),
            opportunity_outcomes: result(json!([
                {"attributes":{"type":"AggregateResult"},"IsClosed":false,"IsWon":false,"opportunities":2,"amount":3000.0},
                {"attributes":{"type":"AggregateResult"},"IsClosed":true,"IsWon":true,"opportunities":2,"amount":500},
                {"attributes":{"type":"AggregateResult"},"IsClosed":true,"IsWon":false,"opportunities":1,"amount":null}
            ])),
            daily_contacts: result(json!([
                {"attributes":{"type":"AggregateResult"},"day":"2026-01-06","contacts":4},
                {"attributes":{"type":"AggregateResult"},"day":"2026-01-05","contacts":8}
            ])),
            daily_opportunities: result(json!([
                {"attributes":{"type":"AggregateResult"},"day":"2026-01-07","opportunities":1,"amount":null},
                {"attributes":{"type":"AggregateResult"},"day":"2026-01-05","opportunities":4,"amount":3500}
            ])),
            client_opportunities: result(json!([
                {"attributes":{"type":"Opportunity"},"AccountId":"001B","Account":{"attributes":{"type":"Account"},"Name":"Beta"},"Amount":1000,"IsClosed":false,"IsWon":false},
                {"attributes":{"type":"Opportunity"},"AccountId":"001A","Account":{"attributes":{"type":"Account"},"Name":"Acme"},"Amount":2000,"IsClosed":false,"IsWon":false},
                {"attributes":{"type":"Opportunity"},"AccountId":"001B","Account":{"attributes":{"type":"Account"},"Name":"Beta"},"Amount":500,"IsClosed":true,"IsWon":true},
                {"attributes":{"type":"Opportunity"},"AccountId":"001A","Account":{"attributes":{"type":"Account"},"Name":"Acme"},"Amount":null,"IsClosed":true,"IsWon":false},
                {"attributes":{"type":"Opportunity"},"AccountId":"001C","Account":null,"Amount":10,"IsClosed":true,"IsWon":true}
            ])),
            contacts_per_account: result(json!([
                {"attributes":{"type":"AggregateResult"},"AccountId":"001A","contacts":3}
            ])),
        }
    }

    #[test]
    fn maps_the_summary() {
        let summary = metrics(&answers()).unwrap().summary.unwrap();
        assert_eq!(
            summary,
            Summary {
                total_users: Some(12),
                total_events: Some(5),
                page_views: None,
                active_clients: Some(2),
                extra: Outcomes {
                    pipeline_amount: 3000.0,
                    won_deals: 2,
                    won_amount: 500.0
                }
                .extra(),
            }
        );
    }

    #[test]
    fn merges_daily_contacts_and_opportunities_by_day() {
        let daily = metrics(&answers()).unwrap().daily.unwrap();
        let rows: Vec<(&str, i64, i64)> = daily
            .iter()
            .map(|d| (d.date.as_str(), d.users, d.events))
            .collect();
        assert_eq!(
            rows,
            [
                ("2026-01-05", 8, 4),
                ("2026-01-06", 4, 0),
                ("2026-01-07", 0, 1)
            ]
        );
        assert_eq!(
            daily[0].extra,
            vec![extra("amount", FieldValue::Float(3500.0))]
        );
    }

    #[test]
    fn ranks_accounts_by_opportunities_then_name() {
        let clients = metrics(&answers()).unwrap().clients.unwrap();
        let rows: Vec<(&str, i64, i64)> = clients
            .iter()
            .map(|c| (c.client.as_str(), c.events, c.users))
            .collect();
        // Acme and Beta tie on 2; an account without a readable name shows its id.
        assert_eq!(rows, [("Acme", 2, 3), ("Beta", 2, 0), ("001C", 1, 0)]);
        assert_eq!(
            clients[1].extra,
            Outcomes {
                pipeline_amount: 1000.0,
                won_deals: 1,
                won_amount: 500.0
            }
            .extra()
        );
    }

    #[test]
    fn accounts_sharing_a_name_are_one_client() {
        let mut answers = answers();
        answers.client_opportunities = result(json!([
            {"AccountId":"001A","Account":{"Name":"Acme"},"Amount":1,"IsClosed":false,"IsWon":false},
            {"AccountId":"001B","Account":{"Name":"Acme"},"Amount":2,"IsClosed":false,"IsWon":false}
        ]));
        answers.contacts_per_account =
            result(json!([{"AccountId":"001A","contacts":1},{"AccountId":"001B","contacts":2}]));
        let clients = metrics(&answers).unwrap().clients.unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!((clients[0].events, clients[0].users), (2, 3));
    }

    #[test]
    fn keeps_only_the_top_clients() {
        let mut answers = answers();
        let records: Vec<Value> = (0..30)
            .map(|i| json!({"AccountId": format!("001{i:02}"), "Account": {"Name": format!("A{i:02}")}, "Amount": 1, "IsClosed": false, "IsWon": false}))
            .collect();
        answers.client_opportunities = result(Value::Array(records));
        let clients = metrics(&answers).unwrap().clients.unwrap();
        assert_eq!(clients.len(), TOP_CLIENTS);
        assert_eq!(clients[0].client, "A00");
    }

    #[test]
    fn rejects_malformed_rows() {
        let mut bad_day = answers();
        bad_day.daily_contacts = result(json!([{"day":"2026-02-30","contacts":1}]));
        assert!(matches!(metrics(&bad_day), Err(SourceError::Upstream(m)) if m.contains("`day`")));

        let mut negative = answers();
        negative.opportunity_totals = result(json!([{"opportunities":-1,"accounts":0}]));
        assert!(
            matches!(metrics(&negative), Err(SourceError::Upstream(m)) if m.contains("`opportunities`"))
        );
    }
}
