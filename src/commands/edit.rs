//! `enable-scim`, `disable-scim` and `set`: snapshot first, then change one
//! value on one line of config.yml (safety rules 1 and 7).

use std::fs;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::{EditArgs, SetArgs};
use crate::commands::backup::{live_warning, summary};
use crate::commands::begin_write;
use crate::context::Ctx;
use crate::engine::manifest::hex;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::error::{Error, Result};
use crate::files::{self, Ownership};
use crate::install::config::{self, Config, ConfigError, Edit};
use crate::install::preflight;

/// Runs `enable-scim` (`on`) or `disable-scim`.
pub fn run_scim(on: bool, args: &EditArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let reason = if on { "before enable-scim" } else { "before disable-scim" };
    edit(ctx, "enable_scim", if on { "true" } else { "false" }, args, reason)
}

/// Runs `set KEY VALUE`.
pub fn run_set(args: &SetArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    edit(ctx, &args.key, &args.value, &args.edit, &format!("before set {}", args.key))
}

fn edit(ctx: &mut Ctx, key: &str, value: &str, args: &EditArgs, reason: &str) -> Result<serde_json::Value> {
    if args.apply {
        return crate::commands::apply::run(ctx, key, value, args, reason);
    }
    if let Some(file) = &args.helm_values {
        if key != "enable_scim" {
            return Err(Error::Usage("--helm-values works with enable-scim and disable-scim only".into()));
        }
        return crate::commands::helm::run(ctx, value == "true", file, args);
    }
    let install = ctx.install()?;
    let path = install.config_path();
    let config_err = |source| Error::Config { path: path.clone(), source };
    // Plan before locking so a refused edit costs nothing; planned again
    // under the lock below against the bytes that the snapshot holds.
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(Error::refused(
            format!("{} is not a regular file", path.display()),
            "bwguard edits and restores config.yml as a plain file; is --bwdata the Bitwarden data directory?",
        ));
    }
    let original = read_config(&path)?;
    let planned = match config::plan_set(&original, key, value, args.add_missing) {
        // Setup's default for a missing enable_scim is false: already off.
        Err(ConfigError::MissingKey { .. }) if key == "enable_scim" && value == "false" => {
            Edit::Unchanged { key: key.into(), value: "false (absent, which Setup reads as false)".into() }
        }
        other => other.map_err(config_err)?,
    };
    if let Edit::Unchanged { value, .. } = &planned {
        ctx.out.result(format!("{key} is already {value} in {}: nothing to do", path.display()));
        return Ok(json!({"key": key, "value": value, "changed": false, "snapshot": null}));
    }
    if args.dry_run {
        if let Edit::Changed { old, new, line, .. } = &planned {
            ctx.out.result(format!(
                "would snapshot, then change line {line} of {}: {key}: {} -> {new}",
                path.display(),
                old.as_deref().unwrap_or("(absent; appended)")
            ));
        }
        return Ok(json!({"key": key, "changed": false, "dry_run": true}));
    }

    let (_lock, store) = begin_write(ctx, &install, reason.split(' ').nth(1).unwrap_or("set"))?;
    preflight::database_covered(&install, args.scope.db_backed_up_elsewhere)?;
    let mut req = Request::new(reason, Scope::from_flags(args.scope.with_attachments, args.scope.full));
    req.live = args.scope.live;
    req.progress = ctx.progress;
    ctx.out.info(format!("Taking a snapshot first ({reason})"));
    let manifest = snapshot::take(&install, &store, &req, ctx.now)?;
    ctx.out.info(summary(&manifest));
    if manifest.consistency == "live" {
        ctx.out.warn(live_warning(&manifest));
    }

    // Safety: the edit must apply to exactly the bytes the snapshot holds;
    // another process (a cron'd update, an admin) may have changed the file.
    let current = read_config(&path)?;
    let snap_config = manifest.entries.first().and_then(|e| e.sha256.clone());
    if snap_config.as_deref() != Some(hex(&Sha256::digest(&current)).as_str()) || current != original {
        return Err(Error::Failed {
            message: format!(
                "{} changed while bwguard was taking the snapshot; nothing was edited",
                path.display()
            ),
            hint: Some(format!(
                "run the command again (snapshot {} holds the state before the change)",
                manifest.id
            )),
        });
    }
    let Edit::Changed { old, new, line, bytes, .. } =
        config::plan_set(&current, key, value, args.add_missing).map_err(config_err)?
    else {
        return Err(Error::Failed { message: "the planned edit vanished".into(), hint: None });
    };
    let meta = fs::metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    files::write_atomic(&path, &bytes, Ownership::of(&meta))?;
    if read_config(&path)? != bytes {
        return Err(Error::Failed {
            message: format!("{} does not hold what was written", path.display()),
            hint: Some(format!("restore it with `bwguard rollback {} --only config`", manifest.id)),
        });
    }
    ctx.out.result(format!(
        "Set {key}: {} -> {new} (line {line} of {}); snapshot {} holds the previous state",
        old.as_deref().unwrap_or("(absent)"),
        path.display(),
        manifest.id
    ));
    let warnings = warnings_for(key, &new, &bytes);
    for w in &warnings {
        ctx.out.warn(w);
    }
    ctx.out.info("Next, apply it as Bitwarden's procedure says, from the install directory:");
    for s in NEXT_STEPS {
        ctx.out.info(format!("  {s}"));
    }
    ctx.out.info(format!(
        "To undo: `bwguard rollback {0} --only config` (config only) or `bwguard rollback {0}` (config and database)",
        manifest.id
    ));
    Ok(json!({
        "key": key,
        "old": old,
        "new": new,
        "line": line,
        "changed": true,
        "snapshot": manifest.id,
        "next_steps": NEXT_STEPS,
        "warnings": warnings,
    }))
}

fn read_config(path: &std::path::Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Reads config.yml, refusing anything but a regular file.
pub fn read_regular(path: &std::path::Path) -> Result<Vec<u8>> {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return Err(Error::refused(
            format!("{} is not a regular file", path.display()),
            "bwguard edits and restores config.yml as a plain file; is --bwdata the Bitwarden data directory?",
        ));
    }
    read_config(path)
}

/// The commands that apply a config.yml change (Bitwarden's procedure).
pub const NEXT_STEPS: [&str; 2] = ["./bitwarden.sh rebuild", "./bitwarden.sh update"];

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
