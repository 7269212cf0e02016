//! Checking a snapshot on disk against its manifest (docs/guide.md, "The snapshot format").
//!
//! Plain: the archive's SHA-256 against both `data.tar.gz.sha256` and the
//! manifest, and `SHA256SUMS` against the manifest. Deep: also decompress to
//! the end and check every entry. Every disagreement, a missing checksum
//! file included, is an integrity failure (exit 3).

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::engine::archive::{self, Digest256};
use crate::engine::manifest::{ARCHIVE, ARCHIVE_SUM, Manifest, SUMS, hex, render_archive_sum, render_sums};
use crate::engine::progress::Progress;
use crate::error::{Error, Result};

/// Checks the files of the snapshot in `dir` against `manifest`.
pub fn check_files(dir: &Path, manifest: &Manifest, deep: bool, progress: &Progress) -> Result<()> {
    let id = manifest.id.as_str();
    let bad = |p: String| Error::integrity(id, p);
    check_small(dir, manifest)?;
    let path = dir.join(ARCHIVE);
    let digest = if deep {
        archive::scan(&path, manifest, None, progress, |_, _| Ok(()))?
    } else {
        Some(hash_file(&path, progress).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => bad(format!("{ARCHIVE} is missing")),
            _ => Error::io("cannot read", &path, e),
        })?)
    };
    let Some(digest) = digest else {
        return Err(bad("the archive was not read to its end".into()));
    };
    check_digest(manifest, &digest)
}

/// Checks the archive's size and SHA-256, as read, against the manifest.
pub fn check_digest(manifest: &Manifest, digest: &Digest256) -> Result<()> {
    let bad = |p: String| Error::integrity(&manifest.id, p);
    if digest.size != manifest.archive.size {
        return Err(bad(format!(
            "{ARCHIVE} has {} bytes, the manifest says {}",
            digest.size, manifest.archive.size
        )));
    }
    if digest.sha256 != manifest.archive.sha256 {
        return Err(bad(format!("{ARCHIVE} does not match its SHA-256 (the file was changed or damaged)")));
    }
    Ok(())
}

/// Checks the manifest itself, and `SHA256SUMS` and `data.tar.gz.sha256`
/// in `dir` against it: everything but the archive's bytes.
pub fn check_small(dir: &Path, manifest: &Manifest) -> Result<()> {
    let bad = |p: String| Error::integrity(&manifest.id, p);
    archive::check_manifest(manifest)?;
    let read_small = |name: &str| -> Result<String> {
        crate::files::read_small_text(&dir.join(name), crate::files::MANIFEST_CAP)
            .map_err(|e| bad(format!("{name} cannot be read: {e}")))
    };
    if read_small(SUMS)? != render_sums(&manifest.entries) {
        return Err(bad(format!("{SUMS} does not match the manifest")));
    }
    let archive_sum = read_small(ARCHIVE_SUM)?;
    if archive_sum != render_archive_sum(&manifest.archive.sha256) {
        return Err(bad(format!("{ARCHIVE_SUM} does not match the manifest's archive checksum")));
    }
    Ok(())
}

/// SHA-256 and size of a whole file as the storage device holds it (read
/// past the page cache, see [`crate::engine::device`]).
pub fn hash_file(path: &Path, progress: &Progress) -> io::Result<Digest256> {
    let mut hasher = Sha256::new();
    let size = crate::engine::device::read_through(path, |chunk| {
        hasher.update(chunk);
        progress.add(chunk.len() as u64);
    })?;
    Ok(Digest256 { size, sha256: hex(&hasher.finalize()) })
}
