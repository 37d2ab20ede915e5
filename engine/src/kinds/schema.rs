//! The source-file schema (`schemas/source.schema.json`), generated: the common fields
//! from `config::raw`, each kind's `connection` and query shapes from its own
//! `config.rs`, all described by their `///` comments. The checked-in file is what this
//! generates; a test fails when they differ, so the schema editors use and the typed
//! config cannot drift. Regenerate with
//! `METRICS_HUB_WRITE_SCHEMA=1 cargo test -p metrics-hub --lib schema`.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::config::raw::SourceConfig;
use crate::model::Dataset;

/// What a kind contributes to the schema: `$defs/kind-NAME`, applied when `kind` is NAME.
pub struct KindSchema {
    /// What a source of this kind is.
    pub description: &'static str,
    /// `connection:`.
    pub connection: Schema,
    /// One entry of `queries:`.
    pub query: Schema,
    /// Top-level keys the kind requires besides id, name and kind.
    pub required: &'static [&'static str],
    /// Top-level keys the kind refuses.
    pub refused: &'static [&'static str],
}

/// Where the checked-in schema's `$id` says it lives.
const SCHEMA_ID: &str = "https://metrics-hub.example/schemas/source.schema.json";

/// The whole schema document, as checked in.
pub fn source_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut root = generator.root_schema_for::<SourceConfig>().to_value();
    let kinds: Vec<(&str, KindSchema)> = super::KINDS
        .iter()
        .map(|(name, schema)| (*name, schema(&mut generator)))
        .collect();
    let mut defs = generator.take_definitions(true);
    let mut branches = Vec::new();
    for (name, kind) in kinds {
        defs.insert(format!("kind-{name}"), kind_def(kind));
        branches.push(json!({
            "if": {"required": ["kind"], "properties": {"kind": {"const": name}}},
            "then": {"$ref": format!("#/$defs/kind-{name}")}
        }));
    }
    root["properties"]["kind"]["enum"] = json!(super::kind_names());
    let mut document = document(root, branches, defs);
    tidy(&mut document);
    document
}

/// What schemars writes that a source file should not get: `null` allowed for every
/// optional key (serde would read it as absent, but a wrapping `anyOf` turns the error
/// of a wrong `cache.ttl` into "not valid under any of the schemas" at `/cache`), and
/// what a reader does not need: line breaks of doc comments inside a paragraph,
/// `default: null`, integer `format`s.
///
/// schemars appends the `null` of an `Option` last (to `type`, to `enum`, or as the last
/// `anyOf` branch); a shape that really takes null (a mapping's default) lists it first.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            strip_trailing_null(map);
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = unwrap_lines(text);
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if map.get("format").is_some_and(Value::is_string) {
                map.remove("format");
            }
            if let Some(Value::Array(options)) = map.get_mut("anyOf") {
                *options = std::mem::take(options)
                    .into_iter()
                    .flat_map(|option| match option {
                        Value::Object(inner) if inner.len() == 1 && inner.contains_key("anyOf") => {
                            inner["anyOf"].as_array().cloned().unwrap_or_default()
                        }
                        other => vec![other],
                    })
                    .collect();
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// Removes the `null` an `Option` added (see [`tidy`]).
fn strip_trailing_null(map: &mut Map<String, Value>) {
    let null_type = json!({"type": "null"});
    for (key, null) in [
        ("type", Value::from("null")),
        ("enum", Value::Null),
        ("anyOf", null_type),
    ] {
        let Some(Value::Array(items)) = map.get_mut(key) else {
            continue;
        };
        if items.len() > 1 && items.last() == Some(&null) {
            items.pop();
        }
        if items.len() == 1 && key != "enum" {
            let only = items.pop().unwrap_or_default();
            map.remove(key);
            match (key, only) {
                ("type", only) => {
                    map.insert("type".into(), only);
                }
                (_, Value::Object(inner)) => map.extend(inner),
                _ => {}
            }
        }
    }
}

/// Joins the lines of each paragraph; paragraphs stay apart.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `$defs/kind-NAME`: the kind's connection and query shapes, what it requires and refuses.
fn kind_def(kind: KindSchema) -> Value {
    let query = kind.query.to_value();
    let queries: Map<String, Value> = Dataset::ALL
        .iter()
        .map(|d| (d.as_str().to_owned(), query.clone()))
        .collect();
    let mut def = json!({
        "description": kind.description,
        "required": kind.required,
        "properties": {
            "connection": kind.connection.to_value(),
            "queries": {"properties": queries}
        }
    });
    for key in kind.refused {
        def["properties"][key] = false.into();
    }
    def
}

/// The generated parts in the order a reader expects them, with `allOf` per kind.
fn document(root: Value, branches: Vec<Value>, defs: Map<String, Value>) -> Value {
    let mut document = Map::new();
    document.insert("$schema".into(), root["$schema"].clone());
    document.insert("$id".into(), SCHEMA_ID.into());
    document.insert(
        "$comment".into(),
        "Generated from the raw config shapes (engine/src/config/raw.rs, engine/src/kinds/*/config.rs): change those, then run METRICS_HUB_WRITE_SCHEMA=1 cargo test -p metrics-hub --lib schema.".into(),
    );
    for key in [
        "title",
        "description",
        "type",
        "required",
        "additionalProperties",
        "properties",
    ] {
        if let Some(value) = root.get(key) {
            document.insert(key.into(), value.clone());
        }
    }
    document.insert("allOf".into(), Value::Array(branches));
    document.insert("$defs".into(), Value::Object(defs));
    Value::Object(document)
}

/// A generator as the schema uses it, for tests of one shape.
pub fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::SOURCE_SCHEMA;

    fn checked_in() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/source.schema.json")
    }

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&source_schema()).unwrap() + "\n";
        if std::env::var_os("METRICS_HUB_WRITE_SCHEMA").is_some() {
            std::fs::write(checked_in(), &generated).unwrap();
        }
        assert!(
            generated == SOURCE_SCHEMA || std::env::var_os("METRICS_HUB_WRITE_SCHEMA").is_some(),
            "schemas/source.schema.json is not what the raw config shapes generate: run \
             METRICS_HUB_WRITE_SCHEMA=1 cargo test -p metrics-hub --lib schema and commit it"
        );
    }

    #[test]
    fn every_kind_has_its_branch_and_definition() {
        let schema = source_schema();
        let names = crate::kinds::kind_names();
        assert_eq!(schema["properties"]["kind"]["enum"], json!(names));
        for name in &names {
            let def = &schema["$defs"][format!("kind-{name}")];
            assert!(def["description"].is_string(), "{name}");
            assert!(def["properties"]["connection"].is_object(), "{name}");
        }
        assert_eq!(schema["allOf"].as_array().unwrap().len(), names.len());
    }

    #[test]
    fn tagged_unions_become_if_then_with_every_key_described() {
        let schema = source_schema();
        let filter = &schema["$defs"]["filter"];
        assert_eq!(
            filter["properties"]["type"]["enum"],
            json!(["string", "integer", "date", "enum"])
        );
        assert!(filter.get("oneOf").is_none());
        let integer = filter["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["if"]["properties"]["type"]["const"] == "integer")
            .unwrap();
        assert_eq!(integer["then"]["additionalProperties"], false);
        assert!(integer["then"]["properties"].get("max_length").is_none());
        let max_length = filter["properties"]["max_length"]["description"]
            .as_str()
            .unwrap();
        assert!(max_length.starts_with("string only: "), "{max_length}");
    }
}
