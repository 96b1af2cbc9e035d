//! Time bounds as users write them: RFC 3339 (`2025-02-03T08:00:00Z`),
//! `now`, or a span back from now (`90s`, `15m`, `2h`, `7d`, `1w`).

use chrono::{DateTime, Duration, Utc};

/// Reads a time bound relative to `now`.
pub fn parse_time_bound(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let invalid = || {
        format!(
            "{text:?} is not a time: use RFC 3339 (2025-02-03T08:00:00Z), now, or a span like 15m, 2h, 7d"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits.parse().map_err(|_| invalid())?;
    let span = match unit {
        "s" => Duration::try_seconds(amount),
        "m" => Duration::try_minutes(amount),
        "h" => Duration::try_hours(amount),
        "d" => Duration::try_days(amount),
        "w" => Duration::try_weeks(amount),
        _ => None,
    }
    .ok_or_else(invalid)?;
    now.checked_sub_signed(span).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn spans_rfc3339_and_now() {
        let now = Utc.with_ymd_and_hms(2025, 2, 3, 12, 0, 0).unwrap();
        assert_eq!(parse_time_bound("2h", now).unwrap(), Utc.with_ymd_and_hms(2025, 2, 3, 10, 0, 0).unwrap());
        assert_eq!(parse_time_bound("now", now).unwrap(), now);
        assert_eq!(
            parse_time_bound("2025-02-03T09:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap()
        );
        assert!(parse_time_bound("2x", now).unwrap_err().contains("is not a time"));
        assert!(parse_time_bound("", now).is_err());
        assert!(parse_time_bound("99999999999999999d", now).is_err());
    }
}
