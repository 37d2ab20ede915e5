//! Dotted paths into JSON answers (`data.items`, `paging.next.after`, `results.0.rows`,
//! `data.-1.id`): where a REST source finds its records, cursors, totals and aggregated
//! fields.

use std::fmt;

use serde_json::{Map, Value};

/// A path of object keys, where an all-digit segment also indexes an array and a negative
/// one counts from its end (`-1` is the last item: Stripe's cursor is the last record's
/// id, `data.-1.id`). The empty path is the document itself. Keys that contain a dot cannot be addressed; no API in sight
/// needs them, and a quoting syntax would be one more thing for admins to learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<String>,
}

impl JsonPath {
    /// The whole document.
    pub fn root() -> JsonPath {
        JsonPath {
            text: String::new(),
            segments: Vec::new(),
        }
    }

    /// Parses `a.b.0.c`; `""` and `"."` mean the document itself.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let text = text.trim();
        if text.is_empty() || text == "." {
            return Ok(JsonPath::root());
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments
            .iter()
            .any(|s| s.trim().is_empty() || s.trim() != s)
        {
            return Err(format!(
                "`{text}` is not a path: write keys separated by dots, e.g. data.items"
            ));
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The path as written (`.` for the root, so messages always name something).
    pub fn as_str(&self) -> &str {
        if self.text.is_empty() {
            "."
        } else {
            &self.text
        }
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |current, segment| match current {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => index(segment, items.len()).and_then(|i| items.get(i)),
                _ => None,
            })
    }

    /// Moves the value at this path out of `value`, leaving null behind; used for a page's
    /// records so they are not copied.
    pub fn take(&self, value: &mut Value) -> Option<Value> {
        let mut current = value;
        for segment in &self.segments {
            current = match current {
                Value::Object(map) => map.get_mut(segment)?,
                Value::Array(items) => {
                    let i = index(segment, items.len())?;
                    items.get_mut(i)?
                }
                _ => return None,
            };
        }
        Some(current.take())
    }

    /// Sets the value at this path, creating objects on the way (and replacing anything
    /// that is not an object where one is needed). Used to put a cursor into a body.
    pub fn set(&self, target: &mut Value, new: Value) {
        let Some((last, parents)) = self.segments.split_last() else {
            *target = new;
            return;
        };
        let mut current = target;
        for segment in parents {
            if !current.is_object() {
                *current = Value::Object(Map::new());
            }
            current = current
                .as_object_mut()
                .map(|map| map.entry(segment.clone()).or_insert(Value::Null))
                .expect("made an object just above");
        }
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        if let Some(map) = current.as_object_mut() {
            map.insert(last.clone(), new);
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The array position `segment` names in a list of `len` items: `2` is the third, `-1`
/// the last.
fn index(segment: &str, len: usize) -> Option<usize> {
    match segment.strip_prefix('-') {
        Some(back) => len.checked_sub(back.parse::<usize>().ok().filter(|&n| n > 0)?),
        None => segment.parse().ok(),
    }
}

/// How a JSON value is named in error messages ("a list", "an object", ...).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_nested_keys_and_array_indexes() {
        let doc = json!({"data": {"items": [1, 2]}, "pages": [{"next": "x"}]});
        let path = |p: &str| JsonPath::parse(p).unwrap();
        assert_eq!(path("data.items").get(&doc), Some(&json!([1, 2])));
        assert_eq!(path("pages.0.next").get(&doc), Some(&json!("x")));
        assert_eq!(path("").get(&doc), Some(&doc));
        assert_eq!(path("data.missing").get(&doc), None);
        assert_eq!(path("data.items.first").get(&doc), None);
        assert_eq!(path("data.items.-1").get(&doc), Some(&json!(2)));
        assert_eq!(path("data.items.-2").get(&doc), Some(&json!(1)));
        assert_eq!(path("data.items.-3").get(&doc), None);
        assert_eq!(path("data.items.-0").get(&doc), None);
        assert_eq!(path("pages.-1.next").get(&json!({"pages": []})), None);
    }

    #[test]
    fn refuses_empty_segments() {
        for bad in ["data..items", ".data", "data.", "data. items"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn take_moves_out_and_set_creates_objects() {
        let mut doc = json!({"data": {"items": [1, 2]}});
        let items = JsonPath::parse("data.items").unwrap();
        assert_eq!(items.take(&mut doc), Some(json!([1, 2])));
        assert_eq!(doc, json!({"data": {"items": null}}));

        let mut body = json!({"filter": {"from": "x"}});
        JsonPath::parse("page.after")
            .unwrap()
            .set(&mut body, json!("c2"));
        JsonPath::parse("filter.limit")
            .unwrap()
            .set(&mut body, json!(5));
        assert_eq!(
            body,
            json!({"filter": {"from": "x", "limit": 5}, "page": {"after": "c2"}})
        );
    }
}
