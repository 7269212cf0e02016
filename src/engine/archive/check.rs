//! Reading an archive back against its manifest: every entry's header,
//! place in the tree and bytes, the gzip trailers, and nothing after the
//! end (see the invariants in [`super`]).

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path};
use std::sync::mpsc::{SyncSender, sync_channel};

use sha2::{Digest, Sha256};

use super::{CHUNK, ChannelReader, Digest256, HashReader};
use crate::engine::manifest::{Entry, EntryType, Manifest, hex};
use crate::engine::progress::Progress;
use crate::error::{Error, Result};

/// An entry's content as handed to a scan callback: hashed as it is read,
/// remembering whether the archive (not the caller) failed.
pub struct Content<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    count: u64,
    archive_error: Option<String>,
    progress: &'a Progress,
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                self.progress.add(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.archive_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// Reads the archive at `path` entry by entry, checking each against
/// `manifest` (see the module invariants), and calls `on_entry` for every
/// checked entry with its content. With `stop_after`, stops after that many
/// entries. Returns the digest of the raw archive when it was read to the
/// end (not with `stop_after`). Any disagreement is
/// [`Error::Integrity`]; errors from `on_entry` pass through unchanged.
pub fn scan(
    path: &Path,
    manifest: &Manifest,
    stop_after: Option<usize>,
    progress: &Progress,
    on_entry: impl FnMut(&Entry, &mut Content<'_>) -> Result<()>,
) -> Result<Option<Digest256>> {
    let file = crate::engine::device::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::integrity(&manifest.id, format!("{} is missing", path.display())),
        _ => Error::io("cannot open", path, e),
    })?;
    scan_reader(file, manifest, stop_after, progress, on_entry)
}

/// [`scan`] over any reader of archive bytes. A second thread reads,
/// hashes and decompresses the archive while this one checks entries and
/// hands them to `on_entry`, so decompression overlaps hashing and writing.
pub fn scan_reader<R: Read + Send>(
    reader: R,
    manifest: &Manifest,
    stop_after: Option<usize>,
    progress: &Progress,
    on_entry: impl FnMut(&Entry, &mut Content<'_>) -> Result<()>,
) -> Result<Option<Digest256>> {
    check_manifest(manifest)?;
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(2);
        let decoder = s.spawn(move || decode(reader, &tx));
        let seen = check_stream(ChannelReader::new(rx), manifest, stop_after, progress, on_entry);
        let raw =
            decoder.join().map_err(|_| Error::integrity(&manifest.id, "the decompression thread panicked"));
        seen?;
        if stop_after.is_some_and(|n| n < manifest.entries.len()) {
            return Ok(None);
        }
        let raw =
            raw?.map_err(|e| Error::integrity(&manifest.id, format!("archive unreadable at its end: {e}")))?;
        Ok(Some(raw))
    })
}

/// Reads, hashes and decompresses the raw archive, sending the decompressed
/// bytes in chunks; returns the raw digest once every gzip member ended
/// with a good trailer and nothing followed the last one.
fn decode<R: Read>(reader: R, tx: &SyncSender<io::Result<Vec<u8>>>) -> io::Result<Digest256> {
    let raw = BufReader::with_capacity(CHUNK, HashReader { inner: reader, hasher: Sha256::new(), count: 0 });
    let mut gz = flate2::bufread::MultiGzDecoder::new(raw);
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut got = 0;
        while got < chunk.len() {
            match gz.read(&mut chunk[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(e));
                    return Err(io::Error::other(msg));
                }
            }
        }
        if got == 0 {
            break;
        }
        chunk.truncate(got);
        if tx.send(Ok(chunk)).is_err() {
            return Err(io::Error::other("the reader stopped early"));
        }
    }
    let mut raw = gz.into_inner();
    if !raw.fill_buf()?.is_empty() {
        let e = io::Error::other("archive has bytes after its last gzip member");
        let _ = tx.send(Err(io::Error::other(e.to_string())));
        return Err(e);
    }
    let hr = raw.into_inner();
    Ok(Digest256 { size: hr.count, sha256: hex(&hr.hasher.finalize()) })
}

/// Checks the decompressed tar stream entry by entry against the manifest.
fn check_stream(
    stream: ChannelReader,
    manifest: &Manifest,
    stop_after: Option<usize>,
    progress: &Progress,
    mut on_entry: impl FnMut(&Entry, &mut Content<'_>) -> Result<()>,
) -> Result<usize> {
    let id = manifest.id.as_str();
    let bad = |problem: String| Error::integrity(id, problem);
    let mut archive = tar::Archive::new(stream);
    let mut structure = Structure::new(manifest);
    let want = stop_after.unwrap_or(manifest.entries.len()).min(manifest.entries.len());
    let mut seen = 0;
    {
        let entries = archive.entries().map_err(|e| bad(format!("archive unreadable: {e}")))?;
        for item in entries {
            let mut te = item.map_err(|e| bad(format!("archive unreadable after entry {seen}: {e}")))?;
            let Some(expected) = manifest.entries.get(seen) else {
                return Err(bad(format!(
                    "archive has an entry {} that is not in the manifest",
                    String::from_utf8_lossy(&te.path_bytes())
                )));
            };
            let pax_mtime = pax_mtime(&mut te).map_err(&bad)?;
            check_header(&te, expected, pax_mtime).map_err(&bad)?;
            structure.admit(expected).map_err(&bad)?;
            let mut content =
                Content { inner: &mut te, hasher: Sha256::new(), count: 0, archive_error: None, progress };
            let result = on_entry(expected, &mut content);
            if let Some(e) = content.archive_error.take() {
                return Err(bad(format!("archive unreadable in {}: {e}", expected.path)));
            }
            result?;
            io::copy(&mut content, &mut io::sink())
                .map_err(|e| bad(format!("archive unreadable in {}: {e}", expected.path)))?;
            check_content(expected, content.count, &hex(&content.hasher.finalize())).map_err(&bad)?;
            seen += 1;
            if seen == want && stop_after.is_some_and(|n| n < manifest.entries.len()) {
                return Ok(seen);
            }
        }
    }
    if seen < manifest.entries.len() {
        return Err(bad(format!(
            "archive ends after {seen} entries; the manifest lists {} (first missing: {})",
            manifest.entries.len(),
            manifest.entries[seen].path
        )));
    }
    // The tar end marker was read; what follows must be zero padding, and
    // the decompressor must reach the end of the last member cleanly.
    let mut rest = archive.into_inner();
    let mut tail = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut tail).map_err(|e| bad(format!("archive unreadable at its end: {e}")))?;
        if n == 0 {
            break;
        }
        if tail[..n].iter().any(|&b| b != 0) {
            return Err(bad("archive has data after its end".into()));
        }
    }
    Ok(seen)
}

/// Checks the manifest's own entries before any archive byte is read: every
/// path plain and relative, inside a part, not through a link or a file,
/// listed once, and every link pointing inside the install.
pub fn check_manifest(manifest: &Manifest) -> Result<()> {
    let bad = |problem: String| Error::integrity(&manifest.id, problem);
    let mut structure = Structure::new(manifest);
    for p in &manifest.parts {
        check_rel_path(&p.path).map_err(bad)?;
    }
    for e in &manifest.entries {
        check_rel_path(&e.path).map_err(bad)?;
        structure.admit(e).map_err(bad)?;
        if e.kind == EntryType::Symlink {
            check_link_target(&e.path, e.target.as_deref().unwrap_or_default()).map_err(bad)?;
        }
        if (e.kind == EntryType::File) != e.sha256.is_some() {
            return Err(bad(format!("{}: a file needs a SHA-256, and only a file", e.path)));
        }
    }
    Ok(())
}

/// The PAX `mtime` record of an entry, if it has one (whole seconds; a
/// fraction is dropped, as the manifest records seconds).
fn pax_mtime<R: Read>(te: &mut tar::Entry<'_, R>) -> Result<Option<i64>, String> {
    let Some(pax) = te.pax_extensions().map_err(|e| format!("unreadable PAX records: {e}"))? else {
        return Ok(None);
    };
    for ext in pax {
        let ext = ext.map_err(|e| format!("unreadable PAX record: {e}"))?;
        if ext.key_bytes() == b"mtime" {
            let value = ext.value().map_err(|_| "a PAX mtime that is not text".to_string())?;
            let whole = value.split('.').next().unwrap_or_default();
            return whole.parse().map(Some).map_err(|_| format!("a PAX mtime {value:?} that is not a time"));
        }
    }
    Ok(None)
}

/// Checks a tar header (and its PAX mtime, if any) against its manifest entry.
fn check_header<R: Read>(te: &tar::Entry<'_, R>, m: &Entry, pax_mtime: Option<i64>) -> Result<(), String> {
    let raw_path = te.path_bytes();
    let path = std::str::from_utf8(&raw_path)
        .map_err(|_| "archive has an entry whose name is not UTF-8".to_string())?;
    check_rel_path(path)?;
    if path != m.path {
        return Err(format!(
            "archive entry {path} is not the manifest's {} (names not in the manifest are refused)",
            m.path
        ));
    }
    let h = te.header();
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryType::File,
        tar::EntryType::Directory => EntryType::Dir,
        tar::EntryType::Symlink => EntryType::Symlink,
        tar::EntryType::Link => return Err(format!("{path} is a hard link; refused")),
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            return Err(format!("{path} is a device or fifo; refused"));
        }
        other => return Err(format!("{path} has unsupported entry type {other:?}; refused")),
    };
    if kind != m.kind {
        return Err(format!("{path} is a {kind:?} in the archive but a {:?} in the manifest", m.kind));
    }
    let num = |r: io::Result<u64>, what: &str| r.map_err(|e| format!("{path}: bad {what} in header: {e}"));
    let size = num(h.size(), "size")?;
    if size != m.size {
        return Err(format!("{path} has {size} bytes in the archive, {} in the manifest", m.size));
    }
    let mode = num(h.mode().map(u64::from), "mode")? as u32 & 0o7777;
    let uid = num(h.uid(), "uid")?;
    let gid = num(h.gid(), "gid")?;
    let mtime = match pax_mtime {
        Some(t) => t,
        None => i64::try_from(num(h.mtime(), "mtime")?).map_err(|_| format!("{path}: mtime out of range"))?,
    };
    if mode != m.mode || uid != u64::from(m.uid) || gid != u64::from(m.gid) || mtime != m.mtime {
        return Err(format!("{path}: mode, owner or mtime in the archive differ from the manifest"));
    }
    if kind == EntryType::Symlink {
        let target =
            te.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
        if Some(&target) != m.target.as_ref() {
            return Err(format!("{path}: link target {target} differs from the manifest"));
        }
        check_link_target(path, &target)?;
    }
    Ok(())
}

fn check_content(m: &Entry, count: u64, sha256: &str) -> Result<(), String> {
    if count != m.size {
        return Err(format!("{}: {count} bytes read, {} expected", m.path, m.size));
    }
    if m.kind == EntryType::File && m.sha256.as_deref() != Some(sha256) {
        return Err(format!("{}: content does not match its SHA-256 in the manifest", m.path));
    }
    Ok(())
}

/// A path is acceptable only if it is relative and made of plain names.
pub fn check_rel_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.contains('\0') {
        return Err("archive has an entry with an empty or NUL-holding name".into());
    }
    if path.starts_with('/') {
        return Err(format!("{path} is an absolute path; refused"));
    }
    for c in Path::new(path).components() {
        match c {
            Component::Normal(_) => {}
            _ => return Err(format!("{path} holds `..`, `.` or a root; refused")),
        }
    }
    if path.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(format!("{path} is not a plain relative path; refused"));
    }
    Ok(())
}

/// A symlink may point only inside the install: relative, and not climbing
/// above the install directory.
pub fn check_link_target(path: &str, target: &str) -> Result<(), String> {
    if target.is_empty() || target.starts_with('/') {
        return Err(format!("{path} links to {target}, outside the install; refused"));
    }
    let mut depth = path.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return Err(format!("{path} links to {target}, outside the install; refused"));
        }
    }
    Ok(())
}

/// Tracks the tree the archive builds, so no entry lands inside a file or a
/// symlink, outside the manifest's parts, or twice.
struct Structure<'a> {
    parts: Vec<&'a str>,
    dirs: HashSet<String>,
    seen: HashSet<String>,
}

impl<'a> Structure<'a> {
    fn new(manifest: &'a Manifest) -> Self {
        let parts: Vec<&str> = manifest.parts.iter().map(|p| p.path.as_str()).collect();
        // The ancestors of every part exist in the install, not in the archive.
        let mut dirs = HashSet::from([String::new()]);
        for p in &parts {
            let mut acc = String::new();
            for name in p.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(name);
                dirs.insert(acc.clone());
            }
        }
        Structure { parts, dirs, seen: HashSet::new() }
    }

    fn admit(&mut self, e: &Entry) -> Result<(), String> {
        let path = e.path.as_str();
        if !self.seen.insert(path.to_string()) {
            return Err(format!("{path} appears twice in the archive"));
        }
        if !self.parts.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        {
            return Err(format!("{path} is outside the snapshot's parts; refused"));
        }
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        if !self.dirs.contains(parent) {
            return Err(format!(
                "{path} is not inside a directory of the archive (through a link or a file?); refused"
            ));
        }
        if e.kind == EntryType::Dir {
            self.dirs.insert(path.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths_refuse_escapes() {
        assert!(check_rel_path("bwdata/mssql/data/vault.mdf").is_ok());
        for bad in ["/etc/passwd", "bwdata/../../x", "../x", "./bwdata", "bwdata//x", "bwdata/."] {
            assert!(check_rel_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_targets_must_stay_inside() {
        assert!(check_link_target("bwdata/mssql/backups/latest", "vault_FULL.BAK").is_ok());
        assert!(check_link_target("bwdata/mssql/backups/l", "../../env/x").is_ok());
        assert!(check_link_target("bwdata/mssql/backups/l", "../../../bitwarden.sh").is_ok());
        assert!(check_link_target("bwdata/mssql/backups/l", "../../../../etc").is_err());
        assert!(check_link_target("bwdata/x", "/etc/passwd").is_err());
    }
}
