//! The one collector of problems in a source file. Every check records what is wrong at
//! a JSON pointer and goes on, so that a file's errors are all reported together; the
//! loader turns them into [`super::ConfigError`]s with file and line at the end.
//!
//! The readers of common value shapes (durations, bounded numbers) live here too, so
//! every kind spells their errors the same way.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::raw::Number;

/// Problems of one file, as (JSON pointer, message) in the order found.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<(String, String)>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Records `message` at `pointer`.
    pub fn add(&mut self, pointer: &str, message: impl Into<String>) {
        self.list.push((pointer.to_owned(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems found, as (pointer, message).
    pub fn into_list(self) -> Vec<(String, String)> {
        self.list
    }

    /// Deserializes `value`, recording a failure under `pointer` plus the failing path.
    pub fn parse<T: DeserializeOwned>(&mut self, pointer: &str, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize(value.clone()) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                // serde_path_to_error writes `a.b[1].c`, or `.` for the value itself.
                let inner = err.path().to_string().replace('[', ".").replace(']', "");
                let mut path = pointer.to_owned();
                for part in inner.split('.').filter(|part| !part.is_empty()) {
                    path.push('/');
                    path.push_str(part);
                }
                self.add(&path, err.into_inner().to_string());
                None
            }
        }
    }

    /// A duration as the schema spells it: whole numbers each with ms, s, m, h or d, e.g.
    /// `1h 30m`; `default` when absent or empty. humantime alone would also take
    /// `5 minutes`, which the schema (and editors) refuse.
    pub fn duration(&mut self, pointer: &str, value: Option<&str>, default: Duration) -> Duration {
        let text = match value.map(str::trim) {
            None | Some("") => return default,
            Some(text) => text,
        };
        let simple = text.split_whitespace().all(|part| {
            let unit_at = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            unit_at > 0 && matches!(&part[unit_at..], "ms" | "s" | "m" | "h" | "d")
        });
        match humantime::parse_duration(text) {
            Ok(parsed) if simple => parsed,
            _ => {
                self.add(
                    pointer,
                    format!("`{text}` is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1h 30m"),
                );
                default
            }
        }
    }

    /// A whole number within `range`, `default` when absent; out of range or not a number
    /// is recorded as "WHAT must be a whole number from A to B".
    pub fn bounded(
        &mut self,
        pointer: &str,
        value: Option<&Number>,
        range: RangeInclusive<i64>,
        default: i64,
        what: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(number) => match number.value() {
                Some(n) if range.contains(&n) => n,
                _ => {
                    self.add(
                        pointer,
                        format!(
                            "{what} must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    );
                    default
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_failures_point_inside_the_value() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            items: Vec<u32>,
        }
        let mut problems = Problems::new();
        let parsed: Option<Shape> =
            problems.parse("/connection", &serde_json::json!({"items": [1, "two"]}));
        assert!(parsed.is_none());
        let list = problems.into_list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "/connection/items/1");
    }

    #[test]
    fn durations_take_the_schema_spelling_only() {
        let mut problems = Problems::new();
        let default = Duration::from_secs(7);
        assert_eq!(
            problems.duration("/t", Some("1h 30m"), default),
            Duration::from_secs(5400)
        );
        assert_eq!(problems.duration("/t", Some(" "), default), default);
        assert_eq!(problems.duration("/t", None, default), default);
        assert!(problems.is_empty());
        assert_eq!(problems.duration("/t", Some("5 minutes"), default), default);
        assert_eq!(
            problems.into_list(),
            vec![(
                "/t".to_owned(),
                "`5 minutes` is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1h 30m".to_owned()
            )]
        );
    }

    #[test]
    fn bounded_numbers_read_text_and_name_their_range() {
        let mut problems = Problems::new();
        let text = Number::Text(" 12 ".into());
        assert_eq!(problems.bounded("/n", Some(&text), 1..=64, 8, "x"), 12);
        assert_eq!(problems.bounded("/n", None, 1..=64, 8, "x"), 8);
        let big = Number::Integer(65);
        assert_eq!(problems.bounded("/n", Some(&big), 1..=64, 8, "size"), 8);
        assert_eq!(
            problems.into_list(),
            vec![(
                "/n".to_owned(),
                "size must be a whole number from 1 to 64".to_owned()
            )]
        );
    }
}
