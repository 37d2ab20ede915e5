//! Rows as a source returned them -> records of the unified model: column renames, type
//! coercion, date normalisation, NULL defaults, and extra columns passed through.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Number, Value};

use crate::model::{Dataset, FieldType, Record};

/// Where one unified field comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    /// The source column (or record key).
    pub column: String,
    /// Used when the column is NULL or absent.
    pub default: Option<Value>,
}

/// A value that could not be coerced into its unified field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{dataset}: column `{column}` holds {value}, which is not {expected}")]
pub struct MappingError {
    pub dataset: Dataset,
    pub column: String,
    /// The offending value, shortened so a huge cell cannot flood a report.
    pub value: String,
    pub expected: &'static str,
}

/// Maps every row of `dataset`; the first row that cannot be coerced fails the dataset.
pub fn map_rows(
    dataset: Dataset,
    mappings: &BTreeMap<String, FieldMapping>,
    rows: Vec<Record>,
) -> Result<Vec<Record>, MappingError> {
    rows.into_iter()
        .map(|row| map_row(dataset, mappings, row))
        .collect()
}

fn map_row(
    dataset: Dataset,
    mappings: &BTreeMap<String, FieldMapping>,
    mut row: Record,
) -> Result<Record, MappingError> {
    let mut record = Record::new();
    for &(field, field_type) in dataset.fields() {
        let mapping = mappings.get(field);
        let column = mapping.map_or(field, |m| m.column.as_str());
        let raw = row.remove(column).unwrap_or(Value::Null);
        let raw = match (raw, mapping.and_then(|m| m.default.clone())) {
            (Value::Null, Some(default)) => default,
            (raw, _) => raw,
        };
        let fail = |expected| MappingError {
            dataset,
            column: column.to_owned(),
            value: shorten(&raw),
            expected,
        };
        let value = match field_type {
            // The original dashboard read counts as `row.x || 0`: a NULL count is zero.
            FieldType::Count if raw.is_null() => Value::from(0),
            FieldType::Count => coerce_count(&raw).ok_or_else(|| fail("a non-negative number"))?,
            FieldType::Date => coerce_date(&raw)
                // NaiveDate's Display is YYYY-MM-DD, without strftime's per-call parsing.
                .map(|date| Value::from(date.to_string()))
                .ok_or_else(|| fail("a date (YYYYMMDD, YYYY-MM-DD or a timestamp)"))?,
            FieldType::Label => coerce_label(&raw).ok_or_else(|| fail("a non-empty name"))?,
        };
        record.insert(field.to_owned(), value);
    }
    // Whatever else the row holds is an extra field of the unified record.
    record.extend(row);
    Ok(record)
}

fn shorten(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Counts: integers, integral or fractional floats, numeric strings and booleans.
/// Negative values are refused: a negative count is a broken source, not data.
fn coerce_count(raw: &Value) -> Option<Value> {
    let number = match raw {
        Value::Number(number) => number.clone(),
        Value::Bool(flag) => Number::from(u8::from(*flag)),
        Value::String(text) => parse_number(text.trim())?,
        _ => return None,
    };
    if let Some(integer) = number.as_i64() {
        return (integer >= 0).then(|| Value::from(integer));
    }
    let float = number.as_f64()?;
    if !float.is_finite() || float < 0.0 {
        return None;
    }
    // Whole floats (SQL SUM over NUMERIC, JSON 12.0) read as integers.
    if float.fract() == 0.0 && float < 9.0e15 {
        return Some(Value::from(float as i64));
    }
    Number::from_f64(float).map(Value::Number)
}

fn parse_number(text: &str) -> Option<Number> {
    if let Ok(integer) = text.parse::<i64>() {
        return Some(Number::from(integer));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Dates: `YYYYMMDD` (GA4's event_date, as text or integer), `YYYY-MM-DD`, and timestamps
/// (RFC 3339 ones are converted to UTC first).
pub fn coerce_date(raw: &Value) -> Option<NaiveDate> {
    if let Value::String(text) = raw {
        if let Some(date) = utc_day_prefix(text) {
            return Some(date);
        }
    }
    let text = match raw {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.as_u64()?.to_string(),
        _ => return None,
    };
    if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(&text, "%Y%m%d").ok();
    }
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Some(date);
    }
    if let Ok(stamp) = DateTime::parse_from_rfc3339(&text) {
        return Some(stamp.naive_utc().date());
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
        .map(|stamp| stamp.date())
}

/// The day of `YYYY-MM-DD`, alone or starting a UTC timestamp (`...T12:00:00Z`,
/// `...T12:00:00.5+00:00`, `... 12:00:00`), read without a format parser: this runs for
/// every record a REST source groups by day. Anything else (another offset, which can
/// move the day) is left to the general parsers.
fn utc_day_prefix(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let utc = match bytes.get(10) {
        None => true,
        Some(b'T' | b' ') => {
            let time = &text[11..];
            time.ends_with('Z') || time.ends_with("+00:00") || !time.contains(['+', '-', 'Z'])
        }
        Some(_) => false,
    };
    if !utc {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| {
        bytes[range].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?;
    // The rest must still be a time: check it as the general parser would.
    if bytes.len() > 10 {
        let checked = DateTime::parse_from_rfc3339(text).is_ok()
            || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok());
        return checked.then_some(date);
    }
    Some(date)
}

fn coerce_label(raw: &Value) -> Option<Value> {
    match raw {
        Value::String(text) if !text.trim().is_empty() => Some(Value::from(text.as_str())),
        Value::Number(number) => Some(Value::from(number.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Record {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn coerces_counts_from_every_supported_shape() {
        for (raw, expected) in [
            (json!(5), json!(5)),
            (json!(5.0), json!(5)),
            (json!(2.5), json!(2.5)),
            (json!("42"), json!(42)),
            (json!(" 7.0 "), json!(7)),
            (json!(true), json!(1)),
        ] {
            assert_eq!(coerce_count(&raw), Some(expected), "{raw}");
        }
        for bad in [json!(-1), json!("12abc"), json!([1]), json!(-0.5)] {
            assert_eq!(coerce_count(&bad), None, "{bad}");
        }
    }

    #[test]
    fn normalises_dates() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 10);
        for raw in [
            json!("20260210"),
            json!(20260210),
            json!("2026-02-10"),
            json!("2026-02-10T23:59:00Z"),
            json!("2026-02-11T01:00:00+02:00"),
            json!("2026-02-10 08:00:00"),
        ] {
            assert_eq!(coerce_date(&raw), day, "{raw}");
        }
        assert_eq!(coerce_date(&json!("20261340")), None);
        assert_eq!(coerce_date(&json!("yesterday")), None);
        // The fast path for UTC stamps agrees with the general parsers, and leaves
        // anything that is not a whole timestamp to them.
        for raw in [
            "2026-02-10T23:59:59.123Z",
            "2026-02-10T23:59:59+00:00",
            "2026-02-10T23:30:00-05:00",
        ] {
            let general = DateTime::parse_from_rfc3339(raw)
                .unwrap()
                .naive_utc()
                .date();
            assert_eq!(coerce_date(&json!(raw)), Some(general), "{raw}");
        }
        for bad in ["2026-02-10Tnonsense", "2026-02-30", "2026-02-10T25:00:00Z"] {
            assert_eq!(coerce_date(&json!(bad)), None, "{bad}");
        }
    }

    #[test]
    fn maps_columns_applies_defaults_and_passes_extras_through() {
        let mappings = BTreeMap::from([
            (
                "date".to_owned(),
                FieldMapping {
                    column: "event_date".into(),
                    default: None,
                },
            ),
            (
                "users".to_owned(),
                FieldMapping {
                    column: "u".into(),
                    default: Some(json!(3)),
                },
            ),
        ]);
        let rows = vec![row(
            json!({"event_date": "20260210", "u": null, "events": "9", "revenue": 1.5}),
        )];
        let mapped = map_rows(Dataset::Daily, &mappings, rows).unwrap();
        assert_eq!(
            Value::Object(mapped[0].clone()),
            json!({"date": "2026-02-10", "users": 3, "events": 9, "revenue": 1.5})
        );
    }

    #[test]
    fn a_row_that_cannot_be_coerced_names_column_and_value() {
        let rows = vec![row(json!({"feature": "Buybox", "views": "lots"}))];
        let err = map_rows(Dataset::Features, &BTreeMap::new(), rows).unwrap_err();
        assert_eq!(err.column, "views");
        assert!(err.to_string().contains("\"lots\""), "{err}");
        let rows = vec![row(json!({"feature": null, "views": 1}))];
        assert_eq!(
            map_rows(Dataset::Features, &BTreeMap::new(), rows)
                .unwrap_err()
                .column,
            "feature"
        );
    }
}
