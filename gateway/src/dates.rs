//! Days as people write them in requests: `2026-12-01`, or relative to the server's today
//! (UTC) — `today`, `+3y`, `today+1y-1d`, `-30d`. The server resolves them, so an agreement, a
//! scenario's validity and a report period mean the same day whichever clock the client has,
//! and what is stored is always an absolute date.

use chrono::{Days, Months, NaiveDate};
use thiserror::Error;

/// Why a day could not be read; the message is the analyst's guide to the syntax.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DayError {
    #[error(
        "`{0}` is not a day: write YYYY-MM-DD or a day relative to today (`today`, `+3y`, `today+1y-1d`, `-30d`)"
    )]
    Syntax(String),
    #[error("`{0}` falls outside the calendar")]
    OutOfRange(String),
}

/// The longest offset a relative day may take in one step: enough for any agreement or period,
/// small enough that no arithmetic overflows.
const MAX_STEP: u32 = 10_000;

/// Reads `text` as a day, relative ones against `today`.
pub fn parse_day(text: &str, today: NaiveDate) -> Result<NaiveDate, DayError> {
    let t = text.trim();
    let syntax = || DayError::Syntax(t.to_string());
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d);
    }
    let rest = t.strip_prefix("today").unwrap_or(t);
    if rest.is_empty() {
        return if t.is_empty() {
            Err(syntax())
        } else {
            Ok(today)
        };
    }
    let mut day = today;
    let mut chars = rest.chars().peekable();
    while let Some(sign) = chars.next() {
        let forward = match sign {
            '+' => true,
            '-' => false,
            _ => return Err(syntax()),
        };
        let mut n: u32 = 0;
        let mut digits = 0;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            n = n.saturating_mul(10).saturating_add(d);
            digits += 1;
            chars.next();
        }
        if digits == 0 || n > MAX_STEP {
            return Err(syntax());
        }
        let out = || DayError::OutOfRange(t.to_string());
        day = match (chars.next(), forward) {
            (Some('d'), true) => day.checked_add_days(Days::new(n.into())),
            (Some('d'), false) => day.checked_sub_days(Days::new(n.into())),
            (Some('w'), true) => day.checked_add_days(Days::new(u64::from(n) * 7)),
            (Some('w'), false) => day.checked_sub_days(Days::new(u64::from(n) * 7)),
            (Some('m'), true) => day.checked_add_months(Months::new(n)),
            (Some('m'), false) => day.checked_sub_months(Months::new(n)),
            (Some('y'), true) => day.checked_add_months(Months::new(n * 12)),
            (Some('y'), false) => day.checked_sub_months(Months::new(n * 12)),
            _ => return Err(syntax()),
        }
        .ok_or_else(out)?;
    }
    Ok(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn absolute_and_relative_days() {
        let today = d(2026, 11, 30);
        assert_eq!(parse_day("2026-12-01", today), Ok(d(2026, 12, 1)));
        assert_eq!(parse_day(" today ", today), Ok(today));
        assert_eq!(parse_day("+3y", today), Ok(d(2029, 11, 30)));
        assert_eq!(parse_day("today+3y-1d", today), Ok(d(2029, 11, 29)));
        assert_eq!(parse_day("-30d", today), Ok(d(2026, 10, 31)));
        assert_eq!(parse_day("+1m", today), Ok(d(2026, 12, 30)));
        assert_eq!(parse_day("+2w", today), Ok(d(2026, 12, 14)));
        // Month ends clamp rather than spill into the next month.
        assert_eq!(parse_day("+1m", d(2027, 1, 31)), Ok(d(2027, 2, 28)));
    }

    #[test]
    fn hostile_days_are_refused_with_the_syntax() {
        let today = d(2026, 11, 30);
        for bad in [
            "",
            "tomorrow",
            "+",
            "+y",
            "3y",
            "+3",
            "+3x",
            "today+",
            "2026-13-01",
            "+1y+",
            "today today",
            "+99999999999999999999d",
        ] {
            let e = parse_day(bad, today).expect_err(bad);
            assert!(matches!(e, DayError::Syntax(_)), "{bad}: {e}");
            assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        }
        assert!(matches!(
            parse_day(&"+9999y".repeat(30), today),
            Err(DayError::OutOfRange(_))
        ));
    }
}
