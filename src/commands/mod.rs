//! One file per command, each a leaf: it implements [`Run`] for its
//! arguments and imports no other command. What two commands share lives
//! below them (the engine, the install, the procedures, scheduling,
//! off-site, reports). A command that changes something runs: lock →
//! snapshot first → plan → show → apply, and returns its typed report.
//!
//! `enable-scim`, `disable-scim` and `set` share `edit.rs`; every other
//! command's file is named after it.

pub mod backup;
pub mod completions;
pub mod demo;
pub mod diff;
pub mod edit;
pub mod forget;
pub mod list;
pub mod log;
pub mod man;
pub mod pin;
pub mod prune;
pub mod pull;
pub mod push;
pub mod remote;
pub mod resume_db;
pub mod rollback;
pub mod schedule;
pub mod status;
pub mod unpin;
pub mod upgrade;
pub mod verify;

use std::io::BufRead;

use crate::context::Ctx;
use crate::error::{Error, Refusal, Result};
use crate::report::Report;

/// A command: its arguments run in a context and give its report.
pub trait Run {
    /// The document `--json` prints.
    type Report: Into<Report>;

    /// Runs the command.
    fn run(&self, ctx: &mut Ctx) -> Result<Self::Report>;
}

/// Asks a yes/no question on the terminal and fails (exit 1, `declined`,
/// nothing changed) unless the answer is yes; `--yes` answers yes. Without
/// a terminal and without `--yes` the run is refused (exit 5).
pub fn confirm_or_stop(ctx: &mut Ctx, question: &str) -> Result<()> {
    if confirm(ctx, question)? {
        return Ok(());
    }
    Err(Error::Failed {
        kind: crate::error::Failure::Declined,
        message: "not confirmed: nothing was changed".into(),
        hint: None,
    })
}

/// Asks a yes/no question on the terminal; `--yes` answers yes. Without a
/// terminal and without `--yes` the run is refused (exit 5).
pub fn confirm(ctx: &mut Ctx, question: &str) -> Result<bool> {
    if ctx.global.yes {
        return Ok(true);
    }
    if !ctx.interactive {
        return Err(Error::refused(
            Refusal::NeedsConfirmation,
            format!("this needs confirmation and there is no terminal to ask: {question}"),
            "pass --yes to confirm",
        ));
    }
    let _ = write!(ctx.out.err(), "{question} [y/N] ");
    let _ = ctx.out.err().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("cannot read answer from", "stdin", e))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
