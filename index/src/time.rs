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
    let span = span_seconds(text).and_then(Duration::try_seconds).ok_or_else(invalid)?;
    now.checked_sub_signed(span).ok_or_else(invalid)
}

/// A span written as `90s`, `15m`, `2h`, `7d` or `1w`, in seconds (the one
/// reader of spans for time bounds and histogram intervals).
pub(crate) fn span_seconds(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let amount: i64 = text[..split].parse().ok()?;
    let unit = match &text[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    amount.checked_mul(unit)
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
