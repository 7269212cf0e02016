//! The snapshot store: ids, listing, opening, and leftovers of killed runs.
//!
//! Invariants: a snapshot is a directory named like an id that holds
//! `manifest.json`; one without it is incomplete, never listed, and removed
//! by the next writing run. Ids are UTC times `YYYYMMDDTHHMMSSZ`, with
//! `-2`, `-3`… on collision, and sort by (time, sequence).

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::engine::manifest::{MANIFEST, Manifest};
use crate::error::{Error, Refusal, Result};
use crate::files;

/// The store directory.
#[derive(Debug, Clone)]
pub struct Store {
    /// Its absolute path (it may not exist yet).
    pub root: PathBuf,
}

/// A snapshot found in the store.
#[derive(Debug)]
pub struct Listed {
    /// Its id (the directory name).
    pub id: String,
    /// Its manifest, or why it could not be read.
    pub manifest: std::result::Result<Manifest, String>,
}

impl Listed {
    /// Its sequence number; 0 for snapshots older than sequence numbers,
    /// and for one whose manifest cannot be read.
    pub fn sequence(&self) -> u64 {
        self.manifest.as_ref().ok().and_then(|m| m.sequence).unwrap_or(0)
    }
}

/// The id that names the newest snapshot.
pub const LATEST: &str = "latest";

/// Whether `name` has the shape of a snapshot id.
pub fn is_id(name: &str) -> bool {
    let (base, seq) = match name.split_once('-') {
        Some((b, s)) => (b, Some(s)),
        None => (name, None),
    };
    let b = base.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && seq.is_none_or(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && !s.starts_with('0'))
}

/// Sort key of an id: time, then collision sequence.
pub fn id_key(id: &str) -> (String, u64) {
    match id.split_once('-') {
        Some((b, s)) => (b.to_string(), s.parse().unwrap_or(0)),
        None => (id.to_string(), 1),
    }
}

impl Store {
    /// The store at `root`.
    pub fn new(root: &Path) -> Self {
        Store { root: root.to_path_buf() }
    }

    /// The directory of snapshot `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Id-shaped directories, newest first, with whether they hold a manifest.
    fn id_dirs(&self) -> Result<Vec<(String, bool)>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot list store", &self.root, e)),
        };
        let mut out = Vec::new();
        for d in rd {
            let d = d.map_err(|e| Error::io("cannot list store", &self.root, e))?;
            let name = d.file_name().to_string_lossy().into_owned();
            if is_id(&name) && d.file_type().is_ok_and(|t| t.is_dir()) {
                let complete = d.path().join(MANIFEST).is_file();
                out.push((name, complete));
            }
        }
        out.sort_by_key(|(id, _)| std::cmp::Reverse(id_key(id)));
        Ok(out)
    }

    /// Complete snapshots, newest first: by their sequence (the order they
    /// were taken in, whatever the clock said), then by id.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut listed: Vec<Listed> = self
            .id_dirs()?
            .into_iter()
            .filter(|(_, complete)| *complete)
            .map(|(id, _)| {
                let manifest = self.read_manifest(&id);
                Listed { id, manifest }
            })
            .collect();
        // Stable: equal sequences (older snapshots have none) keep the id order.
        listed.sort_by_key(|l| std::cmp::Reverse(l.sequence()));
        Ok(listed)
    }

    /// The sequence number the next snapshot gets: one more than the
    /// highest in the store (the caller holds the lock).
    pub fn next_sequence(&self) -> Result<u64> {
        Ok(self.list()?.iter().map(Listed::sequence).max().unwrap_or(0) + 1)
    }

    fn read_manifest(&self, id: &str) -> std::result::Result<Manifest, String> {
        let path = self.dir(id).join(MANIFEST);
        let bytes = files::read_small(&path, files::MANIFEST_CAP)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let m = Manifest::parse(&bytes)?;
        if m.id != id {
            return Err(format!("manifest.json names snapshot {}, not {id}", m.id));
        }
        Ok(m)
    }

    /// Directories of snapshots that were never completed.
    pub fn incomplete(&self) -> Result<Vec<String>> {
        Ok(self.id_dirs()?.into_iter().filter(|(_, c)| !c).map(|(id, _)| id).collect())
    }

    /// Removes incomplete snapshot directories (only under the lock) and
    /// returns their ids.
    pub fn remove_incomplete(&self) -> Result<Vec<String>> {
        let ids = self.incomplete()?;
        for id in &ids {
            files::remove_any(&self.dir(id))?;
        }
        if !ids.is_empty() {
            files::sync_dir(&self.root)?;
        }
        Ok(ids)
    }

    /// The manifest of snapshot `id`: exit 2 if nothing has that name,
    /// exit 3 if it is incomplete or its manifest is unreadable.
    pub fn open(&self, id: &str) -> Result<Manifest> {
        let dir = self.dir(id);
        if !is_id(id) || !dir.is_dir() {
            return Err(Error::NoSuchSnapshot { id: id.to_string(), store: self.root.clone() });
        }
        if !dir.join(MANIFEST).is_file() {
            return Err(Error::integrity(id, "it has no manifest.json: an incomplete snapshot, not usable"));
        }
        self.read_manifest(id).map_err(|p| Error::integrity(id, p))
    }

    /// Rewrites snapshot `id`'s manifest (atomically: it is the snapshot's
    /// completion mark, so it is replaced, never half-written).
    pub fn rewrite_manifest(&self, manifest: &Manifest) -> Result<()> {
        let path = self.dir(&manifest.id).join(MANIFEST);
        let own = fs::metadata(&path)
            .map(|m| files::Ownership::of(&m))
            .unwrap_or_else(|_| files::Ownership::mine(files::PRIVATE_FILE));
        files::write_atomic(&path, &manifest.render(), own)
    }

    /// Pins (`pinned`) or unpins snapshot `id`; returns whether that changed
    /// its manifest. The caller holds the lock.
    pub fn set_pinned(&self, id: &str, pinned: bool) -> Result<bool> {
        let mut m = self.open(id)?;
        if m.pinned == pinned {
            return Ok(false);
        }
        m.pinned = pinned;
        self.rewrite_manifest(&m)?;
        Ok(true)
    }

    /// Deletes snapshot `id`: its manifest first, so an interrupted delete
    /// leaves an incomplete directory (never listed, removed by the next
    /// writing run) rather than a listed snapshot with missing files.
    pub fn delete(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        files::remove_any(&dir.join(MANIFEST))?;
        files::sync_dir(&dir)?;
        files::remove_any(&dir)?;
        files::sync_dir(&self.root)
    }

    /// The id of the newest complete snapshot, if any.
    pub fn newest(&self) -> Result<Option<String>> {
        Ok(self.list()?.into_iter().next().map(|l| l.id))
    }

    /// `id`, or the newest snapshot when `None` (exit 5 if the store is empty).
    pub fn resolve(&self, id: Option<&str>) -> Result<String> {
        match id {
            Some(id) => self.expand(id),
            None => self.newest()?.ok_or_else(|| Error::NoSnapshots(self.root.clone())),
        }
    }

    /// The snapshot an id names: `latest` is the newest; an id that names
    /// no snapshot but begins exactly one names that one (`20261202T18`);
    /// several are a usage error naming them. Anything else is returned
    /// as given (and then names no snapshot: exit 2).
    pub fn expand(&self, id: &str) -> Result<String> {
        if id == LATEST {
            return self.newest()?.ok_or_else(|| Error::NoSnapshots(self.root.clone()));
        }
        let ids: Vec<String> = self.id_dirs()?.into_iter().filter(|(_, c)| *c).map(|(id, _)| id).collect();
        if ids.iter().any(|i| i == id) || id.is_empty() {
            return Ok(id.to_string());
        }
        let matching: Vec<&String> = ids.iter().filter(|i| i.starts_with(id)).collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Ok(id.to_string()),
            many => Err(Error::Usage(format!(
                "{id} begins {} snapshots: {}; give more of the id",
                many.len(),
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The snapshot a rollback without an id restores: the newest one that
    /// holds the whole install (not the parts a rollback replaced), cold,
    /// and not taken by a rollback. After a rollback, the newest snapshot is
    /// the state it left; restoring that would undo the rollback.
    pub fn rollback_target(&self, installation: Option<&str>) -> Result<String> {
        let listed = self.list()?;
        if listed.is_empty() {
            return Err(Error::NoSnapshots(self.root.clone()));
        }
        listed
            .into_iter()
            .find(|l| {
                l.manifest.as_ref().is_ok_and(|m| {
                    m.consistency == "cold"
                        && matches!(m.scope.as_str(), "default" | "with-attachments" | "full")
                        && !m.reason.starts_with("before rollback")
                        && !m.of_other_installation(installation)
                })
            })
            .map(|l| l.id)
            .ok_or_else(|| {
                Error::refused(
                    Refusal::NoFullSnapshot,
                    format!(
                        "no snapshot in {} is a cold backup of the whole install; a rollback without an id \
                         restores only such a one",
                        self.root.display()
                    ),
                    "name the snapshot to restore (`bwguard list` shows them)",
                )
            })
    }

    /// The ids a command was given: every snapshot with `all`, the newest
    /// when none is named (exit 5 if the store is empty), else `ids`.
    pub fn chosen(&self, ids: &[String], all: bool) -> Result<Vec<String>> {
        if all {
            Ok(self.list()?.into_iter().map(|l| l.id).collect())
        } else if ids.is_empty() {
            Ok(vec![self.resolve(None)?])
        } else {
            ids.iter().map(|id| self.expand(id)).collect()
        }
    }

    /// Creates the directory of a new snapshot taken at `now` (mode 0700)
    /// and returns its id and path.
    pub fn create_dir(&self, now: DateTime<Utc>) -> Result<(String, PathBuf)> {
        files::ensure_private_dir(&self.root)?;
        let base = now.format("%Y%m%dT%H%M%SZ").to_string();
        for seq in 1.. {
            let id = if seq == 1 { base.clone() } else { format!("{base}-{seq}") };
            let dir = self.dir(&id);
            match files::create_private_dir(&dir) {
                Ok(()) => return Ok((id, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("cannot create snapshot directory", &dir, e)),
            }
        }
        unreachable!("the id sequence is unbounded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shapes() {
        assert!(is_id("20261128T191300Z"));
        assert!(is_id("20261128T191300Z-2"));
        assert!(!is_id("20261128T191300Z-0"));
        assert!(!is_id("20261128T191300"));
        assert!(!is_id("lock"));
        assert!(!is_id("2026112xT191300Z"));
    }

    #[test]
    fn collisions_get_a_sequence_and_sort_after() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let now = Utc::now();
        let ids: Vec<String> = (0..11).map(|_| s.create_dir(now).unwrap().0).collect();
        assert!(ids[1].ends_with("-2") && ids[10].ends_with("-11"));
        for id in &ids {
            fs::write(s.dir(id).join(MANIFEST), "{}").unwrap();
        }
        let newest = s.newest().unwrap().unwrap();
        assert_eq!(newest, ids[10]);
    }

    #[test]
    fn incomplete_dirs_are_not_listed_and_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::new(t.path());
        let (id, dir) = s.create_dir(Utc::now()).unwrap();
        fs::write(dir.join("data.tar.gz"), b"partial").unwrap();
        assert!(s.list().unwrap().is_empty());
        assert_eq!(s.incomplete().unwrap(), vec![id.clone()]);
        assert!(matches!(s.open(&id), Err(Error::Integrity { .. })));
        assert_eq!(s.remove_incomplete().unwrap(), vec![id]);
        assert!(!dir.exists());
    }
}
