//! `metrics-hub plugin new`: the shipped `tally` examples are exactly its output, so the
//! end-to-end tests of those examples (plugins_guest_langs.rs) test every skeleton; the
//! source file it writes serves through the hub once pointed at an API; and it never
//! overwrites anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{Days, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::load;
use metrics_hub::scaffold::{self, Lang, Request, ScaffoldError};
use metrics_hub_tests::tally_standin::{self, TallyStandIn};
use metrics_hub_tests::{details, get, plugin_component, repo_root, TestHub};

const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

fn request(name: &str, lang: Lang, plugins: &Path, sources: &Path) -> Request {
    Request {
        name: name.into(),
        lang,
        plugins: plugins.to_owned(),
        sources: sources.to_owned(),
    }
}

#[test]
fn the_shipped_tally_examples_are_what_plugin_new_writes() {
    let root = repo_root();
    for lang in LANGS {
        let request = request(
            "tally",
            lang,
            &root.join("plugins"),
            &root.join("sources.d"),
        );
        let (files, _) = scaffold::render(&request).unwrap();
        for (path, text) in files {
            let shipped = root.join("plugins").join(&path);
            let on_disk = std::fs::read_to_string(&shipped)
                .unwrap_or_else(|err| panic!("{}: {err}", shipped.display()));
            assert!(
                on_disk == text,
                "{} differs from what `plugin new tally --lang {lang:?}` writes: change the \
                 template under engine/src/scaffold/templates/ and write the example again",
                shipped.display()
            );
        }
    }
}

/// The component of `tally` in `lang`, as plugins/build.sh built it.
fn built(lang: Lang) -> PathBuf {
    plugin_component(match lang {
        Lang::Rust => "tally",
        Lang::Python => "tally_py",
        Lang::Js => "tally_js",
    })
}

#[tokio::test]
async fn the_source_file_it_writes_serves_once_pointed_at_the_api() {
    let api = TallyStandIn::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let (plugins, sources) = (work.path().join("plugins"), work.path().join("sources.d"));
    let written = scaffold::write(&request("my-api", Lang::Rust, &plugins, &sources)).unwrap();
    assert_eq!(written.key_var, "MY_API_API_KEY");
    let file = sources.join("my-api.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    // The component it names is the one the build would write; here, the built example.
    assert_eq!(
        written.component,
        plugins.join("target/wasm32-wasip2/release/my_api.wasm")
    );
    let relative = "component: ../plugins/target/wasm32-wasip2/release/my_api.wasm";
    assert!(text.contains(relative), "{text}");
    let text = text
        .replace(
            relative,
            &format!("component: {}", built(Lang::Rust).display()),
        )
        .replace("https://api.example.com", api.url());
    // Without the key the source is off; with it, on.
    let spec = load::load_source(&file, &text, &|_| None).unwrap();
    assert!(!spec.enabled, "enabled without its key");
    std::fs::write(&file, &text).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        (
            "MY_API_API_KEY".to_owned(),
            tally_standin::API_KEY.to_owned(),
        ),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let hub = TestHub::start(&sources, &env, HubSettings::default())
        .await
        .unwrap();
    let (status, body) = get(&hub, "/api/metrics?days=10&source=my-api").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "my-api")["status"], "ok", "{body}");
    let today = Utc::now().date_naive();
    let (users, events, _) = tally_standin::expected(today - Days::new(10), today);
    assert_eq!(body["data"]["summary"]["total_users"], users, "{body}");
    assert_eq!(body["data"]["summary"]["total_events"], events, "{body}");
    hub.stop().await.unwrap();
}

#[test]
fn it_never_overwrites_and_writes_nothing_when_it_refuses() {
    let work = tempfile::tempdir().unwrap();
    let (plugins, sources) = (work.path().join("plugins"), work.path().join("sources.d"));
    for lang in LANGS {
        let name = format!("{}-api", format!("{lang:?}").to_lowercase());
        let written = scaffold::write(&request(&name, lang, &plugins, &sources)).unwrap();
        assert!(written.files.iter().all(|file| file.is_file()));
        let before = std::fs::read_to_string(&written.files[0]).unwrap();
        match scaffold::write(&request(&name, lang, &plugins, &sources)) {
            Err(ScaffoldError::Exists(path)) => {
                assert!(path.starts_with(&plugins), "{}", path.display())
            }
            other => panic!("{lang:?}: {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&written.files[0]).unwrap(), before);
    }
    // Only the source file is there: the plugin's directory is not created either.
    std::fs::write(sources.join("taken.yaml"), "id: taken\n").unwrap();
    let refused = scaffold::write(&request("taken", Lang::Python, &plugins, &sources));
    assert!(
        matches!(&refused, Err(ScaffoldError::Exists(path)) if path.ends_with("taken.yaml")),
        "{refused:?}"
    );
    assert!(!plugins.join("python/taken").exists());
    assert!(matches!(
        scaffold::write(&request("My_Api", Lang::Js, &plugins, &sources)),
        Err(ScaffoldError::Name(_))
    ));
}
