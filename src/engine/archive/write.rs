//! Writing the archive: each source in scope order, its bytes hashed as
//! they pass, and a file that changes while it is read refused (or, for a
//! live copy, recorded).
//!
//! Every source is opened from the install directory's descriptor without
//! following a link anywhere on its path (see [`crate::engine::beneath`])
//! and must be the very object the walk saw (device and inode): the
//! install's owner cannot swap a file for a link to a root-only file and
//! have root archive it under the owner's name. A file is changed when its
//! inode, size, mtime or ctime differ after reading; a directory is changed
//! when it gained or lost entries while the archive was written.

use std::fs::{self, File};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{CHUNK, Source};
use crate::engine::beneath::Roots;
use crate::engine::manifest::{Entry, EntryType, hex};
use crate::engine::progress::Progress;
use crate::error::{Error, Failure, Refusal, Result};

/// Reads exactly `len` bytes of a source file, hashing them. A file that
/// ends early is an error, since the archive header already promised `len`
/// bytes, unless `tolerate` (a live copy): then the rest is zeros and
/// `short` is set.
struct SourceReader<'a> {
    inner: SourceBytes,
    path: &'a Path,
    left: u64,
    hasher: Sha256,
    progress: &'a Progress,
    tolerate: bool,
    short: bool,
    /// Why reading the source failed, to tell it from a failed write.
    error: Option<io::Error>,
}

/// Where a source file's bytes come from: a file of a chunk or more from
/// the device, ahead of the archiver (see [`crate::engine::device`]); a smaller one
/// read whole at once.
enum SourceBytes {
    Device(crate::engine::device::DeviceReader),
    Small { file: File, bytes: Vec<u8>, pos: usize },
}

impl SourceBytes {
    fn open(file: File, len: u64) -> io::Result<Self> {
        if len >= CHUNK as u64 {
            return Ok(SourceBytes::Device(crate::engine::device::open_source_file(file, len)));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        (&file).take(len).read_to_end(&mut bytes)?;
        Ok(SourceBytes::Small { file, bytes, pos: 0 })
    }

    fn file(&self) -> &File {
        match self {
            SourceBytes::Device(d) => d.file(),
            SourceBytes::Small { file, .. } => file,
        }
    }

    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            SourceBytes::Device(d) => d.fill_buf(),
            SourceBytes::Small { bytes, pos, .. } => Ok(&bytes[*pos..]),
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            SourceBytes::Device(d) => d.consume(n),
            SourceBytes::Small { pos, .. } => *pos += n,
        }
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || out.is_empty() {
            return Ok(0);
        }
        if let Some(why) = self.progress.must_stop() {
            let e = io::Error::new(io::ErrorKind::TimedOut, format!("stopped reading: {why}"));
            return Err(self.failed(e));
        }
        let want = self.left.min(out.len() as u64) as usize;
        let n = match self.inner.fill_buf() {
            Ok([]) if self.tolerate => {
                out[..want].fill(0);
                self.short = true;
                want
            }
            Ok([]) => {
                let e = io::Error::other(format!("{} shrank while it was being read", self.path.display()));
                return Err(self.failed(e));
            }
            Ok(bytes) => {
                let n = bytes.len().min(want);
                out[..n].copy_from_slice(&bytes[..n]);
                self.inner.consume(n);
                n
            }
            Err(e) => return Err(self.failed(e)),
        };
        self.hasher.update(&out[..n]);
        self.progress.add(n as u64);
        self.left -= n as u64;
        Ok(n)
    }
}

impl SourceReader<'_> {
    /// Keeps `e` as the reason and returns a copy for the archiver.
    fn failed(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.error = Some(e);
        copy
    }
}

/// Appends `sources` to `builder` in order and returns their manifest
/// entries. A file that changes while it is read fails the run, unless
/// `live`: then its path is returned among the changed ones.
pub fn append_sources<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Roots,
    sources: &[Source],
    progress: &Progress,
    live: bool,
    archive: &Path,
) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut entries = Vec::with_capacity(sources.len());
    let mut changed = Vec::new();
    for s in sources {
        let (entry, was_changed) = append_one(builder, root, s, progress, live, archive)?;
        if was_changed {
            changed.push(entry.path.clone());
        }
        entries.push(entry);
    }
    // A directory that gained or lost entries while the archive was written
    // is not what the snapshot holds.
    for dir in sources.iter().filter(|s| s.meta.is_dir()) {
        let mut walked: Vec<&str> = sources
            .iter()
            .filter_map(|c| c.rel.strip_prefix(dir.rel.as_str())?.strip_prefix('/'))
            .filter(|rest| !rest.contains('/'))
            .collect();
        walked.sort_unstable();
        let mut now = list(root, &dir.rel).map_err(|e| Error::io("cannot list", &dir.abs, e))?;
        now.retain(|n| !n.starts_with(crate::engine::scope::OWN_PREFIX));
        now.sort_unstable();
        if now != walked {
            let said = format!("{} gained or lost entries while it was being archived", dir.abs.display());
            if !live {
                return Err(changed_error(said));
            }
            changed.push(dir.rel.clone());
        }
    }
    Ok((entries, changed))
}

/// The names in directory `rel` of the install, as it is now.
fn list(root: &Roots, rel: &str) -> io::Result<Vec<String>> {
    let dir = root.open_beneath(rel, false)?;
    fs::read_dir(dir.path(""))?.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect()
}

fn changed_error(said: String) -> Error {
    Error::failed(
        Failure::ChangedMeanwhile,
        said,
        "stop whatever writes to it (for the database: `./bitwarden.sh stop`) and run the command again",
    )
}

fn replaced_error(path: &Path) -> Error {
    changed_error(format!("{} was replaced while it was being archived", path.display()))
}

/// Whether `now` is another object than `then`, or was written since.
fn differs(then: &fs::Metadata, now: &fs::Metadata) -> bool {
    (then.dev(), then.ino(), then.len(), then.mtime(), then.mtime_nsec(), then.ctime(), then.ctime_nsec())
        != (now.dev(), now.ino(), now.len(), now.mtime(), now.mtime_nsec(), now.ctime(), now.ctime_nsec())
}

fn append_one<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Roots,
    s: &Source,
    progress: &Progress,
    live: bool,
    archive: &Path,
) -> Result<(Entry, bool)> {
    let meta = &s.meta;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    // A time before 1970 does not fit the header's unsigned field: it goes
    // in a PAX `mtime` record before the entry, as GNU tar writes and reads
    // it, and the header holds 0.
    header.set_mtime(meta.mtime().max(0) as u64);
    if meta.mtime() < 0 {
        let value = meta.mtime().to_string();
        builder
            .append_pax_extensions([("mtime", value.as_bytes())])
            .map_err(|e| Error::io("cannot write", archive, e))?;
    }
    let mut entry = Entry {
        path: s.rel.clone(),
        kind: EntryType::File,
        size: 0,
        sha256: None,
        target: None,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
    };
    let ft = meta.file_type();
    let write_err = |e: io::Error| Error::io("cannot write", archive, e);
    if ft.is_symlink() {
        let (parent, name) = s.rel.rsplit_once('/').unwrap_or(("", &s.rel));
        let dir = root.open_beneath(parent, false).map_err(|e| Error::io("cannot open", &s.abs, e))?;
        let now = fs::symlink_metadata(dir.path(name)).map_err(|e| Error::io("cannot read", &s.abs, e))?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(replaced_error(&s.abs));
        }
        let target = fs::read_link(dir.path(name)).map_err(|e| Error::io("cannot read link", &s.abs, e))?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, &s.rel, &target).map_err(write_err)?;
        entry.kind = EntryType::Symlink;
        entry.target = Some(target.to_string_lossy().into_owned());
    } else if ft.is_dir() {
        let now = root.open_beneath(&s.rel, false).and_then(|d| fs::metadata(d.path("")));
        let now = now.map_err(|e| Error::io("cannot open", &s.abs, e))?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(replaced_error(&s.abs));
        }
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder.append_data(&mut header, &s.rel, io::empty()).map_err(write_err)?;
        entry.kind = EntryType::Dir;
    } else if ft.is_file() {
        let len = meta.len();
        let file = root.open_file(&s.rel).map_err(|e| Error::io("cannot open", &s.abs, e))?;
        let opened = file.metadata().map_err(|e| Error::io("cannot read", &s.abs, e))?;
        if !opened.is_file() || (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            // Swapped between the walk and now (for a FIFO, a device or
            // another file): never archived under the walk's name.
            if live && opened.is_file() {
                // A live copy records it; its bytes are of the new file.
            } else {
                return Err(replaced_error(&s.abs));
            }
        }
        let inner = SourceBytes::open(file, len).map_err(|e| Error::io("cannot open", &s.abs, e))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(len);
        let mut reader = SourceReader {
            inner,
            path: &s.abs,
            left: len,
            hasher: Sha256::new(),
            progress,
            tolerate: live,
            short: false,
            error: None,
        };
        let appended = builder.append_data(&mut header, &s.rel, &mut reader);
        if let Some(e) = reader.error.take() {
            return Err(Error::io("cannot read", &s.abs, e));
        }
        appended.map_err(write_err)?;
        let after = reader.inner.file().metadata().map_err(|e| Error::io("cannot read", &s.abs, e))?;
        let changed = reader.short || differs(meta, &after);
        entry.size = len;
        entry.sha256 = Some(hex(&reader.hasher.finalize()));
        if changed && live {
            return Ok((entry, true));
        }
        if changed {
            return Err(changed_error(format!("{} changed while it was being read", s.abs.display())));
        }
    } else {
        return Err(Error::refused(
            Refusal::NotAPlainFile,
            format!(
                "{} is a special file (socket, fifo or device) that a snapshot cannot hold",
                s.abs.display()
            ),
            "move it out of the data directory, or snapshot without --full",
        ));
    }
    Ok((entry, false))
}
