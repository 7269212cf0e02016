//! `enable-scim`, `disable-scim` and `set KEY VALUE`: snapshot first, then
//! change one value on one line of config.yml (safety rules 1 and 7).
//! With `--apply`, Bitwarden's whole procedure runs instead
//! ([`crate::procedure::change`]); with `--helm-values FILE`, the switch of
//! a Helm install is set in its values file.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Run;
use crate::cli::{DisableScimArgs, EditArgs, EnableScimArgs, SetArgs};
use crate::context::Ctx;
use crate::engine::manifest::hex;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::error::{Error, Failure, Refusal, Result};
use crate::files::{self, Ownership};
use crate::install::config::{self, Config, ConfigError, Edit};
use crate::install::{Install, helm, preflight, shell_word};
use crate::procedure::{self, Opts};
use crate::report::changes::Method;
use crate::report::{EditReport, SnapshotReport};

/// The commands of Bitwarden's procedure that apply a config.yml change.
const NEXT_STEPS: [&str; 2] = ["rebuild", "update"];

impl Run for EnableScimArgs {
    type Report = EditReport;

    fn run(&self, ctx: &mut Ctx) -> Result<EditReport> {
        edit(ctx, "enable_scim", "true", &self.edit, "before enable-scim")
    }
}

impl Run for DisableScimArgs {
    type Report = EditReport;

    fn run(&self, ctx: &mut Ctx) -> Result<EditReport> {
        edit(ctx, "enable_scim", "false", &self.edit, "before disable-scim")
    }
}

impl Run for SetArgs {
    type Report = EditReport;

    fn run(&self, ctx: &mut Ctx) -> Result<EditReport> {
        edit(ctx, &self.key, &self.value, &self.edit, &format!("before set {}", self.key))
    }
}

fn edit(ctx: &mut Ctx, key: &str, value: &str, args: &EditArgs, reason: &str) -> Result<EditReport> {
    let report = if args.apply {
        apply(ctx, key, value, args, reason)?
    } else if let Some(file) = &args.helm_values {
        if key != "enable_scim" {
            return Err(Error::Usage("--helm-values works with enable-scim and disable-scim only".into()));
        }
        edit_helm(ctx, value == "true", file, args, reason)?
    } else {
        edit_line(ctx, key, value, args, reason)?
    };
    ctx.out.show(&report);
    Ok(report)
}

/// The one-line edit of config.yml, after a snapshot that holds exactly
/// the bytes the edit applies to.
fn edit_line(ctx: &mut Ctx, key: &str, value: &str, args: &EditArgs, reason: &str) -> Result<EditReport> {
    let mut install = ctx.install()?;
    let path = install.config_path();
    let mut report = EditReport::new(Method::Edit, key, value, &path.display().to_string());
    let config_err = |source| Error::Config { path: path.clone(), source };
    // Plan before locking so a refused edit costs nothing; planned again
    // under the lock below against the bytes that the snapshot holds.
    let original = install.read_config()?;
    let planned = match config::plan_set(&original, key, value, args.add_missing) {
        // Setup's default for a missing enable_scim is false: already off.
        Err(ConfigError::MissingKey { .. }) if key == "enable_scim" && value == "false" => {
            Edit::Unchanged { key: key.into(), value: "false (absent, which Setup reads as false)".into() }
        }
        other => other.map_err(config_err)?,
    };
    let (old, new, line) = match planned {
        Edit::Unchanged { value, .. } => {
            report.value = value;
            return Ok(report);
        }
        Edit::Changed { old, new, line, .. } => (old, new, line),
    };
    report.value = new;
    report.old = old;
    report.line = Some(line);
    if args.dry_run {
        report.dry_run = true;
        return Ok(report);
    }

    crate::procedure::volume::attach(&mut install, args.scope.db_backed_up_elsewhere)?;
    let writing = ctx.begin_write(&install, reason.split(' ').nth(1).unwrap_or("set"))?;
    preflight::database_covered(&install, args.scope.db_backed_up_elsewhere)?;
    let mut req = Request::new(reason, Scope::from_flags(args.scope.with_attachments, args.scope.full));
    req.live = args.scope.live;
    req.progress = ctx.progress;
    ctx.out.info(format!("Taking a snapshot first ({reason})"));
    let manifest = snapshot::take(&install, &writing.store, &req, ctx.now)?;
    ctx.out.show(&SnapshotReport::of(&manifest, &writing.store.dir(&manifest.id)));

    // Safety: the edit must apply to exactly the bytes the snapshot holds;
    // another process (a cron'd update, an admin) may have changed the file.
    let current = read(&path)?;
    let snap_config = manifest.entries.first().and_then(|e| e.sha256.clone());
    if snap_config.as_deref() != Some(hex(&Sha256::digest(&current)).as_str()) || current != original {
        return Err(Error::failed(
            Failure::ChangedMeanwhile,
            format!("{} changed while bwguard was taking the snapshot; nothing was edited", path.display()),
            format!("run the command again (snapshot {} holds the state before the change)", manifest.id),
        ));
    }
    let Edit::Changed { bytes, .. } =
        config::plan_set(&current, key, value, args.add_missing).map_err(config_err)?
    else {
        return Err(Error::internal("the planned edit vanished"));
    };
    let meta = fs::metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    files::write_atomic(&path, &bytes, Ownership::of(&meta))?;
    if read(&path)? != bytes {
        return Err(Error::failed(
            Failure::WriteNotKept,
            format!("{} does not hold what was written", path.display()),
            format!("restore it with `bwguard rollback {} --only config`", manifest.id),
        ));
    }
    report.changed = true;
    report.next_steps =
        vec![format!("{} && {}", install.cd_line(), NEXT_STEPS.map(|a| install.script_line(a)).join(" && "))];
    report.undo = vec![
        ctx.bwguard_line(&install, &format!("rollback {} --only config", manifest.id)),
        format!(
            "{} && {} && {} && {}",
            install.cd_line(),
            install.script_line("stop"),
            ctx.bwguard_line(&install, &format!("rollback {} --yes", manifest.id)),
            install.script_line("start")
        ),
    ];
    report.snapshot = Some(manifest.id);
    report.warnings = warnings_for(key, &report.value, &bytes);
    Ok(report)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    files::read_small(path, files::SMALL_CAP).map_err(|e| Error::io("cannot read", path, e))
}

/// Warnings about what the new value will (not) do.
fn warnings_for(key: &str, new: &str, bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if key == "enable_scim"
        && new == "true"
        && let Ok(c) = Config::parse(bytes)
    {
        for flag in ["generate_compose_config", "generate_nginx_config"] {
            if c.bool_value(flag) == Some(false) {
                out.push(format!(
                    "{flag} is false: Setup will not add the scim container or its /scim/ route, \
                     so SCIM will not be wired until you add them to your own files"
                ));
            }
        }
    }
    out
}

/// `--apply`: Bitwarden's whole procedure for `key: value`.
fn apply(ctx: &mut Ctx, key: &str, value: &str, args: &EditArgs, reason: &str) -> Result<EditReport> {
    let install = ctx.install()?;
    let path = install.config_path().display().to_string();
    let mut report = EditReport::new(Method::Procedure, key, value, &path);
    if let Some(already) = procedure::change::preflight(&install, key, value, args.add_missing)? {
        report.value = already;
        return Ok(report);
    }
    let plan = procedure::change::plan(key, value, reason);
    let opts = Opts {
        scope: Scope::from_flags(args.scope.with_attachments, args.scope.full),
        live: args.scope.live,
        db_backed_up_elsewhere: args.scope.db_backed_up_elsewhere,
        dry_run: args.dry_run,
        rollback_on_failure: args.rollback_on_failure,
        bitwarden_sh: args.bitwarden_sh.clone(),
        step_timeout: std::time::Duration::from_secs(args.step_timeout),
    };
    let outcome = procedure::execute(ctx, &install, &plan, &opts)?;
    report.dry_run = args.dry_run;
    report.changed = !args.dry_run;
    report.snapshot = outcome.snapshot;
    report.journal = outcome.journal;
    report.plan = outcome.plan;
    report.undo = outcome.undo;
    Ok(report)
}

/// `--helm-values FILE`: the values file is snapshotted into the store
/// first (the database is the cluster's to back up), then the one value is
/// set; `rollback ID --helm-values FILE` puts the file back.
fn edit_helm(ctx: &mut Ctx, enabled: bool, file: &Path, args: &EditArgs, reason: &str) -> Result<EditReport> {
    let install = Install::of_values_file(file, ctx.global.store.as_deref(), &ctx.cwd)?;
    let path = install.data.clone();
    let mut report = EditReport::new(
        Method::Helm,
        "component.scim.enabled",
        &enabled.to_string(),
        &path.display().to_string(),
    );
    if !args.scope.db_backed_up_elsewhere {
        return Err(Error::refused(
            Refusal::DatabaseElsewhere,
            "a Helm install keeps its database in the cluster, which bwguard cannot snapshot",
            "back the database up your own way, then pass --db-backed-up-elsewhere; \
             bwguard snapshots the values file",
        ));
    }
    let original = read(&path)?;
    let refused = |why: String| {
        Error::refused(
            Refusal::HelmValues,
            format!("{}: {why}", path.display()),
            "edit the values file by hand",
        )
    };
    let Some(planned) = helm::set_scim(&original, enabled).map_err(refused)? else {
        return Ok(report);
    };
    if args.dry_run {
        report.dry_run = true;
        return Ok(report);
    }
    let writing = ctx.begin_write(&install, "helm")?;
    let manifest = snapshot::take(
        &install,
        &writing.store,
        &Request::new(reason, Scope::Files(vec![install.data_name.clone()])),
        ctx.now,
    )?;
    ctx.out.show(&SnapshotReport::of(&manifest, &writing.store.dir(&manifest.id)));
    // The edit applies to exactly the bytes the snapshot holds.
    if read(&path)? != original {
        return Err(Error::failed(
            Failure::ChangedMeanwhile,
            format!("{} changed while bwguard was taking the snapshot; nothing was edited", path.display()),
            "run the command again",
        ));
    }
    let meta = fs::metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    files::write_atomic(&path, &planned, Ownership::of(&meta))?;
    report.changed = true;
    let values = shell_word(&path.display().to_string());
    report.next_steps =
        vec![format!("helm upgrade RELEASE bitwarden/self-host --namespace NAMESPACE -f {values}")];
    report.undo =
        vec![ctx.bwguard_line(&install, &format!("rollback {} --helm-values {values}", manifest.id))];
    report.snapshot = Some(manifest.id);
    Ok(report)
}
