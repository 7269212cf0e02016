//! The one edit: a value validated for its key's type, written on its
//! line, and the result read again and compared with the original.

use yaml_rust2::Yaml;
use yaml_rust2::scanner::TScalarStyle;

use super::keys::{ConfigError, KeyType, known_key};
use super::parse::{Entry, Node, entry_raw, parse_body, setup_bool, split_bom};

/// The outcome of planning one edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The key already has that value (by Setup's reading for booleans, e.g.
    /// `True` or `"true"` counts as true): nothing to write.
    Unchanged { key: String, value: String },
    /// The new file bytes, differing from the original in that one value (or
    /// by the appended lines). `old` is None when appended (the scalar as YAML
    /// reads it, or a flow list's text); `line` is the key's 1-based line.
    Changed { key: String, old: Option<String>, new: String, line: usize, bytes: Vec<u8> },
}

const BOOL_FORMS: &str = "true or false (also yes/no, on/off, y/n, in any case)";
const PORT_FORMS: &str = "a port number from 0 to 65535, or nothing";
const TEXT_FORMS: &str = "a single line of text without control characters";
const LIST_FORMS: &str = "a one-line list of strings such as ['10.0.0.0/8', '172.16.0.0/12'], or nothing";

/// Canonical text of `value` for a key of type `ty`, or WrongType: Bool gives
/// "true"/"false", Port "" or a number, List "" or `['a', 'b']`, Text the value.
pub fn canonical_value(key: &str, ty: KeyType, value: &str) -> Result<String, ConfigError> {
    let wrong = |expected| ConfigError::WrongType { key: key.into(), value: value.into(), expected };
    let bad_char = |c: char| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}');
    let v = value.trim();
    match ty {
        KeyType::Bool => setup_bool(v).map(|b| b.to_string()).ok_or_else(|| wrong(BOOL_FORMS)),
        KeyType::Port if v.is_empty() => Ok(String::new()),
        KeyType::Port => match v.parse::<u16>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(n.to_string()),
            _ => Err(wrong(PORT_FORMS)),
        },
        KeyType::Text if value.chars().any(bad_char) => Err(wrong(TEXT_FORMS)),
        // Setup marks the URL "(Required)": an empty one breaks the install.
        KeyType::Text if key == "url" && v.is_empty() => {
            Err(wrong("a non-empty URL like https://vault.example.com"))
        }
        KeyType::Text => Ok(value.to_string()),
        KeyType::List if v.is_empty() => Ok(String::new()),
        KeyType::List => {
            let items = parse_list(v).filter(|_| !v.chars().any(bad_char));
            let items = items.ok_or_else(|| wrong(LIST_FORMS))?;
            let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect();
            Ok(format!("[{}]", quoted.join(", ")))
        }
    }
}

/// The strings of a flow sequence `[...]`, if `v` is one holding only strings.
fn parse_list(v: &str) -> Option<Vec<String>> {
    if !v.starts_with('[') {
        return None;
    }
    let entries = parse_body(&format!("k: {v}")).ok()?;
    match entries.as_slice() {
        [Entry { value: Yaml::Array(items), .. }] => {
            items.iter().map(|y| y.as_str().map(str::to_string)).collect()
        }
        _ => None,
    }
}

/// How a key of type `ty` holding canonical `new` reads after the edit.
fn expected_yaml(ty: KeyType, new: &str) -> Yaml {
    match ty {
        _ if new.is_empty() => Yaml::Null,
        KeyType::Bool => Yaml::Boolean(new == "true"),
        KeyType::Port => new.parse().map(Yaml::Integer).unwrap_or(Yaml::BadValue),
        KeyType::Text => Yaml::String(new.to_string()),
        KeyType::List => parse_list(new)
            .map_or(Yaml::BadValue, |items| Yaml::Array(items.into_iter().map(Yaml::String).collect())),
    }
}

/// The text written for canonical `new`: plain when YAML reads it back as the
/// same string, else double-quoted.
fn render(ty: KeyType, new: &str) -> String {
    if ty != KeyType::Text || new.is_empty() {
        return new.to_string();
    }
    let indicator = new.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c));
    let plain_ok = !indicator
        && new.trim() == new
        && parse_body(&format!("k: {new}"))
            .is_ok_and(|es| matches!(es.as_slice(), [e] if e.value == Yaml::String(new.to_string())));
    if plain_ok { new.to_string() } else { format!("\"{}\"", new.replace('\\', "\\\\").replace('"', "\\\"")) }
}

/// Byte positions on the key's line: `start..end` is replaced by `pre + value + post`.
struct Span {
    start: usize,
    end: usize,
    pre: &'static str,
    post: &'static str,
}

fn line_end(b: &[u8], from: usize) -> usize {
    b.iter().skip(from).position(|&c| c == b'\n' || c == b'\r').map_or(b.len(), |p| from + p)
}

fn skip_blanks(b: &[u8], from: usize, limit: usize) -> usize {
    (from..limit).find(|&i| b[i] != b' ' && b[i] != b'\t').unwrap_or(limit)
}

/// The byte after the quoted scalar opening at `at`, if it closes before `limit`.
fn quoted_end(b: &[u8], at: usize, limit: usize) -> Option<usize> {
    let q = *b.get(at)?;
    let mut i = at + 1;
    while i < limit {
        match b[i] {
            b'\\' if q == b'"' => i += 2,
            b'\'' if q == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == q => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of a plain scalar starting at `at`: before ` #` or the line end, trailing blanks excluded.
fn plain_end(b: &[u8], at: usize, eol: usize) -> usize {
    let cut = (at + 1..eol).find(|&i| b[i] == b'#' && matches!(b[i - 1], b' ' | b'\t'));
    let mut end = cut.unwrap_or(eol);
    while end > at && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    end
}

/// Where `e`'s value sits, or NotOneLine when it is not a one-line value on the key's line.
fn value_span(body: &str, e: &Entry) -> Result<Span, ConfigError> {
    let refuse = || ConfigError::NotOneLine { key: e.key.clone(), line: e.line };
    let b = body.as_bytes();
    let key_end = if e.key_quoted {
        quoted_end(b, e.key_at, line_end(b, e.key_at)).ok_or_else(refuse)?
    } else if body.get(e.key_at..).is_some_and(|rest| rest.starts_with(&e.key)) {
        e.key_at + e.key.len()
    } else {
        return Err(refuse());
    };
    let eol = line_end(b, key_end);
    let colon = skip_blanks(b, key_end, eol);
    if b.get(colon) != Some(&b':') {
        return Err(refuse());
    }
    let at = skip_blanks(b, colon + 1, eol);
    let span = |start, end| Span { start, end, pre: "", post: "" };
    let tail_ok = |from: usize| {
        let t = skip_blanks(b, from, eol);
        t == eol || (b[t] == b'#' && t > from)
    };
    let end = match &e.node {
        Node::Scalar { text, style: TScalarStyle::Plain, decorated: false, .. } if text.is_empty() => {
            return match b.get(at) {
                _ if at == eol && at == colon + 1 => Ok(Span { pre: " ", ..span(at, at) }),
                _ if at == eol => Ok(span(at, at)),
                Some(b'#') if at - colon >= 3 => Ok(span(colon + 2, colon + 2)),
                Some(b'#') => Ok(Span { post: " ", ..span(at, at) }),
                _ => Err(refuse()),
            };
        }
        Node::Scalar { text, style, decorated: false, at: v, line } if *line == e.line && *v == at => {
            match style {
                TScalarStyle::Plain => {
                    Some(plain_end(b, at, eol)).filter(|&end| body.get(at..end) == Some(text.as_str()))
                }
                TScalarStyle::SingleQuoted => quoted_end(b, at, eol).filter(|&end| {
                    body.get(at + 1..end - 1).map(|s| s.replace("''", "'")).as_ref() == Some(text)
                }),
                TScalarStyle::DoubleQuoted => quoted_end(b, at, eol),
                _ => None,
            }
        }
        Node::Seq { at: v, line, end, end_line }
            if *line == e.line && *end_line == e.line && *v == at && b.get(at) == Some(&b'[') =>
        {
            Some(end + 1).filter(|_| b.get(*end) == Some(&b']'))
        }
        _ => None,
    };
    match end {
        Some(end) if tail_ok(end) => Ok(span(at, end)),
        _ => Err(refuse()),
    }
}

/// Checks `new_body` against the original entries: same keys in the same
/// order (plus `key` at the end if it was missing), other values unchanged,
/// `key` reading as `want`.
pub(super) fn verify(old: &[Entry], new_body: &str, key: &str, want: &Yaml) -> Result<(), ConfigError> {
    let fail = |reason: String| ConfigError::Verify { reason };
    let new = parse_body(new_body).map_err(|e| fail(format!("the edited file does not read: {e}")))?;
    let mut names: Vec<&str> = old.iter().map(|e| e.key.as_str()).collect();
    if !names.contains(&key) {
        names.push(key);
    }
    if !new.iter().map(|e| e.key.as_str()).eq(names) {
        return Err(fail("the top-level keys or their order changed".into()));
    }
    for n in &new {
        let ok = if n.key == key {
            n.value == *want
        } else {
            old.iter().any(|o| o.key == n.key && o.value == n.value)
        };
        if !ok {
            return Err(fail(format!("`{}` does not read as intended after the edit", n.key)));
        }
    }
    Ok(())
}

/// Plans `key: value` on `original` (the file's bytes): validates key and
/// value, edits one line (or appends the key if `add_missing`), re-parses
/// and compares.
pub fn plan_set(original: &[u8], key: &str, value: &str, add_missing: bool) -> Result<Edit, ConfigError> {
    let known = known_key(key).ok_or_else(|| ConfigError::UnknownKey { key: key.into() })?;
    let new = canonical_value(key, known.ty, value)?;
    let (bom, body) = split_bom(original)?;
    let entries = parse_body(body)?;
    let want = expected_yaml(known.ty, &new);
    let rendered = render(known.ty, &new);
    let (text, line, old) = match entries.iter().find(|e| e.key == key) {
        Some(e) => {
            let same = match known.ty {
                KeyType::Bool => entry_raw(e).and_then(setup_bool) == Some(new == "true"),
                KeyType::List => e.value == want,
                KeyType::Port | KeyType::Text => entry_raw(e) == Some(new.as_str()),
            };
            if same {
                return Ok(Edit::Unchanged { key: key.into(), value: new });
            }
            let s = value_span(body, e)?;
            let (pre, post) = if rendered.is_empty() { ("", "") } else { (s.pre, s.post) };
            let old = entry_raw(e).or_else(|| body.get(s.start..s.end)).map(str::to_string);
            let text = format!("{}{pre}{rendered}{post}{}", &body[..s.start], &body[s.end..]);
            (text, e.line, old)
        }
        None if add_missing => {
            let crlf = body.find('\n').is_some_and(|i| body[..i].ends_with('\r'));
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = body.to_string();
            if !text.is_empty() && !text.ends_with(['\n', '\r']) {
                text.push_str(nl);
            }
            text.push_str(&format!("# {nl}# {}{nl}{key}: {rendered}{nl}", known.description));
            let line = text.matches('\n').count();
            (text, line, None)
        }
        None => return Err(ConfigError::MissingKey { key: key.into() }),
    };
    verify(&entries, &text, key, &want)?;
    let bytes = [bom, text.as_bytes()].concat();
    Ok(Edit::Changed { key: key.into(), old, new, line, bytes })
}
