//! The plugin's `config:` entries from YAML, checked once at `initialize`.

use guest_support::{ConfigEntry, SourceError};

/// The API version used when the YAML does not name one.
pub const DEFAULT_API_VERSION: &str = "62.0";

/// What the plugin needs to reach one Salesforce org.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// `https://NAME.my.salesforce.com`, without a trailing slash; the token endpoint lives here.
    pub instance_url: String,
    /// REST API version without the `v`, e.g. `62.0`.
    pub api_version: String,
    pub client_id: String,
    pub client_secret: String,
}

// Hand-written so that a stray `{:?}` can never print the secret.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("instance_url", &self.instance_url)
            .field("api_version", &self.api_version)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

const KEYS: [&str; 4] = ["instance_url", "api_version", "client_id", "client_secret"];

impl Settings {
    /// Reads the entries, reporting every problem at once (unknown keys included, so a
    /// typo is not silently ignored). Messages name keys, never secret values.
    pub fn from_entries(entries: &[ConfigEntry]) -> Result<Settings, SourceError> {
        let mut problems = Vec::new();
        let mut get = |key: &str| -> Option<String> {
            let mut values = entries
                .iter()
                .filter(|e| e.key == key)
                .map(|e| e.value.trim());
            let value = values.next();
            if values.next().is_some() {
                problems.push(format!("`{key}` is given more than once"));
            }
            value.filter(|v| !v.is_empty()).map(str::to_owned)
        };
        let instance_url = get("instance_url");
        let api_version = get("api_version");
        let client_id = get("client_id");
        let client_secret = get("client_secret");
        for entry in entries {
            if !KEYS.contains(&entry.key.as_str()) {
                problems.push(format!(
                    "unknown key `{}` (expected one of {})",
                    entry.key,
                    KEYS.join(", ")
                ));
            }
        }

        let instance_url = match instance_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(_) => {
                problems.push(
                    "`instance_url` must be an http(s) URL such as https://NAME.my.salesforce.com"
                        .into(),
                );
                None
            }
            None => {
                problems.push("`instance_url` is required".into());
                None
            }
        };
        let api_version = api_version.unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        let api_version = api_version
            .strip_prefix('v')
            .unwrap_or(&api_version)
            .to_owned();
        if !is_api_version(&api_version) {
            problems.push(format!(
                "`api_version` must look like {DEFAULT_API_VERSION}, not `{api_version}`"
            ));
        }
        if client_id.is_none() {
            problems.push("`client_id` is required".into());
        }
        if client_secret.is_none() {
            problems.push("`client_secret` is required".into());
        }

        match (instance_url, client_id, client_secret) {
            (Some(instance_url), Some(client_id), Some(client_secret)) if problems.is_empty() => {
                Ok(Settings {
                    instance_url,
                    api_version,
                    client_id,
                    client_secret,
                })
            }
            _ => Err(SourceError::InvalidConfig(problems.join("; "))),
        }
    }
}

/// `NN.N`: digits, one dot, one digit or more.
fn is_api_version(text: &str) -> bool {
    match text.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<ConfigEntry> {
        pairs
            .iter()
            .map(|(key, value)| ConfigEntry {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect()
    }

    #[test]
    fn reads_a_complete_configuration() {
        let settings = Settings::from_entries(&entries(&[
            ("instance_url", "https://acme.my.salesforce.com/"),
            ("api_version", "v61.0"),
            ("client_id", "id"),
            ("client_secret", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(settings.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(settings.api_version, "61.0");
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn defaults_the_api_version() {
        let settings = Settings::from_entries(&entries(&[
            ("instance_url", "http://127.0.0.1:9"),
            ("client_id", "id"),
            ("client_secret", "secret"),
        ]))
        .unwrap();
        assert_eq!(settings.api_version, DEFAULT_API_VERSION);
    }

    #[test]
    fn reports_every_problem_together_without_values() {
        let Err(SourceError::InvalidConfig(message)) = Settings::from_entries(&entries(&[
            ("instance_url", "acme.my.salesforce.com"),
            ("api_version", "latest"),
            ("client_secret", "hunter2"),
            ("clientid", "x"),
        ])) else {
            panic!("expected invalid-config");
        };
        for part in [
            "instance_url",
            "api_version",
            "`client_id` is required",
            "unknown key `clientid`",
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
        assert!(!message.contains("hunter2"));
    }
}
