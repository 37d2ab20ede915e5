//! Secrets and their redaction: a leaf every other module may use. A value that came from
//! the environment, or a credential in a source file, travels as a [`Secret`] so that no
//! `{:?}` can print it, and every message about a source goes through [`redact`] first.

use std::fmt;

/// A string that must never be printed: `Debug` shows `Secret(***)` and there is no
/// `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replaces every occurrence of the given secret values in `text` with `***`. Values
/// shorter than four characters are left alone: redacting `1` or `on` would garble every
/// message while protecting nothing.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter22".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter22");
    }

    #[test]
    fn redaction_replaces_every_occurrence_of_long_enough_values() {
        let secrets = vec!["token-123".to_owned(), "on".to_owned()];
        assert_eq!(
            redact("token-123 then token-123 once more, on", &secrets),
            "*** then *** once more, on"
        );
    }
}
