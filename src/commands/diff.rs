//! `diff`: how a snapshot differs from the install now: config.yml line by
//! line, then every path of the snapshot's parts by its metadata. Exit 0
//! whether or not they differ; read-only.

use std::collections::BTreeMap;
use std::io::Read;

use similar::TextDiff;

use super::Run;
use crate::cli::DiffArgs;
use crate::context::Ctx;
use crate::engine::archive::{self, Source};
use crate::engine::manifest::{ARCHIVE, Entry, EntryType, Manifest};
use crate::engine::progress::Progress;
use crate::engine::scope::{self, Scope};
use crate::error::{Error, Result};
use crate::install::config::{Config, KNOWN_KEYS};
use crate::install::{Install, VOLUME_PART};
use crate::report::human::human_size;
use crate::report::{DiffReport, FileChange, KeyChange};

impl Run for DiffArgs {
    type Report = DiffReport;

    fn run(&self, ctx: &mut Ctx) -> Result<DiffReport> {
        let report = diff(self, ctx)?;
        ctx.out.show(&report);
        Ok(report)
    }
}

fn diff(args: &DiffArgs, ctx: &mut Ctx) -> Result<DiffReport> {
    let install = ctx.install()?;
    let store = install.open_store()?;
    let id = store.resolve(args.id.as_deref())?;
    let manifest = store.open(&id)?;
    let mut old = Vec::new();
    // config.yml is always the first entry; the scan checks it against the manifest.
    archive::scan(&store.dir(&id).join(ARCHIVE), &manifest, Some(1), &Progress::hidden(0), |_, content| {
        content.read_to_end(&mut old).map(|_| ()).map_err(|e| Error::integrity(&id, e.to_string()))
    })?;
    let path = install.config_path();
    let new = crate::files::read_small(&path, crate::files::SMALL_CAP)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    let (old_text, new_text) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
    let unified = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref())
        .unified_diff()
        .header(&format!("snapshot {id}/config.yml"), &format!("current {}", path.display()))
        .to_string();
    let changed_keys = changed_keys(&old, &new);
    let mut install = install;
    let files = files(&mut install, &manifest)?;
    Ok(DiffReport { id, identical: old == new, diff: unified, changed_keys, files })
}

/// The paths of the snapshot's parts that differ from the install now, by
/// metadata (what a quick look can tell without reading gigabytes). A Helm
/// values snapshot has no parts in the install: nothing to compare.
fn files(install: &mut Install, manifest: &Manifest) -> Result<Vec<FileChange>> {
    if manifest.scope == Scope::Files(Vec::new()).name() {
        return Ok(Vec::new());
    }
    let parts: Vec<String> = manifest.parts.iter().map(|p| p.path.clone()).collect();
    if parts.iter().any(|p| p == VOLUME_PART) {
        crate::procedure::volume::attach(install, false)?;
    }
    let (_, sources) = scope::collect(install, &Scope::Parts(parts))?;
    let then: BTreeMap<&str, &Entry> = manifest.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let now: BTreeMap<&str, &Source> = sources.iter().map(|s| (s.rel.as_str(), s)).collect();
    let mut out = Vec::new();
    let change = |path: &str, change: &str, detail: String| FileChange {
        path: path.to_string(),
        change: change.to_string(),
        detail,
    };
    for (path, e) in &then {
        match now.get(path) {
            None => {
                out.push(change(path, "removed", format!("only in the snapshot ({})", kind_name(e.kind))))
            }
            Some(s) => {
                let what = differences(e, s);
                if !what.is_empty() {
                    out.push(change(path, "changed", what.join(", ")));
                }
            }
        }
    }
    for (path, s) in now.iter().filter(|(p, _)| !then.contains_key(*p)) {
        out.push(change(path, "added", format!("only now ({})", kind_name(kind_of(&s.meta)))));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn kind_of(meta: &std::fs::Metadata) -> EntryType {
    if meta.is_dir() {
        EntryType::Dir
    } else if meta.file_type().is_symlink() {
        EntryType::Symlink
    } else {
        EntryType::File
    }
}

fn kind_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::File => "file",
        EntryType::Dir => "directory",
        EntryType::Symlink => "link",
    }
}

/// How the path now differs from the snapshot's entry. A directory's time
/// changes with every file made in it: only its mode and owner count.
fn differences(e: &Entry, s: &Source) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let m = &s.meta;
    let kind = kind_of(m);
    if kind != e.kind {
        return vec![format!("{} -> {}", kind_name(e.kind), kind_name(kind))];
    }
    let mut what = Vec::new();
    if kind == EntryType::File && m.len() != e.size {
        let (a, b) = (human_size(e.size), human_size(m.len()));
        what.push(if a == b {
            format!("size {} -> {} bytes", e.size, m.len())
        } else {
            format!("size {a} -> {b}")
        });
    }
    if kind == EntryType::File && m.mtime() != e.mtime {
        what.push("modified".to_string());
    }
    if kind == EntryType::Symlink {
        let target = std::fs::read_link(&s.abs).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        if Some(target.as_str()) != e.target.as_deref() {
            what.push(format!("points to {target} (was {})", e.target.as_deref().unwrap_or("?")));
        }
    }
    let mode = m.mode() & 0o7777;
    if kind != EntryType::Symlink && mode != e.mode {
        what.push(format!("mode {:04o} -> {mode:04o}", e.mode));
    }
    if (m.uid(), m.gid()) != (e.uid, e.gid) {
        what.push(format!("owner {}:{} -> {}:{}", e.uid, e.gid, m.uid(), m.gid()));
    }
    what
}

/// Known keys whose values differ between two config.yml files.
fn changed_keys(old: &[u8], new: &[u8]) -> Vec<KeyChange> {
    let (Ok(a), Ok(b)) = (Config::parse(old), Config::parse(new)) else {
        return Vec::new();
    };
    KNOWN_KEYS
        .iter()
        .filter(|k| a.raw(k.name) != b.raw(k.name) || a.has(k.name) != b.has(k.name))
        .map(|k| KeyChange {
            key: k.name.to_string(),
            snapshot: a.raw(k.name).map(str::to_string),
            current: b.raw(k.name).map(str::to_string),
        })
        .collect()
}
