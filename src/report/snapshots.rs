//! Documents about snapshots in the local store: `backup`, `list`,
//! `verify`, `diff`, `rollback`, `prune`, `pin`, `unpin`, `forget`,
//! `status`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Render;
use super::human::{human_age, human_size};
use super::offsite::{PushReport, RemoteListReport};
use super::table::table;
use crate::context::Output;
use crate::engine::manifest::{BitwardenInfo, Manifest};
use crate::offsite::RemoteManifest;
use crate::schedule::retention::Policy;

/// A snapshot just written and read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotReport {
    /// Its id.
    pub id: String,
    /// Its directory in the store.
    pub path: String,
    /// Why it was taken (`manual`, `scheduled`, `before enable-scim`, …).
    pub reason: String,
    /// `default`, `with-attachments`, `full`, `partial` or `files`.
    pub scope: String,
    /// `cold` or `live`.
    pub consistency: String,
    /// Files that changed while a live snapshot read them.
    pub changed_while_reading: Vec<String>,
    /// Regular files it holds.
    pub files: usize,
    /// Bytes of those files.
    pub content_size: u64,
    /// Bytes of its `data.tar.gz`.
    pub archive_size: u64,
    /// SHA-256 of its `data.tar.gz`.
    pub archive_sha256: String,
    /// Always true: a snapshot is only reported once it was read back.
    pub verified: bool,
}

impl SnapshotReport {
    /// The report of snapshot `m`, written in `dir`.
    pub fn of(m: &Manifest, dir: &Path) -> Self {
        SnapshotReport {
            id: m.id.clone(),
            path: dir.display().to_string(),
            reason: m.reason.clone(),
            scope: m.scope.clone(),
            consistency: m.consistency.clone(),
            changed_while_reading: m.changed_while_reading.clone(),
            files: m.entries.iter().filter(|e| e.sha256.is_some()).count(),
            content_size: m.content_size(),
            archive_size: m.archive.size,
            archive_sha256: m.archive.sha256.clone(),
            verified: true,
        }
    }
}

impl Render for SnapshotReport {
    fn render(&self, out: &mut Output) {
        out.info(format!(
            "Snapshot {} written and read back: {} files, {} archived into {}",
            self.id,
            self.files,
            human_size(self.content_size),
            human_size(self.archive_size)
        ));
        if self.consistency == "live" {
            let changed = if self.changed_while_reading.is_empty() {
                String::new()
            } else {
                format!("; changed while read: {}", self.changed_while_reading.join(", "))
            };
            out.warn(format!(
                "snapshot {} is live: SQL Server had the database files open, so it is crash-consistent at best{changed}",
                self.id
            ));
        }
    }
}

/// `backup`: the snapshot, and what `--push` and `--prune` did after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupReport {
    /// The snapshot taken.
    #[serde(flatten)]
    pub snapshot: SnapshotReport,
    /// With `--push`: the copies sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
    /// With `--prune`: the retention decisions (absent when no policy was
    /// given or saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
}

/// `list`: the local store's snapshots, or with `--remote` a remote's copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListReport {
    /// The local store.
    Store(StoreList),
    /// A remote.
    Remote(RemoteListReport),
}

impl Render for ListReport {
    fn render(&self, out: &mut Output) {
        match self {
            ListReport::Store(l) => l.render(out),
            ListReport::Remote(l) => l.render(out),
        }
    }
}

/// The snapshots of the local store, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreList {
    /// The store.
    pub store: String,
    /// Its complete snapshots.
    pub snapshots: Vec<Listing>,
}

/// One listed snapshot: readable, or damaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Listing {
    /// A snapshot whose manifest reads.
    Snapshot(Box<SnapshotListing>),
    /// A snapshot whose manifest does not.
    Damaged {
        /// Its id.
        id: String,
        /// Why its manifest cannot be read.
        damaged: String,
    },
}

/// A listed snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotListing {
    /// Its id.
    pub id: String,
    /// When it was taken (RFC 3339 UTC).
    pub created: String,
    /// Seconds since then (negative if the clock went back).
    pub age_seconds: Option<i64>,
    /// Why it was taken.
    pub reason: String,
    /// The user's note.
    pub note: Option<String>,
    /// Kept from pruning.
    pub pinned: bool,
    /// Bytes of its `data.tar.gz`.
    pub archive_size: u64,
    /// Bytes of the files it holds.
    pub content_size: u64,
    /// Which parts it covers.
    pub scope: String,
    /// `cold` or `live`.
    pub consistency: String,
    /// What was read about Bitwarden when it was taken.
    pub bitwarden: BitwardenInfo,
}

impl SnapshotListing {
    /// The listing of snapshot `m`, `age` seconds old.
    pub fn of(m: &Manifest, age: Option<i64>) -> Self {
        SnapshotListing {
            id: m.id.clone(),
            created: m.created.clone(),
            age_seconds: age,
            reason: m.reason.clone(),
            note: m.note.clone(),
            pinned: m.pinned,
            archive_size: m.archive.size,
            content_size: m.content_size(),
            scope: m.scope.clone(),
            consistency: m.consistency.clone(),
            bitwarden: m.bitwarden.clone(),
        }
    }
}

impl Render for StoreList {
    fn render(&self, out: &mut Output) {
        if self.snapshots.is_empty() {
            out.info(format!("No snapshots in {}. Take one with `bwguard backup`.", self.store));
            return;
        }
        let mut rows = vec![
            ["ID", "AGE", "REASON", "SIZE", "PINNED", "VERSION", "SCIM", "CONSISTENCY"].map(String::from),
        ];
        for l in &self.snapshots {
            rows.push(match l {
                Listing::Snapshot(s) => [
                    s.id.clone(),
                    s.age_seconds.map(human_age).unwrap_or_else(|| "?".into()),
                    s.reason.clone() + &s.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                    human_size(s.archive_size),
                    if s.pinned { "yes" } else { "no" }.into(),
                    s.bitwarden.core_version.clone().unwrap_or_else(|| "?".into()),
                    s.bitwarden.enable_scim.map_or("?", |b| if b { "on" } else { "off" }).into(),
                    s.consistency.clone(),
                ],
                Listing::Damaged { id, damaged } => {
                    let mut row: [String; 8] = Default::default();
                    row[0] = id.clone();
                    row[1] = "?".into();
                    row[2] = format!("DAMAGED: {damaged}");
                    row
                }
            });
        }
        for line in table(&rows) {
            out.result(line);
        }
    }
}

/// `verify`: each snapshot checked, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyReport {
    /// With `--remote`: the remote checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// `checksums` or `deep` (local); `ciphertext checksum` or
    /// `decrypted, deep` (remote).
    pub mode: String,
    /// One result per snapshot.
    pub snapshots: Vec<Checked>,
}

/// One snapshot's verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checked {
    /// The snapshot.
    pub id: String,
    /// Whether it passed.
    pub ok: bool,
    /// What is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl VerifyReport {
    /// Shows the newest result, as it comes in.
    pub fn show_last(&self, out: &mut Output) {
        let Some(c) = self.snapshots.last() else { return };
        let place = self.remote.as_ref().map(|r| format!(" on {r}")).unwrap_or_default();
        match &c.problem {
            None => out.result(format!("{}  ok{place} ({})", c.id, self.mode)),
            Some(p) => out.result(format!("{}  FAILED{place}: {p}", c.id)),
        }
    }
}

impl Render for VerifyReport {
    fn render(&self, out: &mut Output) {
        if self.remote.is_none() {
            out.info(format!("{} snapshot(s) verified ({})", self.snapshots.len(), self.mode));
        }
    }
}

/// `diff`: a snapshot's config.yml against the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffReport {
    /// The snapshot compared.
    pub id: String,
    /// Whether the two files are byte for byte the same.
    pub identical: bool,
    /// A unified diff from the snapshot's file to the current one.
    pub diff: String,
    /// Known keys whose values differ.
    pub changed_keys: Vec<KeyChange>,
}

/// A key whose value differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// Its value in the snapshot (null when absent or not a scalar).
    pub snapshot: Option<String>,
    /// Its value now.
    pub current: Option<String>,
}

impl Render for DiffReport {
    fn render(&self, out: &mut Output) {
        if self.identical {
            out.result(format!("config.yml is the same as in snapshot {}", self.id));
        } else {
            out.result(self.diff.trim_end());
        }
    }
}

/// `rollback`: what was (or would be) restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackReport {
    /// The snapshot restored.
    pub id: String,
    /// The install directory.
    pub install_dir: String,
    /// Only said what it would do.
    pub dry_run: bool,
    /// The install now holds the snapshot.
    pub rolled_back: bool,
    /// The snapshot of the state it replaced.
    pub before: Option<String>,
    /// The parts restored, install-relative.
    pub parts: Vec<String>,
    /// Files, directories and links restored.
    pub entries: usize,
    /// Bytes of the files restored.
    pub content_size: u64,
    /// What to run next, from the install directory.
    pub next_steps: Vec<String>,
    /// Entries whose recorded owner could not be set (not root).
    pub owners_not_restored: Vec<String>,
    /// Warnings about the Bitwarden version the rollback brings back.
    pub version_change: Vec<String>,
    /// The Bitwarden version the restored files pin, when it differs from
    /// the one running.
    pub restored_version: Option<String>,
    /// With `--remote`: the remote the snapshot comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// With `--remote`: whether it was (with `--dry-run`: would be) downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<bool>,
    /// With `--remote --dry-run`: the copy's public manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<Box<RemoteManifest>>,
}

impl Render for RollbackReport {
    fn render(&self, out: &mut Output) {
        if let (true, Some(rm)) = (self.dry_run, &self.copy) {
            let pull = match (self.pulled, &self.remote) {
                (Some(true), Some(remote)) => {
                    format!(
                        "pull {} from {remote} ({} encrypted), then ",
                        self.id,
                        human_size(rm.object.size)
                    )
                }
                _ => String::new(),
            };
            out.result(format!(
                "dry run: would {pull}roll back to snapshot {} ({}, {}, Bitwarden {}); nothing changed",
                self.id,
                rm.created,
                rm.reason,
                rm.bitwarden.core_version.as_deref().unwrap_or("?")
            ));
            return;
        }
        if self.dry_run {
            out.result(format!(
                "dry run: would snapshot the current state of {}, then replace it with snapshot {}; nothing changed",
                self.parts.join(", "),
                self.id
            ));
            return;
        }
        if !self.rolled_back {
            out.result("Nothing changed.");
            return;
        }
        if !self.owners_not_restored.is_empty() {
            let shown: Vec<&str> = self.owners_not_restored.iter().take(5).map(String::as_str).collect();
            out.warn(format!(
                "not running as root: {} restored entries keep this user as owner instead of the recorded one \
                 (e.g. {}); run the rollback as root to restore owners",
                self.owners_not_restored.len(),
                shown.join(", ")
            ));
        }
        out.result(format!(
            "Rolled back {} to snapshot {}; the state it replaced is snapshot {}",
            self.install_dir,
            self.id,
            self.before.as_deref().unwrap_or("?")
        ));
        out.info("Next, from the install directory:");
        for s in &self.next_steps {
            out.info(format!("  {s}"));
        }
        if let Some(v) = &self.restored_version {
            out.info(format!(
                "That brings up Bitwarden {v}, as pinned by the restored bitwarden.sh and docker-compose.yml. \
                 Do not run `./bitwarden.sh update` until you mean to upgrade again: it migrates the database forward."
            ));
        }
    }
}

/// `prune` (and `backup --prune`): the decision for every snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneReport {
    /// With `--remote`: the remote pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The policy applied.
    pub policy: Policy,
    /// Only said what it would remove.
    pub dry_run: bool,
    /// Snapshots kept, and why.
    pub kept: Vec<Decided>,
    /// Snapshots removed (with `--dry-run`: that would be), and why.
    pub removed: Vec<Decided>,
    /// With `--remote`: incomplete copies removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_removed: Vec<String>,
}

/// One retention decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decided {
    /// The snapshot.
    pub id: String,
    /// Every reason it is kept, or every rule that passed it over.
    pub reasons: Vec<String>,
}

impl Render for PruneReport {
    fn render(&self, out: &mut Output) {
        if self.policy.is_empty() {
            out.result("no retention policy: nothing removed");
            return;
        }
        let verb = if self.dry_run { "would remove" } else { "remove" };
        for id in &self.incomplete_removed {
            out.result(format!("{verb:<13} {id}  incomplete copy (an interrupted push or prune)"));
        }
        let on = self.remote.as_ref().map(|r| format!(" on {r}")).unwrap_or_default();
        out.info(format!("policy{on}: {}", self.policy.describe()));
        let mut all: Vec<(&Decided, bool)> =
            self.kept.iter().map(|d| (d, true)).chain(self.removed.iter().map(|d| (d, false))).collect();
        all.sort_by_key(|(d, _)| std::cmp::Reverse(crate::engine::store::id_key(&d.id)));
        for (d, keep) in all {
            let reasons = d.reasons.join("; ");
            if keep {
                out.result(format!("keep          {}  {reasons}", d.id));
            } else {
                out.result(format!("{verb:<13} {}  {reasons}", d.id));
            }
        }
        out.info(format!(
            "{} kept, {} {}",
            self.kept.len(),
            self.removed.len(),
            if self.dry_run { "would be removed (dry run)" } else { "removed" }
        ));
    }
}

/// `pin` and `unpin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinReport {
    /// The snapshot.
    pub id: String,
    /// Whether it is pinned now.
    pub pinned: bool,
    /// Whether this run changed it.
    pub changed: bool,
}

impl Render for PinReport {
    fn render(&self, out: &mut Output) {
        let word = if self.pinned { "pinned" } else { "not pinned" };
        let now = if self.changed { "now" } else { "already" };
        out.result(format!("{} is {now} {word}", self.id));
    }
}

/// `forget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetReport {
    /// The snapshot.
    pub id: String,
    /// Whether it was deleted (false: the question was answered no).
    pub deleted: bool,
}

impl Render for ForgetReport {
    fn render(&self, out: &mut Output) {
        if self.deleted {
            out.result(format!("Deleted snapshot {}", self.id));
        } else {
            out.result("Nothing deleted.");
        }
    }
}

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
    /// Free bytes where the data directory and the store are.
    pub free_bytes: FreeBytes,
    /// The remotes set up.
    pub remotes: Vec<RemoteDoc>,
    /// The snapshot an interrupted rollback was restoring.
    pub interrupted_rollback: Option<String>,
    /// Snapshot directories left by interrupted runs.
    pub incomplete_snapshots: Vec<String>,
    /// Rollback staging directories no journal accounts for.
    pub orphan_staging: Vec<String>,
    /// With `--max-age`: the newest snapshot that passes verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_good: Option<Newest>,
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
            format!("closed ({} processes could not be inspected)", self.processes_not_inspected)
        } else {
            "closed".to_string()
        };
        out.result(format!("db files     {files}"));
        out.result(format!("store        {} ({} snapshots)", self.store, self.snapshots));
        match &self.newest {
            Some(n) => out.result(format!(
                "newest       {} ({} ago, {})",
                n.id,
                n.age_seconds.map(human_age).unwrap_or_else(|| "?".into()),
                n.reason
            )),
            None => out.result("newest       none: take one with `bwguard backup`"),
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
        if let Some(id) = &self.interrupted_rollback {
            out.warn(format!(
                "a rollback to {id} was interrupted; the next bwguard command that writes will finish it"
            ));
        }
        for o in &self.orphan_staging {
            out.warn(format!("{o} is left from a rollback that no journal in this store accounts for"));
        }
        if !self.incomplete_snapshots.is_empty() {
            out.warn(format!(
                "incomplete snapshot(s) left by an interrupted run: {} (the next backup removes them)",
                self.incomplete_snapshots.join(", ")
            ));
        }
    }
}
