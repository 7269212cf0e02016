//! `rollback`: check the snapshot, snapshot the current state, stage,
//! check, swap (safety rule 3). A failure before the swap leaves the
//! install untouched and removes what this run wrote.

use serde_json::json;

use crate::cli::{Only, RollbackArgs};
use crate::commands::{begin_write, confirm, human_size, offsite};
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::restore::{self, Journal, Phase, Unit};
use crate::engine::room::{self, Need};
use crate::engine::scope::{self, Scope};
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Result};
use crate::install::Install;
use crate::install::facts;
use crate::install::preflight;

/// Deflate level of the `before rollback` snapshot: stored, not compressed.
pub const SAFETY_LEVEL: u32 = 0;

/// Runs `rollback`.
pub fn run(args: &RollbackArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = match &args.helm_values {
        Some(file) => crate::commands::helm::install_of(ctx, file)?,
        None => ctx.install()?,
    };
    let helm = args.helm_values.is_some();
    let store = Store::new(&install.store);
    // From a remote: everything that could refuse is asked before the
    // download, and the lock is held from the pull to the end.
    let mut held = None;
    let wanted = match (&args.remote, &args.identity) {
        (Some(remote), Some(identity)) => {
            let identities = crate::offsite::crypt::Identities::load(identity)?;
            if args.dry_run {
                return offsite::rollback_dry_run(ctx, &store, remote, args.id.as_deref());
            }
            if !ctx.global.yes && !ctx.interactive {
                confirm(
                    ctx,
                    &format!("Pull a snapshot from {remote} and roll {} back to it?", install.dir.display()),
                )?;
            }
            preflight::no_database_holders(&install)?;
            let (lock, locked) = begin_write(ctx, &install, "rollback")?;
            let (id, _) = offsite::fetch_locked(ctx, &locked, Some(remote), args.id.as_deref(), &identities)?;
            held = Some(lock);
            Some(id)
        }
        _ => args.id.clone(),
    };
    let id = store.resolve(wanted.as_deref())?;
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
    let restores_data = units.iter().any(|u| u.rel == install.rel("mssql"));
    let running = facts::read_info(&install);
    let version_change = facts::version_change(
        manifest.bitwarden.core_version.as_deref(),
        running.core_version.as_deref(),
        restores_data,
    );
    for said in &version_change {
        ctx.out.warn(said);
    }
    if args.dry_run {
        ctx.out.result(format!(
            "dry run: would snapshot the current state of {}, then replace it with snapshot {id}; nothing changed",
            parts.join(", ")
        ));
        return Ok(json!({
            "id": id,
            "dry_run": true,
            "parts": parts,
            "files": files,
            "bytes": bytes,
            "version_change": version_change,
        }));
    }
    if !ctx.global.yes && !ctx.interactive {
        confirm(ctx, &format!("Roll back {} to snapshot {id}?", install.dir.display()))?;
    }

    let (_lock, store) = match held {
        Some(lock) => (lock, store),
        None => begin_write(ctx, &install, "rollback")?,
    };
    preflight::no_database_holders(&install)?;
    // Room first (rule 8), then the archive against its checksums, all
    // before touching anything.
    room::room(&room_needs(&install, &store, &units, bytes, helm)?)?;
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

    // The snapshot of the current state and the staged copy of the target
    // are made at the same time: staging writes only into staging
    // directories, which are outside every part, and nothing in the install
    // changes until both are complete and checked.
    let t = std::time::Instant::now();
    ctx.out
        .info("Taking a snapshot of the current state while restoring into staging and checking every file");
    let scope = if helm { Scope::Files(parts.clone()) } else { Scope::Parts(parts.clone()) };
    let mut req = Request::new(format!("before rollback to {id}"), scope);
    // The state being replaced is stored uncompressed: it costs disk rather
    // than the admin's time during an outage (docs/performance.md).
    req.level = SAFETY_LEVEL;
    let mut journal = Journal {
        id: id.clone(),
        before: String::new(),
        install_dir: install.dir.display().to_string(),
        phase: Phase::Staging,
        units: units.clone(),
    };
    journal.write(&store)?;
    let progress = Progress::new("restore", manifest.content_size(), ctx.progress);
    let now = ctx.now;
    let (before, staged) = std::thread::scope(|s| {
        let snap = s.spawn(|| snapshot::take(&install, &store, &req, now));
        let staged = restore::stage(&install, &store, &manifest, &mut units, &progress);
        let before = snap.join().unwrap_or_else(|_| {
            Err(Error::Failed { message: "the snapshot thread panicked".into(), hint: None })
        });
        (before, staged)
    });
    drop(progress);
    let (before, not_owned) = match (before, staged) {
        (Ok(before), Ok(list)) => (before, list),
        (before, staged) => {
            // Nothing in the install changed; drop what this run added.
            restore::remove_staging(&install, &units)?;
            if let Ok(b) = &before {
                store.delete(&b.id)?;
            }
            Journal::remove(&store)?;
            // A damaged snapshot (exit 3) says the most; else the first error.
            let e = match staged {
                Err(e) if e.exit() == crate::error::Exit::Integrity => e,
                staged => before.err().or(staged.err()).unwrap_or_else(|| Error::Failed {
                    message: "the rollback stopped without saying why".into(),
                    hint: None,
                }),
            };
            return Err(e);
        }
    };
    ctx.out.info(format!("Current state saved as snapshot {}", before.id));
    ctx.out
        .detail(format!("  staged, checked and saved the current state ({:.1}s)", t.elapsed().as_secs_f64()));
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
    journal.before = before.id.clone();
    journal.phase = Phase::Swapping;
    journal.write(&store)?;
    let t = std::time::Instant::now();
    restore::swap(&install, &units)?;
    ctx.out.detail(format!("  swapped ({:.1}s)", t.elapsed().as_secs_f64()));
    let t = std::time::Instant::now();
    restore::remove_staging(&install, &units)?;
    Journal::remove(&store)?;
    ctx.out.detail(format!("  removed the replaced copy ({:.1}s)", t.elapsed().as_secs_f64()));

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
    if !version_change.is_empty() && restores_data {
        ctx.out.info(format!(
            "That brings up Bitwarden {}, as pinned by the restored bitwarden.sh and docker-compose.yml. \
             Do not run `./bitwarden.sh update` until you mean to upgrade again: it migrates the database forward.",
            manifest.bitwarden.core_version.as_deref().unwrap_or("?")
        ));
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
        "version_change": version_change,
    }))
}

/// Space a rollback needs: the staged copy beside each part, and the
/// snapshot of the current state in the store.
fn room_needs(
    install: &Install,
    store: &Store,
    units: &[Unit],
    staged_bytes: u64,
    helm: bool,
) -> Result<Vec<Need>> {
    let rels: Vec<String> = units.iter().map(|u| u.rel.clone()).collect();
    let scope = if helm { Scope::Files(rels) } else { Scope::Parts(rels) };
    let (_, sources) = scope::collect(install, &scope)?;
    Ok(vec![
        Need {
            path: room::existing_ancestor(&store.root),
            bytes: room::snapshot_bound(&sources),
            what: "the snapshot of the current state".into(),
        },
        Need { path: install.data.clone(), bytes: staged_bytes, what: "the staged copy".into() },
    ])
}
