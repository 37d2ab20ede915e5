//! The SOQL the plugin sends, built from the request window only: the window's dates are
//! validated [`Date`]s, so no request text ever reaches a query string.
//!
//! A window is inclusive in the hub (`start_date..=end_date`); in SOQL it becomes
//! `CreatedDate >= start 00:00Z AND CreatedDate < (end + 1 day) 00:00Z`. Salesforce
//! evaluates date functions such as `DAY_ONLY` in UTC unless `convertTimezone()` is used,
//! so days and window agree.

use crate::dates::{Date, SoqlDate};

/// The inclusive day range one request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Date,
    pub end: Date,
}

impl Window {
    /// The `WHERE` condition selecting records created inside the window.
    fn created_within(&self) -> String {
        format!(
            "CreatedDate >= {} AND CreatedDate < {}",
            self.start.soql_midnight(),
            self.end.next().soql_midnight()
        )
    }
}

/// Every query one `fetch-metrics` runs, with the dataset each feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// `COUNT()` form: the answer is `totalSize`, no records (summary.total_users).
    pub new_contacts: String,
    /// One aggregate row: opportunities and distinct accounts (summary.total_events, active_clients).
    pub opportunity_totals: String,
    /// One aggregate row per (IsClosed, IsWon): pipeline amount, won deals and amount.
    pub opportunity_outcomes: String,
    /// New contacts per day (daily.users).
    pub daily_contacts: String,
    /// New opportunities and their amount per day (daily.events).
    pub daily_opportunities: String,
    /// The window's opportunities one by one with their account's name; this one pages
    /// through `nextRecordsUrl`. Grouping happens in the plugin so that two accounts with
    /// the same name stay apart and the name needs no second query.
    pub client_opportunities: String,
    /// New contacts per account (clients.users).
    pub contacts_per_account: String,
}

impl Queries {
    pub fn for_window(window: &Window) -> Queries {
        let within = window.created_within();
        Queries {
            new_contacts: format!("SELECT COUNT() FROM Contact WHERE {within}"),
            opportunity_totals: format!(
                "SELECT COUNT(Id) opportunities, COUNT_DISTINCT(AccountId) accounts FROM Opportunity WHERE {within}"
            ),
            opportunity_outcomes: format!(
                "SELECT IsClosed, IsWon, COUNT(Id) opportunities, SUM(Amount) amount FROM Opportunity \
                 WHERE {within} GROUP BY IsClosed, IsWon"
            ),
            daily_contacts: format!(
                "SELECT DAY_ONLY(CreatedDate) day, COUNT(Id) contacts FROM Contact \
                 WHERE {within} GROUP BY DAY_ONLY(CreatedDate)"
            ),
            daily_opportunities: format!(
                "SELECT DAY_ONLY(CreatedDate) day, COUNT(Id) opportunities, SUM(Amount) amount FROM Opportunity \
                 WHERE {within} GROUP BY DAY_ONLY(CreatedDate)"
            ),
            client_opportunities: format!(
                "SELECT AccountId, Account.Name, Amount, IsClosed, IsWon FROM Opportunity \
                 WHERE {within} AND AccountId != null"
            ),
            contacts_per_account: format!(
                "SELECT AccountId, COUNT(Id) contacts FROM Contact \
                 WHERE {within} AND AccountId != null GROUP BY AccountId"
            ),
        }
    }
}

/// Percent-encodes a query-string or form value: everything but RFC 3986 unreserved
/// characters becomes `%XX`, which every form and query decoder reads back.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str) -> Window {
        Window {
            start: Date::parse(start).unwrap(),
            end: Date::parse(end).unwrap(),
        }
    }

    #[test]
    fn the_window_ends_at_midnight_after_the_last_day() {
        let queries = Queries::for_window(&window("2026-01-01", "2026-01-31"));
        assert_eq!(
            queries.new_contacts,
            "SELECT COUNT() FROM Contact WHERE CreatedDate >= 2026-01-01T00:00:00Z AND CreatedDate < 2026-02-01T00:00:00Z"
        );
        assert!(queries
            .daily_opportunities
            .ends_with("CreatedDate < 2026-02-01T00:00:00Z GROUP BY DAY_ONLY(CreatedDate)"));
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            percent_encode("SELECT COUNT() FROM Contact"),
            "SELECT%20COUNT%28%29%20FROM%20Contact"
        );
        assert_eq!(percent_encode("a+b=c&d/é"), "a%2Bb%3Dc%26d%2F%C3%A9");
        assert_eq!(percent_encode("A-z_0.9~"), "A-z_0.9~");
    }
}
