//! The original dashboard's four GA4 queries, copied verbatim from the plan it was built
//! from (`shared/original-plan.md`, `BigQueryAdapter.get*Query`), and the SQL they sent:
//! each is a JavaScript template literal, so its `${...}` are filled in and its escapes
//! (`\\` for one backslash) undone exactly as JavaScript does, giving the text BigQuery
//! received. tests/ga4_fidelity.rs runs them beside the shipped port.

use metrics_hub::model::Dataset;

/// `getSummaryQuery(days)`'s template literal, verbatim.
const SUMMARY: &str = r#"
      SELECT
        COUNT(DISTINCT user_pseudo_id) as total_users,
        COUNT(*) as total_events,
        COUNT(CASE WHEN event_name = 'page_view' THEN 1 END) as page_views,
        COUNT(DISTINCT
          REGEXP_EXTRACT(
            (SELECT value.string_value FROM UNNEST(event_params) WHERE key = 'page_location'),
            r'https://([^.]+)\\.8020rei\\.com'
          )
        ) as active_clients
      FROM \`${this.project}.${this.dataset}.events_*\`
      WHERE _TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL ${days} DAY))
"#;

/// `getDailyQuery(days)`'s template literal, verbatim.
const DAILY: &str = r#"
      SELECT
        event_date,
        COUNT(DISTINCT user_pseudo_id) as users,
        COUNT(*) as events
      FROM \`${this.project}.${this.dataset}.events_*\`
      WHERE _TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL ${days} DAY))
      GROUP BY event_date
      ORDER BY event_date
"#;

/// `getFeatureQuery(days)`'s template literal, verbatim.
const FEATURES: &str = r#"
      SELECT
        CASE
          WHEN REGEXP_CONTAINS(page_url, '/home') THEN 'Home Dashboard'
          WHEN REGEXP_CONTAINS(page_url, '/buybox/deals') THEN 'Buybox - Deals'
          WHEN REGEXP_CONTAINS(page_url, '/buybox') THEN 'Buybox'
          WHEN REGEXP_CONTAINS(page_url, '/properties') THEN 'Properties'
          WHEN REGEXP_CONTAINS(page_url, '/importer') THEN 'Importer'
          WHEN REGEXP_CONTAINS(page_url, '/integrations/api-tokens') THEN 'API Tokens'
          WHEN REGEXP_CONTAINS(page_url, '/integrations') THEN 'Integrations'
          WHEN REGEXP_CONTAINS(page_url, '/session/login') THEN 'Login'
          ELSE 'Other'
        END as feature,
        COUNT(*) as views
      FROM (
        SELECT
          (SELECT value.string_value FROM UNNEST(event_params) WHERE key = 'page_location') as page_url
        FROM \`${this.project}.${this.dataset}.events_*\`
        WHERE _TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL ${days} DAY))
          AND event_name = 'page_view'
      )
      WHERE page_url IS NOT NULL
      GROUP BY feature
      HAVING feature != 'Other'
      ORDER BY views DESC
"#;

/// `getClientQuery(days)`'s template literal, verbatim.
const CLIENTS: &str = r#"
      SELECT
        REGEXP_EXTRACT(
          (SELECT value.string_value FROM UNNEST(event_params) WHERE key = 'page_location'),
          r'https://([^.]+)\\.8020rei\\.com'
        ) as client,
        COUNT(*) as events,
        COUNT(DISTINCT user_pseudo_id) as users,
        COUNT(CASE WHEN event_name = 'page_view' THEN 1 END) as page_views
      FROM \`${this.project}.${this.dataset}.events_*\`
      WHERE _TABLE_SUFFIX >= FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL ${days} DAY))
      GROUP BY client
      HAVING client IS NOT NULL
      ORDER BY events DESC
      LIMIT 20
"#;

/// The template literal of `dataset`'s original query.
pub fn template(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Summary => SUMMARY,
        Dataset::Daily => DAILY,
        Dataset::Features => FEATURES,
        Dataset::Clients => CLIENTS,
    }
}

/// The SQL the original dashboard sent for `dataset` over `days` days: the template
/// literal evaluated with `this.project`, `this.dataset` and `days`.
pub fn sql(dataset: Dataset, project: &str, bigquery_dataset: &str, days: u32) -> String {
    let filled = template(dataset)
        .replace("${this.project}", project)
        .replace("${this.dataset}", bigquery_dataset)
        .replace("${days}", &days.to_string());
    unescape_template_literal(&filled)
}

/// What a JavaScript template literal's text evaluates to: `\\` is one backslash, `\``
/// a backtick. (The queries use no other escape.)
fn unescape_template_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('\\' | '`' | '$'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_evaluate_as_javascript_would() {
        let sql = sql(Dataset::Clients, "p-1", "analytics_1", 7);
        assert!(sql.contains("FROM `p-1.analytics_1.events_*`"), "{sql}");
        assert!(sql.contains(r"r'https://([^.]+)\.8020rei\.com'"), "{sql}");
        assert!(sql.contains("INTERVAL 7 DAY"), "{sql}");
        assert!(!sql.contains('$'), "{sql}");
    }
}
