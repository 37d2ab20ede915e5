//! `kind: sql`: PostgreSQL and SQLite through sqlx. Each dataset's template is rendered
//! into SQL with placeholders, its values bound, the four queries run concurrently on the
//! pool, and the rows mapped into the unified model.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::future::try_join_all;
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, Database, Row, TypeInfo, ValueRef};
use tokio::sync::RwLock;

use super::config::{DemoData, Driver, SqlSpec};
use crate::kinds::SourceSpec;
use crate::kinds::{DataSource, SourceError};
use crate::mapping::{map_rows, FieldMapping};
use crate::model::{Dataset, QueryParams, Record, SourceData};
use crate::secret::redact;
use crate::template::BindValue;

/// An open pool of either driver.
#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A `sql` source: its declaration and, once initialized, its pool.
pub struct SqlSource {
    spec: SqlSpec,
    mappings: BTreeMap<Dataset, BTreeMap<String, FieldMapping>>,
    timeout: std::time::Duration,
    secrets: Arc<Vec<String>>,
    pool: RwLock<Option<Pool>>,
}

impl SqlSource {
    pub fn new(source: &SourceSpec, spec: SqlSpec) -> SqlSource {
        SqlSource {
            spec,
            mappings: source.mappings.clone(),
            timeout: source.timeout,
            secrets: source.secrets.clone(),
            pool: RwLock::new(None),
        }
    }

    /// Driver errors can quote the connection string; strip every resolved secret.
    fn clean(&self, err: impl std::fmt::Display) -> String {
        redact(&err.to_string(), &self.secrets)
    }

    async fn connect(&self) -> Result<Pool, SourceError> {
        let url = self.spec.url.expose();
        // Give up on a connection a little before the hub's deadline for the whole call
        // does, so an unreachable database is reported as `connect_failed` rather than
        // losing the race to the generic `timeout`.
        let acquire_timeout = self.timeout * 9 / 10;
        let pool = match self.spec.driver {
            Driver::Postgres => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(self.spec.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect(url)
                    .await
                    .map_err(|e| SourceError::Connect(self.clean(e)))?,
            ),
            Driver::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| SourceError::Connect(self.clean(e)))?
                    .journal_mode(SqliteJournalMode::Wal)
                    .create_if_missing(self.spec.demo_data.is_some());
                if let Some(dir) = options.get_filename().parent() {
                    if self.spec.demo_data.is_some() && !dir.as_os_str().is_empty() {
                        tokio::fs::create_dir_all(dir).await.map_err(|e| {
                            SourceError::Connect(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(self.spec.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| SourceError::Connect(self.clean(e)))?;
                if self.spec.demo_data == Some(DemoData::Ga4) {
                    let today = Utc::now().date_naive();
                    let created = super::demo::ensure_sqlite(&pool, today)
                        .await
                        .map_err(|e| {
                            SourceError::Connect(format!(
                                "cannot create demo data: {}",
                                self.clean(e)
                            ))
                        })?;
                    if created {
                        tracing::info!("created the GA4 demo events ending {today}");
                    }
                }
                Pool::Sqlite(pool)
            }
        };
        Ok(pool)
    }

    /// The pool, connecting first when start-up could not.
    async fn pool(&self) -> Result<Pool, SourceError> {
        if let Some(pool) = self.pool.read().await.as_ref() {
            return Ok(pool.clone());
        }
        let mut slot = self.pool.write().await;
        if let Some(pool) = slot.as_ref() {
            return Ok(pool.clone());
        }
        let pool = self.connect().await?;
        *slot = Some(pool.clone());
        Ok(pool)
    }

    async fn run(
        &self,
        pool: &Pool,
        dataset: Dataset,
        params: &QueryParams,
    ) -> Result<Vec<Record>, SourceError> {
        let query = self
            .spec
            .templates
            .render(dataset.as_str(), params)
            .map_err(|e| SourceError::Template {
                dataset,
                message: e.to_string(),
            })?;
        let failed = |e: sqlx::Error| SourceError::Query {
            dataset,
            message: self.clean(e),
        };
        let rows = match pool {
            Pool::Postgres(pool) => {
                let rows = bind_all(sqlx::query(&query.sql), query.binds)
                    .fetch_all(pool)
                    .await
                    .map_err(failed)?;
                rows.iter()
                    .map(pg_record)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(failed)?
            }
            Pool::Sqlite(pool) => {
                let rows = bind_all(sqlx::query(&query.sql), query.binds)
                    .fetch_all(pool)
                    .await
                    .map_err(failed)?;
                rows.iter()
                    .map(sqlite_record)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(failed)?
            }
        };
        let empty = BTreeMap::new();
        Ok(map_rows(
            dataset,
            self.mappings.get(&dataset).unwrap_or(&empty),
            rows,
        )?)
    }
}

#[async_trait]
impl DataSource for SqlSource {
    async fn initialize(&self) -> Result<(), SourceError> {
        self.pool().await.map(drop)
    }

    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        self.fetch_datasets(params, &self.spec.datasets).await
    }

    /// Only the queries of `datasets` run.
    async fn fetch_datasets(
        &self,
        params: &QueryParams,
        datasets: &BTreeSet<Dataset>,
    ) -> Result<SourceData, SourceError> {
        let pool = self.pool().await?;
        let results =
            try_join_all(
                self.spec.datasets.intersection(datasets).map(|&dataset| {
                    let pool = &pool;
                    async move {
                        Ok::<_, SourceError>((dataset, self.run(pool, dataset, params).await?))
                    }
                }),
            )
            .await?;
        let mut data = SourceData::default();
        for (dataset, rows) in results {
            data.set(dataset, rows);
        }
        Ok(data)
    }

    async fn health_check(&self) -> Result<(), SourceError> {
        let failed = |e: sqlx::Error| SourceError::Connect(self.clean(e));
        match self.pool().await? {
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map_err(failed)?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    async fn cleanup(&self) {
        match self.pool.write().await.take() {
            Some(Pool::Postgres(pool)) => pool.close().await,
            Some(Pool::Sqlite(pool)) => pool.close().await,
            None => {}
        }
    }
}

type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Binds the recorded values in order, each with its own SQL type.
fn bind_all<'q, DB>(mut query: Query<'q, DB>, binds: Vec<BindValue>) -> Query<'q, DB>
where
    DB: Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    NaiveDate: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for value in binds {
        query = match value {
            BindValue::Text(text) => query.bind(text),
            BindValue::Integer(number) => query.bind(number),
            BindValue::Float(number) => query.bind(number),
            BindValue::Bool(flag) => query.bind(flag),
            BindValue::Date(date) => query.bind(date),
        };
    }
    query
}

fn decimal_value(decimal: sqlx::types::Decimal) -> Value {
    use sqlx::types::Decimal;
    if decimal.fract().is_zero() {
        if let Ok(whole) = i64::try_from(decimal) {
            return Value::from(whole);
        }
    }
    let float: f64 = decimal.try_into().unwrap_or(f64::NAN);
    serde_json::Number::from_f64(float)
        .map_or_else(|| Value::from(Decimal::to_string(&decimal)), Value::Number)
}

/// A PostgreSQL row as a record of JSON values, decoded by each column's type.
fn pg_record(row: &PgRow) -> Result<Record, sqlx::Error> {
    let mut record = Record::new();
    for (index, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "INT2" => row.try_get::<Option<i16>, _>(index)?.map(Value::from),
            "INT4" => row.try_get::<Option<i32>, _>(index)?.map(Value::from),
            "INT8" => row.try_get::<Option<i64>, _>(index)?.map(Value::from),
            "FLOAT4" => row
                .try_get::<Option<f32>, _>(index)?
                .map(|f| Value::from(f64::from(f))),
            "FLOAT8" => row.try_get::<Option<f64>, _>(index)?.map(Value::from),
            "NUMERIC" => row
                .try_get::<Option<sqlx::types::Decimal>, _>(index)?
                .map(decimal_value),
            "BOOL" => row.try_get::<Option<bool>, _>(index)?.map(Value::from),
            "DATE" => row
                .try_get::<Option<NaiveDate>, _>(index)?
                .map(|d| Value::from(d.format("%Y-%m-%d").to_string())),
            "TIMESTAMP" => row
                .try_get::<Option<NaiveDateTime>, _>(index)?
                .map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
            "TIMESTAMPTZ" => row
                .try_get::<Option<DateTime<Utc>>, _>(index)?
                .map(|t| Value::from(t.to_rfc3339())),
            _ => row.try_get::<Option<String>, _>(index)?.map(Value::from),
        };
        record.insert(column.name().to_owned(), value.unwrap_or(Value::Null));
    }
    Ok(record)
}

/// An SQLite row as a record: SQLite types values, not columns, so decode by the value.
fn sqlite_record(row: &SqliteRow) -> Result<Record, sqlx::Error> {
    let mut record = Record::new();
    for (index, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(index)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let type_name = raw.type_info().name().to_owned();
            match type_name.as_str() {
                "INTEGER" => Value::from(row.try_get_unchecked::<i64, _>(index)?),
                "REAL" => Value::from(row.try_get_unchecked::<f64, _>(index)?),
                "BLOB" => Value::from(format!(
                    "<{} bytes>",
                    row.try_get_unchecked::<Vec<u8>, _>(index)?.len()
                )),
                _ => Value::from(row.try_get_unchecked::<String, _>(index)?),
            }
        };
        record.insert(column.name().to_owned(), value);
    }
    Ok(record)
}
