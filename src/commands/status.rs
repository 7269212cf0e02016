//! `status`: the state of the install and of the store. Read-only, no
//! lock, with one exception: a database container that an interrupted
//! `backup --pause-db` left stopped is started (under the lock).

use std::path::Path;

use super::Run;
use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::restore::{self, Journal};
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Failure, Result};
use crate::files;
use crate::install::config::Config;
use crate::install::{facts, live, preflight};
use crate::offsite::remote::Remotes;
use crate::procedure::pause;
use crate::report::StatusReport;
use crate::report::human::{age, human_age};
use crate::report::{FreeBytes, HolderDoc, Newest, RemoteDoc};

impl Run for StatusArgs {
    type Report = StatusReport;

    fn run(&self, ctx: &mut Ctx) -> Result<StatusReport> {
        let install = ctx.install()?;
        let store = install.open_store()?;
        // A database container an interrupted `backup --pause-db` stopped is
        // started here too; one a running backup has paused is only named.
        let database_paused = match pause::Journal::read(&store.root) {
            Ok(Some(entry)) => match ctx.begin_write(&install, "status") {
                Ok(_) => None,
                Err(Error::Busy { holder, .. }) => Some(format!(
                    "{} stopped it at {} and holds the store ({holder})",
                    entry.command, entry.stopped_at
                )),
                Err(e) => Some(e.to_string()),
            },
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        };
        let info = facts::read_info(&install);
        let config = files::read_small(&install.config_path(), files::SMALL_CAP)
            .map_err(|e| e.to_string())
            .and_then(|b| Config::parse(&b).map_err(|e| e.to_string()));
        let (enable_scim, enable_scim_problem) = match &config {
            Ok(c) if !c.has("enable_scim") => {
                (None, Some("absent (run `./bitwarden.sh update` first)".into()))
            }
            Ok(c) => match c.bool_value("enable_scim") {
                Some(b) => (Some(b), None),
                None => {
                    (None, Some(format!("unreadable value {:?}", c.raw("enable_scim").unwrap_or_default())))
                }
            },
            Err(e) => (None, Some(format!("config.yml unreadable: {e}"))),
        };
        // The database's Docker volume, where Docker names one this user can
        // read; status asks and never fails for it.
        let mut install = install;
        if let Err(e) = crate::procedure::volume::attach(&mut install, false) {
            ctx.out.detail(format!("the database's Docker volume is not known: {e}"));
        }
        let scan = live::scan(&preflight::database_dir(&install), Path::new("/proc"));
        let listed = store.list()?;
        let newest = listed.iter().find_map(|l| l.manifest.as_ref().ok()).map(|m| Newest {
            id: m.id.clone(),
            created: m.created.clone(),
            reason: m.reason.clone(),
            age_seconds: age(m, ctx.now),
            database_pause: m.database_pause.clone(),
        });
        let journal = Journal::read(&store).ok().flatten();
        let orphans = if journal.is_none() { restore::orphan_staging(&install) } else { Vec::new() };
        let remotes = Remotes::load(&store.root).map(|r| r.remotes).unwrap_or_default();
        let mut report = StatusReport {
            install_dir: install.dir.display().to_string(),
            data_dir: install.data.display().to_string(),
            database: info.database.clone(),
            bitwarden: info,
            enable_scim,
            enable_scim_problem,
            database_files_open: !scan.holders.is_empty(),
            database_holders: scan
                .holders
                .iter()
                .map(|h| HolderDoc {
                    pid: h.pid,
                    command: h.command.clone(),
                    file: h.file.display().to_string(),
                })
                .collect(),
            processes_not_inspected: scan.unreadable,
            as_root: files::is_root(),
            store: store.root.display().to_string(),
            snapshots: listed.len(),
            newest,
            free_bytes: FreeBytes {
                data: files::free_space(&install.data).ok(),
                store: files::free_space(if store.root.exists() { &store.root } else { &install.dir }).ok(),
            },
            remotes: remotes.iter().map(|(n, r)| RemoteDoc { name: n.clone(), url: r.url.clone() }).collect(),
            interrupted_rollback: journal.map(|j| j.id),
            incomplete_snapshots: store.incomplete()?,
            orphan_staging: orphans.iter().map(|p| p.display().to_string()).collect(),
            database_paused,
            newest_good: None,
        };
        ctx.out.show(&report);
        report.newest_good = self.max_age.map(|max| newest_good(&store, max, ctx)).transpose()?;
        if let Some(g) = &report.newest_good {
            ctx.out.info(format!(
                "max-age ok: the newest good snapshot is {} old",
                g.age_seconds.map(human_age).unwrap_or_else(|| "?".into())
            ));
        }
        Ok(report)
    }
}

/// The newest snapshot that passes verification, if it is at most `max`
/// seconds old; else fails (exit 1): the monitoring check for scheduled
/// backups.
fn newest_good(store: &Store, max: u64, ctx: &mut Ctx) -> Result<Newest> {
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
            return Err(Error::failed(
                Failure::StaleBackups,
                format!(
                    "the newest good snapshot, {}, is {} old: older than the {} allowed",
                    m.id,
                    human_age(age),
                    human_age(max as i64)
                ),
                hint,
            ));
        }
        return Ok(Newest {
            id: m.id.clone(),
            created: m.created.clone(),
            reason: m.reason.clone(),
            age_seconds: Some(age),
            database_pause: m.database_pause.clone(),
        });
    }
    Err(Error::failed(Failure::StaleBackups, format!("no good snapshot in {}", store.root.display()), hint))
}
