//! The history store: settled days per source, in SQLite (a file in the hub's data
//! directory, the default) or PostgreSQL (`--store postgres://...`, shared by several
//! hubs). One schema for both, applied by sqlx migrations embedded in the binary; every
//! query is written once, with `$n` placeholders both drivers read.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};

use crate::model::SourceData;

/// The store's migrations, in order. A new one is appended, never edited: a hub refuses
/// a store whose applied migrations differ from its own.
const MIGRATIONS: [(i64, &str, &str); 1] = [(
    1,
    "history days and snapshots",
    include_str!("migrations/0001_history.sql"),
)];

/// Why the store could not be opened, read or written. The text never holds the URL's
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the history store {place}: {message}")]
    Open { place: String, message: String },
    #[error("the history store failed: {0}")]
    Query(String),
    #[error("a stored day of {source_id} on {day} is unreadable: {message}")]
    Corrupt {
        source_id: String,
        day: String,
        message: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        StoreError::Query(err.to_string())
    }
}

/// What the store holds for one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreSize {
    /// Stored days.
    pub days: u64,
    /// Characters of stored JSON (about the bytes the days take).
    pub bytes: u64,
    /// The oldest and newest stored day.
    #[schema(value_type = Option<String>, format = Date)]
    pub oldest: Option<NaiveDate>,
    #[schema(value_type = Option<String>, format = Date)]
    pub newest: Option<NaiveDate>,
}

/// A connection pool to the store.
pub struct Store {
    pool: AnyPool,
    /// Where it is, without credentials, for messages.
    place: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("place", &self.place).finish()
    }
}

impl Store {
    /// The embedded store: `history.sqlite` in `data_dir`, created when missing.
    pub async fn open_in(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("history.sqlite");
        Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens a `sqlite://` or `postgres://` store and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let place = without_credentials(url);
        let failed = |err: &dyn std::fmt::Display| StoreError::Open {
            place: place.clone(),
            message: crate::secret::redact(&err.to_string(), &[url.to_owned()]),
        };
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Readers do not wait for the backfill's writes, and a write waits
                        // for another instead of failing at once.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|err| failed(&err))?;
        migrator().run(&pool).await.map_err(|err| failed(&err))?;
        Ok(Store { pool, place })
    }

    /// Where the store is, without credentials.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// The stored days of `source` in `from..=to` that `definition` produced.
    pub async fn days(
        &self,
        source: &str,
        definition: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeMap<NaiveDate, SourceData>, StoreError> {
        let sql = "SELECT day, data FROM history_days WHERE source = $1 AND definition = $2 AND day >= $3 AND day <= $4";
        let rows = self.window_rows(sql, source, definition, from, to).await?;
        rows.iter().map(|row| stored_day(source, row)).collect()
    }

    /// Which days of `source` in `from..=to` are stored for `definition`.
    pub async fn stored_days(
        &self,
        source: &str,
        definition: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeSet<NaiveDate>, StoreError> {
        let sql = "SELECT day FROM history_days WHERE source = $1 AND definition = $2 AND day >= $3 AND day <= $4";
        let rows = self.window_rows(sql, source, definition, from, to).await?;
        rows.iter()
            .map(|row| day_of(source, &row.try_get::<String, _>(0)?))
            .collect()
    }

    /// The rows `sql` selects for one source, definition and window (`$1` to `$4`).
    async fn window_rows(
        &self,
        sql: &'static str,
        source: &str,
        definition: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<AnyRow>, StoreError> {
        Ok(sqlx::query(sql)
            .bind(source)
            .bind(definition)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Stores (or replaces) one settled day of `source`.
    pub async fn put_day(
        &self,
        source: &str,
        definition: &str,
        day: NaiveDate,
        data: &SourceData,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(data).map_err(|err| StoreError::Query(err.to_string()))?;
        sqlx::query(
            "INSERT INTO history_days (source, day, definition, data, fetched_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (source, day) DO UPDATE SET definition = excluded.definition, \
             data = excluded.data, fetched_at = excluded.fetched_at",
        )
        .bind(source)
        .bind(day.to_string())
        .bind(definition)
        .bind(json)
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the days of `source` before `before`; returns how many went.
    pub async fn prune(&self, source: &str, before: NaiveDate) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM history_days WHERE source = $1 AND day < $2")
            .bind(source)
            .bind(before.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes every stored day of `source`.
    pub async fn clear(&self, source: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM history_days WHERE source = $1")
            .bind(source)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How much the store holds for `source` (every definition).
    pub async fn size(&self, source: &str) -> Result<StoreSize, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT), MIN(day), MAX(day) \
             FROM history_days WHERE source = $1",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await?;
        let day = |index| -> Result<Option<NaiveDate>, StoreError> {
            row.try_get::<Option<String>, _>(index)?
                .map(|text| day_of(source, &text))
                .transpose()
        };
        Ok(StoreSize {
            days: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            bytes: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
            oldest: day(2)?,
            newest: day(3)?,
        })
    }
}

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

fn stored_day(source: &str, row: &AnyRow) -> Result<(NaiveDate, SourceData), StoreError> {
    let day: String = row.try_get(0)?;
    let data: String = row.try_get(1)?;
    let parsed = serde_json::from_str(&data).map_err(|err| StoreError::Corrupt {
        source_id: source.to_owned(),
        day: day.clone(),
        message: err.to_string(),
    })?;
    Ok((day_of(source, &day)?, parsed))
}

fn day_of(source: &str, text: &str) -> Result<NaiveDate, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        source_id: source.to_owned(),
        day: text.to_owned(),
        message: "not a YYYY-MM-DD day".into(),
    })
}

/// `scheme://host/db` of a URL, with any user and password left out.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        _ => url.split('?').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn places_leave_credentials_out() {
        assert_eq!(
            without_credentials("postgres://hub:s3cret@db.internal:5432/metrics?sslmode=require"),
            "postgres://db.internal:5432/metrics"
        );
        assert_eq!(
            without_credentials("sqlite:///var/lib/hub/history.sqlite?mode=rwc"),
            "sqlite:///var/lib/hub/history.sqlite"
        );
    }

    #[tokio::test]
    async fn days_round_trip_per_definition_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).await.unwrap();
        let row = serde_json::json!({"date": "2026-03-01", "users": 3, "events": 9});
        let data = SourceData {
            daily: Some(vec![row.as_object().unwrap().clone()]),
            ..SourceData::default()
        };
        for text in ["2026-03-01", "2026-03-02", "2026-03-03"] {
            store.put_day("demo", "v1", day(text), &data).await.unwrap();
        }
        let got = store
            .days("demo", "v1", day("2026-03-02"), day("2026-03-09"))
            .await
            .unwrap();
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            [day("2026-03-02"), day("2026-03-03")]
        );
        assert_eq!(got[&day("2026-03-02")], data);
        // Another definition's rows are not this one's.
        let other = store.days("demo", "v2", day("2026-03-01"), day("2026-03-03"));
        assert!(other.await.unwrap().is_empty());
        assert_eq!(store.prune("demo", day("2026-03-02")).await.unwrap(), 1);
        let size = store.size("demo").await.unwrap();
        assert_eq!((size.days, size.oldest), (2, Some(day("2026-03-02"))));
        assert!(size.bytes > 0);
        // Reopening applies no migration twice.
        drop(store);
        let again = Store::open_in(dir.path()).await.unwrap();
        assert_eq!(again.size("demo").await.unwrap().days, 2);
    }
}
