//! Setting `component.scim.enabled` in a Helm values file, keeping its
//! comments and layout (pure; no I/O).
//!
//! The value is found through the YAML parser's own positions, changed in
//! place (block or flow style), or, when `scim` or `component` is missing,
//! added as new lines in the file's indentation and line endings. The result
//! is parsed again and refused unless it equals the original with only that
//! value set.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlLoader};

/// A node with the positions the edit needs.
#[derive(Debug)]
enum Node {
    Map { flow: bool, entries: Vec<(String, Marker, Node)> },
    Scalar { mark: Marker, style: TScalarStyle, text: String },
    Other,
}

#[derive(Default)]
struct Events(Vec<(Event, Marker)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark));
    }
}

fn node(ev: &[(Event, Marker)], i: &mut usize, text: &str) -> Node {
    let Some((e, m)) = ev.get(*i) else { return Node::Other };
    *i += 1;
    match e {
        Event::Scalar(s, style, ..) => Node::Scalar { mark: *m, style: *style, text: s.clone() },
        Event::MappingStart(..) => {
            let flow = byte_at(text, m).is_some_and(|b| text.as_bytes().get(b) == Some(&b'{'));
            let mut entries = Vec::new();
            while !matches!(ev.get(*i), Some((Event::MappingEnd, _)) | None) {
                let key = node(ev, i, text);
                let value = node(ev, i, text);
                if let Node::Scalar { mark, text: k, .. } = key {
                    entries.push((k, mark, value));
                }
            }
            *i += 1;
            Node::Map { flow, entries }
        }
        Event::SequenceStart(..) => {
            let mut depth = 1;
            while depth > 0 && *i < ev.len() {
                match ev[*i].0 {
                    Event::SequenceStart(..) | Event::MappingStart(..) => depth += 1,
                    Event::SequenceEnd | Event::MappingEnd => depth -= 1,
                    _ => {}
                }
                *i += 1;
            }
            Node::Other
        }
        _ => Node::Other,
    }
}

/// Byte offset of a marker, from its line and column (chars).
fn byte_at(text: &str, m: &Marker) -> Option<usize> {
    let start =
        if m.line() <= 1 { 0 } else { text.match_indices('\n').nth(m.line() - 2).map(|(b, _)| b + 1)? };
    let line = &text[start..];
    Some(start + line.char_indices().nth(m.col()).map_or(line.len(), |(b, _)| b))
}

fn entry<'a>(map: &'a Node, key: &str) -> Option<&'a (String, Marker, Node)> {
    match map {
        Node::Map { entries, .. } => entries.iter().find(|(k, ..)| k == key),
        _ => None,
    }
}

/// The column of a map's first key, if it has one (its children's indent).
fn child_indent(map: &Node) -> Option<usize> {
    match map {
        Node::Map { flow: false, entries } => entries.first().map(|(_, m, _)| m.col()),
        _ => None,
    }
}

fn is_null(n: &Node) -> bool {
    matches!(n, Node::Scalar { style: TScalarStyle::Plain, text, .. } if text.is_empty() || text == "~" || text == "null")
}

/// Sets `component.scim.enabled` to `enabled`. Returns `None` when it
/// already is, the new bytes otherwise, or why it cannot be done safely.
pub fn set_scim(original: &[u8], enabled: bool) -> Result<Option<Vec<u8>>, String> {
    let (bom, body) = match original.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => (&original[..3], rest),
        None => (&original[..0], original),
    };
    let text = std::str::from_utf8(body).map_err(|_| "the values file is not UTF-8".to_string())?;
    let before = load(text)?;
    if before["component"]["scim"]["enabled"] == Yaml::Boolean(enabled) {
        return Ok(None);
    }
    let mut events = Events::default();
    Parser::new_from_str(text)
        .load(&mut events, false)
        .map_err(|e| format!("the values file is not valid YAML: {e}"))?;
    let ev = events.0;
    // StreamStart, DocumentStart, then the root node.
    let mut i = ev.iter().position(|(e, _)| matches!(e, Event::DocumentStart)).map_or(ev.len(), |p| p + 1);
    let root = if i < ev.len() { node(&ev, &mut i, text) } else { Node::Other };
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let value = if enabled { "true" } else { "false" };
    let new = match entry(&root, "component") {
        None => {
            if matches!(root, Node::Map { flow: true, .. }) {
                return Err("the values file is one flow mapping; add component.scim.enabled by hand".into());
            }
            let sep = if text.is_empty() || text.ends_with('\n') { "" } else { nl };
            format!("{text}{sep}component:{nl}  scim:{nl}    enabled: {value}{nl}")
        }
        Some((_, cmark, comp)) => match entry(comp, "scim") {
            Some((_, smark, scim)) => match entry(scim, "enabled") {
                Some((_, _, Node::Scalar { mark, style, .. })) => replace_scalar(text, mark, *style, value)?,
                Some(_) => return Err("component.scim.enabled is not a plain value; edit it by hand".into()),
                None if matches!(scim, Node::Map { flow: true, .. }) => {
                    return Err("component.scim is a flow mapping without `enabled`; add it by hand".into());
                }
                None if matches!(scim, Node::Map { .. }) || is_null(scim) => {
                    let indent = child_indent(scim).unwrap_or(smark.col() + 2);
                    insert_after(text, smark, &format!("{}enabled: {value}{nl}", " ".repeat(indent)))?
                }
                None => return Err("component.scim is not a mapping; edit it by hand".into()),
            },
            None if matches!(comp, Node::Map { flow: true, .. }) => {
                return Err("component is a flow mapping without `scim`; add it by hand".into());
            }
            None if matches!(comp, Node::Map { .. }) || is_null(comp) => {
                let ci = child_indent(comp).unwrap_or(cmark.col() + 2);
                let lines = format!("{}scim:{nl}{}enabled: {value}{nl}", " ".repeat(ci), " ".repeat(ci + 2));
                insert_after(text, cmark, &lines)?
            }
            None => return Err("component is not a mapping; edit it by hand".into()),
        },
    };
    // Safety net: the only difference must be the value.
    let mut expected = before;
    set_path(&mut expected, enabled);
    if !same(&load(&new)?, &expected) {
        return Err(
            "the edit would change more than component.scim.enabled; refused (please report this)".into()
        );
    }
    let mut out = bom.to_vec();
    out.extend_from_slice(new.as_bytes());
    Ok(Some(out))
}

/// Equality of two YAML values, ignoring the order of mapping keys.
fn same(a: &Yaml, b: &Yaml) -> bool {
    match (a, b) {
        (Yaml::Hash(x), Yaml::Hash(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Yaml::Array(x), Yaml::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w)),
        _ => a == b,
    }
}

fn load(text: &str) -> Result<Yaml, String> {
    let docs =
        YamlLoader::load_from_str(text).map_err(|e| format!("the values file is not valid YAML: {e}"))?;
    match docs.len() {
        0 => Ok(Yaml::Hash(Default::default())),
        1 if matches!(docs[0], Yaml::Hash(_) | Yaml::Null) => {
            Ok(docs.into_iter().next().unwrap_or(Yaml::Null))
        }
        1 => Err("the values file is not a mapping".into()),
        _ => Err("the values file holds several YAML documents".into()),
    }
}

/// `y` with `component.scim.enabled` set, creating the maps it needs.
fn set_path(y: &mut Yaml, enabled: bool) {
    let mut cur = y;
    for key in ["component", "scim"] {
        if !matches!(cur, Yaml::Hash(_)) {
            *cur = Yaml::Hash(Default::default());
        }
        let Yaml::Hash(h) = cur else { return };
        cur = h.entry(Yaml::String(key.into())).or_insert(Yaml::Null);
    }
    if !matches!(cur, Yaml::Hash(_)) {
        *cur = Yaml::Hash(Default::default());
    }
    if let Yaml::Hash(h) = cur {
        h.insert(Yaml::String("enabled".into()), Yaml::Boolean(enabled));
    }
}

/// Replaces the scalar at `mark` with `value`, keeping what follows it.
fn replace_scalar(text: &str, mark: &Marker, style: TScalarStyle, value: &str) -> Result<String, String> {
    let start = byte_at(text, mark).ok_or("cannot locate component.scim.enabled")?;
    let line_end = text[start..].find(['\r', '\n']).map_or(text.len(), |e| start + e);
    let rest = &text[start..line_end];
    let len = match style {
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
            let q = rest.chars().next().ok_or("empty value")?;
            let close = rest[1..].find(q).ok_or("a quoted value spans lines; edit it by hand")?;
            close + 2
        }
        TScalarStyle::Plain => {
            let mut end = rest.len();
            for pat in [" #", ",", "}", "]"] {
                if let Some(p) = rest.find(pat) {
                    end = end.min(p);
                }
            }
            rest[..end].trim_end().len()
        }
        _ => return Err("component.scim.enabled is a block scalar; edit it by hand".into()),
    };
    Ok(format!("{}{value}{}", &text[..start], &text[start + len..]))
}

/// Inserts `lines` after the line holding `mark`.
fn insert_after(text: &str, mark: &Marker, lines: &str) -> Result<String, String> {
    let at = byte_at(text, mark).ok_or("cannot locate the key")?;
    let end = text[at..].find('\n').map_or(text.len(), |e| at + e + 1);
    let sep = if end == text.len() && !text.ends_with('\n') { "\n" } else { "" };
    Ok(format!("{}{sep}{lines}{}", &text[..end], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(src: &str) -> Result<Option<String>, String> {
        set_scim(src.as_bytes(), true).map(|o| o.map(|b| String::from_utf8(b).unwrap()))
    }

    #[test]
    fn block_style_value_is_changed_in_place_with_comments_kept() {
        let src = "# Bitwarden values\ncomponent:\n  # SCIM service\n  scim:\n    enabled: false  # off for now\n    image: x\n";
        assert_eq!(set(src).unwrap().unwrap(), src.replace("enabled: false", "enabled: true"));
    }

    #[test]
    fn flow_style_value_is_changed_in_place() {
        let src = "component: {admin: {enabled: true}, scim: {enabled: false, x: 1}}\n";
        let want = "component: {admin: {enabled: true}, scim: {enabled: true, x: 1}}\n";
        assert_eq!(set(src).unwrap().unwrap(), want);
    }

    #[test]
    fn missing_maps_are_added_in_the_files_indentation() {
        let src = "component:\n    admin:\n        enabled: true\ngeneral:\n    domain: x\n";
        let want = "component:\n    scim:\n      enabled: true\n    admin:\n        enabled: true\ngeneral:\n    domain: x\n";
        assert_eq!(set(src).unwrap().unwrap(), want);
        let src = "general:\n  domain: x # comment\n";
        assert_eq!(set(src).unwrap().unwrap(), format!("{src}component:\n  scim:\n    enabled: true\n"));
        let src = "component:\n  scim:\n    image: y\n";
        assert_eq!(set(src).unwrap().unwrap(), "component:\n  scim:\n    enabled: true\n    image: y\n");
        let src = "component:\r\n  scim:\r\n";
        assert_eq!(set(src).unwrap().unwrap(), "component:\r\n  scim:\r\n    enabled: true\r\n");
    }

    #[test]
    fn already_enabled_and_refusals() {
        assert_eq!(set("component:\n  scim:\n    enabled: true\n").unwrap(), None);
        assert!(set("component: {scim: {image: x}}\n").is_err());
        assert!(set("component: [1, 2]\n").is_err());
        assert!(set("component:\n  scim: [x]\n").is_err());
        assert!(set("a: [unclosed\n").is_err());
        assert!(set("{a: 1}\n").is_err());
    }
}
