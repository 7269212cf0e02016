//! What every writing run does first (safety rules 2 and 6): take the
//! store lock, then finish or undo a rollback that a killed run left, and
//! remove what other killed runs left: incomplete snapshots and the
//! temporary file of a config edit.

use crate::engine::lock::StoreLock;
use crate::engine::restore;
use crate::engine::store::Store;
use crate::engine::trust;
use crate::error::{Error, Refusal, Result};
use crate::files;
use crate::install::Install;

/// A writing run's hold on the store.
#[derive(Debug)]
pub struct Writing {
    /// The lock, held until this value is dropped.
    pub lock: StoreLock,
    /// The store.
    pub store: Store,
    /// What was found and done about leftovers, one sentence each, for the
    /// caller to say.
    pub notices: Vec<String>,
    /// What was done about a database container an interrupted
    /// `backup --pause-db` left stopped (set by the caller, which can reach
    /// Docker).
    pub resumed_db: Option<String>,
}

/// Starts a writing run of `command` on `install`: the lock at once (or
/// [`Error::Busy`]), then the leftovers of killed runs. Staging directories
/// that no journal of this store accounts for are refused: they belong to
/// a rollback run with another store.
pub fn begin(install: &Install, command: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Writing> {
    trust::check_store(&install.store)?;
    let lock = StoreLock::acquire(&install.store, command, now)?;
    // Again, now that it exists: nobody else may have made it first.
    trust::check_store(&install.store)?;
    let store = Store::new(&install.store);
    let mut notices = Vec::new();
    if let Some(said) = restore::recover(install, &store)? {
        notices.push(said);
    }
    for id in store.remove_incomplete()? {
        notices.push(format!("removed incomplete snapshot {id} left by an interrupted run"));
    }
    for id in crate::engine::recompress::remove_leftovers(&store)? {
        notices.push(format!(
            "removed the unfinished compressed copy of snapshot {id} left by an interrupted prune; \
             the snapshot itself is whole"
        ));
    }
    let config_tmp = files::temp_name(&install.config_path());
    if config_tmp.exists() {
        files::remove_any(&config_tmp)?;
        notices.push(format!(
            "removed {} left by an interrupted config edit; config.yml itself was never half-written",
            config_tmp.display()
        ));
    }
    let orphans = restore::orphan_staging(install);
    if !orphans.is_empty() {
        let list: Vec<String> = orphans.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::refused(
            Refusal::OrphanStaging,
            format!(
                "found rollback staging directories that no journal in {} accounts for: {}",
                store.root.display(),
                list.join(", ")
            ),
            "a rollback run with another --store was interrupted: run bwguard with that store to finish it; \
             if that store is gone, check their contents and remove them by hand",
        ));
    }
    Ok(Writing { lock, store, notices, resumed_db: None })
}
