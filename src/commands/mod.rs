//! One module per command. Each runs: lock → backup first if it changes
//! anything → plan → show → apply, and returns its JSON document.

pub mod apply;
pub mod backup;
pub mod demo;
pub mod diff;
pub mod docs;
pub mod edit;
pub mod helm;
pub mod list;
pub mod offsite;
pub mod pin;
pub mod prune;
pub mod rollback;
pub mod schedule;
pub mod status;
pub mod verify;

use std::io::BufRead;

use crate::context::Ctx;
use crate::engine::lock::StoreLock;
use crate::engine::restore;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::files;
use crate::install::Install;

/// Starts a writing run: takes the store lock, then finishes or undoes an
/// interrupted rollback and removes incomplete snapshots, saying so.
pub fn begin_write(ctx: &mut Ctx, install: &Install, command: &str) -> Result<(StoreLock, Store)> {
    let lock = StoreLock::acquire(&install.store, command, ctx.now)?;
    let store = Store::new(&install.store);
    if let Some(said) = restore::recover(install, &store)? {
        ctx.out.warn(said);
    }
    for id in store.remove_incomplete()? {
        ctx.out.warn(format!("removed incomplete snapshot {id} left by an interrupted run"));
    }
    let config_tmp = files::temp_name(&install.config_path());
    if config_tmp.exists() {
        files::remove_any(&config_tmp)?;
        ctx.out.warn(format!(
            "removed {} left by an interrupted config edit; config.yml itself was never half-written",
            config_tmp.display()
        ));
    }
    let orphans = restore::orphan_staging(install);
    if !orphans.is_empty() {
        let list: Vec<String> = orphans.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::refused(
            format!(
                "found rollback staging directories that no journal in {} accounts for: {}",
                store.root.display(),
                list.join(", ")
            ),
            "a rollback run with another --store was interrupted: run bwguard with that store to finish it; \
             if that store is gone, check their contents and remove them by hand",
        ));
    }
    Ok((lock, store))
}

/// Asks a yes/no question on the terminal; `--yes` answers yes. Without a
/// terminal and without `--yes` the run is refused (exit 5).
pub fn confirm(ctx: &mut Ctx, question: &str) -> Result<bool> {
    if ctx.global.yes {
        return Ok(true);
    }
    if !ctx.interactive {
        return Err(Error::refused(
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

pub use crate::report::human::{human_age, human_size};
