//! `diff`: how a snapshot's config.yml differs from the current one. Exit 0
//! whether or not they differ; read-only.

use std::io::Read;

use similar::TextDiff;

use super::Run;
use crate::cli::DiffArgs;
use crate::context::Ctx;
use crate::engine::archive;
use crate::engine::manifest::ARCHIVE;
use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::install::config::{Config, KNOWN_KEYS};
use crate::report::{DiffReport, KeyChange};

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
    Ok(DiffReport { id, identical: old == new, diff: unified, changed_keys })
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
