//! Request filters a source declares (`filters:`): the typed declaration, how it checks a
//! request value, and a sample value for trial renders of templates at load time.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::names::FILTER_NAME;
use super::raw::FilterConfig;
use super::Problems;
use crate::model::FilterValue;

/// Longest value a string filter takes unless its declaration says otherwise.
const DEFAULT_STRING_FILTER_LENGTH: usize = 256;

/// A declared filter, ready to check request values.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterSpec {
    Text {
        max_length: usize,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Date,
    Enum {
        values: Vec<String>,
    },
}

impl FilterSpec {
    /// Checks a request value against the declaration; the error says what is accepted.
    pub fn parse(&self, raw: &str) -> Result<FilterValue, String> {
        match self {
            FilterSpec::Text { max_length } => {
                if raw.chars().count() > *max_length {
                    Err(format!("must be at most {max_length} characters"))
                } else if raw.chars().any(char::is_control) {
                    Err("must not contain control characters".to_owned())
                } else {
                    Ok(FilterValue::Text(raw.to_owned()))
                }
            }
            FilterSpec::Integer { minimum, maximum } => {
                let number: i64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| "must be a whole number".to_owned())?;
                if minimum.is_some_and(|min| number < min)
                    || maximum.is_some_and(|max| number > max)
                {
                    let min = minimum.map_or("any".to_owned(), |m| m.to_string());
                    let max = maximum.map_or("any".to_owned(), |m| m.to_string());
                    return Err(format!("must be between {min} and {max}"));
                }
                Ok(FilterValue::Integer(number))
            }
            FilterSpec::Date => NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(FilterValue::Date)
                .map_err(|_| "must be a date written YYYY-MM-DD".to_owned()),
            FilterSpec::Enum { values } => {
                if values.iter().any(|v| v == raw) {
                    Ok(FilterValue::Text(raw.to_owned()))
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
        }
    }

    /// A value of the right type, used to trial-render templates at validation.
    pub fn sample(&self) -> FilterValue {
        match self {
            FilterSpec::Text { .. } => FilterValue::Text("sample".to_owned()),
            FilterSpec::Integer { minimum, .. } => FilterValue::Integer(minimum.unwrap_or(0)),
            FilterSpec::Date => FilterValue::Date(NaiveDate::MIN),
            FilterSpec::Enum { values } => {
                FilterValue::Text(values.first().cloned().unwrap_or_default())
            }
        }
    }

    /// The declaration's `type:` as written, for `/api/sources`.
    pub fn type_name(&self) -> &'static str {
        match self {
            FilterSpec::Text { .. } => "string",
            FilterSpec::Integer { .. } => "integer",
            FilterSpec::Date => "date",
            FilterSpec::Enum { .. } => "enum",
        }
    }
}

/// Checks the declared filters' names and shapes and types them.
pub fn compile(
    filters: BTreeMap<String, FilterConfig>,
    problems: &mut Problems,
) -> BTreeMap<String, FilterSpec> {
    let mut typed = BTreeMap::new();
    for (name, filter) in filters {
        let pointer = format!("/filters/{name}");
        if !FILTER_NAME.allows(&name) {
            problems.add(
                &pointer,
                format!("`{name}` is not a valid filter name: use lowercase letters, digits and _, starting with a letter"),
            );
        }
        let spec = match filter {
            FilterConfig::String { max_length, .. } => FilterSpec::Text {
                max_length: max_length.unwrap_or(DEFAULT_STRING_FILTER_LENGTH),
            },
            FilterConfig::Integer {
                minimum, maximum, ..
            } => {
                if let (Some(min), Some(max)) = (minimum, maximum) {
                    if min > max {
                        problems.add(&pointer, "minimum is greater than maximum");
                    }
                }
                FilterSpec::Integer { minimum, maximum }
            }
            FilterConfig::Date { .. } => FilterSpec::Date,
            FilterConfig::Enum { values, .. } => {
                if values.is_empty() {
                    problems.add(
                        &format!("{pointer}/values"),
                        "an enum filter needs at least one value",
                    );
                }
                FilterSpec::Enum { values }
            }
        };
        typed.insert(name, spec);
    }
    typed
}
