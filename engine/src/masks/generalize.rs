//! Generalization: ages into bands, dates to a coarser unit, numbers into buckets. Out-of-range
//! inputs give null, never an error.

use std::fmt::Write;

use chrono::{Datelike, NaiveDate};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01 (Arrow's Date32 day 0).
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub(crate) fn date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

fn days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Today (UTC) as a date.
pub(crate) fn today() -> Option<NaiveDate> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    date(i32::try_from(secs / 86_400).ok()?)
}

/// Writes the band `lo-hi` of the age on `today` of someone born on `birth_days`.
pub(crate) fn age_band(birth_days: i32, today: NaiveDate, width: i64, out: &mut String) -> bool {
    let Some(birth) = date(birth_days) else {
        return false;
    };
    let mut age = i64::from(today.year() - birth.year());
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    if !(0..=150).contains(&age) || width <= 0 {
        return false;
    }
    let lo = age / width * width;
    write!(out, "{lo}-{}", lo + width - 1).is_ok()
}

/// The first day of the month, quarter or year holding `d`.
pub(crate) fn date_trunc_to(d: i32, unit: &str) -> Option<i32> {
    let date = date(d)?;
    let month = match unit {
        "year" => 1,
        "quarter" => (date.month() - 1) / 3 * 3 + 1,
        _ => date.month(),
    };
    NaiveDate::from_ymd_opt(date.year(), month, 1).map(days)
}

pub(crate) fn bucket_int(v: i64, width: i64) -> Option<i64> {
    if width <= 0 {
        return None;
    }
    v.div_euclid(width).checked_mul(width)
}

pub(crate) fn bucket_float(v: f64, width: i64) -> Option<f64> {
    let w = width as f64;
    let b = (v / w).floor() * w;
    (width > 0 && b.is_finite()).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> i32 {
        days(NaiveDate::from_ymd_opt(y, m, day).expect("date"))
    }

    #[test]
    fn ages_band_on_birthdays() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let band = |birth: i32, w: i64| {
            let mut s = String::new();
            age_band(birth, today, w, &mut s).then_some(s)
        };
        assert_eq!(band(d(1990, 11, 27), 10).as_deref(), Some("30-39"));
        assert_eq!(band(d(1986, 11, 28), 10).as_deref(), Some("30-39"));
        assert_eq!(band(d(1986, 11, 27), 10).as_deref(), Some("40-49"));
        assert_eq!(band(d(2001, 1, 1), 5).as_deref(), Some("25-29"));
        assert_eq!(band(d(2030, 1, 1), 5), None);
        assert_eq!(d(1970, 1, 1), 0);
    }

    #[test]
    fn truncation_and_buckets() {
        let day = d(2026, 8, 17);
        assert_eq!(date_trunc_to(day, "month"), Some(d(2026, 8, 1)));
        assert_eq!(date_trunc_to(day, "quarter"), Some(d(2026, 7, 1)));
        assert_eq!(date_trunc_to(day, "year"), Some(d(2026, 1, 1)));
        assert_eq!(date_trunc_to(i32::MAX, "year"), None);
        assert_eq!(bucket_int(37, 10), Some(30));
        assert_eq!(bucket_int(-1, 10), Some(-10));
        assert_eq!(bucket_int(i64::MIN, 3), None);
        assert_eq!(bucket_float(12.5, 5), Some(10.0));
        assert_eq!(bucket_float(f64::NAN, 5), None);
    }
}
