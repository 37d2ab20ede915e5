//! End-to-end: record transforms of `kind: rest` (`compute:`, `classify:`, `where:` and an
//! aggregate field's own `where:`) over the stand-in's raw events, which carry a `type`
//! and the `url` of the page they happened on. One source fills all four datasets from
//! one paged listing; the numbers are computed here from the stand-in's events, the way
//! the original GA4 dashboard defines them, and the stand-in must see the listing once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::rest_standin::{Event, RestStandIn};
use metrics_hub_tests::{details, get, sources_dir, TestHub};
use serde_json::{json, Value};

const FROM: &str = "2026-01-03";
const TO: &str = "2026-01-20";
const EVENTS: u64 = 300;
const PAGE: u64 = 25;

/// The one request every dataset makes.
fn listing() -> String {
    format!(
        "    path: /open/cursor\n    query: {{ from: \"{{{{ start_date }}}}\", to: \"{{{{ end_date }}}}\", limit: {PAGE} }}\n    records: data.items\n    pagination: {{ type: cursor, cursor_path: paging.next.after, param: after }}\n"
    )
}

fn source(base: &str) -> String {
    let listing = listing();
    let client = r"record.url | regex_capture('^https://([a-z0-9-]+)\\.8020rei\\.com/')";
    format!(
        r#"id: events
name: Raw events
kind: rest
timeout: 10s
cache:
  ttl: 0s
connection:
  base_url: {base}
queries:
  summary:
{listing}    compute:
      client: "{client}"
    aggregate:
      fields:
        total_events: {{ op: count }}
        page_views: {{ op: count, where: "record.type == 'page_view'" }}
        total_users: {{ op: count_distinct, field: contact.id }}
        active_clients: {{ op: count_distinct, field: client }}
  daily:
{listing}    compute:
      day: "record.created_at | date"
    aggregate:
      group_by: {{ field: day }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
        page_views: {{ op: count, where: "record.type == 'page_view'" }}
  features:
{listing}    where: "record.type == 'page_view'"
    classify:
      feature:
        from: "record.url | url_path"
        rules:
          - {{ prefix: /buybox/deals, value: "Buybox - Deals" }}
          - {{ prefix: /buybox, value: Buybox }}
          - {{ equals: /, value: Home Dashboard }}
          - {{ regex: "^/properties(/|$)", value: Properties }}
          - {{ contains: importer, value: Importer }}
        otherwise: drop
    aggregate:
      group_by: {{ field: feature }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
  clients:
{listing}    compute:
      client: "{client}"
    aggregate:
      group_by: {{ field: client }}
      fields:
        events: {{ op: count }}
        users: {{ op: count_distinct, field: contact.id }}
"#
    )
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Events in the window.
fn window(events: &[Event]) -> Vec<&Event> {
    let (from, to) = (date(FROM), date(TO));
    events
        .iter()
        .filter(|e| e.day >= from && e.day <= to)
        .collect()
}

/// Per key: events and distinct contacts.
fn grouped<'a>(
    events: impl Iterator<Item = &'a Event>,
    key: impl Fn(&Event) -> Option<String>,
) -> BTreeMap<String, (u64, BTreeSet<&'a str>)> {
    let mut groups: BTreeMap<String, (u64, BTreeSet<&str>)> = BTreeMap::new();
    for e in events {
        if let Some(k) = key(e) {
            let group = groups.entry(k).or_default();
            group.0 += 1;
            group.1.insert(&e.contact);
        }
    }
    groups
}

#[tokio::test]
async fn one_listing_of_raw_events_fills_all_four_datasets() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let dir = sources_dir(&[("events.yaml", source(api.base()))]).unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let (status, body) = get(
        &hub,
        &format!("/api/metrics?source=events&start_date={FROM}&end_date={TO}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "events")["status"], "ok", "{body}");
    let events = window(api.events());
    let data = &body["data"];

    let users: BTreeSet<&str> = events.iter().map(|e| e.contact.as_str()).collect();
    let clients: BTreeSet<&str> = events.iter().map(|e| e.client).collect();
    let views = events.iter().filter(|e| e.kind == "page_view").count();
    assert_eq!(
        data["summary"]["total_events"],
        events.len(),
        "{}",
        data["summary"]
    );
    assert_eq!(data["summary"]["page_views"], views);
    assert_eq!(data["summary"]["total_users"], users.len());
    assert_eq!(data["summary"]["active_clients"], clients.len());
    assert!(
        views > 0 && views < events.len(),
        "the data must tell them apart"
    );

    let days = grouped(events.iter().copied(), |e| Some(e.day.to_string()));
    let daily: Vec<Value> = data["dailyMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| json!([row["date"], row["events"], row["users"], row["page_views"]]))
        .collect();
    let expected: Vec<Value> = days
        .iter()
        .map(|(day, (n, who))| {
            let views = events
                .iter()
                .filter(|e| e.day.to_string() == *day && e.kind == "page_view")
                .count();
            json!([day, n, who.len(), views])
        })
        .collect();
    assert_eq!(daily, expected);

    let features = grouped(
        events.iter().copied().filter(|e| e.kind == "page_view"),
        |e| e.page_feature.map(str::to_owned),
    );
    let got: BTreeMap<String, (u64, u64)> = data["featureMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let pair = (
                row["events"].as_u64().unwrap(),
                row["users"].as_u64().unwrap(),
            );
            (row["feature"].as_str().unwrap().to_owned(), pair)
        })
        .collect();
    let want: BTreeMap<String, (u64, u64)> = features
        .iter()
        .map(|(k, (n, who))| (k.clone(), (*n, who.len() as u64)))
        .collect();
    assert_eq!(got, want);
    assert!(want.contains_key("Buybox - Deals") && want.contains_key("Buybox"));

    let by_client = grouped(events.iter().copied(), |e| Some(e.client.to_owned()));
    for row in data["clientMetrics"].as_array().unwrap() {
        let name = row["client"].as_str().unwrap();
        let (n, who) = &by_client[name];
        assert_eq!(row["events"], *n, "{name}");
        assert_eq!(row["users"], who.len(), "{name}");
    }
    assert_eq!(
        data["clientMetrics"].as_array().unwrap().len(),
        by_client.len()
    );

    // Four datasets, one listing: each page was asked for once.
    let pages = api.requests_to("/open/cursor").len() as u64;
    assert_eq!(
        pages,
        (events.len() as u64).div_ceil(PAGE)
            + u64::from((events.len() as u64).is_multiple_of(PAGE))
    );
    hub.stop().await.unwrap();
}

#[test]
fn bad_expressions_are_reported_at_load_with_their_path_and_fix() {
    let base = "http://127.0.0.1:9";
    let text = source(base)
        .replace("record.created_at | date", "record.created_at | dat")
        .replace(
            "record.type == 'page_view'\"\n    classify",
            "secrets.key\"\n    classify",
        )
        .replace("prefix: /buybox, value", "prefix: /buybox, regex: x, value")
        .replace("\"^/properties(/|$)\"", "\"^/properties(\"");
    let dir = sources_dir(&[("events.yaml", text)]).unwrap();
    let loaded = metrics_hub::load::load_dir_with(dir.path(), &|_| None).unwrap();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    let all = errors.join("\n");
    for expected in [
        "/queries/daily/compute/day",
        "unknown filter `dat`",
        "/queries/features/where",
        "neither the record nor a request parameter",
        "/queries/features/classify/feature/rules/1",
        "exactly one of prefix, contains, equals or regex",
        "/queries/features/classify/feature/rules/3/regex",
        "not a valid regular expression",
        "events.yaml",
    ] {
        assert!(all.contains(expected), "`{expected}` missing in:\n{all}");
    }
}
