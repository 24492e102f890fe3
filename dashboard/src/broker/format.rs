//! How the broker view writes figures: counts with thousands separators, bytes in
//! binary units, durations as days, hours, minutes. Pure, unit-tested natively.

/// `1234567` → `1,234,567`; a fractional number keeps one decimal (`1,234.5`).
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let negative = value < 0.0;
    let abs = value.abs();
    let whole = abs.trunc() as u64;
    let fraction = abs - abs.trunc();
    let mut digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 3);
    let first = digits.len() % 3;
    if first > 0 {
        out.push_str(&digits[..first]);
    }
    for (i, chunk) in digits.split_off(first).as_bytes().chunks(3).enumerate() {
        if i > 0 || first > 0 {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    if fraction >= 0.05 {
        let tenth = ((fraction * 10.0).round() as u64).min(9);
        out.push_str(&format!(".{tenth}"));
    }
    if negative && out != "0" {
        out.insert(0, '-');
    }
    out
}

/// Bytes as the charts show them (`512 B`, `1.5 KiB`, `12.3 MiB`): one formatter for
/// the whole broker view.
pub use crate::components::scale::bytes;

/// A duration in seconds as its two largest units: `45 s`, `3 min 20 s`, `5 h 2 min`,
/// `12 d 4 h`.
pub fn uptime(secs: u64) -> String {
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, _) => format!("{minutes} min {seconds} s"),
        (0, _, _) => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

/// A `$SYS/broker/...` value for display, by what its name says it counts: bytes in
/// binary units, the uptime (mosquitto's `"123 seconds"` or a bare number) as a
/// duration, other numbers with thousands separators, text as it is.
pub fn sys_value(name: &str, value: &str) -> String {
    let trimmed = value.trim();
    let number = trimmed
        .strip_suffix(" seconds")
        .unwrap_or(trimmed)
        .parse::<f64>()
        .ok();
    match number {
        Some(n) if name == "uptime" || name.ends_with("/uptime") => uptime(n.max(0.0) as u64),
        Some(n) if name.contains("bytes") => bytes(n),
        Some(n) => thousands(n),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits_in_threes() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(123_456.0), "123,456");
        assert_eq!(thousands(-9876.0), "-9,876");
        assert_eq!(thousands(1234.5), "1,234.5");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(5.0 * 1024.0 * 1024.0), "5.0 MiB");
        assert_eq!(bytes(3.0 * 1024f64.powi(3)), "3.0 GiB");
    }

    #[test]
    fn uptime_shows_its_two_largest_units() {
        assert_eq!(uptime(45), "45 s");
        assert_eq!(uptime(200), "3 min 20 s");
        assert_eq!(uptime(5 * 3600 + 125), "5 h 2 min");
        assert_eq!(uptime(12 * 86_400 + 4 * 3600 + 7), "12 d 4 h");
    }

    #[test]
    fn sys_values_are_formatted_by_their_name() {
        assert_eq!(sys_value("uptime", "3700 seconds"), "1 h 1 min");
        assert_eq!(sys_value("load/bytes/received", "2048"), "2.0 KiB");
        assert_eq!(sys_value("messages/received", "1234567"), "1,234,567");
        assert_eq!(sys_value("version", "mqtt-web 0.1.0"), "mqtt-web 0.1.0");
    }
}
