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
    let sums = read_small(SUMS)?;
    let expected = render_sums(&manifest.entries);
    if sums != expected {
        return Err(bad(format!(
            "{SUMS} does not match the manifest: {}",
            first_difference(&sums, &expected)
        )));
    }
    let archive_sum = read_small(ARCHIVE_SUM)?;
    if archive_sum != render_archive_sum(&manifest.archive.sha256) {
        return Err(bad(format!("{ARCHIVE_SUM} does not match the manifest's archive checksum")));
    }
    Ok(())
}

/// Where `actual` (a checksum file's lines) first differs from `expected`
/// (the manifest's), naming the entry.
fn first_difference(actual: &str, expected: &str) -> String {
    let name = |line: &str| line.split_once("  ").map_or(line, |(_, n)| n).to_string();
    let (mut a, mut e) = (actual.lines(), expected.lines());
    for n in 1.. {
        match (a.next(), e.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) if name(x) == name(y) => {
                return format!("line {n}: the checksum of {} differs from the manifest's", name(y));
            }
            (Some(x), Some(y)) => {
                return format!("line {n} names {}, the manifest {} there", printable(&name(x)), name(y));
            }
            (Some(x), None) => {
                return format!("line {n} names {}, which the manifest lacks", printable(&name(x)));
            }
            (None, Some(y)) => return format!("{} (line {n}) is missing", name(y)),
            (None, None) => break,
        }
    }
    "they differ in their line endings".into()
}

/// A name from a file in the store as it can be printed.
fn printable(name: &str) -> String {
    crate::report::human::one_line(name).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_file_that_differs_names_the_entry() {
        let want = "aa  bwdata/config.yml\nbb  bwdata/env/uid.env\n";
        assert!(
            first_difference("aa  bwdata/config.yml\ncc  bwdata/env/uid.env\n", want)
                .contains("checksum of bwdata/env/uid.env differs")
        );
        assert!(
            first_difference("aa  bwdata/config.yml\n", want)
                .contains("bwdata/env/uid.env (line 2) is missing")
        );
        assert!(
            first_difference(&format!("{want}dd  bwdata/extra\n"), want)
                .contains("bwdata/extra, which the manifest lacks")
        );
        assert!(
            first_difference("aa  bwdata/config.yml\nbb  bwdata/env/other\n", want)
                .contains("names bwdata/env/other")
        );
    }
}
