//! `kind: rest`: any JSON API declared in YAML: request templates encoded for where each
//! value lands, authentication, retries, pagination that always stops, record transforms
//! (`compute`, `classify`, `where`) and optional aggregation of raw records into the
//! dataset's rows as pages arrive.

pub mod aggregate;
mod auth;
mod config;
pub mod expr;
pub mod http;
pub mod json_path;
pub mod paging;
mod raw;
mod source;
pub mod template;
pub mod transform;

pub use config::{compile, schema, Auth, OAuth2, RestConnection, RestQuery, RestSpec};
pub use raw::{ClientAuth, KeyLocation, Method};
pub use source::RestSource;
