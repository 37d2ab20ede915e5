//! Synthetic GA4-style events, so the demo source shows realistic numbers without any account.
//!
//! The generator is deterministic: a fixed seed and the anchor date fully decide the output, so
//! the SQLite demo database and the PostgreSQL test database hold identical events and tests can
//! compare sources row for row. The shape follows GA4's BigQuery export (`event_date` as
//! `YYYYMMDD`, `event_timestamp` in microseconds) reduced to the columns the queries use.

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{PgPool, SqlitePool};

/// How many days of events [`generate`] produces, ending at the anchor date inclusive.
pub const DAYS: i64 = 90;

/// Users are simulated from this many days before the exported period, so returning visitors
/// exist from its first day.
const LEAD_DAYS: i64 = 60;

/// Growth of new users per day across the simulated timeline (0.8 = 80% more at the end).
const GROWTH: f64 = 0.8;

const DAY_MICROS: i64 = 86_400_000_000;

/// Fixed so that the same anchor always yields the same events, in every process.
const SEED: u64 = 0x8020_2E1D_E300_0001;

/// Users simulated over the lead-in and the period; about 20,000 of them visit within the period.
const SIMULATED_USERS: usize = 28_000;

/// Client subdomains of `8020rei.com`, most popular first: popularity falls off Zipf-like by rank.
const CLIENTS: [&str; 40] = [
    "acme",
    "summit",
    "keystone",
    "pinnacle",
    "harbor",
    "evergreen",
    "bluesky",
    "redwood",
    "ironclad",
    "northstar",
    "lakeside",
    "cornerstone",
    "silverline",
    "goldcoast",
    "riverbend",
    "oakridge",
    "maplewood",
    "granite",
    "horizon",
    "landmark",
    "frontier",
    "sterling",
    "beacon",
    "crestview",
    "highland",
    "meridian",
    "pioneer",
    "prairie",
    "sunrise",
    "trident",
    "unity",
    "vanguard",
    "westgate",
    "willow",
    "yellowstone",
    "zenith",
    "atlas",
    "cascade",
    "delta",
    "everest",
];

/// App pages and their share of page views. The first eight map to the features the queries
/// report; `/settings` and `/help` fall into 'Other' so the exclusion has something to drop.
const PAGES: [(&str, u32); 10] = [
    ("/home", 26),
    ("/buybox", 12),
    ("/buybox/deals", 10),
    ("/properties/", 15),
    ("/importer", 6),
    ("/integrations", 4),
    ("/integrations/api-tokens", 2),
    ("/session/login", 6),
    ("/settings", 5),
    ("/help", 4),
];

/// Pages outside any client subdomain: the client extraction must reject these.
const OUTSIDE_URLS: [&str; 3] = [
    "https://8020rei.com/pricing",
    "https://8020rei.com/",
    "https://www.google.com/search?q=x",
];

/// Share of sessions starting at each UTC hour: the users are mostly US real-estate teams, so
/// traffic peaks in the US working day (13:00-23:00 UTC).
const HOUR_WEIGHTS: [u32; 24] = [
    5, 3, 2, 1, 1, 1, 1, 1, 1, 2, 3, 5, 8, 12, 14, 15, 15, 14, 13, 12, 10, 8, 7, 6,
];

/// One row of the `events` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoEvent {
    /// The UTC day of the event as `YYYYMMDD`, as GA4 exports it.
    pub event_date: String,
    /// Microseconds since the Unix epoch (UTC).
    pub event_timestamp: i64,
    /// `page_view`, `session_start`, `click`, `scroll`, `user_engagement` or `first_visit`.
    pub event_name: String,
    /// GA4-style client id: `<random>.<first visit in epoch seconds>`.
    pub user_pseudo_id: String,
    /// Full URL of the page, `None` for events GA4 records without one.
    pub page_location: Option<String>,
}

/// Table definition shared by SQLite and PostgreSQL: both accept this DDL unchanged.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS events (
    event_date TEXT NOT NULL,
    event_timestamp BIGINT NOT NULL,
    event_name TEXT NOT NULL,
    user_pseudo_id TEXT NOT NULL,
    page_location TEXT
)";

const CREATE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS events_event_date_idx ON events (event_date)";

const INSERT_PREFIX: &str =
    "INSERT INTO events (event_date, event_timestamp, event_name, user_pseudo_id, page_location) VALUES ";

/// Rows per SQLite INSERT: 500 bind parameters, far below SQLite's limit, and few enough
/// statements that the prepared one is reused for all but the last batch.
const SQLITE_BATCH_ROWS: usize = 100;

/// Rows per PostgreSQL UNNEST insert: large batches amortize round trips while keeping each
/// message a few megabytes.
const POSTGRES_BATCH_ROWS: usize = 20_000;

/// Generates [`DAYS`] days of events ending at `anchor` inclusive, sorted by timestamp.
///
/// About 20,000 users and 200,000 events spread over 40 clients, with a weekday/weekend rhythm
/// and a growth trend. The same anchor always gives the same events.
pub fn generate(anchor: NaiveDate) -> Vec<DemoEvent> {
    Generator::new(anchor).run()
}

/// The demo population and the distributions drawn from, bundled so that helpers share one RNG
/// stream (the order of draws is what makes the output reproducible).
///
/// Days are numbered from the first exported day (0) to the anchor (`DAYS - 1`). Users are
/// simulated from `LEAD_DAYS` earlier, and only sessions inside the period are kept, so the first
/// exported days already have returning users instead of ramping up from nothing.
struct Generator {
    rng: ChaCha8Rng,
    first_exported: NaiveDate,
    /// Midnight UTC of day 0, in micros.
    first_midnight: i64,
    /// `YYYYMMDD` of each exported day.
    dates: Vec<String>,
    /// How likely each simulated day is as a user's first visit (index 0 is `-LEAD_DAYS`):
    /// growth trend times weekday rhythm.
    first_day: WeightedIndex<f64>,
    client: WeightedIndex<f64>,
    page: WeightedIndex<u32>,
    hour: WeightedIndex<u32>,
    events: Vec<DemoEvent>,
}

/// Who a user is: the client they work for, or a prospect outside every client.
#[derive(Clone, Copy)]
enum Affiliation {
    Client {
        home: usize,
        /// Agencies that manage a second client's account now and then.
        second: Option<usize>,
    },
    Prospect,
}

impl Generator {
    fn new(anchor: NaiveDate) -> Self {
        let first_exported = anchor
            .checked_sub_days(Days::new(DAYS as u64 - 1))
            .expect("anchor is far from the start of the calendar");
        let dates = first_exported
            .iter_days()
            .take(DAYS as usize)
            .map(|day| day.format("%Y%m%d").to_string())
            .collect();
        let client_weights: Vec<f64> = (1..=CLIENTS.len())
            .map(|rank| 1.0 / (rank as f64).powf(1.1))
            .collect();
        let first_day_weights = (-LEAD_DAYS..DAYS).map(|day| {
            let trend = (day + LEAD_DAYS) as f64 / (LEAD_DAYS + DAYS - 1) as f64;
            (1.0 + GROWTH * trend) * weekday_factor(weekday_of(first_exported, day))
        });
        Self {
            rng: ChaCha8Rng::seed_from_u64(SEED),
            first_exported,
            first_midnight: first_exported
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros(),
            dates,
            first_day: WeightedIndex::new(first_day_weights).expect("weights are positive"),
            client: WeightedIndex::new(client_weights).expect("weights are positive"),
            page: WeightedIndex::new(PAGES.iter().map(|(_, weight)| *weight))
                .expect("weights are positive"),
            hour: WeightedIndex::new(HOUR_WEIGHTS).expect("weights are positive"),
            events: Vec::with_capacity(230_000),
        }
    }

    fn run(mut self) -> Vec<DemoEvent> {
        for _ in 0..SIMULATED_USERS {
            self.user();
        }
        // Stable sort: ties keep generation order, so the output stays deterministic.
        self.events.sort_by_key(|event| event.event_timestamp);
        self.events
    }

    /// Adds the sessions of one user that fall inside the exported period.
    fn user(&mut self) {
        let affiliation = if self.rng.gen_bool(0.03) {
            Affiliation::Prospect
        } else {
            let home = self.client.sample(&mut self.rng);
            let second = self
                .rng
                .gen_bool(0.03)
                .then(|| self.client.sample(&mut self.rng));
            Affiliation::Client { home, second }
        };
        let first_day = self.first_day.sample(&mut self.rng) as i64 - LEAD_DAYS;
        // Heavy-tailed activity: most users come once or a few times weeks apart, a few power
        // users come back every few days.
        let (sessions, mean_gap) = if self.rng.gen_bool(0.08) {
            (3 + self.geometric(0.85, 60), 3.0)
        } else {
            (1 + self.geometric(0.35, 12), 14.0)
        };
        let first_visit = self.session_start(first_day);
        let id = format!(
            "{}.{}",
            self.rng.gen_range(100_000_000..2_147_483_647u32),
            first_visit.div_euclid(1_000_000)
        );
        let mut day = first_day;
        for index in 0..sessions {
            let start = if index == 0 {
                first_visit
            } else {
                day = self.next_session_day(day, mean_gap);
                self.session_start(day)
            };
            if day >= DAYS {
                break;
            }
            let host = match affiliation {
                Affiliation::Prospect => None,
                Affiliation::Client { home, second } => {
                    let client = match second {
                        Some(other) if self.rng.gen_bool(0.3) => other,
                        _ => home,
                    };
                    Some(CLIENTS[client])
                }
            };
            // Sessions before the period are simulated only for their effect on later days.
            if day >= 0 {
                self.session(&id, day, start, host, index == 0);
            }
        }
    }

    /// Adds the events of one session; `host` is the client subdomain, `None` for prospects.
    fn session(&mut self, user: &str, day: i64, start: i64, host: Option<&str>, first_visit: bool) {
        let day_end = self.midnight(day) + DAY_MICROS - 1;
        let mut clock = start;
        let landing = match host {
            // Sessions whose login expired start on the login page.
            Some(client) if self.rng.gen_bool(0.2) => {
                format!("https://{client}.8020rei.com/session/login")
            }
            Some(client) => self.app_url(client),
            None => self.outside_url(),
        };
        if first_visit {
            self.push(day, clock, "first_visit", user, Some(landing.clone()));
        }
        let start_location = (!self.rng.gen_bool(0.3)).then(|| landing.clone());
        self.push(day, clock, "session_start", user, start_location);

        let page_views = 1 + self.geometric(0.65, 20);
        let mut url = landing;
        for view in 0..page_views {
            if view > 0 {
                url = match host {
                    // A few in-app visits wander to the marketing site.
                    Some(_) if self.rng.gen_bool(0.01) => OUTSIDE_URLS[0].to_string(),
                    Some(client) => self.app_url(client),
                    None => self.outside_url(),
                };
            }
            clock = (clock + self.rng.gen_range(5_000_000..90_000_000)).min(day_end);
            self.push(day, clock, "page_view", user, Some(url.clone()));
            if self.rng.gen_bool(0.25) {
                clock = (clock + self.rng.gen_range(1_000_000..30_000_000)).min(day_end);
                self.push(day, clock, "click", user, Some(url.clone()));
            }
            if self.rng.gen_bool(0.12) {
                clock = (clock + self.rng.gen_range(1_000_000..20_000_000)).min(day_end);
                self.push(day, clock, "scroll", user, Some(url.clone()));
            }
        }
        if self.rng.gen_bool(0.4) {
            clock = (clock + self.rng.gen_range(1_000_000..60_000_000)).min(day_end);
            self.push(day, clock, "user_engagement", user, None);
        }
    }

    fn app_url(&mut self, client: &str) -> String {
        let path = PAGES[self.page.sample(&mut self.rng)].0;
        match path {
            "/properties/" => format!(
                "https://{client}.8020rei.com/properties/{}",
                self.rng.gen_range(1_000..100_000)
            ),
            "/buybox/deals" if self.rng.gen_bool(0.3) => format!(
                "https://{client}.8020rei.com/buybox/deals?x={}",
                self.rng.gen_range(1..10)
            ),
            _ => format!("https://{client}.8020rei.com{path}"),
        }
    }

    fn outside_url(&mut self) -> String {
        OUTSIDE_URLS[self.rng.gen_range(0..OUTSIDE_URLS.len())].to_string()
    }

    /// The day of a user's next session: an exponential gap of about `mean_gap` days, with most
    /// weekend days redrawn.
    fn next_session_day(&mut self, previous: i64, mean_gap: f64) -> i64 {
        let mut day = previous;
        for _ in 0..3 {
            let uniform: f64 = self.rng.gen();
            day = previous + 1 + (-(1.0 - uniform).ln() * (mean_gap - 1.0)) as i64;
            let factor = weekday_factor(weekday_of(self.first_exported, day));
            if factor >= 1.0 || self.rng.gen_bool(factor) {
                break;
            }
        }
        day
    }

    /// Start of a session on `day`, in micros: the hour follows US working hours.
    fn session_start(&mut self, day: i64) -> i64 {
        let hour = self.hour.sample(&mut self.rng) as i64;
        self.midnight(day) + hour * 3_600_000_000 + self.rng.gen_range(0..3_600_000_000)
    }

    fn midnight(&self, day: i64) -> i64 {
        self.first_midnight + day * DAY_MICROS
    }

    /// Failures before the first success with success probability `1 - continue_p`, capped.
    fn geometric(&mut self, continue_p: f64, cap: usize) -> usize {
        let mut count = 0;
        while count < cap && self.rng.gen_bool(continue_p) {
            count += 1;
        }
        count
    }

    /// Records one event of exported day `day`.
    fn push(&mut self, day: i64, micros: i64, name: &str, user: &str, page: Option<String>) {
        self.events.push(DemoEvent {
            event_date: self.dates[day as usize].clone(),
            event_timestamp: micros,
            event_name: name.to_string(),
            user_pseudo_id: user.to_string(),
            page_location: page,
        });
    }
}

/// The weekday of simulated day `day` (0 is `first_exported`, negative days precede it).
fn weekday_of(first_exported: NaiveDate, day: i64) -> Weekday {
    let offset = Days::new(day.unsigned_abs());
    let date = if day >= 0 {
        first_exported.checked_add_days(offset)
    } else {
        first_exported.checked_sub_days(offset)
    };
    date.expect("simulated days stay within the calendar")
        .weekday()
}

/// B2B traffic: weekends are quiet, Friday slightly so.
fn weekday_factor(weekday: Weekday) -> f64 {
    match weekday {
        Weekday::Sat => 0.35,
        Weekday::Sun => 0.3,
        Weekday::Fri => 0.85,
        _ => 1.0,
    }
}

/// Creates and fills the `events` table with [`generate`]`(anchor)` when it does not exist,
/// and regenerates it when it is demo data from an earlier day.
///
/// Returns `true` when it (re)created the data, `false` when it left the table alone: either
/// it is demo data of `anchor` already, or it is an `events` table this module did not make
/// (no `demo_meta` row), which is never touched. A demo started again days later would
/// otherwise show empty recent days, since its 90 days end where the data was made.
/// Creation and loading happen in one `BEGIN IMMEDIATE` transaction, so a second process
/// racing on the same file waits for the first and then sees the table.
pub async fn ensure_sqlite(pool: &SqlitePool, anchor: NaiveDate) -> Result<bool, sqlx::Error> {
    // Cheap check first, so normal starts skip generating events they will not insert.
    if !sqlite_needs_data(&mut *pool.acquire().await?, anchor).await? {
        return Ok(false);
    }
    // Generated before taking the write lock, so the lock is held only for the inserts.
    let events = generate(anchor);

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Checked again under the lock: another process may have won the race. Dropping `tx`
    // rolls back the empty transaction.
    if !sqlite_needs_data(&mut tx, anchor).await? {
        return Ok(false);
    }
    sqlx::query("DROP TABLE IF EXISTS events")
        .execute(&mut *tx)
        .await?;
    sqlx::query(CREATE_TABLE).execute(&mut *tx).await?;
    sqlx::query(CREATE_INDEX).execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS demo_meta (anchor TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM demo_meta")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO demo_meta (anchor) VALUES (?)")
        .bind(anchor.format("%Y-%m-%d").to_string())
        .execute(&mut *tx)
        .await?;

    let full_batch_sql = sqlite_insert_sql(SQLITE_BATCH_ROWS);
    for batch in events.chunks(SQLITE_BATCH_ROWS) {
        let last_batch_sql;
        let sql = if batch.len() == SQLITE_BATCH_ROWS {
            full_batch_sql.as_str()
        } else {
            last_batch_sql = sqlite_insert_sql(batch.len());
            last_batch_sql.as_str()
        };
        let mut query = sqlx::query(sql);
        for event in batch {
            query = query
                .bind(event.event_date.as_str())
                .bind(event.event_timestamp)
                .bind(event.event_name.as_str())
                .bind(event.user_pseudo_id.as_str())
                .bind(event.page_location.as_deref());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// True when there is no `events` table, or when it is demo data made for an earlier day.
async fn sqlite_needs_data(
    conn: &mut sqlx::SqliteConnection,
    anchor: NaiveDate,
) -> Result<bool, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'demo_meta')",
    )
    .fetch_all(&mut *conn)
    .await?;
    if !tables.iter().any(|t| t == "events") {
        return Ok(true);
    }
    if !tables.iter().any(|t| t == "demo_meta") {
        // Not ours: never touched.
        return Ok(false);
    }
    let made_for: Option<String> = sqlx::query_scalar("SELECT MAX(anchor) FROM demo_meta")
        .fetch_one(&mut *conn)
        .await?;
    let current = anchor.format("%Y-%m-%d").to_string();
    Ok(made_for.is_some_and(|made| made < current))
}

fn sqlite_insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(INSERT_PREFIX.len() + rows * 18);
    sql.push_str(INSERT_PREFIX);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?)");
    }
    sql
}

/// Creates the `events` table and its index in PostgreSQL when missing, then appends `events`.
///
/// Used by tests to give PostgreSQL the same data as the SQLite demo; all rows go in one
/// transaction, in large `UNNEST` batches.
pub async fn load_postgres(pool: &PgPool, events: &[DemoEvent]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(CREATE_TABLE).execute(&mut *tx).await?;
    sqlx::query(CREATE_INDEX).execute(&mut *tx).await?;
    for batch in events.chunks(POSTGRES_BATCH_ROWS) {
        let dates: Vec<&str> = batch.iter().map(|e| e.event_date.as_str()).collect();
        let timestamps: Vec<i64> = batch.iter().map(|e| e.event_timestamp).collect();
        let names: Vec<&str> = batch.iter().map(|e| e.event_name.as_str()).collect();
        let users: Vec<&str> = batch.iter().map(|e| e.user_pseudo_id.as_str()).collect();
        let pages: Vec<Option<&str>> = batch.iter().map(|e| e.page_location.as_deref()).collect();
        sqlx::query(
            "INSERT INTO events (event_date, event_timestamp, event_name, user_pseudo_id, page_location)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(dates)
        .bind(timestamps)
        .bind(names)
        .bind(users)
        .bind(pages)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn anchor() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 31).expect("valid date")
    }

    /// Generated once for all tests: generation takes most of a second in debug builds.
    fn events() -> &'static [DemoEvent] {
        static EVENTS: std::sync::OnceLock<Vec<DemoEvent>> = std::sync::OnceLock::new();
        EVENTS.get_or_init(|| generate(anchor()))
    }

    /// The client of a URL the way the source queries extract it.
    fn client_of(url: &str) -> Option<&str> {
        let rest = url.strip_prefix("https://")?;
        let (client, tail) = rest.split_once('.')?;
        let after = tail.strip_prefix("8020rei.com")?;
        let boundary = after.is_empty() || after.starts_with(['/', '?', '#', ':']);
        (!client.is_empty() && !client.contains('/') && boundary).then_some(client)
    }

    #[test]
    fn same_anchor_gives_identical_events() {
        assert_eq!(generate(anchor()), events());
    }

    #[test]
    fn events_cover_exactly_the_ninety_days_ending_at_the_anchor() {
        let events = events();
        let dates: HashSet<&str> = events.iter().map(|e| e.event_date.as_str()).collect();
        assert_eq!(dates.len(), 90);
        assert!(dates.contains("20250101"), "first day is anchor - 89");
        assert!(dates.contains("20250331"));
        assert!(dates.iter().all(|d| ("20250101"..="20250331").contains(d)));
        for event in events {
            let utc = chrono::DateTime::from_timestamp_micros(event.event_timestamp)
                .expect("valid timestamp");
            assert_eq!(utc.format("%Y%m%d").to_string(), event.event_date);
        }
        assert!(events
            .windows(2)
            .all(|w| w[0].event_timestamp <= w[1].event_timestamp));
    }

    #[test]
    fn volume_trend_and_weekly_rhythm_look_like_a_real_product() {
        let events = events();
        assert!(
            (150_000..=250_000).contains(&events.len()),
            "{}",
            events.len()
        );
        let users: HashSet<&str> = events.iter().map(|e| e.user_pseudo_id.as_str()).collect();
        assert!((15_000..=25_000).contains(&users.len()), "{}", users.len());

        let mut per_day: HashMap<&str, usize> = HashMap::new();
        for event in events {
            *per_day.entry(event.event_date.as_str()).or_default() += 1;
        }
        let mut days: Vec<(&str, usize)> = per_day.into_iter().collect();
        days.sort_unstable();
        let first_month: usize = days[..30].iter().map(|(_, n)| n).sum();
        let last_month: usize = days[60..].iter().map(|(_, n)| n).sum();
        assert!(last_month > first_month, "{first_month} -> {last_month}");
        let (mut weekend, mut weekday) = (Vec::new(), Vec::new());
        for (date, count) in days {
            let day = NaiveDate::parse_from_str(date, "%Y%m%d").expect("YYYYMMDD");
            match day.weekday() {
                Weekday::Sat | Weekday::Sun => weekend.push(count),
                _ => weekday.push(count),
            }
        }
        let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
        assert!(mean(&weekend) < 0.7 * mean(&weekday));
    }

    #[test]
    fn urls_exercise_every_feature_many_clients_and_the_rejections() {
        let events = events();
        let urls: Vec<&str> = events
            .iter()
            .filter_map(|e| e.page_location.as_deref())
            .collect();
        for path in [
            "/home",
            "/buybox",
            "/buybox/deals",
            "/properties/",
            "/importer",
            "/integrations",
            "/integrations/api-tokens",
            "/session/login",
            "/settings",
            "/help",
        ] {
            assert!(urls.iter().any(|u| u.contains(path)), "no {path}");
        }
        let mut per_client: HashMap<&str, usize> = HashMap::new();
        for url in &urls {
            if let Some(client) = client_of(url) {
                *per_client.entry(client).or_default() += 1;
            }
        }
        assert_eq!(per_client.len(), CLIENTS.len());
        // Zipf-like: the top client dwarfs the last one.
        assert!(per_client["acme"] > 10 * per_client["everest"]);

        for outside in OUTSIDE_URLS {
            assert!(urls.contains(&outside), "no {outside}");
            assert_eq!(client_of(outside), None);
        }
        let names: HashSet<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
        let expected = [
            "page_view",
            "session_start",
            "click",
            "scroll",
            "user_engagement",
            "first_visit",
        ];
        assert_eq!(names, expected.into_iter().collect());
        let mut per_name: HashMap<&str, usize> = HashMap::new();
        for event in events {
            *per_name.entry(event.event_name.as_str()).or_default() += 1;
        }
        let page_views = per_name["page_view"];
        assert!(per_name.values().all(|n| *n <= page_views));
        assert!(page_views * 10 > events.len() * 4, "{per_name:?}");
        assert!(events
            .iter()
            .any(|e| e.event_name == "session_start" && e.page_location.is_none()));
        assert!(events
            .iter()
            .filter(|e| e.event_name == "user_engagement")
            .all(|e| e.page_location.is_none()));
    }

    #[test]
    fn a_user_stays_with_their_client() {
        let events = events();
        let mut clients_of_user: HashMap<&str, HashSet<&str>> = HashMap::new();
        for event in events {
            if let Some(client) = event.page_location.as_deref().and_then(client_of) {
                clients_of_user
                    .entry(&event.user_pseudo_id)
                    .or_default()
                    .insert(client);
            }
        }
        let single = clients_of_user.values().filter(|c| c.len() == 1).count();
        assert!(single * 100 > clients_of_user.len() * 95);
        assert!(clients_of_user.values().all(|c| c.len() <= 2));
    }

    async fn sqlite_pool(path: &std::path::Path) -> SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("open sqlite")
    }

    #[tokio::test]
    async fn ensure_sqlite_creates_once_then_leaves_the_table_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = sqlite_pool(&dir.path().join("demo.sqlite")).await;
        assert!(ensure_sqlite(&pool, anchor()).await.expect("first load"));
        assert!(!ensure_sqlite(&pool, anchor()).await.expect("second call"));

        let expected = events();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count as usize, expected.len());
        let (date, timestamp, name, user, page): (String, i64, String, String, Option<String>) =
            sqlx::query_as(
                "SELECT event_date, event_timestamp, event_name, user_pseudo_id, page_location
                 FROM events ORDER BY rowid LIMIT 1",
            )
            .fetch_one(&pool)
            .await
            .expect("first row");
        let first = &expected[0];
        assert_eq!(
            (date, timestamp, name, user, page),
            (
                first.event_date.clone(),
                first.event_timestamp,
                first.event_name.clone(),
                first.user_pseudo_id.clone(),
                first.page_location.clone()
            )
        );
        let indexes: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'",
        )
        .fetch_one(&pool)
        .await
        .expect("indexes");
        assert_eq!(indexes, 1);
    }

    #[tokio::test]
    async fn ensure_sqlite_leaves_an_existing_table_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = sqlite_pool(&dir.path().join("mine.sqlite")).await;
        sqlx::query(CREATE_TABLE)
            .execute(&pool)
            .await
            .expect("create");
        assert!(!ensure_sqlite(&pool, anchor()).await.expect("call"));
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn demo_data_of_an_earlier_day_is_regenerated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = sqlite_pool(&dir.path().join("demo.sqlite")).await;
        let yesterday = anchor() - chrono::Days::new(1);
        assert!(ensure_sqlite(&pool, yesterday).await.expect("first start"));
        assert!(!ensure_sqlite(&pool, yesterday).await.expect("same day"));
        assert!(ensure_sqlite(&pool, anchor()).await.expect("next day"));
        let newest: String = sqlx::query_scalar("SELECT MAX(event_date) FROM events")
            .fetch_one(&pool)
            .await
            .expect("newest");
        assert_eq!(newest, anchor().format("%Y%m%d").to_string());
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count as usize, generate(anchor()).len());
    }

    #[tokio::test]
    async fn racing_loaders_fill_the_table_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("race.sqlite");
        // Two pools stand in for two processes opening the same file.
        let (first, second) = (sqlite_pool(&path).await, sqlite_pool(&path).await);
        let (a, b) = tokio::join!(
            ensure_sqlite(&first, anchor()),
            ensure_sqlite(&second, anchor())
        );
        let created = [a.expect("first loader"), b.expect("second loader")];
        assert_eq!(created.iter().filter(|c| **c).count(), 1);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&first)
            .await
            .expect("count");
        assert_eq!(count as usize, events().len());
    }
}
