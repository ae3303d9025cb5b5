//! Times on the command line: RFC 3339 (`2026-01-01T00:00:00Z`, any offset) or unix
//! seconds; an expiry may also be a duration from now (`90s`, `30m`, `12h`, `7d`, `2w`,
//! or a sum such as `1d12h`).

use chrono::DateTime;

/// Parses an RFC 3339 time or unix seconds into unix seconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| {
            format!("`{text}` is neither an RFC 3339 time (2026-01-01T00:00:00Z) nor unix seconds")
        })
}

/// A not-before cut-off: `now`, an RFC 3339 time or unix seconds.
pub fn parse_cut_off(text: &str) -> Result<i64, String> {
    if text.trim() == "now" {
        return Ok(now_secs());
    }
    parse_time(text).map_err(|_| {
        format!(
            "`{text}` is neither `now`, an RFC 3339 time (2026-01-01T00:00:00Z) nor unix seconds"
        )
    })
}

/// Parses a duration such as `12h`, `7d` or `1d12h` into seconds (more than zero).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a duration such as 90s, 30m, 12h, 7d or 2w");
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let count: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = count
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// An expiry: a time (RFC 3339 or unix seconds), or a duration from `now` (unix seconds).
pub fn parse_expiry_at(text: &str, now: i64) -> Result<i64, String> {
    match parse_duration(text) {
        Ok(secs) => now
            .checked_add(secs)
            .ok_or_else(|| format!("`{text}` is too far in the future")),
        Err(_) => parse_time(text).map_err(|_| {
            format!(
                "`{text}` is neither a duration (12h, 7d), an RFC 3339 time \
                 (2026-01-01T00:00:00Z) nor unix seconds"
            )
        }),
    }
}

/// Now, in unix seconds.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Clap's parser of `--expires`: relative to the moment the command line is read.
pub fn parse_expiry(text: &str) -> Result<i64, String> {
    parse_expiry_at(text, now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(parse_time("1767225600"), Ok(1_767_225_600));
        assert_eq!(parse_time(" 0 "), Ok(0));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Ok(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T01:00:00+01:00"), Ok(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T00:00:00.75Z"), Ok(1_767_225_600));
        for bad in [
            "",
            "yesterday",
            "2026-01-01",
            "2026-01-01 00:00:00",
            "12h",
            "1.5",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("neither an RFC 3339 time"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_have_units_and_may_add_up() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("1d12h"), Ok(129_600));
        for bad in [
            "",
            "h",
            "12",
            "0h",
            "12x",
            "-1h",
            "1.5h",
            "h12",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("999999999999999w").is_err(),
            "overflow is an error"
        );
    }

    #[test]
    fn expiries_are_durations_from_now_or_times() {
        let now = 1_767_225_600;
        assert_eq!(parse_expiry_at("12h", now), Ok(now + 43_200));
        assert_eq!(parse_expiry_at("7d", now), Ok(now + 604_800));
        assert_eq!(
            parse_expiry_at("2026-02-01T00:00:00Z", now),
            Ok(1_769_904_000)
        );
        assert_eq!(parse_expiry_at("1769904000", now), Ok(1_769_904_000));
        assert!(
            parse_expiry_at("soon", now)
                .unwrap_err()
                .contains("neither a duration")
        );
        let later = parse_expiry("1h").unwrap();
        assert!((later - now_secs() - 3600).abs() <= 1);
    }
}
