//! A hostile plugin: `fetch-metrics` never returns. It spins on plain arithmetic, with no
//! host calls, so only the host's epoch deadline can interrupt it; or, with the config
//! `sleep: true`, it sleeps for an hour (`std::thread::sleep`, a WASI clock subscription),
//! which only the host's cut of sleeps at the deadline can end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

static SLEEP: AtomicBool = AtomicBool::new(false);

struct Spin;

impl Guest for Spin {
    fn initialize(config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        let sleep = config.iter().any(|e| e.key == "sleep" && e.value == "true");
        SLEEP.store(sleep, Ordering::Relaxed);
        Ok(())
    }

    fn fetch_metrics(_params: QueryParams) -> Result<Metrics, SourceError> {
        if SLEEP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(3600));
            return Err(SourceError::Internal("woke up after an hour".into()));
        }
        let mut state: u64 = 1;
        loop {
            // xorshift: keeps the loop from being optimized away.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            std::hint::black_box(state);
        }
    }

    fn health_check() -> Result<(), SourceError> {
        Ok(())
    }

    fn cleanup() {}
}

export!(Spin);
