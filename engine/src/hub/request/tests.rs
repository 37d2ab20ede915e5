//! Every branch of request parsing, against declarations loaded from YAML text.

use std::path::Path;

use chrono::NaiveDate;

use super::*;
use crate::load::load_source;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// A sqlite source with the given `enabled` and `filters:` block.
fn source(id: &str, enabled: bool, filters: &str) -> SourceSpec {
    let text = format!(
        "id: {id}\nname: {id}\nkind: sql\nenabled: {enabled}\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nfilters:\n{filters}\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n"
    );
    load_source(Path::new("t.yaml"), &text, &|_| None).unwrap_or_else(|e| panic!("{id}: {e:?}"))
}

fn sources() -> Vec<SourceSpec> {
    vec![
        source("a", true, "  client: { type: string, max_length: 5 }\n  level: { type: integer, minimum: 1, maximum: 3 }"),
        source("b", true, "  client: { type: enum, values: [acme, beta] }\n  day: { type: date }"),
        source("off", false, "  {}"),
    ]
}

fn parse_with(query: &str) -> Result<MetricsRequest, RequestError> {
    let declared = sources();
    let refs: Vec<&SourceSpec> = declared.iter().collect();
    parse(query, today(), &refs)
}

fn code(query: &str) -> &'static str {
    parse_with(query).expect_err(query).code
}

#[test]
fn no_parameters_mean_the_last_thirty_days_of_every_enabled_source() {
    let request = parse_with("").unwrap();
    assert_eq!(request.params, QueryParams::last_days(30, today()));
    assert_eq!(request.sources, ["a", "b"]);
}

#[test]
fn days_are_whole_numbers_from_one_to_the_limit() {
    let request = parse_with("days=7").unwrap();
    assert_eq!(request.params.start_date, date("2026-11-18"));
    assert_eq!(request.params.end_date, today());
    assert_eq!(parse_with("days=%207%20").unwrap().params.days, 7);
    assert_eq!(parse_with("days=3650").unwrap().params.days, 3650);
    for bad_days in [
        "days=0",
        "days=3651",
        "days=-1",
        "days=seven",
        "days=1.5",
        "days=",
    ] {
        assert_eq!(code(bad_days), "invalid_days", "{bad_days}");
    }
}

#[test]
fn explicit_windows_are_checked() {
    let request = parse_with("start_date=2026-11-01&end_date=2026-11-15").unwrap();
    assert_eq!(
        request.params,
        QueryParams::between(date("2026-11-01"), date("2026-11-15"))
    );
    assert_eq!(
        parse_with("start_date=2026-11-15&end_date=2026-11-15")
            .unwrap()
            .params
            .days,
        0
    );
    assert_eq!(
        code("start_date=2026-11-16&end_date=2026-11-15"),
        "invalid_window"
    );
    assert_eq!(
        code("start_date=2016-11-15&end_date=2026-11-15"),
        "invalid_window"
    );
    assert_eq!(code("start_date=2026-11-01"), "invalid_window");
    assert_eq!(code("end_date=2026-11-01"), "invalid_window");
    assert_eq!(code("days=7&start_date=2026-11-01"), "invalid_window");
    assert_eq!(code("days=7&end_date=2026-11-01"), "invalid_window");
    assert_eq!(
        code("start_date=20261101&end_date=2026-11-15"),
        "invalid_date"
    );
    assert_eq!(
        code("start_date=2026-11-01&end_date=2026-02-30"),
        "invalid_date"
    );
    let message = parse_with("start_date=x&end_date=2026-11-15")
        .unwrap_err()
        .message;
    assert_eq!(message, "start_date must be a date written YYYY-MM-DD");
}

#[test]
fn parameters_and_filters_may_be_given_once() {
    assert_eq!(code("days=7&days=7"), "duplicate_parameter");
    assert_eq!(code("start_date=a&start_date=b"), "duplicate_parameter");
    assert_eq!(code("end_date=a&end_date=b"), "duplicate_parameter");
    let err = parse_with("client=acme&client=beta").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("duplicate_parameter", "`client` is given more than once")
    );
}

#[test]
fn sources_repeat_or_come_comma_separated() {
    assert_eq!(parse_with("source=b").unwrap().sources, ["b"]);
    assert_eq!(parse_with("source=b,a").unwrap().sources, ["a", "b"]);
    assert_eq!(parse_with("source=b&source=a").unwrap().sources, ["a", "b"]);
    assert_eq!(parse_with("source=%20a%20,,").unwrap().sources, ["a"]);
    // Only empty names: as if none was given.
    assert_eq!(parse_with("source=,").unwrap().sources, ["a", "b"]);
    assert_eq!(code("source=nope"), "unknown_source");
    assert_eq!(code("source=off"), "source_disabled");
}

#[test]
fn filters_are_typed_by_the_sources_that_declare_them() {
    let request = parse_with("source=a&level=2").unwrap();
    assert_eq!(request.params.filters["level"], FilterValue::Integer(2));
    assert_eq!(code("source=a&level=4"), "invalid_filter");
    assert_eq!(code("source=a&level=two"), "invalid_filter");
    assert_eq!(code("source=a&day=2026-11-01"), "unknown_filter");
    let request = parse_with("day=2026-11-01").unwrap();
    assert_eq!(
        request.params.filters["day"],
        FilterValue::Date(date("2026-11-01"))
    );
    assert_eq!(code("day=yesterday"), "invalid_filter");
    assert_eq!(code("region=eu"), "unknown_filter");
}

#[test]
fn a_filter_declared_twice_must_suit_both_declarations() {
    // a: a string of at most 5 characters; b: acme or beta.
    assert_eq!(
        parse_with("client=acme").unwrap().params.filters["client"],
        FilterValue::Text("acme".into())
    );
    let err = parse_with("client=gamma").unwrap_err();
    assert_eq!(err.code, "invalid_filter");
    assert_eq!(err.message, "filter `client` must be one of: acme, beta");
    let err = parse_with("client=acmeacme").unwrap_err();
    assert_eq!(err.message, "filter `client` must be at most 5 characters");
    // With only `a` selected, its own rule is the only one.
    assert!(parse_with("source=a&client=gamma").is_ok());
}

#[test]
fn control_characters_and_encoded_values_are_read_as_text() {
    assert_eq!(
        parse_with("source=a&client=a%20b").unwrap().params.filters["client"],
        FilterValue::Text("a b".into())
    );
    assert_eq!(code("source=a&client=a%0Ab"), "invalid_filter");
}
