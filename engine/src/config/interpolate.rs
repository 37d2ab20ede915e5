//! `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` in string values, resolved from
//! the environment before the schema sees the document. `$$` writes a literal `$`.
//!
//! Which resolved values are secrets (redacted from every log line and message about the
//! file): a value written `${secret:VAR}`; a value under a key, or from a variable, whose
//! name says it is one (it contains `token`, `secret`, `password`, `passwd`, `key`,
//! `credential` or `auth`, in any case: `access_token`, `Authorization`,
//! `HUBSPOT_ACCESS_TOKEN`); and the password of a URL with credentials
//! (`postgres://user:PASSWORD@host`). Anything else (`${BASE_URL}`, `${HOST}`) is shown
//! as it is, so that an admin can read the messages about it.

use serde_json::Value;

/// Where an interpolation failed, as a message; the caller adds file and path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InterpolationError(pub String);

/// Replaces every expression in every string of `document`, in place.
///
/// Returns the resolved values that are secrets (see the module), which the loader
/// redacts from every message it prints about this file. On failure returns each failing
/// JSON pointer with its error.
pub fn interpolate_document(
    document: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Vec<(String, InterpolationError)>> {
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    walk(
        document,
        String::new(),
        false,
        env,
        &mut resolved,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// Whether a key or variable name says its value is a secret.
pub fn sensitive_name(name: &str) -> bool {
    const WORDS: [&str; 7] = [
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "credential",
        "auth",
    ];
    let name = name.to_ascii_lowercase();
    WORDS.iter().any(|word| name.contains(word))
}

fn walk(
    value: &mut Value,
    pointer: String,
    sensitive: bool,
    env: &dyn Fn(&str) -> Option<String>,
    resolved: &mut Vec<String>,
    errors: &mut Vec<(String, InterpolationError)>,
) {
    match value {
        Value::String(text) => {
            let mut values = Vec::new();
            match interpolate(text, env, &mut values) {
                Ok(Some(replaced)) => *text = replaced,
                Ok(None) => {}
                Err(err) => errors.push((pointer, err)),
            }
            resolved.extend(values.into_iter().filter_map(|v| v.secret(sensitive)));
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let pointer = format!("{pointer}/{index}");
                walk(item, pointer, sensitive, env, resolved, errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                let pointer = format!("{pointer}/{escaped}");
                walk(item, pointer, sensitive_name(key), env, resolved, errors);
            }
        }
        _ => {}
    }
}

/// One value taken from the environment, and what says whether it is a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub value: String,
    /// Written `${secret:VAR}`, or from a variable named like a secret.
    pub marked: bool,
}

impl Resolved {
    /// The part of the value to redact, if any, given whether its key is sensitive.
    fn secret(self, sensitive_key: bool) -> Option<String> {
        if self.marked || sensitive_key {
            return Some(self.value);
        }
        let url = url::Url::parse(&self.value).ok()?;
        url.password().map(|password| {
            percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned()
        })
    }
}

/// Interpolates one string; `Ok(None)` when it holds no expression.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    resolved: &mut Vec<Resolved>,
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
    resolved: &mut Vec<Resolved>,
) -> Result<String, InterpolationError> {
    let (marked, expression) = match expression.strip_prefix("secret:") {
        Some(rest) => (true, rest),
        None => (false, expression),
    };
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
            "`${{{expression}}}` is not a valid expression: use ${{VAR}}, ${{secret:VAR}}, ${{VAR:-default}} or ${{VAR:+value}}"
        )));
    }
    // As in the shell, a variable set to the empty string counts as unset for `:-` and `:+`.
    let value = env(name).filter(|v| !v.is_empty());
    let expanded = match (operator, value) {
        (":+", Some(_)) => word.unwrap_or_default().to_owned(),
        (":+", None) => String::new(),
        (_, Some(value)) => {
            resolved.push(Resolved {
                value: value.clone(),
                marked: marked || sensitive_name(name),
            });
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
            Vec::<String>::new()
        );
        assert_eq!(doc, json!({"url": "db.local"}));
    }

    #[test]
    fn only_secrets_are_collected_for_redaction() {
        let env = |name: &str| match name {
            "HOST" => Some("db.local".into()),
            "PLAIN" => Some("plain-value".into()),
            "API_TOKEN" => Some("tok-123".into()),
            "DSN" => Some("postgres://app:p%40ss-word@db.local/x".into()),
            _ => None,
        };
        let mut doc = json!({
            "base_url": "https://${HOST}/v1",
            "marked": "${secret:PLAIN}",
            "by_variable": "x=${API_TOKEN}",
            "headers": {"Authorization": "Bearer ${PLAIN}"},
            "config": {"access_token": "${PLAIN}", "list_key": ["${PLAIN}"]},
            "url": "${DSN}",
            "fallback": "${secret:MISSING:-default-one}",
        });
        let secrets = interpolate_document(&mut doc, &env).unwrap();
        assert_eq!(doc["marked"], "plain-value");
        assert_eq!(doc["fallback"], "default-one");
        assert!(!secrets.contains(&"db.local".to_owned()), "{secrets:?}");
        assert!(secrets.contains(&"tok-123".to_owned()), "{secrets:?}");
        assert!(secrets.contains(&"p@ss-word".to_owned()), "{secrets:?}");
        assert_eq!(
            secrets.iter().filter(|s| *s == "plain-value").count(),
            4,
            "{secrets:?}"
        );
        assert!(
            !secrets.iter().any(|s| s.contains("postgres://")),
            "{secrets:?}"
        );
    }
}
