//! The command line, as data: clap derive types only, no logic.
//!
//! Global flags are declared `global = true` so they are accepted before or
//! after the command, as scripts expect.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Safe configuration changes, snapshots and rollback for self-hosted Bitwarden.
///
/// bwguard archives and checksums the database files and the settings that
/// belong with them, reads the archive back to prove it, and only then edits
/// bwdata/config.yml. `rollback` puts a snapshot back, byte for byte.
#[derive(Debug, Parser)]
#[command(name = "bwguard", version, propagate_version = true)]
pub struct Cli {
    /// Options that apply to every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command, before or after it.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// The Bitwarden data directory [default: ./bwdata, else ./.bwdata]
    #[arg(long, global = true, env = "BWGUARD_BWDATA", value_name = "PATH")]
    pub bwdata: Option<PathBuf>,
    /// Where snapshots live [default: bwguard-snapshots/ beside the data directory]
    #[arg(long, global = true, env = "BWGUARD_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Print one JSON document on stdout (errors too)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only what is essential
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Never show a progress display
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Answer yes to confirmation questions (needed without a terminal)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a snapshot, verify it, print its id
    Backup(BackupArgs),
    /// Check snapshots (default: the newest)
    ///
    /// Plain verify checks the archive's SHA-256 against data.tar.gz.sha256
    /// and the manifest, and SHA256SUMS against the manifest. --deep also
    /// decompresses the archive and checks every file.
    Verify(VerifyArgs),
    /// List the snapshots, newest first (with --remote: the copies on a remote)
    List(ListArgs),
    /// Show the state of the install and of the store
    Status(StatusArgs),
    /// Snapshot, then set `enable_scim: true` in config.yml
    EnableScim(EnableScimArgs),
    /// Snapshot, then set `enable_scim: false` in config.yml
    DisableScim(DisableScimArgs),
    /// Snapshot, then set a known top-level key of config.yml
    Set(SetArgs),
    /// Show how a snapshot's config.yml differs from the current one
    Diff(DiffArgs),
    /// Restore a snapshot (default: the newest)
    ///
    /// Checks the snapshot, takes a snapshot of the current state, restores
    /// into a staging directory, checks every file, then swaps by rename.
    Rollback(RollbackArgs),
    /// Delete snapshots by a retention policy
    ///
    /// Never removes a pinned snapshot, the newest one, or the newest one
    /// that passes verification. Calendar buckets are in local time.
    Prune(PruneArgs),
    /// Scheduled backups: a systemd timer (or a cron line)
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Snapshot, then ./bitwarden.sh updateself and update, checked and journaled
    Upgrade(UpgradeArgs),
    /// Show the journal of an --apply or upgrade run: steps, times, exit codes, output
    Log(LogArgs),
    /// Keep a snapshot from pruning
    Pin(PinArgs),
    /// Let a snapshot be pruned again
    Unpin(UnpinArgs),
    /// Delete one snapshot (asks first; a pinned one needs --force)
    Forget(ForgetArgs),
    /// Copy snapshots to a remote, encrypted (default: the newest)
    ///
    /// Each snapshot is read once, encrypted with age to the remote's
    /// recipients and uploaded in parts; its public manifest is written
    /// last, so an interrupted push is never listed and the next push
    /// completes it.
    Push(PushArgs),
    /// Fetch a snapshot from a remote into the local store, decrypted and checked
    Pull(PullArgs),
    /// Off-site copies: add, list or remove S3-compatible remotes
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    Man(ManArgs),
    /// Build a sample install in a scratch directory and show backup,
    /// enable-scim, verify and rollback on it
    Demo(DemoArgs),
}

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
    /// The database is external or in a Docker volume and backed up another way
    #[arg(long)]
    pub db_backed_up_elsewhere: bool,
}

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A note stored in the manifest and shown by `list`
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Deflate level, 1 (fastest) to 9 (smallest) [default: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub level: Option<u32>,
    /// After a verified backup, prune by the given or the saved retention policy
    #[arg(long)]
    pub prune: bool,
    /// After the verified backup, push it to this remote (the only one if no name is given)
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "")]
    pub push: Option<String>,
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
    /// Snapshot ids [default: the newest]
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Check every snapshot in the store
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Also decompress and check every file
    #[arg(long)]
    pub deep: bool,
    /// Check the copies on this remote instead (without --deep: the ciphertext's checksum, no key needed)
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// With --remote --deep: the age identity file to decrypt with
    #[arg(long, value_name = "FILE", requires_all = ["remote", "deep"])]
    pub identity: Option<PathBuf>,
}

/// How `enable-scim`, `disable-scim` and `set` make their change.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Append the key if config.yml lacks it (installs set up before 2022.8)
    #[arg(long)]
    pub add_missing: bool,
    /// Show the edit (with --apply: the plan) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run Bitwarden's whole procedure: stop, snapshot, update, edit, rebuild, update, check
    #[arg(long)]
    pub apply: bool,
    /// With --apply: if a step fails, stop Bitwarden, roll back to the snapshot and start it
    #[arg(long, requires = "apply")]
    pub rollback_on_failure: bool,
    /// With --apply: the bitwarden.sh to run [default: bitwarden.sh beside the data directory]
    #[arg(long, value_name = "PATH", requires = "apply")]
    pub bitwarden_sh: Option<PathBuf>,
    /// A Helm install: set component.scim.enabled in this values file instead
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    pub helm_values: Option<PathBuf>,
    /// What the snapshot taken first includes.
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// Arguments of `enable-scim`.
#[derive(Debug, Args)]
pub struct EnableScimArgs {
    /// How to edit.
    #[command(flatten)]
    pub edit: EditArgs,
}

/// Arguments of `disable-scim`.
#[derive(Debug, Args)]
pub struct DisableScimArgs {
    /// How to edit.
    #[command(flatten)]
    pub edit: EditArgs,
}

/// Arguments of `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// A top-level key of config.yml, e.g. enable_scim
    pub key: String,
    /// Its new value (booleans: true/false; empty string for an empty value)
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// How to edit.
    #[command(flatten)]
    pub edit: EditArgs,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot id [default: the newest]
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
    /// Snapshot id [default: the newest]
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
    #[arg(long, value_name = "NAME", requires = "identity", conflicts_with = "helm_values")]
    pub remote: Option<String>,
    /// With --remote: the age identity file to decrypt with
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub identity: Option<PathBuf>,
}

/// A retention policy, restic-style.
#[derive(Debug, Args, Clone, Default)]
pub struct RetentionArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within this long before now (e.g. 7d, 2w, 1y6m)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<crate::schedule::retention::Within>,
}

impl RetentionArgs {
    /// The policy these flags give, or `None` when no flag was given.
    pub fn policy(&self) -> Option<crate::schedule::retention::Policy> {
        let p = crate::schedule::retention::Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: self.keep_within,
        };
        let given = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
            || self.keep_within.is_some();
        given.then_some(p)
    }
}

/// Arguments of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The policy (default: the one `schedule install` saved).
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Say what would be kept and removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the policy to the copies on this remote instead
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

/// `schedule install|remove|print`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Write bwguard-backup.service and .timer, save the retention policy, enable the timer
    Install(ScheduleArgs),
    /// Disable the timer and remove the units and the saved policy
    Remove(UnitDirArgs),
    /// Print the units (or a cron line) without installing anything
    Print(SchedulePrintArgs),
}

/// Where the units go.
#[derive(Debug, Args, Clone)]
pub struct UnitDirArgs {
    /// Directory for the unit files
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
}

/// What the scheduled backup does and when.
#[derive(Debug, Args, Clone)]
pub struct JobArgs {
    /// When to run, as a systemd OnCalendar expression (daily, hourly, "*-*-* 02:30")
    #[arg(long, value_name = "SPEC", default_value = "daily")]
    pub calendar: String,
    /// Random delay added to each run, so many hosts do not start at once
    #[arg(long, value_name = "TIME", default_value = "15min")]
    pub randomized_delay: String,
    /// Take live (crash-consistent) snapshots while Bitwarden runs, instead of failing with exit 5
    #[arg(long)]
    pub live: bool,
    /// Run the backup as this user (default: root)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// After each verified backup, push it to this remote (see `bwguard remote add`)
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
}

/// Arguments of `schedule install`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The job.
    #[command(flatten)]
    pub job: JobArgs,
    /// The retention policy `backup --prune` applies after each scheduled backup.
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Where the units go.
    #[command(flatten)]
    pub dir: UnitDirArgs,
}

/// Arguments of `schedule print`.
#[derive(Debug, Args)]
pub struct SchedulePrintArgs {
    /// The job.
    #[command(flatten)]
    pub job: JobArgs,
    /// Print a crontab line (for /etc/cron.d with a user field) instead of the units
    #[arg(long)]
    pub cron: bool,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 1 when the newest good snapshot is older than this (e.g. 26h, 2d), for monitoring
    #[arg(long, value_name = "AGE", value_parser = crate::report::human::parse_age)]
    pub max_age: Option<u64>,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Print the plan and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// If a step fails, stop Bitwarden, roll back to the snapshot and start it
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// The bitwarden.sh to run [default: bitwarden.sh beside the data directory]
    #[arg(long, value_name = "PATH")]
    pub bitwarden_sh: Option<PathBuf>,
    /// What the snapshot taken first includes.
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// Arguments of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Snapshot id
    pub id: String,
}

/// Arguments of `pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Snapshot id
    pub id: String,
}

/// Arguments of `unpin`.
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// Snapshot id
    pub id: String,
}

/// Arguments of `man` (none).
#[derive(Debug, Args)]
pub struct ManArgs {}

/// Arguments of `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshot id
    pub id: String,
    /// Delete it even if it is pinned
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to build the sample install [default: a new temporary directory]
    #[arg(long, value_name = "D")]
    pub dir: Option<PathBuf>,
    /// Size of the sample vault database in MiB
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub size_mb: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let before = Cli::try_parse_from(["bwguard", "--json", "--store", "/s", "list"]).unwrap();
        let after = Cli::try_parse_from(["bwguard", "list", "--json", "--store", "/s"]).unwrap();
        for cli in [before, after] {
            assert!(cli.global.json);
            assert_eq!(cli.global.store, Some(PathBuf::from("/s")));
        }
    }
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the complete copies on this remote instead
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

/// Arguments of `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Snapshot ids [default: the newest]
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Push every local snapshot the remote does not hold yet
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// The remote [default: the only one]
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

/// Arguments of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Snapshot id [default: the newest copy on the remote]
    pub id: Option<String>,
    /// The remote [default: the only one]
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// The age identity file (private key) to decrypt with
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
}

/// `remote add|list|remove`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add an S3-compatible remote (checks that it can be listed)
    Add(RemoteAddArgs),
    /// List the remotes
    List,
    /// Forget a remote (its bucket is left as it is)
    Remove(RemoteNameArg),
}

/// How bucket URLs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UrlStyle {
    /// endpoint/bucket/key (MinIO, Garage, most self-hosted stores)
    Path,
    /// bucket.endpoint/key (AWS)
    Virtual,
}

/// Arguments of `remote add`.
#[derive(Debug, Args)]
pub struct RemoteAddArgs {
    /// A name for the remote
    pub name: String,
    /// Where copies go: s3://BUCKET/PREFIX
    pub url: String,
    /// The S3 endpoint, e.g. https://s3.eu-central-003.backblazeb2.com [default: AWS for --region]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The signing region
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub region: String,
    /// Bucket addressing [default: virtual for AWS, path otherwise]
    #[arg(long, value_enum)]
    pub url_style: Option<UrlStyle>,
    /// An age recipient (public key, age1…) to encrypt to; repeat for more
    #[arg(long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// A file of age recipients, one per line
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
    /// Read the S3 keys from this AWS-style credentials file (needed for scheduled pushes)
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// The profile in the credentials file [default: AWS_PROFILE, else default]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Save the remote without checking that it can be reached
    #[arg(long)]
    pub no_check: bool,
}

/// A remote's name.
#[derive(Debug, Args)]
pub struct RemoteNameArg {
    /// The remote
    pub name: String,
}
