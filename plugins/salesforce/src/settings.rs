//! The plugin's `config:` entries from YAML, checked once at `initialize`.

use guest_support::{Config, ConfigEntry, SourceError};

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
        let mut config = Config::read(entries, &KEYS);
        let instance_url = config
            .required("instance_url")
            .and_then(|url| config.http_url("instance_url", url, "https://NAME.my.salesforce.com"));
        let api_version = config
            .optional("api_version")
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        let api_version = api_version
            .strip_prefix('v')
            .unwrap_or(&api_version)
            .to_owned();
        if !is_api_version(&api_version) {
            config.problem(format!(
                "`api_version` must look like {DEFAULT_API_VERSION}, not `{api_version}`"
            ));
        }
        let client_id = config.required("client_id");
        let client_secret = config.required("client_secret");
        config.finish(|| {
            Some(Settings {
                instance_url: instance_url?,
                api_version,
                client_id: client_id?,
                client_secret: client_secret?,
            })
        })
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
