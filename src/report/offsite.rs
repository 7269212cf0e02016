//! Documents about off-site copies: `push`, `pull`, `remote`, and
//! `list --remote`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Render;
use super::human::{human_age, human_size};
use super::table::{damaged_row, table};
use crate::context::Output;
use crate::offsite::RemoteManifest;
use crate::offsite::remote::Remote;
use crate::offsite::sign::Signer;

/// `push` (and `backup --push`): what went to the remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushReport {
    /// The remote.
    pub remote: String,
    /// Copies uploaded by this run.
    pub pushed: Vec<PushedCopy>,
    /// Snapshots the remote already held.
    pub already_there: Vec<String>,
}

/// A copy uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedCopy {
    /// The snapshot.
    pub id: String,
    /// The encrypted object, as `s3://BUCKET/KEY`.
    pub object: String,
    /// Its bytes.
    pub object_size: u64,
    /// Its SHA-256.
    pub object_sha256: String,
}

impl Render for PushReport {
    fn render(&self, out: &mut Output) {
        for p in &self.pushed {
            out.result(format!(
                "{}  pushed to {}: {} encrypted, {}",
                p.id,
                self.remote,
                human_size(p.object_size),
                p.object
            ));
        }
        for id in &self.already_there {
            out.result(format!("{id}  already on {}", self.remote));
        }
    }
}

/// `pull`: a copy brought into the local store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullReport {
    /// The snapshot.
    pub id: String,
    /// The remote.
    pub remote: String,
    /// Whether it was downloaded (false: the store held it already).
    pub pulled: bool,
    /// Its directory in the local store.
    pub path: String,
    /// Regular files it holds.
    pub files: usize,
    /// Bytes of those files.
    pub content_size: u64,
    /// Who signed the copy, and why that key is trusted.
    pub signed_by: Signer,
}

impl Render for PullReport {
    fn render(&self, out: &mut Output) {
        if self.pulled {
            out.result(format!(
                "Pulled {} from {} into {}: decrypted and checked against its checksums ({} files, {}); {}",
                self.id,
                self.remote,
                self.path,
                self.files,
                human_size(self.content_size),
                self.signed_by
            ));
        } else {
            out.info(format!("{} is already in the local store; nothing downloaded", self.id));
        }
    }
}

/// `remote add`, `remote list`, `remote remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RemoteReport {
    /// `remote add`.
    Added {
        /// Its name.
        name: String,
        /// What was saved.
        remote: Remote,
        /// False when the same remote was already set up.
        changed: bool,
        /// This host's signing key (public half): every copy it pushes is
        /// signed with it.
        signing_key: String,
        /// Whether that key was made by this run.
        key_created: bool,
    },
    /// `remote list`.
    Listed {
        /// Every remote, by name.
        remotes: BTreeMap<String, Remote>,
        /// This host's signing key (public half), if it has one.
        signing_key: Option<String>,
    },
    /// `remote remove`.
    Removed {
        /// The name removed.
        removed: String,
    },
}

impl Render for RemoteReport {
    fn render(&self, out: &mut Output) {
        match self {
            RemoteReport::Added { name, remote, changed, signing_key, key_created } => {
                if *changed {
                    let n = remote.recipients.len();
                    out.result(format!(
                        "Added remote {name}: {} ({n} recipient{}). Push with `bwguard push --remote {name}`.",
                        remote.url,
                        if n == 1 { "" } else { "s" }
                    ));
                } else {
                    out.result(format!("Remote {name} is already set up like this."));
                }
                out.result(format!(
                    "This host signs every copy it pushes with {signing_key}{}",
                    if *key_created { " (made now)" } else { "" }
                ));
                out.info(
                    "Keep that key off this host, with the age identity: pull, verify and rollback accept \
                     only copies signed by a trusted key, and a new host needs it as --trust-key.",
                );
                if *changed && remote.credentials_file.is_none() {
                    out.info(
                        "The S3 keys come from the environment of each run; for scheduled pushes, \
                         add the remote with --credentials-file FILE",
                    );
                }
            }
            RemoteReport::Listed { remotes, signing_key } => {
                if remotes.is_empty() {
                    out.info(
                        "No remotes. Add one with \
                         `bwguard remote add NAME s3://BUCKET/PREFIX --endpoint URL --recipient age1…`.",
                    );
                }
                for (name, r) in remotes {
                    let keys = match &r.credentials_file {
                        Some(f) => format!("keys from {}", f.display()),
                        None => "keys from the environment".into(),
                    };
                    let n = r.recipients.len();
                    out.result(format!(
                        "{name}  {}  {}  {n} {}, {keys}",
                        r.url,
                        r.endpoint,
                        if n == 1 { "recipient" } else { "recipients" }
                    ));
                    for k in &r.trusted_keys {
                        out.result(format!("{name}  also trusts copies signed by {k}"));
                    }
                }
                match signing_key {
                    Some(k) => out.result(format!("This host signs its copies with {k}")),
                    None if !remotes.is_empty() => {
                        out.info("This host has no signing key yet; its next push makes one.")
                    }
                    None => {}
                }
            }
            RemoteReport::Removed { removed } => {
                out.result(format!("Removed remote {removed}; its bucket was left as it is."))
            }
        }
    }
}

/// `list --remote NAME`: the complete copies, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteListReport {
    /// The remote.
    pub remote: String,
    /// Its `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The copies.
    pub snapshots: Vec<RemoteListing>,
    /// Ids of incomplete copies (an interrupted push or prune), not listed.
    pub incomplete: Vec<String>,
}

/// One listed copy: readable, or damaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RemoteListing {
    /// A copy whose public manifest reads.
    Copy {
        /// Its public manifest.
        copy: Box<RemoteManifest>,
        /// Seconds since the snapshot was taken.
        age_seconds: Option<i64>,
        /// Seconds since it was pushed.
        pushed_age_seconds: Option<i64>,
        /// Who signed it, when a trusted key did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_by: Option<Signer>,
        /// Otherwise, why it is not trusted (unsigned, an unknown key, a
        /// signature that does not match).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        untrusted: Option<String>,
    },
    /// A copy whose public manifest does not read.
    Damaged {
        /// Its id.
        id: String,
        /// Why.
        damaged: String,
    },
}

impl Render for RemoteListReport {
    fn render(&self, out: &mut Output) {
        if self.snapshots.is_empty() {
            out.info(format!("No snapshot copies on {} ({}).", self.remote, self.url));
        } else {
            let mut rows = vec![
                ["ID", "AGE", "REASON", "SIZE", "PINNED", "VERSION", "PUSHED", "SIGNED BY"].map(String::from),
            ];
            let mut untrusted_ids = Vec::new();
            for l in &self.snapshots {
                rows.push(match l {
                    RemoteListing::Copy {
                        copy: m,
                        age_seconds,
                        pushed_age_seconds,
                        signed_by,
                        untrusted,
                    } => [
                        m.id.clone(),
                        age_seconds.map(human_age).unwrap_or_else(|| "?".into()),
                        m.reason.clone(),
                        human_size(m.object.size),
                        if m.pinned { "yes" } else { "no" }.into(),
                        m.bitwarden.core_version.clone().unwrap_or_else(|| "?".into()),
                        pushed_age_seconds.map(|a| human_age(a) + " ago").unwrap_or_else(|| "?".into()),
                        match (signed_by, untrusted) {
                            (Some(s), _) => s.trusted_as.clone(),
                            (None, problem) => {
                                untrusted_ids.push((m.id.clone(), problem.clone().unwrap_or_default()));
                                "NOT TRUSTED".into()
                            }
                        },
                    ],
                    RemoteListing::Damaged { id, damaged } => damaged_row(id, damaged),
                });
            }
            for line in table(&rows) {
                out.result(line);
            }
            for (id, problem) in untrusted_ids {
                out.warn(format!("{id} is not used by pull, verify, rollback or prune: {problem}"));
            }
        }
        if !self.incomplete.is_empty() {
            out.info(format!(
                "{} incomplete copies not listed ({}); a push of those snapshots replaces them, \
                 `prune --remote` removes them",
                self.incomplete.len(),
                self.incomplete.join(", ")
            ));
        }
    }
}
