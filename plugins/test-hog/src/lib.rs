//! A hostile plugin: `fetch-metrics` allocates (and touches) memory without bound, so only
//! the host's memory limit can stop it.

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

struct Hog;

impl Guest for Hog {
    fn initialize(_config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        Ok(())
    }

    fn fetch_metrics(_params: QueryParams) -> Result<Metrics, SourceError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; 1 << 20];
            block[hoard.len() % (1 << 20)] = 1;
            hoard.push(std::hint::black_box(block));
        }
    }

    fn health_check() -> Result<(), SourceError> {
        Ok(())
    }

    fn cleanup() {}
}

export!(Hog);
