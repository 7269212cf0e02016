//! `demo`: build a sample install in a scratch directory, then run backup,
//! enable-scim, diff, verify --deep and rollback on it through the same code
//! paths as the real commands, narrating, and prove at the end that every
//! restored byte, mode and mtime equals the original.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use walkdir::WalkDir;

use crate::cli::{BackupArgs, Command, DemoArgs, DiffArgs, EditArgs, RollbackArgs, ScopeArgs, VerifyArgs};
use crate::commands::human_size;
use crate::context::Ctx;
use crate::engine::verify::hash_file;
use crate::error::{Error, Result};
use crate::sample::{self, SampleOptions};

/// Runs `demo`.
pub fn run(args: &DemoArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let scratch;
    let base: PathBuf = match &args.dir {
        Some(d) => ctx.cwd.join(d),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("bwguard-demo-")
                .tempdir()
                .map_err(|e| Error::io("cannot create a scratch directory in", std::env::temp_dir(), e))?;
            scratch.path().to_path_buf()
        }
    };
    let install = base.join("install");
    let opts = SampleOptions { vault_mb: args.size_mb, backups: 2, ..SampleOptions::default() };
    ctx.out.info(format!("== Building a sample Bitwarden install in {}", install.display()));
    let written = sample::generate(&install, &opts)
        .map_err(|e| Error::io("cannot generate sample install in", &install, e))?;
    ctx.out.info(format!(
        "   bitwarden.sh, bwdata/config.yml (enable_scim: false), env/, docker/, mssql/data and mssql/backups: {}",
        human_size(written)
    ));
    let before = fingerprint(&install)?;

    let saved = ctx.global.clone();
    ctx.global.bwdata = Some(install.join("bwdata"));
    ctx.global.store = None;
    ctx.global.yes = true;
    let result = steps(ctx, &install);
    ctx.global = saved;
    let snapshot = result?;

    let after = fingerprint(&install)?;
    let differing: Vec<&String> =
        before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    if !differing.is_empty() {
        return Err(Error::Failed {
            message: format!("after rollback these differ from the original: {differing:?}"),
            hint: Some("this is a bug in bwguard; please report it".into()),
        });
    }
    let files = before.values().filter(|v| v.starts_with("file")).count();
    ctx.out.result(format!(
        "== Proof: all {} entries ({files} files) of the install are back to the original bytes, modes and mtimes.",
        before.len()
    ));
    if args.dir.is_some() {
        ctx.out.info(format!("The sample install and its snapshots are in {}", base.display()));
    }
    Ok(
        json!({"dir": base.display().to_string(), "snapshot": snapshot, "entries": before.len(), "identical": true}),
    )
}

fn steps(ctx: &mut Ctx, install: &Path) -> Result<String> {
    let scope = ScopeArgs::default();
    ctx.out.info("\n== 1. bwguard backup: archive, checksum, read back, then write the manifest");
    crate::run(
        &Command::Backup(BackupArgs {
            note: Some("demo".into()),
            level: None,
            prune: false,
            push: None,
            scheduled: false,
            retention: Default::default(),
            scope,
        }),
        ctx,
    )?;
    ctx.out.info("\n== 2. bwguard enable-scim: snapshot first, then change exactly one line");
    let edited = crate::run(
        &Command::EnableScim(EditArgs {
            add_missing: false,
            dry_run: false,
            apply: false,
            rollback_on_failure: false,
            bitwarden_sh: None,
            helm_values: None,
            scope,
        }),
        ctx,
    )?;
    let snapshot = edited["snapshot"].as_str().unwrap_or_default().to_string();
    ctx.out.info("\n== 3. bwguard diff: what changed in config.yml since that snapshot");
    crate::run(&Command::Diff(DiffArgs { id: Some(snapshot.clone()) }), ctx)?;
    ctx.out.info("\n== 4. bwguard verify --deep --all: every archive decompressed, every file checked");
    crate::run(
        &Command::Verify(VerifyArgs { ids: Vec::new(), all: true, deep: true, remote: None, identity: None }),
        ctx,
    )?;
    ctx.out.info(format!("\n== 5. bwguard rollback {snapshot}: back to the state before enable-scim"));
    crate::run(
        &Command::Rollback(RollbackArgs {
            id: Some(snapshot.clone()),
            only: None,
            dry_run: false,
            helm_values: None,
            remote: None,
            identity: None,
        }),
        ctx,
    )?;
    let config = fs::read_to_string(install.join("bwdata/config.yml")).unwrap_or_default();
    if config.lines().any(|l| l == "enable_scim: false") {
        ctx.out.info("   config.yml says enable_scim: false again");
    }
    Ok(snapshot)
}

/// Directories that hold parts rather than being parts themselves.
const PARTS_PARENTS: [&str; 3] = ["bwdata", "bwdata/core", "bwdata/scripts"];

/// Every entry of the install except the store: type, content hash or link
/// target, mode and mtime.
fn fingerprint(install: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let walker = WalkDir::new(install)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != crate::install::DEFAULT_STORE_NAME);
    for item in walker {
        let item = item.map_err(|e| Error::Failed { message: e.to_string(), hint: None })?;
        let path = item.path();
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
        let rel = path.strip_prefix(install).unwrap_or(path).display().to_string();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default())
        } else if meta.is_file() {
            let d = hash_file(path, &crate::engine::progress::Progress::hidden(0))
                .map_err(|e| Error::io("cannot read", path, e))?;
            format!("file {}", d.sha256)
        } else if rel.is_empty() {
            continue;
        } else {
            "dir".to_string()
        };
        // Staging directories come and go beside the parts, so the parents
        // of parts keep their contents but not their mtimes.
        let mtime = if meta.is_dir() && PARTS_PARENTS.contains(&rel.as_str()) { 0 } else { meta.mtime() };
        out.insert(rel, format!("{what} mode {:o} mtime {mtime}", meta.mode() & 0o7777));
    }
    Ok(out)
}
