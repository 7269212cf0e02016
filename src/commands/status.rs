//! `status`: the state of the install and of the store. Read-only, no
//! lock, with one exception: a database container that an interrupted
//! `backup --pause-db` left stopped is started (under the lock).

use std::path::Path;

use super::Run;
use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::engine::manifest::Manifest;
use crate::engine::progress::Progress;
use crate::engine::restore::{self, Journal};
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Result};
use crate::files;
use crate::install::config::Config;
use crate::install::{Install, VOLUME_PART, facts, live, preflight};
use crate::offsite::remote::Remotes;
use crate::procedure::pause;
use crate::report::StatusReport;
use crate::report::human::{age, human_age};
use crate::report::{FreeBytes, HolderDoc, MaxAge, Newest, Pinned, RemoteDoc};

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
        let installation = info.installation_id.clone();
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
            pinned: listed.iter().filter_map(|l| l.manifest.as_ref().ok()).filter(|m| m.pinned).fold(
                Pinned::default(),
                |p, m| Pinned { count: p.count + 1, bytes: p.bytes.saturating_add(m.archive.size) },
            ),
            newest,
            free_bytes: FreeBytes {
                data: files::free_space(&install.data).ok(),
                store: files::free_space(if store.root.exists() { &store.root } else { &install.dir }).ok(),
            },
            remotes: remotes.iter().map(|(n, r)| RemoteDoc { name: n.clone(), url: r.url.clone() }).collect(),
            interrupted_rollback_next: journal
                .as_ref()
                .map(|j| if j.phase == restore::Phase::Staging { "undo" } else { "finish" }.to_string()),
            interrupted_rollback: journal.map(|j| j.id),
            incomplete_snapshots: store.incomplete()?,
            orphan_staging: orphans.iter().map(|p| p.display().to_string()).collect(),
            database_paused,
            newest_good: None,
            max_age: None,
        };
        if let Some(max) = self.max_age {
            let (good, check) = newest_good(&install, installation.as_deref(), &store, max, ctx)?;
            report.newest_good = good;
            report.max_age = Some(check);
        }
        ctx.out.show(&report);
        Ok(report)
    }
}

/// Which snapshots `--max-age` counts, in words.
const COUNTS: &str = "cold snapshots (paused ones included) of this install's database and settings \
                      (backup's default, --with-attachments or --full scope), passing verification; \
                      live, partial (before rollback) and Helm snapshots do not count";

/// Whether snapshot `m` counts for `--max-age`: cold (a paused one is
/// cold), a whole scope rather than the parts a rollback replaced, of this
/// install, and, for a Docker-volume install, holding the volume.
fn counts(m: &Manifest, install: &Install) -> bool {
    let whole = matches!(m.scope.as_str(), "default" | "with-attachments" | "full");
    let database = m.bitwarden.database != "docker-volume" || m.parts.iter().any(|p| p.path == VOLUME_PART);
    m.consistency == "cold" && whole && database && m.install_dir == install.dir.display().to_string()
}

/// Seconds a creation time may lie ahead of the clock (skew between a
/// snapshot's clock reading and this one's) before it is not believed.
const FUTURE_SLACK: i64 = 300;

/// The newest snapshot that counts (see [`counts`]) and passes
/// verification, and the verdict: ok when it is at most `max` seconds
/// old. The monitoring check for scheduled backups.
fn newest_good(
    install: &Install,
    installation: Option<&str>,
    store: &Store,
    max: u64,
    ctx: &mut Ctx,
) -> Result<(Option<Newest>, MaxAge)> {
    let verdict =
        |ok: bool, message: String| MaxAge { ok, max_age_seconds: max, counts: COUNTS.into(), message };
    for l in store.list()? {
        let Ok(m) = &l.manifest else { continue };
        if !counts(m, install) || m.of_other_installation(installation) {
            continue;
        }
        if check_files(&store.dir(&m.id), m, false, &Progress::hidden(m.archive.size)).is_err() {
            ctx.out.warn(format!("snapshot {} fails verification; looking at older ones", m.id));
            continue;
        }
        let age = age(m, ctx.now).unwrap_or(i64::MAX);
        // Taken with a clock ahead (or the clock stepped back since): it
        // would look fresh until real time caught up, whether or not
        // backups still run.
        if age < -FUTURE_SLACK {
            ctx.out.warn(format!(
                "snapshot {} was created at {}, {} in the future: the clock was ahead then or is behind now; it does not count",
                m.id,
                m.created,
                human_age(-age)
            ));
            continue;
        }
        let newest = Newest {
            id: m.id.clone(),
            created: m.created.clone(),
            reason: m.reason.clone(),
            age_seconds: Some(age),
            database_pause: m.database_pause.clone(),
        };
        let ok = age <= max as i64;
        let message = format!(
            "{}: the newest good backup, {}, is {} old (at most {} allowed)",
            if ok { "OK" } else { "STALE" },
            m.id,
            human_age(age),
            human_age(max as i64)
        );
        return Ok((Some(newest), verdict(ok, message)));
    }
    let message = format!(
        "STALE: no good backup in {} counts (only cold backups of the whole install do; see `bwguard list`)",
        store.root.display()
    );
    Ok((None, verdict(false, message)))
}
