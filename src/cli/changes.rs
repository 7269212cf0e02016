//! Arguments of the commands that change the install: `enable-scim`,
//! `disable-scim`, `set`, `upgrade`.

use std::path::PathBuf;

use clap::Args;
use clap_complete::engine::ArgValueCompleter;

use super::ScopeArgs;

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
    /// With --apply: stop a step of bitwarden.sh that runs longer than this (e.g. 90m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::report::human::parse_age)]
    pub step_timeout: u64,
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
    #[arg(add = ArgValueCompleter::new(super::complete::config_keys))]
    pub key: String,
    /// Its new value (booleans: true/false; empty string for an empty value)
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// How to edit.
    #[command(flatten)]
    pub edit: EditArgs,
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
    /// Stop a step of bitwarden.sh that runs longer than this (e.g. 90m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::report::human::parse_age)]
    pub step_timeout: u64,
    /// What the snapshot taken first includes.
    #[command(flatten)]
    pub scope: ScopeArgs,
}
