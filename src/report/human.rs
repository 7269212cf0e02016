//! Sizes and ages in human units, colours for labels, and text made safe
//! for a terminal.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::engine::manifest::Manifest;

/// Whether to colour stderr: a terminal, and `NO_COLOR` unset or empty
/// (<https://no-color.org>).
pub fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `label` in bold ANSI colour `code` (31 red, 32 green, 33 yellow, 36 cyan) when `on`.
pub fn paint(label: &str, code: u8, on: bool) -> String {
    if on { format!("\x1b[1;{code}m{label}\x1b[0m") } else { label.to_string() }
}

/// `text` with every control character but newline and tab escaped
/// (`\u{1b}`): notes, version pins, file names and the output of
/// Bitwarden's scripts come from files another user can write, and must
/// not reach a terminal as escape sequences. Every human line goes through
/// this ([`crate::context::Output`], errors, the log line).
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

/// [`printable`], newlines and tabs escaped too: for a value that must stay
/// on its line (a table cell, a log line).
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() && !keep(c) { c.escape_default().to_string() } else { c.to_string() })
            .collect(),
    )
}

/// Parses an age like `90m`, `26h`, `2d` or `1w` into seconds.
pub fn parse_age(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not an age like 26h, 2d or 1w"))?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(format!("{s:?}: use s, m, h, d or w, e.g. 26h")),
    };
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(|| format!("{s:?} is not a usable age"))
}

/// Bytes in human units (binary prefixes).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A duration in human units, e.g. `3h 5m` or `2d 4h`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// Seconds since the snapshot was taken.
pub fn age(m: &Manifest, now: DateTime<Utc>) -> Option<i64> {
    seconds_since(&m.created, now)
}

/// Seconds from an RFC 3339 time to `now`.
pub fn seconds_since(time: &str, now: DateTime<Utc>) -> Option<i64> {
    DateTime::parse_from_rfc3339(time).ok().map(|t| (now - t.with_timezone(&Utc)).num_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(human_age(2 * 86400 + 4 * 3600), "2d 4h");
        assert_eq!(parse_age("26h"), Ok(26 * 3600));
        assert_eq!(parse_age("2d"), Ok(2 * 86400));
        assert_eq!(parse_age("90m"), Ok(5400));
        assert!(parse_age("2x").is_err() && parse_age("h").is_err() && parse_age("0h").is_err());
    }

    #[test]
    fn control_characters_never_pass_raw() {
        let hostile = "2026.8.0\x1b]0;owned\x07\x1b[2J\u{9b}31m\r";
        assert_eq!(printable(hostile), "2026.8.0\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{9b}31m\\r");
        assert_eq!(printable("two\nlines\tand a tab"), "two\nlines\tand a tab");
        assert_eq!(one_line("two\nlines\tand a tab"), "two\\nlines\\tand a tab");
        assert!(matches!(printable("plain ünïcode"), Cow::Borrowed(_)));
    }
}
