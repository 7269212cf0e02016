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

//!
//! [`push`] uploads, [`pull`] brings a copy into the store, [`check`]
//! verifies a copy where it is; this file lists, opens and deletes copies.

pub mod check;
pub mod crypt;
pub mod pull;
pub mod push;
pub mod remote;
pub mod s3;

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::engine::manifest::{ARCHIVE, ARCHIVE_SUM, ArchiveInfo, BitwardenInfo, MANIFEST, SUMS};
use crate::engine::progress::Progress;
use crate::engine::store::is_id;
use crate::error::{Error, Failure, Refusal, Result};
use crate::offsite::s3::{Client, S3Error};

pub use check::{quick_check, verify};
pub use pull::{fetch_locked, pull};
pub use push::{Pushed, abandon_pending, forget_pending, push, push_ids, push_newer};

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

/// An S3 failure as a bwguard error (exit 1), its kind and hint by what
/// went wrong: keys refused, remote unreachable, or another answer.
pub fn s3_error(e: S3Error) -> Error {
    let (kind, hint) = match &e {
        S3Error::Failed { status: Some(401 | 403), .. } => (
            Failure::RemoteDenied,
            "check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the remote's \
             credentials file) and that the key may read and write the bucket",
        ),
        S3Error::Failed { status: None, .. } => (
            Failure::RemoteUnreachable,
            "check the endpoint address and the network; the command can be run again safely",
        ),
        _ => (Failure::RemoteError, "the command can be run again safely"),
    };
    Error::failed(kind, format!("remote storage: {e}"), hint)
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
        None => Err(Error::NoSuchCopy { id: id.to_string(), remote: remote_name.to_string() }),
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
            Refusal::RemoteEmpty,
            format!("remote {remote_name} holds no snapshot"),
            format!("push one with `bwguard push --remote {remote_name}`"),
        )
    })
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
