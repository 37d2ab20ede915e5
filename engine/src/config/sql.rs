//! The `sql` kind's part of a source file: connection and queries, compiled into a
//! [`SqlSpec`] with its templates ready to render.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;

use super::raw::Number;
use super::{KindContext, Problems, Secret};
use crate::model::Dataset;
use crate::template::{Placeholder, QueryTemplates};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionConfig {
    driver: Driver,
    url: String,
    #[serde(default)]
    max_connections: Option<Number>,
    #[serde(default)]
    demo_data: Option<DemoData>,
}

/// Which database a `sql` source talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Postgres,
    Sqlite,
}

/// Synthetic data the engine may create in an empty database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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

const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub(super) fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<SqlSpec> {
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
    let max_connections = match connection.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(number) => match super::number(&number) {
            Some(n @ 1..=64) => n as u32,
            _ => {
                problems.add(
                    "/connection/max_connections",
                    "max_connections must be a whole number from 1 to 64",
                );
                DEFAULT_MAX_CONNECTIONS
            }
        },
    };
    let placeholder = match connection.driver {
        Driver::Postgres => Placeholder::Numbered,
        Driver::Sqlite => Placeholder::Question,
    };
    let (templates, datasets) = super::compile_sql_queries(context, placeholder, problems);
    Some(SqlSpec {
        driver: connection.driver,
        url: Secret::new(connection.url),
        max_connections,
        demo_data: connection.demo_data,
        datasets,
        templates: Arc::new(templates),
    })
}
