//! Parsing config.yml into its top-level entries with the byte positions of
//! their keys and values, from the YAML parser's own events.

use std::collections::HashMap;

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::yaml::Hash;

use super::keys::ConfigError;

/// How a top-level value is written in the file.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// A scalar whose token starts at byte `at` on line `line`.
    Scalar { text: String, style: TScalarStyle, decorated: bool, at: usize, line: usize },
    /// A sequence from byte `at` (line `line`) to its closing event at byte `end` (line `end_line`).
    Seq { at: usize, line: usize, end: usize, end_line: usize },
    /// A mapping or an alias: never edited in place.
    Other,
}

/// One top-level `key: value` pair.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) key_quoted: bool,
    pub(super) key_at: usize,
    pub(super) line: usize,
    pub(super) value: Yaml,
    pub(super) node: Node,
}

#[derive(Default)]
struct Events(Vec<(Event, Marker)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark));
    }
}

/// Walks parser events into `Yaml` values. Positions come from a marker's
/// line and column (in chars), which every line break sets right again:
/// yaml-rust2's running index drifts after non-ASCII text in block scalars.
struct Walker<'a> {
    ev: &'a [(Event, Marker)],
    i: usize,
    anchors: HashMap<usize, Yaml>,
    body: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Walker<'a> {
    fn peek(&self) -> Result<&'a (Event, Marker), ConfigError> {
        let ev = self.ev;
        ev.get(self.i).ok_or(ConfigError::Unparsable { line: None, reason: "unexpected end".into() })
    }

    fn bump(&mut self) -> Result<(Event, Marker), ConfigError> {
        let next = self.peek()?.clone();
        self.i += 1;
        Ok(next)
    }

    fn byte(&self, m: &Marker) -> usize {
        let Some(&start) = self.line_starts.get(m.line().saturating_sub(1)) else {
            return self.body.len();
        };
        let line = &self.body[start..];
        start + line.char_indices().nth(m.col()).map_or(line.len(), |(b, _)| b)
    }

    fn node(&mut self) -> Result<Yaml, ConfigError> {
        let (ev, mark) = self.bump()?;
        let (yaml, anchor) = match ev {
            Event::Scalar(text, style, aid, tag) => (scalar(text, style, tag.as_ref()), aid),
            Event::Alias(id) => (self.anchors.get(&id).cloned().unwrap_or(Yaml::BadValue), 0),
            Event::SequenceStart(aid, _) => {
                let mut items = Vec::new();
                while !matches!(self.peek()?.0, Event::SequenceEnd) {
                    items.push(self.node()?);
                }
                self.i += 1;
                (Yaml::Array(items), aid)
            }
            Event::MappingStart(aid, _) => {
                let mut map = Hash::new();
                while !matches!(self.peek()?.0, Event::MappingEnd) {
                    let line = self.peek()?.1.line();
                    let (k, v) = (self.node()?, self.node()?);
                    if map.insert(k, v).is_some() {
                        let reason = "a nested mapping repeats a key".into();
                        return Err(ConfigError::Unparsable { line: Some(line), reason });
                    }
                }
                self.i += 1;
                (Yaml::Hash(map), aid)
            }
            _ => {
                let reason = "unexpected YAML structure".into();
                return Err(ConfigError::Unparsable { line: Some(mark.line()), reason });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, yaml.clone());
        }
        Ok(yaml)
    }
}

/// A scalar as yaml-rust2's loader reads it: quoted is text; a plain scalar
/// with a core tag (`!!bool`, `!!int`, `!!float`, `!!null`) is that type, or
/// a bad value when its text is not one (`!!bool x` is not the string "x");
/// any other tag leaves text; an untagged plain scalar is resolved as usual.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Yaml {
    let core = |t: &Tag| (t.handle == "tag:yaml.org,2002:").then(|| t.suffix.clone());
    match (style, tag.map(core)) {
        (TScalarStyle::Plain, None) => Yaml::from_str(&text),
        (TScalarStyle::Plain, Some(Some(suffix))) => match (suffix.as_str(), Yaml::from_str(&text)) {
            ("bool", b @ Yaml::Boolean(_)) => b,
            ("int", _) => text.parse().map_or(Yaml::BadValue, Yaml::Integer),
            ("float", Yaml::Real(_)) => Yaml::Real(text),
            ("float", Yaml::Integer(_)) if text.parse::<f64>().is_ok() => Yaml::Real(text),
            ("null", _) if text == "~" || text == "null" => Yaml::Null,
            ("bool" | "float" | "null", _) => Yaml::BadValue,
            _ => Yaml::String(text),
        },
        _ => Yaml::String(text),
    }
}

/// Parses a BOM-less body into its top-level entries (see [`Config::parse`]).
pub(super) fn parse_body(body: &str) -> Result<Vec<Entry>, ConfigError> {
    let mut events = Events::default();
    Parser::new_from_str(body).load(&mut events, true).map_err(|e| ConfigError::Unparsable {
        line: Some(e.marker().line()),
        reason: e.info().to_string(),
    })?;
    // Line breaks as YAML counts them: LF, CRLF, and a lone CR.
    let bytes = body.as_bytes();
    let line_starts = std::iter::once(0)
        .chain((0..bytes.len()).filter_map(|i| match bytes[i] {
            b'\n' => Some(i + 1),
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => Some(i + 1),
            _ => None,
        }))
        .collect::<Vec<usize>>();
    let mut w = Walker { ev: &events.0, i: 1, anchors: HashMap::new(), body, line_starts };
    if !matches!(w.bump()?.0, Event::DocumentStart) || !matches!(w.bump()?.0, Event::MappingStart(..)) {
        return Err(ConfigError::NotMapping);
    }
    let mut entries = Vec::new();
    loop {
        let (key, style, km) = match w.bump()? {
            (Event::MappingEnd, _) => break,
            (Event::Scalar(key, style, 0, None), km) => (key, style, km),
            (_, m) => {
                let reason = "a top-level key is not a string".into();
                return Err(ConfigError::Unparsable { line: Some(m.line()), reason });
            }
        };
        let (vev, vm) = w.peek()?.clone();
        let value = w.node()?;
        let (at, line) = (w.byte(&vm), vm.line());
        let node = match vev {
            Event::Scalar(text, style, aid, tag) => {
                Node::Scalar { text, style, decorated: aid != 0 || tag.is_some(), at, line }
            }
            Event::SequenceStart(..) => match w.ev.get(w.i - 1) {
                Some((_, em)) => Node::Seq { at, line, end: w.byte(em), end_line: em.line() },
                None => Node::Other,
            },
            _ => Node::Other,
        };
        let key_quoted = style != TScalarStyle::Plain;
        entries.push(Entry { key, key_quoted, key_at: w.byte(&km), line: km.line(), value, node });
    }
    if !matches!(w.bump()?.0, Event::DocumentEnd) || !matches!(w.bump()?.0, Event::StreamEnd) {
        let line = w.ev.get(w.i - 1).map(|(_, m)| m.line());
        return Err(ConfigError::Unparsable { line, reason: "more than one YAML document".into() });
    }
    for e in &entries {
        let lines: Vec<usize> = entries.iter().filter(|o| o.key == e.key).map(|o| o.line).collect();
        if lines.len() > 1 {
            return Err(ConfigError::DuplicateKey { key: e.key.clone(), lines });
        }
    }
    // The loader's own reading must agree that this is one sound document
    // (it also refuses keys duplicated at any depth, `~` and `` included).
    yaml_rust2::YamlLoader::load_from_str(body).map_err(|e| ConfigError::Unparsable {
        line: Some(e.marker().line()),
        reason: e.info().to_string(),
    })?;
    Ok(entries)
}

/// Splits off a UTF-8 BOM and checks the rest is UTF-8.
pub(super) fn split_bom(bytes: &[u8]) -> Result<(&[u8], &str), ConfigError> {
    let n = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let (bom, rest) = bytes.split_at(n);
    Ok((bom, std::str::from_utf8(rest).map_err(|_| ConfigError::NotUtf8)?))
}

/// The scalar text of an entry as YAML reads it, "" for null; None for collections.
pub(super) fn entry_raw(e: &Entry) -> Option<&str> {
    match &e.node {
        Node::Scalar { .. } if e.value.is_null() => Some(""),
        Node::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// Setup's reading of a boolean.
pub(super) fn setup_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Some(true),
        "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A parsed config.yml: the top-level keys, in order, with their values.
#[derive(Debug, Clone)]
pub struct Config {
    entries: Vec<Entry>,
}

impl Config {
    /// Parses config.yml bytes: an optional BOM, then UTF-8 holding one YAML
    /// document whose root is a mapping with string keys, none repeated.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        Ok(Config { entries: parse_body(split_bom(bytes)?.1)? })
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The top-level keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// The value's scalar content as YAML reads it ("" for empty or null);
    /// None if the key is absent or its value is not a scalar.
    pub fn raw(&self, key: &str) -> Option<&str> {
        entry_raw(self.entry(key)?)
    }

    /// The value read the way Setup reads booleans; None if absent or not a boolean.
    pub fn bool_value(&self, key: &str) -> Option<bool> {
        self.raw(key).and_then(setup_bool)
    }

    /// True when the file holds the top-level key.
    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }
}
