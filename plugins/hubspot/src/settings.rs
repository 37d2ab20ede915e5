//! The plugin's `config:` entries from YAML, checked once at `initialize`.

use guest_support::{Config, ConfigEntry, SourceError};

/// HubSpot's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// Results per search page when the YAML does not say: the most HubSpot allows, so that
/// a window costs as few of the account's ~5 searches per second as possible.
pub const DEFAULT_PAGE_SIZE: u32 = 200;

/// What the plugin needs to reach one HubSpot account.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// The private app's access token (`pat-...`).
    pub access_token: String,
    /// Without a trailing slash.
    pub base_url: String,
    /// `limit` of each search request, 1..=200.
    pub page_size: u32,
}

// Hand-written so that a stray `{:?}` can never print the token.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("access_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("page_size", &self.page_size)
            .finish()
    }
}

const KEYS: [&str; 3] = ["access_token", "base_url", "page_size"];

impl Settings {
    /// Reads the entries, reporting every problem at once (unknown keys included, so a
    /// typo is not silently ignored). Messages name keys, never the token.
    pub fn from_entries(entries: &[ConfigEntry]) -> Result<Settings, SourceError> {
        let mut config = Config::read(entries, &KEYS);
        let access_token = config.optional("access_token");
        if access_token.is_none() {
            config.problem("`access_token` (a private app token) is required");
        }
        let base_url = config
            .optional("base_url")
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = config.http_url("base_url", base_url, DEFAULT_BASE_URL);
        let page_size = match config.optional("page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => match text.parse::<u32>() {
                Ok(size @ 1..=200) => size,
                _ => {
                    config.problem(format!(
                        "`page_size` must be a whole number from 1 to 200, not `{text}`"
                    ));
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        config.finish(|| {
            Some(Settings {
                access_token: access_token?,
                base_url: base_url?,
                page_size,
            })
        })
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
    fn defaults_everything_but_the_token() {
        let settings =
            Settings::from_entries(&entries(&[("access_token", "pat-na1-secret")])).unwrap();
        assert_eq!(settings.base_url, DEFAULT_BASE_URL);
        assert_eq!(settings.page_size, DEFAULT_PAGE_SIZE);
        assert!(!format!("{settings:?}").contains("pat-na1-secret"));
    }

    #[test]
    fn reads_a_local_base_url_and_page_size() {
        let settings = Settings::from_entries(&entries(&[
            ("access_token", "pat"),
            ("base_url", "http://127.0.0.1:8080/"),
            ("page_size", "100"),
        ]))
        .unwrap();
        assert_eq!(settings.base_url, "http://127.0.0.1:8080");
        assert_eq!(settings.page_size, 100);
    }

    #[test]
    fn reports_every_problem_together() {
        let Err(SourceError::InvalidConfig(message)) = Settings::from_entries(&entries(&[
            ("base_url", "api.hubapi.com"),
            ("page_size", "500"),
            ("token", "pat-secret"),
        ])) else {
            panic!("expected invalid-config");
        };
        for part in [
            "`access_token`",
            "`base_url`",
            "`page_size`",
            "unknown key `token`",
        ] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
        assert!(!message.contains("pat-secret"));
    }
}
