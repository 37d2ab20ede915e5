//! The request window as dates: the hub sends `start-date` and `end-date` already
//! validated, so a plugin only guards against a bug on one side of the contract.

use guest_dates::Date;

use crate::{QueryParams, SourceError};

/// The inclusive window `(start, end)` of a request; an unreadable date or a window that
/// ends before it starts is an `internal` error, as the hub never sends one.
pub fn window_dates(params: &QueryParams) -> Result<(Date, Date), SourceError> {
    let parse = |text: &str| {
        Date::parse(text).ok_or_else(|| {
            SourceError::Internal(format!("the hub sent an unreadable date `{text}`"))
        })
    };
    let (start, end) = (parse(&params.start_date)?, parse(&params.end_date)?);
    if start > end {
        return Err(SourceError::Internal(format!(
            "the window {start}..{end} ends before it starts"
        )));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(start: &str, end: &str) -> QueryParams {
        QueryParams {
            days: 0,
            start_date: start.into(),
            end_date: end.into(),
            filters: vec![],
            deadline_ms: 10_000,
        }
    }

    #[test]
    fn reads_an_inclusive_window() {
        let (start, end) = window_dates(&params("2026-01-31", "2026-01-31")).unwrap();
        assert_eq!(
            (start.to_string(), end.to_string()),
            ("2026-01-31".into(), "2026-01-31".into())
        );
    }

    #[test]
    fn a_bad_window_is_an_internal_error() {
        assert_eq!(
            window_dates(&params("2026-02-30", "2026-03-01")),
            Err(SourceError::Internal(
                "the hub sent an unreadable date `2026-02-30`".into()
            ))
        );
        assert_eq!(
            window_dates(&params("2026-03-02", "2026-03-01")),
            Err(SourceError::Internal(
                "the window 2026-03-02..2026-03-01 ends before it starts".into()
            ))
        );
    }
}
