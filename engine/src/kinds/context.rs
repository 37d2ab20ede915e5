//! What a kind's `compile` gets from the common part of a source file, and the helpers
//! kinds share to compile their queries: the walk over `queries:`, and for SQL-template
//! kinds (sql, bigquery) the templates with their load-time checks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::common::dataset;
use crate::config::{FilterSpec, Problems};
use crate::model::{Dataset, QueryParams};
use crate::template::{Placeholder, QueryTemplates};

/// What a kind's `compile` gets from the common part of a source file.
pub struct KindContext<'a> {
    pub connection: Option<&'a Value>,
    pub queries: &'a BTreeMap<String, Value>,
    pub identifiers: &'a BTreeSet<String>,
    pub filters: &'a BTreeMap<String, FilterSpec>,
    pub enabled: bool,
}

impl KindContext<'_> {
    /// Reports an empty `queries:` for kinds that need at least one query.
    pub fn require_queries(&self, problems: &mut Problems) {
        if self.queries.is_empty() {
            problems.add(
                "/queries",
                "declare at least one of summary, daily, features, clients under `queries:`",
            );
        }
    }

    /// Each entry under `queries:` as (dataset, its JSON pointer, its body parsed as `Q`).
    /// A name that is not a dataset, or a body that does not parse, is reported and left out.
    pub fn typed_queries<Q: DeserializeOwned>(
        &self,
        problems: &mut Problems,
    ) -> Vec<(Dataset, String, Q)> {
        let mut typed = Vec::new();
        for (name, query) in self.queries {
            let pointer = format!("/queries/{name}");
            let Some(dataset) = dataset(name, &pointer, problems) else {
                continue;
            };
            if let Some(query) = problems.parse::<Q>(&pointer, query) {
                typed.push((dataset, pointer, query));
            }
        }
        typed
    }
}

/// Request parameters to trial-render templates with at validation: one set without
/// filters and one with every declared filter given, so both branches of
/// `{% if filters.x is defined %}` are exercised.
pub fn sample_params(filters: &BTreeMap<String, FilterSpec>) -> [QueryParams; 2] {
    let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default();
    let bare = QueryParams::last_days(30, today);
    let mut full = bare.clone();
    full.filters = filters
        .iter()
        .map(|(n, f)| (n.clone(), f.sample()))
        .collect();
    [bare, full]
}

/// The query answering one dataset, for the kinds whose queries are SQL templates (sql,
/// bigquery).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "sql-query")]
pub struct SqlQueryConfig {
    /// A minijinja template rendered per request into SQL (standard SQL for bigquery,
    /// never legacy SQL). Context: days, start_date, end_date, filters (declared filters
    /// given in the request). Request values reach the SQL only through
    /// {{ bind(value) }}, which writes the driver's placeholder ($1 for PostgreSQL, ? for
    /// SQLite, @pN for BigQuery) and sends the value typed; {{ ident(name) }} writes an
    /// allowlisted identifier; `| yyyymmdd` formats a date as GA4's YYYYMMDD text (e.g.
    /// for _TABLE_SUFFIX). Printing any other value is an error.
    #[schemars(length(min = 1))]
    sql: String,
}

/// Compiles `queries.DATASET.sql` templates for the given placeholder style and runs the
/// load-time template checks; returns the templates and the datasets that compiled.
pub fn compile_sql_queries(
    context: &KindContext<'_>,
    placeholder: Placeholder,
    problems: &mut Problems,
) -> (QueryTemplates, BTreeSet<Dataset>) {
    compile_sql_queries_with(context, placeholder, BTreeMap::new(), problems)
}

/// [`compile_sql_queries`] with identifiers the kind derives from its connection (see
/// [`QueryTemplates::with_connection_identifiers`]), e.g. bigquery's project and dataset.
pub fn compile_sql_queries_with(
    context: &KindContext<'_>,
    placeholder: Placeholder,
    connection: BTreeMap<&'static str, String>,
    problems: &mut Problems,
) -> (QueryTemplates, BTreeSet<Dataset>) {
    let mut templates = QueryTemplates::with_connection_identifiers(
        placeholder,
        context.identifiers.clone(),
        connection,
    );
    let mut datasets = BTreeSet::new();
    context.require_queries(problems);
    for (dataset, pointer, query) in context.typed_queries::<SqlQueryConfig>(problems) {
        match templates.add(dataset.as_str(), &query.sql) {
            Ok(()) => {
                datasets.insert(dataset);
            }
            Err(err) => problems.add(
                &format!("{pointer}/sql"),
                format!("the template does not compile: {err}"),
            ),
        }
    }
    check_query_templates(&templates, &datasets, context.filters, "sql", problems);
    (templates, datasets)
}

/// Checks templates rendered with [`QueryTemplates`] (one per dataset,
/// at `/queries/DATASET/FIELD`): they may read only request parameters and declared
/// filters, and must render both without filters and with every filter set. That is where
/// printing a request value instead of binding it shows up: at start-up, not on a request.
pub fn check_query_templates(
    templates: &QueryTemplates,
    datasets: &BTreeSet<Dataset>,
    filters: &BTreeMap<String, FilterSpec>,
    field: &str,
    problems: &mut Problems,
) {
    let declared: BTreeSet<String> = filters.keys().cloned().collect();
    let samples = sample_params(filters);
    for dataset in datasets {
        let pointer = format!("/queries/{dataset}/{field}");
        let unknown = templates.check_variables(dataset.as_str(), &declared);
        let had_unknown = !unknown.is_empty();
        for problem in unknown {
            problems.add(&pointer, problem);
        }
        if had_unknown {
            continue;
        }
        for params in &samples {
            if let Err(err) = templates.render(dataset.as_str(), params) {
                problems.add(&pointer, format!("the template fails to render: {err}"));
                break;
            }
        }
    }
}
