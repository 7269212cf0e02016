//! TestEnv: a generated install in a temporary directory, the real bwguard
//! binary run against it with a scrubbed environment, and helpers that read
//! what is on disk.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bwguard::sample::{SampleOptions, generate};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The bwguard binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bwguard");

/// A scratch install and store.
pub struct TestEnv {
    /// Holds everything; removed on drop.
    pub dir: TempDir,
    /// The install directory (bitwarden.sh, bwdata/).
    pub install: PathBuf,
    /// The store, outside the install.
    pub store: PathBuf,
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output if it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// The stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    /// Asserts that stderr (or stdout) mentions `text`.
    #[track_caller]
    pub fn says(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text) || self.stdout.contains(text),
            "expected {text:?} in output\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl TestEnv {
    /// A small generated install (a few MB) shaped like a real one.
    pub fn new() -> Self {
        Self::with(&SampleOptions {
            vault_kib: Some(768),
            backups: 2,
            small_system_dbs: true,
            ..Default::default()
        })
    }

    /// A generated install with the given options.
    pub fn with(opts: &SampleOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("install");
        generate(&install, opts).unwrap();
        let store = dir.path().join("store");
        TestEnv { dir, install, store }
    }

    /// The data directory.
    pub fn bwdata(&self) -> PathBuf {
        self.install.join("bwdata")
    }

    /// `bwdata/config.yml`.
    pub fn config_path(&self) -> PathBuf {
        self.bwdata().join("config.yml")
    }

    /// The bytes of config.yml.
    pub fn config(&self) -> Vec<u8> {
        fs::read(self.config_path()).unwrap()
    }

    /// Replaces config.yml with `bytes`.
    pub fn set_config(&self, bytes: &[u8]) {
        fs::write(self.config_path(), bytes).unwrap();
    }

    /// A command for the binary, run in the install directory with
    /// `--store` set and no BWGUARD_* variables from the outside.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(&self.install)
            .env_remove("BWGUARD_BWDATA")
            .env_remove("BWGUARD_STORE")
            .env("NO_COLOR", "1")
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Takes a backup and returns its id.
    pub fn backup(&self) -> String {
        let r = self.run(&["backup", "--json"]);
        r.ok();
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Ids of complete snapshots, newest first (from the store on disk).
    pub fn snapshot_ids(&self) -> Vec<String> {
        let r = self.run(&["list", "--json"]);
        r.ok();
        r.json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// A snapshot's directory.
    pub fn snap_dir(&self, id: &str) -> PathBuf {
        self.store.join(id)
    }

    /// Every entry of the install: type, content digest or link target,
    /// mode and mtime (directory mtimes only where `dir_mtimes`).
    pub fn tree(&self) -> BTreeMap<String, String> {
        tree_of(&self.install, true)
    }

    /// Every file of the store and its digest (to prove nothing changed).
    pub fn store_tree(&self) -> BTreeMap<String, String> {
        if self.store.exists() { tree_of(&self.store, false) } else { BTreeMap::new() }
    }
}

/// Directories that hold parts of a snapshot rather than being parts; their
/// mtime moves while staging directories come and go beside the parts.
const PARTS_PARENTS: [&str; 3] = ["bwdata", "bwdata/core", "bwdata/scripts"];

/// A fingerprint of every entry under `root`.
pub fn tree_of(root: &Path, with_meta: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel.is_empty() || rel == "lock" {
            continue;
        }
        let m = fs::symlink_metadata(e.path()).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            format!("file {}", bwguard::engine::manifest::hex(&Sha256::digest(fs::read(e.path()).unwrap())))
        } else {
            "dir".into()
        };
        let meta = if !with_meta {
            String::new()
        } else if m.is_dir() && PARTS_PARENTS.contains(&rel.as_str()) {
            format!(" mode {:o}", m.mode() & 0o7777)
        } else {
            format!(" mode {:o} mtime {} uid {} gid {}", m.mode() & 0o7777, m.mtime(), m.uid(), m.gid())
        };
        out.insert(rel, format!("{what}{meta}"));
    }
    out
}

/// Asserts two trees are equal, listing the entries that differ.
#[track_caller]
pub fn assert_same_tree(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) {
    let diff: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} != {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(diff.is_empty(), "trees differ:\n{}", diff.join("\n"));
}
