//! Off the machine: encrypted copies of snapshots on S3-compatible storage.
//!
//! Layout under a remote's key prefix, one folder per snapshot:
//!
//! ```text
//! <id>/snapshot.tar.age          age-encrypted tar of the snapshot directory:
//!                                <id>/manifest.json, SHA256SUMS,
//!                                data.tar.gz.sha256, data.tar.gz (in that order)
//! <id>/snapshot.tar.age.sha256   `sha256sum -c` line of the ciphertext
//! <id>/manifest.json             public facts and the ciphertext's digest,
//!                                written last: the copy's completion mark
//! ```
//!
//! Invariants:
//! - Only ciphertext leaves the host; the plaintext checksums travel inside
//!   it. The public manifest holds what `list --remote` and `prune --remote`
//!   need (times, reason, versions, sizes, digests), no paths, no notes.
//! - A copy without its public manifest is incomplete: never listed, never
//!   pulled, and replaced by the next push. The object itself is written by
//!   a multipart upload, which S3 shows only once completed, and it is
//!   completed only after the local archive was read whole against its
//!   checksum.
//! - Streams end to end: push reads, encrypts and uploads in parts of
//!   [`PART`] bytes with one part in flight; pull and verify download,
//!   decrypt and check in fixed-size chunks.

pub mod crypt;
pub mod remote;
pub mod s3;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::archive::{self, CHUNK, ChannelReader, Digest256, HashReader};
use crate::engine::manifest::{
    ARCHIVE, ARCHIVE_SUM, ArchiveInfo, BitwardenInfo, MANIFEST, Manifest, SUMS, hex, sum_line,
};
use crate::engine::progress::Progress;
use crate::engine::store::{Store, is_id};
use crate::engine::verify;
use crate::error::{Error, Result};
use crate::files;
use crate::offsite::crypt::Identities;
use crate::offsite::remote::Remote;
use crate::offsite::s3::{Client, S3Error, UploadedPart};

/// The encrypted snapshot.
pub const OBJECT: &str = "snapshot.tar.age";
/// Its checksum line.
pub const OBJECT_SUM: &str = "snapshot.tar.age.sha256";
/// The public manifest, written last.
pub const REMOTE_MANIFEST: &str = "manifest.json";
/// Format of the public manifest.
pub const REMOTE_FORMAT: u32 = 1;
/// Bytes per uploaded part (more for archives that would need more than
/// [`MAX_PARTS`] parts).
pub const PART: usize = 8 << 20;
/// Parts per upload bwguard plans for (S3 allows 10,000).
const MAX_PARTS: u64 = 9000;
/// The files of a snapshot, in the order they travel.
const INNER: [&str; 4] = [MANIFEST, SUMS, ARCHIVE_SUM, ARCHIVE];
/// The largest small file (manifest, checksums) a copy may hold: about
/// 200,000 files' worth of manifest. The copy is untrusted until checked,
/// so nothing in it may make bwguard hold more.
const SMALL_MAX: u64 = 64 << 20;

/// The public facts of a copy on a remote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemoteManifest {
    /// [`REMOTE_FORMAT`].
    pub format: u32,
    /// Snapshot id.
    pub id: String,
    /// When the snapshot was taken (RFC 3339 UTC).
    pub created: String,
    /// When this copy was pushed.
    pub pushed: String,
    /// The bwguard that pushed it.
    pub tool: String,
    /// Why the snapshot was taken.
    pub reason: String,
    /// Pinned when pushed: `prune --remote` keeps it.
    pub pinned: bool,
    /// `cold` or `live`.
    pub consistency: String,
    /// Bitwarden versions and settings read at backup time.
    pub bitwarden: BitwardenInfo,
    /// Bytes of file content in the snapshot.
    pub content_size: u64,
    /// The plaintext `data.tar.gz` inside the copy.
    pub archive: ArchiveInfo,
    /// The encrypted object.
    pub object: ArchiveInfo,
    /// The age recipients it was encrypted to.
    pub recipients: Vec<String>,
}

/// A copy found on a remote.
#[derive(Debug)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Its public manifest, or why it could not be read.
    pub manifest: std::result::Result<RemoteManifest, String>,
}

/// The key of `name` in the folder of snapshot `id`.
pub fn rel(id: &str, name: &str) -> String {
    format!("{id}/{name}")
}

/// An S3 failure as a bwguard error (exit 1), with a hint by its kind.
pub fn s3_error(e: S3Error) -> Error {
    let hint = match &e {
        S3Error::Failed { status: Some(401 | 403), .. } => {
            "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the remote's \
             credentials file) and that the key may read and write the bucket"
        }
        S3Error::Failed { status: None, .. } => {
            "check the endpoint address and the network; the command can be run again safely"
        }
        _ => "the command can be run again safely",
    };
    Error::Failed { message: format!("remote storage: {e}"), hint: Some(hint.into()) }
}

/// The complete copies on the remote, newest first, and the ids of
/// incomplete ones (objects without a public manifest).
pub fn list(client: &Client) -> Result<(Vec<Listed>, Vec<String>)> {
    let mut folders: BTreeMap<String, bool> = BTreeMap::new();
    for (key, _) in client.list("").map_err(s3_error)? {
        if let Some((id, name)) = key.split_once('/')
            && is_id(id)
        {
            *folders.entry(id.to_string()).or_default() |= name == REMOTE_MANIFEST;
        }
    }
    let mut complete = Vec::new();
    let mut incomplete = Vec::new();
    for (id, has_manifest) in folders {
        if has_manifest {
            let manifest = fetch_manifest(client, &id);
            complete.push(Listed { id, manifest });
        } else {
            incomplete.push(id);
        }
    }
    complete.sort_by_key(|l| std::cmp::Reverse(crate::engine::store::id_key(&l.id)));
    Ok((complete, incomplete))
}

/// The public manifest of `id` as text problems (for listing).
fn fetch_manifest(client: &Client, id: &str) -> std::result::Result<RemoteManifest, String> {
    match client.get_small(&rel(id, REMOTE_MANIFEST)) {
        Ok(Some(bytes)) => parse_manifest(id, &bytes),
        Ok(None) => Err("manifest.json vanished".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a public manifest and checks it names `id`.
fn parse_manifest(id: &str, bytes: &[u8]) -> std::result::Result<RemoteManifest, String> {
    let m: RemoteManifest =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest.json is malformed: {e}"))?;
    if m.format != REMOTE_FORMAT {
        return Err(format!("manifest.json has format {}, this bwguard reads {REMOTE_FORMAT}", m.format));
    }
    if m.id != id {
        return Err(format!("manifest.json names snapshot {}, not {id}", m.id));
    }
    Ok(m)
}

/// The public manifest of copy `id`: exit 2 if the remote has no complete
/// copy of that name, exit 3 if its manifest is unreadable.
pub fn open(client: &Client, remote_name: &str, id: &str) -> Result<RemoteManifest> {
    if !is_id(id) {
        return Err(Error::Usage(format!("{id:?} is not a snapshot id")));
    }
    match client.get_small(&rel(id, REMOTE_MANIFEST)).map_err(s3_error)? {
        Some(bytes) => parse_manifest(id, &bytes)
            .map_err(|p| Error::integrity(id, format!("on remote {remote_name}: {p}"))),
        None if client.head(&rel(id, OBJECT)).map_err(s3_error)?.is_some() => Err(Error::integrity(
            id,
            format!(
                "the copy on remote {remote_name} is incomplete (no manifest.json): an interrupted push; push it again"
            ),
        )),
        None => Err(Error::Usage(format!(
            "remote {remote_name} has no copy of snapshot {id}; `bwguard list --remote {remote_name}` shows the copies"
        ))),
    }
}

/// The public manifest of copy `id`, or of the newest copy when `None`.
pub fn open_or_newest(
    client: &Client,
    remote_name: &str,
    id: Option<&str>,
) -> Result<(String, RemoteManifest)> {
    let id = match id {
        Some(id) => id.to_string(),
        None => newest(client, remote_name)?,
    };
    let rm = open(client, remote_name, &id)?;
    Ok((id, rm))
}

/// The newest complete copy on the remote.
pub fn newest(client: &Client, remote_name: &str) -> Result<String> {
    let (listed, _) = list(client)?;
    listed.into_iter().next().map(|l| l.id).ok_or_else(|| {
        Error::refused(
            format!("remote {remote_name} holds no snapshot"),
            format!("push one with `bwguard push --remote {remote_name}`"),
        )
    })
}

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
    let Ok(bytes) = std::fs::read(&path) else {
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
/// if its checksum matches the manifest.
pub fn push(
    client: &Client,
    remote: &Remote,
    remote_name: &str,
    store: &Store,
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
            return Err(Error::Failed {
                message: format!(
                    "the uploaded {} has {} bytes, {} were sent",
                    client.name(&object),
                    other.map_or("no".to_string(), |s| s.to_string()),
                    cipher.size
                ),
                hint: Some(
                    "run the push again; the incomplete copy is not listed and will be replaced".into(),
                ),
            });
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
    client.put(&rel(id, REMOTE_MANIFEST), &bytes).map_err(s3_error)?;
    files::remove_any(&pending_path(store, remote_name))?;
    Ok(Pushed::Uploaded(rm))
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
        let uploaded = uploader
            .join()
            .map_err(|_| Error::Failed { message: "the upload thread panicked".into(), hint: None })?;
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
    let failed = |e: io::Error| Error::Failed {
        message: format!("cannot encrypt snapshot {}: {e}", m.id),
        hint: None,
    };
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
            self.send().map_err(|e| Error::Failed { message: format!("cannot upload: {e}"), hint: None })?;
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

/// Counts bytes read on a progress display.
struct ProgressReader<'a, R> {
    inner: R,
    progress: Option<&'a Progress>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress {
            p.add(n as u64);
        }
        Ok(n)
    }
}

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
struct NetReader<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

/// Whether a [`NetReader`]'s download failed.
struct NetFlag(Arc<AtomicBool>);

impl<R> NetReader<R> {
    fn new(inner: R) -> (Self, NetFlag) {
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
    fn explain<T>(&self, outcome: Result<T>, client: &Client, rm: &RemoteManifest) -> Result<T> {
        match outcome {
            Err(e) if self.0.load(Ordering::Relaxed) => Err(Error::Failed {
                message: format!(
                    "remote storage: the download of {} broke off ({e}); the copy itself may be fine",
                    client.name(&rel(&rm.id, OBJECT))
                ),
                hint: Some("check the network and run the command again".into()),
            }),
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
fn check_sum_object(client: &Client, rm: &RemoteManifest) -> Result<()> {
    match client.get_small(&rel(&rm.id, OBJECT_SUM)).map_err(s3_error)? {
        None => {
            Err(Error::integrity(&rm.id, format!("{} is missing", client.name(&rel(&rm.id, OBJECT_SUM)))))
        }
        Some(b) if b == sum_line(&rm.object.sha256, OBJECT).as_bytes() => Ok(()),
        Some(_) => Err(Error::integrity(&rm.id, format!("{OBJECT_SUM} does not match the remote manifest"))),
    }
}

/// Opens the encrypted object for reading (exit 3 if it is missing).
fn open_object(client: &Client, rm: &RemoteManifest) -> Result<impl Read + Send + use<>> {
    match client.get(&rel(&rm.id, OBJECT)) {
        Ok((_, body)) => Ok(body),
        Err(e) if e.is_not_found() => {
            Err(Error::integrity(&rm.id, format!("{} is missing", client.name(&rel(&rm.id, OBJECT)))))
        }
        Err(e) => Err(s3_error(e)),
    }
}

/// A read error of the encrypted object: its network failure in words.
fn download_error(client: &Client, rm: &RemoteManifest, e: io::Error) -> Error {
    Error::Failed {
        message: format!("remote storage: GET {}: {e}", client.name(&rel(&rm.id, OBJECT))),
        hint: Some("check the network and run the command again".into()),
    }
}

/// The ciphertext as read against the public manifest.
fn check_cipher(rm: &RemoteManifest, d: &Digest256) -> Result<()> {
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
fn inner_manifest(rm: &RemoteManifest, bytes: &[u8]) -> Result<Manifest> {
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
fn inner_error(id: &str, e: io::Error) -> Error {
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
fn walk_inner(
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

/// Downloads, decrypts and checks copy `rm` into the store as snapshot
/// `rm.id` (the caller holds the store lock, and no snapshot of that id
/// exists). Files are written into the snapshot's directory with the
/// manifest under a temporary name, renamed last: a pull killed midway
/// leaves an incomplete snapshot, which the next writing run removes.
pub fn pull(
    client: &Client,
    rm: &RemoteManifest,
    identities: &Identities,
    store: &Store,
    progress: &Progress,
) -> Result<Manifest> {
    check_sum_object(client, rm)?;
    files::ensure_private_dir(&store.root)?;
    crate::install::preflight::room(&[crate::install::preflight::Need {
        path: store.root.clone(),
        bytes: crate::install::preflight::on_disk(rm.archive.size)
            .saturating_add(SMALL_MAX.min(rm.archive.size / 4 + (1 << 20))),
        what: format!("snapshot {}", rm.id),
    }])?;
    let dir = store.dir(&rm.id);
    files::create_private_dir(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let pulled = (|| {
        let (body, net) = NetReader::new(open_object(client, rm)?);
        let mut cipher = HashReader::new(ProgressReader { inner: body, progress: Some(progress) });
        let unpacked = (|| {
            let plain = identities.decrypt(&rm.id, BufReader::with_capacity(CHUNK, &mut cipher))?;
            let mut inner: Option<Manifest> = None;
            let mut digest = None;
            walk_inner(&rm.id, rm.archive.size, plain, |name, entry| {
                let target =
                    if name == MANIFEST { files::temp_name(&dir.join(MANIFEST)) } else { dir.join(name) };
                let mut file = files::create_private_file(&target)?;
                let mut hashed = HashReader::new(entry);
                copy_to(&mut hashed, &mut file, &target, &rm.id)?;
                file.sync_all().map_err(|e| Error::io("cannot flush", &target, e))?;
                if name == MANIFEST {
                    let bytes = std::fs::read(&target).map_err(|e| Error::io("cannot read", &target, e))?;
                    inner = Some(inner_manifest(rm, &bytes)?);
                } else if name == ARCHIVE {
                    digest = Some(hashed.digest());
                }
                Ok(())
            })?;
            io::copy(&mut cipher, &mut io::sink()).map_err(|e| download_error(client, rm, e))?;
            check_cipher(rm, &cipher.digest())?;
            Ok((inner, digest))
        })();
        let (inner, digest) = net.explain(unpacked, client, rm)?;
        let m = inner.ok_or_else(|| Error::integrity(&rm.id, "the copy holds no manifest.json"))?;
        verify::check_digest(
            &m,
            &digest.ok_or_else(|| Error::integrity(&rm.id, "the copy holds no archive"))?,
        )?;
        verify::check_small(&dir, &m)?;
        files::sync_dir(&dir)?;
        let temp = files::temp_name(&dir.join(MANIFEST));
        std::fs::rename(&temp, dir.join(MANIFEST)).map_err(|e| Error::io("cannot rename", &temp, e))?;
        files::sync_dir(&dir)?;
        files::sync_dir(&store.root)?;
        Ok(m)
    })();
    if pulled.is_err() {
        let _ = files::remove_any(&dir);
        let _ = files::sync_dir(&store.root);
    }
    pulled
}

/// Copies a decrypted entry to a file; damage is exit 3, a write error exit 1.
fn copy_to(from: &mut impl Read, to: &mut File, path: &Path, id: &str) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).map_err(|e| inner_error(id, e))?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).map_err(|e| Error::io("cannot write", path, e))?;
    }
}

/// Deletes what incomplete copy `id` left (no public manifest).
pub fn delete_incomplete(client: &Client, id: &str) -> Result<()> {
    client.delete(&rel(id, OBJECT)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT_SUM)).map_err(s3_error)
}

/// Deletes copy `id`: its public manifest first, so an interrupted delete
/// leaves an incomplete copy (never listed) rather than a listed one with
/// missing objects.
pub fn delete(client: &Client, id: &str) -> Result<()> {
    client.delete(&rel(id, REMOTE_MANIFEST)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT_SUM)).map_err(s3_error)
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
