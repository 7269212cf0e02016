//! Property tests of the validators that stand between a file another user
//! may have written (a manifest, a rollback journal) and a path root writes
//! to: whatever they accept stays beneath the install.
//!
//! Paths are drawn from pieces that make trouble (`..`, `.`, empty parts,
//! leading and doubled slashes, NUL, backslashes, names that start like the
//! data directory) as well as from arbitrary text.

use std::path::{Component, Path, PathBuf};

use bwguard::engine::archive::{check_link_target, check_manifest, check_rel_path};
use bwguard::engine::manifest::Manifest;
use bwguard::engine::restore::{Journal, check_units};
use proptest::prelude::*;
use proptest::sample::select;

/// Where a path lands when joined to `/install` and resolved lexically
/// (`..` pops, `.` stays), or `None` if it climbs above `/`.
fn resolve(rel: &str) -> Option<PathBuf> {
    let mut at = PathBuf::from("/install");
    for c in Path::new("/install").join(rel).strip_prefix("/install").ok()?.components() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !at.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at)
}

/// Strictly beneath `/install`.
fn beneath(rel: &str) -> bool {
    !rel.starts_with('/')
        && resolve(rel).is_some_and(|p| p.starts_with("/install") && p != Path::new("/install"))
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec!["bwdata", "mssql", "data", "env", "bitwarden.sh", "scripts", "config.yml"])
            .prop_map(str::to_string),
        2 => select(vec!["..", ".", "", "bwdata2", "bwdata..", "...", "a\0b", "a\\..\\b", "~"]).prop_map(str::to_string),
        1 => "[a-z./\\\\]{0,6}",
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec(piece(), 1..6), any::<bool>(), any::<bool>()).prop_map(|(parts, lead, trail)| {
        let mut p = parts.join("/");
        if lead {
            p.insert(0, '/');
        }
        if trail {
            p.push('/');
        }
        p
    })
}

fn unit_json(rel: &str) -> serde_json::Value {
    serde_json::json!({ "rel": rel, "in_snapshot": true })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn an_accepted_manifest_path_is_plain_and_beneath_the_install(p in path()) {
        if check_rel_path(&p).is_ok() {
            prop_assert!(beneath(&p), "{p:?} accepted but not beneath the install");
            prop_assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0')), "{p:?}");
        }
    }

    #[test]
    fn an_accepted_link_points_inside_the_install(p in path(), target in path()) {
        if check_rel_path(&p).is_ok() && check_link_target(&p, &target).is_ok() {
            let dir = Path::new(&p).parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
            let joined = if dir.is_empty() { target.clone() } else { format!("{dir}/{target}") };
            let landed = resolve(&joined);
            prop_assert!(
                !target.starts_with('/') && landed.as_ref().is_some_and(|l| l.starts_with("/install")),
                "{p:?} -> {target:?} accepted, lands at {landed:?}"
            );
        }
    }

    #[test]
    fn an_accepted_journal_names_only_parts_of_the_data_directory_or_the_script(
        rels in prop::collection::vec(path(), 1..4),
    ) {
        let text = serde_json::json!({
            "id": "20261202T000000Z",
            "before": "20261202T000001Z",
            "install_dir": "/install",
            "phase": "swapping",
            "units": rels.iter().map(|r| unit_json(r)).collect::<Vec<_>>(),
        })
        .to_string();
        let journal = Journal::parse(text.as_bytes()).expect("a journal of this shape parses");
        if check_units("bwdata", &journal.units).is_ok() {
            for u in &journal.units {
                prop_assert!(beneath(&u.rel), "{:?} accepted but not beneath the install", u.rel);
                let landed = resolve(&u.rel).unwrap_or_default();
                prop_assert!(
                    landed.starts_with("/install/bwdata") || landed == Path::new("/install/bitwarden.sh"),
                    "{:?} accepted, lands at {landed:?}", u.rel
                );
                prop_assert!(!Path::new(&u.rel).components().any(|c| c == Component::ParentDir), "{:?}", u.rel);
            }
        }
    }

    #[test]
    fn an_accepted_manifest_lists_only_entries_beneath_the_install(
        parts in prop::collection::vec(path(), 1..3),
        entries in prop::collection::vec((path(), 0u8..3, path()), 0..6),
    ) {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|(p, kind, target)| match kind {
                0 => serde_json::json!({"path": p, "type": "dir", "mode": 493, "uid": 0, "gid": 0, "size": 0, "mtime": 0}),
                1 => serde_json::json!({"path": p, "type": "file", "mode": 420, "uid": 0, "gid": 0, "size": 0,
                    "mtime": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}),
                _ => serde_json::json!({"path": p, "type": "symlink", "mode": 511, "uid": 0, "gid": 0, "size": 0,
                    "mtime": 0, "target": target}),
            })
            .collect();
        let mut doc = real_manifest();
        doc["parts"] = parts
            .iter()
            .map(|p| {
                let mut part = doc["parts"][0].clone();
                part["path"] = p.clone().into();
                part
            })
            .collect();
        doc["entries"] = entries.into();
        let text = doc.to_string();
        // A shape this build does not read is refused, which is fine; one it
        // reads must pass the checks only with paths beneath the install.
        if let Ok(m) = Manifest::parse(text.as_bytes())
            && check_manifest(&m).is_ok()
        {
            for p in &m.parts {
                prop_assert!(beneath(&p.path), "part {:?} accepted", p.path);
            }
            for e in &m.entries {
                prop_assert!(beneath(&e.path), "entry {:?} accepted", e.path);
            }
        }
    }
}

/// The manifest of a real tiny snapshot (the fuzz targets' fixture), as JSON.
fn real_manifest() -> serde_json::Value {
    serde_json::from_slice(include_bytes!("../fuzz/snapshot/manifest.json")).expect("the fixture is JSON")
}

#[test]
fn the_shapes_used_above_parse_and_pass() {
    // Guards the properties above against testing nothing: the fixture
    // parses and passes, and so does a plain journal.
    let m = Manifest::parse(real_manifest().to_string().as_bytes()).expect("the fixture parses");
    check_manifest(&m).expect("and passes");
    assert!(!m.parts.is_empty() && !m.entries.is_empty());
    let journal = |rel: &str| {
        let text = format!(
            r#"{{"id":"a","before":"b","install_dir":"/i","phase":"swapping","units":[{{"rel":"{rel}","in_snapshot":true}}]}}"#
        );
        Journal::parse(text.as_bytes()).expect("the journal parses").units
    };
    assert!(check_units("bwdata", &journal("bwdata/mssql")).is_ok());
    assert!(check_units("bwdata", &journal("bitwarden.sh")).is_ok());
    assert!(check_units("bwdata", &journal("bwdata/../store")).is_err());
    assert!(check_units("bwdata", &journal("bwdata2/x")).is_err());
}
