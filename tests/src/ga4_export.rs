//! GA4's BigQuery export as the stand-ins hold it: rows of `events_YYYYMMDD` and
//! `events_intraday_YYYYMMDD` tables derived deterministically from the demo generator's
//! events, the stand-in's byte model, and the flat rows the `demo` and `postgres` sources
//! read for the same export.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use metrics_hub::kinds::sql::demo::DemoEvent;

/// One `event_params` entry of a GA4 export row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventParam {
    pub key: String,
    pub string_value: Option<String>,
    pub int_value: Option<i64>,
}

/// One row of a GA4 export table (the columns the queries read).
#[derive(Debug, Clone, PartialEq)]
pub struct Ga4Event {
    /// `YYYYMMDD`, in the property's time zone.
    pub event_date: String,
    pub event_timestamp: i64,
    pub event_name: String,
    pub user_pseudo_id: String,
    pub event_params: Vec<EventParam>,
}

impl Ga4Event {
    /// The export row GA4 would write for a demo event: `page_location` as a string param,
    /// plus the integer params GA4 always adds.
    pub fn from_demo(event: &DemoEvent) -> Ga4Event {
        let int_param = |key: &str, value: i64| EventParam {
            key: key.to_owned(),
            string_value: None,
            int_value: Some(value),
        };
        let mut event_params = vec![
            int_param("ga_session_id", event.event_timestamp / 1_000_000 / 1800),
            int_param("engagement_time_msec", event.event_timestamp % 60_000),
        ];
        if let Some(url) = &event.page_location {
            let page = EventParam {
                key: "page_location".to_owned(),
                string_value: Some(url.clone()),
                int_value: None,
            };
            event_params.insert(1, page);
        }
        Ga4Event {
            event_date: event.event_date.clone(),
            event_timestamp: event.event_timestamp,
            event_name: event.event_name.clone(),
            user_pseudo_id: event.user_pseudo_id.clone(),
            event_params,
        }
    }

    /// The flat row of the `events` table the `demo` and `postgres` sources read.
    pub fn to_demo(&self) -> DemoEvent {
        DemoEvent {
            event_date: self.event_date.clone(),
            event_timestamp: self.event_timestamp,
            event_name: self.event_name.clone(),
            user_pseudo_id: self.user_pseudo_id.clone(),
            page_location: self.page_location().map(str::to_owned),
        }
    }

    pub fn page_location(&self) -> Option<&str> {
        self.event_params
            .iter()
            .find(|p| p.key == "page_location")
            .and_then(|p| p.string_value.as_deref())
    }

    /// What reading this row costs, in the stand-in's byte model: every column's size.
    pub fn bytes(&self) -> u64 {
        let params: usize = self
            .event_params
            .iter()
            .map(|p| p.key.len() + p.string_value.as_ref().map_or(8, String::len))
            .sum();
        (self.event_date.len() + 8 + self.event_name.len() + self.user_pseudo_id.len() + params)
            as u64
    }

    /// Appends the row as the SQL worker loads it, one JSON line tagged with its table.
    /// Written by hand, not through `serde_json::Value`: an export has some 200,000 rows,
    /// and building a `Value` per row takes tens of seconds in a debug build.
    pub fn write_json_line(&self, table: &str, out: &mut String) {
        use std::fmt::Write;
        let text = |value: &str| serde_json::to_string(value).unwrap_or_default();
        let _ = write!(
            out,
            r#"{{"_table":{},"event_date":{},"event_timestamp":{},"event_name":{},"user_pseudo_id":{},"event_params":["#,
            text(table),
            text(&self.event_date),
            self.event_timestamp,
            text(&self.event_name),
            text(&self.user_pseudo_id),
        );
        for (index, param) in self.event_params.iter().enumerate() {
            let string = param
                .string_value
                .as_deref()
                .map_or("null".to_owned(), text);
            let int = param.int_value.map_or("null".to_owned(), |n| n.to_string());
            let _ = write!(
                out,
                r#"{}{{"key":{},"value":{{"string_value":{string},"int_value":{int}}}}}"#,
                if index == 0 { "" } else { "," },
                text(&param.key),
            );
        }
        out.push_str("]}\n");
    }
}

/// The prefix of a streaming export's tables, `events_intraday_YYYYMMDD`.
pub const INTRADAY: &str = "events_intraday_";

/// A GA4 export: table name -> rows.
#[derive(Debug, Clone, Default)]
pub struct Ga4Export {
    pub tables: BTreeMap<String, Vec<Ga4Event>>,
}

fn yyyymmdd(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

impl Ga4Export {
    /// Daily tables only: every event in `events_` + its date.
    pub fn daily(events: &[DemoEvent]) -> Ga4Export {
        let mut export = Ga4Export::default();
        for event in events {
            export.push(format!("events_{}", event.event_date), event);
        }
        export
    }

    /// A streaming export: `today` only in its intraday table; `both` in its daily table
    /// and still in its intraday table, as between GA4 writing the daily table and
    /// removing the intraday one. That intraday table holds what had streamed by 18:00
    /// UTC, so it differs from the daily table and preferring one is visible.
    pub fn streaming(events: &[DemoEvent], today: NaiveDate, both: NaiveDate) -> Ga4Export {
        let (today, both) = (yyyymmdd(today), yyyymmdd(both));
        let mut export = Ga4Export::default();
        for event in events {
            let date = &event.event_date;
            if *date == today {
                export.push(format!("{INTRADAY}{date}"), event);
                continue;
            }
            export.push(format!("events_{date}"), event);
            let hour = event.event_timestamp.rem_euclid(86_400_000_000) / 3_600_000_000;
            if *date == both && hour < 18 {
                export.push(format!("{INTRADAY}{date}"), event);
            }
        }
        export
    }

    fn push(&mut self, table: String, event: &DemoEvent) {
        let rows = self.tables.entry(table).or_default();
        rows.push(Ga4Event::from_demo(event));
    }

    /// The days that have a daily table.
    fn daily_days(&self) -> BTreeSet<&str> {
        self.tables
            .keys()
            .filter(|t| !t.starts_with(INTRADAY))
            .filter_map(|t| t.strip_prefix("events_"))
            .collect()
    }

    /// Whether `table` is an intraday table of a day whose daily table exists too.
    fn superseded(&self, table: &str, daily: &BTreeSet<&str>) -> bool {
        table
            .strip_prefix(INTRADAY)
            .is_some_and(|day| daily.contains(day))
    }

    /// The export without intraday tables that a daily table has superseded: what the
    /// export holds once GA4 has removed them.
    pub fn without_superseded_intraday(&self) -> Ga4Export {
        let daily = self.daily_days();
        let tables = self
            .tables
            .iter()
            .filter(|(name, _)| !self.superseded(name, &daily))
            .map(|(name, rows)| (name.clone(), rows.clone()))
            .collect();
        Ga4Export { tables }
    }

    /// Each event once, as the flat `events` rows of the `demo` and `postgres` sources:
    /// a day's daily table when it has one, its intraday table otherwise.
    pub fn events(&self) -> Vec<DemoEvent> {
        let mut events: Vec<DemoEvent> = self
            .without_superseded_intraday()
            .tables
            .values()
            .flatten()
            .map(Ga4Event::to_demo)
            .collect();
        events.sort_by_key(|e| e.event_timestamp);
        events
    }

    /// What reading `tables` costs in the stand-in's byte model (unknown names cost 0).
    pub fn bytes_of<S: AsRef<str>>(&self, tables: &[S]) -> u64 {
        tables
            .iter()
            .filter_map(|t| self.tables.get(t.as_ref()))
            .flatten()
            .map(Ga4Event::bytes)
            .sum()
    }

    /// Every row as one JSON line tagged with its table, for the SQL worker.
    pub fn to_json_lines(&self) -> String {
        let mut text = String::new();
        for (table, rows) in &self.tables {
            for row in rows {
                row.write_json_line(table, &mut text);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(date: &str, hour: i64) -> DemoEvent {
        let day = NaiveDate::parse_from_str(date, "%Y%m%d").unwrap();
        let midnight = day
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        DemoEvent {
            event_date: date.to_owned(),
            event_timestamp: midnight + hour * 3_600_000_000,
            event_name: "page_view".to_owned(),
            user_pseudo_id: format!("u{hour}"),
            page_location: Some("https://acme.8020rei.com/home".to_owned()),
        }
    }

    #[test]
    fn a_streaming_export_has_intraday_tables_and_one_day_in_both() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y%m%d").unwrap();
        let events = [
            event("20261129", 3),
            event("20261130", 3),
            event("20261130", 20),
            event("20261201", 5),
        ];
        let export = Ga4Export::streaming(&events, day("20261201"), day("20261130"));
        let sizes: Vec<(&str, usize)> = export
            .tables
            .iter()
            .map(|(t, r)| (t.as_str(), r.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("events_20261129", 1),
                ("events_20261130", 2),
                ("events_intraday_20261130", 1),
                ("events_intraday_20261201", 1),
            ]
        );
        assert_eq!(export.events(), events.to_vec());
        let settled = export.without_superseded_intraday();
        assert!(!settled.tables.contains_key("events_intraday_20261130"));
        assert!(settled.tables.contains_key("events_intraday_20261201"));
        let first = export.to_json_lines();
        let first: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        assert_eq!(first["_table"], "events_20261129");
        assert_eq!(
            first["event_params"][1]["value"]["string_value"],
            "https://acme.8020rei.com/home"
        );
        assert_eq!(
            first["event_params"][0]["value"]["int_value"],
            first["event_timestamp"].as_i64().unwrap() / 1_000_000 / 1800
        );
        let one = export.bytes_of(&["events_20261129"]);
        assert!(one > 0);
        assert_eq!(export.bytes_of(&["events_20261129", "nope"]), one);
    }
}
