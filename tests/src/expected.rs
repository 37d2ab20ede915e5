//! The four dashboard datasets computed directly from the generated demo events, in
//! plain Rust and independently of any SQL, as the yardstick for end-to-end tests.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use metrics_hub::kinds::sql::demo::DemoEvent;
use serde_json::{json, Value};

/// The client subdomain of a URL `https://CLIENT.8020rei.com/...`, by the shipped sources'
/// rule (which agrees with the original GA4 query's `https://([^.]+)\.8020rei\.com` on the
/// app's own pages; tests/ga4_fidelity.rs shows where they differ).
pub fn client_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let host_end = rest.find(['/', '?', '#', ':']).unwrap_or(rest.len());
    let client = rest[..host_end].strip_suffix(".8020rei.com")?;
    (!client.is_empty() && !client.contains('.')).then_some(client)
}

/// The feature of a page URL: first match wins, in the original query's order.
pub fn feature_of(url: &str) -> Option<&'static str> {
    [
        ("/home", "Home Dashboard"),
        ("/buybox/deals", "Buybox - Deals"),
        ("/buybox", "Buybox"),
        ("/properties", "Properties"),
        ("/importer", "Importer"),
        ("/integrations/api-tokens", "API Tokens"),
        ("/integrations", "Integrations"),
        ("/session/login", "Login"),
    ]
    .into_iter()
    .find(|(path, _)| url.contains(path))
    .map(|(_, feature)| feature)
}

/// Optional narrowing, mirroring the shipped sources' filters.
#[derive(Debug, Default, Clone)]
pub struct Narrow<'a> {
    pub client: Option<&'a str>,
    pub event_name: Option<&'a str>,
}

/// The expected `data` object for events within `start..=end`, each count multiplied by
/// `copies` (the number of sources holding the same events, whose numbers are summed).
pub fn expected(
    events: &[DemoEvent],
    start: NaiveDate,
    end: NaiveDate,
    narrow: &Narrow,
    copies: i64,
) -> Value {
    let (from, to) = (
        start.format("%Y%m%d").to_string(),
        end.format("%Y%m%d").to_string(),
    );
    let events: Vec<&DemoEvent> = events
        .iter()
        .filter(|e| e.event_date >= from && e.event_date <= to)
        .filter(|e| narrow.event_name.is_none_or(|n| e.event_name == n))
        .filter(|e| {
            narrow
                .client
                .is_none_or(|c| e.page_location.as_deref().and_then(client_of) == Some(c))
        })
        .collect();
    let is_view = |e: &&&DemoEvent| e.event_name == "page_view";

    let users: BTreeSet<&str> = events.iter().map(|e| e.user_pseudo_id.as_str()).collect();
    let clients: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.page_location.as_deref().and_then(client_of))
        .collect();
    let summary = json!({
        "total_users": users.len() as i64 * copies,
        "total_events": events.len() as i64 * copies,
        "page_views": events.iter().filter(is_view).count() as i64 * copies,
        "active_clients": clients.len() as i64 * copies,
    });

    let mut days: BTreeMap<&str, (BTreeSet<&str>, i64)> = BTreeMap::new();
    for e in &events {
        let day = days.entry(e.event_date.as_str()).or_default();
        day.0.insert(e.user_pseudo_id.as_str());
        day.1 += 1;
    }
    let daily: Vec<Value> = days
        .into_iter()
        .map(|(date, (users, count))| {
            let date = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]);
            json!({"date": date, "users": users.len() as i64 * copies, "events": count * copies})
        })
        .collect();

    let mut features: BTreeMap<&str, i64> = BTreeMap::new();
    for e in events.iter().filter(is_view) {
        if let Some(feature) = e.page_location.as_deref().and_then(feature_of) {
            *features.entry(feature).or_default() += copies;
        }
    }
    let mut features: Vec<(&str, i64)> = features.into_iter().collect();
    features.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let features: Vec<Value> = features
        .into_iter()
        .map(|(f, v)| json!({"feature": f, "views": v}))
        .collect();

    let mut per_client: BTreeMap<&str, (i64, BTreeSet<&str>, i64)> = BTreeMap::new();
    for e in &events {
        if let Some(client) = e.page_location.as_deref().and_then(client_of) {
            let c = per_client.entry(client).or_default();
            c.0 += 1;
            c.1.insert(e.user_pseudo_id.as_str());
            c.2 += i64::from(e.event_name == "page_view");
        }
    }
    let mut clients: Vec<(&str, i64, i64, i64)> = per_client
        .into_iter()
        .map(|(c, (events, users, views))| {
            (
                c,
                events * copies,
                users.len() as i64 * copies,
                views * copies,
            )
        })
        .collect();
    clients.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    clients.truncate(20);
    let clients: Vec<Value> = clients
        .into_iter()
        .map(|(client, events, users, page_views)| json!({"client": client, "events": events, "users": users, "page_views": page_views}))
        .collect();

    json!({"summary": summary, "dailyMetrics": daily, "featureMetrics": features, "clientMetrics": clients})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_clients_and_features_like_the_original_queries() {
        assert_eq!(client_of("https://acme.8020rei.com/home?x=1"), Some("acme"));
        assert_eq!(client_of("https://8020rei.com/pricing"), None);
        assert_eq!(client_of("https://www.google.com/search?q=x"), None);
        assert_eq!(client_of("https://a.b.8020rei.com/"), None);
        assert_eq!(
            feature_of("https://acme.8020rei.com/buybox/deals/7"),
            Some("Buybox - Deals")
        );
        assert_eq!(
            feature_of("https://acme.8020rei.com/integrations/api-tokens"),
            Some("API Tokens")
        );
        assert_eq!(feature_of("https://acme.8020rei.com/settings"), None);
    }
}
