//! A hostile plugin: `fetch-metrics` never returns. It spins on plain arithmetic, with no
//! host calls, so only the host's epoch deadline can interrupt it.

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

struct Spin;

impl Guest for Spin {
    fn initialize(_config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        Ok(())
    }

    fn fetch_metrics(_params: QueryParams) -> Result<Metrics, SourceError> {
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
