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
//! - Nothing is written through a symbolic link: the directories a restore
//!   writes in are opened once from the install directory without following
//!   a link (see [`crate::engine::beneath`]) and named by their descriptors;
//!   each staging directory is bwguard's own (mode 0700), so the install's
//!   owner cannot reach into it while it is filled.
//! - Run as root into an install that root does not own, no restored entry
//!   belongs to root or keeps a setuid or setgid bit: such entries get the
//!   install's owner and lose those bits, and the rollback says so.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags};
use serde::{Deserialize, Serialize};

use crate::engine::archive::{self, CHUNK};
use crate::engine::beneath::Dir;
use crate::engine::manifest::{ARCHIVE, Entry, EntryType, Manifest};
use crate::engine::progress::Progress;
use crate::engine::rollback::Selection;
use crate::engine::store::Store;
use crate::error::{Error, Failure, Refusal, Result};
use crate::files::{self, Ownership};
use crate::install::{Install, VOLUME_DATA, VOLUME_PART};

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
    /// The snapshot's mtime of the part's root directory, set again once
    /// the part is swapped in: moving a directory to another parent
    /// rewrites its `..` entry, and XFS then stamps it with the time of
    /// the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_mtime: Option<i64>,
}

impl Unit {
    fn target(&self, install: &Install) -> Option<PathBuf> {
        install.locate(&self.rel)
    }

    /// The install-relative directory holding the part, and its name; for
    /// the Docker volume, [`VOLUME_PART`] stands for the volume's own
    /// directory, which holds its data directory.
    fn split(&self) -> (&str, &str) {
        if self.rel == VOLUME_PART {
            return (VOLUME_PART, VOLUME_DATA);
        }
        self.rel.rsplit_once('/').unwrap_or(("", &self.rel))
    }

    /// Whether `path` (a manifest entry's) lies in the Docker volume's part.
    pub fn in_volume(path: &str) -> bool {
        path.strip_prefix(VOLUME_PART).is_some_and(|r| r.is_empty() || r.starts_with('/'))
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
    /// The Docker volume's mount point, when a part is the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
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
            Ok(b) => Journal::parse(&b).map(Some).map_err(|e| {
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

    /// Parses a journal's bytes (its parts are checked by [`check_units`]
    /// before anything is done with them).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Journal, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
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

/// The directories a restore writes in, each opened once from the install
/// directory without following a link, and their staging directories.
struct Places {
    parents: BTreeMap<String, Dir>,
    staging: BTreeMap<String, Dir>,
}

impl Places {
    /// Opens the directories holding `units` (creating missing ones when
    /// `create`) and the staging directories already there, which must be
    /// bwguard's own.
    fn open(install: &Install, units: &[Unit], create: bool) -> Result<Places> {
        let root = Dir::open(&install.dir).map_err(|e| Error::io("cannot open", &install.dir, e))?;
        let mut places = Places { parents: BTreeMap::new(), staging: BTreeMap::new() };
        for u in units {
            let (parent, _) = u.split();
            if places.parents.contains_key(parent) {
                continue;
            }
            let opened = if parent == VOLUME_PART {
                let volume = install.volume.as_deref().ok_or_else(|| volume_unknown(&u.rel))?;
                Dir::open(volume.parent().unwrap_or(Path::new("/")))
            } else {
                root.open_beneath(parent, create)
            };
            let dir = match opened {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    return Err(Error::refused(
                        Refusal::NotAPlainFile,
                        format!("cannot restore {}: {e}", u.rel),
                        "replace the link with the real directory; bwguard never writes through a link",
                    ));
                }
                Err(e) => return Err(Error::io("cannot open", install.dir.join(parent), e)),
            };
            if let Ok(staging) = dir.open_beneath(STAGING, false) {
                let meta = fs::metadata(staging.path(""))
                    .map_err(|e| Error::io("cannot read", &staging.shown, e))?;
                crate::engine::trust::check_store_file(&meta, &staging.shown)?;
                places.staging.insert(parent.to_string(), staging);
            }
            places.parents.insert(parent.to_string(), dir);
        }
        Ok(places)
    }

    /// Makes a new, empty staging directory (mode 0700) beside each part.
    fn make_staging(&mut self) -> Result<()> {
        self.remove_staging()?;
        for (parent, dir) in &self.parents {
            let path = dir.path(STAGING);
            files::create_private_dir(&path)
                .map_err(|e| Error::io("cannot create staging directory", dir.show(&path), e))?;
            let staging =
                dir.open_beneath(STAGING, false).map_err(|e| Error::io("cannot open", dir.show(&path), e))?;
            self.staging.insert(parent.clone(), staging);
        }
        Ok(())
    }

    /// Removes the staging directories (and anything left in them).
    fn remove_staging(&mut self) -> Result<()> {
        self.staging.clear();
        for dir in self.parents.values() {
            let path = dir.path(STAGING);
            files::remove_any(&path).map_err(|_| {
                Error::io("cannot remove", dir.show(&path), io::Error::other("removal failed"))
            })?;
        }
        Ok(())
    }

    /// The part itself, by a name that cannot be redirected.
    fn target(&self, u: &Unit) -> Option<PathBuf> {
        let (parent, name) = u.split();
        self.parents.get(parent).map(|d| d.path(name))
    }

    /// Its staged copy.
    fn staged(&self, u: &Unit) -> Option<PathBuf> {
        let (parent, name) = u.split();
        self.staging.get(parent).map(|d| d.path(name))
    }

    /// How a path of these directories reads for the user.
    fn show(&self, p: &Path) -> PathBuf {
        self.parents
            .values()
            .chain(self.staging.values())
            .map(|d| d.show(p))
            .find(|shown| shown != p)
            .unwrap_or_else(|| p.to_path_buf())
    }

    /// The staging directories' own names, for flushing.
    fn staging_dirs(&self) -> impl Iterator<Item = &Dir> {
        self.staging.values()
    }
}

/// The refusal for a part in the Docker volume when the volume is not known.
fn volume_unknown(rel: &str) -> Error {
    Error::refused(
        Refusal::VolumeNotFound,
        format!(
            "{rel} is the database's Docker volume, and this install's config.yml does not keep the database \
             in a volume (database_docker_volume), so bwguard does not know where to put it"
        ),
        "restore it by hand (RESTORING BY HAND in `man bwguard`: copy the archive's docker-volume/mssql_data/ into the volume's \
         directory), or restore the other parts with --only config",
    )
}

/// Refuses parts a journal names that no snapshot could hold: a path that
/// is not plain, or one outside the data directory `data_name` and
/// bitwarden.sh (a journal is checked like a manifest's parts).
pub fn check_units(data_name: &str, units: &[Unit]) -> std::result::Result<(), String> {
    for u in units {
        archive::check_rel_path(&u.rel)?;
        let inside = u.rel == data_name
            || u.rel.strip_prefix(data_name).is_some_and(|r| r.starts_with('/'))
            || u.rel == crate::engine::scope::SCRIPT
            || u.rel == VOLUME_PART;
        if !inside {
            return Err(format!("{} is not a part of the install bwguard restores", u.rel));
        }
    }
    Ok(())
}

/// What staging did beyond the manifest's word.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    /// Entries whose recorded owner could not be set (not root).
    pub not_owned: Vec<String>,
    /// Entries given the install's owner or stripped of setuid/setgid bits
    /// (root restoring into an install root does not own).
    pub clamped: Vec<String>,
}

/// Owner and mode an entry is restored with: as recorded, except that root
/// restoring into an install another user owns gives uid 0 and gid 0 to
/// that user and drops setuid and setgid bits.
fn effective(e: &Entry, clamp: Option<(u32, u32)>) -> (u32, u32, u32) {
    match clamp {
        Some((uid, gid)) => (
            if e.uid == 0 { uid } else { e.uid },
            if e.gid == 0 { gid } else { e.gid },
            if e.kind == EntryType::Symlink { e.mode } else { e.mode & !0o6000 },
        ),
        None => (e.uid, e.gid, e.mode),
    }
}

/// The owner root must clamp to, when it restores into `install`.
fn clamp_of(install: &Install) -> Option<(u32, u32)> {
    if !files::is_root() {
        return None;
    }
    let meta = fs::symlink_metadata(&install.dir).ok()?;
    (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
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
            "restore it by hand with tar (RESTORING BY HAND in `man bwguard`), or rename the data directory",
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
        .map(|p| Unit { rel: p.path.clone(), in_snapshot: p.present, staged_ino: None, root_mtime: None })
        .collect();
    if units.is_empty() {
        return Err(Error::integrity(&manifest.id, "the manifest lists no parts to restore"));
    }
    for u in &units {
        archive::check_rel_path(&u.rel).map_err(|p| Error::integrity(&manifest.id, p))?;
        let target = u.target(install).ok_or_else(|| volume_unknown(&u.rel))?;
        check_swappable(&target)?;
    }
    Ok(units)
}

/// Refuses, before anything is written, a part that a rename cannot
/// replace: a mount point (a bind mount of the same filesystem included),
/// or a part or its directory that is immutable or append-only (`chattr +i`,
/// `+a`). Otherwise the swap would fail midway, some parts restored and
/// others not.
fn check_swappable(target: &Path) -> Result<()> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let attrs = |p: &Path| {
        rustix::fs::statx(CWD, p, AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW, StatxFlags::empty())
            .ok()
            .map(|x| x.stx_attributes & x.stx_attributes_mask)
    };
    let Ok(t) = fs::symlink_metadata(target) else { return Ok(()) };
    let parent = target.parent().unwrap_or(Path::new("/"));
    let here = attrs(target).unwrap_or(StatxAttributes::empty());
    let other_device = t.is_dir() && fs::metadata(parent).is_ok_and(|p| p.dev() != t.dev());
    if here.contains(StatxAttributes::MOUNT_ROOT) || other_device {
        return Err(Error::refused(
            Refusal::MountPoint,
            format!(
                "{} is a mount point; bwguard swaps parts by rename, which cannot replace a mount point",
                target.display()
            ),
            "restore this snapshot by hand with tar (RESTORING BY HAND in `man bwguard`)",
        ));
    }
    let locked = StatxAttributes::IMMUTABLE | StatxAttributes::APPEND;
    for (path, a) in [(target, here), (parent, attrs(parent).unwrap_or(StatxAttributes::empty()))] {
        if a.intersects(locked) {
            let (what, flag) = if a.contains(StatxAttributes::IMMUTABLE) {
                ("immutable", "i")
            } else {
                ("append-only", "a")
            };
            return Err(Error::refused(
                Refusal::Immutable,
                format!(
                    "{} is {what} (chattr +{flag}), so {} cannot be swapped by rename; nothing was changed",
                    path.display(),
                    target.display()
                ),
                format!(
                    "if that is not on purpose, `chattr -{flag} {}` and run the rollback again",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Extracts the selected entries of the snapshot into staging, checks them,
/// applies metadata and flushes. Records each staged root's inode in `units`.
/// On error the staging directories are removed and the install is untouched.
pub fn stage(
    install: &Install,
    store: &Store,
    manifest: &Manifest,
    units: &mut [Unit],
    progress: &Progress,
) -> Result<Staged> {
    let mut places = Places::open(install, units, true)?;
    let result = stage_inner(install, &mut places, store, manifest, units, progress);
    if result.is_err() {
        let _ = places.remove_staging();
    }
    result
}

fn stage_inner(
    install: &Install,
    places: &mut Places,
    store: &Store,
    manifest: &Manifest,
    units: &mut [Unit],
    progress: &Progress,
) -> Result<Staged> {
    places.make_staging()?;
    let places = &*places;
    let owner = Owner::current();
    let clamp = clamp_of(install);
    let mut staged = Staged::default();
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
        let dest = staged_path(places, unit, rest)?;
        match e.kind {
            EntryType::File => write_file(&dest, content, &mut buf).map_err(|err| show(places, err))?,
            EntryType::Dir => {
                fs::create_dir(&dest).map_err(|err| Error::io("cannot create", places.show(&dest), err))?;
                dirs.push((dest.clone(), e.clone()));
                return Ok(());
            }
            EntryType::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(|err| Error::io("cannot create link", places.show(&dest), err))?;
            }
        }
        if effective(e, clamp) != (e.uid, e.gid, e.mode) {
            staged.clamped.push(e.path.clone());
        }
        if !apply_metadata(&dest, e, owner, clamp).map_err(|err| show(places, err))? {
            not_owned.push(e.path.clone());
        }
        Ok(())
    })?;
    // Directories last and deepest first: writing children changes a
    // directory's mtime, and a read-only mode would block them.
    for (dest, e) in dirs.iter().rev() {
        if effective(e, clamp) != (e.uid, e.gid, e.mode) {
            staged.clamped.push(e.path.clone());
        }
        if !apply_metadata(dest, e, owner, clamp).map_err(|err| show(places, err))? {
            not_owned.push(e.path.clone());
        }
    }
    for u in units.iter_mut() {
        if !u.in_snapshot {
            continue;
        }
        let path = staged_path(places, u, "")?;
        let meta = fs::symlink_metadata(&path).map_err(|_| {
            Error::integrity(&manifest.id, format!("{} is listed as present but has no entries", u.rel))
        })?;
        u.staged_ino = Some(meta.ino());
        if meta.is_dir() {
            u.root_mtime = Some(meta.mtime());
        }
    }
    check_staged(places, manifest, units, clamp)?;
    for dir in places.staging_dirs() {
        rustix::fs::syncfs(dir.fd()).map_err(|e| Error::io("cannot flush", &dir.shown, e.into()))?;
    }
    staged.not_owned = not_owned;
    Ok(staged)
}

/// Where entry `rest` of part `u` is staged.
fn staged_path(places: &Places, u: &Unit, rest: &str) -> Result<PathBuf> {
    let base =
        places.staged(u).ok_or_else(|| Error::internal(format!("no staging directory for {}", u.rel)))?;
    Ok(PathBuf::from(format!("{}{rest}", base.display())))
}

/// An I/O error with the path the user knows instead of a descriptor's.
fn show(places: &Places, e: Error) -> Error {
    match e {
        Error::Io { action, path, source } => Error::Io { action, path: places.show(&path), source },
        e => e,
    }
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

/// Sets owner (as root), mode and mtime (clamped, see [`effective`]);
/// returns false when the recorded owner differs from ours and we are not
/// root to set it.
fn apply_metadata(dest: &Path, e: &Entry, owner: Owner, clamp: Option<(u32, u32)>) -> Result<bool> {
    let (uid, gid, mode) = effective(e, clamp);
    if owner.root {
        std::os::unix::fs::lchown(dest, Some(uid), Some(gid))
            .map_err(|err| Error::io("cannot set owner of", dest, err))?;
    }
    if e.kind != EntryType::Symlink {
        fs::set_permissions(dest, Permissions::from_mode(mode))
            .map_err(|err| Error::io("cannot set mode of", dest, err))?;
    }
    files::set_mtime_nofollow(dest, e.mtime).map_err(|err| Error::io("cannot set mtime of", dest, err))?;
    Ok(owner.root || (e.uid == owner.uid && e.gid == owner.gid))
}

/// Checks every staged object against the manifest: type, size, mode, mtime
/// and (as root) owner. Content was hashed as it was written.
fn check_staged(
    places: &Places,
    manifest: &Manifest,
    units: &[Unit],
    clamp: Option<(u32, u32)>,
) -> Result<()> {
    let root_user = files::is_root();
    for e in &manifest.entries {
        let Some(unit) = units.iter().find(|u| u.contains(&e.path)) else { continue };
        let dest = staged_path(places, unit, &e.path[unit.rel.len()..])?;
        let (uid, gid, mode) = effective(e, clamp);
        let m = fs::symlink_metadata(&dest)
            .map_err(|_| Error::integrity(&manifest.id, format!("{} was not restored", e.path)))?;
        let kind_ok = match e.kind {
            EntryType::File => m.is_file() && m.len() == e.size,
            EntryType::Dir => m.is_dir(),
            EntryType::Symlink => m.file_type().is_symlink(),
        };
        let mode_ok = e.kind == EntryType::Symlink || m.mode() & 0o7777 == mode;
        let owner_ok = !root_user || (m.uid() == uid && m.gid() == gid);
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

/// Removes the staging directories of `units` (and anything left in them).
pub fn remove_staging(install: &Install, units: &[Unit]) -> Result<()> {
    Places::open(install, units, false)?.remove_staging()
}

/// Swaps every staged part in. Each step is idempotent, so the same
/// function finishes a swap that a killed run left midway.
pub fn swap(install: &Install, units: &[Unit]) -> Result<()> {
    let places = Places::open(install, units, true)?;
    let missing = |u: &Unit| {
        Error::failed(
            Failure::RestoreMismatch,
            format!("the staged copy of {} is gone", u.rel),
            "inspect the install by hand; the journal names the parts being swapped",
        )
    };
    for u in units {
        let target = places.target(u).ok_or_else(|| missing(u))?;
        let staged = places.staged(u);
        let shown = places.show(&target);
        let current = fs::symlink_metadata(&target).ok();
        match (u.staged_ino, current, staged) {
            // Already swapped in.
            (Some(ino), Some(cur), _) if cur.ino() == ino => {}
            (Some(ino), Some(_), Some(staged)) => {
                // Only bwguard's own staged copy goes in.
                if fs::symlink_metadata(&staged).map(|m| m.ino()).ok() != Some(ino) {
                    return Err(missing(u));
                }
                exchange(&staged, &target).map_err(|e| show(&places, e))?
            }
            (Some(_), None, Some(staged)) => {
                fs::rename(&staged, &target).map_err(|e| Error::io("cannot move into place", &shown, e))?;
            }
            // The snapshot does not hold it: move the current one out.
            (None, Some(_), Some(staged)) => {
                fs::rename(&target, &staged).map_err(|e| Error::io("cannot move aside", &shown, e))?;
            }
            (None, None, _) => {}
            (_, _, None) => return Err(missing(u)),
        }
        if let (Some(ino), Some(mtime)) = (u.staged_ino, u.root_mtime)
            && fs::symlink_metadata(&target).is_ok_and(|m| m.ino() == ino && m.mtime() != mtime)
        {
            files::set_mtime_nofollow(&target, mtime)
                .map_err(|e| Error::io("cannot set mtime of", &shown, e))?;
        }
        let (parent, _) = u.split();
        if let Some(dir) = places.parents.get(parent) {
            files::sync_dir(&dir.path(""))?;
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
    let mut parents = vec![
        install.dir.clone(),
        install.data.clone(),
        install.data.join("core"),
        install.data.join("scripts"),
    ];
    parents.extend(install.volume.as_ref().and_then(|v| v.parent()).map(Path::to_path_buf));
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
    check_units(&install.data_name, &journal.units).map_err(|problem| {
        Error::failed(
            Failure::BadStateFile,
            format!("the rollback journal names a part it cannot: {problem}"),
            "inspect the install by hand; the journal names the parts being swapped",
        )
    })?;
    // The volume is where the interrupted run found it.
    let mut install = install.clone();
    if let Some(volume) = &journal.volume {
        let volume = PathBuf::from(volume);
        crate::procedure::volume::check_place(&volume)?;
        install.volume = Some(volume);
    }
    let install = &install;
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
