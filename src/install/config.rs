//! Reading and editing Bitwarden's `bwdata/config.yml` without losing a byte.
//!
//! Owns the keys Bitwarden's Setup knows ([`KNOWN_KEYS`]), how their values
//! are validated and written, and the one edit bwguard makes to the file
//! (SPEC safety rule 7). Pure: bytes in, bytes out, no I/O.
//!
//! Invariants:
//! - Keys and values are located by the YAML parser's event positions, never
//!   by searching text, so key-like text in comments, block scalars, quoted
//!   strings or nested mappings is never matched.
//! - An edit replaces one value's byte span on its key's line (or appends
//!   three lines for a missing key); every other byte is kept: BOM, comments,
//!   order, trailing spaces, line endings.
//! - The result is parsed again and is only returned when the top-level keys
//!   are the same, in the same order, every other value reads as before and
//!   the edited key reads as the new value.

use std::collections::HashMap;

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::yaml::Hash;

/// Type of a known config.yml key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `true`/`false`; Setup also reads y/yes/on and n/no/off in any case.
    Bool,
    /// A port number from 0 to 65535, or empty.
    Port,
    /// One line of text, or empty.
    Text,
    /// A one-line flow list of strings such as `['10.0.0.0/8']`, or empty.
    List,
}

/// A top-level key Bitwarden's Setup knows (release 2026.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKey {
    /// The key as written in config.yml.
    pub name: &'static str,
    /// The values it takes.
    pub ty: KeyType,
    /// The first comment line Setup writes above it.
    pub description: &'static str,
}

macro_rules! known_keys {
    ($($name:literal $ty:ident $description:literal)*) => {
        &[$(KnownKey { name: $name, ty: KeyType::$ty, description: $description }),*]
    };
}

/// The keys Setup writes, in the order it writes them.
pub const KNOWN_KEYS: &[KnownKey] = known_keys! {
    "url" Text "Full URL for accessing the installation from a browser. (Required)"
    "generate_compose_config" Bool "Auto-generate the `./docker/docker-compose.yml` config file."
    "generate_nginx_config" Bool "Auto-generate the `./nginx/default.conf` file."
    "http_port" Port "Docker compose file port mapping for HTTP. Leave empty to remove the port mapping."
    "https_port" Port "Docker compose file port mapping for HTTPS. Leave empty to remove the port mapping."
    "ssl" Bool "Configure Nginx for SSL."
    "ssl_versions" Text "SSL versions used by Nginx (ssl_protocols). Leave empty for recommended default."
    "ssl_ciphersuites" Text "SSL ciphersuites used by Nginx (ssl_ciphers). Leave empty for recommended default."
    "ssl_curves" Text "SSL curves (groups in TLS 1.3) used by Nginx (ssl_ecdh_curve). Leave empty for recommended default."
    "ssl_managed_lets_encrypt" Bool "Installation uses a managed Let's Encrypt certificate."
    "ssl_certificate_path" Text "The actual certificate. (Required if using SSL without managed Let's Encrypt)"
    "ssl_key_path" Text "The certificate's private key. (Required if using SSL without managed Let's Encrypt)"
    "ssl_ca_path" Text "If the certificate is trusted by a CA, you should provide the CA's certificate."
    "ssl_diffie_hellman_path" Text "Diffie Hellman ephemeral parameters"
    "nginx_header_content_security_policy" Text "Nginx Header Content-Security-Policy parameter"
    "push_notifications" Bool "Communicate with the Bitwarden push relay service (push.bitwarden.com) for mobile"
    "database_docker_volume" Bool "Use a docker volume (`mssql_data`) instead of a host-mapped volume for the persisted database."
    "real_ips" List "Defines \"real\" IPs in nginx.conf. Useful for defining proxy servers that forward the "
    "enable_key_connector" Bool "Enable Key Connector (https://bitwarden.com/help/article/deploy-key-connector)"
    "enable_scim" Bool "Enable SCIM"
    "enable_built_in_ms_sql" Bool "Enable Built-In MSSQL Container Generation"
};

/// The known key named `name`, if Setup knows it.
pub fn known_key(name: &str) -> Option<&'static KnownKey> {
    KNOWN_KEYS.iter().find(|k| k.name == name)
}

/// Why config.yml could not be read or an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not UTF-8.
    #[error("the file is not valid UTF-8")]
    NotUtf8,
    /// The file is not YAML this module can read.
    #[error("the file is not valid YAML{}: {reason}", at_line(.line))]
    Unparsable { line: Option<usize>, reason: String },
    /// The document is empty or its root is not a mapping.
    #[error("the file does not hold a mapping of `key: value` lines")]
    NotMapping,
    /// Setup does not know the key.
    #[error("unknown key `{key}`: Bitwarden's setup does not know it")]
    UnknownKey { key: String },
    /// A top-level key occurs more than once.
    #[error("key `{key}` appears more than once (lines {})", join(.lines))]
    DuplicateKey { key: String, lines: Vec<usize> },
    /// The value does not fit the key's type.
    #[error("`{}` is not a valid value for `{key}`: expected {expected}", .value.escape_debug())]
    WrongType { key: String, value: String, expected: &'static str },
    /// The key is not in the file.
    #[error("key `{key}` is missing from the file")]
    MissingKey { key: String },
    /// The value is not a one-line scalar that a line edit can change safely.
    #[error("the value of `{key}` at line {line} is not a one-line value that can be edited in place")]
    NotOneLine { key: String, line: usize },
    /// The edited file did not read back as intended; nothing may be written.
    #[error("the edit did not verify: {reason}")]
    Verify { reason: String },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

fn join(lines: &[usize]) -> String {
    lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

impl ConfigError {
    /// A short, stable kebab-case name for `--json` errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::NotUtf8 => "not-utf8",
            ConfigError::Unparsable { .. } => "unparsable",
            ConfigError::NotMapping => "not-mapping",
            ConfigError::UnknownKey { .. } => "unknown-key",
            ConfigError::DuplicateKey { .. } => "duplicate-key",
            ConfigError::WrongType { .. } => "wrong-type",
            ConfigError::MissingKey { .. } => "missing-key",
            ConfigError::NotOneLine { .. } => "not-one-line",
            ConfigError::Verify { .. } => "verify-failed",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::NotUtf8 => "save config.yml as UTF-8, as Bitwarden's setup writes it".into(),
            ConfigError::Unparsable { .. } | ConfigError::NotMapping => {
                "fix config.yml by hand, or restore it with `bwguard rollback --only config`".into()
            }
            ConfigError::UnknownKey { key } if key == "captcha" || key == "compose_version" => {
                format!("Bitwarden has removed `{key}` and its setup ignores it: nothing to set")
            }
            ConfigError::UnknownKey { key } => {
                let why = "Bitwarden's setup silently drops keys it does not know";
                match closest_key(key) {
                    Some(k) => format!("did you mean `{k}`? ({why})"),
                    None => {
                        let all: Vec<_> = KNOWN_KEYS.iter().map(|k| k.name).collect();
                        format!("known keys: {} ({why})", all.join(", "))
                    }
                }
            }
            ConfigError::DuplicateKey { key, .. } => {
                format!("keep one `{key}:` line, delete the others, then run again")
            }
            ConfigError::WrongType { key, expected, .. } => format!("give `{key}` {expected}"),
            ConfigError::MissingKey { .. } => {
                "run `./bitwarden.sh update` first, which adds the key, or pass --add-missing".into()
            }
            ConfigError::NotOneLine { key, .. } => {
                format!("edit `{key}` by hand, or first rewrite its value on one line")
            }
            ConfigError::Verify { .. } => {
                "nothing was written; edit config.yml by hand and report this bwguard bug".into()
            }
        })
    }
}

/// The known key nearest to a misspelled `key`, if one is close enough.
fn closest_key(key: &str) -> Option<&'static str> {
    let limit = (key.chars().count() / 3).max(2);
    KNOWN_KEYS
        .iter()
        .map(|k| (distance(key, k.name), k.name))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// How a top-level value is written in the file.
#[derive(Debug, Clone)]
enum Node {
    /// A scalar whose token starts at byte `at` on line `line`.
    Scalar { text: String, style: TScalarStyle, decorated: bool, at: usize, line: usize },
    /// A sequence from byte `at` (line `line`) to its closing event at byte `end` (line `end_line`).
    Seq { at: usize, line: usize, end: usize, end_line: usize },
    /// A mapping or an alias: never edited in place.
    Other,
}

/// One top-level `key: value` pair.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    key_quoted: bool,
    key_at: usize,
    line: usize,
    value: Yaml,
    node: Node,
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
fn parse_body(body: &str) -> Result<Vec<Entry>, ConfigError> {
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
fn split_bom(bytes: &[u8]) -> Result<(&[u8], &str), ConfigError> {
    let n = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let (bom, rest) = bytes.split_at(n);
    Ok((bom, std::str::from_utf8(rest).map_err(|_| ConfigError::NotUtf8)?))
}

/// The scalar text of an entry as YAML reads it, "" for null; None for collections.
fn entry_raw(e: &Entry) -> Option<&str> {
    match &e.node {
        Node::Scalar { .. } if e.value.is_null() => Some(""),
        Node::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// Setup's reading of a boolean.
fn setup_bool(s: &str) -> Option<bool> {
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
fn verify(old: &[Entry], new_body: &str, key: &str, want: &Yaml) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const CUR: &[u8] = include_bytes!("../../fixtures/config.yml");
    const OLD: &[u8] = include_bytes!("../../fixtures/config-2022.6.yml");

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    fn changed(r: Result<Edit, ConfigError>) -> Vec<u8> {
        match r {
            Ok(Edit::Changed { bytes, .. }) => bytes,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    fn set(b: &[u8], key: &str, value: &str) -> Vec<u8> {
        changed(plan_set(b, key, value, false))
    }

    /// `src` with the one occurrence of `from` replaced by `to`.
    fn swap(src: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(text(src).matches(from).count(), 1, "{from}");
        text(src).replacen(from, to, 1).into_bytes()
    }

    fn err(r: Result<Edit, ConfigError>) -> ConfigError {
        r.expect_err("expected a refusal")
    }

    #[test]
    fn enables_scim_on_current_fixture() {
        let r = plan_set(CUR, "enable_scim", "true", false).unwrap();
        let line = text(CUR).lines().position(|l| l.starts_with("enable_scim:")).unwrap() + 1;
        let Edit::Changed { key, old, new, line: l, bytes } = r else { panic!("{r:?}") };
        assert_eq!(
            (key.as_str(), old.as_deref(), new.as_str(), l),
            ("enable_scim", Some("false"), "true", line)
        );
        assert_eq!(bytes, swap(CUR, "enable_scim: false\n", "enable_scim: true\n"));
        let again = plan_set(&bytes, "enable_scim", "TRUE", false).unwrap();
        assert_eq!(again, Edit::Unchanged { key: "enable_scim".into(), value: "true".into() });
    }

    #[test]
    fn old_fixture_lacks_scim() {
        let e = err(plan_set(OLD, "enable_scim", "true", false));
        assert_eq!(e.kind(), "missing-key");
        assert!(e.hint().unwrap().contains("`./bitwarden.sh update`"));
        let r = plan_set(OLD, "enable_scim", "true", true).unwrap();
        let Edit::Changed { old: None, line, bytes, .. } = r else { panic!("{r:?}") };
        assert_eq!(bytes, [OLD, b"# \n# Enable SCIM\nenable_scim: true\n"].concat());
        assert_eq!(line, text(&bytes).lines().count());
    }

    #[test]
    fn removed_keys_are_left_alone() {
        let out = set(OLD, "ssl", "off");
        assert_eq!(out, swap(OLD, "\nssl: true\n", "\nssl: false\n"));
        assert!(
            text(&out).contains("\ncompose_version: \n# \n# Configure Nginx for Captcha.\ncaptcha: false\n")
        );
        let e = err(plan_set(OLD, "captcha", "true", false));
        assert_eq!((e.kind(), e.hint().unwrap().contains("removed `captcha`")), ("unknown-key", true));
        let csp = "nginx_header_content_security_policy";
        let out = set(OLD, csp, "default-src 'none'");
        assert_eq!(Config::parse(&out).unwrap().raw(csp), Some("default-src 'none'"));
        let start = text(OLD).find(csp).unwrap();
        assert_eq!(out[..start], OLD[..start]);
        let tail = text(OLD).find("\n# \n# Communicate").unwrap();
        assert!(out.ends_with(&OLD[tail..]));
    }

    #[test]
    fn crlf_stays_crlf() {
        let crlf = |b: &[u8]| text(b).replace('\n', "\r\n").into_bytes();
        let out = set(&crlf(CUR), "enable_scim", "true");
        assert_eq!(out, crlf(&swap(CUR, "enable_scim: false", "enable_scim: true")));
        let out = changed(plan_set(&crlf(OLD), "enable_scim", "yes", true));
        assert_eq!(out, [crlf(OLD), b"# \r\n# Enable SCIM\r\nenable_scim: true\r\n".to_vec()].concat());
    }

    #[test]
    fn inline_comment_and_bool_forms() {
        let out = set(b"url: x\nenable_scim: false # note\n", "enable_scim", "true");
        assert_eq!(out, b"url: x\nenable_scim: true # note\n");
        for v in ["False", "no", "\"false\"", "'false'", "OFF", "n", "'No'  # c"] {
            let out = set(format!("enable_scim: {v}\n").as_bytes(), "enable_scim", "true");
            let rest = v.find("  #").map_or("", |i| &v[i..]);
            assert_eq!(text(&out), format!("enable_scim: true{rest}\n"), "{v}");
        }
        for v in ["true", "True", "\"true\"", "'yes'", "ON # c"] {
            let r = plan_set(format!("enable_scim: {v}\n").as_bytes(), "enable_scim", "Yes", false);
            assert_eq!(r.unwrap(), Edit::Unchanged { key: "enable_scim".into(), value: "true".into() });
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let src = b"enable_scim: false\nurl: x\nenable_scim: true\n";
        let e = err(plan_set(src, "enable_scim", "true", false));
        assert!(
            matches!(&e, ConfigError::DuplicateKey { key, lines } if key == "enable_scim" && lines == &[1, 3])
        );
        assert_eq!(e.to_string(), "key `enable_scim` appears more than once (lines 1, 3)");
        assert!(matches!(Config::parse(src), Err(ConfigError::DuplicateKey { .. })));
    }

    #[test]
    fn key_text_that_is_not_a_key_does_not_count() {
        let csp = "nginx_header_content_security_policy";
        for src in [
            "url: x\n# enable_scim: true\n".to_string(),
            format!("{csp}: |\n  enable_scim: true\nurl: x\n"),
            "url: \"a\n  enable_scim: true\"\n".to_string(),
            "real_ips:\n  enable_scim: x\n".to_string(),
        ] {
            let e = err(plan_set(src.as_bytes(), "enable_scim", "true", false));
            assert_eq!(e.kind(), "missing-key", "{src}");
            let out = changed(plan_set(src.as_bytes(), "enable_scim", "true", true));
            assert_eq!(text(&out), format!("{src}# \n# Enable SCIM\nenable_scim: true\n"));
        }
        let block = format!("{csp}: |\n  enable_scim: true\nurl: x\n");
        assert_eq!(err(plan_set(block.as_bytes(), csp, "x", false)).kind(), "not-one-line");
        let nested = b"real_ips:\n  enable_scim: x\n";
        assert!(matches!(
            err(plan_set(nested, "real_ips", "", false)),
            ConfigError::NotOneLine { line: 1, .. }
        ));
        for src in ["url: a\n  b\n", "url: \"a\n  b\"\n", "url: 'a\n  b'\n", "url: &u x\n", "url:\n  x\n"] {
            assert_eq!(err(plan_set(src.as_bytes(), "url", "y", false)).kind(), "not-one-line", "{src}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let e = err(plan_set(CUR, "enable_scm", "true", false));
        assert_eq!((e.kind(), e.to_string().contains("`enable_scm`")), ("unknown-key", true));
        assert!(e.hint().unwrap().contains("did you mean `enable_scim`?"));
        assert!(err(plan_set(CUR, "zzz", "1", false)).hint().unwrap().contains("enable_built_in_ms_sql"));
        for (k, v) in [
            ("ssl", "maybe"),
            ("http_port", "70000"),
            ("http_port", "abc"),
            ("http_port", "-1"),
            ("url", "a\nb"),
            ("real_ips", "[a, [b]]"),
            ("real_ips", "10.0.0.1"),
        ] {
            let e = err(plan_set(CUR, k, v, false));
            assert!(matches!(&e, ConfigError::WrongType { key, .. } if key == k), "{k} {v}");
            assert!(e.hint().unwrap().starts_with(&format!("give `{k}` ")));
        }
        let r = plan_set(CUR, "http_port", "0080", false).unwrap();
        assert_eq!(r, Edit::Unchanged { key: "http_port".into(), value: "80".into() });
    }

    #[test]
    fn unreadable_files_are_refused() {
        let e = err(plan_set(b"url: [unclosed\nenable_scim: false\n", "enable_scim", "true", false));
        assert!(matches!(e, ConfigError::Unparsable { line: Some(2), .. }), "{e}");
        assert_eq!(e.kind(), "unparsable");
        for src in [&b""[..], b"# only a comment\n", b"- a\n", b"just text\n", b"---\n"] {
            assert!(matches!(Config::parse(src), Err(ConfigError::NotMapping)), "{src:?}");
        }
        assert!(matches!(Config::parse(b"url: \xff\n"), Err(ConfigError::NotUtf8)));
        assert!(matches!(Config::parse(b"a: 1\n---\nb: 2\n"), Err(ConfigError::Unparsable { .. })));
    }

    #[test]
    fn bom_is_kept() {
        let with_bom = [b"\xEF\xBB\xBF", CUR].concat();
        let out = set(&with_bom, "enable_scim", "true");
        assert_eq!(
            out,
            [b"\xEF\xBB\xBF".to_vec(), swap(CUR, "enable_scim: false", "enable_scim: true")].concat()
        );
        assert_eq!(Config::parse(&with_bom).unwrap().raw("url"), Some("https://bitwarden.example.com"));
    }

    #[test]
    fn empty_values_are_set_and_cleared() {
        let out = set(CUR, "ssl_versions", "TLSv1.2");
        assert_eq!(out, swap(CUR, "ssl_versions: \n", "ssl_versions: TLSv1.2\n"));
        assert_eq!(set(&out, "ssl_versions", ""), CUR);
        assert_eq!(set(b"url: x\nssl_versions:", "ssl_versions", "a"), b"url: x\nssl_versions: a");
        assert_eq!(set(b"ssl_versions: # c\n", "ssl_versions", "a"), b"ssl_versions: a # c\n");
        assert_eq!(set(b"ssl_versions:   # c\n", "ssl_versions", "a"), b"ssl_versions: a  # c\n");
        assert_eq!(set(b"http_port: 80 # c\n", "http_port", ""), b"http_port:  # c\n");
        let key_connector = set(CUR, "enable_key_connector", "on");
        let line = text(&key_connector).lines().find(|l| l.starts_with("enable_key_connector:"));
        assert_eq!(line.unwrap().split_whitespace().nth(1), Some("true"));
    }

    #[test]
    fn text_values_round_trip() {
        let csp = "nginx_header_content_security_policy";
        let v = "default-src 'self'; x: y #z";
        let out = set(CUR, csp, v);
        assert_eq!(out, swap(CUR, &format!("{csp}: \n"), &format!("{csp}: \"{v}\"\n")));
        for v in [
            "true",
            "123",
            " lead",
            "a: b",
            "# x",
            "'q'",
            "\"dq\" \\n",
            "ünï",
            "https://h/x?y=1#f",
            "~",
            "[a]",
        ] {
            let out = set(CUR, csp, v);
            assert_eq!(Config::parse(&out).unwrap().raw(csp), Some(v), "{v}");
            let (pre, post) = text(CUR).split_once(&format!("{csp}: \n")).unwrap();
            assert!(text(&out).starts_with(&format!("{pre}{csp}: ")) && text(&out).ends_with(post));
        }
        assert_eq!(set(b"url: 'it''s'\n", "url", "x"), b"url: x\n");
        assert_eq!(set(b"url: \"a\\\"b\" # c\n", "url", "x"), b"url: x # c\n");
        assert_eq!(set(b"\"url\" : a\n", "url", "b"), b"\"url\" : b\n");
    }

    #[test]
    fn tagged_scalars_read_as_the_loader_reads_them() {
        for v in [
            "!!bool true",
            "!!bool yes",
            "!!int 12",
            "!!int 0x1F",
            "!!int x",
            "!!float 1",
            "!!float 0x1F",
            "!!float .inf",
            "!!float inf",
            "!!null ~",
            "!!null x",
            "!!str 5",
            "!!binary aGk=",
            "!custom 5",
            "!!bool 'x'",
            "[!!bool x, !!int 3, !!str y]",
            "5",
            "'5'",
        ] {
            let doc = format!("k: {v}\n");
            let ours = parse_body(&doc).unwrap().remove(0).value;
            let loaded = yaml_rust2::YamlLoader::load_from_str(&doc).unwrap();
            let theirs = loaded[0].as_hash().unwrap().get(&Yaml::String("k".into())).unwrap();
            assert_eq!(&ours, theirs, "{v}");
        }
    }

    #[test]
    fn lists_are_written_as_flow_sequences() {
        let out = set(CUR, "real_ips", "[10.0.0.0/8, \"172.16.0.0/12\"]");
        assert_eq!(out, swap(CUR, "real_ips: \n", "real_ips: ['10.0.0.0/8', '172.16.0.0/12']\n"));
        let again = plan_set(&out, "real_ips", "['10.0.0.0/8','172.16.0.0/12']", false).unwrap();
        assert!(matches!(again, Edit::Unchanged { .. }));
        let other = set(&out, "real_ips", "['192.168.0.0/16']");
        assert_eq!(other, swap(CUR, "real_ips: \n", "real_ips: ['192.168.0.0/16']\n"));
        assert_eq!(set(&other, "real_ips", ""), CUR);
        // Found by the fuzzer: a tagged item is not the string it holds.
        for v in ["[10.0.0.0,!!bool 1 7/8\"2.16.0.0/12\"]", "[!!int x]", "[!!null a]"] {
            assert_eq!(err(plan_set(CUR, "real_ips", v, false)).kind(), "wrong-type", "{v}");
        }
        assert_eq!(set(CUR, "real_ips", "[!!str 10.0.0.0/8]"), set(CUR, "real_ips", "['10.0.0.0/8']"));
    }

    #[test]
    fn missing_trailing_newline_and_verify_net() {
        let out = changed(plan_set(b"url: x", "enable_scim", "true", true));
        assert_eq!(out, b"url: x\n# \n# Enable SCIM\nenable_scim: true\n");
        let e = err(plan_set(b"url: x\n...\n", "enable_scim", "true", true));
        assert_eq!(e.kind(), "verify-failed");
        let entries = parse_body(text(CUR)).unwrap();
        let tampered = text(CUR).replace("ssl: true", "ssl: false").replace("scim: false", "scim: true");
        let e = verify(&entries, &tampered, "enable_scim", &Yaml::Boolean(true)).unwrap_err();
        assert_eq!(e.to_string(), "the edit did not verify: `ssl` does not read as intended after the edit");
    }

    #[test]
    fn config_reads_fixture() {
        let c = Config::parse(CUR).unwrap();
        assert!(c.keys().eq(KNOWN_KEYS.iter().map(|k| k.name)));
        assert_eq!(c.raw("url"), Some("https://bitwarden.example.com"));
        assert_eq!((c.raw("http_port"), c.raw("ssl_versions"), c.raw("nope")), (Some("80"), Some(""), None));
        assert_eq!((c.bool_value("enable_scim"), c.bool_value("ssl")), (Some(false), Some(true)));
        assert_eq!((c.bool_value("url"), c.has("real_ips"), c.has("captcha")), (None, true, false));
        let old = Config::parse(OLD).unwrap();
        assert_eq!((old.has("enable_scim"), old.raw("captcha")), (false, Some("false")));
        for k in KNOWN_KEYS {
            assert!(text(CUR).contains(&format!("# \n# {}\n", k.description)), "{}", k.name);
            assert_eq!(known_key(k.name), Some(k));
        }
        assert_eq!(KNOWN_KEYS.len(), 21);
        let bools = KNOWN_KEYS.iter().filter(|k| k.ty == KeyType::Bool).count();
        assert_eq!(bools, 9);
    }

    #[test]
    fn regression_fuzz_duplicate_null_keys_are_refused() {
        // Found by the config_edit fuzz target: `~` and an empty key are
        // both null, so YAML sees a duplicate that a string compare misses;
        // a lone CR is a line break.
        let r = plan_set(b"~  : |\n  c\r:", "ssl_versions", "TLSv1.2", true);
        assert!(matches!(r, Err(ConfigError::Unparsable { .. })), "{r:?}");
    }
}
