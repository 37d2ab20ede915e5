//! `kind: sql`: SQLite and PostgreSQL through SQL templates whose request values are
//! bind parameters. The embedded demo's synthetic GA4 events belong here too: the demo
//! is a sql source over a SQLite file the hub fills at start.

mod config;
pub mod demo;
mod source;

pub use config::{compile, schema, DemoData, Driver, SqlSpec};
pub use source::SqlSource;
