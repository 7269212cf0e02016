//! `enable-scim --helm-values FILE` (and `disable-scim`): a Helm install's
//! switch is `component.scim.enabled` in its values file. The file is
//! snapshotted into the store first (the database is the cluster's to back
//! up), then the one value is set; `rollback ID --helm-values FILE` puts
//! the file back.

use std::fs;
use std::path::Path;

use serde_json::json;

use crate::cli::EditArgs;
use crate::commands::backup::summary;
use crate::commands::begin_write;
use crate::context::Ctx;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::error::{Error, Result};
use crate::files::{self, Ownership};
use crate::install::helm;
use crate::install::{DEFAULT_STORE_NAME, Install};

/// The "install" of a values file: its directory, the file as the one
/// part, and the store (`--store`, or `bwguard-snapshots` beside the file).
pub fn install_of(ctx: &Ctx, file: &Path) -> Result<Install> {
    let file = ctx.cwd.join(file);
    let file = file.canonicalize().map_err(|_| Error::NoDataDir(file.clone()))?;
    if !file.is_file() {
        return Err(Error::NoDataDir(file));
    }
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Err(Error::NoDataDir(file));
    };
    let store = match &ctx.global.store {
        Some(s) => ctx.cwd.join(s),
        None => dir.join(DEFAULT_STORE_NAME),
    };
    Ok(Install {
        dir: dir.to_path_buf(),
        data_name: name.to_string_lossy().into_owned(),
        data: file.clone(),
        store,
    })
}

/// Runs `enable-scim --helm-values FILE` (`enabled`) or `disable-scim …`.
pub fn run(ctx: &mut Ctx, enabled: bool, file: &Path, args: &EditArgs) -> Result<serde_json::Value> {
    let install = install_of(ctx, file)?;
    let path = install.data.clone();
    if !args.scope.db_backed_up_elsewhere {
        return Err(Error::refused(
            "a Helm install keeps its database in the cluster, which bwguard cannot snapshot",
            "back the database up your own way, then pass --db-backed-up-elsewhere; \
             bwguard snapshots the values file",
        ));
    }
    let original = fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let refused =
        |why: String| Error::refused(format!("{}: {why}", path.display()), "edit the values file by hand");
    let Some(planned) = helm::set_scim(&original, enabled).map_err(refused)? else {
        ctx.out.result(format!(
            "component.scim.enabled is already {enabled} in {}: nothing to do",
            path.display()
        ));
        return Ok(json!({"file": path, "changed": false, "snapshot": null}));
    };
    if args.dry_run {
        ctx.out
            .result(format!("would snapshot {}, then set component.scim.enabled: {enabled}", path.display()));
        return Ok(json!({"file": path, "changed": false, "dry_run": true}));
    }
    let (_lock, store) = begin_write(ctx, &install, "helm")?;
    let reason = if enabled { "before enable-scim" } else { "before disable-scim" };
    let manifest = snapshot::take(
        &install,
        &store,
        &Request::new(reason, Scope::Files(vec![install.data_name.clone()])),
        ctx.now,
    )?;
    ctx.out.info(summary(&manifest));
    // The edit applies to exactly the bytes the snapshot holds.
    if fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))? != original {
        return Err(Error::Failed {
            message: format!(
                "{} changed while bwguard was taking the snapshot; nothing was edited",
                path.display()
            ),
            hint: Some("run the command again".into()),
        });
    }
    let meta = fs::metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    files::write_atomic(&path, &planned, Ownership::of(&meta))?;
    ctx.out.result(format!(
        "Set component.scim.enabled: {enabled} in {}; snapshot {} holds the previous file",
        path.display(),
        manifest.id
    ));
    let step =
        format!("helm upgrade RELEASE bitwarden/self-host --namespace NAMESPACE -f {}", path.display());
    ctx.out.info(format!("Next, apply it to the cluster:\n  {step}"));
    ctx.out.info(format!(
        "To undo: `bwguard rollback {} --helm-values {}`, then the same helm upgrade",
        manifest.id,
        path.display()
    ));
    Ok(json!({"file": path, "changed": true, "snapshot": manifest.id, "next_steps": [step]}))
}
