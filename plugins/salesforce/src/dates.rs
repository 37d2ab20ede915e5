//! SOQL date literals on top of the shared calendar arithmetic (`guest-dates`): the plugin
//! checks the hub's dates and turns an inclusive window into SOQL dateTime literals.

pub use guest_dates::Date;

/// SOQL's spelling of a date's start.
pub trait SoqlDate {
    /// Midnight UTC as a SOQL dateTime literal, e.g. `2026-01-05T00:00:00Z`.
    fn soql_midnight(self) -> String;
}

impl SoqlDate for Date {
    fn soql_midnight(self) -> String {
        format!("{self}T00:00:00Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_of_the_day_after_a_month_end() {
        assert_eq!(
            Date::parse("2026-01-31").unwrap().next().soql_midnight(),
            "2026-02-01T00:00:00Z"
        );
    }
}
