//! Keeps the JSON Schema and the typed config in agreement over the checked-in fixtures
//! and the shipped `sources.d/`: what one accepts the other accepts, what one rejects the
//! other rejects, and each error names the expected place.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::config::schema::SOURCE_SCHEMA;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Fixtures are checked with only `DATABASE_URL` set: defaults must carry the rest.
fn fixture_env(name: &str) -> Option<String> {
    (name == "DATABASE_URL").then(|| "postgres://metrics@localhost/metrics".to_owned())
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The interpolated document of a fixture, for checking schema and types separately.
fn document(file: &Path) -> Value {
    let text = std::fs::read_to_string(file).unwrap();
    let mut document: Value = serde_yaml::from_str(&text).unwrap();
    interpolate::interpolate_document(&mut document, &fixture_env).unwrap();
    document
}

fn expected(file: &Path) -> String {
    std::fs::read_to_string(file.with_extension("expected"))
        .unwrap_or_else(|e| panic!("{}: missing .expected ({e})", file.display()))
        .trim()
        .to_owned()
}

fn report(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_schema_is_valid_2020_12() {
    let schema: Value = serde_json::from_str(SOURCE_SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(jsonschema::draft202012::meta::is_valid(&schema));
}

#[test]
fn valid_fixtures_and_shipped_sources_pass_schema_and_types() {
    let mut files = yaml_files(&root().join("tests/fixtures/config/valid"));
    files.extend(yaml_files(&root().join("sources.d")));
    for file in files {
        let document = document(&file);
        assert_eq!(
            schema_problems(&document),
            vec![],
            "schema rejects {}",
            file.display()
        );
        if let Err(problems) = typed_problems(&file, &document, Vec::new()) {
            panic!("types reject {}: {problems:?}", file.display());
        }
        let text = std::fs::read_to_string(&file).unwrap();
        load_source(&file, &text, &fixture_env).unwrap_or_else(|e| panic!("{}", report(&e)));
    }
}

#[test]
fn invalid_fixtures_are_rejected_by_schema_and_by_types() {
    for file in yaml_files(&root().join("tests/fixtures/config/invalid")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let errors =
            load_source(&file, &text, &fixture_env).expect_err(&file.display().to_string());
        let shown = report(&errors);
        assert!(
            shown.contains(&expected(&file)),
            "{}: expected {:?} in\n{shown}",
            file.display(),
            expected(&file)
        );
        assert!(
            shown.contains(&file.display().to_string()),
            "errors name the file: {shown}"
        );
        let mut document: Value = serde_yaml::from_str(&text).unwrap();
        if interpolate::interpolate_document(&mut document, &fixture_env).is_err() {
            continue;
        }
        assert!(
            !schema_problems(&document).is_empty(),
            "schema accepts {}",
            file.display()
        );
        assert!(
            typed_problems(&file, &document, Vec::new()).is_err(),
            "types accept {} although the schema rejects it",
            file.display()
        );
    }
}

#[test]
fn semantic_fixtures_pass_the_schema_but_fail_validation() {
    for file in yaml_files(&root().join("tests/fixtures/config/invalid-semantic")) {
        let document = document(&file);
        assert_eq!(schema_problems(&document), vec![], "{}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = report(
            &load_source(&file, &text, &fixture_env).expect_err(&file.display().to_string()),
        );
        assert!(
            shown.contains(&expected(&file)),
            "{}: expected {:?} in\n{shown}",
            file.display(),
            expected(&file)
        );
    }
}

#[test]
fn errors_carry_file_line_pointer_and_fix() {
    let text = "id: demo\nname: Demo\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  daily:\n    sql: |\n      SELECT {{ bind(filters.region) }}\n";
    let errors = load_source(Path::new("sources.d/demo.yaml"), text, &no_env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("sources.d/demo.yaml:9: at /queries/daily/sql: "),
        "{shown}"
    );
    assert!(shown.contains("add `region` under `filters:`"), "{shown}");
}

#[test]
fn unset_variables_and_secrets_in_messages() {
    let text = "id: pg\nname: PG\nkind: sql\nconnection:\n  driver: postgres\n  url: ${PG_URL}\nqueries:\n  daily:\n    sql: SELECT 1\n";
    let errors = load_source(Path::new("pg.yaml"), text, &no_env).unwrap_err();
    assert_eq!(errors[0].path, "/connection/url");
    assert_eq!(errors[0].line, Some(6));
    assert!(errors[0].message.contains("PG_URL is not set"));

    // A secret never shows up in an error, even when it is the error; a plain value does,
    // so that the admin can see what is wrong with it.
    let text = "id: pg\nname: PG\nkind: sql\nconnection:\n  driver: ${secret:DRIVER}\n  url: x\nqueries:\n  daily:\n    sql: SELECT 1\n";
    let env = |name: &str| (name == "DRIVER").then(|| "hunter2-secret".to_owned());
    let shown = report(&load_source(Path::new("pg.yaml"), text, &env).unwrap_err());
    assert!(shown.contains("/connection/driver"), "{shown}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    let plain = text.replace("${secret:DRIVER}", "${DRIVER}");
    let shown = report(&load_source(Path::new("pg.yaml"), &plain, &env).unwrap_err());
    assert!(
        shown.contains("\"hunter2-secret\" is not one of"),
        "{shown}"
    );
}

#[test]
fn every_error_of_every_file_is_collected_and_good_files_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = "id: good\nname: Good\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n";
    std::fs::write(dir.path().join("a-good.yaml"), good).unwrap();
    std::fs::write(
        dir.path().join("b-dup.yaml"),
        good.replace("Good", "Duplicate"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c-bad.yaml"),
        "id: bad\nname: Bad\nkind: sql\nconnection:\n  driver: sqlite\n  url: x\ntimeout: soon\nmappings:\n  daily:\n    visits: v\nqueries:\n  daily:\n    sql: SELECT {{ days }}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("d-broken.yaml"), "id: [unclosed\n").unwrap();
    let loaded = load_dir_with(dir.path(), &no_env).unwrap();
    assert_eq!(
        loaded
            .sources
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec!["good"]
    );
    assert_eq!(loaded.broken.len(), 3);
    let dup = report(&loaded.broken[&dir.path().join("b-dup.yaml")]);
    assert!(
        dup.contains("already used by") && dup.contains("a-good.yaml"),
        "{dup}"
    );
    let bad = &loaded.broken[&dir.path().join("c-bad.yaml")];
    let paths: Vec<&str> = bad.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"/timeout")
            && paths.iter().any(|p| p.starts_with("/mappings/daily"))
            && paths.contains(&"/queries/daily/sql"),
        "{bad:?}"
    );
    assert!(loaded.broken[&dir.path().join("d-broken.yaml")][0]
        .line
        .is_some());
}

#[test]
fn debug_output_of_a_source_never_shows_environment_values() {
    let text = "id: pg\nname: PG\nkind: sql\nconnection:\n  driver: postgres\n  url: postgres://app:${PG_PASSWORD}@db/app\nqueries:\n  daily:\n    sql: SELECT 1\n";
    let env = |name: &str| (name == "PG_PASSWORD").then(|| "hunter2-secret".to_owned());
    let spec = load_source(Path::new("pg.yaml"), text, &env).unwrap();
    let shown = format!("{spec:?} {:?}", spec.kind);
    assert!(
        shown.contains("pg") && !shown.contains("hunter2-secret"),
        "{shown}"
    );
}

#[test]
fn files_given_as_text_are_never_read_from_disk() {
    // Neither path exists: lines still come from the texts given.
    let good = "id: twin\nname: Twin\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n";
    let loaded = load_texts(
        vec![
            (PathBuf::from("/nowhere/a.yaml"), Ok(good.to_owned())),
            (PathBuf::from("/nowhere/b.yaml"), Ok(good.to_owned())),
        ],
        &no_env,
    );
    assert_eq!(loaded.sources.len(), 1);
    let errors = &loaded.broken[Path::new("/nowhere/b.yaml")];
    assert_eq!((errors[0].path.as_str(), errors[0].line), ("/id", Some(1)));
}

#[test]
fn merge_disagreements_keep_paths_and_names_as_written() {
    let source = |id: &str, policy: &str| {
        format!("id: {id}\nname: {id}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\nmerge:\n  summary:\n    Active_Clients: {policy}\n")
    };
    let loaded = load_texts(
        vec![
            (PathBuf::from("Sources/A.yaml"), Ok(source("a", "sum"))),
            (PathBuf::from("Sources/B.yaml"), Ok(source("b", "max"))),
        ],
        &no_env,
    );
    let shown = report(&loaded.broken[Path::new("Sources/B.yaml")]);
    assert_eq!(
        shown,
        "Sources/B.yaml:12: at /merge/summary/Active_Clients: merge policy max disagrees with sum in Sources/A.yaml: sources must agree on how summary.Active_Clients combines"
    );
    // The policies of the sources that loaded are worked out once, here.
    assert_eq!(
        loaded
            .policies
            .get(&(Dataset::Summary, "Active_Clients".to_owned())),
        Some(&MergePolicy::Sum)
    );
}
