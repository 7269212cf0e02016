//! Documents about snapshots in the local store: `backup`, `list`,
//! `verify`, `diff`, `pin`, `unpin`, `forget`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Render;
use super::human::{human_age, human_size};
use super::offsite::{PushReport, RemoteListReport};
use super::prune::PruneReport;
use super::table::{damaged_row, table};
use crate::context::Output;
use crate::engine::manifest::{BitwardenInfo, DatabasePause, Manifest};
use crate::offsite::sign::Signer;

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
    /// With `--pause-db`: when the database container was stopped and
    /// started again, and its downtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pause: Option<DatabasePause>,
    /// What each part of the install holds in it.
    #[serde(default)]
    pub parts: Vec<PartSize>,
    /// Seconds spent reading the install (the database's downtime with
    /// `--pause-db`, less the stop and start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_seconds: Option<f64>,
    /// How the archive was read back: `while-writing` (direct reads from
    /// the disk as it was written) or `after-flush` (flushed, dropped from
    /// the cache and read back whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback: Option<String>,
}

/// What one part of a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSize {
    /// Install-relative path, e.g. `bwdata/mssql`.
    pub path: String,
    /// Regular files in it.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
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
            database_pause: m.database_pause.clone(),
            parts: m
                .parts
                .iter()
                .filter(|p| p.present)
                .map(|p| {
                    let inside = |e: &&crate::engine::manifest::Entry| {
                        e.sha256.is_some()
                            && (e.path == p.path
                                || e.path.strip_prefix(&p.path).is_some_and(|r| r.starts_with('/')))
                    };
                    let files: Vec<_> = m.entries.iter().filter(inside).collect();
                    PartSize {
                        path: p.path.clone(),
                        files: files.len(),
                        bytes: files.iter().fold(0u64, |a, e| a.saturating_add(e.size)),
                    }
                })
                .collect(),
            read_seconds: m.read_seconds,
            readback: m.readback.clone(),
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
        // -v: where the bytes are, how fast they were read, what to check.
        for p in &self.parts {
            let n = p.files;
            out.detail(format!(
                "  {}: {n} {}, {}",
                p.path,
                if n == 1 { "file" } else { "files" },
                human_size(p.bytes)
            ));
        }
        if let Some(secs) = self.read_seconds.filter(|s| *s > 0.0) {
            let rate = self.content_size as f64 / secs / f64::from(1u32 << 20);
            out.detail(format!("read in {secs:.1} s ({rate:.0} MiB/s)"));
        }
        out.detail(format!("{} ({} consistency, scope {})", self.path, self.consistency, self.scope));
        out.detail(format!("data.tar.gz SHA-256 {}", self.archive_sha256));
        match self.readback.as_deref() {
            Some(crate::engine::manifest::READBACK_WHILE_WRITING) => {
                out.detail("read back while writing: each chunk read from the disk with direct reads")
            }
            Some(crate::engine::manifest::READBACK_AFTER_FLUSH) => out.detail(
                "read back after flushing: this filesystem may serve direct reads from the cache, so the archive was flushed, dropped from the cache and read back whole",
            ),
            _ => {}
        }
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
    /// Taken with `--pause-db`: the database container's pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pause: Option<DatabasePause>,
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
            database_pause: m.database_pause.clone(),
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
                    s.consistency.clone()
                        + &if s.scope == "default" { String::new() } else { format!(", {}", s.scope) }
                        + &paused(s.database_pause.as_ref()),
                ],
                Listing::Damaged { id, damaged } => damaged_row(id, damaged),
            });
        }
        for line in fit(&rows, out.width()) {
            out.result(line);
        }
        let good: Vec<&SnapshotListing> = self
            .snapshots
            .iter()
            .filter_map(|l| if let Listing::Snapshot(s) = l { Some(s.as_ref()) } else { None })
            .collect();
        let total = good.iter().fold(0u64, |t, s| t.saturating_add(s.archive_size));
        let pinned: Vec<&&SnapshotListing> = good.iter().filter(|s| s.pinned).collect();
        let pinned_bytes = pinned.iter().fold(0u64, |t, s| t.saturating_add(s.archive_size));
        let damaged = self.snapshots.len() - good.len();
        let n = self.snapshots.len();
        out.info(format!(
            "{n} {}, {} in the store; {} pinned ({}){}",
            if n == 1 { "snapshot" } else { "snapshots" },
            human_size(total),
            pinned.len(),
            human_size(pinned_bytes),
            if damaged > 0 {
                format!("; {damaged} DAMAGED: do not restore from them")
            } else {
                String::new()
            }
        ));
    }
}

/// The list's table laid out for a terminal `width` columns wide: as it is
/// when it fits (or goes to no terminal); else without the VERSION and
/// SCIM columns, and the REASON cut short with `…`.
fn fit(rows: &[[String; 8]], width: Option<usize>) -> Vec<String> {
    let full = table(rows);
    let Some(width) = width else { return full };
    if full.iter().all(|l| l.chars().count() <= width) {
        return full;
    }
    let narrow: Vec<[String; 6]> =
        rows.iter().map(|r| [&r[0], &r[1], &r[2], &r[3], &r[4], &r[7]].map(String::clone)).collect();
    let others = table(
        &narrow
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r[2] = String::new();
                r
            })
            .collect::<Vec<_>>(),
    );
    let used = others.iter().map(|l| l.trim_end().chars().count()).max().unwrap_or(0);
    let room = width.saturating_sub(used).max(12);
    let cut: Vec<[String; 6]> = narrow
        .into_iter()
        .map(|mut r| {
            if r[2].chars().count() > room {
                r[2] = r[2].chars().take(room - 1).collect::<String>() + "…";
            }
            r
        })
        .collect();
    table(&cut)
}

/// `, db down 4.2s` for a snapshot taken with the database paused.
pub fn paused(p: Option<&DatabasePause>) -> String {
    match p.and_then(|p| p.downtime_seconds) {
        Some(secs) => format!(", db down {secs:.1}s"),
        None if p.is_some() => ", db paused".into(),
        None => String::new(),
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
    /// With `--remote`: who signed the copy, and why that key is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<Signer>,
}

impl VerifyReport {
    /// Shows the newest result, as it comes in.
    pub fn show_last(&self, out: &mut Output) {
        let Some(c) = self.snapshots.last() else { return };
        let place = self.remote.as_ref().map(|r| format!(" on {r}")).unwrap_or_default();
        match &c.problem {
            None => match &c.signed_by {
                Some(signer) => out.result(format!("{}  ok{place} ({}), {signer}", c.id, self.mode)),
                None => out.result(format!("{}  ok{place} ({})", c.id, self.mode)),
            },
            // What is wrong is said once, in the error the run ends with.
            Some(_) => out.result_marked(&format!("{}  ", c.id), "FAILED", &place),
        }
    }
}

impl Render for VerifyReport {
    fn render(&self, out: &mut Output) {
        if self.remote.is_none() {
            let n = self.snapshots.len();
            out.info(format!(
                "{n} {} verified ({})",
                if n == 1 { "snapshot" } else { "snapshots" },
                self.mode
            ));
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
    /// Every file, directory and link of the snapshot's parts that differs
    /// from the install now, by type, size, time, mode, owner and link
    /// target (contents are not read: `verify --deep` and a rollback's
    /// dry run do that).
    pub files: Vec<FileChange>,
}

/// A file of the snapshot's parts that differs from the install now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// Install-relative path.
    pub path: String,
    /// `added` (only now), `removed` (only in the snapshot) or `changed`.
    pub change: String,
    /// What differs, e.g. `size 1.0 MiB -> 3.0 MiB`, `modified`.
    pub detail: String,
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
        if self.files.is_empty() {
            out.result(format!(
                "no file of snapshot {} differs from the install in type, size, time, mode or owner",
                self.id
            ));
            return;
        }
        let n = self.files.len();
        out.info(format!(
            "{n} {} of snapshot {} differ from the install now (by type, size, time, mode and owner; contents not read):",
            if n == 1 { "path" } else { "paths" },
            self.id
        ));
        let rows: Vec<[String; 3]> =
            self.files.iter().map(|f| [f.change.clone(), f.path.clone(), f.detail.clone()]).collect();
        for line in super::table::table(&rows) {
            out.result(line);
        }
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

/// `resume-db`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeDbReport {
    /// What was found and done, or null when no interrupted run left the
    /// database stopped.
    pub resumed: Option<String>,
}

impl Render for ResumeDbReport {
    fn render(&self, out: &mut Output) {
        match &self.resumed {
            Some(said) => out.result(said),
            None => out.result("No bwguard run left the database stopped: nothing to do."),
        }
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
