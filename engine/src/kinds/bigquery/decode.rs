//! BigQuery result cells -> records: cells arrive as strings (or nested `{f: [...]}` and
//! `[{v: ...}]` values) and are decoded by the result schema into numbers, booleans,
//! timestamps and nested JSON, so [`crate::mapping::map_rows`] sees ordinary values.

use chrono::{DateTime, SecondsFormat};
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_row::TableRow;
use serde_json::{Map, Value};

use crate::kinds::SourceError;
use crate::model::{Dataset, Record};

/// Decodes result rows by their schema into records keyed by column name.
pub(super) fn decode_rows(
    dataset: Dataset,
    fields: &[TableFieldSchema],
    rows: Vec<TableRow>,
) -> Result<Vec<Record>, SourceError> {
    rows.iter()
        .map(|row| {
            decode_record(fields, row_cells(row), "")
                .map_err(|problem| SourceError::BadResponse(format!("`{dataset}`: {problem}")))
        })
        .collect()
}

fn row_cells(row: &TableRow) -> Vec<Option<&Value>> {
    row.columns
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|cell| cell.value.as_ref())
        .collect()
}

/// One row or RECORD value: `cells[i]` is the `v` of field `i`.
fn decode_record(
    fields: &[TableFieldSchema],
    cells: Vec<Option<&Value>>,
    prefix: &str,
) -> Result<Map<String, Value>, String> {
    if cells.len() != fields.len() {
        return Err(format!(
            "a row{} has {} cells for {} schema fields",
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" of `{}`", prefix.trim_end_matches('.'))
            },
            cells.len(),
            fields.len()
        ));
    }
    let mut record = Map::new();
    for (field, cell) in fields.iter().zip(cells) {
        let path = format!("{prefix}{}", field.name);
        record.insert(field.name.clone(), decode_field(field, cell, &path)?);
    }
    Ok(record)
}

/// One cell: NULL, a REPEATED list of `{"v": ...}`, or a single value.
fn decode_field(
    field: &TableFieldSchema,
    cell: Option<&Value>,
    path: &str,
) -> Result<Value, String> {
    let value = match cell {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(value) => value,
    };
    if field.mode.as_deref() == Some("REPEATED") {
        let Value::Array(items) = value else {
            return Err(format!(
                "column `{path}` is REPEATED but its cell is not a list"
            ));
        };
        return items
            .iter()
            .enumerate()
            .map(|(index, item)| match item.get("v") {
                None | Some(Value::Null) => Ok(Value::Null),
                Some(inner) => decode_value(field, inner, &format!("{path}[{index}]")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    decode_value(field, value, path)
}

/// One non-NULL value of a field's type. Scalars arrive as JSON strings.
fn decode_value(field: &TableFieldSchema, value: &Value, path: &str) -> Result<Value, String> {
    let wrong = |expected: &str| format!("column `{path}` does not hold a valid {expected} cell");
    if matches!(field.r#type, FieldType::Record | FieldType::Struct) {
        let cells = value
            .get("f")
            .and_then(Value::as_array)
            .ok_or_else(|| wrong("RECORD"))?;
        let nested = field.fields.as_deref().unwrap_or_default();
        let cells = cells.iter().map(|cell| cell.get("v")).collect();
        return decode_record(nested, cells, &format!("{path}.")).map(Value::Object);
    }
    let text = value
        .as_str()
        .ok_or_else(|| wrong(type_name(&field.r#type)))?;
    let decoded = match field.r#type {
        FieldType::Integer | FieldType::Int64 => {
            Value::from(text.parse::<i64>().map_err(|_| wrong("INT64"))?)
        }
        FieldType::Float | FieldType::Float64 => {
            let number: f64 = text.parse().map_err(|_| wrong("FLOAT64"))?;
            // NaN and infinities have no JSON number: keep BigQuery's spelling.
            serde_json::Number::from_f64(number).map_or_else(|| Value::from(text), Value::Number)
        }
        FieldType::Numeric | FieldType::Bignumeric => {
            numeric(text).ok_or_else(|| wrong("NUMERIC"))?
        }
        FieldType::Boolean | FieldType::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("BOOL")),
        },
        FieldType::Timestamp => timestamp(text).ok_or_else(|| wrong("TIMESTAMP"))?,
        FieldType::Json => serde_json::from_str(text).unwrap_or_else(|_| Value::from(text)),
        // DATE, DATETIME and TIME are already ISO text; STRING, BYTES (base64), GEOGRAPHY
        // (WKT) and INTERVAL stay text.
        _ => Value::from(text),
    };
    Ok(decoded)
}

fn type_name(kind: &FieldType) -> &'static str {
    match kind {
        FieldType::Integer | FieldType::Int64 => "INT64",
        FieldType::Float | FieldType::Float64 => "FLOAT64",
        FieldType::Numeric => "NUMERIC",
        FieldType::Bignumeric => "BIGNUMERIC",
        FieldType::Boolean | FieldType::Bool => "BOOL",
        FieldType::Timestamp => "TIMESTAMP",
        FieldType::Date => "DATE",
        FieldType::Datetime => "DATETIME",
        FieldType::Time => "TIME",
        FieldType::Json => "JSON",
        FieldType::Record | FieldType::Struct => "RECORD",
        _ => "STRING",
    }
}

/// NUMERIC and BIGNUMERIC text: whole values that fit become integers, others floats.
fn numeric(text: &str) -> Option<Value> {
    if let Ok(whole) = text.parse::<i64>() {
        return Some(Value::from(whole));
    }
    let number: f64 = text.parse().ok()?;
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        return Some(Value::from(number as i64));
    }
    serde_json::Number::from_f64(number).map(Value::Number)
}

/// TIMESTAMP cells: float seconds since the epoch (`"1.7040672E9"`, the default format)
/// or, with `useInt64Timestamp`, whole microseconds. Written as RFC 3339 in UTC.
fn timestamp(text: &str) -> Option<Value> {
    let micros = if text.contains(['.', 'E', 'e']) {
        let seconds: f64 = text.parse().ok()?;
        if !seconds.is_finite() {
            return None;
        }
        (seconds * 1e6).round() as i64
    } else {
        // An integer: seconds in the float format's integral spelling, unless it is far
        // too large to be seconds (after the year 5138), then it is microseconds.
        let whole: i64 = text.parse().ok()?;
        if whole.abs() < 100_000_000_000 {
            whole.checked_mul(1_000_000)?
        } else {
            whole
        }
    };
    let stamp = DateTime::from_timestamp_micros(micros)?;
    Some(Value::from(
        stamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcp_bigquery_client::model::table_schema::TableSchema;
    use serde_json::json;

    fn schema(value: Value) -> Vec<TableFieldSchema> {
        serde_json::from_value::<TableSchema>(value)
            .unwrap()
            .fields
            .unwrap()
    }

    fn rows(value: Value) -> Vec<TableRow> {
        serde_json::from_value(value).unwrap()
    }
    #[test]
    fn scalar_cells_decode_by_type() {
        let fields = schema(json!({"fields": [
            {"name": "n", "type": "INTEGER"}, {"name": "i", "type": "INT64"},
            {"name": "f", "type": "FLOAT"}, {"name": "nan", "type": "FLOAT64"},
            {"name": "num", "type": "NUMERIC"}, {"name": "big", "type": "BIGNUMERIC"},
            {"name": "b", "type": "BOOLEAN"}, {"name": "d", "type": "DATE"},
            {"name": "t", "type": "TIMESTAMP"}, {"name": "t2", "type": "TIMESTAMP"},
            {"name": "s", "type": "STRING"}, {"name": "j", "type": "JSON"},
            {"name": "null", "type": "STRING"}
        ]}));
        let decoded = decode_rows(
            Dataset::Daily,
            &fields,
            rows(json!([{"f": [
                {"v": "5"}, {"v": "-12"}, {"v": "1.5"}, {"v": "NaN"}, {"v": "12.50"},
                {"v": "123456789012"}, {"v": "true"}, {"v": "2024-01-01"},
                {"v": "1.7040672E9"}, {"v": "1704067200.123456"}, {"v": "x'; --"},
                {"v": "{\"a\":[1,2]}"}, {"v": null}
            ]}])),
        )
        .unwrap();
        assert_eq!(
            Value::Object(decoded[0].clone()),
            json!({"n": 5, "i": -12, "f": 1.5, "nan": "NaN", "num": 12.5, "big": 123456789012i64,
                   "b": true, "d": "2024-01-01", "t": "2024-01-01T00:00:00Z",
                   "t2": "2024-01-01T00:00:00.123456Z", "s": "x'; --", "j": {"a": [1, 2]},
                   "null": null})
        );
    }

    #[test]
    fn nested_records_and_repeated_fields_become_json() {
        let fields = schema(json!({"fields": [
            {"name": "event_name", "type": "STRING"},
            {"name": "event_params", "type": "RECORD", "mode": "REPEATED", "fields": [
                {"name": "key", "type": "STRING"},
                {"name": "value", "type": "RECORD", "fields": [
                    {"name": "string_value", "type": "STRING"},
                    {"name": "int_value", "type": "INTEGER"}
                ]}
            ]},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
            {"name": "device", "type": "RECORD", "fields": [{"name": "category", "type": "STRING"}]}
        ]}));
        let decoded = decode_rows(
            Dataset::Features,
            &fields,
            rows(json!([{"f": [
                {"v": "page_view"},
                {"v": [
                    {"v": {"f": [{"v": "page_location"}, {"v": {"f": [{"v": "https://a.8020rei.com/home"}, {"v": null}]}}]}},
                    {"v": {"f": [{"v": "ga_session_id"}, {"v": {"f": [{"v": null}, {"v": "42"}]}}]}}
                ]},
                {"v": []},
                {"v": null}
            ]}])),
        )
        .unwrap();
        assert_eq!(
            Value::Object(decoded[0].clone()),
            json!({
                "event_name": "page_view",
                "event_params": [
                    {"key": "page_location", "value": {"string_value": "https://a.8020rei.com/home", "int_value": null}},
                    {"key": "ga_session_id", "value": {"string_value": null, "int_value": 42}}
                ],
                "tags": [],
                "device": null
            })
        );
    }

    #[test]
    fn malformed_cells_name_the_column_not_the_value() {
        let fields = schema(json!({"fields": [
            {"name": "r", "type": "RECORD", "fields": [{"name": "n", "type": "INTEGER"}]}
        ]}));
        let err = decode_rows(
            Dataset::Summary,
            &fields,
            rows(json!([{"f": [{"v": {"f": [{"v": "secret-ish"}]}}]}])),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`r.n`") && err.contains("INT64"), "{err}");
        assert!(!err.contains("secret-ish"), "{err}");
        let err = decode_rows(Dataset::Summary, &fields, rows(json!([{"f": []}])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 cells for 1"), "{err}");
    }

    #[test]
    fn timestamps_in_both_wire_formats() {
        assert_eq!(timestamp("1.56E9").unwrap(), json!("2019-06-08T13:20:00Z"));
        assert_eq!(
            timestamp("1704067200123456").unwrap(),
            json!("2024-01-01T00:00:00.123456Z")
        );
        assert_eq!(
            timestamp("1704067200").unwrap(),
            json!("2024-01-01T00:00:00Z")
        );
        assert!(timestamp("soon").is_none());
    }
}
