//! A metrics request's query string -> a validated [`MetricsRequest`]: the window, the
//! selected sources and the filters, each checked against what the sources declare. Pure
//! functions of the text, the day and the declarations, so every branch is unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::kinds::SourceSpec;
use crate::model::{FilterValue, QueryParams};

/// Limits of `days` and of an explicit window, in days.
pub const MAX_DAYS: u32 = 3650;
const DEFAULT_DAYS: u32 = 30;

/// A request the client got wrong: answered with 400 and this code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        message: message.into(),
    }
}

/// A validated metrics request.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRequest {
    pub params: QueryParams,
    /// Selected source ids, sorted; all enabled sources when the request named none.
    pub sources: Vec<String>,
}

/// The parameters as given, before they are checked. Also the query parameters of
/// `GET /api/metrics` in the API description, so the two are declared in one place.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Given {
    /// The window from this many days ago up to today (default 30); not with
    /// start_date and end_date.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    days: Option<String>,
    /// First day of an explicit window, with end_date.
    #[param(value_type = Option<NaiveDate>)]
    start_date: Option<String>,
    /// Last day of an explicit window (included), not before start_date.
    #[param(value_type = Option<NaiveDate>)]
    end_date: Option<String>,
    /// Only these sources (repeat it, or separate ids with commas); every enabled
    /// source when none is named. An unknown or disabled id is a 400.
    #[param(rename = "source", value_type = Option<Vec<String>>, style = Form, explode)]
    sources: BTreeSet<String>,
    /// Any filter a selected source declares (`GET /api/sources` lists them), e.g.
    /// `client=acme`. A source that does not declare a requested filter sits the request
    /// out; a filter no selected source declares, or a value of the wrong type, is a 400.
    #[param(value_type = Option<BTreeMap<String, String>>, style = Form, explode)]
    filters: BTreeMap<String, String>,
}

/// Validates the query string of a metrics request against the declared sources (all of
/// them, enabled or not, sorted by id); `today` ends relative windows.
pub fn parse(
    query: &str,
    today: NaiveDate,
    declared: &[&SourceSpec],
) -> Result<MetricsRequest, RequestError> {
    let given = read(query)?;
    let mut params = window(&given, today)?;
    let selected = select(&given.sources, declared)?;
    params.filters = filters(&selected, given.filters)?;
    Ok(MetricsRequest {
        params,
        sources: selected.iter().map(|spec| spec.id.clone()).collect(),
    })
}

/// Splits the query string; a parameter given twice is an error (`source` may repeat).
fn read(query: &str) -> Result<Given, RequestError> {
    let mut given = Given::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let twice = || {
            bad(
                "duplicate_parameter",
                format!("`{name}` is given more than once"),
            )
        };
        let slot = match name.as_ref() {
            "days" => &mut given.days,
            "start_date" => &mut given.start_date,
            "end_date" => &mut given.end_date,
            "source" => {
                let ids = value.split(',').map(str::trim).filter(|id| !id.is_empty());
                given.sources.extend(ids.map(str::to_owned));
                continue;
            }
            filter => {
                if given
                    .filters
                    .insert(filter.to_owned(), value.to_string())
                    .is_some()
                {
                    return Err(twice());
                }
                continue;
            }
        };
        if slot.replace(value.to_string()).is_some() {
            return Err(twice());
        }
    }
    Ok(given)
}

/// `days=N` (default 30) or `start_date` with `end_date`, never both.
fn window(given: &Given, today: NaiveDate) -> Result<QueryParams, RequestError> {
    match (&given.days, &given.start_date, &given.end_date) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(bad(
            "invalid_window",
            "give either days or start_date and end_date, not both",
        )),
        (None, None, None) => Ok(QueryParams::last_days(DEFAULT_DAYS, today)),
        (Some(days), None, None) => match days.trim().parse::<i64>() {
            Ok(n) if (1..=i64::from(MAX_DAYS)).contains(&n) => {
                Ok(QueryParams::last_days(n as u32, today))
            }
            _ => Err(bad(
                "invalid_days",
                format!("days must be a whole number from 1 to {MAX_DAYS}"),
            )),
        },
        (None, Some(start), Some(end)) => between(start, end),
        (None, _, _) => Err(bad("invalid_window", "give both start_date and end_date")),
    }
}

fn between(start: &str, end: &str) -> Result<QueryParams, RequestError> {
    let date = |name: &str, text: &str| {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
            bad(
                "invalid_date",
                format!("{name} must be a date written YYYY-MM-DD"),
            )
        })
    };
    let (start, end) = (date("start_date", start)?, date("end_date", end)?);
    if start > end {
        return Err(bad(
            "invalid_window",
            "start_date must not be after end_date",
        ));
    }
    if (end - start).num_days() > i64::from(MAX_DAYS) {
        return Err(bad(
            "invalid_window",
            format!("the window may span at most {MAX_DAYS} days"),
        ));
    }
    Ok(QueryParams::between(start, end))
}

/// The named sources (each must exist and be enabled), or every enabled one.
pub fn select<'a>(
    named: &BTreeSet<String>,
    declared: &[&'a SourceSpec],
) -> Result<Vec<&'a SourceSpec>, RequestError> {
    if named.is_empty() {
        return Ok(declared.iter().copied().filter(|s| s.enabled).collect());
    }
    named
        .iter()
        .map(|id| match declared.iter().find(|s| s.id == *id) {
            Some(spec) if spec.enabled => Ok(*spec),
            Some(_) => Err(bad("source_disabled", format!("source `{id}` is disabled"))),
            None => Err(unknown_source(id)),
        })
        .collect()
}

pub(crate) fn unknown_source(id: &str) -> RequestError {
    bad(
        "unknown_source",
        format!("there is no source `{id}`; GET /api/sources lists them"),
    )
}

/// Types each filter by the declarations of the selected sources that declare it; the
/// value must suit every one of them (sources may declare the same filter differently).
pub fn filters(
    selected: &[&SourceSpec],
    given: BTreeMap<String, String>,
) -> Result<BTreeMap<String, FilterValue>, RequestError> {
    let mut typed = BTreeMap::new();
    for (name, value) in given {
        let mut declared = selected
            .iter()
            .filter_map(|s| s.filters.get(&name))
            .peekable();
        if declared.peek().is_none() {
            return Err(bad(
                "unknown_filter",
                format!("`{name}` is not a parameter or a filter declared by the selected sources"),
            ));
        }
        // The last declaration's reading wins, as it always has (in source id order).
        let mut parsed = None;
        for spec in declared {
            let value = spec
                .parse(&value)
                .map_err(|why| bad("invalid_filter", format!("filter `{name}` {why}")))?;
            parsed = Some(value);
        }
        typed.extend(parsed.map(|value| (name, value)));
    }
    Ok(typed)
}

#[cfg(test)]
mod tests;
