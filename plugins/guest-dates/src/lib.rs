//! Calendar arithmetic on `YYYY-MM-DD` dates in UTC, without a date library, shared by the
//! plugins: checking the hub's window dates, stepping a day, and converting days to and
//! from epoch milliseconds. Each plugin adds its vendor's formats on top.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` days after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A validated calendar date, stored as days since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(i64);

impl Date {
    /// Parses `YYYY-MM-DD`, rejecting impossible dates such as 2026-02-30.
    pub fn parse(text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &text[range];
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        if !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        // Day 31 of a 30-day month normalizes into the next month: compare back.
        (civil_from_days(days) == (i64::from(year), month, day)).then_some(Date(days))
    }

    /// The following day.
    pub fn next(self) -> Date {
        Date(self.0 + 1)
    }

    /// Midnight UTC in milliseconds since the epoch.
    pub fn midnight_millis(self) -> i64 {
        self.0 * MILLIS_PER_DAY
    }

    /// The day holding an instant given in epoch milliseconds.
    pub fn of_millis(millis: i64) -> Date {
        Date(millis.div_euclid(MILLIS_PER_DAY))
    }
}

const MILLIS_PER_DAY: i64 = 86_400_000;

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (year, month, day) = civil_from_days(self.0);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["1970-01-01", "2000-02-29", "2024-12-31", "2026-01-05"] {
            assert_eq!(Date::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Date::parse("1970-01-01"), Some(Date(0)));
    }

    #[test]
    fn rejects_impossible_or_malformed_dates() {
        for text in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-05",
            "20260105",
            "2026-01-0x",
            "",
        ] {
            assert_eq!(Date::parse(text), None, "{text}");
        }
    }

    #[test]
    fn next_day_crosses_months_and_years() {
        assert_eq!(
            Date::parse("2024-02-28").unwrap().next().to_string(),
            "2024-02-29"
        );
        assert_eq!(
            Date::parse("2025-12-31").unwrap().next().to_string(),
            "2026-01-01"
        );
    }

    #[test]
    fn midnight_and_millis_agree() {
        let day = Date::parse("2024-01-01").unwrap();
        assert_eq!(day.midnight_millis(), 1_704_067_200_000);
        assert_eq!(
            Date::of_millis(1_704_067_200_000 - 1).to_string(),
            "2023-12-31"
        );
        assert_eq!(Date::of_millis(1_704_067_200_000 + 86_399_999), day);
    }
}
