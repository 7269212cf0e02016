//! An independent judge of one `bwguard::install::config::plan_set` outcome (SPEC
//! safety rule 7), shared by `tests/config_props.rs` and the `config_edit`
//! fuzz target.
//!
//! It never uses bwguard's own reader: values are read with yaml-rust2's
//! `YamlLoader`, lines are split here, and what a value means for a key's type
//! is worked out from the rules in SPEC and `KeyType`'s documentation.
//!
//! - A refusal (`Err`) is always acceptable here (whether a refusal was right
//!   is for callers that know how the file was built).
//! - `Unchanged`: the key is known, the value valid, and the file already holds
//!   that value by Setup's reading.
//! - `Changed` in place: same lines but one (the reported one), and the new
//!   file reads as the old one except that key, which holds the new value.
//! - `Changed` by appending (`add_missing`, key absent): the old bytes are a
//!   prefix, three lines follow, and the new file reads as the old one plus
//!   the key at the end.

use bwguard::install::config::{Edit, KeyType, known_key};
use yaml_rust2::{Yaml, YamlLoader};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Setup's reading of a boolean's text.
pub fn setup_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Some(true),
        "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn bad_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// How a key of type `ty` must read after `set KEY value`, or None when the
/// value is not valid for the type (and must be refused).
pub fn expected(key: &str, ty: KeyType, value: &str) -> Option<Yaml> {
    let v = value.trim();
    match ty {
        KeyType::Bool => setup_bool(v).map(Yaml::Boolean),
        KeyType::Port if v.is_empty() => Some(Yaml::Null),
        KeyType::Port => {
            let digits = v.bytes().all(|b| b.is_ascii_digit());
            v.parse::<u16>().ok().filter(|_| digits).map(|n| Yaml::Integer(i64::from(n)))
        }
        KeyType::Text if value.chars().any(bad_char) => None,
        // Setup marks the URL "(Required)".
        KeyType::Text if key == "url" && v.is_empty() => None,
        KeyType::Text if value.is_empty() => Some(Yaml::Null),
        KeyType::Text => Some(Yaml::String(value.to_string())),
        KeyType::List if v.is_empty() => Some(Yaml::Null),
        KeyType::List if !v.starts_with('[') || v.chars().any(bad_char) => None,
        KeyType::List => {
            let docs = YamlLoader::load_from_str(&format!("k: {v}")).ok()?;
            let [Yaml::Hash(h)] = docs.as_slice() else { return None };
            let (Some((_, Yaml::Array(items))), 1) = (h.iter().next(), h.len()) else { return None };
            items.iter().all(|i| matches!(i, Yaml::String(_))).then(|| Yaml::Array(items.clone()))
        }
    }
}

/// Whether `current` (as YAML reads it) already is `want` for a key of type `ty`, by Setup's reading.
fn already(ty: KeyType, current: &Yaml, want: &Yaml) -> bool {
    match (ty, current, want) {
        (_, Yaml::Null, Yaml::Null) => true,
        // `key: ""` and `key: ` are both "empty" to Setup for text and ports.
        (KeyType::Text | KeyType::Port, Yaml::String(s), Yaml::Null) => s.is_empty(),
        (KeyType::Bool, Yaml::Boolean(c), Yaml::Boolean(w)) => c == w,
        (KeyType::Bool, Yaml::String(s), Yaml::Boolean(w)) => setup_bool(s) == Some(*w),
        (KeyType::Port, Yaml::String(s), Yaml::Integer(w)) => *s == w.to_string(),
        // A plain scalar that YAML reads as a number, boolean or null is text to Setup.
        (KeyType::Text, c, Yaml::String(w)) => c == want || *c == Yaml::from_str(w),
        (_, c, w) => c == w,
    }
}

/// The file's lines, each with its line break (`\r\n`, `\n` or a lone `\r`).
pub fn lines(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&b[start..end]);
        start = end;
        i = end;
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

/// The top-level pairs of config.yml bytes as YamlLoader reads them, in order.
pub fn read_pairs(bytes: &[u8]) -> Result<Vec<(Yaml, Yaml)>, String> {
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("YamlLoader refuses it: {e}"))?;
    match docs.as_slice() {
        [Yaml::Hash(h)] => Ok(h.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        other => Err(format!("not one mapping document: {other:?}")),
    }
}

/// Judges `result = plan_set(original, key, value, add_missing)`; `Err` names the broken rule.
pub fn check(
    original: &[u8],
    key: &str,
    value: &str,
    add_missing: bool,
    result: &Result<Edit, bwguard::install::config::ConfigError>,
) -> Result<(), String> {
    let Ok(edit) = result else { return Ok(()) };
    let ty = known_key(key).ok_or_else(|| format!("accepted the unknown key {key:?}"))?.ty;
    let want = expected(key, ty, value).ok_or_else(|| format!("accepted {value:?}, not valid for {ty:?}"))?;
    let before = read_pairs(original).map_err(|e| format!("accepted a file that is not config YAML: {e}"))?;
    let yaml_key = Yaml::String(key.to_string());
    let current = before.iter().find(|(k, _)| *k == yaml_key).map(|(_, v)| v);
    match edit {
        Edit::Unchanged { key: k, .. } if k != key => Err(format!("Unchanged names key {k:?}")),
        Edit::Unchanged { .. } => match current {
            Some(c) if already(ty, c, &want) => Ok(()),
            Some(c) => Err(format!("Unchanged, but the file holds {c:?}, not {want:?}")),
            None => Err("Unchanged, but the key is not in the file".into()),
        },
        Edit::Changed { key: k, .. } if k != key => Err(format!("Changed names key {k:?}")),
        Edit::Changed { line, bytes, .. } => {
            let after = read_pairs(bytes).map_err(|e| format!("the edited file does not read: {e}"))?;
            let mut intended = before.clone();
            match intended.iter_mut().find(|(k, _)| *k == yaml_key) {
                Some((_, v)) => *v = want.clone(),
                None => intended.push((yaml_key, want.clone())),
            }
            if after != intended {
                let diff: Vec<_> = (0..after.len().max(intended.len()))
                    .filter(|&i| after.get(i) != intended.get(i))
                    .map(|i| (after.get(i), intended.get(i)))
                    .collect();
                return Err(format!(
                    "the edited file reads otherwise than intended (got, intended): {diff:?}"
                ));
            }
            let (old, new) = (lines(original), lines(bytes));
            if current.is_some() {
                let differ: Vec<usize> =
                    (0..old.len().max(new.len())).filter(|&i| old.get(i) != new.get(i)).collect();
                if old.len() != new.len() || differ != [line - 1] {
                    return Err(format!(
                        "in-place edit of line {line}: {} lines before, {} after, differing lines (0-based) {differ:?}",
                        old.len(),
                        new.len()
                    ));
                }
                Ok(())
            } else if !add_missing {
                Err("appended a key without add_missing".into())
            } else {
                check_append(original, bytes, old.len(), new.len())
            }
        }
    }
}

fn check_append(original: &[u8], bytes: &[u8], old_lines: usize, new_lines: usize) -> Result<(), String> {
    // The file's line-ending style: that of its first `\n`.
    let crlf = original.iter().position(|&b| b == b'\n').is_some_and(|i| i > 0 && original[i - 1] == b'\r');
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut prefix = original.to_vec();
    if !original.is_empty() && !original.ends_with(b"\n") && !original.ends_with(b"\r") {
        prefix.extend_from_slice(nl);
    }
    if !bytes.starts_with(&prefix) {
        return Err("appending changed the original bytes".into());
    }
    let added = lines(&bytes[prefix.len()..]);
    let style = added.iter().all(|l| l.ends_with(nl) && (crlf || !l.ends_with(b"\r\n")));
    // (The reported line of an append is not checked: `plan_set` counts `\n`
    // where YAML also counts a lone `\r` as a line break.)
    if added.len() != 3 || !style || new_lines != old_lines + 3 {
        let added: Vec<_> = added.iter().map(|l| String::from_utf8_lossy(l)).collect();
        return Err(format!("appended {added:?}, not three whole lines in the file's style"));
    }
    Ok(())
}
