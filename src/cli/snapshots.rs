//! Arguments of the commands that take, check, list and restore snapshots.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use super::{RetentionArgs, TrustArgs};

/// What a snapshot covers and what it accepts.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ScopeArgs {
    /// Also take bwdata/core/attachments/
    #[arg(long)]
    pub with_attachments: bool,
    /// Take all of bwdata/ except logs/
    #[arg(long, conflicts_with = "with_attachments")]
    pub full: bool,
    /// Accept a crash-consistent copy while SQL Server has the files open
    #[arg(long)]
    pub live: bool,
    /// The database is external (or in a Docker volume bwguard is not to read) and backed up another way
    #[arg(long)]
    pub db_backed_up_elsewhere: bool,
}

/// A `--note`: one line of printable text.
fn note(text: &str) -> Result<String, String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("a note is one line of text; it holds the control character {:?}", c)),
        None => Ok(text.to_string()),
    }
}

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A note stored in the manifest and shown by `list` (one line, no control characters)
    #[arg(long, value_name = "TEXT", value_parser = note)]
    pub note: Option<String>,
    /// Deflate level, 1 (fastest) to 9 (smallest) [default: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub level: Option<u32>,
    /// After a verified backup, prune by the given or the saved retention policy
    #[arg(long)]
    pub prune: bool,
    /// After the verified backup, push it to this remote (the only one if no name is given)
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub push: Option<String>,
    /// Stop only the database container for the snapshot (the rest of Bitwarden keeps running) and start it again as soon as every file is read
    #[arg(long, conflicts_with = "live")]
    pub pause_db: bool,
    /// With --pause-db: refuse, or abandon the snapshot, when the database would be down longer [default: 10m]
    #[arg(long, value_name = "DUR", value_parser = crate::report::human::parse_age, requires = "pause_db")]
    pub max_downtime: Option<u64>,
    /// Record the reason `scheduled` (used by the timer and cron line)
    #[arg(long, hide = true)]
    pub scheduled: bool,
    /// The retention policy for --prune (default: the one `schedule install` saved).
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// What to include.
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot ids (`latest`, or the unique beginning of one) [default: the newest]
    #[arg(value_name = "ID", add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub ids: Vec<String>,
    /// Check every snapshot in the store
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Also decompress and check every file
    #[arg(long)]
    pub deep: bool,
    /// Check the copies on this remote instead (without --deep: the ciphertext's checksum, no key needed)
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
    /// With --remote --deep: the age identity file to decrypt with
    #[arg(long, value_name = "FILE", requires_all = ["remote", "deep"])]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the complete copies on this remote instead
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 1 when the newest good snapshot is older than this (e.g. 26h, 2d), for monitoring
    #[arg(long, value_name = "AGE", value_parser = crate::report::human::parse_age)]
    pub max_age: Option<u64>,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot id (`latest`, or the unique beginning of one) [default: the newest]
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: Option<String>,
}

/// Which part of a snapshot to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Just bwdata/config.yml
    Config,
    /// Everything but bwdata/config.yml
    Data,
}

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Snapshot id, `latest`, or the unique beginning of one [default: the newest cold backup of the whole install that no rollback took]
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: Option<String>,
    /// Restore only the config or only the data
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Show what would be restored and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Restore a Helm values file snapshotted by `enable-scim --helm-values`
    #[arg(long, value_name = "FILE")]
    pub helm_values: Option<PathBuf>,
    /// Pull the snapshot from this remote first (default id: the newest copy there)
    #[arg(long, value_name = "NAME", requires = "identity", conflicts_with = "helm_values", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
    /// With --remote: the age identity file to decrypt with
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub identity: Option<PathBuf>,
    /// With --only data: stop only the database container for the restore while the rest of Bitwarden runs, and start it again
    #[arg(long, conflicts_with = "helm_values")]
    pub pause_db: bool,
    /// Restore a snapshot of another Bitwarden installation (another installation id) here: a new host for the same vault
    #[arg(long)]
    pub other_installation: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Arguments of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Snapshot id (`latest`, or the unique beginning of one)
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: String,
}

/// Arguments of `pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Snapshot id (`latest`, or the unique beginning of one)
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: String,
}

/// Arguments of `unpin`.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// Snapshot id (`latest`, or the unique beginning of one)
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: String,
}

/// Arguments of `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshot id (`latest`, or the unique beginning of one)
    #[arg(add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub id: String,
    /// Delete it even if it is pinned
    #[arg(long)]
    pub force: bool,
}
