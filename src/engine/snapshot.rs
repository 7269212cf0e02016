//! Taking a snapshot (safety rule 1): archive and checksum the scope while
//! reading the archive back from disk against what was written, flush, read
//! the checksum files back, and only then write `manifest.json`, the mark of
//! a complete snapshot.
//!
//! Invariants: on any failure the snapshot directory is removed; a run
//! killed midway leaves a directory without a manifest, which is not a
//! snapshot and is removed by the next writing run.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::engine::archive;
use crate::engine::beneath::{Dir, Roots};
use crate::engine::gz::{self, ParallelGz};
use crate::engine::manifest::{
    ARCHIVE, ARCHIVE_SUM, ArchiveInfo, Compression, DatabasePause, FORMAT, MANIFEST, Manifest, SUMS,
    render_archive_sum, render_sums,
};
use crate::engine::progress::{Abort, Progress};
use crate::engine::readback::{self, ReadBack};
use crate::engine::room::{self, Need};
use crate::engine::scope::{self, Scope};
use crate::engine::store::Store;
use crate::engine::verify;
use crate::error::{Error, Result};
use crate::files;
use crate::install::facts;
use crate::install::preflight;
use crate::install::{Install, VOLUME_PART};

/// Default deflate level.
pub const DEFAULT_LEVEL: u32 = 2;

/// What to snapshot and why.
#[derive(Debug, Clone)]
pub struct Request {
    /// Reason recorded in the manifest (`manual`, `before enable-scim`, …).
    pub reason: String,
    /// The user's note.
    pub note: Option<String>,
    /// Which parts.
    pub scope: Scope,
    /// Deflate level.
    pub level: u32,
    /// Accept database files that are open (a crash-consistent copy).
    pub live: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// When to give up reading the sources (the database's downtime limit,
    /// a signal).
    pub abort: Abort,
}

impl Request {
    /// A request for the default scope at the default level.
    pub fn new(reason: impl Into<String>, scope: Scope) -> Self {
        Request {
            reason: reason.into(),
            note: None,
            scope,
            level: DEFAULT_LEVEL,
            live: false,
            progress: false,
            abort: Abort::default(),
        }
    }
}

/// Takes a snapshot of `install` into `store` and returns its manifest.
/// The caller holds the store lock. Refuses (rule 5) while the database
/// files are open unless `req.live`, and (rule 8) when the store's
/// filesystem has no room for the archive's upper bound.
pub fn take(install: &Install, store: &Store, req: &Request, now: DateTime<Utc>) -> Result<Manifest> {
    take_with(install, store, req, now, &mut || None)
}

/// [`take`], calling `after_read` once every source has been read and the
/// archive is on disk, before it is read back: the database may run again
/// from then on (`backup --pause-db`), and what `after_read` returns is
/// recorded in the manifest.
pub fn take_with(
    install: &Install,
    store: &Store,
    req: &Request,
    now: DateTime<Utc>,
    after_read: &mut dyn FnMut() -> Option<DatabasePause>,
) -> Result<Manifest> {
    let (parts, sources) = scope::collect(install, &req.scope)?;
    room::room(&[Need {
        path: room::existing_ancestor(&store.root),
        bytes: room::snapshot_bound(&sources),
        what: "the snapshot archive".into(),
    }])?;
    let open_at_start = preflight::database_files(install, req.live, "a snapshot")?;
    let sequence = store.next_sequence()?;
    let (id, dir) = store.create_dir(now)?;
    let result = write_snapshot(
        install,
        (&id, &dir, sequence),
        req,
        now,
        (parts, &sources),
        open_at_start,
        after_read,
    );
    if result.is_err() {
        // Never leave a half snapshot; a failure to remove it is reported by
        // the next writing run, which removes directories without manifest.
        let _ = files::remove_any(&dir);
    }
    result
}

fn write_snapshot(
    install: &Install,
    (id, dir, sequence): (&str, &Path, u64),
    req: &Request,
    now: DateTime<Utc>,
    (parts, sources): (Vec<crate::engine::manifest::Part>, &[archive::Source]),
    open_at_start: bool,
    after_read: &mut dyn FnMut() -> Option<DatabasePause>,
) -> Result<Manifest> {
    let total: u64 = sources.iter().filter(|s| s.meta.is_file()).map(|s| s.meta.len()).sum();
    let progress = Progress::new("backup", total, req.progress).with_abort(req.abort.clone());
    let reading = std::time::Instant::now();
    let archive_path = dir.join(ARCHIVE);
    let file = files::create_private_file(&archive_path)?;
    let gz = ParallelGz::new(file, req.level, gz::default_workers(), ReadBack::start(&archive_path));
    let mut builder = tar::Builder::new(gz);
    let root = roots(install, parts.iter().map(|p| p.path.as_str()))?;
    let (entries, changed) =
        archive::append_sources(&mut builder, &root, sources, &progress, req.live, &archive_path)
            .map_err(|e| integrity_if_mismatch(id, e))?;
    let write_err =
        |e: std::io::Error| integrity_if_mismatch(id, Error::io("cannot write", &archive_path, e));
    let gz = builder.into_inner().map_err(write_err)?;
    let (file, read_back) = gz.finish().map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop_cache(&file);
    drop(file);
    // Open at the start (checked by the caller's preflight) or now: live.
    let open_now = preflight::database_files(install, req.live, "a snapshot")?;
    let live = open_at_start || open_now || !changed.is_empty();
    let read_seconds = reading.elapsed().as_secs_f64();
    let database_pause = after_read();

    let manifest = Manifest {
        format: FORMAT,
        id: id.to_string(),
        created: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        tool: format!("bwguard {}", env!("CARGO_PKG_VERSION")),
        host: rustix::system::uname().nodename().to_string_lossy().into_owned(),
        install_dir: install.dir.display().to_string(),
        data_dir: install.data_name.clone(),
        reason: req.reason.clone(),
        note: req.note.clone(),
        // Snapshots taken before a change are what a rollback needs.
        pinned: req.reason.starts_with("before "),
        // A Helm values file: the database is the cluster's.
        bitwarden: match req.scope {
            Scope::Files(_) => {
                crate::engine::manifest::BitwardenInfo { database: "external".into(), ..Default::default() }
            }
            _ => facts::read_info(install),
        },
        consistency: if live { "live" } else { "cold" }.into(),
        compression: Compression { format: "gzip".into(), level: req.level },
        archive: ArchiveInfo {
            name: ARCHIVE.into(),
            size: read_back.digest.size,
            sha256: read_back.digest.sha256,
        },
        scope: req.scope.name().into(),
        parts,
        entries,
        changed_while_reading: changed,
        read_seconds: Some((read_seconds * 1000.0).round() / 1000.0),
        database_pause,
        readback: Some(crate::engine::manifest::readback_path(read_back.from_device)),
        sequence: Some(sequence),
    };
    write_private(&dir.join(SUMS), render_sums(&manifest.entries).as_bytes())?;
    write_private(&dir.join(ARCHIVE_SUM), render_archive_sum(&manifest.archive.sha256).as_bytes())?;
    files::sync_dir(dir)?;

    // The archive was read back from the device while it was written
    // (crate::engine::readback), byte for byte against what was written; where the
    // filesystem refuses direct reads or might serve them from the page
    // cache, it is read back now, flushed and dropped from the cache,
    // against the digest of what was written. Every member was
    // already decompressed and compared with its input before it was
    // written, so together this proves what a deep verify proves
    // (docs/performance.md). The checksum files are read back against the
    // manifest.
    if read_back.from_device {
        verify::check_small(dir, &manifest)?;
    } else {
        let progress = Progress::new("read back", manifest.archive.size, req.progress);
        verify::check_files(dir, &manifest, false, &progress)?;
    }

    let tmp = files::temp_name(&dir.join(MANIFEST));
    write_private(&tmp, &manifest.render())?;
    fs::rename(&tmp, dir.join(MANIFEST)).map_err(|e| Error::io("cannot rename into place", &tmp, e))?;
    files::sync_dir(dir)?;
    files::sync_dir(dir.parent().unwrap_or(Path::new("/")))?;
    Ok(manifest)
}

/// The directories the sources are read beneath: the install directory,
/// and the Docker volume's mount point when a part is the volume.
pub fn roots<'a>(install: &Install, parts: impl IntoIterator<Item = &'a str>) -> Result<Roots> {
    let root = Dir::open(&install.dir).map_err(|e| Error::io("cannot open", &install.dir, e))?;
    let mut roots = Roots::new(root);
    if parts.into_iter().any(|p| p == VOLUME_PART)
        && let Some(volume) = &install.volume
    {
        let dir = Dir::open(volume).map_err(|e| Error::io("cannot open", volume, e))?;
        roots = roots.with(VOLUME_PART, dir);
    }
    Ok(roots)
}

/// A read-back that found other bytes on disk than were written is an
/// integrity failure (exit 3), wherever the archive writer reported it: to
/// the archiver mid-stream or at the end.
fn integrity_if_mismatch(id: &str, e: Error) -> Error {
    match e {
        Error::Io { ref source, .. } if readback::is_mismatch(source) => {
            Error::integrity(id, format!("{ARCHIVE} {source}"))
        }
        e => e,
    }
}

/// Writes a new 0600 file and flushes it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f: File = files::create_private_file(path)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io("cannot write", path, e))
}

/// Asks the kernel to forget the cached pages of a flushed file: the
/// archive is not read again soon, and the server's cache is worth more.
fn drop_cache(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::readback::Mismatch;
    use crate::error::Exit;

    #[test]
    fn a_read_back_mismatch_is_an_integrity_failure_however_it_arrives() {
        let mismatch = || std::io::Error::new(std::io::ErrorKind::InvalidData, Mismatch::Differs(10 << 20));
        let e = integrity_if_mismatch(
            "20261129T000000Z",
            Error::io("cannot write", "/s/data.tar.gz", mismatch()),
        );
        assert_eq!(e.exit(), Exit::Integrity);
        assert!(e.to_string().contains("byte 10485760 differs"), "{e}");
        let full = Error::io("cannot write", "/s/data.tar.gz", std::io::Error::from_raw_os_error(28));
        assert_eq!(integrity_if_mismatch("x", full).exit(), Exit::Failed);
    }
}
