//! `rollback`: check the snapshot, snapshot the current state, stage,
//! check, swap (safety rule 3). A failure before the swap leaves the
//! install untouched and removes what this run wrote.

use serde_json::json;

use crate::cli::{Only, RollbackArgs};
use crate::commands::{begin_write, confirm, human_size};
use crate::context::{Ctx, Install};
use crate::error::Result;
use crate::fsx;
use crate::preflight::{self, Need};
use crate::progress::Progress;
use crate::restore::{self, Journal, Phase, Unit};
use crate::scope::{self, Scope};
use crate::snapshot::{self, Request};
use crate::store::Store;
use crate::verify::check_files;

/// Deflate level of the `before rollback` snapshot.
pub const SAFETY_LEVEL: u32 = 1;

/// Runs `rollback`.
pub fn run(args: &RollbackArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let id = store.resolve(args.id.as_deref())?;
    let manifest = store.open(&id)?;
    let mut units = restore::select_units(&install, &manifest, args.only)?;
    let (files, bytes) = restore::units_size(&manifest, &units);
    let what = match args.only {
        Some(Only::Config) => "config.yml only".to_string(),
        Some(Only::Data) => "everything but config.yml".to_string(),
        None => "config.yml and data".to_string(),
    };
    let parts: Vec<String> = units.iter().map(|u| u.rel.clone()).collect();
    ctx.out.info(format!(
        "Snapshot {id} ({}, {}): restoring {what}: {files} entries, {}",
        manifest.created,
        manifest.reason,
        human_size(bytes)
    ));
    ctx.out.detail(format!("parts: {}", parts.join(", ")));
    if args.dry_run {
        ctx.out.result(format!(
            "dry run: would snapshot the current state of {}, then replace it with snapshot {id}; nothing changed",
            parts.join(", ")
        ));
        return Ok(json!({"id": id, "dry_run": true, "parts": parts, "files": files, "bytes": bytes}));
    }
    if !ctx.global.yes && !ctx.interactive {
        confirm(ctx, &format!("Roll back {} to snapshot {id}?", install.dir.display()))?;
    }

    let (_lock, store) = begin_write(ctx, &install, "rollback")?;
    preflight::no_database_holders(&install)?;
    // Room first (rule 8), then the archive against its checksums, all
    // before touching anything.
    preflight::room(&room_needs(&install, &store, &units, bytes)?)?;
    check_files(
        &store.dir(&id),
        &manifest,
        false,
        &Progress::new("check", manifest.archive.size, ctx.progress),
    )?;
    if !confirm(ctx, &format!("Roll back {} ({what}) to snapshot {id}?", install.dir.display()))? {
        ctx.out.result("Nothing changed.");
        return Ok(json!({"id": id, "rolled_back": false}));
    }

    ctx.out.info("Taking a snapshot of the current state first");
    let mut req = Request::new(format!("before rollback to {id}"), Scope::Parts(parts.clone()));
    req.progress = ctx.progress;
    // The state being replaced is kept at the fastest level: it costs disk
    // rather than the admin's time during an outage (docs/performance.md).
    req.level = SAFETY_LEVEL;
    let before = snapshot::take(&install, &store, &req, ctx.now)?;
    ctx.out.info(format!("Current state saved as snapshot {}", before.id));

    let mut journal = Journal {
        id: id.clone(),
        before: before.id.clone(),
        install_dir: install.dir.display().to_string(),
        phase: Phase::Staging,
        units: units.clone(),
    };
    journal.write(&store)?;
    ctx.out.info("Restoring into staging and checking every file");
    let progress = Progress::new("restore", manifest.content_size(), ctx.progress);
    let not_owned = match restore::stage(&install, &store, &manifest, &mut units, &progress) {
        Ok(list) => list,
        Err(e) => {
            // Nothing in the install changed; drop what this run added.
            let _ = Journal::remove(&store);
            let _ = fsx::remove_any(&store.dir(&before.id));
            return Err(e);
        }
    };
    if !not_owned.is_empty() {
        let shown: Vec<&str> = not_owned.iter().take(5).map(String::as_str).collect();
        ctx.out.warn(format!(
            "not running as root: {} restored entries keep this user as owner instead of the recorded one \
             (e.g. {}); run the rollback as root to restore owners",
            not_owned.len(),
            shown.join(", ")
        ));
    }
    // From here the rollback only goes forward: the journal lets the next
    // run finish the swap if this one is killed.
    journal.units = units.clone();
    journal.phase = Phase::Swapping;
    journal.write(&store)?;
    restore::swap(&install, &units)?;
    restore::remove_staging(&install, &units)?;
    Journal::remove(&store)?;

    ctx.out.result(format!(
        "Rolled back {} to snapshot {id}; the state it replaced is snapshot {}",
        install.dir.display(),
        before.id
    ));
    let steps: &[&str] = match args.only {
        Some(Only::Config) => &["./bitwarden.sh rebuild", "./bitwarden.sh start"],
        _ => &["./bitwarden.sh start"],
    };
    ctx.out.info("Next, from the install directory:");
    for s in steps {
        ctx.out.info(format!("  {s}"));
    }
    Ok(json!({
        "id": id,
        "rolled_back": true,
        "before": before.id,
        "parts": parts,
        "files": files,
        "bytes": bytes,
        "next_steps": steps,
        "owners_not_restored": not_owned,
    }))
}

/// Space a rollback needs: the staged copy beside each part, and the
/// snapshot of the current state in the store.
fn room_needs(install: &Install, store: &Store, units: &[Unit], staged_bytes: u64) -> Result<Vec<Need>> {
    let rels: Vec<String> = units.iter().map(|u| u.rel.clone()).collect();
    let (_, sources) = scope::collect(install, &Scope::Parts(rels))?;
    Ok(vec![
        Need {
            path: preflight::existing_ancestor(&store.root),
            bytes: preflight::snapshot_bound(&sources),
            what: "the snapshot of the current state".into(),
        },
        Need { path: install.data.clone(), bytes: staged_bytes, what: "the staged copy".into() },
    ])
}
