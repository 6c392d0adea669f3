//! Value parsers shared by the ini and TOML paths: times, integers, booleans.
//!
//! Owns: PgBouncer's number rules. `[pgbouncer]` times are `strtod` seconds (fractions allowed,
//! no unit suffixes, negatives rejected) kept to the microsecond; integers are `strtol` with
//! base 0 (so `0777` is octal and `0x10` hex) and must use the whole value; booleans are
//! integers (non-zero is true), because PgBouncer declares them as ints and rejects `on`/`yes`.
//! `[databases]`/`[users]` numbers use `atoi` (leading digits, `1.5` reads as 1).
//! The TOML form additionally accepts unit strings such as `"500ms"` (a pgsluice extension).
//! Does not: know setting names.
//! Invariants: never panics on any input; errors are plain reasons, the caller adds file:line.

use std::time::Duration;

/// Parses a `[pgbouncer]` time: seconds, possibly fractional, never negative.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid time value: {text}");
    let v: f64 = text.parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    let d = Duration::try_from_secs_f64(v).map_err(|_| bad())?;
    // PgBouncer stores usec_t = (usec_t)(USEC * v): truncate to whole microseconds.
    let micros = u64::try_from(d.as_micros()).map_err(|_| bad())?;
    Ok(Duration::from_micros(micros))
}

/// Parses a TOML duration string: a number of seconds, or a number with a unit
/// (`us`, `ms`, `s`, `min`, `h`, `d`).
pub fn parse_with_unit(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "us" => 1e-6,
        "ms" => 1e-3,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => return Err(format!("unknown time unit \"{other}\" in {text}")),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid time value: {text}"))?;
    parse_secs(&format_secs_f64(v * scale))
}

/// Formats a duration in seconds as C's `%g` would for the values PgBouncer uses
/// (`3600`, `0.5`, `0`).
pub fn format_secs(d: Duration) -> String {
    format_secs_f64(d.as_secs_f64())
}

fn format_secs_f64(v: f64) -> String {
    // Rust's shortest round-trip form matches %g for the magnitudes configs use.
    format!("{v}")
}

/// C `strtol(text, &end, 0)` that must consume the whole string.
pub fn parse_c_long(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid integer value: {text}");
    let t = text.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) =
        if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, h)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    let v = i64::from_str_radix(digits, radix).map_err(|_| bad())?;
    Ok(if neg { -v } else { v })
}

/// An integer setting that must fit `u32` (negative values are rejected).
pub fn parse_u32(text: &str) -> Result<u32, String> {
    let v = parse_c_long(text)?;
    u32::try_from(v).map_err(|_| format!("value out of range: {text}"))
}

/// A boolean setting: an integer, non-zero meaning true.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    parse_c_long(text)
        .map(|v| v != 0)
        .map_err(|_| format!("invalid boolean value: {text} (use 0 or 1)"))
}

/// C `atoi`: optional blanks and sign, then leading digits. Unlike C, a value with no digits
/// at all is an error rather than a silent 0.
pub fn atoi(text: &str) -> Result<i64, String> {
    let t = text.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 {
        return Err(format!("invalid number: {text}"));
    }
    let v: i64 = rest[..end]
        .parse()
        .map_err(|_| format!("number out of range: {text}"))?;
    Ok(if neg { -v } else { v })
}

/// An `atoi` count where `-1` means "not set" (PgBouncer's own marker) and other negatives
/// are rejected.
pub fn atoi_opt_u32(text: &str) -> Result<Option<u32>, String> {
    match atoi(text)? {
        -1 => Ok(None),
        v => u32::try_from(v)
            .map(Some)
            .map_err(|_| format!("invalid value: {text}")),
    }
}

/// An `atoi` whole-seconds time where `-1` means "not set".
pub fn atoi_opt_secs(text: &str) -> Result<Option<Duration>, String> {
    Ok(atoi_opt_u32(text)?.map(|s| Duration::from_secs(u64::from(s))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_secs("1e1"), Ok(Duration::from_secs(10)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("5s").is_err(), "PgBouncer has no unit suffixes");
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("").is_err());
        assert_eq!(parse_with_unit("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_with_unit("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_with_unit("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_with_unit("3 weeks").is_err());
        assert_eq!(format_secs(Duration::from_secs(3600)), "3600");
        assert_eq!(format_secs(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn ints_and_bools() {
        assert_eq!(parse_c_long("0777"), Ok(511));
        assert_eq!(parse_c_long("0x10"), Ok(16));
        assert_eq!(parse_c_long("-3"), Ok(-3));
        assert_eq!(parse_c_long("0"), Ok(0));
        assert!(parse_c_long("12abc").is_err());
        assert!(parse_c_long("08").is_err());
        assert!(parse_u32("-1").is_err());
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("2"), Ok(true));
        assert!(parse_bool("on").is_err());
        assert_eq!(atoi("1.5"), Ok(1));
        assert_eq!(atoi("30s"), Ok(30));
        assert!(atoi("abc").is_err());
        assert_eq!(atoi_opt_u32("-1"), Ok(None));
        assert!(atoi_opt_u32("-2").is_err());
    }
}
