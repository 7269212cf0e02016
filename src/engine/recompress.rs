//! Compressing a rollback's safety snapshot once the outage is over.
//!
//! A rollback stores the state it replaces uncompressed
//! ([`crate::engine::rollback::SAFETY_LEVEL`]): during an outage the
//! admin's time is worth more than the disk. The next prune compresses it
//! like any other snapshot, crash-safely:
//!
//! 1. the archive is decompressed (its raw SHA-256 checked against the
//!    manifest) and compressed again into a staging directory beside the
//!    snapshot, `.recompress-ID`, read back as every new archive is, with
//!    `SHA256SUMS` copied, the new archive checksum and manifest written;
//! 2. the staged snapshot is verified deeply (every entry against the
//!    manifest's checksums);
//! 3. the staging directory and the snapshot's directory are exchanged in
//!    one `renameat2(RENAME_EXCHANGE)`, and the old one (now the staging
//!    name) is removed.
//!
//! At every instant the snapshot's name holds a complete snapshot, the old
//! or the new; a killed run leaves at most a staging directory, which the
//! next writing run removes ([`remove_leftovers`]). Where the filesystem
//! cannot exchange two directories, the snapshot is left as it is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::engine::archive::{CHUNK, HashReader};
use crate::engine::gz::{self, ParallelGz};
use crate::engine::manifest::{ARCHIVE, ARCHIVE_SUM, MANIFEST, Manifest, SUMS, render_archive_sum};
use crate::engine::progress::Progress;
use crate::engine::readback::ReadBack;
use crate::engine::rollback::SAFETY_LEVEL;
use crate::engine::snapshot::DEFAULT_LEVEL;
use crate::engine::store::{Store, is_id};
use crate::engine::{room, verify};
use crate::error::{Error, Result};
use crate::files;

/// The name a snapshot is compressed under before the exchange.
const STAGING_PREFIX: &str = ".recompress-";

/// Whether `m` is a rollback's safety snapshot still stored uncompressed.
pub fn wanted(m: &Manifest) -> bool {
    m.reason.starts_with("before rollback") && m.compression.level == SAFETY_LEVEL
}

/// The archive sizes before and after compressing one snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The uncompressed archive.
    pub before: u64,
    /// The compressed one.
    pub after: u64,
}

/// Compresses snapshot `id` of `store` at the default level (the caller
/// holds the lock and has checked [`wanted`]). `Ok(None)`: the filesystem
/// cannot exchange directories, and nothing changed.
pub fn recompress(store: &Store, id: &str, progress: bool) -> Result<Option<Sizes>> {
    let old = store.open(id)?;
    let dir = store.dir(id);
    let stage = staging(store, id);
    if stage.exists() {
        files::remove_any(&stage)?;
    }
    room::room(&[room::Need {
        path: store.root.clone(),
        bytes: room::on_disk(old.archive.size),
        what: format!("compressing snapshot {id}"),
    }])?;
    files::create_private_dir(&stage).map_err(|e| Error::io("cannot create", &stage, e))?;
    let made = stage_compressed(&dir, &stage, &old, progress);
    let new = match made {
        Ok(m) => m,
        Err(e) => {
            let _ = files::remove_any(&stage);
            return Err(e);
        }
    };
    match exchange(&stage, &dir) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            files::remove_any(&stage)?;
            return Ok(None);
        }
        Err(e) => {
            let _ = files::remove_any(&stage);
            return Err(Error::io("cannot swap in the compressed snapshot", &dir, e.into()));
        }
    }
    files::sync_dir(&store.root)?;
    // The staging name now holds the uncompressed snapshot.
    files::remove_any(&stage)?;
    files::sync_dir(&store.root)?;
    Ok(Some(Sizes { before: old.archive.size, after: new.archive.size }))
}

/// Writes the compressed snapshot of `old` (in `dir`) into `stage` and
/// proves it: read back while written, then a deep verify.
fn stage_compressed(dir: &Path, stage: &Path, old: &Manifest, progress: bool) -> Result<Manifest> {
    let id = old.id.as_str();
    let from = dir.join(ARCHIVE);
    let (file, _) = files::open_regular(&from).map_err(|e| Error::io("cannot open", &from, e))?;
    let to = stage.join(ARCHIVE);
    let out = files::create_private_file(&to)?;
    let bar = Progress::new(&format!("compress {id}"), old.archive.size, progress);
    let mut raw = HashReader::new(Counted { inner: file, bar: &bar });
    let mut gz_in = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, &mut raw));
    let mut gz_out = ParallelGz::new(out, DEFAULT_LEVEL, gz::default_workers(), ReadBack::start(&to));
    let copied = io::copy(&mut gz_in, &mut gz_out);
    drop(gz_in);
    let finished = copied.and_then(|_| gz_out.finish());
    let (out, read_back) = finished.map_err(|e| {
        if crate::engine::readback::is_mismatch(&e) {
            Error::integrity(id, format!("the compressed copy: {e}"))
        } else {
            Error::io("cannot compress", &from, e)
        }
    })?;
    out.sync_all().map_err(|e| Error::io("cannot write", &to, e))?;
    drop(out);
    // What was decompressed is what the snapshot's checksums were made of.
    let rest = io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::io("cannot read", &from, e))?;
    if rest != 0 {
        return Err(Error::integrity(id, format!("{ARCHIVE} goes on after its last gzip member")));
    }
    verify::check_digest(old, &raw.digest())?;
    drop(raw);
    drop(bar);

    let mut new = old.clone();
    new.compression.level = DEFAULT_LEVEL;
    new.archive.size = read_back.digest.size;
    new.archive.sha256 = read_back.digest.sha256;
    new.readback = Some(crate::engine::manifest::readback_path(read_back.from_device));
    let sums = files::read_small(&dir.join(SUMS), files::MANIFEST_CAP)
        .map_err(|e| Error::integrity(id, format!("{SUMS} cannot be read: {e}")))?;
    write_new(&stage.join(SUMS), &sums)?;
    write_new(&stage.join(ARCHIVE_SUM), render_archive_sum(&new.archive.sha256).as_bytes())?;
    files::sync_dir(stage)?;
    verify::check_files(stage, &new, true, &Progress::new("check", new.archive.size, progress))?;
    write_new(&stage.join(MANIFEST), &new.render())?;
    files::sync_dir(stage)?;
    Ok(new)
}

/// Writes a new private file and flushes it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = files::create_private_file(path)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| Error::io("cannot write", path, e))
}

/// Exchanges two directories atomically.
fn exchange(a: &Path, b: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
}

fn staging(store: &Store, id: &str) -> PathBuf {
    store.root.join(format!("{STAGING_PREFIX}{id}"))
}

/// Removes what killed compressions left (the caller holds the lock);
/// returns the snapshot ids they were for. The snapshots themselves are
/// whole: the old or the compressed one.
pub fn remove_leftovers(store: &Store) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(&store.root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list store", &store.root, e)),
    };
    let mut ids = Vec::new();
    for d in rd {
        let d = d.map_err(|e| Error::io("cannot list store", &store.root, e))?;
        let name = d.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix(STAGING_PREFIX).filter(|id| is_id(id)) {
            files::remove_any(&d.path())?;
            ids.push(id.to_string());
        }
    }
    if !ids.is_empty() {
        files::sync_dir(&store.root)?;
    }
    Ok(ids)
}

/// A reader that moves a progress bar.
struct Counted<'a, R> {
    inner: R,
    bar: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.add(n as u64);
        Ok(n)
    }
}
