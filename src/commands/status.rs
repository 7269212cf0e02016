//! `status`: the state of the install and of the store. Read-only: no lock.

use std::fs;

use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::{human_age, human_size};
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::restore::Journal;
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Result};
use crate::files;
use crate::install::config::Config;
use crate::install::facts;
use crate::report::human::age;

/// Runs `status`.
pub fn run(args: &StatusArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let info = facts::read_info(&install);
    let config = fs::read(install.config_path())
        .map_err(|e| e.to_string())
        .and_then(|b| Config::parse(&b).map_err(|e| e.to_string()));
    let scim = match &config {
        Ok(c) if !c.has("enable_scim") => "absent (run `./bitwarden.sh update` first)".to_string(),
        Ok(c) => match c.bool_value("enable_scim") {
            Some(true) => "true".into(),
            Some(false) => "false".into(),
            None => format!("unreadable value {:?}", c.raw("enable_scim").unwrap_or_default()),
        },
        Err(e) => format!("config.yml unreadable: {e}"),
    };
    let scan = crate::install::live::scan(
        &crate::install::preflight::database_dir(&install),
        std::path::Path::new("/proc"),
    );
    let open = !scan.holders.is_empty();
    let listed = store.list()?;
    let newest = listed.iter().find_map(|l| l.manifest.as_ref().ok());
    let journal = Journal::read(&store).ok().flatten();
    let incomplete = store.incomplete()?;
    let free_data = files::free_space(&install.data).ok();
    let free_store = files::free_space(if store.root.exists() { &store.root } else { &install.dir }).ok();

    let out = &mut ctx.out;
    out.result(format!("install      {}", install.dir.display()));
    out.result(format!("data dir     {}", install.data.display()));
    out.result(format!(
        "bitwarden    {} (web {})",
        info.core_version.as_deref().unwrap_or("unknown"),
        info.web_version.as_deref().unwrap_or("unknown")
    ));
    if let Some(db) = info.images.get("mssql") {
        out.result(format!("db image     {db}"));
    }
    out.result(format!("enable_scim  {scim}"));
    out.result(format!("database     {}", info.database));
    out.result(format!(
        "db files     {}",
        if open {
            format!("OPEN: {} (stop Bitwarden before a backup or rollback)", scan.describe())
        } else if scan.unreadable > 0 && !crate::files::is_root() {
            "not open by any process this user can see (run as root to check all)".to_string()
        } else if scan.unreadable > 0 {
            format!("closed ({} processes could not be inspected)", scan.unreadable)
        } else {
            "closed".to_string()
        }
    ));
    out.result(format!("store        {} ({} snapshots)", store.root.display(), listed.len()));
    match newest {
        Some(m) => out.result(format!(
            "newest       {} ({} ago, {})",
            m.id,
            age(m, ctx.now).map(human_age).unwrap_or_else(|| "?".into()),
            m.reason
        )),
        None => out.result("newest       none: take one with `bwguard backup`"),
    }
    let remotes = crate::offsite::remote::Remotes::load(&store.root).map(|r| r.remotes).unwrap_or_default();
    if !remotes.is_empty() {
        let names: Vec<String> = remotes.iter().map(|(n, r)| format!("{n} ({})", r.url)).collect();
        out.result(format!(
            "remotes      {} (`bwguard list --remote NAME` shows the copies)",
            names.join(", ")
        ));
    }
    out.result(format!(
        "free space   data {}, store {}",
        free_data.map(human_size).unwrap_or_else(|| "?".into()),
        free_store.map(human_size).unwrap_or_else(|| "?".into())
    ));
    if let Some(j) = &journal {
        out.warn(format!(
            "a rollback to {} was interrupted; the next bwguard command that writes will finish it",
            j.id
        ));
    }
    let orphans =
        if journal.is_none() { crate::engine::restore::orphan_staging(&install) } else { Vec::new() };
    for o in &orphans {
        out.warn(format!(
            "{} is left from a rollback that no journal in this store accounts for",
            o.display()
        ));
    }
    if !incomplete.is_empty() {
        out.warn(format!(
            "incomplete snapshot(s) left by an interrupted run: {} (the next backup removes them)",
            incomplete.join(", ")
        ));
    }
    if let Some(max) = args.max_age {
        check_max_age(&store, max, ctx)?;
    }
    Ok(json!({
        "install_dir": install.dir.display().to_string(),
        "data_dir": install.data.display().to_string(),
        "bitwarden": info,
        "enable_scim": config.as_ref().ok().and_then(|c| c.bool_value("enable_scim")),
        "database": info.database,
        "database_files_open": open,
        "database_holders": scan.holders.iter().map(|h| json!({"pid": h.pid, "command": h.command, "file": h.file})).collect::<Vec<_>>(),
        "store": store.root.display().to_string(),
        "snapshots": listed.len(),
        "newest": newest.map(|m| json!({"id": m.id, "created": m.created, "reason": m.reason, "age_seconds": age(m, ctx.now)})),
        "free_bytes": {"data": free_data, "store": free_store},
        "remotes": remotes.keys().collect::<Vec<_>>(),
        "interrupted_rollback": journal.map(|j| j.id),
        "incomplete_snapshots": incomplete,
        "orphan_staging": orphans.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    }))
}

/// Fails (exit 1) unless a snapshot that passes verification is at most
/// `max` seconds old: the monitoring check for scheduled backups.
fn check_max_age(store: &Store, max: u64, ctx: &mut Ctx) -> Result<()> {
    let hint = "look at the scheduled backups: `systemctl status bwguard-backup.timer` and \
                `journalctl -u bwguard-backup` (or the cron mail)";
    for l in store.list()? {
        let Ok(m) = &l.manifest else { continue };
        if check_files(&store.dir(&m.id), m, false, &Progress::hidden(m.archive.size)).is_err() {
            ctx.out.warn(format!("snapshot {} fails verification; looking at older ones", m.id));
            continue;
        }
        let age = age(m, ctx.now).unwrap_or(i64::MAX);
        if age > max as i64 {
            return Err(Error::Failed {
                message: format!(
                    "the newest good snapshot, {}, is {} old: older than the {} allowed",
                    m.id,
                    human_age(age),
                    human_age(max as i64)
                ),
                hint: Some(hint.into()),
            });
        }
        ctx.out.info(format!("max-age ok: the newest good snapshot is {} old", human_age(age)));
        return Ok(());
    }
    Err(Error::Failed {
        message: format!("no good snapshot in {}", store.root.display()),
        hint: Some(hint.into()),
    })
}
