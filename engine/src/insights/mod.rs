//! Insights computed from the daily series the sources answer: what is unusual in them.
//! Pure functions of series of (date, value); the hub feeds them and the API serves them.
//!
//! - [`anomaly`]: days outside a band that accounts for the weekday pattern and the trend,
//!   found with a robust z-score against the same weekday in the nearest weeks.

pub mod anomaly;

pub use anomaly::{anomalies, Anomaly, Point, TooShort, MIN_DAYS, THRESHOLD};
