//! `demo`: build a sample install in a scratch directory, then run backup,
//! enable-scim, diff, verify --deep and rollback on it through the same code
//! paths as the real commands, narrating, and prove at the end that every
//! restored byte, mode and mtime equals the original.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::Run;
use crate::cli::{
    BackupArgs, Command, DemoArgs, DiffArgs, EditArgs, EnableScimArgs, RollbackArgs, ScopeArgs, VerifyArgs,
};
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::verify::hash_file;
use crate::error::{Error, Result};
use crate::install::DEFAULT_STORE_NAME;
use crate::report::DemoReport;
use crate::report::human::human_size;
use crate::sample::{self, SampleOptions};

impl Run for DemoArgs {
    type Report = DemoReport;

    fn run(&self, ctx: &mut Ctx) -> Result<DemoReport> {
        let report = demo(self, ctx)?;
        ctx.out.show(&report);
        if self.dir.is_some() {
            ctx.out.info(format!("The sample install and its snapshots are in {}", report.dir));
        }
        Ok(report)
    }
}

fn demo(args: &DemoArgs, ctx: &mut Ctx) -> Result<DemoReport> {
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
        return Err(Error::internal(format!("after rollback these differ from the original: {differing:?}")));
    }
    Ok(DemoReport {
        dir: base.display().to_string(),
        snapshot,
        entries: before.len(),
        files: before.values().filter(|v| v.starts_with("file")).count(),
        identical: true,
    })
}

/// The walk: each step is a real command, run through the dispatcher.
fn steps(ctx: &mut Ctx, install: &Path) -> Result<String> {
    let scope = ScopeArgs::default();
    ctx.out.info("\n== 1. bwguard backup: archive, checksum, read back, then write the manifest");
    crate::run(
        &Command::Backup(BackupArgs {
            note: Some("demo".into()),
            level: None,
            prune: false,
            push: None,
            pause_db: false,
            max_downtime: None,
            scheduled: false,
            retention: Default::default(),
            scope,
        }),
        ctx,
    )?;
    ctx.out.info(
        "   (the line above, the id, is backup's only output on stdout: what `ID=$(bwguard backup)` keeps)",
    );
    ctx.out.info("\n== 2. bwguard enable-scim: snapshot first, then change exactly one line");
    let edit = EditArgs {
        add_missing: false,
        dry_run: false,
        apply: false,
        rollback_on_failure: false,
        bitwarden_sh: None,
        step_timeout: 3600,
        helm_values: None,
        scope,
    };
    let edited = crate::run(&Command::EnableScim(EnableScimArgs { edit }), ctx)?;
    let snapshot =
        edited.snapshot().ok_or_else(|| Error::internal("enable-scim took no snapshot"))?.to_string();
    ctx.out.info("\n== 3. bwguard diff: what changed in config.yml since that snapshot");
    crate::run(&Command::Diff(DiffArgs { id: Some(snapshot.clone()) }), ctx)?;
    ctx.out.info("\n== 4. bwguard verify --deep --all: every archive decompressed, every file checked");
    crate::run(
        &Command::Verify(VerifyArgs {
            ids: Vec::new(),
            all: true,
            deep: true,
            remote: None,
            identity: None,
            trust: Default::default(),
        }),
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
            pause_db: false,
            other_installation: false,
            trust: Default::default(),
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
        .filter_entry(|e| e.file_name() != DEFAULT_STORE_NAME);
    for item in walker {
        let item = item.map_err(|e| {
            let path = e.path().map(Path::to_path_buf).unwrap_or_default();
            Error::io("cannot read", path, e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk")))
        })?;
        let path = item.path();
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
        let rel = path.strip_prefix(install).unwrap_or(path).display().to_string();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default())
        } else if meta.is_file() {
            let d = hash_file(path, &Progress::hidden(0)).map_err(|e| Error::io("cannot read", path, e))?;
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
