//! Arguments of `prune` and `schedule`, and the retention flags they share
//! with `backup --prune`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use clap_complete::engine::ArgValueCompleter;

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
    /// Keep every snapshot taken within this long before now (e.g. 7d, 2w, 1y6mo; mo is months)
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
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
    /// Also save the given policy in the store, for every later `prune` and
    /// `backup --prune` without flags (the cron route, a manual prune)
    #[arg(long)]
    pub save_policy: bool,
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
    /// Take live (crash-consistent) snapshots while Bitwarden runs, instead of pausing the database
    #[arg(long, conflicts_with = "no_pause")]
    pub live: bool,
    /// Do not pause the database container (the default for a built-in database under Docker): a backup while Bitwarden runs then fails with exit 5
    #[arg(long)]
    pub no_pause: bool,
    /// Run the backup as this user (default: root)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// After each verified backup, push it to this remote (see `bwguard remote add`)
    #[arg(long, value_name = "REMOTE", add = ArgValueCompleter::new(super::complete::remote_names))]
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
    /// The retention policy each run's `backup --prune` applies, written into
    /// the printed command line (default: the policy saved in the store).
    #[command(flatten)]
    pub retention: RetentionArgs,
}
