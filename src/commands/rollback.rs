//! `rollback`: check the snapshot, snapshot the current state, stage,
//! check, swap (safety rule 3; [`crate::engine::rollback`] does the work).
//! With `--remote`, the snapshot is pulled first, under the same lock.
//! Everything that could refuse is asked before anything is downloaded or
//! touched.

use super::{Run, confirm_or_stop};
use crate::cli::{Only, RollbackArgs};
use crate::context::Ctx;
use crate::engine::rollback::{self, Selection};
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::install::facts::DatabaseMode;
use crate::install::{Install, VOLUME_PART, facts, preflight};
use crate::offsite::crypt::Identities;
use crate::offsite::{self, remote};
use crate::procedure::{pause, volume};
use crate::report::RollbackReport;

impl Run for RollbackArgs {
    type Report = RollbackReport;

    fn run(&self, ctx: &mut Ctx) -> Result<RollbackReport> {
        let report = rollback(self, ctx)?;
        ctx.out.show(&report);
        Ok(report)
    }
}

fn rollback(args: &RollbackArgs, ctx: &mut Ctx) -> Result<RollbackReport> {
    let install = match &args.helm_values {
        Some(file) => Install::of_values_file(file, ctx.global.store.as_deref(), &ctx.cwd)?,
        None => ctx.install()?,
    };
    let store = install.open_store()?;
    // From a remote: everything that could refuse is asked before the
    // download, and the lock is held from the pull to the end.
    let (mut held, mut pulled) = (None, None);
    let id = match (&args.remote, &args.identity) {
        (Some(remote), Some(identity)) => {
            let identities = Identities::load(identity)?;
            if args.dry_run {
                return remote_dry_run(ctx, &install, &store, remote, args);
            }
            if !ctx.global.yes && !ctx.interactive {
                confirm_or_stop(
                    ctx,
                    &format!("Pull a snapshot from {remote} and roll {} back to it?", install.dir.display()),
                )?;
            }
            if !args.pause_db {
                preflight::no_database_holders(&install)?;
            }
            let writing = ctx.begin_write(&install, "rollback")?;
            let copy = offsite::fetch_locked(
                &mut ctx.out,
                &writing.store,
                Some(remote),
                args.id.as_deref(),
                &identities,
                ctx.progress,
                &args.trust.accept(),
            )?;
            ctx.out.show(&copy);
            held = Some(writing);
            pulled = Some((copy.remote, copy.pulled, copy.signed_by));
            copy.id
        }
        _ => match args.id.as_deref() {
            Some(id) => store.expand(id)?,
            None => {
                let id = store.rollback_target(facts::read_info(&install).installation_id.as_deref())?;
                ctx.out.info(format!(
                    "No id given: restoring {id}, the newest cold backup of the whole install that a rollback did \
                     not take"
                ));
                id
            }
        },
    };
    let selection = match args.only {
        Some(Only::Config) => Selection::Config,
        Some(Only::Data) => Selection::Data,
        None => Selection::All,
    };
    if args.pause_db && selection != Selection::Data {
        return Err(Error::Usage(
            "--pause-db restores the data while the rest of Bitwarden runs: add --only data (a rollback of \
             config.yml needs `./bitwarden.sh rebuild` and a stopped Bitwarden)"
                .into(),
        ));
    }
    // A snapshot holding the Docker volume restores into the volume Docker
    // names now.
    let mut install = install;
    let holds_volume = |m: crate::engine::manifest::Manifest| m.parts.iter().any(|p| p.path == VOLUME_PART);
    if selection != Selection::Config
        && preflight::database_mode(&install) == DatabaseMode::DockerVolume
        && store.open(&id).is_ok_and(holds_volume)
    {
        install.volume = Some(volume::find(&install)?);
    }
    let plan = rollback::plan(
        &install,
        &store,
        &id,
        selection,
        args.helm_values.is_some(),
        args.other_installation,
    )?;
    ctx.out.info(plan.describe());
    ctx.out.detail(format!("parts: {}", plan.parts().join(", ")));
    for said in plan.cautions() {
        ctx.out.warn(said);
    }
    for said in &plan.version_change {
        ctx.out.warn(said);
    }
    let (remote, pulled, signed_by) =
        pulled.map_or((None, None, None), |(r, p, s)| (Some(r), Some(p), Some(s)));
    let mut report = RollbackReport {
        id: id.clone(),
        install_dir: install.dir.display().to_string(),
        dry_run: args.dry_run,
        rolled_back: false,
        before: None,
        parts: plan.parts(),
        entries: plan.entries,
        content_size: plan.content_size,
        next_steps: Vec::new(),
        owners_not_restored: Vec::new(),
        owners_clamped: Vec::new(),
        version_change: plan.version_change.clone(),
        restored_version: plan.restored_version(),
        remote,
        pulled,
        copy: None,
        signed_by,
        database_pause: None,
    };
    if args.dry_run {
        return Ok(report);
    }
    if !ctx.global.yes && !ctx.interactive {
        confirm_or_stop(ctx, &format!("Roll back {} to snapshot {id}?", install.dir.display()))?;
    }
    let writing = match held {
        Some(w) => w,
        None => ctx.begin_write(&install, "rollback")?,
    };
    let question =
        format!("Roll back {} ({}) to snapshot {id}?", install.dir.display(), plan.selection.describe());
    let done = if args.pause_db {
        // Asked first: the check needs the database stopped.
        confirm_or_stop(ctx, &question)?;
        let (progress, now) = (ctx.progress, ctx.now);
        let (done, paused) = pause::with_paused(&mut ctx.out, &install, &writing.store, |out| {
            rollback::check(&install, &writing.store, &plan, progress)?;
            rollback::apply(&install, &writing.store, &plan, now, progress, out)
        })?;
        report.database_pause = paused;
        done
    } else {
        // Room first (rule 8), then the archive against its checksums, all
        // before touching anything.
        rollback::check(&install, &writing.store, &plan, ctx.progress)?;
        confirm_or_stop(ctx, &question)?;
        rollback::apply(&install, &writing.store, &plan, ctx.now, ctx.progress, &mut ctx.out)?
    };
    report.rolled_back = true;
    report.before = Some(done.before);
    report.owners_not_restored = done.owners_not_restored;
    report.owners_clamped = done.clamped;
    let cd = install.cd_line();
    report.next_steps = match (selection, args.helm_values.is_some()) {
        (_, true) => Vec::new(),
        (Selection::Config, false) => {
            vec![format!("{cd} && {} && {}", install.script_line("rebuild"), install.script_line("start"))]
        }
        // The database runs again; the other containers read the restored
        // settings when they start.
        _ if report.database_pause.is_some() => vec![format!("{cd} && {}", install.script_line("restart"))],
        _ => vec![format!("{cd} && {}", install.script_line("start"))],
    };
    for problem in facts::generated_files_disagree(&install) {
        ctx.out.warn(format!(
            "{problem}: nginx would not start; `{cd} && {}` writes them again from config.yml",
            install.script_line("rebuild")
        ));
    }
    Ok(report)
}

/// `rollback --remote NAME --dry-run`: says which copy would be pulled and
/// restored (only one signed by a trusted key), downloading nothing.
fn remote_dry_run(
    ctx: &mut Ctx,
    install: &Install,
    store: &Store,
    name: &str,
    args: &RollbackArgs,
) -> Result<RollbackReport> {
    let (name, found) = remote::pick(&store.root, Some(name))?;
    let client = found.client()?;
    let trust = found.trust(&store.root, &name, &args.trust.accept())?;
    let opened = offsite::open_or_newest(&client, &name, args.id.as_deref(), &trust)?;
    for said in &opened.passed_over {
        ctx.out.warn(said);
    }
    let (id, rm) = (opened.id, opened.manifest);
    let local = store.dir(&id).join(crate::engine::manifest::MANIFEST).is_file();
    Ok(RollbackReport {
        id,
        install_dir: install.dir.display().to_string(),
        dry_run: true,
        rolled_back: false,
        before: None,
        parts: Vec::new(),
        entries: 0,
        content_size: rm.content_size,
        next_steps: Vec::new(),
        owners_not_restored: Vec::new(),
        owners_clamped: Vec::new(),
        version_change: Vec::new(),
        restored_version: None,
        remote: Some(name),
        pulled: Some(!local),
        copy: Some(Box::new(rm)),
        signed_by: Some(opened.signer),
        database_pause: None,
    })
}
