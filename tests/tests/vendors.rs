//! End-to-end: the shipped `sources.d/stripe.yaml`, `zendesk.yaml` and `intercom.yaml`,
//! unchanged but for their environment, against stand-ins that speak each vendor's wire
//! format (`metrics_hub_tests::vendor_standins`). Every expected number is computed here
//! from the stand-in's records, by the rules each file's header states; the stand-ins
//! count requests, so paging that makes one request too many (Stripe's last full page,
//! Zendesk's after_url on the last page) fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use metrics_hub::hub::HubSettings;
use metrics_hub_tests::vendor_standins::intercom::{IntercomStandIn, INTERCOM_TOKEN};
use metrics_hub_tests::vendor_standins::stripe::{self, StripeStandIn, STRIPE_KEY};
use metrics_hub_tests::vendor_standins::zendesk::{
    self, ZendeskStandIn, ZENDESK_EMAIL, ZENDESK_TOKEN,
};
use metrics_hub_tests::vendor_standins::{day_of, first_day, last_day, unix};
use metrics_hub_tests::{details, get, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

/// A hub serving only the shipped `file`, with `env`.
async fn serve(file: &str, env: &[(&str, String)]) -> (TestHub, tempfile::TempDir) {
    let text = std::fs::read_to_string(repo_root().join("sources.d").join(file)).unwrap();
    let dir = sources_dir(&[(file, text)]).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let hub = TestHub::start(dir.path(), &env, HubSettings::default())
        .await
        .unwrap();
    (hub, dir)
}

/// The whole stand-in window, May to July 2024.
async fn window(hub: &TestHub, source: &str) -> Value {
    let path = format!(
        "/api/metrics?source={source}&start_date={}&end_date={}",
        first_day(),
        last_day()
    );
    let (status, body) = get(hub, &path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, source)["status"], "ok", "{body}");
    body
}

/// Requests a listing of `n` records takes at `per_page`, none to prove the end.
fn pages(n: usize, per_page: usize) -> usize {
    n.div_ceil(per_page).max(1)
}

/// Per group: count, distinct people, and a sum.
#[derive(Default, Debug, PartialEq)]
struct Group {
    n: u64,
    people: BTreeSet<String>,
    sum: i64,
}

fn rows(data: &Value, key: &str, dataset: &str) -> BTreeMap<String, Value> {
    data[dataset]
        .as_array()
        .unwrap_or_else(|| panic!("no {dataset} in {data}"))
        .iter()
        .map(|row| (row[key].as_str().unwrap().to_owned(), row.clone()))
        .collect()
}

#[tokio::test]
async fn stripe_revenue_and_paying_customers_come_from_one_paged_listing() {
    let api = StripeStandIn::start().await.unwrap();
    let env = [
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
        ("STRIPE_API_URL", format!("{}/v1", api.url())),
    ];
    let (hub, _dir) = serve("stripe.yaml", &env).await;
    let body = window(&hub, "stripe").await;
    let data = &body["data"];

    let (from, to) = (unix(first_day()), unix(last_day()) + 86_400);
    let listed: Vec<&Value> = api
        .charges()
        .iter()
        .filter(|c| (from..to).contains(&c["created"].as_i64().unwrap()))
        .collect();
    let paid: Vec<&Value> = listed
        .iter()
        .copied()
        .filter(|c| c["status"] == "succeeded" && c["currency"] == "usd")
        .collect();
    let cents =
        |c: &Value| c["amount_captured"].as_i64().unwrap() - c["amount_refunded"].as_i64().unwrap();
    let dollars = |cents: i64| json!(cents as f64 / 100.0);
    let customers: BTreeSet<&str> = paid.iter().filter_map(|c| c["customer"].as_str()).collect();
    let summary = &data["summary"];
    assert_eq!(summary["total_events"], paid.len(), "{summary}");
    assert_eq!(summary["total_users"], customers.len());
    assert_eq!(summary["active_clients"], customers.len());
    assert_eq!(
        summary["revenue"],
        dollars(paid.iter().map(|c| cents(c)).sum())
    );
    assert!(
        paid.len() < listed.len(),
        "failed, pending and eur charges must count nowhere"
    );

    let mut days: BTreeMap<String, Group> = BTreeMap::new();
    let mut by_customer: BTreeMap<String, Group> = BTreeMap::new();
    for charge in &paid {
        let day = days
            .entry(day_of(charge["created"].as_i64().unwrap()).to_string())
            .or_default();
        day.n += 1;
        day.sum += cents(charge);
        if let Some(id) = charge["customer"].as_str() {
            day.people.insert(id.to_owned());
            let customer = stripe::customer(id);
            let name = customer["name"].as_str().or(customer["email"].as_str());
            let group = by_customer.entry(name.unwrap().to_owned()).or_default();
            group.n += 1;
            group.sum += cents(charge);
        }
    }
    let daily = rows(data, "date", "dailyMetrics");
    assert_eq!(daily.len(), days.len());
    for (day, want) in &days {
        let row = &daily[day];
        assert_eq!(row["events"], want.n, "{day}");
        assert_eq!(row["users"], want.people.len(), "{day}");
        assert_eq!(row["revenue"], dollars(want.sum), "{day}");
    }
    let clients = rows(data, "client", "clientMetrics");
    assert_eq!(clients.len(), by_customer.len(), "{clients:?}");
    for (name, want) in &by_customer {
        assert_eq!(clients[name]["events"], want.n, "{name}");
        assert_eq!(clients[name]["revenue"], dollars(want.sum), "{name}");
    }
    assert!(
        by_customer.keys().any(|name| name.contains('@')),
        "nameless customers show their email"
    );

    // Three datasets, one listing; has_more ends it without an extra empty page.
    assert_eq!(api.requests(), pages(listed.len(), 100));
    assert_eq!(api.stripe_version().as_deref(), Some("2025-04-30.basil"));
}

#[tokio::test]
async fn stripe_rate_limits_are_retried_and_a_bad_key_is_reported_without_it() {
    let api = StripeStandIn::start().await.unwrap();
    let url = format!("{}/v1", api.url());
    let (hub, _dir) = serve(
        "stripe.yaml",
        &[
            ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
            ("STRIPE_API_URL", url.clone()),
        ],
    )
    .await;
    api.rate_limit_next(2);
    let body = window(&hub, "stripe").await;
    assert!(body["data"]["summary"]["total_events"].as_u64().unwrap() > 0);

    let wrong = "sk_test_51PvWrongKeyForTheStandIn0000000000000Zz9";
    let (hub, _dir) = serve(
        "stripe.yaml",
        &[
            ("STRIPE_SECRET_KEY", wrong.to_owned()),
            ("STRIPE_API_URL", url),
        ],
    )
    .await;
    let (status, body) = get(&hub, "/api/metrics?source=stripe&days=7").await;
    assert_eq!(status, 503, "{body}");
    let stripe = details(&body, "stripe");
    assert_eq!(stripe["error"]["code"], "auth_failed", "{body}");
    assert!(!body.to_string().contains(wrong), "the key leaked: {body}");
}

#[tokio::test]
async fn zendesk_tickets_created_and_solved_follow_the_export_to_its_end() {
    let api = ZendeskStandIn::start_with_page_size(25).await.unwrap();
    let env = [
        ("ZENDESK_API_TOKEN", ZENDESK_TOKEN.to_owned()),
        ("ZENDESK_EMAIL", ZENDESK_EMAIL.to_owned()),
        ("ZENDESK_URL", format!("{}/api/v2", api.url())),
    ];
    let (hub, _dir) = serve("zendesk.yaml", &env).await;
    api.rate_limit_next(1); // answered with Retry-After: 1, which the source honours
    let body = window(&hub, "zendesk").await;
    let data = &body["data"];

    let from = unix(first_day());
    let exported = api
        .tickets()
        .iter()
        .filter(|t| zendesk::seconds(t["updated_at"].as_str().unwrap()) >= from)
        .count();
    let created: Vec<&Value> = api
        .tickets()
        .iter()
        .filter(|t| {
            let day = day_of(zendesk::seconds(t["created_at"].as_str().unwrap()));
            day >= first_day() && day <= last_day()
        })
        .collect();
    let solved = |t: &Value| t["status"] == "solved" || t["status"] == "closed";
    let mut total = Group::default();
    let mut orgs = BTreeSet::new();
    let mut days: BTreeMap<String, Group> = BTreeMap::new();
    let mut by_org: BTreeMap<String, Group> = BTreeMap::new();
    for ticket in &created {
        let requester = ticket["requester_id"].to_string();
        let day = day_of(zendesk::seconds(ticket["created_at"].as_str().unwrap()));
        let mut groups = vec![&mut total, days.entry(day.to_string()).or_default()];
        if let Some(org) = ticket["organization_id"].as_i64() {
            orgs.insert(org);
            groups.push(by_org.entry(org.to_string()).or_default());
        }
        for group in groups {
            group.n += 1;
            group.people.insert(requester.clone());
            group.sum += i64::from(solved(ticket));
        }
    }
    let summary = &data["summary"];
    assert_eq!(summary["total_events"], total.n, "{summary}");
    assert_eq!(summary["total_users"], total.people.len());
    assert_eq!(summary["active_clients"], orgs.len());
    assert_eq!(summary["solved"], total.sum);
    assert!(
        created.len() < exported,
        "older tickets updated in the window must be left out"
    );
    for (dataset, key, want) in [
        ("dailyMetrics", "date", &days),
        ("clientMetrics", "client", &by_org),
    ] {
        let got = rows(data, key, dataset);
        assert_eq!(got.len(), want.len(), "{dataset}");
        for (name, group) in want {
            assert_eq!(got[name]["events"], group.n, "{dataset} {name}");
            assert_eq!(got[name]["users"], group.people.len(), "{dataset} {name}");
            assert_eq!(got[name]["solved"], group.sum, "{dataset} {name}");
        }
    }
    // One refused request, then the export's pages, and none past end_of_stream.
    assert_eq!(api.requests(), 1 + pages(exported, 25));
}

#[tokio::test]
async fn intercom_conversations_page_with_the_cursor_in_the_body() {
    let api = IntercomStandIn::start().await.unwrap();
    let env = [
        ("INTERCOM_ACCESS_TOKEN", INTERCOM_TOKEN.to_owned()),
        ("INTERCOM_URL", api.url().to_owned()),
    ];
    let (hub, _dir) = serve("intercom.yaml", &env).await;
    let body = window(&hub, "intercom").await;
    let data = &body["data"];

    let (from, to) = (unix(first_day()), unix(last_day()) + 86_400);
    let listed: Vec<&Value> = api
        .conversations()
        .iter()
        .filter(|c| (from..to).contains(&c["created_at"].as_i64().unwrap()))
        .collect();
    let free = ["gmail.com"];
    let mut total = Group::default();
    let mut companies = BTreeSet::new();
    let mut days: BTreeMap<String, Group> = BTreeMap::new();
    let mut by_company: BTreeMap<String, Group> = BTreeMap::new();
    for conversation in &listed {
        let author = &conversation["source"]["author"];
        let person = ["user", "lead"]
            .contains(&author["type"].as_str().unwrap())
            .then(|| author["id"].as_str().unwrap().to_owned());
        let company = author["email"]
            .as_str()
            .and_then(|email| email.split('@').nth(1))
            .map(str::to_lowercase)
            .filter(|domain| !free.contains(&domain.as_str()));
        let day = day_of(conversation["created_at"].as_i64().unwrap()).to_string();
        let mut groups = vec![&mut total, days.entry(day).or_default()];
        if let Some(company) = company {
            companies.insert(company.clone());
            groups.push(by_company.entry(company).or_default());
        }
        for group in groups {
            group.n += 1;
            group.people.extend(person.clone());
            group.sum += i64::from(conversation["state"] == "closed");
        }
    }
    let summary = &data["summary"];
    assert_eq!(summary["total_events"], total.n, "{summary}");
    assert_eq!(summary["total_users"], total.people.len());
    assert_eq!(summary["active_clients"], companies.len());
    assert_eq!(summary["closed"], total.sum);
    let daily = rows(data, "date", "dailyMetrics");
    assert_eq!(daily.len(), days.len());
    for (day, group) in &days {
        assert_eq!(daily[day]["events"], group.n, "{day}");
        assert_eq!(daily[day]["users"], group.people.len(), "{day}");
        assert_eq!(daily[day]["closed"], group.sum, "{day}");
    }
    let clients = rows(data, "client", "clientMetrics");
    assert_eq!(clients.len(), by_company.len(), "{clients:?}");
    for (name, group) in &by_company {
        assert_eq!(clients[name]["events"], group.n, "{name}");
        assert_eq!(clients[name]["users"], group.people.len(), "{name}");
    }
    assert!(!clients.contains_key("gmail.com"));
    // The cursor went in the body: a cursor in the query string would restart at page 1
    // and loop, and the last page has no pages.next.
    assert_eq!(api.requests(), pages(listed.len(), 150));
    assert_eq!(api.intercom_version().as_deref(), Some("2.11"));
}
