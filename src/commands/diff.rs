//! `diff`: how a snapshot's config.yml differs from the current one. Exit 0
//! whether or not they differ; read-only.

use std::fs;
use std::io::Read;

use serde_json::json;
use similar::TextDiff;

use crate::cli::DiffArgs;
use crate::context::Ctx;
use crate::engine::archive;
use crate::engine::manifest::ARCHIVE;
use crate::engine::progress::Progress;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::install::config::{Config, KNOWN_KEYS};

/// Runs `diff`.
pub fn run(args: &DiffArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let id = store.resolve(args.id.as_deref())?;
    let manifest = store.open(&id)?;
    let mut old = Vec::new();
    // config.yml is always the first entry; the scan checks it against the manifest.
    archive::scan(&store.dir(&id).join(ARCHIVE), &manifest, Some(1), &Progress::hidden(0), |_, content| {
        content.read_to_end(&mut old).map(|_| ()).map_err(|e| Error::integrity(&id, e.to_string()))
    })?;
    let path = install.config_path();
    let new = fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let (old_text, new_text) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
    let unified = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref())
        .unified_diff()
        .header(&format!("snapshot {id}/config.yml"), &format!("current {}", path.display()))
        .to_string();
    let keys = changed_keys(&old, &new);
    if old == new {
        ctx.out.result(format!("config.yml is the same as in snapshot {id}"));
    } else {
        ctx.out.result(unified.trim_end());
    }
    Ok(json!({"id": id, "identical": old == new, "diff": unified, "changed_keys": keys}))
}

/// Known keys whose values differ between two config.yml files.
fn changed_keys(old: &[u8], new: &[u8]) -> Vec<serde_json::Value> {
    let (Ok(a), Ok(b)) = (Config::parse(old), Config::parse(new)) else {
        return Vec::new();
    };
    KNOWN_KEYS
        .iter()
        .filter(|k| a.raw(k.name) != b.raw(k.name) || a.has(k.name) != b.has(k.name))
        .map(|k| json!({"key": k.name, "snapshot": a.raw(k.name), "current": b.raw(k.name)}))
        .collect()
}
