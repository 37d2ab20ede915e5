//! What a source file says, up to the point where kinds differ: a leaf below every other
//! engine module but [`crate::model`], [`crate::mapping`] and [`crate::secret`].
//!
//! - [`raw`]: the serde shapes every kind shares (`deny_unknown_fields`).
//! - [`interpolate`]: `${VAR}`, `${VAR:-default}`, `${VAR:+value}` from the environment.
//! - [`schema`]: the embedded JSON Schema and the check against it.
//! - [`locate`]: the line of a JSON pointer in the YAML text.
//! - [`Problems`]: the one collector of a file's problems, and the readers of durations
//!   and bounded numbers every kind uses.
//! - [`names`]: the naming rules (source id, filter name, identifier, field name).
//! - [`filter`] and [`common`]: the shared fields validated into typed values.
//! - [`history`]: a source's `history:` validated (the store itself is [`crate::history`]).
//!
//! The pipeline that uses all of this, file by file, is [`crate::load`].

pub mod common;
pub mod filter;
pub mod history;
pub mod interpolate;
pub mod locate;
pub mod names;
mod problems;
pub mod raw;
pub mod schema;

use std::fmt;
use std::path::PathBuf;

pub use common::{Common, Mappings, MergePolicies, StaleConfig};
pub use filter::FilterSpec;
pub use history::HistorySpec;
pub use problems::Problems;
pub use raw::MergePolicy;

/// The `*.yaml` and `*.yml` files of `dir`, sorted by name.
pub fn yaml_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One problem in one source file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConfigError {
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// 1-based line, where it could be found.
    pub line: Option<usize>,
    /// JSON pointer inside the document, e.g. `/queries/daily/sql`; empty for the whole file.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": at {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}
