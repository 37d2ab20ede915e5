//! The `metrics-hub` binary and WebAssembly plugins: `plugin check` and what `validate`
//! says about `kind: wasm` sources. Needs the plugins built (plugins/build.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hub(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_metrics-hub"));
    command.env("METRICS_HUB_PLUGIN_CACHE", cache);
    command
}

fn component(name: &str) -> PathBuf {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run plugins/build.sh",
        path.display()
    );
    path
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn plugin_check_prints_the_world_and_uses_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let plugin = component("test_trivial");
    let first = hub(cache.path())
        .args(["plugin", "check"])
        .arg(&plugin)
        .output()
        .unwrap();
    let out = text(&first);
    assert!(first.status.success(), "{out}");
    assert!(
        out.contains("implements metrics-hub:source/data-source@0.2.0"),
        "{out}"
    );
    assert!(out.contains(", compiled)"), "{out}");
    for line in [
        "initialize: func(config)",
        "fetch-metrics: func(params)",
        "health-check: func()",
        "cleanup: func()",
        "metrics-hub:source/clock@0.2.0: instance { monotonic-now }",
    ] {
        assert!(out.contains(line), "{line} missing in:\n{out}");
    }
    let second = hub(cache.path())
        .args(["plugin", "check"])
        .arg(&plugin)
        .output()
        .unwrap();
    assert!(
        text(&second).contains("precompiled artefact from the cache"),
        "{}",
        text(&second)
    );
    // A component built against the frozen 0.1.0 contract still loads, and says so.
    let old = hub(cache.path())
        .args(["plugin", "check"])
        .arg(component("test_panic"))
        .output()
        .unwrap();
    assert!(
        text(&old).contains("implements metrics-hub:source/data-source@0.1.0"),
        "{}",
        text(&old)
    );
}

#[test]
fn plugin_check_refuses_what_is_not_a_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let bogus = cache.path().join("bogus.wasm");
    std::fs::write(&bogus, "hello").unwrap();
    let output = hub(cache.path())
        .args(["plugin", "check"])
        .arg(&bogus)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not a valid WebAssembly component"),
        "{}",
        text(&output)
    );
}

#[test]
fn validate_loads_every_wasm_component() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = |id: &str, enabled: bool, component: &Path| {
        format!(
            "id: {id}\nname: {id}\nkind: wasm\nenabled: {enabled}\nconnection:\n  component: {}\n",
            component.display()
        )
    };
    std::fs::write(
        dir.path().join("good.yaml"),
        source("good", true, &component("test_trivial")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("later.yaml"),
        source("later", false, Path::new("not-built-yet.wasm")),
    )
    .unwrap();
    let output = hub(cache.path())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let out = text(&output);
    assert!(
        output.status.success(),
        "a disabled source only warns: {out}"
    );
    assert!(out.contains("(good, wasm, enabled)"), "{out}");
    assert!(
        out.contains("warn ") && out.contains("later.yaml: at /connection/component"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("broken.yaml"),
        source("broken", true, Path::new("not-built-yet.wasm")),
    )
    .unwrap();
    let output = hub(cache.path())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("error ")
            && out.contains("broken.yaml: at /connection/component: cannot load plugin"),
        "{out}"
    );
}

#[test]
fn plugin_new_writes_a_skeleton_and_says_what_next() {
    let work = tempfile::tempdir().unwrap();
    let (plugins, sources) = (work.path().join("plugins"), work.path().join("sources.d"));
    let run = |name: &str| {
        let cache = work.path().join("cache");
        hub(&cache)
            .args(["plugin", "new", name, "--lang", "js", "--plugins"])
            .arg(&plugins)
            .arg("--sources")
            .arg(&sources)
            .output()
            .unwrap()
    };
    // Not a plugin workspace: refused before anything is written.
    let out = run("my-api");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not the plugin workspace"),
        "{}",
        text(&out)
    );
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("Cargo.toml"), "[workspace]\n").unwrap();
    let out = run("my-api");
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for line in [
        "wrote ",
        "js/my-api/plugin.js",
        "sources.d/my-api.yaml",
        "node --test my-api/*.test.js",
        "my-api_js.wasm",
        "MY_API_API_KEY=... metrics-hub query --source my-api",
    ] {
        assert!(printed.contains(line), "{line} missing in:\n{printed}");
    }
    assert!(plugins.join("js/my-api/logic.test.js").is_file());
    // A second time, and a bad name: refused with the reason.
    let again = run("my-api");
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    let bad = run("My_Api");
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("is not a plugin name"),
        "{}",
        text(&bad)
    );
}
