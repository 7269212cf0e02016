//! `backup --pause-db`: a cold snapshot of a running server with seconds
//! of database downtime. Only the database container (`bitwarden-mssql`)
//! is stopped, through Docker as the install's owner; the other containers
//! stay up and reconnect when it is back (../shared facts: `docker stop`
//! gives SQL Server a clean shutdown).
//!
//! The database always comes back: before stopping it bwguard writes
//! [`JOURNAL`] into the store ("stopped by bwguard at T"), and removes it
//! only once Docker says the container runs again. A run killed in
//! between leaves the entry; every later writing run, `status` and `bwguard
//! resume-db` (the `ExecStopPost=` of the scheduled unit) find it and
//! start the container ([`recover`]). SIGINT, SIGTERM and SIGHUP during
//! the pause stop the snapshot (nothing half-made is kept) and the
//! database is started before bwguard exits. A container that was not
//! running before bwguard ran is left as it was.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::docker::{DATABASE, Docker};
use super::runas::RunAs;
use crate::context::Output;
use crate::engine::manifest::{DatabasePause, Manifest};
use crate::engine::progress::Abort;
use crate::engine::scope;
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::error::{Error, Failure, Refusal, Result};
use crate::files::{self, Ownership};
use crate::install::facts::{self, DatabaseMode};
use crate::install::{Install, live, preflight};
use crate::report::human::{human_age, human_size};

/// The entry in the store while bwguard has the database stopped.
pub const JOURNAL: &str = "database-paused.json";
/// The default of `--max-downtime`.
pub const DEFAULT_MAX_DOWNTIME: Duration = Duration::from_secs(10 * 60);
/// How long SQL Server gets to shut down cleanly before Docker kills it.
const STOP_GRACE_SECS: u64 = 120;
/// How long the files may stay open after `docker stop` returned.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// How long the engine gets to run and open its files again.
const BACK_WAIT: Duration = Duration::from_secs(180);
/// Throughput assumed when no earlier snapshot of this store was timed.
const ASSUMED_BYTES_PER_SEC: f64 = 100.0 * 1024.0 * 1024.0;

/// The journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// The container stopped.
    pub container: String,
    /// When, RFC 3339 UTC.
    pub stopped_at: String,
    /// The bwguard command that stopped it, and its pid.
    pub command: String,
    pub pid: u32,
}

impl Journal {
    /// The entry in `store`, if there is one.
    pub fn read(store: &Path) -> Result<Option<Journal>> {
        let path = store.join(JOURNAL);
        let bytes = match files::read_small(&path, 4096) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        let j: Journal = serde_json::from_slice(&bytes).map_err(|e| bad(&path, &e.to_string()))?;
        if j.container != DATABASE {
            return Err(bad(&path, &format!("it names the container {:?}", j.container)));
        }
        Ok(Some(j))
    }
}

fn bad(path: &Path, why: &str) -> Error {
    Error::failed(
        Failure::BadStateFile,
        format!("{} cannot be used: {}", path.display(), crate::report::human::one_line(why)),
        format!(
            "check that {DATABASE} runs (`docker start {DATABASE}` if not), then remove {} and run the command again",
            path.display()
        ),
    )
}

/// SIGINT, SIGTERM and SIGHUP caught while the database is stopped: they
/// set a flag the snapshot checks; once this value is dropped they act as
/// by default again.
pub struct Signals {
    caught: Arc<AtomicBool>,
    default: Arc<AtomicBool>,
}

impl Signals {
    /// Starts catching.
    pub fn catch() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s =
            Signals { caught: Arc::new(AtomicBool::new(false)), default: Arc::new(AtomicBool::new(false)) };
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // The default action first: armed once the pause is over.
            signal_hook::flag::register_conditional_default(sig, Arc::clone(&s.default))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&s.caught)))
                .map_err(|e| Error::io("cannot catch signals in", Path::new("bwguard"), e))?;
        }
        Ok(s)
    }

    /// Whether one came.
    pub fn caught(&self) -> bool {
        self.caught.load(Ordering::SeqCst)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.default.store(true, Ordering::SeqCst);
    }
}

/// The time a snapshot of `bytes` is expected to take, from the newest
/// timed snapshot in `store`, and how that was reckoned.
pub fn estimate(store: &Store, bytes: u64) -> (Duration, String) {
    let measured = store.list().ok().into_iter().flatten().find_map(|l| {
        let m = l.manifest.ok()?;
        let secs = m.read_seconds.filter(|s| *s > 0.0)?;
        let size = m.content_size();
        (size >= 1 << 20).then(|| (size as f64 / secs, m.id))
    });
    let (rate, basis) = match measured {
        Some((rate, id)) => (rate, format!("at the {}/s snapshot {id} was read at", human_size(rate as u64))),
        None => {
            (ASSUMED_BYTES_PER_SEC, format!("at an assumed {}/s", human_size(ASSUMED_BYTES_PER_SEC as u64)))
        }
    };
    (Duration::from_secs_f64(bytes as f64 / rate), basis)
}

/// Takes a cold snapshot with only the database container stopped, under
/// the store lock the caller holds (rule 6): refuses (exit 5) when the
/// estimate exceeds `limit`; stops the container (journaled); snapshots;
/// starts it as soon as every source is read, before the read-back; and
/// waits until the engine is back. On every failure, signal included, the
/// container is started again before this returns. A container that was not
/// running is left so, and the snapshot is an ordinary cold one.
pub fn take_paused(
    out: &mut Output,
    install: &Install,
    store: &Store,
    req: &mut Request,
    now: chrono::DateTime<Utc>,
    limit: Duration,
) -> Result<Manifest> {
    let who = pausable(install, "back it up without --pause-db (the database is backed up where it lives)")?;
    let docker = Docker::new(&who);
    if let Err(e) = docker.preflight() {
        // No Docker to ask, but nothing holds the database files: nothing
        // runs that could be paused, and the snapshot is cold as it is.
        if live::scan(&preflight::database_dir(install), Path::new("/proc")).holders.is_empty() {
            out.warn(format!("{e}; the database files are closed, so nothing is paused"));
            return snapshot::take(install, store, req, now);
        }
        return Err(e);
    }
    if let Err(how) = db_running(&docker) {
        out.info(format!("{DATABASE} {how}: nothing to pause, it is left as it is"));
        return snapshot::take(install, store, req, now);
    }
    let (_, sources) = scope::collect(install, &req.scope)?;
    let bytes: u64 = sources.iter().filter(|s| s.meta.is_file()).map(|s| s.meta.len()).sum();
    let (expected, basis) = estimate(store, bytes);
    if expected > limit {
        return Err(Error::refused(
            Refusal::DowntimeTooLong,
            format!(
                "the snapshot of {} would keep the database down about {} ({basis}), more than --max-downtime {}; \
                 nothing was stopped",
                human_size(bytes),
                human_age(expected.as_secs().max(1) as i64),
                human_age(limit.as_secs() as i64)
            ),
            "raise --max-downtime, or stop Bitwarden for a longer window and back up without --pause-db",
        ));
    }
    let signals = Signals::catch()?;
    let mut pause = Pause::stop(&docker, install, store)?;
    out.info(format!("{DATABASE} stopped; Bitwarden's other containers keep running"));
    req.abort = Abort { deadline: Some(pause.t0 + limit), flag: Some(Arc::clone(&signals.caught)) };
    let mut back: Option<std::result::Result<DatabasePause, String>> = None;
    let taken = if signals.caught() {
        Err(Error::Failed {
            kind: Failure::Interrupted,
            message: "interrupted before the snapshot began".into(),
            hint: None,
        })
    } else {
        snapshot::take_with(install, store, req, now, &mut || {
            let r = pause.resume();
            let record = r.as_ref().ok().cloned();
            back = Some(r);
            record
        })
    };
    let back = back.unwrap_or_else(|| pause.resume());
    let interrupted = signals.caught();
    drop(signals);
    let database = match &back {
        Ok(p) => {
            let secs = p.downtime_seconds.unwrap_or_default();
            out.info(format!("{DATABASE} runs again: the database was down {secs:.1} s"));
            None
        }
        Err(why) => Some(why.clone()),
    };
    let vault_down = |what: String, why: &str| Error::Failed {
        kind: Failure::DatabaseDown,
        message: format!("{what}; but {DATABASE} did not start again: {why}. THE VAULT IS DOWN"),
        hint: Some(start_hint(install)),
    };
    match taken {
        Ok(m) => match database {
            Some(why) => Err(vault_down(format!("snapshot {} was taken and read back", m.id), &why)),
            None if interrupted => Err(Error::Failed {
                kind: Failure::Interrupted,
                message: format!(
                    "interrupted after snapshot {} was taken and read back (it is kept); the database runs again",
                    m.id
                ),
                hint: None,
            }),
            None => Ok(m),
        },
        Err(e) => {
            let what = if interrupted {
                Error::failed(
                    Failure::Interrupted,
                    "interrupted by a signal while the database was stopped: no snapshot was kept",
                    "run the backup again",
                )
            } else if Instant::now() >= pause.t0 + limit {
                Error::failed(
                    Failure::DowntimeExceeded,
                    format!(
                        "the snapshot took longer than --max-downtime {}: it was abandoned, nothing was kept",
                        human_age(limit.as_secs() as i64)
                    ),
                    "raise --max-downtime, or stop Bitwarden for a longer window and back up without --pause-db",
                )
            } else {
                e
            };
            match database {
                Some(why) => Err(vault_down(what.to_string(), &why)),
                None => Err(what),
            }
        }
    }
}

/// Runs `f` (a rollback's check and restore) with only the database
/// container stopped, under the store lock the caller holds, and starts it
/// again afterwards, whatever `f` returned, unless `f` left a half-restored
/// tree (a rollback journal in the store): then the database stays
/// stopped, and the next writing run finishes or undoes the rollback before
/// it starts the database. A container that was not running is left so.
pub fn with_paused<T>(
    out: &mut Output,
    install: &Install,
    store: &Store,
    f: impl FnOnce(&mut Output) -> Result<T>,
) -> Result<(T, Option<DatabasePause>)> {
    let who = pausable(install, "roll back without --pause-db, with Bitwarden stopped")?;
    let docker = Docker::new(&who);
    docker.preflight()?;
    if let Err(how) = db_running(&docker) {
        out.info(format!("{DATABASE} {how}: nothing to pause, it is left as it is"));
        return f(out).map(|t| (t, None));
    }
    let signals = Signals::catch()?;
    let mut pause = Pause::stop(&docker, install, store)?;
    out.info(format!("{DATABASE} stopped; Bitwarden's other containers keep running"));
    let result = f(out);
    if store.root.join(crate::engine::restore::JOURNAL).exists() {
        drop(signals);
        let what = match &result {
            Err(e) => e.to_string(),
            Ok(_) => "the rollback left its journal".into(),
        };
        return Err(Error::Failed {
            kind: Failure::DatabaseDown,
            message: format!(
                "{what}; the install is half-restored, so {DATABASE} is left stopped (THE VAULT IS DOWN): the next \
                 bwguard run finishes or undoes the rollback, then starts it"
            ),
            hint: Some(format!("run `{} && bwguard resume-db`", install.cd_line())),
        });
    }
    let back = pause.resume();
    let interrupted = signals.caught();
    drop(signals);
    match (result, back) {
        (Ok(t), Ok(p)) => {
            out.info(format!(
                "{DATABASE} runs again: the database was down {:.1} s",
                p.downtime_seconds.unwrap_or_default()
            ));
            if interrupted {
                out.warn("a signal came during the rollback; it was finished first");
            }
            Ok((t, Some(p)))
        }
        (Ok(_), Err(why)) => Err(Error::Failed {
            kind: Failure::DatabaseDown,
            message: format!(
                "the rollback is done; but {DATABASE} did not start again: {why}. THE VAULT IS DOWN"
            ),
            hint: Some(start_hint(install)),
        }),
        (Err(e), Ok(_)) => Err(e),
        (Err(e), Err(why)) => Err(Error::Failed {
            kind: Failure::DatabaseDown,
            message: format!("{e}; and {DATABASE} did not start again: {why}. THE VAULT IS DOWN"),
            hint: Some(start_hint(install)),
        }),
    }
}

/// The user Docker's client runs as, once the install's database is the
/// built-in one (else refused, with `otherwise` as the hint).
fn pausable(install: &Install, otherwise: &str) -> Result<RunAs> {
    let mode = preflight::database_mode(install);
    let pausable = match mode {
        DatabaseMode::BuiltIn => true,
        // Once its volume is known: the snapshot holds the volume's files.
        DatabaseMode::DockerVolume => install.volume.is_some(),
        DatabaseMode::External => false,
    };
    if !pausable {
        return Err(Error::refused(
            Refusal::DatabaseElsewhere,
            format!(
                "--pause-db stops Bitwarden's built-in database container; this install's database is {}",
                mode.name()
            ),
            otherwise,
        ));
    }
    RunAs::owner_of(&install.dir).map_err(|e| Error::io("cannot read", &install.dir, e))
}

/// Whether the database container runs; else how it is, to say.
fn db_running(docker: &Docker) -> std::result::Result<(), String> {
    match docker.state(DATABASE) {
        Some(s) if s.status == "running" || s.status == "restarting" => Ok(()),
        Some(s) => Err(format!("is {}", s.status)),
        None => Err("does not exist (Bitwarden is stopped)".into()),
    }
}

/// How to bring the database back by hand.
fn start_hint(install: &Install) -> String {
    format!(
        "start it as a user with Docker access: `docker start {DATABASE}` (or `{} && {}`), then check with \
         `bwguard status`",
        install.cd_line(),
        install.script_line("restart")
    )
}

/// The database container stopped by this run.
struct Pause<'a> {
    docker: &'a Docker<'a>,
    install: &'a Install,
    journal: std::path::PathBuf,
    stopped_at: String,
    t0: Instant,
    /// What [`Pause::resume`] found, once it ran.
    done: Option<std::result::Result<DatabasePause, String>>,
}

impl<'a> Pause<'a> {
    /// Journals, stops the container and waits until no process holds the
    /// database files; on failure starts it again.
    fn stop(docker: &'a Docker<'a>, install: &'a Install, store: &Store) -> Result<Pause<'a>> {
        let stopped_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let journal = store.root.join(JOURNAL);
        let entry = Journal {
            container: DATABASE.into(),
            stopped_at: stopped_at.clone(),
            command: "backup --pause-db".into(),
            pid: std::process::id(),
        };
        let text = serde_json::to_vec_pretty(&entry).unwrap_or_default();
        files::write_atomic(&journal, &text, Ownership::mine(0o600))?;
        let mut pause = Pause { docker, install, journal, stopped_at, t0: Instant::now(), done: None };
        let stopped = docker.stop(DATABASE, STOP_GRACE_SECS).and_then(|()| pause.wait_closed());
        if let Err(why) = stopped {
            let back = pause.resume();
            let message = match back {
                Ok(_) => format!("{why}; no snapshot was taken, and {DATABASE} runs again"),
                Err(not) => format!("{why}; and {DATABASE} did not start again: {not}. THE VAULT IS DOWN"),
            };
            return Err(Error::Failed {
                kind: Failure::DatabaseStillRunning,
                message,
                hint: Some(start_hint(install)),
            });
        }
        Ok(pause)
    }

    /// Waits until Docker says the container stopped and no process holds
    /// the database files.
    fn wait_closed(&self) -> std::result::Result<(), String> {
        let dir = preflight::database_dir(self.install);
        let t = Instant::now();
        loop {
            let state = self.docker.state(DATABASE);
            let running = state.as_ref().is_some_and(|s| s.status == "running" || s.status == "restarting");
            let scan = live::scan(&dir, Path::new("/proc"));
            if !running && scan.holders.is_empty() {
                return Ok(());
            }
            if t.elapsed() >= CLOSE_WAIT {
                return Err(if running {
                    format!("{DATABASE} still runs after `docker stop`")
                } else {
                    format!("the database files are still open after {DATABASE} stopped: {}", scan.describe())
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the container (once: later calls return the first outcome),
    /// waits until it runs and the engine holds its files again, and
    /// removes the journal entry. The record is for the manifest.
    fn resume(&mut self) -> std::result::Result<DatabasePause, String> {
        if let Some(done) = &self.done {
            return done.clone();
        }
        let r = self.docker.start(DATABASE).and_then(|()| wait_back(self.docker, self.install));
        let r = r.map(|()| {
            let _ = files::remove_any(&self.journal).and_then(|()| files::sync_dir(&parent(&self.journal)));
            DatabasePause {
                container: DATABASE.into(),
                stopped_at: self.stopped_at.clone(),
                started_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
                downtime_seconds: Some((self.t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            }
        });
        self.done = Some(r.clone());
        r
    }
}

fn parent(p: &Path) -> std::path::PathBuf {
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Waits until the container runs (its health check passing, if it has
/// one) and a process holds the database files again.
fn wait_back(docker: &Docker, install: &Install) -> std::result::Result<(), String> {
    let dir = preflight::database_dir(install);
    let t = Instant::now();
    let first = docker.state(DATABASE).map_or(0, |s| s.restarts);
    loop {
        let state = docker.state(DATABASE);
        if state.as_ref().is_some_and(|s| s.ok()) && !live::scan(&dir, Path::new("/proc")).holders.is_empty()
        {
            return Ok(());
        }
        // Restarted twice by Docker while we watched, or stopped for good:
        // it will not come back by waiting.
        let looping = state.as_ref().is_some_and(|s| s.restarts >= first + 2);
        let gone = state.as_ref().is_none_or(|s| s.status == "exited" || s.status == "dead")
            && t.elapsed() >= Duration::from_secs(5);
        if looping || gone || t.elapsed() >= BACK_WAIT {
            let last =
                docker.last_log_line(DATABASE).map(|l| format!(" (its last line: {l})")).unwrap_or_default();
            return Err(match state {
                None => format!("{DATABASE} does not exist"),
                Some(s) if s.ok() && !looping => format!(
                    "{DATABASE} runs but its engine has not opened the database files after {} s{last}",
                    BACK_WAIT.as_secs()
                ),
                Some(s) => format!(
                    "{DATABASE} is {} after {:.0} s and {} restarts{last}",
                    s.status,
                    t.elapsed().as_secs_f64(),
                    s.restarts.saturating_sub(first)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finishes what a killed `backup --pause-db` left: when the store holds a
/// journal entry, starts the database container (unless it runs, or every
/// other container of Bitwarden is stopped too: then the admin stopped
/// Bitwarden and it is left so), waits until it is back and removes the
/// entry. The caller holds the store lock. Returns what it did, to say.
pub fn recover(install: &Install, store: &Store) -> Result<Option<String>> {
    let Some(entry) = Journal::read(&store.root)? else { return Ok(None) };
    let journal = store.root.join(JOURNAL);
    let who = RunAs::owner_of(&install.dir).map_err(|e| Error::io("cannot read", &install.dir, e))?;
    let docker = Docker::new(&who);
    let since = format!("stopped by an interrupted bwguard run (pid {}) at {}", entry.pid, entry.stopped_at);
    let down = |why: String| Error::Failed {
        kind: Failure::DatabaseDown,
        message: format!("{DATABASE} was {since} and could not be started: {why}. THE VAULT IS DOWN"),
        hint: Some(start_hint(install)),
    };
    docker.preflight().map_err(|e| down(e.to_string()))?;
    let said = match docker.state(DATABASE) {
        // Running is not enough: with `restart: always` a container whose
        // engine cannot start is "running" for a moment between restarts.
        Some(s) if s.status == "running" => {
            wait_back(&docker, install).map_err(down)?;
            format!("{DATABASE} was {since}; it runs again")
        }
        _ if !others_run(&docker, install) => {
            format!(
                "{DATABASE} was {since}; Bitwarden's other containers are stopped too, so it is left stopped"
            )
        }
        _ => {
            docker.start(DATABASE).and_then(|()| wait_back(&docker, install)).map_err(down)?;
            format!("started {DATABASE}, which was {since}")
        }
    };
    files::remove_any(&journal)?;
    files::sync_dir(&store.root)?;
    Ok(Some(said))
}

/// Whether any container of the install's compose file but the database runs.
fn others_run(docker: &Docker, install: &Install) -> bool {
    let compose = install.data.join("docker/docker-compose.yml");
    let Ok(text) = files::read_small_text(&compose, files::SMALL_CAP) else { return false };
    facts::compose_containers(&text)
        .iter()
        .filter(|c| *c != DATABASE)
        .any(|c| docker.state(c).is_some_and(|s| s.status == "running"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_read_strictly() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Journal::read(t.path()).unwrap(), None);
        let good = r#"{"container":"bitwarden-mssql","stopped_at":"2026-12-02T00:00:00.000Z","command":"backup --pause-db","pid":7}"#;
        std::fs::write(t.path().join(JOURNAL), good).unwrap();
        assert_eq!(Journal::read(t.path()).unwrap().unwrap().pid, 7);
        for bad in [
            r#"{"container":"bitwarden-nginx","stopped_at":"x","command":"c","pid":7}"#,
            r#"{"container":"bitwarden-mssql","stopped_at":"x","command":"c","pid":7,"run":"rm -rf /"}"#,
            "not json",
        ] {
            std::fs::write(t.path().join(JOURNAL), bad).unwrap();
            assert!(Journal::read(t.path()).is_err(), "{bad}");
        }
    }
}
