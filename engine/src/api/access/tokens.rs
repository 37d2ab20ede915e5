//! API tokens: two scopes, kept only as SHA-256 hashes and compared in constant time.
//!
//! Tokens come from the environment (`METRICS_HUB_READ_TOKENS`, `METRICS_HUB_ADMIN_TOKENS`,
//! comma-separated, hashed as soon as they are read) or a tokens file with one
//! `SCOPE NAME SHA256-HEX` per line, so the file never holds a token in clear.
//! `metrics-hub token new` makes a token and the line to add. Only a token's name is ever
//! logged.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a token may do. Admin implies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Metrics, sources, health, the pages.
    Read,
    /// Everything that changes state or costs upstream queries: cache clears, re-checks,
    /// reloads.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One known token: its name (for logs), scope and hash.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    hash: [u8; 32],
}

/// Only the name and scope: the hash stays out of `{:?}` too.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} {})", self.scope, self.name)
    }
}

/// A line of a tokens file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read tokens file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", file.display())]
    Line {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

/// Every token the hub accepts.
#[derive(Debug, Clone, Default)]
pub struct TokenStore {
    tokens: Vec<Token>,
}

impl TokenStore {
    /// Adds the comma-separated tokens of an environment variable, named `env-SCOPE-N`.
    pub fn add_env_list(&mut self, scope: Scope, list: &str) {
        let values = list.split(',').map(str::trim).filter(|t| !t.is_empty());
        for (index, value) in values.enumerate() {
            self.tokens.push(Token {
                name: format!("env-{scope}-{}", index + 1),
                scope,
                hash: digest(value),
            });
        }
    }

    /// Adds the tokens of a tokens file; every bad line is reported.
    pub fn add_file(&mut self, file: &Path) -> Result<(), Vec<TokenFileError>> {
        let text = std::fs::read_to_string(file).map_err(|source| {
            vec![TokenFileError::Read {
                file: file.to_owned(),
                source,
            }]
        })?;
        let mut errors = Vec::new();
        for (index, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some(token)) => self.tokens.push(token),
                Ok(None) => {}
                Err(message) => errors.push(TokenFileError::Line {
                    file: file.to_owned(),
                    line: index + 1,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether any token has the admin scope.
    pub fn has_admin(&self) -> bool {
        self.tokens.iter().any(|t| t.scope == Scope::Admin)
    }

    /// The token `presented` is, if any. Every known hash is compared, each in constant
    /// time, so the time taken says nothing about how close a guess was: the guess is
    /// hashed first, and no comparison stops at the first differing byte.
    pub fn verify(&self, presented: &str) -> Option<&Token> {
        let hash = digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(&token.hash, &hash) {
                found = Some(token);
            }
        }
        found
    }
}

/// `SCOPE NAME HASH`, or `None` for a blank line or a `#` comment.
fn parse_line(line: &str) -> Result<Option<Token>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [scope, name, hash] = fields[..] else {
        return Err("write `SCOPE NAME SHA256-HEX` (e.g. from `metrics-hub token new`)".into());
    };
    let scope = Scope::parse(scope)
        .ok_or_else(|| format!("`{scope}` is not a scope: use read or admin"))?;
    let hash = parse_hex(hash).ok_or_else(|| {
        "the hash must be 64 hex digits, the SHA-256 of the token (never the token itself)"
            .to_owned()
    })?;
    Ok(Some(Token {
        name: name.to_owned(),
        scope,
        hash,
    }))
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        bytes[index] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares all 32 bytes whatever they hold; the optimizer cannot see through
/// `black_box` to stop early.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(difference) == 0
}

/// The SHA-256 of a token, as a tokens file writes it.
pub fn hash_hex(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: `mh_` and 64 hex digits (256 bits from the operating system).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("mh_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_the_environment_are_hashed_and_named() {
        let mut store = TokenStore::default();
        store.add_env_list(Scope::Read, " r1, ,r2 ");
        store.add_env_list(Scope::Admin, "a1");
        assert_eq!(
            store.verify("r2").map(|t| t.name.as_str()),
            Some("env-read-2")
        );
        assert_eq!(store.verify("a1").map(|t| t.scope), Some(Scope::Admin));
        assert!(store.verify("r3").is_none() && store.verify("").is_none());
        assert!(store.has_admin());
        assert!(!format!("{store:?}").contains("r2"));
    }

    #[test]
    fn a_tokens_file_holds_hashes_and_every_bad_line_is_named() {
        let token = new_token();
        assert!(token.starts_with("mh_") && token.len() == 67);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let good = format!("# ops\nadmin ci {}\n\n", hash_hex(&token));
        std::fs::write(&file, &good).unwrap();
        let mut store = TokenStore::default();
        store.add_file(&file).unwrap();
        assert_eq!(store.verify(&token).map(|t| t.name.as_str()), Some("ci"));
        assert!(
            store.verify(&hash_hex(&token)).is_none(),
            "the hash is not the token"
        );

        std::fs::write(
            &file,
            format!("{good}write ci {}\nread x\nread y abc\n", hash_hex("t")),
        )
        .unwrap();
        let errors: Vec<String> = TokenStore::default()
            .add_file(&file)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].ends_with(":4: `write` is not a scope: use read or admin"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains(":5: write `SCOPE NAME SHA256-HEX`"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains(":6: the hash must be 64 hex digits"),
            "{errors:?}"
        );
    }

    #[test]
    fn equal_hashes_compare_equal_and_any_difference_does_not() {
        let a = digest("x");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!constant_time_eq(&a, &b));
    }

    /// Wrong guesses that share no leading character with a real token and guesses that
    /// share all but the last take the same time, measured over many interleaved tries:
    /// the guess is hashed before any comparison, and the comparison never stops early.
    #[test]
    fn a_wrong_guess_takes_as_long_however_close_it_is() {
        let token = new_token();
        let mut store = TokenStore::default();
        for i in 0..50 {
            store.add_env_list(Scope::Read, &format!("other-token-{i}"));
        }
        store.add_env_list(Scope::Admin, &token);
        let close = format!(
            "{}{}",
            &token[..token.len() - 1],
            if token.ends_with('0') { '1' } else { '0' }
        );
        let far = "x".repeat(token.len());
        let time = |guess: &str| {
            let started = std::time::Instant::now();
            for _ in 0..200 {
                assert!(std::hint::black_box(store.verify(std::hint::black_box(guess))).is_none());
            }
            started.elapsed().as_nanos()
        };
        let (mut near, mut distant) = (Vec::new(), Vec::new());
        for round in 0..300 {
            // Alternate the order so drift in the machine's speed hits both alike.
            if round % 2 == 0 {
                near.push(time(&close));
                distant.push(time(&far));
            } else {
                distant.push(time(&far));
                near.push(time(&close));
            }
        }
        let median = |samples: &mut Vec<u128>| {
            samples.sort_unstable();
            samples[samples.len() / 2] as f64
        };
        let (near, distant) = (median(&mut near), median(&mut distant));
        let ratio = near / distant;
        assert!(
            (0.85..1.18).contains(&ratio),
            "close guesses {near} ns, far {distant} ns per 200"
        );
    }
}
