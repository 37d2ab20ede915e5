//! Start-up of plugin sources from a cold compile versus a warm precompiled cache.
//!
//! Each round starts what the hub starts for two plugin sources (`test-trivial` and
//! `test-fetch`): a plugin runtime (wasmtime engine, linker, epoch ticker), then per source
//! the component loaded (compiled, or deserialized from the on-disk cache), pre-instantiated,
//! one instance instantiated and initialized with its config. Cold rounds use an empty cache
//! directory; warm rounds a new runtime over the directory the cold round filled, as a
//! restarted hub would. When the Salesforce and HubSpot components are built too, their
//! load alone (compile versus deserialize) is also reported.
//!
//! Target: median warm start of one plugin source <= 20 ms.
//!
//! `cargo bench -p metrics-hub-tests --bench wasm_startup` (`BENCH_QUICK=1` for a smoke run;
//! the plugins must be built first: `plugins/build.sh`)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use common::{ms, percentile, Verdict};
use metrics_hub::kinds::wasm::WasmSource;
use metrics_hub::kinds::DataSource;
use metrics_hub::kinds::{KindSpec, SourceSpec};
use metrics_hub::load;
use metrics_hub::plugin::cache::Origin;
use metrics_hub::plugin::Runtime;
use metrics_hub_tests::{plugin_component, plugins_dir};

const NAME: &str = "wasm_startup";
const TARGET: Duration = Duration::from_millis(20);

fn main() -> anyhow::Result<()> {
    let quick = common::quick();
    common::announce(NAME, quick);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(quick))
}

fn spec(id: &str, plugin: &str, config: &str) -> anyhow::Result<SourceSpec> {
    let yaml = format!(
        "id: {id}\nname: {id}\nkind: wasm\ntimeout: 10s\nconnection:\n  component: {}\n  config:\n{config}",
        plugin_component(plugin).display()
    );
    load::load_source(Path::new("bench.yaml"), &yaml, &|_| None)
        .map_err(|errors| anyhow::anyhow!("{errors:?}"))
}

/// Starts both sources on a new runtime over `cache`; returns the runtime's set-up time
/// and each source's start time.
async fn start(
    specs: &[SourceSpec],
    cache: &Path,
    expected: Origin,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let runtime = Runtime::new(Some(cache.to_owned()))?;
    let engine = started.elapsed();
    let mut each = Vec::new();
    for spec in specs {
        let KindSpec::Wasm(wasm) = spec.kind.clone() else {
            bail!("not a wasm source");
        };
        let path = wasm.component_path(&spec.file);
        let started = Instant::now();
        let source = WasmSource::with_runtime(spec, wasm, runtime.clone());
        source.initialize().await?;
        each.push(started.elapsed());
        // Where the component came from (already loaded: this is a lookup).
        let origin = runtime.load(&path)?.origin;
        if origin != expected {
            bail!("{} came from {origin:?}, expected {expected:?}", spec.id);
        }
        source.cleanup().await;
    }
    Ok((engine, each))
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let rounds = if quick { 2 } else { 15 };
    let specs = [
        spec("trivial", "test-trivial", "    report_work: false\n")?,
        spec("fetch", "test-fetch", "    url: http://127.0.0.1:9/\n")?,
    ];
    let (mut engines, mut cold, mut warm, mut cold_total, mut warm_total) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let cache = tempfile::tempdir()?;
        let (engine, each) = start(&specs, cache.path(), Origin::Compiled).await?;
        cold_total.push(engine + each.iter().sum::<Duration>());
        engines.push(engine);
        cold.extend(each);
        let (engine, each) = start(&specs, cache.path(), Origin::Cache).await?;
        warm_total.push(engine + each.iter().sum::<Duration>());
        engines.push(engine);
        warm.extend(each);
    }
    println!("{rounds} rounds, two plugin sources each (test-trivial, test-fetch):");
    println!(
        "  runtime set-up (engine, linker, ticker)  median {}",
        ms(percentile(&engines, 50.0))
    );
    println!(
        "  one source, cold compile                 median {}  max {}",
        ms(percentile(&cold, 50.0)),
        ms(percentile(&cold, 100.0))
    );
    println!(
        "  one source, warm precompiled cache       median {}  max {}",
        ms(percentile(&warm, 50.0)),
        ms(percentile(&warm, 100.0))
    );
    println!(
        "  both sources with the runtime: cold {}  warm {}",
        ms(percentile(&cold_total, 50.0)),
        ms(percentile(&warm_total, 50.0))
    );

    // The product plugins, when built: load only (their initialize wants credentials).
    let products: Vec<PathBuf> = ["salesforce", "hubspot"]
        .iter()
        .map(|name| plugins_dir().join(format!("{name}.wasm")))
        .filter(|path| path.is_file())
        .collect();
    for path in &products {
        let cache = tempfile::tempdir()?;
        let started = Instant::now();
        Runtime::new(Some(cache.path().to_owned()))?.load(path)?;
        let compile = started.elapsed();
        let warm_runtime = Runtime::new(Some(cache.path().to_owned()))?;
        let started = Instant::now();
        let plugin = warm_runtime.load(path)?;
        let load = started.elapsed();
        println!(
            "  {} ({} KB): load with compile {}, from the cache {} ({:?})",
            path.file_name().unwrap_or_default().to_string_lossy(),
            plugin.size / 1024,
            ms(compile),
            ms(load),
            plugin.origin,
        );
    }

    let mut verdict = Verdict::default();
    let median = percentile(&warm, 50.0);
    verdict.target(
        quick,
        median <= TARGET,
        format!(
            "median warm start of one plugin source {} <= {}",
            ms(median),
            ms(TARGET)
        ),
    );
    verdict.check(
        percentile(&warm, 50.0) < percentile(&cold, 50.0),
        "a warm start is faster than a cold compile".into(),
    );
    verdict.finish(NAME);
    Ok(())
}
