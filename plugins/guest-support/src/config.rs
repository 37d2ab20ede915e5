//! Reading a source's `config:` entries the same way in every plugin: known keys only, each
//! at most once, blank meaning absent, and every problem reported together in one
//! `invalid-config` error, so that a user fixes a YAML file in one round.

use crate::{ConfigEntry, SourceError};

/// The entries of one `initialize` call, read against the keys a plugin knows, with the
/// problems found so far. Problem texts name keys, never values: values may be secrets.
pub struct Config<'a> {
    keys: &'a [&'a str],
    values: Vec<Option<String>>,
    problems: Vec<String>,
}

impl<'a> Config<'a> {
    /// Reads `entries` against `keys`. Values are trimmed and a blank one counts as absent;
    /// a key given twice and a key not in `keys` (a typo, most likely) are problems.
    pub fn read(entries: &[ConfigEntry], keys: &'a [&'a str]) -> Config<'a> {
        let mut problems = Vec::new();
        let values = keys
            .iter()
            .map(|key| {
                let mut values = entries
                    .iter()
                    .filter(|entry| entry.key == *key)
                    .map(|entry| entry.value.trim());
                let value = values.next();
                if values.next().is_some() {
                    problems.push(format!("`{key}` is given more than once"));
                }
                value.filter(|v| !v.is_empty()).map(str::to_owned)
            })
            .collect();
        for entry in entries {
            if !keys.contains(&entry.key.as_str()) {
                problems.push(format!(
                    "unknown key `{}` (expected one of {})",
                    entry.key,
                    keys.join(", ")
                ));
            }
        }
        Config {
            keys,
            values,
            problems,
        }
    }

    /// The value of `key`, or `None` when it is absent or blank.
    pub fn optional(&self, key: &str) -> Option<String> {
        let index = self.keys.iter().position(|known| *known == key);
        debug_assert!(index.is_some(), "`{key}` is not among the plugin's keys");
        index.and_then(|index| self.values[index].clone())
    }

    /// The value of `key`; when it is absent or blank, the problem "`key` is required".
    pub fn required(&mut self, key: &str) -> Option<String> {
        let value = self.optional(key);
        if value.is_none() {
            self.problem(format!("`{key}` is required"));
        }
        value
    }

    /// `url` if it is an http(s) URL, without its trailing slashes (plugins append paths);
    /// otherwise the problem "`key` must be an http(s) URL such as `example`".
    pub fn http_url(&mut self, key: &str, url: String, example: &str) -> Option<String> {
        if url.starts_with("https://") || url.starts_with("http://") {
            Some(url.trim_end_matches('/').to_owned())
        } else {
            self.problem(format!("`{key}` must be an http(s) URL such as {example}"));
            None
        }
    }

    /// Records a problem the plugin found itself (a value in the wrong format, say).
    pub fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }

    /// The settings `build` makes from the values read, if no problem was found; otherwise
    /// one `invalid-config` error listing every problem in the order found.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, SourceError> {
        match build() {
            Some(settings) if self.problems.is_empty() => Ok(settings),
            _ => Err(SourceError::InvalidConfig(self.problems.join("; "))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 3] = ["url", "token", "mode"];

    fn entries(pairs: &[(&str, &str)]) -> Vec<ConfigEntry> {
        pairs
            .iter()
            .map(|(key, value)| ConfigEntry {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect()
    }

    fn invalid(result: Result<(), SourceError>) -> String {
        match result {
            Err(SourceError::InvalidConfig(message)) => message,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn trims_values_and_takes_blank_as_absent() {
        let entries = entries(&[("url", "  http://127.0.0.1:9/ "), ("mode", "   ")]);
        let mut config = Config::read(&entries, &KEYS);
        assert_eq!(
            config.optional("url").as_deref(),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(config.optional("mode"), None);
        let url = config
            .optional("url")
            .and_then(|url| config.http_url("url", url, "https://example.com"));
        assert_eq!(config.finish(|| url), Ok("http://127.0.0.1:9".to_owned()));
    }

    #[test]
    fn reports_every_problem_in_order_without_values() {
        let entries = entries(&[
            ("url", "example.com"),
            ("mode", "a"),
            ("mode", "b"),
            ("tokn", "s3cret"),
        ]);
        let mut config = Config::read(&entries, &KEYS);
        let url = config
            .required("url")
            .and_then(|url| config.http_url("url", url, "https://example.com"));
        let token = config.required("token");
        config.problem("`mode` must be fast or slow");
        let message = invalid(config.finish(|| {
            url?;
            token?;
            Some(())
        }));
        assert_eq!(
            message,
            "`mode` is given more than once; \
             unknown key `tokn` (expected one of url, token, mode); \
             `url` must be an http(s) URL such as https://example.com; \
             `token` is required; \
             `mode` must be fast or slow"
        );
        assert!(!message.contains("s3cret"));
    }

    #[test]
    fn a_problem_fails_even_when_every_value_is_there() {
        let entries = entries(&[("token", "t"), ("extra", "x")]);
        let mut config = Config::read(&entries, &KEYS);
        let token = config.required("token");
        assert_eq!(
            invalid(config.finish(|| token.map(|_| ()))),
            "unknown key `extra` (expected one of url, token, mode)"
        );
    }
}
