//! The one error type of bwguard, its exit-code map and its hints.
//!
//! Every variant names the path or value at fault. `exit_code()` is the only
//! place that decides the process exit status (SPEC "Exit codes"), and
//! `hint()` names the command that fixes the problem where one exists.

use std::io;
use std::path::{Path, PathBuf};

use crate::install::config::ConfigError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit status of a run, as fixed by SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Refused { message: String, hint: Option<String> },
    /// A step failed after checks passed; nothing half-done is left.
    #[error("{message}")]
    Failed { message: String, hint: Option<String> },
}

impl Error {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { action, path: path.as_ref().to_path_buf(), source }
    }

    /// A refusal (exit 5) with a hint.
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused { message: message.into(), hint: Some(hint.into()) }
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
            | Error::NoSuchSnapshot { .. } => Exit::Usage,
            Error::Integrity { .. } => Exit::Integrity,
            Error::Busy { .. } => Exit::Busy,
            Error::StoreInsideData { .. }
            | Error::NoSnapshots(_)
            | Error::Config { .. }
            | Error::Refused { .. } => Exit::Refused,
        }
    }

    /// A short, stable name for `--json` errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { source, .. } if is_disk_full(source) => "disk-full",
            Error::Io { .. } => "io",
            Error::Usage(_) => "usage",
            Error::NoDataDir(_) | Error::NoDataDirHere(_) => "no-data-dir",
            Error::StoreInsideData { .. } => "store-inside-data",
            Error::NoSuchSnapshot { .. } => "no-such-snapshot",
            Error::NoSnapshots(_) => "no-snapshots",
            Error::Integrity { .. } => "integrity",
            Error::Busy { .. } => "busy",
            Error::Config { source, .. } => source.kind(),
            Error::Refused { .. } => "refused",
            Error::Failed { .. } => "failed",
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
            Error::NoSuchSnapshot { .. } => Some("run `bwguard list` to see the snapshots".into()),
            Error::NoSnapshots(_) => Some("take one with `bwguard backup`".into()),
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
