//! The JSON Schema every source file must satisfy (`schemas/source.schema.json`,
//! embedded), and the check of an interpolated document against it with a fix hint for
//! the common failures. Editors use the same file through the YAML language server.
//!
//! The file is generated from the raw config shapes (their `///` comments are its
//! descriptions; see `kinds::schema`), with the helpers at the end of this module for the
//! shapes serde cannot describe by itself: durations, values still holding `${...}`, and
//! tagged unions written as `if`/`then` so errors name the key that is wrong.

use std::sync::OnceLock;

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// The JSON Schema every source file must satisfy; editors use the same file.
pub const SOURCE_SCHEMA: &str = include_str!("../../../schemas/source.schema.json");

fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| validator(SOURCE_SCHEMA))
}

/// A validator of one of the embedded schemas (source files, metric files).
pub fn validator(text: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(text).expect("an embedded schema is JSON");
    // Validated with the draft-7 engine although the file says 2020-12 (for editors):
    // building a 2020-12 validator first compiles the 2020-12 meta-schema, which stays in
    // memory for good and measured ~138 MB of heap against ~22 MB for draft 7. The schemas
    // keep to keywords both drafts share; the tests check the source schema is valid
    // 2020-12 and that this validator and the typed config agree on every fixture.
    // The `regex` engine, not fancy-regex: our patterns need no look-around, and `regex`
    // matches in linear time whatever text a file holds.
    jsonschema::draft7::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .expect("an embedded schema is a valid 2020-12 schema")
}

/// What the JSON Schema says about an interpolated document, as (pointer, message).
pub fn schema_problems(document: &Value) -> Vec<(String, String)> {
    schema()
        .iter_errors(document)
        .map(|err| (err.instance_path.to_string(), schema_message(&err)))
        .collect()
}

/// Adds a hint on how to fix the most common schema failures.
fn schema_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let message = err.to_string();
    match &err.kind {
        Kind::AdditionalProperties { unexpected } => format!(
            "unknown key{} {}: remove it or check its spelling against the schema",
            if unexpected.len() > 1 { "s" } else { "" },
            unexpected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::Required { property } => format!("missing required key {property}: add it"),
        Kind::Pattern { pattern } if pattern.contains("ms|s|m|h") => format!(
            "{} is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1h 30m",
            err.instance
        ),
        Kind::Pattern { .. } if err.instance_path.to_string() == "/id" => format!(
            "{} is not a valid id: use lowercase letters, digits and dashes",
            err.instance
        ),
        _ => message,
    }
}

/// A value that still holds `${...}` after interpolation was not possible to check (an
/// editor sees the raw file): accepted wherever a duration, a flag or a number is
/// expected; the hub checks the interpolated value.
pub const UNINTERPOLATED: &str = r"\$\{[^}]*\}";

/// The schema of a duration written as text, e.g. `500ms`, `30s`, `1h 30m`.
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^(?:[0-9]+(?:ms|s|m|h|d))(?: *[0-9]+(?:ms|s|m|h|d))*$|{UNINTERPOLATED}"),
        "examples": ["500ms", "30s", "5m", "1h 30m"]
    })
}

/// Rewrites the `oneOf` that schemars derives for an internally tagged enum
/// (`#[serde(tag = "...")]`) into one object whose tag lists the variants and an `if` /
/// `then` per variant. A validator then names the offending key (`max_length` on an
/// integer filter) instead of reporting "not valid under any of the schemas", and
/// editors complete every key with its description. Used as `#[schemars(transform)]`.
pub fn tagged_union(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(variants)) = object.remove("oneOf") else {
        return;
    };
    let Some(tag) = variants
        .first()
        .and_then(|v| v["required"][0].as_str())
        .map(str::to_owned)
    else {
        return;
    };
    let union = Union::of(&tag, &variants);
    object.insert("type".into(), "object".into());
    object.insert("required".into(), json!([tag]));
    object.insert("properties".into(), union.properties());
    object.insert("allOf".into(), Value::Array(union.branches));
}

/// The variants of a tagged enum, gathered into one object schema.
struct Union {
    tag: String,
    /// Tag values with their variant's description, in declaration order.
    values: Vec<(String, String)>,
    /// Every property but the tag.
    properties: Vec<UnionProperty>,
    /// `if tag == value then what that variant allows and requires`.
    branches: Vec<Value>,
}

/// One property of a union: its first schema and, per description, the variants that
/// have it with that description.
struct UnionProperty {
    name: String,
    schema: Value,
    described: Vec<(String, Vec<String>)>,
}

impl Union {
    fn of(tag: &str, variants: &[Value]) -> Union {
        let mut union = Union {
            tag: tag.to_owned(),
            values: Vec::new(),
            properties: Vec::new(),
            branches: Vec::new(),
        };
        for variant in variants {
            union.add(variant);
        }
        union
    }

    fn add(&mut self, variant: &Value) {
        let value = variant["properties"][&self.tag]["const"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let about = variant["description"].as_str().unwrap_or_default();
        self.values.push((value.clone(), about.to_owned()));
        let mut allowed = Map::new();
        allowed.insert(self.tag.clone(), true.into());
        let empty = Map::new();
        let properties = variant["properties"].as_object().unwrap_or(&empty);
        let tag = self.tag.clone();
        for (name, property) in properties.iter().filter(|(name, _)| **name != tag) {
            let specific = self.merge(name, property, &value);
            allowed.insert(name.clone(), specific.unwrap_or(Value::Bool(true)));
        }
        let mut then = json!({"properties": allowed});
        let required: Vec<&Value> = variant["required"]
            .as_array()
            .map(|r| r.iter().filter(|k| k.as_str() != Some(&self.tag)).collect())
            .unwrap_or_default();
        if !required.is_empty() {
            then["required"] = json!(required);
        }
        if variant["additionalProperties"] == Value::Bool(false) {
            then["additionalProperties"] = false.into();
        }
        self.branches.push(json!({
            "if": {"required": [self.tag], "properties": {&self.tag: {"const": value}}},
            "then": then,
        }));
    }

    /// Records `property` of variant `value`; returns its own schema when it differs from
    /// the one already recorded under that name (beyond the description).
    fn merge(&mut self, name: &str, property: &Value, value: &str) -> Option<Value> {
        let mut bare = property.clone();
        let about = bare
            .as_object_mut()
            .and_then(|o| o.remove("description"))
            .and_then(|d| d.as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some(known) = self.properties.iter_mut().find(|p| p.name == name) else {
            self.properties.push(UnionProperty {
                name: name.to_owned(),
                schema: bare,
                described: vec![(about, vec![value.to_owned()])],
            });
            return None;
        };
        match known.described.iter_mut().find(|(text, _)| *text == about) {
            Some((_, variants)) => variants.push(value.to_owned()),
            None => known.described.push((about, vec![value.to_owned()])),
        }
        (known.schema != bare).then_some(bare)
    }

    /// The merged `properties`: the tag with every value, then each other property with
    /// a description that says which variants it belongs to when not to all.
    fn properties(&self) -> Value {
        let tag_about = self
            .values
            .iter()
            .map(|(value, about)| format!("{value}: {about}").trim().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let values: Vec<&str> = self.values.iter().map(|(v, _)| v.as_str()).collect();
        let mut properties = Map::new();
        properties.insert(
            self.tag.clone(),
            json!({"description": tag_about, "type": "string", "enum": values}),
        );
        for UnionProperty {
            name,
            schema,
            described,
        } in &self.properties
        {
            let mut schema = schema.clone();
            let about = self.describe(described);
            if let (Some(object), false) = (schema.as_object_mut(), about.is_empty()) {
                let mut ordered = Map::new();
                ordered.insert("description".into(), about.into());
                ordered.extend(std::mem::take(object));
                *object = ordered;
            }
            properties.insert(name.clone(), schema);
        }
        Value::Object(properties)
    }

    fn describe(&self, described: &[(String, Vec<String>)]) -> String {
        let everywhere = described.len() == 1 && described[0].1.len() == self.values.len();
        if everywhere {
            return described[0].0.clone();
        }
        described
            .iter()
            .filter(|(about, _)| !about.is_empty())
            .map(|(about, variants)| {
                let only = if described.len() == 1 { " only" } else { "" };
                format!("{}{only}: {about}", variants.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Collapses the `oneOf` of `const`s that schemars derives for a unit-only enum whose
/// variants have doc comments into a plain `enum`, whose errors list the values.
pub fn plain_enum(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(variants)) = object.get("oneOf") else {
        return;
    };
    let values: Option<Vec<Value>> = variants.iter().map(|v| v.get("const").cloned()).collect();
    if let Some(values) = values {
        object.remove("oneOf");
        object.insert("type".into(), "string".into());
        object.insert("enum".into(), Value::Array(values));
    }
}
