//! Checking a copy where it is: the ciphertext against the public manifest
//! and its checksum object; with an identity, the snapshot inside as
//! `verify --deep` checks a local one.

use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use sha2::{Digest, Sha256};

use super::{
    ARCHIVE, ARCHIVE_SUM, INNER, MANIFEST, OBJECT, OBJECT_SUM, ProgressReader, RemoteManifest, SMALL_MAX,
    SUMS, rel, s3_error,
};
use crate::engine::archive::{self, CHUNK, ChannelReader, Digest256, HashReader};
use crate::engine::manifest::{Manifest, hex, sum_line};
use crate::engine::progress::Progress;
use crate::engine::verify;
use crate::error::{Error, Failure, Result};
use crate::offsite::crypt::Identities;
use crate::offsite::s3::Client;

/// Downloads copy `rm` and checks its ciphertext against the public
/// manifest and the checksum object; with `identities`, also decrypts it
/// and checks the snapshot inside as `verify --deep` would. Exit 3 on any
/// disagreement or missing object.
pub fn verify(
    client: &Client,
    rm: &RemoteManifest,
    identities: Option<&Identities>,
    progress: &Progress,
) -> Result<()> {
    check_sum_object(client, rm)?;
    let (body, net) = NetReader::new(open_object(client, rm)?);
    let mut cipher = HashReader::new(ProgressReader { inner: body, progress: Some(progress) });
    let checked = (|| {
        if let Some(ids) = identities {
            let plain = ids.decrypt(&rm.id, BufReader::with_capacity(CHUNK, &mut cipher))?;
            let mut inner: Option<Manifest> = None;
            walk_inner(&rm.id, rm.archive.size, plain, |name, entry| {
                let Some(m) = inner.as_ref() else {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).map_err(|e| inner_error(&rm.id, e))?;
                    inner = Some(inner_manifest(rm, &bytes)?);
                    return Ok(());
                };
                let expected = match name {
                    SUMS => crate::engine::manifest::render_sums(&m.entries),
                    ARCHIVE_SUM => crate::engine::manifest::render_archive_sum(&m.archive.sha256),
                    _ => return verify::check_digest(m, &scan_entry(entry, m)?),
                };
                let mut hashed = HashReader::new(entry);
                io::copy(&mut hashed, &mut io::sink()).map_err(|e| inner_error(&rm.id, e))?;
                if hashed.digest().sha256 != hex(&Sha256::digest(expected.as_bytes())) {
                    return Err(Error::integrity(
                        &rm.id,
                        format!("{name} in the copy does not match its manifest"),
                    ));
                }
                Ok(())
            })?;
        }
        io::copy(&mut cipher, &mut io::sink()).map_err(|e| download_error(client, rm, e))?;
        check_cipher(rm, &cipher.digest())
    })();
    net.explain(checked, client, rm)
}

/// A download that remembers whether the network failed under it, so a
/// broken connection is reported as such (exit 1), not as a damaged copy.
pub(super) struct NetReader<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

/// Whether a [`NetReader`]'s download failed.
pub(super) struct NetFlag(Arc<AtomicBool>);

impl<R> NetReader<R> {
    pub(super) fn new(inner: R) -> (Self, NetFlag) {
        let failed = Arc::new(AtomicBool::new(false));
        (NetReader { inner, failed: failed.clone() }, NetFlag(failed))
    }
}

impl<R: Read> Read for NetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.store(true, Ordering::Relaxed))
    }
}

impl NetFlag {
    /// `outcome`, unless the download broke off: then that is the error.
    pub(super) fn explain<T>(&self, outcome: Result<T>, client: &Client, rm: &RemoteManifest) -> Result<T> {
        match outcome {
            Err(e) if self.0.load(Ordering::Relaxed) => Err(Error::failed(
                Failure::RemoteUnreachable,
                format!(
                    "remote storage: the download of {} broke off ({e}); the copy itself may be fine",
                    client.name(&rel(&rm.id, OBJECT))
                ),
                "check the network and run the command again",
            )),
            other => other,
        }
    }
}

/// The cheap check of a copy, without downloading it: the checksum object
/// agrees with the public manifest and the object has the recorded size.
pub fn quick_check(client: &Client, rm: &RemoteManifest) -> Result<()> {
    check_sum_object(client, rm)?;
    match client.head(&rel(&rm.id, OBJECT)).map_err(s3_error)? {
        Some(size) if size == rm.object.size => Ok(()),
        Some(size) => Err(Error::integrity(
            &rm.id,
            format!("{OBJECT} has {size} bytes, the remote manifest says {}", rm.object.size),
        )),
        None => Err(Error::integrity(&rm.id, format!("{} is missing", client.name(&rel(&rm.id, OBJECT))))),
    }
}

/// Checks the checksum object against the public manifest.
pub(super) fn check_sum_object(client: &Client, rm: &RemoteManifest) -> Result<()> {
    match client.get_small(&rel(&rm.id, OBJECT_SUM)).map_err(s3_error)? {
        None => {
            Err(Error::integrity(&rm.id, format!("{} is missing", client.name(&rel(&rm.id, OBJECT_SUM)))))
        }
        Some(b) if b == sum_line(&rm.object.sha256, OBJECT).as_bytes() => Ok(()),
        Some(_) => Err(Error::integrity(&rm.id, format!("{OBJECT_SUM} does not match the remote manifest"))),
    }
}

/// Opens the encrypted object for reading (exit 3 if it is missing).
pub(super) fn open_object(client: &Client, rm: &RemoteManifest) -> Result<impl Read + Send + use<>> {
    match client.get(&rel(&rm.id, OBJECT)) {
        Ok((_, body)) => Ok(body),
        Err(e) if e.is_not_found() => {
            Err(Error::integrity(&rm.id, format!("{} is missing", client.name(&rel(&rm.id, OBJECT)))))
        }
        Err(e) => Err(s3_error(e)),
    }
}

/// A read error of the encrypted object: its network failure in words.
pub(super) fn download_error(client: &Client, rm: &RemoteManifest, e: io::Error) -> Error {
    Error::failed(
        Failure::RemoteUnreachable,
        format!("remote storage: GET {}: {e}", client.name(&rel(&rm.id, OBJECT))),
        "check the network and run the command again",
    )
}

/// The ciphertext as read against the public manifest.
pub(super) fn check_cipher(rm: &RemoteManifest, d: &Digest256) -> Result<()> {
    if d.size != rm.object.size {
        return Err(Error::integrity(
            &rm.id,
            format!("{OBJECT} has {} bytes, the remote manifest says {}", d.size, rm.object.size),
        ));
    }
    if d.sha256 != rm.object.sha256 {
        return Err(Error::integrity(
            &rm.id,
            format!("{OBJECT} does not match its SHA-256 (the copy was changed or damaged)"),
        ));
    }
    Ok(())
}

/// The snapshot manifest inside a copy, checked against the public one.
pub(super) fn inner_manifest(rm: &RemoteManifest, bytes: &[u8]) -> Result<Manifest> {
    let m = Manifest::parse(bytes).map_err(|p| Error::integrity(&rm.id, p))?;
    if m.id != rm.id || m.archive != rm.archive {
        return Err(Error::integrity(
            &rm.id,
            "the manifest inside the copy does not match the remote manifest",
        ));
    }
    archive::check_manifest(&m)?;
    Ok(m)
}

/// A failure reading the decrypted stream: damage (the age payload is
/// authenticated chunk by chunk) unless it is a network error.
pub(super) fn inner_error(id: &str, e: io::Error) -> Error {
    Error::integrity(id, format!("the encrypted copy cannot be read: {e}"))
}

/// Decompresses and checks the archive in an entry, `verify --deep` style.
fn scan_entry(entry: &mut dyn Read, m: &Manifest) -> Result<Digest256> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(2);
        let checker = s.spawn(move || {
            archive::scan_reader(ChannelReader::new(rx), m, None, &Progress::hidden(0), |_, _| Ok(()))
        });
        let mut pumped = Ok(());
        loop {
            let mut buf = vec![0u8; CHUNK];
            match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    pumped = Err(inner_error(&m.id, e));
                    break;
                }
            }
        }
        drop(tx);
        let scanned = checker.join().map_err(|_| Error::integrity(&m.id, "the checking thread panicked"))?;
        pumped?;
        scanned?.ok_or_else(|| Error::integrity(&m.id, "the archive was not read to its end"))
    })
}

/// Walks the tar inside a decrypted copy: only the snapshot's four files
/// under `<id>/` (and that directory), each once, the manifest first, the archive of
/// `archive_size` bytes; calls `on_file` for each file, then reads the
/// stream to its end, so the age payload's final chunk is authenticated.
pub(super) fn walk_inner(
    id: &str,
    archive_size: u64,
    plain: impl Read,
    mut on_file: impl FnMut(&'static str, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let bad = |p: String| Error::integrity(id, p);
    let mut tar = tar::Archive::new(plain);
    let mut seen: Vec<&str> = Vec::new();
    for entry in tar.entries().map_err(|e| inner_error(id, e))? {
        let mut entry = entry.map_err(|e| inner_error(id, e))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() && path.trim_end_matches('/') == id {
            continue;
        }
        let name = path
            .strip_prefix(&format!("{id}/"))
            .and_then(|n| INNER.iter().copied().find(|i| *i == n))
            .filter(|_| kind.is_file())
            .ok_or_else(|| bad(format!("the copy holds {path:?}, which is not part of snapshot {id}")))?;
        if seen.contains(&name) {
            return Err(bad(format!("the copy holds {name} twice")));
        }
        if seen.is_empty() && name != MANIFEST {
            return Err(bad(format!("the copy starts with {name}, not {MANIFEST}")));
        }
        if name != ARCHIVE && entry.size() > SMALL_MAX {
            return Err(bad(format!("{name} in the copy is implausibly large ({} bytes)", entry.size())));
        }
        if name == ARCHIVE && entry.size() != archive_size {
            return Err(bad(format!(
                "{ARCHIVE} in the copy has {} bytes, the remote manifest says {archive_size}",
                entry.size()
            )));
        }
        seen.push(name);
        on_file(name, &mut entry)?;
    }
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| inner_error(id, e))?;
    if let Some(missing) = INNER.iter().find(|n| !seen.contains(n)) {
        return Err(bad(format!("the copy holds no {missing}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of (path, bytes) files.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o600);
            b.append_data(&mut h, path, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn walk(files: &[(&str, &[u8])], archive_size: u64) -> Result<Vec<String>> {
        let mut seen = Vec::new();
        walk_inner("20261128T000000Z", archive_size, &tar_of(files)[..], |name, r| {
            io::copy(r, &mut io::sink()).unwrap();
            seen.push(name.to_string());
            Ok(())
        })
        .map(|()| seen)
    }

    #[test]
    fn inner_tar_holds_exactly_the_four_files() {
        let id = "20261128T000000Z";
        let (m, s, a, d) = (
            format!("{id}/manifest.json"),
            format!("{id}/SHA256SUMS"),
            format!("{id}/data.tar.gz.sha256"),
            format!("{id}/data.tar.gz"),
        );
        let good = [(m.as_str(), &b"{}"[..]), (s.as_str(), b""), (a.as_str(), b"x"), (d.as_str(), b"gz")];
        assert_eq!(walk(&good, 2).unwrap(), INNER.to_vec());
        let problem = |files: &[(&str, &[u8])], size| walk(files, size).unwrap_err().to_string();
        assert!(problem(&good, 3).contains("has 2 bytes"));
        assert!(problem(&good[..3], 2).contains("holds no data.tar.gz"));
        let twice = [good[0], good[0], good[1], good[2], good[3]];
        assert!(problem(&twice, 2).contains("twice"));
        let extra = [good[0], (&format!("{id}/extra.sh"), b"x"), good[1], good[2], good[3]];
        assert!(problem(&extra, 2).contains("not part of snapshot"));
        let other = [("20200101T000000Z/manifest.json", &b"{}"[..])];
        assert!(problem(&other, 2).contains("not part of snapshot"));
    }
}
