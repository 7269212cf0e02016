//! `backup`: take a snapshot, verify it, print its id.

use serde_json::json;

use crate::cli::BackupArgs;
use crate::commands::{begin_write, human_size, offsite, prune};
use crate::context::Ctx;
use crate::engine::manifest::Manifest;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::error::{Error, Result};
use crate::install::facts::DatabaseMode;
use crate::install::preflight;

/// Runs `backup`.
pub fn run(args: &BackupArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, "backup")?;
    let mode = preflight::database_covered(&install, args.scope.db_backed_up_elsewhere)?;
    if mode != DatabaseMode::BuiltIn {
        ctx.out.warn(format!(
            "database mode {}: the snapshot covers config.yml and the settings only",
            mode.name()
        ));
    }
    let reason = if args.scheduled { "scheduled" } else { "manual" };
    let mut req = Request::new(reason, Scope::from_flags(args.scope.with_attachments, args.scope.full));
    req.note = args.note.clone();
    req.live = args.scope.live;
    req.level = args.level.unwrap_or(req.level);
    req.progress = ctx.progress;
    ctx.out.info(format!("Taking a snapshot of {} into {}", install.dir.display(), store.root.display()));
    let m = snapshot::take(&install, &store, &req, ctx.now)?;
    ctx.out.info(summary(&m));
    if m.consistency == "live" {
        ctx.out.warn(live_warning(&m));
    }
    ctx.out.result(&m.id);
    let mut doc = snapshot_json(&m, &store.dir(&m.id));
    if let Some(remote) = &args.push {
        doc["push"] = offsite::push_newer(ctx, &store, Some(remote), &m.id).map_err(|e| Error::Failed {
            message: format!("snapshot {} was taken and verified, but pushing it failed: {e}", m.id),
            hint: e.hint(),
        })?;
    }
    if args.prune {
        let policy = match args.retention.policy() {
            Some(p) => Some(p),
            None => crate::schedule::policy::saved_policy(&store)?,
        };
        doc["prune"] = match policy {
            Some(p) => prune::prune(ctx, &store, &p, false)?,
            None => {
                ctx.out.info("no retention policy given or saved: nothing pruned");
                serde_json::Value::Null
            }
        };
    }
    Ok(doc)
}

/// One line describing a fresh snapshot.
pub fn summary(m: &Manifest) -> String {
    let files = m.entries.iter().filter(|e| e.sha256.is_some()).count();
    format!(
        "Snapshot {} written and read back: {files} files, {} archived into {}",
        m.id,
        human_size(m.content_size()),
        human_size(m.archive.size)
    )
}

/// What a live snapshot means for the user.
pub fn live_warning(m: &Manifest) -> String {
    let changed = if m.changed_while_reading.is_empty() {
        String::new()
    } else {
        format!("; changed while read: {}", m.changed_while_reading.join(", "))
    };
    format!(
        "snapshot {} is live: SQL Server had the database files open, so it is crash-consistent at best{changed}",
        m.id
    )
}

/// The JSON description of a fresh snapshot.
pub fn snapshot_json(m: &Manifest, dir: &std::path::Path) -> serde_json::Value {
    json!({
        "id": m.id,
        "path": dir.display().to_string(),
        "reason": m.reason,
        "scope": m.scope,
        "consistency": m.consistency,
        "changed_while_reading": m.changed_while_reading,
        "files": m.entries.iter().filter(|e| e.sha256.is_some()).count(),
        "size": m.content_size(),
        "archive_size": m.archive.size,
        "archive_sha256": m.archive.sha256,
        "verified": true,
    })
}
