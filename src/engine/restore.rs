//! Restoring a snapshot (safety rules 3 and 4): extract entry by entry into
//! staging directories beside the targets, check every entry, then swap each
//! part in by one atomic rename, journaled so a killed rollback is finished
//! by the next run.
//!
//! Invariants:
//! - Nothing is written outside `<parent>/.bwguard-staging/` until every
//!   selected entry has been extracted, checked and flushed.
//! - The journal (`<store>/rollback-journal.json`) is in state `swapping`
//!   only once staging is complete; from then on the rollback goes forward.
//! - Each part is swapped by `renameat2(RENAME_EXCHANGE)` (one atomic step;
//!   two renames where the filesystem lacks it), and a part counts as
//!   swapped when the target holds the staged inode, so the next run can
//!   tell what is done.
//! - After success no copy of the old tree remains in the install: it lives
//!   in the `before rollback` snapshot.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags};
use serde::{Deserialize, Serialize};

use crate::engine::archive::{self, CHUNK};
use crate::engine::manifest::{ARCHIVE, Entry, EntryType, Manifest};
use crate::engine::progress::Progress;
use crate::engine::rollback::Selection;
use crate::engine::store::Store;
use crate::error::{Error, Failure, Refusal, Result};
use crate::files::{self, Ownership};
use crate::install::Install;

/// Name of the staging directory created beside each restored part.
pub const STAGING: &str = ".bwguard-staging";
/// Name of the journal file in the store.
pub const JOURNAL: &str = "rollback-journal.json";

/// One part of the install that a rollback replaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unit {
    /// Install-relative path, e.g. `bwdata/mssql`.
    pub rel: String,
    /// Whether the snapshot holds it (if not, the current one is removed).
    pub in_snapshot: bool,
    /// Inode of the staged copy's root, set once staged.
    #[serde(default)]
    pub staged_ino: Option<u64>,
}

impl Unit {
    fn target(&self, install: &Install) -> PathBuf {
        install.dir.join(&self.rel)
    }

    fn staged(&self, install: &Install) -> PathBuf {
        let t = self.target(install);
        let name = t.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        t.parent().unwrap_or(&install.dir).join(STAGING).join(name)
    }

    fn staging_root(&self, install: &Install) -> PathBuf {
        let t = self.target(install);
        t.parent().unwrap_or(&install.dir).join(STAGING)
    }

    /// Whether `path` (install-relative) lies in this part.
    pub fn contains(&self, path: &str) -> bool {
        path == self.rel || path.strip_prefix(&self.rel).is_some_and(|r| r.starts_with('/'))
    }
}

/// Where a rollback stands, recorded in the journal.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Extracting into staging; the install is untouched.
    Staging,
    /// Swapping parts in; only forward from here.
    Swapping,
}

/// The rollback journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The snapshot being restored.
    pub id: String,
    /// The snapshot of the state it replaces.
    pub before: String,
    /// The install directory.
    pub install_dir: String,
    /// The phase.
    pub phase: Phase,
    /// The parts.
    pub units: Vec<Unit>,
}

impl Journal {
    /// Path of the journal in `store`.
    pub fn path(store: &Store) -> PathBuf {
        store.root.join(JOURNAL)
    }

    /// Reads the journal, if a rollback was interrupted.
    pub fn read(store: &Store) -> Result<Option<Journal>> {
        let path = Self::path(store);
        match files::read_small(&path, files::SMALL_CAP) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::failed(
                    Failure::BadStateFile,
                    format!("the rollback journal {} is unreadable: {e}", path.display()),
                    "inspect the install by hand; the journal names the parts being swapped",
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// Writes the journal atomically.
    pub fn write(&self, store: &Store) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        files::write_atomic(&Self::path(store), &bytes, Ownership::mine(files::PRIVATE_FILE))
    }

    /// Removes the journal: the rollback is over.
    pub fn remove(store: &Store) -> Result<()> {
        files::remove_any(&Self::path(store))?;
        files::sync_dir(&store.root)
    }
}

/// Which parts of `manifest` to restore: all, only config.yml, or all but it.
pub fn select_units(install: &Install, manifest: &Manifest, selection: Selection) -> Result<Vec<Unit>> {
    if manifest.data_dir != install.data_name {
        return Err(Error::refused(
            Refusal::OtherDataDir,
            format!(
                "snapshot {} was taken of a data directory named {}, this install's is {}",
                manifest.id, manifest.data_dir, install.data_name
            ),
            "restore it by hand with tar (see the README), or rename the data directory",
        ));
    }
    let config = install.rel("config.yml");
    let units: Vec<Unit> = manifest
        .parts
        .iter()
        .filter(|p| match selection {
            Selection::Config => p.path == config,
            Selection::Data => p.path != config,
            Selection::All => true,
        })
        .map(|p| Unit { rel: p.path.clone(), in_snapshot: p.present, staged_ino: None })
        .collect();
    if units.is_empty() {
        return Err(Error::integrity(&manifest.id, "the manifest lists no parts to restore"));
    }
    for u in &units {
        archive::check_rel_path(&u.rel).map_err(|p| Error::integrity(&manifest.id, p))?;
        let target = u.target(install);
        if let (Ok(t), Some(parent)) = (fs::symlink_metadata(&target), target.parent())
            && t.is_dir()
            && fs::metadata(parent).is_ok_and(|p| p.dev() != t.dev())
        {
            return Err(Error::refused(
                Refusal::MountPoint,
                format!(
                    "{} is a mount point; bwguard swaps parts by rename, which cannot replace a mount point",
                    target.display()
                ),
                "restore this snapshot by hand with tar (see the README)",
            ));
        }
    }
    Ok(units)
}

/// Extracts the selected entries of the snapshot into staging, checks them,
/// applies metadata and flushes. Records each staged root's inode in `units`.
/// Returns the paths whose recorded owner could not be set (not root).
/// On error the staging directories are removed and the install is untouched.
pub fn stage(
    install: &Install,
    store: &Store,
    manifest: &Manifest,
    units: &mut [Unit],
    progress: &Progress,
) -> Result<Vec<String>> {
    let result = stage_inner(install, store, manifest, units, progress);
    if result.is_err() {
        let _ = remove_staging(install, units);
    }
    result
}

fn stage_inner(
    install: &Install,
    store: &Store,
    manifest: &Manifest,
    units: &mut [Unit],
    progress: &Progress,
) -> Result<Vec<String>> {
    remove_staging(install, units)?;
    for root in staging_roots(install, units) {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
        }
        fs::create_dir(&root).map_err(|e| Error::io("cannot create staging directory", &root, e))?;
    }
    let owner = Owner::current();
    let mut not_owned: Vec<String> = Vec::new();
    let mut dirs: Vec<(PathBuf, Entry)> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    // Read to the end even when the last selected entry comes early: an
    // archive that disagrees with its manifest anywhere is not restored.
    archive::scan(&store.dir(&manifest.id).join(ARCHIVE), manifest, None, progress, |e, content| {
        let Some(unit) = units.iter().find(|u| u.contains(&e.path)) else {
            return Ok(());
        };
        let rest = &e.path[unit.rel.len()..];
        let dest = PathBuf::from(format!("{}{rest}", unit.staged(install).display()));
        match e.kind {
            EntryType::File => write_file(&dest, content, &mut buf)?,
            EntryType::Dir => {
                fs::create_dir(&dest).map_err(|err| Error::io("cannot create", &dest, err))?;
                dirs.push((dest.clone(), e.clone()));
                return Ok(());
            }
            EntryType::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(|err| Error::io("cannot create link", &dest, err))?;
            }
        }
        if !apply_metadata(&dest, e, owner)? {
            not_owned.push(e.path.clone());
        }
        Ok(())
    })?;
    // Directories last and deepest first: writing children changes a
    // directory's mtime, and a read-only mode would block them.
    for (dest, e) in dirs.iter().rev() {
        if !apply_metadata(dest, e, owner)? {
            not_owned.push(e.path.clone());
        }
    }
    for u in units.iter_mut() {
        if !u.in_snapshot {
            continue;
        }
        let staged = u.staged(install);
        let meta = fs::symlink_metadata(&staged).map_err(|_| {
            Error::integrity(&manifest.id, format!("{} is listed as present but has no entries", u.rel))
        })?;
        u.staged_ino = Some(meta.ino());
    }
    check_staged(install, manifest, units)?;
    for root in staging_roots(install, units) {
        let dir = fs::File::open(&root).map_err(|e| Error::io("cannot open", &root, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io("cannot flush", &root, e.into()))?;
    }
    Ok(not_owned)
}

/// Who this process is, for restoring owners.
#[derive(Debug, Clone, Copy)]
struct Owner {
    root: bool,
    uid: u32,
    gid: u32,
}

impl Owner {
    fn current() -> Self {
        Owner {
            root: files::is_root(),
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }
}

fn write_file(dest: &Path, content: &mut dyn Read, buf: &mut [u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::io("cannot create", dest, e))?;
    let (mut written, mut behind) = (0u64, files::WriteBehind::default());
    loop {
        let n = match content.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(Error::io("cannot read archive for", dest, e)),
        };
        f.write_all(&buf[..n]).map_err(|e| Error::io("cannot write", dest, e))?;
        written += n as u64;
        // SQL Server reads its files unbuffered: their cached pages would
        // not serve it after the swap.
        behind.wrote(&f, written);
    }
    Ok(())
}

/// Sets owner (as root), mode and mtime; returns false when the recorded
/// owner differs from ours and we are not root to set it.
fn apply_metadata(dest: &Path, e: &Entry, owner: Owner) -> Result<bool> {
    if owner.root {
        std::os::unix::fs::lchown(dest, Some(e.uid), Some(e.gid))
            .map_err(|err| Error::io("cannot set owner of", dest, err))?;
    }
    if e.kind != EntryType::Symlink {
        fs::set_permissions(dest, Permissions::from_mode(e.mode))
            .map_err(|err| Error::io("cannot set mode of", dest, err))?;
    }
    files::set_mtime_nofollow(dest, e.mtime).map_err(|err| Error::io("cannot set mtime of", dest, err))?;
    Ok(owner.root || (e.uid == owner.uid && e.gid == owner.gid))
}

/// Checks every staged object against the manifest: type, size, mode, mtime
/// and (as root) owner. Content was hashed as it was written.
fn check_staged(install: &Install, manifest: &Manifest, units: &[Unit]) -> Result<()> {
    let root_user = files::is_root();
    for e in &manifest.entries {
        let Some(unit) = units.iter().find(|u| u.contains(&e.path)) else { continue };
        let dest = PathBuf::from(format!("{}{}", unit.staged(install).display(), &e.path[unit.rel.len()..]));
        let m = fs::symlink_metadata(&dest)
            .map_err(|_| Error::integrity(&manifest.id, format!("{} was not restored", e.path)))?;
        let kind_ok = match e.kind {
            EntryType::File => m.is_file() && m.len() == e.size,
            EntryType::Dir => m.is_dir(),
            EntryType::Symlink => m.file_type().is_symlink(),
        };
        let mode_ok = e.kind == EntryType::Symlink || m.mode() & 0o7777 == e.mode;
        let owner_ok = !root_user || (m.uid() == e.uid && m.gid() == e.gid);
        if !kind_ok || !mode_ok || !owner_ok || m.mtime() != e.mtime {
            return Err(Error::failed(
                Failure::RestoreMismatch,
                format!("restored {} does not match the manifest (type, size, mode, owner or mtime)", e.path),
                "the install was not changed; check the filesystem holding it",
            ));
        }
    }
    Ok(())
}

fn staging_roots(install: &Install, units: &[Unit]) -> BTreeSet<PathBuf> {
    units.iter().map(|u| u.staging_root(install)).collect()
}

/// Removes the staging directories of `units` (and anything left in them).
pub fn remove_staging(install: &Install, units: &[Unit]) -> Result<()> {
    for root in staging_roots(install, units) {
        files::remove_any(&root)?;
    }
    Ok(())
}

/// Swaps every staged part in. Each step is idempotent, so the same
/// function finishes a swap that a killed run left midway.
pub fn swap(install: &Install, units: &[Unit]) -> Result<()> {
    for u in units {
        let target = u.target(install);
        let staged = u.staged(install);
        let current = fs::symlink_metadata(&target).ok();
        match (u.staged_ino, current) {
            // Already swapped in.
            (Some(ino), Some(cur)) if cur.ino() == ino => {}
            (Some(_), Some(_)) => exchange(&staged, &target)?,
            (Some(_), None) => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
                }
                fs::rename(&staged, &target).map_err(|e| Error::io("cannot move into place", &target, e))?;
            }
            // The snapshot does not hold it: move the current one out.
            (None, Some(_)) => {
                fs::rename(&target, &staged).map_err(|e| Error::io("cannot move aside", &target, e))?;
            }
            (None, None) => {}
        }
        if let Some(parent) = target.parent() {
            files::sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Atomically exchanges two paths; where the filesystem cannot, moves the
/// target aside then the staged copy in (the journal covers the gap).
fn exchange(staged: &Path, target: &Path) -> Result<()> {
    match rustix::fs::renameat_with(CWD, staged, CWD, target, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(e)
            if e == rustix::io::Errno::INVAL
                || e == rustix::io::Errno::NOSYS
                || e == rustix::io::Errno::OPNOTSUPP =>
        {
            let aside = staged.with_extension("bwguard-old");
            fs::rename(target, &aside).map_err(|e| Error::io("cannot move aside", target, e))?;
            fs::rename(staged, target).map_err(|e| Error::io("cannot move into place", target, e))?;
            fs::rename(&aside, staged).map_err(|e| Error::io("cannot move", &aside, e))
        }
        Err(e) => Err(Error::io("cannot swap into place", target, e.into())),
    }
}

/// Staging directories present in the places a rollback uses. Called after
/// [`recover`], so any found belong to no journal of this store.
pub fn orphan_staging(install: &Install) -> Vec<PathBuf> {
    let parents =
        [install.dir.clone(), install.data.clone(), install.data.join("core"), install.data.join("scripts")];
    parents.iter().map(|p| p.join(STAGING)).filter(|p| fs::symlink_metadata(p).is_ok()).collect()
}

/// Finishes or undoes a rollback that a killed run left behind. Returns a
/// sentence saying what was done, or `None` if there was nothing to do.
/// The caller holds the store lock.
pub fn recover(install: &Install, store: &Store) -> Result<Option<String>> {
    let Some(journal) = Journal::read(store)? else {
        return Ok(None);
    };
    if journal.install_dir != install.dir.display().to_string() {
        return Err(Error::refused(
            Refusal::OtherInstall,
            format!(
                "an interrupted rollback of {} is recorded in {}",
                journal.install_dir,
                Journal::path(store).display()
            ),
            format!(
                "run bwguard on that install (--bwdata {}/{}) to finish it",
                journal.install_dir, install.data_name
            ),
        ));
    }
    let said = match journal.phase {
        Phase::Staging => {
            remove_staging(install, &journal.units)?;
            format!(
                "an interrupted rollback to {} was undone: it had not changed the install yet",
                journal.id
            )
        }
        Phase::Swapping => {
            swap(install, &journal.units)?;
            remove_staging(install, &journal.units)?;
            format!(
                "an interrupted rollback to {} was finished (the state it replaced is snapshot {})",
                journal.id, journal.before
            )
        }
    };
    Journal::remove(store)?;
    Ok(Some(said))
}
