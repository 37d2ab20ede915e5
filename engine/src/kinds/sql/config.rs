//! The `sql` kind's part of a source file: connection and queries, compiled into a
//! [`SqlSpec`] with its templates ready to render.

use std::collections::BTreeSet;
use std::sync::Arc;

use schemars::{JsonSchema, SchemaGenerator};
use serde::Deserialize;

use crate::config::raw::Number;
use crate::config::Problems;
use crate::kinds::{KindContext, KindSchema, SqlQueryConfig};
use crate::model::Dataset;
use crate::secret::Secret;
use crate::template::{Placeholder, QueryTemplates};

/// Database connection for kind sql.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "sql-connection")]
struct ConnectionConfig {
    /// Database engine.
    driver: Driver,
    /// Connection URL, e.g. "sqlite://${METRICS_HUB_DATA_DIR:-./data}/demo.sqlite" or
    /// "${DATABASE_URL}". Treated as a secret: the hub never prints it. It may
    /// interpolate to "" in a disabled source (the usual pairing with
    /// `enabled: "${DATABASE_URL:+true}"`); an enabled source needs a real URL.
    url: String,
    /// Size of the connection pool, 1 to 64 (default 8). An integer or a numeric string
    /// (useful with interpolation).
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    max_connections: Option<Number>,
    /// Demo mode: "ga4" creates an `events` table filled with synthetic GA4-style events
    /// when the database has none.
    #[serde(default)]
    demo_data: Option<DemoData>,
}

/// Which database a `sql` source talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Driver {
    Postgres,
    Sqlite,
}

/// Synthetic data the engine may create in an empty database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline, transform = crate::config::schema::plain_enum)]
pub enum DemoData {
    /// GA4-style `events` rows for the embedded demo.
    Ga4,
}

/// A validated `sql` source.
#[derive(Debug, Clone)]
pub struct SqlSpec {
    pub driver: Driver,
    /// The connection URL; it may hold a password.
    pub url: Secret,
    pub max_connections: u32,
    pub demo_data: Option<DemoData>,
    /// Datasets this source has a query for.
    pub datasets: BTreeSet<Dataset>,
    pub templates: Arc<QueryTemplates>,
}

const DEFAULT_MAX_CONNECTIONS: i64 = 8;

/// This kind's part of the source-file schema.
pub fn schema(generator: &mut SchemaGenerator) -> KindSchema {
    KindSchema {
        description: "A source read with SQL from SQLite or PostgreSQL: each query is a minijinja template rendered per request into SQL plus bind parameters.",
        connection: generator.subschema_for::<ConnectionConfig>(),
        query: generator.subschema_for::<SqlQueryConfig>(),
        required: &["connection", "queries"],
        refused: &[],
    }
}

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<SqlSpec> {
    let Some(connection) = context.connection else {
        problems.add(
            "/connection",
            "a sql source needs `connection:` with `driver` (postgres or sqlite) and `url`",
        );
        return None;
    };
    let connection: ConnectionConfig = problems.parse("/connection", connection)?;
    if context.enabled && connection.url.trim().is_empty() {
        problems.add(
            "/connection/url",
            "the source is enabled but its connection url is empty: set the variable it reads or disable the source",
        );
    }
    let max_connections = problems.bounded(
        "/connection/max_connections",
        connection.max_connections.as_ref(),
        1..=64,
        DEFAULT_MAX_CONNECTIONS,
        "max_connections",
    ) as u32;
    let placeholder = match connection.driver {
        Driver::Postgres => Placeholder::Numbered,
        Driver::Sqlite => Placeholder::Question,
    };
    let (templates, datasets) = crate::kinds::compile_sql_queries(context, placeholder, problems);
    Some(SqlSpec {
        driver: connection.driver,
        url: Secret::new(connection.url),
        max_connections,
        demo_data: connection.demo_data,
        datasets,
        templates: Arc::new(templates),
    })
}
