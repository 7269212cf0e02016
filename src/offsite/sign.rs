//! Signed copies: who wrote a copy on a remote.
//!
//! age encryption says nothing about its sender: anyone who can write to
//! the bucket can encrypt a forged snapshot to the same public recipients.
//! So each host holds an ed25519 signing key in its store
//! (`signing.key`, mode 0600, made by `remote add`), and every push signs
//! the copy's public manifest into `<id>/manifest.json.sig`. The public
//! manifest names the ciphertext's SHA-256 and the plaintext archive's, so
//! the signature covers every byte of the copy.
//!
//! Pull, `verify --remote`, `rollback --remote`, `prune --remote` and
//! `list --remote` accept a copy only when it is signed by a key the admin
//! trusts ([`Trust`]): this host's own key, the keys saved with the remote
//! (`remote add --trust-key`), and keys given with `--trust-key` on the
//! command line.
//!
//! Formats (text, one line each):
//!
//! ```text
//! signing.key          bwguard-ed25519-secret:<base64 of the 32-byte seed>
//! public key           bwguard-ed25519:<base64 of the 32-byte public key>
//! manifest.json.sig    <public key> <base64 of the 64-byte signature>
//! ```
//!
//! The signed message is [`CONTEXT`] followed by the manifest's bytes, so a
//! signature made for one purpose cannot be used for another.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::engine::trust;
use crate::error::{Error, Refusal, Result};
use crate::files;

/// The signature object next to a copy's public manifest.
pub const SIG: &str = "manifest.json.sig";
/// The host's signing key in the store.
pub const KEY_FILE: &str = "signing.key";
/// Prefix of a public key.
const PUBLIC: &str = "bwguard-ed25519:";
/// Prefix of the secret key file's line.
const SECRET: &str = "bwguard-ed25519-secret:";
/// What is signed before the manifest's bytes.
pub const CONTEXT: &[u8] = b"bwguard remote manifest v1\0";

/// A public key in its text form, `bwguard-ed25519:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC}{}", STANDARD_NO_PAD.encode(self.0.as_bytes()))
    }
}

impl PublicKey {
    /// Parses `bwguard-ed25519:…`.
    pub fn parse(text: &str) -> std::result::Result<PublicKey, String> {
        let b64 = text.trim().strip_prefix(PUBLIC).ok_or_else(|| format!("does not start with {PUBLIC}"))?;
        let bytes: [u8; 32] = STANDARD_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("is not 32 bytes of base64")?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| "is not an ed25519 public key".into())
    }

    /// Parses a key given by the user (exit 2 if it is not one).
    pub fn from_arg(text: &str) -> Result<PublicKey> {
        PublicKey::parse(text).map_err(|why| {
            Error::Usage(format!(
                "{text:?} {why}: a bwguard signing key looks like {PUBLIC}… (`bwguard remote list` prints this host's)"
            ))
        })
    }
}

/// This host's signing key.
pub struct HostKey(SigningKey);

impl HostKey {
    /// The key in the store at `store`, if there is one. Refused (exit 5)
    /// if another user could have written or read it.
    pub fn load(store: &Path) -> Result<Option<HostKey>> {
        let path = store.join(KEY_FILE);
        let (file, meta) = match files::open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        trust::check_store_file(&meta, &path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::refused(
                Refusal::UntrustedStore,
                format!(
                    "{} can be read by other users, who could sign forged copies with it",
                    path.display()
                ),
                format!(
                    "`chmod 600 {}`, then make a new key (remove the file and run `bwguard remote add` again) \
                     if anyone else could have read it",
                    path.display()
                ),
            ));
        }
        let mut text = String::new();
        file.take(files::SMALL_CAP)
            .read_to_string(&mut text)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        let seed: [u8; 32] = text
            .trim()
            .strip_prefix(SECRET)
            .and_then(|b| STANDARD_NO_PAD.decode(b).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::failed(
                    crate::error::Failure::BadStateFile,
                    format!("{} is not a bwguard signing key", path.display()),
                    "restore it from a backup of the store; copies it signed are trusted by its public key only",
                )
            })?;
        Ok(Some(HostKey(SigningKey::from_bytes(&seed))))
    }

    /// The key in the store, made now if there is none (the caller holds
    /// the store lock). `true` when it was made now.
    pub fn load_or_create(store: &Path) -> Result<(HostKey, bool)> {
        if let Some(k) = HostKey::load(store)? {
            return Ok((k, false));
        }
        let mut seed = [0u8; 32];
        let mut filled = 0;
        while filled < seed.len() {
            filled += rustix::rand::getrandom(&mut seed[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| Error::internal(format!("no random bytes for a signing key: {e}")))?;
        }
        let line = format!("{SECRET}{}\n", STANDARD_NO_PAD.encode(seed));
        files::ensure_private_dir(store)?;
        files::write_atomic(
            &store.join(KEY_FILE),
            line.as_bytes(),
            files::Ownership::mine(files::PRIVATE_FILE),
        )?;
        Ok((HostKey(SigningKey::from_bytes(&seed)), true))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature object for a manifest of these bytes.
    pub fn sign(&self, manifest: &[u8]) -> Vec<u8> {
        let sig = self.0.sign(&message(manifest));
        format!("{} {}\n", self.public(), STANDARD_NO_PAD.encode(sig.to_bytes())).into_bytes()
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, manifest].concat()
}

/// Who signed a copy that was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    /// The public key, or `None` for an unsigned copy accepted by
    /// `--allow-unsigned`.
    #[serde(default)]
    pub key: Option<String>,
    /// Why that key is trusted: `this host`, `saved with remote NAME`,
    /// `--trust-key`, or `unsigned, accepted by --allow-unsigned`.
    pub trusted_as: String,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "signed by {k} ({})", self.trusted_as),
            None => f.write_str(&self.trusted_as),
        }
    }
}

/// What the admin accepts on the command line besides this host's key and
/// the keys saved with the remote.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    /// More trusted keys (`--trust-key`).
    pub keys: Vec<String>,
    /// Unsigned copies too (`--allow-unsigned`).
    pub unsigned: bool,
}

/// The keys whose copies are accepted.
#[derive(Debug, Default)]
pub struct Trust {
    keys: Vec<(PublicKey, String)>,
    allow_unsigned: bool,
}

impl Trust {
    /// This host's key (if it has one), the keys saved with remote `name`,
    /// and what `accept` adds.
    pub fn new(store: &Path, name: &str, saved: &[String], accept: &Accept) -> Result<Trust> {
        let mut trust = Trust { keys: Vec::new(), allow_unsigned: accept.unsigned };
        if let Some(own) = HostKey::load(store)? {
            trust.keys.push((own.public(), "this host".into()));
        }
        for k in saved {
            let key = PublicKey::parse(k).map_err(|why| {
                Error::failed(
                    crate::error::Failure::BadStateFile,
                    format!("the key {k:?} saved with remote {name} {why}"),
                    format!("remove the remote and add it again: `bwguard remote remove {name}`"),
                )
            })?;
            trust.add(key, format!("saved with remote {name}"));
        }
        for k in &accept.keys {
            trust.add(PublicKey::from_arg(k)?, "--trust-key".into());
        }
        Ok(trust)
    }

    fn add(&mut self, key: PublicKey, why: String) {
        if !self.keys.iter().any(|(k, _)| *k == key) {
            self.keys.push((key, why));
        }
    }

    /// Checks the signature `sig` (the bytes of `manifest.json.sig`, `None`
    /// if there is none) of the public manifest `manifest` of copy `id` on
    /// remote `remote`. A copy nobody trusted signed is refused (exit 5,
    /// `untrusted-copy`); a trusted key's signature that does not match is
    /// damage (exit 3).
    pub fn check(&self, remote: &str, id: &str, manifest: &[u8], sig: Option<&[u8]>) -> Result<Signer> {
        let Some(sig) = sig else {
            if self.allow_unsigned {
                return Ok(Signer { key: None, trusted_as: "unsigned, accepted by --allow-unsigned".into() });
            }
            return Err(Error::refused(
                Refusal::UntrustedCopy,
                format!("the copy of {id} on remote {remote} is not signed ({id}/{SIG} is missing)"),
                "every copy this bwguard pushes is signed, so someone else may have written this one: do not \
                 restore it. If you pushed it yourself with a bwguard older than signatures, pass \
                 --allow-unsigned",
            ));
        };
        let text = std::str::from_utf8(sig).unwrap_or("");
        let mut words = text.split_whitespace();
        let (key, signature) = match (words.next(), words.next(), words.next()) {
            (Some(k), Some(s), None) => (k, s),
            _ => return Err(Error::integrity(id, format!("on remote {remote}: {SIG} is malformed"))),
        };
        let key = PublicKey::parse(key)
            .map_err(|why| Error::integrity(id, format!("on remote {remote}: the key in {SIG} {why}")))?;
        let Some((_, why)) = self.keys.iter().find(|(k, _)| *k == key) else {
            return Err(Error::refused(
                Refusal::UntrustedCopy,
                format!(
                    "the copy of {id} on remote {remote} is signed by {key}, a key this host does not trust"
                ),
                format!(
                    "if that is the key of the host that pushed it (`bwguard remote list` there prints it), \
                     pass --trust-key {key}; otherwise someone else wrote this copy: do not restore it"
                ),
            ));
        };
        let ok = STANDARD_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .is_some_and(|s| key.0.verify_strict(&message(manifest), &s).is_ok());
        if !ok {
            return Err(Error::integrity(
                id,
                format!(
                    "on remote {remote}: the signature by {key} does not match manifest.json: the copy was \
                     changed after it was signed"
                ),
            ));
        }
        Ok(Signer { key: Some(key.to_string()), trusted_as: why.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    fn key(seed: u8) -> HostKey {
        HostKey(SigningKey::from_bytes(&[seed; 32]))
    }

    fn trusting(keys: &[&HostKey]) -> Trust {
        let mut t = Trust::default();
        for k in keys {
            t.add(k.public(), "this host".into());
        }
        t
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_named() {
        let k = key(7).public();
        assert_eq!(PublicKey::parse(&k.to_string()).unwrap(), k);
        assert!(k.to_string().starts_with(PUBLIC));
        for bad in ["", "ssh-ed25519 AAAA", "bwguard-ed25519:", "bwguard-ed25519:AAAA"] {
            assert!(PublicKey::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PublicKey::from_arg("nope").unwrap_err().exit(), Exit::Usage);
    }

    #[test]
    fn only_a_trusted_key_with_a_matching_signature_is_accepted() {
        let (own, other) = (key(1), key(2));
        let manifest = b"{\"id\":\"x\"}\n";
        let sig = own.sign(manifest);
        let trust = trusting(&[&own]);
        let signer = trust.check("r", "x", manifest, Some(&sig)).unwrap();
        assert_eq!(signer.key.as_deref(), Some(own.public().to_string().as_str()));
        assert_eq!(signer.trusted_as, "this host");

        // Another key's signature: refused, naming the key.
        let e = trust.check("r", "x", manifest, Some(&other.sign(manifest))).unwrap_err();
        assert_eq!((e.exit(), e.kind()), (Exit::Refused, "untrusted-copy"));
        assert!(e.to_string().contains(&other.public().to_string()), "{e}");

        // The manifest changed after signing: damage.
        let e = trust.check("r", "x", b"{\"id\":\"y\"}\n", Some(&sig)).unwrap_err();
        assert_eq!(e.exit(), Exit::Integrity, "{e}");

        // A signature made without the context does not verify.
        let raw = own.0.sign(manifest);
        let forged = format!("{} {}\n", own.public(), STANDARD_NO_PAD.encode(raw.to_bytes()));
        assert_eq!(
            trust.check("r", "x", manifest, Some(forged.as_bytes())).unwrap_err().exit(),
            Exit::Integrity
        );

        // Garbage.
        for junk in [&b""[..], b"x", b"a b c", b"bwguard-ed25519:AAAA sig"] {
            assert_eq!(trust.check("r", "x", manifest, Some(junk)).unwrap_err().exit(), Exit::Integrity);
        }
    }

    #[test]
    fn unsigned_copies_only_when_allowed() {
        let e = Trust::default().check("r", "x", b"{}", None).unwrap_err();
        assert_eq!(e.kind(), "untrusted-copy");
        let t = Trust { allow_unsigned: true, ..Trust::default() };
        assert_eq!(t.check("r", "x", b"{}", None).unwrap().key, None);
    }

    #[test]
    fn the_host_key_is_made_once_private_and_refused_when_others_can_read_it() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        assert!(HostKey::load(&store).unwrap().is_none());
        let (made, created) = HostKey::load_or_create(&store).unwrap();
        assert!(created);
        let (again, created) = HostKey::load_or_create(&store).unwrap();
        assert!(!created);
        assert_eq!(made.public(), again.public());
        let path = store.join(KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(HostKey::load(&store).err().map(|e| e.kind()), Some("untrusted-store"));
        // Its trust includes it as "this host".
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let trust = Trust::new(&store, "r", &[], &Accept::default()).unwrap();
        assert_eq!(trust.check("r", "x", b"m", Some(&made.sign(b"m"))).unwrap().trusted_as, "this host");
    }
}
