//! The same plugin written in Rust, Python and JavaScript (the `tally` examples that
//! `metrics-hub plugin new` writes), side by side: component size, cold start (compile),
//! warm start from the precompiled cache, the cost of one warm call, and the memory of a
//! hub with one source of each loaded.
//!
//! - Start: what the hub does for one source on a new runtime (load the component,
//!   compiled or from the cache, instantiate, initialize). Cold rounds use an empty cache
//!   directory, warm rounds a new runtime over the directory a cold round filled.
//! - Call: a warm `fetch-metrics` of a 7-day window (one page from the tally API stand-in
//!   on loopback) as the hub calls it. The Rust plugin, making the same request, is the
//!   baseline measured in the same run: a guest language's per-call overhead is its
//!   median minus Rust's, reported with the ratio.
//! - Memory: a child process (this binary again, so nothing compiled here inflates it)
//!   starts a runtime over the warm cache, then one source of each language with one call
//!   each; its VmRSS is read after each step.
//!
//! Target: a warm start of each language from the cache at most a tenth of its cold
//! start (the cache must be what makes restarts cheap).
//!
//! `cargo bench -p metrics-hub-tests --bench wasm_guest_langs` (`BENCH_QUICK=1` for a smoke
//! run; the plugins must be built first: `plugins/build.sh`)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{mib, ms, percentile, rss, Verdict};
use metrics_hub::kinds::wasm::WasmSource;
use metrics_hub::kinds::{DataSource, KindSpec, SourceSpec};
use metrics_hub::load;
use metrics_hub::model::QueryParams;
use metrics_hub::plugin::Runtime;
use metrics_hub_tests::plugin_component;
use metrics_hub_tests::tally_standin::{self, TallyStandIn};

const NAME: &str = "wasm_guest_langs";
/// Each language's plugin, by language.
const LANGS: [(&str, &str); 3] = [
    ("rust", "tally"),
    ("python", "tally_py"),
    ("javascript", "tally_js"),
];
/// A warm start may take at most this share of a cold one.
const WARM_SHARE: f64 = 0.1;
/// The argument that makes this binary the memory-measuring child.
const CHILD: &str = "--memory-child";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == CHILD) {
        let (cache, url) = (&args[at + 1], &args[at + 2]);
        return runtime.block_on(memory_child(Path::new(cache), url));
    }
    let quick = common::quick();
    common::announce(NAME, quick);
    runtime.block_on(run(quick))
}

fn spec(lang: &str, component: &str, base_url: &str) -> anyhow::Result<SourceSpec> {
    let yaml = format!(
        "id: tally-{lang}\nname: {lang}\nkind: wasm\ntimeout: 120s\nconnection:\n  component: {}\n  config:\n    base_url: {base_url}\n    api_key: {}\n  sandbox:\n    allowed_hosts: [\"{base_url}\"]\n",
        plugin_component(component).display(),
        tally_standin::API_KEY,
    );
    load::load_source(Path::new("bench.yaml"), &yaml, &|_| None)
        .map_err(|errors| anyhow::anyhow!("{errors:?}"))
}

/// Starts `spec`'s source on a new runtime over `cache`: the time it took, and the source.
async fn start(spec: &SourceSpec, cache: &Path) -> anyhow::Result<(Duration, WasmSource)> {
    let KindSpec::Wasm(wasm) = spec.kind.clone() else {
        bail!("not a wasm source");
    };
    let started = Instant::now();
    let runtime = Runtime::new(Some(cache.to_owned()))?;
    let source = WasmSource::with_runtime(spec, wasm, runtime);
    source.initialize().await?;
    Ok((started.elapsed(), source))
}

/// The median of `calls` warm fetches of a 7-day window, checked against the stand-in.
async fn calls(source: &WasmSource, calls: usize) -> anyhow::Result<Duration> {
    let today = chrono::Utc::now().date_naive();
    let params = QueryParams::last_days(6, today);
    let (users, _, _) = tally_standin::expected(today - chrono::Days::new(6), today);
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let data = source.fetch_metrics(&params).await?;
        times.push(started.elapsed());
        let got = data.summary.as_ref().and_then(|s| s.get("total_users"));
        if got.and_then(|v| v.as_i64()) != Some(users) {
            bail!("the plugin answered total_users {got:?}, the stand-in says {users}");
        }
    }
    Ok(percentile(&times, 50.0))
}

/// One language's figures.
struct Figures {
    lang: &'static str,
    size: u64,
    cold: Duration,
    warm: Duration,
    call: Duration,
}

/// One language's figures; its first cold round fills `kept`, which the memory child
/// starts from.
async fn measure(
    lang: &'static str,
    component: &str,
    api: &TallyStandIn,
    quick: bool,
    kept: &Path,
) -> anyhow::Result<Figures> {
    let (rounds, n) = if quick { (1, 50) } else { (3, 500) };
    let spec = spec(lang, component, api.url())?;
    let (mut colds, mut warms) = (vec![], vec![]);
    let mut call = Duration::ZERO;
    for round in 0..rounds {
        let fresh = tempfile::tempdir()?;
        let cache = if round == 0 { kept } else { fresh.path() };
        let (cold, source) = start(&spec, cache).await?;
        source.cleanup().await;
        colds.push(cold);
        let (warm, source) = start(&spec, cache).await?;
        warms.push(warm);
        if round == 0 {
            calls(&source, n / 10).await?;
            call = calls(&source, n).await?;
        }
        source.cleanup().await;
    }
    Ok(Figures {
        lang,
        size: std::fs::metadata(plugin_component(component))?.len(),
        cold: percentile(&colds, 50.0),
        warm: percentile(&warms, 50.0),
        call,
    })
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let api = TallyStandIn::start().await?;
    let kept = tempfile::tempdir()?;
    let mut figures = Vec::new();
    for (lang, component) in LANGS {
        figures.push(measure(lang, component, &api, quick, kept.path()).await?);
    }
    let rust = figures[0].call;
    println!("the tally plugin in each language (medians):");
    let mut verdict = Verdict::default();
    for f in &figures {
        println!(
            "  {:<10} component {:>6.1} MB  cold start {:>11}  warm start {:>10}  call {:>9} (+{} over Rust, x{:.1})",
            f.lang,
            f.size as f64 / 1e6,
            ms(f.cold),
            ms(f.warm),
            ms(f.call),
            ms(f.call.saturating_sub(rust)),
            f.call.as_secs_f64() / rust.as_secs_f64(),
        );
        verdict.target(
            quick,
            f.warm.as_secs_f64() <= WARM_SHARE * f.cold.as_secs_f64(),
            format!(
                "{}: warm start {} <= {WARM_SHARE} x cold start {}",
                f.lang,
                ms(f.warm),
                ms(f.cold)
            ),
        );
    }
    memory(&api, kept.path()).await?;
    verdict.finish(NAME);
    Ok(())
}

/// Runs the child over the filled cache `cache` and prints what it measured.
async fn memory(api: &TallyStandIn, cache: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let output = tokio::process::Command::new(exe)
        .arg(CHILD)
        .arg(cache)
        .arg(api.url())
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "the memory child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}

/// In the child: VmRSS after the runtime, then after each language's source (started
/// from the warm cache and called once), all kept loaded.
async fn memory_child(cache: &Path, url: &str) -> anyhow::Result<()> {
    let base = rss()?;
    let runtime = Runtime::new(Some(cache.to_owned()))?;
    let with_runtime = rss()?;
    println!(
        "memory of a hub process: {} before the plugin runtime, {} with it",
        mib(base),
        mib(with_runtime)
    );
    let mut sources = Vec::new();
    let mut last = with_runtime;
    for (lang, component) in LANGS {
        let spec = spec(lang, component, url)?;
        let KindSpec::Wasm(wasm) = spec.kind.clone() else {
            bail!("not a wasm source");
        };
        let source = WasmSource::with_runtime(&spec, wasm, runtime.clone());
        source.initialize().await?;
        calls(&source, 1).await.context("one call")?;
        let now = rss()?;
        println!(
            "  + a {lang} source, started and called once: {} (+{})",
            mib(now),
            mib(now.saturating_sub(last))
        );
        last = now;
        sources.push(source);
    }
    println!(
        "  one source of each language loaded: {} over the runtime",
        mib(last.saturating_sub(with_runtime))
    );
    Ok(())
}
