//! The command line, as data: clap derive types only, no logic.
//!
//! Global flags are declared `global = true` so they are accepted before or
//! after the command, as scripts expect.

mod changes;
pub mod complete;
mod offsite;
mod schedule;
mod snapshots;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use changes::*;
pub use offsite::*;
pub use schedule::*;
pub use snapshots::*;

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

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Options accepted by every command, before or after it.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// The Bitwarden data directory (not for completions, man, demo) [default: ./bwdata, else ./.bwdata]
    #[arg(long, global = true, help_heading = GLOBAL, env = "BWGUARD_BWDATA", value_name = "PATH")]
    pub bwdata: Option<PathBuf>,
    /// Where snapshots live (not for completions, man, demo) [default: bwguard-snapshots/ beside the data directory]
    #[arg(long, global = true, help_heading = GLOBAL, env = "BWGUARD_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Print one JSON document on stdout (errors too)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print only what is essential
    #[arg(short, long, global = true, help_heading = GLOBAL, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
    /// Never show a progress display
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_progress: bool,
    /// Answer yes to confirmation questions, needed without a terminal (rollback, forget, enable-scim, disable-scim, set, upgrade)
    #[arg(short = 'y', long, global = true, help_heading = GLOBAL)]
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
    /// Show how a snapshot differs from the install now
    ///
    /// config.yml line by line, with the known keys that changed; then
    /// every file, directory and link of the snapshot's parts that differs
    /// in type, size, modification time, mode, owner or link target
    /// (contents are not read: that is `verify --deep`).
    Diff(DiffArgs),
    /// Restore a snapshot (default: the newest cold backup of the whole install)
    ///
    /// Checks the snapshot, takes a snapshot of the current state, restores
    /// into a staging directory, checks every file, then swaps by rename.
    /// Without an id it restores the newest cold snapshot of the whole
    /// install that a rollback did not take, so a second rollback never
    /// undoes the first; a live or partial snapshot is restored only by id,
    /// with a warning.
    Rollback(RollbackArgs),
    /// Delete snapshots by a retention policy
    ///
    /// Never removes a pinned snapshot, the newest one, or the newest one
    /// that passes verification. Calendar buckets are in local time. The
    /// `before rollback` snapshots it keeps, stored uncompressed during the
    /// outage, it compresses.
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
    /// Start the database container if an interrupted `backup --pause-db` left it stopped
    ///
    /// Every writing run does this first; this command does only that, for
    /// the scheduled unit's ExecStopPost= and for the admin. A container
    /// bwguard did not stop is never touched.
    ResumeDb(ResumeDbArgs),
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

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `resume-db` (none).
#[derive(Debug, Args)]
pub struct ResumeDbArgs {}

/// Arguments of `man` (none).
#[derive(Debug, Args)]
pub struct ManArgs {}

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

/// Whether the global option `id` applies to the top-level command
/// `command`. Where it does not, it is left out of the command's help and
/// completions.
pub fn applies(command: &str, id: &str) -> bool {
    match id {
        "bwdata" | "store" => !matches!(command, "completions" | "man" | "demo"),
        "yes" => {
            matches!(command, "enable-scim" | "disable-scim" | "set" | "rollback" | "upgrade" | "forget")
        }
        _ => true,
    }
}

/// The global options that apply only to some commands.
const SOME_COMMANDS: [&str; 3] = ["bwdata", "store", "yes"];

/// The command line definition, each command showing only the global
/// options that apply to it: where one does not, the command gets a hidden
/// option of the same name instead, which clap then does not replace with
/// the global one.
pub fn command() -> clap::Command {
    fn shadow(mut cmd: clap::Command, top: &str, globals: &[clap::Arg]) -> clap::Command {
        for g in globals.iter().filter(|g| !applies(top, g.get_id().as_str())) {
            cmd = cmd.arg(g.clone().global(false).hide(true));
        }
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        for name in names {
            cmd = cmd.mut_subcommand(&name, |c| shadow(c, top, globals));
        }
        cmd
    }
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let globals: Vec<clap::Arg> =
        cmd.get_arguments().filter(|a| SOME_COMMANDS.contains(&a.get_id().as_str())).cloned().collect();
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for name in names {
        cmd = cmd.mut_subcommand(&name, |c| shadow(c, &name, &globals));
    }
    cmd
}

/// Parses the command line with [`command`]. A global option given to a
/// command it does not apply to is accepted and ignored, so a wrapper or
/// alias that always names the store keeps working for `man`.
pub fn parse(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
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
    fn global_options_are_shown_and_taken_only_where_they_apply() {
        let mut cmd = command();
        cmd.build();
        let help = |cmd: &mut clap::Command, name: &str| {
            cmd.find_subcommand_mut(name).unwrap().render_help().to_string()
        };
        let list = help(&mut cmd, "list");
        assert!(!list.contains("--yes") && list.contains("--json") && list.contains("--store"), "{list}");
        let man = help(&mut cmd, "man");
        assert!(!man.contains("--bwdata") && !man.contains("--store") && man.contains("--json"), "{man}");
        let rollback = help(&mut cmd, "rollback");
        assert!(rollback.contains("--yes") && rollback.contains("--bwdata"), "{rollback}");
        let os = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        // Given anyway (a wrapper that always passes them), they are accepted.
        assert!(parse(&os(&["bwguard", "list", "-y"])).is_ok());
        assert!(parse(&os(&["bwguard", "man", "--store", "/s"])).is_ok());
        assert!(parse(&os(&["bwguard", "rollback", "-y"])).unwrap().global.yes);
        assert!(parse(&os(&["bwguard", "-y", "forget", "x"])).unwrap().global.yes);
        assert!(parse(&os(&["bwguard", "--store", "/s", "list"])).is_ok());
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
