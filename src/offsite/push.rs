//! Pushing a snapshot: read once, encrypted to the remote's recipients and
//! uploaded in parts with one part in flight; the public manifest last.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    ARCHIVE, INNER, MAX_PARTS, OBJECT, OBJECT_SUM, PART, ProgressReader, REMOTE_FORMAT, REMOTE_MANIFEST,
    RemoteManifest, crypt, parse_manifest, rel, s3_error,
};
use crate::context::Output;
use crate::engine::archive::{Digest256, HashReader};
use crate::engine::manifest::{ArchiveInfo, Manifest, hex, sum_line};
use crate::engine::progress::Progress;
use crate::engine::store::{Store, id_key};
use crate::engine::verify;
use crate::error::{Error, Failure, Refusal, Result};
use crate::files;
use crate::offsite::remote::{Remote, pick};
use crate::offsite::s3::{Client, S3Error, UploadedPart};
use crate::offsite::sign::{Accept, HostKey, SIG};
use crate::report::{PushReport, PushedCopy};

/// What `push` did with one snapshot.
#[derive(Debug)]
pub enum Pushed {
    /// A complete copy was already there.
    AlreadyThere(RemoteManifest),
    /// Uploaded now.
    Uploaded(RemoteManifest),
}

/// A multipart upload this host started, recorded in the store so the next
/// push can abandon it if this run is killed (its parts cost storage).
#[derive(Debug, Serialize, Deserialize)]
struct PendingUpload {
    id: String,
    upload_id: String,
}

/// The store file recording an upload in flight to remote `name`.
fn pending_path(store: &Store, name: &str) -> std::path::PathBuf {
    store.root.join(format!("upload-{name}.json"))
}

/// Abandons an upload a killed push left, if any, and says what happened
/// (`None` if there was none). Failing to abandon it does not stop a push:
/// its parts then cost storage until the bucket's lifecycle rule for
/// incomplete uploads removes them.
pub fn abandon_pending(client: &Client, store: &Store, name: &str) -> Result<Option<String>> {
    let path = pending_path(store, name);
    let Ok(bytes) = files::read_small(&path, files::SMALL_CAP) else {
        return Ok(None);
    };
    let said = match serde_json::from_slice::<PendingUpload>(&bytes) {
        Ok(p) => Some(match client.abort_multipart(&rel(&p.id, OBJECT), &p.upload_id) {
            Ok(()) => {
                format!("abandoned the upload of {} that an interrupted push left on remote {name}", p.id)
            }
            Err(e) => format!(
                "could not abandon the upload of {} that an interrupted push left on remote {name} ({e}); \
                 its parts cost storage until a lifecycle rule for incomplete uploads removes them",
                p.id
            ),
        }),
        Err(_) => None,
    };
    forget_pending(store, name)?;
    Ok(said)
}

/// Removes the record of an upload in flight to remote `name`.
pub fn forget_pending(store: &Store, name: &str) -> Result<()> {
    files::remove_any(&pending_path(store, name))
}

/// Copies snapshot `id` of `store` to the remote, encrypted (the caller
/// holds the store lock). The local archive is read once: hashed,
/// encrypted and uploaded as it is read, and the upload is completed only
/// if its checksum matches the manifest. The public manifest is signed
/// with `key`; the signature goes up before the manifest, which completes
/// the copy.
#[allow(clippy::too_many_arguments)]
pub fn push(
    client: &Client,
    remote: &Remote,
    remote_name: &str,
    store: &Store,
    key: &HostKey,
    id: &str,
    now: DateTime<Utc>,
    progress_visible: bool,
) -> Result<Pushed> {
    let m = store.open(id)?;
    let dir = store.dir(id);
    verify::check_small(&dir, &m)?;
    if let Some(bytes) = client.get_small(&rel(id, REMOTE_MANIFEST)).map_err(s3_error)? {
        let there = parse_manifest(id, &bytes)
            .map_err(|p| Error::integrity(id, format!("on remote {remote_name}: {p}")))?;
        if there.archive != m.archive {
            return Err(Error::refused(
                Refusal::RemoteConflict,
                format!(
                    "remote {remote_name} holds a different snapshot {id} (its archive checksum differs)"
                ),
                "two hosts push to the same prefix: give each host its own s3://BUCKET/PREFIX",
            ));
        }
        return Ok(Pushed::AlreadyThere(there));
    }
    let object = rel(id, OBJECT);
    let part = part_size(m.archive.size);
    let upload_id = client.create_multipart(&object).map_err(s3_error)?;
    let pending = serde_json::to_vec(&PendingUpload { id: id.to_string(), upload_id: upload_id.clone() })
        .unwrap_or_default();
    files::write_atomic(
        &pending_path(store, remote_name),
        &pending,
        files::Ownership::mine(files::PRIVATE_FILE),
    )?;
    let progress = Progress::new(&format!("push {id}"), m.archive.size, progress_visible);
    let sent = upload(client, &object, &upload_id, part, &remote.recipients, &dir, &m, &progress).and_then(
        |(parts, cipher)| {
            client.complete_multipart(&object, &upload_id, &parts).map_err(s3_error)?;
            Ok(cipher)
        },
    );
    let cipher = match sent {
        Ok(c) => c,
        Err(e) => {
            // Best effort: the parts cost storage until abandoned; a failure
            // here leaves the record for the next push to retry.
            if client.abort_multipart(&object, &upload_id).is_ok() {
                let _ = files::remove_any(&pending_path(store, remote_name));
            }
            return Err(e);
        }
    };
    match client.head(&object).map_err(s3_error)? {
        Some(size) if size == cipher.size => {}
        other => {
            return Err(Error::failed(
                Failure::RemoteError,
                format!(
                    "the uploaded {} has {} bytes, {} were sent",
                    client.name(&object),
                    other.map_or("no".to_string(), |s| s.to_string()),
                    cipher.size
                ),
                "run the push again; the incomplete copy is not listed and will be replaced",
            ));
        }
    }
    client.put(&rel(id, OBJECT_SUM), sum_line(&cipher.sha256, OBJECT).as_bytes()).map_err(s3_error)?;
    let rm = RemoteManifest {
        format: REMOTE_FORMAT,
        id: id.to_string(),
        created: m.created.clone(),
        pushed: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        tool: format!("bwguard {}", env!("CARGO_PKG_VERSION")),
        reason: m.reason.clone(),
        pinned: m.pinned,
        consistency: m.consistency.clone(),
        bitwarden: m.bitwarden.clone(),
        content_size: m.content_size(),
        archive: m.archive.clone(),
        object: ArchiveInfo { name: OBJECT.into(), size: cipher.size, sha256: cipher.sha256 },
        recipients: remote.recipients.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&rm).unwrap_or_default();
    bytes.push(b'\n');
    client.put(&rel(id, SIG), &key.sign(&bytes)).map_err(s3_error)?;
    client.put(&rel(id, REMOTE_MANIFEST), &bytes).map_err(s3_error)?;
    files::remove_any(&pending_path(store, remote_name))?;
    Ok(Pushed::Uploaded(rm))
}

/// Pushes `ids` of `store` to remote `name` (the only one when `None`),
/// oldest first as given, stopping at the first failure (the caller holds
/// the store lock). First abandons an upload a killed push left.
pub fn push_ids(
    out: &mut Output,
    store: &Store,
    name: Option<&str>,
    ids: &[String],
    now: DateTime<Utc>,
    progress: bool,
) -> Result<PushReport> {
    let (name, remote) = pick(&store.root, name)?;
    let client = remote.client()?;
    let key = host_key(out, store)?;
    if let Some(said) = abandon_pending(&client, store, &name)? {
        out.warn(said);
    }
    let mut report = PushReport { remote: name.clone(), pushed: Vec::new(), already_there: Vec::new() };
    for id in ids {
        match push(&client, &remote, &name, store, &key, id, now, progress)? {
            Pushed::Uploaded(rm) => report.pushed.push(PushedCopy {
                id: id.clone(),
                object: client.name(&rel(id, OBJECT)),
                object_size: rm.object.size,
                object_sha256: rm.object.sha256,
            }),
            Pushed::AlreadyThere(_) => report.already_there.push(id.clone()),
        }
    }
    Ok(report)
}

/// After `backup --push`: pushes snapshot `new` and every local snapshot
/// newer than the newest copy on the remote, oldest first, so a run after
/// a failed push catches up (and copies pruned from the remote are not
/// sent again).
pub fn push_newer(
    out: &mut Output,
    store: &Store,
    name: Option<&str>,
    new: &str,
    now: DateTime<Utc>,
    progress: bool,
) -> Result<PushReport> {
    let (name, found) = pick(&store.root, name)?;
    host_key(out, store)?;
    let trust = found.trust(&store.root, &name, &Accept::default())?;
    let newest_there = super::list(&found.client()?)?
        .0
        .into_iter()
        .find(|l| l.manifest.is_ok() && l.signer(&trust, &name).is_ok())
        .map(|l| l.id);
    let mut ids: Vec<String> = match &newest_there {
        Some(n) => store.list()?.into_iter().map(|l| l.id).filter(|id| id_key(id) > id_key(n)).collect(),
        None => Vec::new(),
    };
    if let Some(n) = newest_there.as_ref().filter(|n| id_key(n) > id_key(new)) {
        out.warn(format!(
            "remote {name} holds {n}, newer than this snapshot: another host pushes to the same prefix, \
             or this host's clock went back"
        ));
    }
    if !ids.iter().any(|i| i == new) {
        ids.insert(0, new.to_string());
    }
    ids.reverse();
    push_ids(out, store, Some(&name), &ids, now, progress)
}

/// This host's signing key; made now, and its public half shown, if a
/// remote was added by a bwguard older than signatures.
fn host_key(out: &mut Output, store: &Store) -> Result<HostKey> {
    let (key, created) = HostKey::load_or_create(&store.root)?;
    if created {
        out.warn(format!(
            "made this host's signing key; every copy it pushes is signed with {}. Keep that line off this \
             host: a restore elsewhere needs it as --trust-key",
            key.public()
        ));
    }
    Ok(key)
}

/// Part size for an archive of `size` bytes: [`PART`], or more so the
/// upload fits in [`MAX_PARTS`] parts, in whole MiB.
fn part_size(size: u64) -> usize {
    let need = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    need.max(PART as u64) as usize
}

/// Streams the snapshot in `dir` as an encrypted tar into a multipart
/// upload: this thread reads, hashes and encrypts; another uploads, one
/// part in flight. Returns the parts and the ciphertext's digest.
#[allow(clippy::too_many_arguments)]
fn upload(
    client: &Client,
    object: &str,
    upload_id: &str,
    part: usize,
    recipients: &[String],
    dir: &Path,
    m: &Manifest,
    progress: &Progress,
) -> Result<(Vec<UploadedPart>, Digest256)> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<(u16, Vec<u8>)>(1);
        let uploader = s.spawn(move || -> std::result::Result<Vec<UploadedPart>, S3Error> {
            let mut parts = Vec::new();
            for (n, bytes) in rx {
                parts.push(client.upload_part(object, upload_id, n, &bytes)?);
            }
            Ok(parts)
        });
        let mut parts = PartWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(part),
            part,
            next: 1,
            hasher: Sha256::new(),
            size: 0,
        };
        let written = write_encrypted_tar(&mut parts, recipients, dir, m, progress);
        let cipher = Digest256 { size: parts.size, sha256: hex(&parts.hasher.clone().finalize()) };
        let flushed = written.and_then(|()| parts.finish());
        drop(parts);
        let uploaded = uploader.join().map_err(|_| Error::internal("the upload thread panicked"))?;
        // The uploader's error is the cause when both failed.
        let uploaded = uploaded.map_err(s3_error)?;
        flushed?;
        Ok((uploaded, cipher))
    })
}

/// Writes the tar of the snapshot's files, encrypted, into `out`, and checks
/// the archive's bytes as read against the manifest.
fn write_encrypted_tar(
    out: &mut PartWriter,
    recipients: &[String],
    dir: &Path,
    m: &Manifest,
    progress: &Progress,
) -> Result<()> {
    let failed = |e: io::Error| Error::internal(format!("cannot encrypt snapshot {}: {e}", m.id));
    let encrypted = crypt::encrypt(recipients, &mut *out)?;
    let mut tar = tar::Builder::new(encrypted);
    let dir_meta = std::fs::metadata(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&dir_meta, tar::HeaderMode::Complete);
    header.set_size(0);
    tar.append_data(&mut header, format!("{}/", m.id), io::empty()).map_err(failed)?;
    let mut archive_digest = None;
    for name in INNER {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("cannot read", &path, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        let mut reader = HashReader::new(ProgressReader {
            inner: file.take(meta.len()),
            progress: (name == ARCHIVE).then_some(progress),
        });
        tar.append_data(&mut header, format!("{}/{name}", m.id), &mut reader).map_err(failed)?;
        if name == ARCHIVE {
            archive_digest = Some(reader.digest());
        }
    }
    let encrypted = tar.into_inner().map_err(failed)?;
    encrypted.finish().map_err(failed)?;
    match archive_digest {
        Some(d) => verify::check_digest(m, &d),
        None => Err(Error::integrity(&m.id, "the archive was not read")),
    }
}

/// Collects written bytes into parts and hands each full one to the uploader.
struct PartWriter {
    tx: Option<SyncSender<(u16, Vec<u8>)>>,
    buf: Vec<u8>,
    part: usize,
    next: u16,
    hasher: Sha256,
    size: u64,
}

impl PartWriter {
    /// Sends the part in the buffer.
    fn send(&mut self) -> io::Result<()> {
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part));
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("the upload has ended"))?;
        tx.send((self.next, bytes)).map_err(|_| io::Error::other("the upload stopped"))?;
        self.next = self.next.checked_add(1).ok_or_else(|| io::Error::other("too many parts"))?;
        Ok(())
    }

    /// Sends the last part (S3 needs at least one) and ends the upload stream.
    fn finish(&mut self) -> Result<()> {
        if !self.buf.is_empty() || self.next == 1 {
            self.send().map_err(|e| Error::internal(format!("cannot upload: {e}")))?;
        }
        self.tx = None;
        Ok(())
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.part - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        if self.buf.len() == self.part {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_fit_the_part_limit() {
        assert_eq!(part_size(0), PART);
        assert_eq!(part_size(50 << 30), PART);
        let big = 200u64 << 30;
        let p = part_size(big) as u64;
        assert!(p > PART as u64 && p.is_multiple_of(1 << 20) && big.div_ceil(p) <= MAX_PARTS, "{p}");
    }

    #[test]
    fn part_writer_cuts_exact_parts_and_hashes_everything() {
        let (tx, rx) = sync_channel(16);
        let mut w =
            PartWriter { tx: Some(tx), buf: Vec::new(), part: 10, next: 1, hasher: Sha256::new(), size: 0 };
        w.write_all(&[7u8; 25]).unwrap();
        w.finish().unwrap();
        drop(w);
        let parts: Vec<(u16, Vec<u8>)> = rx.iter().collect();
        assert_eq!(
            parts.iter().map(|(n, b)| (*n, b.len())).collect::<Vec<_>>(),
            vec![(1, 10), (2, 10), (3, 5)]
        );
    }
}
