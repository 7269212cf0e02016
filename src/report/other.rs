//! The remaining documents: `schedule`, `completions`, `man`, `demo`, and
//! the error document every command prints with `--json` when it fails.

use serde::{Deserialize, Serialize};

use super::Render;
use crate::context::Output;
use crate::error::Error;
use crate::schedule::retention::Policy;
use crate::schedule::units::{SERVICE, TIMER};

/// `schedule install`, `remove` and `print`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScheduleReport {
    /// `schedule install`.
    Installed {
        /// Where the units were written.
        unit_dir: String,
        /// The service unit's name.
        service: String,
        /// The timer unit's name.
        timer: String,
        /// Its `OnCalendar=`.
        calendar: String,
        /// The retention policy saved for `backup --prune`.
        policy: Option<Policy>,
        /// Whether `systemctl` ran (false where systemd does not run).
        systemctl_ran: bool,
    },
    /// `schedule remove`.
    Removed {
        /// Where the units were.
        unit_dir: String,
        /// Whether there were units to remove.
        removed: bool,
        /// Whether `systemctl` ran.
        systemctl_ran: bool,
    },
    /// `schedule print`.
    Units {
        /// The service unit's text.
        service: String,
        /// The timer unit's text.
        timer: String,
    },
    /// `schedule print --cron`.
    Cron {
        /// The line for /etc/cron.d.
        cron: String,
    },
}

impl Render for ScheduleReport {
    fn render(&self, out: &mut Output) {
        match self {
            ScheduleReport::Installed { unit_dir, service, timer, .. } => {
                out.result(format!("wrote {unit_dir}/{service} and {unit_dir}/{timer}"))
            }
            ScheduleReport::Removed { unit_dir, removed: true, .. } => out.result(format!(
                "removed {SERVICE} and {TIMER} from {unit_dir} and the saved retention policy"
            )),
            ScheduleReport::Removed { unit_dir, removed: false, .. } => out.result(format!(
                "no bwguard units in {unit_dir}; removed the saved retention policy if there was one"
            )),
            ScheduleReport::Units { service, timer } => {
                out.result(format!("# {SERVICE}\n{service}\n# {TIMER}\n{timer}"))
            }
            ScheduleReport::Cron { cron } => out.result(format!(
                "# /etc/cron.d/bwguard-backup (no dots in the name: cron skips such files)\n{}",
                cron.trim_end()
            )),
        }
    }
}

/// `completions SHELL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionsReport {
    /// The shell.
    pub shell: String,
    /// The script.
    pub script: String,
}

impl Render for CompletionsReport {
    fn render(&self, out: &mut Output) {
        out.result(self.script.trim_end());
    }
}

/// `man`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManReport {
    /// The man page, as roff.
    pub man: String,
}

impl Render for ManReport {
    fn render(&self, out: &mut Output) {
        out.result(self.man.trim_end());
    }
}

/// `demo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoReport {
    /// The scratch directory (removed at the end unless `--dir` was given).
    pub dir: String,
    /// The snapshot taken before enable-scim and restored at the end.
    pub snapshot: String,
    /// Entries of the sample install compared after the rollback.
    pub entries: usize,
    /// Files among them.
    pub files: usize,
    /// Whether every one is back as it was (always true: otherwise the demo fails).
    pub identical: bool,
}

impl Render for DemoReport {
    fn render(&self, out: &mut Output) {
        out.result(format!(
            "== Proof: all {} entries ({} files) of the install are back to the original bytes, modes and mtimes.",
            self.entries, self.files
        ));
    }
}

/// The `--json` document of a run that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReport {
    /// The error.
    pub error: ErrorDoc,
}

/// An error, as scripts read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDoc {
    /// The exit code.
    pub code: i32,
    /// The stable kind (docs/json.md lists them).
    pub kind: String,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl ErrorReport {
    /// The document of `e`.
    pub fn of(e: &Error) -> Self {
        ErrorReport {
            error: ErrorDoc {
                code: e.exit() as i32,
                kind: e.kind().into(),
                message: e.to_string(),
                hint: e.hint(),
            },
        }
    }
}
