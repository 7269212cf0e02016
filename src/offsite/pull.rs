//! Pulling a copy into the local store: downloaded, decrypted and checked
//! as it arrives, the manifest renamed into place last.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::check::{
    NetReader, check_cipher, check_sum_object, download_error, inner_error, inner_manifest, open_object,
    walk_inner,
};
use super::{ARCHIVE, MANIFEST, ProgressReader, RemoteManifest, SMALL_MAX};
use crate::context::Output;
use crate::engine::archive::{CHUNK, HashReader};
use crate::engine::manifest::Manifest;
use crate::engine::progress::Progress;
use crate::engine::store::Store;
use crate::engine::verify;
use crate::error::{Error, Refusal, Result};
use crate::files;
use crate::offsite::crypt::Identities;
use crate::offsite::remote::pick;
use crate::offsite::s3::Client;
use crate::offsite::sign::Accept;
use crate::report::PullReport;
use crate::report::human::human_size;

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
    crate::engine::room::room(&[crate::engine::room::Need {
        path: store.root.clone(),
        bytes: crate::engine::room::on_disk(rm.archive.size)
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
                    let bytes = files::read_small(&target, files::MANIFEST_CAP)
                        .map_err(|e| Error::io("cannot read", &target, e))?;
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

/// Brings copy `id` (default: the newest on the remote that is signed by a
/// trusted key) of remote `name` (the only one when `None`) into the local
/// store unless it is there already (the caller holds the store lock).
/// Only a copy signed by a key `accept` and the remote trust is used.
pub fn fetch_locked(
    out: &mut Output,
    store: &Store,
    name: Option<&str>,
    id: Option<&str>,
    identities: &Identities,
    progress: bool,
    accept: &Accept,
) -> Result<PullReport> {
    let (name, remote) = pick(&store.root, name)?;
    let client = remote.client()?;
    let trust = remote.trust(&store.root, &name, accept)?;
    let opened = super::open_or_newest(&client, &name, id, &trust)?;
    for said in &opened.passed_over {
        out.warn(said);
    }
    let (id, rm, signer) = (opened.id, opened.manifest, opened.signer);
    let dir = store.dir(&id);
    let report = |m: &Manifest, pulled: bool| PullReport {
        id: id.clone(),
        remote: name.clone(),
        pulled,
        path: dir.display().to_string(),
        files: m.entries.iter().filter(|e| e.sha256.is_some()).count(),
        content_size: m.content_size(),
        signed_by: signer.clone(),
    };
    if dir.exists() {
        let local = store.open(&id)?;
        if local.archive != rm.archive {
            return Err(Error::refused(
                Refusal::RemoteConflict,
                format!("the local snapshot {id} differs from the copy on {name}"),
                "two hosts push to the same prefix: give each host its own s3://BUCKET/PREFIX",
            ));
        }
        return Ok(report(&local, false));
    }
    out.info(format!("Pulling {id} from {name} ({} encrypted)", human_size(rm.object.size)));
    let bar = Progress::new(&format!("pull {id}"), rm.object.size, progress);
    let m = pull(&client, &rm, identities, store, &bar)?;
    Ok(report(&m, true))
}
