//! The BigQuery stand-in's SQL worker on its own: its rewrites (wildcard tables and the
//! `_TABLE_SUFFIX` pruning behind the bytes-billed estimate, `UNNEST` of structs,
//! `CURRENT_DATE()`), typed parameters and BigQuery-shaped errors, tested by
//! `tests/standins/test_bigquery_sql.py` with Python's unittest.

use std::process::Command;

use metrics_hub_tests::bigquery_sql::REQUIREMENTS;
use metrics_hub_tests::repo_root;

#[test]
fn the_sql_workers_rewrites_pass_their_unit_tests() {
    let output = Command::new(std::env::var("PYTHON").unwrap_or("python3".to_owned()))
        .args(["-m", "unittest", "-v", "test_bigquery_sql"])
        .current_dir(repo_root().join("tests/standins"))
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 ({err}): {REQUIREMENTS}"));
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}\n({REQUIREMENTS})");
    assert!(report.contains("OK"), "{report}");
}
