//! Remotes: where copies go, kept in `<store>/remotes.json`.
//!
//! Invariant: the file holds names, addresses and public keys only (age
//! recipients, trusted signing keys).
//! Credentials come from the environment or from a credentials file the
//! admin names; only that file's path is saved, never a key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusty_s3::Credentials;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Failure, Refusal, Result};
use crate::files;
use crate::offsite::s3::{Client, Endpoint};
use crate::offsite::sign::{Accept, Trust};

/// The file in the store that lists the remotes.
pub const REMOTES_FILE: &str = "remotes.json";

/// One remote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Remote {
    /// `s3://BUCKET/PREFIX` as given.
    pub url: String,
    /// The S3 endpoint, e.g. `https://s3.eu-central-003.backblazeb2.com`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`).
    pub path_style: bool,
    /// age recipients (public keys) every copy is encrypted to.
    pub recipients: Vec<String>,
    /// An AWS-style credentials file to read keys from, instead of the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// The profile in that file [default: `AWS_PROFILE`, else `default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Signing keys (`bwguard-ed25519:…`) of other hosts whose copies on
    /// this remote are trusted, besides this host's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<String>,
}

/// All remotes, by name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Remotes {
    /// Format of this file.
    pub format: u32,
    /// By name.
    pub remotes: BTreeMap<String, Remote>,
}

/// Bucket and key prefix of an `s3://BUCKET/PREFIX` URL.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::Usage(format!("{url:?} is not an s3://BUCKET/PREFIX address")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(ok) {
        return Err(Error::Usage(format!(
            "{bucket:?} in {url} is not an S3 bucket name (3 to 63 of a-z, 0-9, '-' and '.')"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        return Err(Error::Usage(format!("the key prefix in {url} has an empty, '.' or '..' part")));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Whether `name` can name a remote.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("{name:?} cannot name a remote: use letters, digits, '-' and '_'")))
    }
}

impl Remotes {
    /// The remotes saved in the store (none if the file does not exist).
    pub fn load(store: &Path) -> Result<Remotes> {
        let path = store.join(REMOTES_FILE);
        match files::read_small(&path, files::SMALL_CAP) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::failed(
                    Failure::BadStateFile,
                    format!("{} is unreadable: {e}", path.display()),
                    "fix or remove it, then add the remotes again with `bwguard remote add`",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Remotes { format: 1, ..Default::default() })
            }
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// Saves the remotes in the store, atomically, mode 0600.
    pub fn save(&self, store: &Path) -> Result<()> {
        files::ensure_private_dir(store)?;
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        files::write_atomic(&store.join(REMOTES_FILE), &bytes, files::Ownership::mine(files::PRIVATE_FILE))
    }

    /// The remote called `name` (exit 2 if there is none).
    pub fn get(&self, name: &str) -> Result<&Remote> {
        self.remotes.get(name).ok_or_else(|| Error::NoSuchRemote {
            name: name.to_string(),
            known: self.remotes.keys().cloned().collect(),
        })
    }
}

/// The remote called `name` in the store at `store`, or the only one
/// when `name` is `None` or empty.
pub fn pick(store: &Path, name: Option<&str>) -> Result<(String, Remote)> {
    let remotes = Remotes::load(store)?;
    match name.filter(|n| !n.is_empty()) {
        Some(n) => Ok((n.to_string(), remotes.get(n)?.clone())),
        None => {
            let mut all = remotes.remotes.into_iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => Err(Error::refused(
                    Refusal::NoRemote,
                    "no remote is set up",
                    "add one with `bwguard remote add NAME s3://BUCKET/PREFIX --endpoint URL --recipient age1…`",
                )),
                (Some(_), Some(_)) => {
                    Err(Error::Usage("several remotes are set up: name one with --remote NAME".into()))
                }
            }
        }
    }
}

impl Remote {
    /// The keys whose copies on this remote (called `name`, in the store at
    /// `store`) are accepted: this host's, the saved ones, and what
    /// `accept` adds.
    pub fn trust(&self, store: &Path, name: &str, accept: &Accept) -> Result<Trust> {
        Trust::new(store, name, &self.trusted_keys, accept)
    }

    /// The bucket and key prefix.
    pub fn bucket_prefix(&self) -> Result<(String, String)> {
        parse_url(&self.url)
    }

    /// A client for this remote, with credentials resolved now.
    pub fn client(&self) -> Result<Client> {
        let (bucket, prefix) = self.bucket_prefix()?;
        let endpoint = Endpoint {
            url: self.endpoint.clone(),
            region: self.region.clone(),
            bucket,
            path_style: self.path_style,
        };
        Client::new(&endpoint, &prefix, self.credentials()?).map_err(Error::Usage)
    }

    /// Credentials: the remote's credentials file if it names one, else
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`),
    /// else the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
    /// `~/.aws/credentials`).
    pub fn credentials(&self) -> Result<Credentials> {
        let profile = self
            .profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".into());
        if let Some(file) = &self.credentials_file {
            return from_file(file, &profile);
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(match env("AWS_SESSION_TOKEN") {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            });
        }
        let shared = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
        match shared {
            Some(file) if file.is_file() => from_file(&file, &profile),
            _ => Err(Error::refused(
                Refusal::NoCredentials,
                "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set and no credentials file was found",
                "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add the remote with --credentials-file FILE",
            )),
        }
    }
}

/// Keys of `profile` in an AWS-style credentials file (INI:
/// `[profile]`, then `aws_access_key_id = …`, `aws_secret_access_key = …`,
/// optionally `aws_session_token = …`).
fn from_file(file: &Path, profile: &str) -> Result<Credentials> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::io("cannot read credentials file", file, e))?;
    let mut section = String::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().trim_start_matches("profile ").trim().to_string();
        } else if section == profile
            && let Some((k, v)) = line.split_once('=')
        {
            values.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    match (values.get("aws_access_key_id"), values.get("aws_secret_access_key")) {
        (Some(k), Some(s)) => Ok(match values.get("aws_session_token") {
            Some(t) => Credentials::new_with_token(k.clone(), s.clone(), t.clone()),
            None => Credentials::new(k.clone(), s.clone()),
        }),
        _ => Err(Error::refused(
            Refusal::NoCredentials,
            format!(
                "{} has no aws_access_key_id and aws_secret_access_key in profile [{profile}]",
                file.display()
            ),
            "add them to that profile, or name another with AWS_PROFILE or `remote add --profile`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://vault-backups/host1/bw").unwrap(),
            ("vault-backups".into(), "host1/bw".into())
        );
        assert_eq!(parse_url("s3://vault-backups").unwrap(), ("vault-backups".into(), "".into()));
        assert_eq!(parse_url("s3://vault-backups/p/").unwrap().1, "p");
        for bad in ["vault", "s3://", "s3://AB", "s3://b_b/x", "s3://bucket/a/../b", "s3://bucket/a//b"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_file_profiles() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("creds");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = AK1\naws_secret_access_key = S1\n\n[profile b2]\n\
             aws_access_key_id=AK2\naws_secret_access_key=S2\naws_session_token = T2\n",
        )
        .unwrap();
        let c = from_file(&f, "default").unwrap();
        assert_eq!((c.key(), c.secret(), c.token()), ("AK1", "S1", None));
        let c = from_file(&f, "b2").unwrap();
        assert_eq!((c.key(), c.secret(), c.token()), ("AK2", "S2", Some("T2")));
        let e = from_file(&f, "other").unwrap_err().to_string();
        assert!(e.contains("[other]") && !e.contains("S1"), "{e}");
    }
}
