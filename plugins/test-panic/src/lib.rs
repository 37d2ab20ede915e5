//! A hostile plugin: `fetch-metrics` panics (a trap, with panic = "abort") when the window
//! is 13 days; otherwise it answers a summary whose `calls` extra field counts the calls
//! this instance has served, so a test can see that a trap brought a fresh instance.

use std::sync::atomic::{AtomicI64, Ordering};

wit_bindgen::generate!({
    world: "data-source",
    // Built against the frozen 0.1.0 contract: the host must still run such components.
    path: "../../wit/compat/v0.1.0",
});

use metrics_hub::source::types::{ExtraField, FieldValue, Summary};

static CALLS: AtomicI64 = AtomicI64::new(0);

struct Panic;

impl Guest for Panic {
    fn initialize(_config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        Ok(())
    }

    fn fetch_metrics(params: QueryParams) -> Result<Metrics, SourceError> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if params.days == 13 {
            panic!("unlucky window of {} days", params.days);
        }
        Ok(Metrics {
            summary: Some(Summary {
                total_users: 1,
                total_events: 1,
                page_views: 0,
                active_clients: 0,
                extra: vec![ExtraField {
                    name: "calls".into(),
                    value: FieldValue::Integer(calls),
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

export!(Panic);
