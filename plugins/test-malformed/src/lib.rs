//! A hostile plugin: answers metrics the hub must refuse. Config `mode`: `negative` (a
//! negative count), `bad-date` (a date that does not exist), `duplicate-day` (the same day
//! twice); anything else answers well-formed data.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

use metrics_hub::source::types::{DailyMetric, Summary};

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Malformed;

impl Guest for Malformed {
    fn initialize(config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        for entry in config {
            if entry.key == "mode" {
                MODE.with(|m| *m.borrow_mut() = entry.value);
            }
        }
        Ok(())
    }

    fn fetch_metrics(params: QueryParams) -> Result<Metrics, SourceError> {
        let mode = MODE.with(|m| m.borrow().clone());
        let day = |date: &str, users| DailyMetric {
            date: date.to_owned(),
            users,
            events: 10,
            extra: vec![],
        };
        let mut daily = vec![day(&params.start_date, 5), day(&params.end_date, 6)];
        let mut summary = Summary {
            total_users: Some(11),
            total_events: Some(20),
            page_views: Some(3),
            active_clients: Some(1),
            extra: vec![],
        };
        match mode.as_str() {
            "negative" => summary.total_events = Some(-20),
            "bad-date" => daily[1].date = "2026-02-30".into(),
            "duplicate-day" => daily[1].date = params.start_date.clone(),
            _ => {}
        }
        Ok(Metrics {
            summary: Some(summary),
            daily: Some(daily),
            features: None,
            clients: None,
        })
    }

    fn health_check() -> Result<(), SourceError> {
        Ok(())
    }

    fn cleanup() {}
}

export!(Malformed);
