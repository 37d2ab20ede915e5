//! `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` in string values, resolved from
//! the environment before the schema sees the document. `$$` writes a literal `$`.

use serde_json::Value;

/// Where an interpolation failed, as a message; the caller adds file and path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InterpolationError(pub String);

/// Replaces every expression in every string of `document`, in place.
///
/// Returns the values that came from the environment: they may be secrets, so the loader
/// redacts them from every message it prints about this file. On failure returns each
/// failing JSON pointer with its error.
pub fn interpolate_document(
    document: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Vec<(String, InterpolationError)>> {
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    walk(document, String::new(), env, &mut resolved, &mut errors);
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn walk(
    value: &mut Value,
    pointer: String,
    env: &dyn Fn(&str) -> Option<String>,
    resolved: &mut Vec<String>,
    errors: &mut Vec<(String, InterpolationError)>,
) {
    match value {
        Value::String(text) => match interpolate(text, env, resolved) {
            Ok(Some(replaced)) => *text = replaced,
            Ok(None) => {}
            Err(err) => errors.push((pointer, err)),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                walk(item, format!("{pointer}/{index}"), env, resolved, errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                walk(item, format!("{pointer}/{escaped}"), env, resolved, errors);
            }
        }
        _ => {}
    }
}

/// Interpolates one string; `Ok(None)` when it holds no expression.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    resolved: &mut Vec<String>,
) -> Result<Option<String>, InterpolationError> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(InterpolationError(format!(
                    "unclosed `${{` in {text:?}: write ${{VAR}}, or $$ for a literal dollar sign"
                )));
            };
            out.push_str(&expand(&body[..end], env, resolved)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn expand(
    expression: &str,
    env: &dyn Fn(&str) -> Option<String>,
    resolved: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    let (name, operator, word) = match expression.find(":-").or_else(|| expression.find(":+")) {
        Some(at) => (
            &expression[..at],
            &expression[at..at + 2],
            Some(&expression[at + 2..]),
        ),
        None => (expression, "", None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(InterpolationError(format!(
            "`${{{expression}}}` is not a valid expression: use ${{VAR}}, ${{VAR:-default}} or ${{VAR:+value}}"
        )));
    }
    // As in the shell, a variable set to the empty string counts as unset for `:-` and `:+`.
    let value = env(name).filter(|v| !v.is_empty());
    let expanded = match (operator, value) {
        (":+", Some(_)) => word.unwrap_or_default().to_owned(),
        (":+", None) => String::new(),
        (_, Some(value)) => {
            resolved.push(value.clone());
            value
        }
        (":-", None) => word.unwrap_or_default().to_owned(),
        (_, None) => {
            return Err(InterpolationError(format!(
                "environment variable {name} is not set: set it, or give a default with ${{{name}:-default}}"
            )))
        }
    };
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, InterpolationError> {
        interpolate(text, &env, &mut Vec::new()).map(|v| v.unwrap_or_else(|| text.to_owned()))
    }

    #[test]
    fn expands_every_form() {
        assert_eq!(
            run("postgres://${HOST}/x").unwrap(),
            "postgres://db.local/x"
        );
        assert_eq!(run("${MISSING:-5m}").unwrap(), "5m");
        assert_eq!(run("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(run("${HOST:+true}").unwrap(), "true");
        assert_eq!(run("${MISSING:+true}").unwrap(), "");
        assert_eq!(run("cost: $$5 and $x").unwrap(), "cost: $5 and $x");
        assert_eq!(run("${MISSING:-}").unwrap(), "");
    }

    #[test]
    fn unset_variable_without_default_names_it_and_the_fix() {
        let err = run("${DATABASE_URL}").unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL is not set"), "{err}");
        assert!(err.contains("${DATABASE_URL:-default}"), "{err}");
        assert!(run("${bad name}").is_err());
        assert!(run("${OPEN").is_err());
    }

    #[test]
    fn document_errors_carry_their_pointer_and_values_are_collected() {
        let mut doc =
            json!({"connection": {"url": "${HOST}", "pw": "${NOPE}"}, "list": ["${NOPE}"]});
        let errors = interpolate_document(&mut doc, &env).unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, vec!["/connection/pw", "/list/0"]);
        let mut doc = json!({"url": "${HOST}"});
        assert_eq!(
            interpolate_document(&mut doc, &env).unwrap(),
            vec!["db.local"]
        );
        assert_eq!(doc, json!({"url": "db.local"}));
    }
}
