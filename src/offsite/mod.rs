//! Off the machine: encrypted copies of snapshots on S3-compatible storage.
//!
//! Layout under a remote's key prefix, one folder per snapshot:
//!
//! ```text
//! <id>/snapshot.tar.age          age-encrypted tar of the snapshot directory:
//!                                <id>/manifest.json, SHA256SUMS,
//!                                data.tar.gz.sha256, data.tar.gz (in that order)
//! <id>/snapshot.tar.age.sha256   `sha256sum -c` line of the ciphertext
//! <id>/manifest.json.sig         the pushing host's ed25519 signature of
//!                                manifest.json (see [`sign`])
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
//! - A copy is used (pulled, verified, restored, pruned) only when its
//!   public manifest is signed by a key the admin trusts ([`sign::Trust`]);
//!   the manifest names the ciphertext's digest, so the signature covers
//!   every byte.
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
pub mod sign;

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::engine::manifest::{ARCHIVE, ARCHIVE_SUM, ArchiveInfo, BitwardenInfo, MANIFEST, SUMS};
use crate::engine::progress::Progress;
use crate::engine::store::is_id;
use crate::error::{Error, Failure, Refusal, Result};
use crate::offsite::s3::{Client, S3Error};
use crate::offsite::sign::{SIG, Signer, Trust};

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
    /// The manifest's bytes, as signed.
    raw: Vec<u8>,
    /// The signature object's bytes, if there is one.
    sig: Option<Vec<u8>>,
}

impl Listed {
    /// Who signed this copy, if `trust` accepts it (see [`Trust::check`]).
    pub fn signer(&self, trust: &Trust, remote: &str) -> Result<Signer> {
        trust.check(remote, &self.id, &self.raw, self.sig.as_deref())
    }
}

/// A copy chosen to be used: its manifest and who signed it.
#[derive(Debug)]
pub struct Opened {
    /// Its id.
    pub id: String,
    /// Its public manifest.
    pub manifest: RemoteManifest,
    /// Who signed it.
    pub signer: Signer,
    /// Newer copies passed over because they are damaged or not signed by
    /// a trusted key, each with the reason.
    pub passed_over: Vec<String>,
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
            let (raw, manifest) = match client.get_small(&rel(&id, REMOTE_MANIFEST)) {
                Ok(Some(bytes)) => {
                    let m = parse_manifest(&id, &bytes);
                    (bytes, m)
                }
                Ok(None) => (Vec::new(), Err("manifest.json vanished".into())),
                Err(e) => (Vec::new(), Err(e.to_string())),
            };
            let sig = client.get_small(&rel(&id, SIG)).map_err(s3_error)?;
            complete.push(Listed { id, manifest, raw, sig });
        } else {
            incomplete.push(id);
        }
    }
    complete.sort_by_key(|l| std::cmp::Reverse(crate::engine::store::id_key(&l.id)));
    Ok((complete, incomplete))
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

/// The public manifest of copy `id` and who signed it: exit 2 if the
/// remote has no complete copy of that name, exit 3 if its manifest is
/// unreadable or its signature does not match, exit 5 if no trusted key
/// signed it.
pub fn open(client: &Client, remote_name: &str, id: &str, trust: &Trust) -> Result<Opened> {
    if !is_id(id) {
        return Err(Error::Usage(format!("{id:?} is not a snapshot id")));
    }
    match client.get_small(&rel(id, REMOTE_MANIFEST)).map_err(s3_error)? {
        Some(bytes) => {
            let manifest = parse_manifest(id, &bytes)
                .map_err(|p| Error::integrity(id, format!("on remote {remote_name}: {p}")))?;
            let sig = client.get_small(&rel(id, SIG)).map_err(s3_error)?;
            let signer = trust.check(remote_name, id, &bytes, sig.as_deref())?;
            Ok(Opened { id: id.to_string(), manifest, signer, passed_over: Vec::new() })
        }
        None if client.head(&rel(id, OBJECT)).map_err(s3_error)?.is_some() => Err(Error::integrity(
            id,
            format!(
                "the copy on remote {remote_name} is incomplete (no manifest.json): an interrupted push; push it again"
            ),
        )),
        None => Err(Error::NoSuchCopy { id: id.to_string(), remote: remote_name.to_string() }),
    }
}

/// Copy `id`, or the newest copy `trust` accepts when `None`.
pub fn open_or_newest(client: &Client, remote_name: &str, id: Option<&str>, trust: &Trust) -> Result<Opened> {
    match id {
        Some(id) => open(client, remote_name, id, trust),
        None => newest(client, remote_name, trust),
    }
}

/// The newest complete copy on the remote that `trust` accepts. Newer
/// copies that are damaged or signed by nobody trusted are passed over
/// (and named): a forged copy cannot make itself the one restored.
pub fn newest(client: &Client, remote_name: &str, trust: &Trust) -> Result<Opened> {
    let (listed, _) = list(client)?;
    let mut passed_over = Vec::new();
    let total = listed.len();
    for l in listed {
        let manifest = match &l.manifest {
            Ok(m) => m.clone(),
            Err(p) => {
                passed_over.push(format!("passed over the newer copy {}: damaged ({p})", l.id));
                continue;
            }
        };
        match l.signer(trust, remote_name) {
            Ok(signer) => return Ok(Opened { id: l.id, manifest, signer, passed_over }),
            Err(e) => passed_over.push(format!("passed over the newer copy {}: {e}", l.id)),
        }
    }
    if total == 0 {
        return Err(Error::refused(
            Refusal::RemoteEmpty,
            format!("remote {remote_name} holds no snapshot"),
            format!("push one with `bwguard push --remote {remote_name}`"),
        ));
    }
    Err(Error::refused(
        Refusal::UntrustedCopy,
        format!("none of the {total} copies on remote {remote_name} is signed by a key this host trusts"),
        "if the copies were pushed by another host (the old server), pass its key with --trust-key \
         bwguard-ed25519:… (that host's `bwguard remote list` prints it); `bwguard list --remote` shows \
         who signed each copy",
    ))
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
    client.delete(&rel(id, SIG)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT_SUM)).map_err(s3_error)
}

/// Deletes copy `id`: its public manifest first, so an interrupted delete
/// leaves an incomplete copy (never listed) rather than a listed one with
/// missing objects.
pub fn delete(client: &Client, id: &str) -> Result<()> {
    client.delete(&rel(id, REMOTE_MANIFEST)).map_err(s3_error)?;
    client.delete(&rel(id, SIG)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT)).map_err(s3_error)?;
    client.delete(&rel(id, OBJECT_SUM)).map_err(s3_error)
}
