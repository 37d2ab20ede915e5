//! HubSpot's timestamps on top of the shared calendar arithmetic (`guest-dates`): the
//! hub's `YYYY-MM-DD` dates become the epoch milliseconds HubSpot filters on, and HubSpot's
//! ISO timestamps become days.

pub use guest_dates::Date;

/// Reads a HubSpot timestamp into epoch milliseconds: ISO 8601 in UTC as the v3 API writes
/// it (`2024-01-01T12:30:00Z`, `2024-01-01T12:30:00.123Z`), or plain epoch milliseconds.
pub fn parse_timestamp_millis(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let (date, time) = text.split_once('T')?;
    let date = Date::parse(date)?;
    let time = time.strip_suffix('Z')?;
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return None;
    };
    let number = |part: &str, max: i64| -> Option<i64> {
        let value: i64 = (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())??;
        (value <= max).then_some(value)
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Milliseconds are the first three fraction digits, padded: ".5" is 500 ms.
    let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .ok()?;
    let seconds_of_day =
        number(hours, 23)? * 3600 + number(minutes, 59)? * 60 + number(seconds, 60)?;
    Some(date.midnight_millis() + seconds_of_day * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hubspot_timestamps() {
        assert_eq!(
            parse_timestamp_millis("2024-01-01T00:00:00Z"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_timestamp_millis("2024-01-01T00:00:01.5Z"),
            Some(1_704_067_201_500)
        );
        assert_eq!(
            parse_timestamp_millis("2024-01-01T10:20:30.123456Z"),
            Some(1_704_067_200_000 + 37_230_123)
        );
        assert_eq!(
            parse_timestamp_millis("1704067200000"),
            Some(1_704_067_200_000)
        );
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01T24:00:00Z",
            "2024-01-01T1:00:00Z",
            "2024-01-01T00:00:00.x1Z",
        ] {
            assert_eq!(parse_timestamp_millis(bad), None, "{bad}");
        }
    }
}
