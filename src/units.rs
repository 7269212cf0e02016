//! Sizes and ages in human units.

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
    }
}
