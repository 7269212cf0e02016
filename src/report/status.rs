//! The document of `status`: the install and the store, read without a lock.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Render;
use super::human::{human_age, human_size};
use crate::context::Output;
use crate::engine::manifest::BitwardenInfo;

/// `status`: the install and the store, read without a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The install directory.
    pub install_dir: String,
    /// The data directory.
    pub data_dir: String,
    /// Versions, images, SCIM and database mode read from the install.
    pub bitwarden: BitwardenInfo,
    /// `enable_scim` as Setup reads it; null when absent or unreadable.
    pub enable_scim: Option<bool>,
    /// Why `enable_scim` is null.
    pub enable_scim_problem: Option<String>,
    /// `built-in`, `external` or `docker-volume`.
    pub database: String,
    /// Whether a process has the database files open.
    pub database_files_open: bool,
    /// The processes that do.
    pub database_holders: Vec<HolderDoc>,
    /// Processes whose open files could not be inspected.
    pub processes_not_inspected: usize,
    /// Whether bwguard ran as root (and so saw every process).
    pub as_root: bool,
    /// The store.
    pub store: String,
    /// Complete snapshots in it.
    pub snapshots: usize,
    /// The newest of them.
    pub newest: Option<Newest>,
    /// Snapshots kept from pruning (those taken before a change or a
    /// rollback, and those pinned by hand), and the bytes they hold.
    pub pinned: Pinned,
    /// Free bytes where the data directory and the store are.
    pub free_bytes: FreeBytes,
    /// The remotes set up.
    pub remotes: Vec<RemoteDoc>,
    /// The snapshot an interrupted rollback was restoring.
    pub interrupted_rollback: Option<String>,
    /// What the next writing run does with it: `undo` (it was still
    /// staging; the install is untouched) or `finish` (it was swapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_rollback_next: Option<String>,
    /// Snapshot directories left by interrupted runs.
    pub incomplete_snapshots: Vec<String>,
    /// Rollback staging directories no journal accounts for.
    pub orphan_staging: Vec<String>,
    /// The database container bwguard has stopped (`backup --pause-db`)
    /// and why it is not back: a run that is pausing it now, or a start
    /// that failed. A pause an interrupted run left is ended by `status`
    /// itself, and is then not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_paused: Option<String>,
    /// With `--max-age`: the newest snapshot that counts and passes
    /// verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_good: Option<Newest>,
    /// With `--max-age`: the verdict of the check (the run exits 1 when it
    /// fails, the document printed all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<MaxAge>,
}

/// What the pinned snapshots hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pinned {
    /// How many snapshots are pinned.
    pub count: usize,
    /// Bytes of their archives in the store.
    pub bytes: u64,
}

/// The verdict of `status --max-age`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaxAge {
    /// Whether a counted snapshot is young enough.
    pub ok: bool,
    /// The age allowed, in seconds.
    pub max_age_seconds: u64,
    /// Which snapshots count.
    pub counts: String,
    /// The verdict in one line.
    pub message: String,
}

/// A process holding a database file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderDoc {
    /// Its pid.
    pub pid: u32,
    /// Its command name.
    pub command: String,
    /// The file it holds.
    pub file: String,
}

/// A snapshot named by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Newest {
    /// Its id.
    pub id: String,
    /// When it was taken.
    pub created: String,
    /// Why.
    pub reason: String,
    /// Seconds since then.
    pub age_seconds: Option<i64>,
    /// Taken with `--pause-db`: the database container's pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pause: Option<crate::engine::manifest::DatabasePause>,
}

/// Free space, in bytes (null when unreadable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeBytes {
    /// On the data directory's filesystem.
    pub data: Option<u64>,
    /// On the store's.
    pub store: Option<u64>,
}

/// A remote named by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDoc {
    /// Its name.
    pub name: String,
    /// Its `s3://BUCKET/PREFIX`.
    pub url: String,
}

impl Render for StatusReport {
    fn render(&self, out: &mut Output) {
        // A monitoring check wants one line: with -q, just the verdict.
        if let Some(check) = &self.max_age
            && out.quiet()
        {
            out.result(&check.message);
            return;
        }
        if out.quiet() {
            out.result(self.one_line());
            self.warnings(out);
            return;
        }
        let info = &self.bitwarden;
        out.result(format!("install      {}", self.install_dir));
        out.result(format!("data dir     {}", self.data_dir));
        out.result(format!(
            "bitwarden    {} (web {})",
            info.core_version.as_deref().unwrap_or("unknown"),
            info.web_version.as_deref().unwrap_or("unknown")
        ));
        if let Some(db) = info.images.get("mssql") {
            out.result(format!("db image     {db}"));
        }
        let scim = match (self.enable_scim, &self.enable_scim_problem) {
            (Some(b), _) => b.to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => "unknown".into(),
        };
        out.result(format!("enable_scim  {scim}"));
        out.result(format!("database     {}", self.database));
        // -v: every image the install pins, and who holds what.
        for (service, image) in &info.images {
            out.detail(format!("  image      {service}: {image}"));
        }
        if let Some(kc) = &info.key_connector_version {
            out.detail(format!("  key connector {kc}"));
        }
        for h in &self.database_holders {
            out.detail(format!("  holder     {} (pid {}): {}", h.command, h.pid, h.file));
        }
        let files = if self.database_files_open {
            let held: Vec<String> = self
                .database_holders
                .iter()
                .map(|h| {
                    let name = Path::new(&h.file).file_name().map(|n| n.to_string_lossy().into_owned());
                    format!("{} (pid {}) has {} open", h.command, h.pid, name.unwrap_or_default())
                })
                .collect();
            format!("OPEN: {} (stop Bitwarden before a backup or rollback)", held.join("; "))
        } else if self.processes_not_inspected > 0 && !self.as_root {
            "not open by any process this user can see (run as root to check all)".to_string()
        } else if self.processes_not_inspected > 0 {
            let n = self.processes_not_inspected;
            format!("closed ({n} {} could not be inspected)", if n == 1 { "process" } else { "processes" })
        } else {
            "closed".to_string()
        };
        out.result(format!("db files     {files}"));
        out.result(format!("store        {} ({} snapshots)", self.store, self.snapshots));
        match &self.newest {
            Some(n) => out.result(format!(
                "newest       {} ({} ago, {}{})",
                n.id,
                n.age_seconds.map(human_age).unwrap_or_else(|| "?".into()),
                n.reason,
                super::snapshots::paused(n.database_pause.as_ref())
            )),
            None => out.result("newest       none: take one with `bwguard backup`"),
        }
        if self.pinned.count > 0 {
            out.result(format!(
                "pinned       {} {}, {} (never pruned; `bwguard unpin ID` releases)",
                self.pinned.count,
                if self.pinned.count == 1 { "snapshot" } else { "snapshots" },
                human_size(self.pinned.bytes)
            ));
        }
        if !self.remotes.is_empty() {
            let names: Vec<String> = self.remotes.iter().map(|r| format!("{} ({})", r.name, r.url)).collect();
            out.result(format!(
                "remotes      {} (`bwguard list --remote NAME` shows the copies)",
                names.join(", ")
            ));
        }
        let size = |b: Option<u64>| b.map(human_size).unwrap_or_else(|| "?".into());
        out.result(format!(
            "free space   data {}, store {}",
            size(self.free_bytes.data),
            size(self.free_bytes.store)
        ));
        self.warnings(out);
        if let Some(check) = &self.max_age {
            out.result(&check.message);
        }
    }
}

impl StatusReport {
    /// `-q`: the state in one line.
    fn one_line(&self) -> String {
        let files = if self.database_files_open { "database files OPEN" } else { "database files closed" };
        let newest = match &self.newest {
            Some(n) => format!(
                "newest {} ({} ago, {})",
                n.id,
                n.age_seconds.map(human_age).unwrap_or_else(|| "?".into()),
                n.reason
            ),
            None => "no snapshot".into(),
        };
        let n = self.snapshots;
        format!(
            "bitwarden {}, enable_scim {}, {files}; {n} {}, {newest}; store free {}",
            self.bitwarden.core_version.as_deref().unwrap_or("unknown"),
            self.enable_scim.map_or("unknown".to_string(), |b| b.to_string()),
            if n == 1 { "snapshot" } else { "snapshots" },
            self.free_bytes.store.map(human_size).unwrap_or_else(|| "?".into())
        )
    }

    /// What needs the admin's attention, on stderr.
    fn warnings(&self, out: &mut Output) {
        if let Some(why) = &self.database_paused {
            out.warn(format!("database paused: {why}"));
        }
        if let Some(id) = &self.interrupted_rollback {
            let next = match self.interrupted_rollback_next.as_deref() {
                Some("undo") => "undo it (it had not changed the install yet)",
                _ => "finish it (it was swapping parts in)",
            };
            out.warn(format!(
                "a rollback to {id} was interrupted; the next bwguard command that writes will {next}"
            ));
        }
        for o in &self.orphan_staging {
            out.warn(format!("{o} is left from a rollback that no journal in this store accounts for"));
        }
        if !self.incomplete_snapshots.is_empty() {
            out.warn(format!(
                "incomplete snapshots left by an interrupted run: {} (the next writing run removes them)",
                self.incomplete_snapshots.join(", ")
            ));
        }
    }
}
