//! The test bed: a generated install in a temporary directory ([`TestEnv`]),
//! and one builder for every run of the real bwguard binary ([`Bwguard`]):
//! arguments, environment, working directory, stdin and user in, a [`Run`]
//! out whose status, stdout, stderr and typed JSON the test asserts on,
//! beside the files on disk. No test builds a `Command` for bwguard by hand.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bwguard::sample::{SampleOptions, generate};
use serde::de::DeserializeOwned;
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

/// One run of the binary, built up before it runs: the environment is
/// scrubbed of `BWGUARD_*` and colour, stdin is empty unless given.
#[must_use]
pub struct Bwguard {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    user: Option<(u32, u32)>,
    login: Option<String>,
    wrapper: Option<Wrapper>,
}

/// What the binary runs under.
enum Wrapper {
    /// `sh -c 'PREFIX; exec BIN ARGS'`.
    Shell(String),
    /// A pseudo-terminal from `script` (util-linux); stdout is the terminal,
    /// this many columns wide when given.
    Terminal(Option<u16>),
}

impl Bwguard {
    /// The binary with `args`, no `--store`, in the test's working directory.
    pub fn new<S: AsRef<OsStr>>(args: &[S]) -> Self {
        Bwguard {
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            user: None,
            login: None,
            wrapper: None,
        }
    }

    /// One more argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_os_string(), Some(value.as_ref().to_os_string())));
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_os_string(), None));
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Feeds `bytes` on stdin.
    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(bytes.as_ref().to_vec());
        self
    }

    /// Runs as `uid`:`gid` with no supplementary groups (through `setpriv`;
    /// the test must run as root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Runs as the user `name` with that user's groups (through `setpriv
    /// --init-groups`; the test must run as root).
    pub fn run_as_user(mut self, name: &str) -> Self {
        self.login = Some(name.to_string());
        self
    }

    /// Runs under `sh -c 'PREFIX; exec bwguard ARGS'` (e.g. `umask 000`).
    pub fn shell_prefix(mut self, prefix: &str) -> Self {
        self.wrapper = Some(Wrapper::Shell(prefix.to_string()));
        self
    }

    /// Runs on a pseudo-terminal (`script -qec`), so stdin, stdout and
    /// stderr are a terminal; what it printed comes back as stdout. `NO_COLOR`
    /// is left unset unless the test sets it.
    pub fn on_terminal(mut self) -> Self {
        self.wrapper = Some(Wrapper::Terminal(None));
        self
    }

    /// [`Bwguard::on_terminal`], `cols` columns wide.
    pub fn on_terminal_cols(mut self, cols: u16) -> Self {
        self.wrapper = Some(Wrapper::Terminal(Some(cols)));
        self
    }

    fn command(&self) -> Command {
        let mut c = match (&self.wrapper, self.user) {
            (Some(Wrapper::Shell(prefix)), _) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{prefix}; exec \"$0\" \"$@\"")).arg(BIN);
                c
            }
            (Some(Wrapper::Terminal(cols)), _) => {
                let words: Vec<String> = std::iter::once(OsStr::new(BIN))
                    .chain(self.args.iter().map(OsString::as_os_str))
                    .map(|w| format!("'{}'", w.to_string_lossy().replace('\'', "'\\''")))
                    .collect();
                let line = match cols {
                    Some(n) => format!("stty cols {n} rows 40; exec {}", words.join(" ")),
                    None => words.join(" "),
                };
                let mut c = Command::new("script");
                c.args(["-qec", &line, "/dev/null"]);
                c
            }
            (None, _) if self.login.is_some() => {
                let name = self.login.as_deref().unwrap_or_default();
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={name}")).arg(format!("--regid={name}")).args(["--init-groups", "--"]);
                c.arg(BIN);
                c
            }
            (None, Some((uid, gid))) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).args(["--clear-groups", "--"]);
                c.arg(BIN);
                c
            }
            (None, None) => Command::new(BIN),
        };
        c.env_remove("BWGUARD_BWDATA").env_remove("BWGUARD_STORE");
        if !matches!(self.wrapper, Some(Wrapper::Terminal(_))) {
            c.env("NO_COLOR", "1").args(&self.args);
        } else {
            c.env_remove("NO_COLOR");
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c
    }

    /// Runs to completion.
    pub fn run(self) -> Run {
        let mut child =
            self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start bwguard");
        if let (Some(bytes), Some(mut stdin)) = (&self.stdin, child.stdin.take()) {
            let _ = stdin.write_all(bytes);
        }
        let out = child.wait_with_output().expect("wait for bwguard");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs to completion within `limit`, or kills it and fails the test:
    /// for runs that must not hang.
    #[track_caller]
    pub fn run_within(self, limit: std::time::Duration) -> Run {
        let child =
            self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start bwguard");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(limit) {
            Ok(out) => {
                let out = out.expect("wait for bwguard");
                Run {
                    code: out.status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
            }
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("bwguard {:?} ran longer than {limit:?}: it hangs", self.args);
            }
        }
    }

    /// Starts it in the background, its output discarded (to kill it, or
    /// race it).
    pub fn spawn(self) -> Child {
        self.command().stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start bwguard")
    }

    /// Starts it in the background, its output kept for `wait_with_output`.
    pub fn spawn_piped(self) -> Child {
        self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start bwguard")
    }
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

    /// The stdout parsed as one JSON document of type `T` (one of
    /// `bwguard::report`'s documents): its shape is checked field by field.
    #[track_caller]
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not a {} ({e}):\n{}", std::any::type_name::<T>(), self.stdout)
        })
    }

    /// The `--json` error document, asserting its exit code and kind.
    #[track_caller]
    pub fn error(&self, code: i32, kind: &str) -> bwguard::report::ErrorDoc {
        self.code(code);
        let doc: bwguard::report::ErrorReport = self.parse();
        assert_eq!(doc.error.code, code, "{}", self.stdout);
        assert_eq!(doc.error.kind, kind, "{}", self.stdout);
        doc.error
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

    /// Asserts that stdout mentions `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(self.stdout.contains(text), "expected {text:?} on stdout\nstdout:\n{}", self.stdout);
        self
    }

    /// Asserts that stderr mentions `text`.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(self.stderr.contains(text), "expected {text:?} on stderr\nstderr:\n{}", self.stderr);
        self
    }

    /// Asserts that the file at `path` holds exactly `bytes`.
    #[track_caller]
    pub fn file(&self, path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> &Self {
        let path = path.as_ref();
        let got = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(got == bytes.as_ref(), "{} does not hold the expected bytes", path.display());
        self
    }

    /// Asserts that nothing exists at `path`.
    #[track_caller]
    pub fn no_file(&self, path: impl AsRef<Path>) -> &Self {
        let path = path.as_ref();
        assert!(fs::symlink_metadata(path).is_err(), "{} exists", path.display());
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

    /// A run of the binary in the install directory with `--store` set.
    pub fn bwguard<S: AsRef<OsStr>>(&self, args: &[S]) -> Bwguard {
        Bwguard::new(&[OsStr::new("--store"), self.store.as_os_str()]).args(args).current_dir(&self.install)
    }

    /// Runs the binary to completion (`self.bwguard(args).run()`).
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.bwguard(args).run()
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

    /// A snapshot's manifest, as JSON.
    pub fn manifest(&self, id: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.snap_dir(id).join("manifest.json")).unwrap()).unwrap()
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
        } else if m.is_dir() && PARTS_PARENTS.iter().any(|p| rel == *p || rel == format!(".{p}")) {
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

/// Starts `script` under `sh -c` in a session of its own, detached from
/// the test process (a watcher that cleans up once the tests are gone).
pub fn spawn_detached(script: &str) -> std::io::Result<()> {
    Command::new("setsid")
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// Builds `source` (C) with the system's compiler into `dir/NAME.so`, for
/// `LD_PRELOAD`: fault injection at a system call the binary makes through
/// libc. The error says why it could not be built.
pub fn c_shim(dir: &Path, name: &str, source: &str) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    let lib = dir.join(format!("{name}.so"));
    fs::write(&src, source).unwrap();
    let out =
        Command::new("cc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&lib).arg(&src).arg("-ldl").output();
    match out {
        Ok(o) if o.status.success() => Ok(lib),
        Ok(o) => Err(format!("cc {name}.c: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("cannot run cc: {e}")),
    }
}

/// Unmounts `dir`, lazily if it is busy; never panics (it runs in `Drop`,
/// also while unwinding).
pub fn unmount(dir: &Path) {
    let ok = Command::new("umount").arg(dir).status().is_ok_and(|s| s.success());
    if !ok {
        let lazy = Command::new("umount").arg("-l").arg(dir).status();
        eprintln!("umount {} failed; lazy unmount: {lazy:?}", dir.display());
    }
}

/// The `id` of each object in the array `key` of a JSON document.
pub fn ids_of(doc: &serde_json::Value, key: &str) -> Vec<String> {
    doc[key].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
}
