//! Scheduled backups: the systemd units and cron line, and retention.

pub mod policy;
pub mod prune;
pub mod retention;
pub mod units;
