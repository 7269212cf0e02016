//! The one error type of bwguard, its exit-code map, its stable kinds and
//! its hints.
//!
//! Every variant names the path or value at fault. [`Error::exit`] is the
//! only place that decides the process exit status (the exit codes of the
//! README), [`Error::kind`] gives the stable name a script branches on (the
//! `kind` of a `--json` error, listed in docs/json.md), and [`Error::hint`]
//! names the command that fixes the problem where one exists. Refusals
//! (exit 5) and failures (exit 1) carry a [`Refusal`] or a [`Failure`], so
//! every one of them has a kind of its own and the exit code follows from
//! the type.

use std::io;
use std::path::{Path, PathBuf};

use crate::install::config::ConfigError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: success, including "nothing to do".
    Ok = 0,
    /// 1: an operation failed; nothing half-done is left.
    Failed = 1,
    /// 2: usage error, or a path or snapshot id that names nothing.
    Usage = 2,
    /// 3: a snapshot does not match its checksums or is malformed.
    Integrity = 3,
    /// 4: another bwguard run holds the lock.
    Busy = 4,
    /// 5: refused for safety; nothing was changed.
    Refused = 5,
}

/// Declares a kind enum whose variants each have a stable kebab-case name.
macro_rules! kinds {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            /// Every kind, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The stable name a script branches on.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    };
}

kinds! {
    /// Why a run refused (exit 5) before changing anything.
    pub enum Refusal {
        /// A process has the database files open (safety rule 5).
        DatabaseInUse = "database-in-use",
        /// The database is external or in a Docker volume, and the user did
        /// not say it is backed up elsewhere.
        DatabaseElsewhere = "database-elsewhere",
        /// A filesystem has no room for what the run would write (rule 8).
        NoRoom = "no-room",
        /// The run needs a yes and there is no terminal to ask (or `--yes`).
        NeedsConfirmation = "needs-confirmation",
        /// A file bwguard must treat as a plain file or directory is a link,
        /// a special file, or unreadable.
        NotAPlainFile = "not-a-plain-file",
        /// A name in the install is not UTF-8.
        BadName = "bad-name",
        /// A symbolic link in a part points outside the install (absolute,
        /// or climbing above it): a restore could not make it safely.
        LinkOutside = "link-outside-install",
        /// A part to restore is a mount point, which a rename cannot replace.
        MountPoint = "mount-point",
        /// A part to restore, or its directory, is immutable or append-only.
        Immutable = "immutable",
        /// The snapshot was taken of a data directory with another name.
        OtherDataDir = "other-data-dir",
        /// The snapshot is of another Bitwarden installation (another
        /// installation id) and `--other-installation` was not given.
        OtherInstallation = "other-installation",
        /// The store's rollback journal belongs to another install.
        OtherInstall = "other-install",
        /// Rollback staging directories that no journal accounts for.
        OrphanStaging = "orphan-staging",
        /// bitwarden.sh would run as root and ask, and `--yes` was not given.
        RootInstall = "root-install",
        /// bitwarden.sh is missing or not executable.
        NoScript = "no-script",
        /// `generate_compose_config` or `generate_nginx_config` is false, so
        /// Setup would not wire SCIM.
        GeneratedConfigOff = "generated-config-off",
        /// The snapshot is pinned and `--force` was not given.
        Pinned = "pinned",
        /// No remote is set up.
        NoRemote = "no-remote",
        /// The remote holds no snapshot copy.
        RemoteEmpty = "remote-empty",
        /// The remote (or a remote of that name) holds something else than
        /// this host's snapshot of the same id.
        RemoteConflict = "remote-conflict",
        /// No S3 credentials were found.
        NoCredentials = "no-credentials",
        /// A Helm values file cannot be edited in place.
        HelmValues = "helm-values",
        /// The store, a directory above it, or a file in it can be changed by
        /// another user (the trust rule of docs/safety.md).
        UntrustedStore = "untrusted-store",
        /// A copy on a remote is not signed by a key this host trusts.
        UntrustedCopy = "untrusted-copy",
        /// The data directory is a link another user made: root does not
        /// follow it.
        UntrustedLink = "untrusted-link",
        /// The user who runs bitwarden.sh cannot reach the Docker daemon.
        DockerUnreachable = "docker-unreachable",
        /// Neither `docker compose` nor `docker-compose` works.
        NoCompose = "no-compose",
        /// `--pause-db`: the snapshot would keep the database down longer
        /// than `--max-downtime`; nothing was stopped.
        DowntimeTooLong = "downtime-too-long",
        /// `rollback` without an id, and no snapshot is a cold backup of the
        /// whole install.
        NoFullSnapshot = "no-full-snapshot",
        /// `database_docker_volume: true`, and Docker names no volume
        /// `mssql_data` that bwguard can trust.
        VolumeNotFound = "volume-not-found",
        /// The Docker volume holding the database cannot be read by this
        /// user (its files are root's to read).
        VolumeUnreadable = "volume-unreadable",
    }
}

kinds! {
    /// Why a run failed (exit 1). Nothing half-done is left.
    pub enum Failure {
        /// A step of Bitwarden's procedure failed; the message names it and
        /// the hint the command that undoes it.
        StepFailed = "step-failed",
        /// The admin answered no to a confirmation: nothing was changed
        /// (exit 1, as bitwarden.sh does, so that `bwguard rollback &&
        /// ./bitwarden.sh start` starts nothing).
        Declined = "declined",
        /// `prune` or `backup --prune` has no policy: none given, none saved.
        NoRetentionPolicy = "no-retention-policy",
        /// A step failed and the install was rolled back to the snapshot;
        /// Bitwarden runs again.
        RolledBack = "rolled-back",
        /// A step failed and the install was rolled back to the snapshot,
        /// but Bitwarden does not run (the message says what Docker saw).
        RolledBackNotRunning = "rolled-back-not-running",
        /// `./bitwarden.sh stop` exited 0 but the database container still
        /// runs or a process holds the database files.
        DatabaseStillRunning = "database-still-running",
        /// A file changed while bwguard read or snapshotted it.
        ChangedMeanwhile = "changed-meanwhile",
        /// A written file does not hold what was written.
        WriteNotKept = "write-not-kept",
        /// A restored file does not match its manifest entry.
        RestoreMismatch = "restore-mismatch",
        /// A file bwguard keeps in the store (journal, policy, remotes) is unreadable.
        BadStateFile = "bad-state-file",
        /// `systemctl` failed.
        SystemctlFailed = "systemctl-failed",
        /// The remote cannot be reached, or a transfer broke off.
        RemoteUnreachable = "remote-unreachable",
        /// The remote refused the keys (401/403).
        RemoteDenied = "remote-denied",
        /// The remote answered with another error.
        RemoteError = "remote-error",
        /// `backup --push`: the snapshot was taken and verified, the push
        /// failed (the message says why).
        PushFailed = "push-failed",
        /// `backup --prune`: the snapshot was taken and verified, the prune
        /// after it failed (the message says why).
        PruneFailed = "prune-failed",
        /// `--pause-db`: the snapshot took longer than `--max-downtime`; it
        /// was abandoned and the database started again.
        DowntimeExceeded = "downtime-exceeded",
        /// A signal (SIGINT, SIGTERM, SIGHUP) stopped the run while the
        /// database was paused; it was started again.
        Interrupted = "interrupted",
        /// The database container bwguard stopped did not start again: the
        /// vault is down (the message says what Docker saw, the hint what to run).
        DatabaseDown = "database-down",
        /// A bug in bwguard (a thread panicked, an impossible state).
        Internal = "internal",
    }
}

/// Everything that can stop a bwguard run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed on a path.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bad command-line usage that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// `--bwdata` names nothing.
    #[error("no Bitwarden data directory at {}", .0.display())]
    NoDataDir(PathBuf),
    /// Neither `./bwdata` nor `./.bwdata` exists in this directory.
    #[error("no Bitwarden data directory here: neither {} nor {} exists", .0.join("bwdata").display(), .0.join(".bwdata").display())]
    NoDataDirHere(PathBuf),
    /// The store would live inside the data directory.
    #[error("the snapshot store {} is inside the data directory {}", store.display(), data.display())]
    StoreInsideData { store: PathBuf, data: PathBuf },
    /// A snapshot id that names no snapshot.
    #[error("no snapshot {id} in {}", store.display())]
    NoSuchSnapshot { id: String, store: PathBuf },
    /// A snapshot deleted (by a prune or forget, which take the lock that
    /// verify does not) while it was being read.
    #[error("snapshot {id} was deleted from {} while it was being read (a prune or forget ran)", store.display())]
    SnapshotGone { id: String, store: PathBuf },
    /// A remote holds no complete copy of snapshot `id`.
    #[error("remote {remote} has no copy of snapshot {id}")]
    NoSuchCopy { id: String, remote: String },
    /// No remote of that name is set up.
    #[error("no remote {name:?}{}", if known.is_empty() { ": none is set up".to_string() } else { format!("; the remotes are: {}", known.join(", ")) })]
    NoSuchRemote { name: String, known: Vec<String> },
    /// A command that reads the store named a store that does not exist.
    #[error("there is no snapshot store at {}", .0.display())]
    NoStore(PathBuf),
    /// Rollback or diff with an empty store.
    #[error("there is no snapshot in {}", .0.display())]
    NoSnapshots(PathBuf),
    /// A snapshot failed a check.
    #[error("snapshot {id}: {problem}")]
    Integrity { id: String, problem: String },
    /// Another run holds the store lock.
    #[error("another bwguard run holds the lock {}: {holder}", path.display())]
    Busy { path: PathBuf, holder: String },
    /// A config edit was refused (safety rule 7).
    #[error("{}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    /// A safety precondition is not met; nothing was changed.
    #[error("{message}")]
    Refused { kind: Refusal, message: String, hint: Option<String> },
    /// A step failed after checks passed; nothing half-done is left.
    #[error("{message}")]
    Failed { kind: Failure, message: String, hint: Option<String> },
}

/// The kinds of errors that are not a [`Refusal`] or a [`Failure`], with
/// their exit codes (the config kinds come from [`ConfigError::KINDS`]).
const OTHER_KINDS: [(&str, Exit); 12] = [
    ("io", Exit::Failed),
    ("disk-full", Exit::Failed),
    ("permission-denied", Exit::Failed),
    ("usage", Exit::Usage),
    ("no-data-dir", Exit::Usage),
    ("no-such-snapshot", Exit::Usage),
    ("integrity", Exit::Integrity),
    ("busy", Exit::Busy),
    ("store-inside-data", Exit::Refused),
    ("no-snapshots", Exit::Refused),
    ("no-such-remote", Exit::Usage),
    ("no-store", Exit::Usage),
];

/// Every `kind` a `--json` error can have, with its exit code.
pub fn all_kinds() -> Vec<(&'static str, Exit)> {
    let mut all = OTHER_KINDS.to_vec();
    all.extend(ConfigError::KINDS.iter().map(|k| (*k, Exit::Refused)));
    all.extend(Refusal::ALL.iter().map(|k| (k.as_str(), Exit::Refused)));
    all.extend(Failure::ALL.iter().map(|k| (k.as_str(), Exit::Failed)));
    all
}

impl Error {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { action, path: path.as_ref().to_path_buf(), source }
    }

    /// A refusal (exit 5) with a hint.
    pub fn refused(kind: Refusal, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused { kind, message: message.into(), hint: Some(hint.into()) }
    }

    /// The same refusal or failure with `hint` instead of its own.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Refused { kind, message, .. } => Error::Refused { kind, message, hint: Some(hint.into()) },
            Error::Failed { kind, message, .. } => Error::Failed { kind, message, hint: Some(hint.into()) },
            e => e,
        }
    }

    /// A failure (exit 1) with a hint.
    pub fn failed(kind: Failure, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Failed { kind, message: message.into(), hint: Some(hint.into()) }
    }

    /// A bug in bwguard (exit 1), which the user can only report.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Failed {
            kind: Failure::Internal,
            message: message.into(),
            hint: Some("this is a bug in bwguard; please report it".into()),
        }
    }

    /// An integrity failure (exit 3) of snapshot `id`.
    pub fn integrity(id: &str, problem: impl Into<String>) -> Self {
        Error::Integrity { id: id.to_string(), problem: problem.into() }
    }

    /// The exit status this error ends the run with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Io { .. } | Error::Failed { .. } => Exit::Failed,
            Error::Usage(_)
            | Error::NoDataDir(_)
            | Error::NoDataDirHere(_)
            | Error::NoSuchSnapshot { .. }
            | Error::SnapshotGone { .. }
            | Error::NoSuchCopy { .. }
            | Error::NoSuchRemote { .. }
            | Error::NoStore(_) => Exit::Usage,
            Error::Integrity { .. } => Exit::Integrity,
            Error::Busy { .. } => Exit::Busy,
            Error::StoreInsideData { .. }
            | Error::NoSnapshots(_)
            | Error::Config { .. }
            | Error::Refused { .. } => Exit::Refused,
        }
    }

    /// A short, stable name for `--json` errors (see [`all_kinds`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { source, .. } if is_disk_full(source) => "disk-full",
            Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                "permission-denied"
            }
            Error::Io { .. } => "io",
            Error::Usage(_) => "usage",
            Error::NoDataDir(_) | Error::NoDataDirHere(_) => "no-data-dir",
            Error::StoreInsideData { .. } => "store-inside-data",
            Error::NoSuchSnapshot { .. } | Error::SnapshotGone { .. } | Error::NoSuchCopy { .. } => {
                "no-such-snapshot"
            }
            Error::NoSuchRemote { .. } => "no-such-remote",
            Error::NoSnapshots(_) => "no-snapshots",
            Error::NoStore(_) => "no-store",
            Error::Integrity { .. } => "integrity",
            Error::Busy { .. } => "busy",
            Error::Config { source, .. } => source.kind(),
            Error::Refused { kind, .. } => kind.as_str(),
            Error::Failed { kind, .. } => kind.as_str(),
        }
    }

    /// What the user can do about it, if there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Io { source, path, .. } if is_disk_full(source) => Some(format!(
                "free some space on the filesystem holding {} and run the command again; \
                 bwguard removed the partial files it had written",
                // The file itself was removed; name where it was.
                path.ancestors().find(|p| p.exists()).unwrap_or(path).display()
            )),
            Error::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("run bwguard as the owner of the install, or as root".into())
            }
            Error::Io { .. } | Error::Usage(_) => None,
            Error::NoDataDir(_) | Error::NoDataDirHere(_) => Some(
                "run bwguard from the directory that holds bitwarden.sh and bwdata/, \
                 or pass --bwdata PATH"
                    .into(),
            ),
            Error::StoreInsideData { .. } => Some(
                "choose a store outside bwdata with --store PATH: Bitwarden's setup re-owns \
                 that tree and uninstall deletes it"
                    .into(),
            ),
            Error::NoSuchSnapshot { .. } | Error::SnapshotGone { .. } => {
                Some("run `bwguard list` to see the snapshots".into())
            }
            Error::NoSuchCopy { remote, .. } => {
                Some(format!("`bwguard list --remote {remote}` shows the copies"))
            }
            Error::NoSuchRemote { known, .. } if known.is_empty() => {
                Some("add one with `bwguard remote add`".into())
            }
            Error::NoSuchRemote { .. } => Some("`bwguard remote list` shows them".into()),
            Error::NoSnapshots(_) => Some("take one with `bwguard backup`".into()),
            Error::NoStore(_) => Some(
                "check --store (or BWGUARD_STORE); `bwguard status` names the store this install uses".into(),
            ),
            Error::Integrity { .. } => Some(
                "do not restore from this snapshot; run `bwguard verify --all --deep` \
                 to find a good one"
                    .into(),
            ),
            Error::Busy { .. } => Some("wait for that run to finish, then run the command again".into()),
            Error::Config { source, .. } => source.hint(),
            Error::Refused { hint, .. } | Error::Failed { hint, .. } => hint.clone(),
        }
    }
}

/// True when an I/O error means the filesystem is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_kebab_case() {
        let all = all_kinds();
        let mut names: Vec<&str> = all.iter().map(|(k, _)| *k).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "a kind is named twice");
        for n in names {
            assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{n}");
        }
    }

    #[test]
    fn a_refusal_exits_5_and_a_failure_1_under_their_own_kind() {
        let r = Error::refused(Refusal::DatabaseInUse, "open", "stop it");
        assert_eq!((r.exit(), r.kind()), (Exit::Refused, "database-in-use"));
        let f = Error::failed(Failure::StepFailed, "update failed", "undo it");
        assert_eq!((f.exit(), f.kind()), (Exit::Failed, "step-failed"));
        let denied = Error::io("cannot open", "/x", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!((denied.exit(), denied.kind()), (Exit::Failed, "permission-denied"));
        for (kind, exit) in all_kinds() {
            assert!(exit != Exit::Ok, "{kind}");
        }
    }
}
