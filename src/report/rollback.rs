//! The document of `rollback`.

use serde::{Deserialize, Serialize};

use super::Render;
use super::human::human_size;
use crate::context::Output;
use crate::engine::manifest::DatabasePause;
use crate::offsite::RemoteManifest;
use crate::offsite::sign::Signer;

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
    /// Entries the snapshot gave to root or marked setuid/setgid, restored
    /// as the install's owner's and without those bits (root restoring into
    /// an install another user owns).
    pub owners_clamped: Vec<String>,
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
    /// With `--remote`: who signed the copy, and why that key is trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<Signer>,
    /// With `--pause-db`: the database container's pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_pause: Option<DatabasePause>,
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
            if let Some(signer) = &self.signed_by {
                out.info(format!("The copy is {signer}."));
            }
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
        if !self.owners_clamped.is_empty() {
            let shown: Vec<&str> = self.owners_clamped.iter().take(5).map(String::as_str).collect();
            out.warn(format!(
                "{} restored entries were recorded as root's or setuid/setgid (e.g. {}): in an install \
                 another user owns they were given that user and lost those bits",
                self.owners_clamped.len(),
                shown.join(", ")
            ));
        }
        out.result(format!(
            "Rolled back {} to snapshot {}; the state it replaced is snapshot {}",
            self.install_dir,
            self.id,
            self.before.as_deref().unwrap_or("?")
        ));
        if !self.next_steps.is_empty() {
            out.info("Next:");
        }
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
