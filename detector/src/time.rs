//! Timestamps as CloudTrail writes them, parsed without a date library.
//!
//! CloudTrail uses `2018-11-28T23:04:54Z`; exports add milliseconds (`…54.000Z`), offsets
//! (`+00:00`), or a space instead of `T` (`2022-12-11 19:42:55`, seen in Panther fixtures).
//! Everything is reduced to Unix milliseconds so that events can be ordered by when they
//! happened, never by when they arrived.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Parses an RFC 3339-like timestamp into Unix milliseconds; `None` when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v: i64 = 0;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign) if (sign == b'+' || sign == b'-') && b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let off = oh * 3600 + om * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(secs * 1000 + millis)
}

/// Parses a CloudTrail `AssumeRole` `expiration` in either RFC 3339 or the Java
/// `MMM d, yyyy h:mm:ss a` form that CloudTrail writes (`Nov 28, 2018 11:03:12 PM`, UTC).
pub fn parse_expiration(s: &str) -> Option<Millis> {
    parse_rfc3339(s).or_else(|| parse_java_date(s))
}

fn parse_java_date(s: &str) -> Option<Millis> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let mut it = s.split_whitespace();
    let mon = it.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| mon.starts_with(m))? as i64 + 1;
    let day: i64 = it.next()?.trim_end_matches(',').parse().ok()?;
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let (h, m, sec): (i64, i64, i64) =
        (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    let hour = match it.next().map(|x| x.to_ascii_uppercase()) {
        Some(ref ap) if ap == "AM" && (1..=12).contains(&h) => h % 12,
        Some(ref ap) if ap == "PM" && (1..=12).contains(&h) => h % 12 + 12,
        None if h < 24 => h,
        _ => return None,
    };
    if it.next().is_some() || day < 1 || day > days_in_month(year, month) || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + m * 60 + sec) * 1000)
}

/// The wall clock in Unix milliseconds (0 if the system clock is before 1970).
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC, second precision).
pub fn format_rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days-from-civil algorithm (public domain), proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudtrail_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2018-11-28T23:04:54Z"), Some(1_543_446_294_000));
        assert_eq!(parse_rfc3339("2020-09-14T00:44:20.123Z"), Some(1_600_044_260_123));
        assert_eq!(parse_rfc3339("2020-09-14T00:44:20.1Z"), Some(1_600_044_260_100));
        assert_eq!(parse_rfc3339("2020-09-14T02:44:20+02:00"), Some(1_600_044_260_000));
        assert_eq!(parse_rfc3339("2022-12-11 19:42:55"), Some(1_670_787_775_000));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "redacted",
            "2018-13-01T00:00:00Z",
            "2018-02-30T00:00:00Z",
            "2018-11-28T24:00:00Z",
            "2018-11-28T23:04:54Q",
            "2018-11-28T23:04:54.Z",
            "２018-11-28T23:04:54Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn parses_java_expiration() {
        assert_eq!(parse_expiration("Nov 28, 2018 11:03:12 PM"), parse_rfc3339("2018-11-28T23:03:12Z"));
        assert_eq!(parse_expiration("Mar 6, 2020 12:59:31 AM"), parse_rfc3339("2020-03-06T00:59:31Z"));
        assert_eq!(parse_expiration("Feb 30, 2020 1:00:00 AM"), None);
        assert_eq!(parse_expiration("soon"), None);
    }

    #[test]
    fn round_trips() {
        for s in ["2018-11-28T23:04:54Z", "2000-02-29T12:00:00Z", "1969-12-31T23:59:59Z"] {
            let ms = parse_rfc3339(s).expect("valid");
            assert_eq!(format_rfc3339(ms), s);
        }
    }
}
