//! eKuiper durations: a JSON number is milliseconds; a string is a Go duration
//! (`"1s"`, `"500ms"`, `"1m30s"`, `"2h"`), or a plain number of milliseconds.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected milliseconds or a duration such as \"500ms\", \"1s\", \"5m\""
)]
pub struct DurationError(pub String);

/// Parses a Go-style duration string or plain milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError(s.to_string()));
    }
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let num: f64 = t[start..i]
            .parse()
            .map_err(|_| DurationError(s.to_string()))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &t[ustart..i];
        let ns = match unit {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(DurationError(s.to_string())),
        };
        total += num * ns;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Parses a JSON value as a duration (number = ms).
pub fn duration_from_json(v: &serde_json::Value) -> Result<Duration, DurationError> {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| *f >= 0.0)
            .map(|f| Duration::from_micros((f * 1000.0) as u64))
            .ok_or_else(|| DurationError(n.to_string())),
        serde_json::Value::String(s) => parse_duration(s),
        other => Err(DurationError(other.to_string())),
    }
}

/// Formats like Go's `time.Duration.String()` for whole units (`5m0s`, `1s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms % 60_000) as f64 / 1000.0;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_millis() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(format_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
    }
}
