//! The rules names in a source file follow, one place for all of them. They differ on
//! purpose, each for where the name ends up; the schema's patterns are these same rules
//! (a unit test holds each predicate and its pattern in agreement).

/// One naming rule: a predicate for the first character and for the rest, and the
/// regular expression the schema writes for the same rule.
#[derive(Debug, Clone, Copy)]
pub struct NameRule {
    /// The same rule as a JSON Schema `pattern`.
    pub pattern: &'static str,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
}

impl NameRule {
    /// Whether `name` follows the rule (an empty name never does).
    pub fn allows(&self, name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(self.first) && chars.all(self.rest)
    }
}

fn id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn lower_word_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

fn word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A source id: lowercase letters, digits and dashes. It appears in URLs
/// (`?source=ID`, `/api/sources/ID/check`), log fields and file-like names, where case
/// differences would only confuse and dashes read well.
pub const SOURCE_ID: NameRule = NameRule {
    pattern: "^[a-z0-9-]+$",
    first: id_char,
    rest: id_char,
};

/// A filter name: a lowercase letter, then lowercase letters, digits and `_`. It is a
/// query-string parameter and a template variable (`filters.NAME`), so no dashes (which
/// minijinja would read as minus) and no leading digit.
pub const FILTER_NAME: NameRule = NameRule {
    pattern: "^[a-z][a-z0-9_]*$",
    first: |c| c.is_ascii_lowercase(),
    rest: lower_word_char,
};

/// An SQL identifier listed for `ident()`: a letter or `_`, then letters, digits and
/// `_`. It is written into SQL unquoted, so only what every engine reads as one plain
/// identifier; case is kept because engines differ on folding it.
pub const IDENTIFIER: NameRule = NameRule {
    pattern: "^[A-Za-z_][A-Za-z0-9_]*$",
    first: word_start,
    rest: word_char,
};

/// A field of the unified model or an extra field (merge policies, aggregate columns,
/// plugins' extra fields): the identifier rule, since dashboards read these as JSON keys
/// and spreadsheets and SQL consumers as column names.
pub const FIELD_NAME: NameRule = NameRule {
    pattern: "^[A-Za-z_][A-Za-z0-9_]*$",
    first: word_start,
    rest: word_char,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Each predicate agrees with its schema pattern on names that probe every branch.
    #[test]
    fn predicates_and_patterns_agree() {
        let corpus = [
            "",
            "a",
            "A",
            "_",
            "-",
            "0",
            "demo",
            "postgres-prod",
            "Demo",
            "a_b",
            "a-b",
            "a b",
            "9lives",
            "_x",
            "x9",
            "client_id",
            "é",
            "ab\n",
            "a.b",
            "ünï",
            "Z_9",
        ];
        for rule in [SOURCE_ID, FILTER_NAME, IDENTIFIER, FIELD_NAME] {
            let pattern = regex::Regex::new(rule.pattern).unwrap();
            for name in corpus {
                assert_eq!(
                    rule.allows(name),
                    pattern.is_match(name),
                    "{} on {name:?}",
                    rule.pattern
                );
            }
        }
    }

    #[test]
    fn the_rules_differ_where_their_uses_do() {
        assert!(SOURCE_ID.allows("postgres-prod") && !SOURCE_ID.allows("Postgres"));
        assert!(FILTER_NAME.allows("event_name") && !FILTER_NAME.allows("event-name"));
        assert!(!FILTER_NAME.allows("_private") && IDENTIFIER.allows("_private"));
        assert!(IDENTIFIER.allows("EventDate") && !IDENTIFIER.allows("events.date"));
    }
}
