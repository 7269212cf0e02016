//! What bwguard tells its user: one typed value per command.
//!
//! Every `--json` document is a struct or enum here, and its human form
//! comes from the same value ([`Render`]): a command builds the value,
//! shows each part on the terminal as it completes, and returns the whole;
//! the dispatcher prints it as JSON with `--json`. Field names mean the
//! same in every document (docs/json.md lists them all): `content_size` is
//! the bytes of the files a snapshot holds, `archive_size` the bytes of its
//! `data.tar.gz`, `entries` the count of files, directories and links.

pub mod changes;
pub mod human;
pub mod offsite;
pub mod other;
pub mod prune;
pub mod rollback;
pub mod snapshots;
pub mod status;
pub mod table;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use changes::{EditReport, UpgradeReport};
pub use offsite::{PullReport, PushReport, PushedCopy, RemoteListReport, RemoteListing, RemoteReport};
pub use other::{CompletionsReport, DemoReport, ErrorDoc, ErrorReport, ManReport, ScheduleReport};
pub use prune::{Compressed, Decided, PruneReport};
pub use rollback::RollbackReport;
pub use snapshots::{
    BackupReport, Checked, DiffReport, FileChange, ForgetReport, KeyChange, ListReport, Listing, PartSize,
    PinReport, ResumeDbReport, SnapshotListing, SnapshotReport, StoreList, VerifyReport,
};
pub use status::{FreeBytes, HolderDoc, MaxAge, Newest, Pinned, RemoteDoc, StatusReport};

use crate::context::Output;
use crate::procedure::Journal;

/// A value's human form: result lines on stdout (unless `--json`),
/// narration unless `-q`, warnings on stderr.
pub trait Render {
    /// Writes the value to `out`.
    fn render(&self, out: &mut Output);
}

/// Declares [`Report`], one variant per document, with `From` for each.
macro_rules! reports {
    ($($variant:ident($ty:ty),)*) => {
        /// The document a command returns: what `--json` prints.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(untagged)]
        pub enum Report { $(
            #[allow(missing_docs)]
            $variant($ty),
        )* }

        $(impl From<$ty> for Report {
            fn from(r: $ty) -> Self {
                Report::$variant(r)
            }
        })*
    };
}

reports! {
    Backup(BackupReport),
    Verify(VerifyReport),
    List(ListReport),
    Status(Box<StatusReport>),
    Edit(EditReport),
    Diff(DiffReport),
    Rollback(RollbackReport),
    Prune(PruneReport),
    Schedule(ScheduleReport),
    Upgrade(UpgradeReport),
    Log(Journal),
    Pin(PinReport),
    Forget(ForgetReport),
    ResumeDb(ResumeDbReport),
    Push(PushReport),
    Pull(PullReport),
    Remote(RemoteReport),
    Completions(CompletionsReport),
    Man(ManReport),
    Demo(DemoReport),
}

impl From<StatusReport> for Report {
    fn from(r: StatusReport) -> Self {
        Report::Status(Box::new(r))
    }
}

impl Report {
    /// The snapshot this run took or worked on, for the run's log line.
    pub fn snapshot(&self) -> Option<&str> {
        match self {
            Report::Backup(r) => Some(&r.snapshot.id),
            Report::Edit(r) => r.snapshot.as_deref(),
            Report::Rollback(r) => Some(&r.id),
            Report::Upgrade(r) => r.snapshot.as_deref(),
            Report::Pin(r) => Some(&r.id),
            Report::Forget(r) => Some(&r.id),
            Report::Pull(r) => Some(&r.id),
            _ => None,
        }
    }

    /// The exit status of a run that produced this report: 0, but 1 for a
    /// `status --max-age` check that failed (its document printed all the same).
    pub fn exit(&self) -> crate::error::Exit {
        match self {
            Report::Status(r) if r.max_age.as_ref().is_some_and(|c| !c.ok) => crate::error::Exit::Failed,
            _ => crate::error::Exit::Ok,
        }
    }

    /// Whether the run only said what it would do.
    pub fn dry_run(&self) -> bool {
        match self {
            Report::Edit(r) => r.dry_run,
            Report::Rollback(r) => r.dry_run,
            Report::Prune(r) => r.dry_run,
            Report::Upgrade(r) => r.dry_run,
            _ => false,
        }
    }
}
