//! The run context: validated options, resolved paths, the clock and the
//! output, built once in `run` and passed down (no global state).
//!
//! Paths are resolved lazily by [`Ctx::install`] because `demo` needs none.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::cli::GlobalArgs;
use crate::error::{Error, Result};

/// Names the data directory may have inside the install directory, in the
/// order they are looked for.
pub const DATA_DIR_NAMES: [&str; 2] = ["bwdata", ".bwdata"];
/// Name of the default store, beside the data directory.
pub const DEFAULT_STORE_NAME: &str = "bwguard-snapshots";

/// Where the install, its data directory and the store are.
#[derive(Debug, Clone)]
pub struct Install {
    /// The directory holding `bitwarden.sh` and the data directory (absolute).
    pub dir: PathBuf,
    /// The data directory (absolute), `dir/data_name`.
    pub data: PathBuf,
    /// The data directory's real name (`bwdata` or `.bwdata`).
    pub data_name: String,
    /// The snapshot store (absolute; may not exist yet).
    pub store: PathBuf,
}

impl Install {
    /// Resolves the data directory and the store from the flags and `cwd`.
    pub fn resolve(bwdata: Option<&Path>, store: Option<&Path>, cwd: &Path) -> Result<Install> {
        let data = match bwdata {
            Some(p) => {
                let p = cwd.join(p);
                if !p.is_dir() {
                    return Err(Error::NoDataDir(p));
                }
                p
            }
            None => DATA_DIR_NAMES
                .iter()
                .map(|n| cwd.join(n))
                .find(|p| p.is_dir())
                .ok_or_else(|| Error::NoDataDirHere(cwd.to_path_buf()))?,
        };
        let data = data.canonicalize().map_err(|e| Error::io("cannot resolve", &data, e))?;
        let (Some(dir), Some(name)) = (data.parent(), data.file_name()) else {
            return Err(Error::NoDataDir(data));
        };
        let dir = dir.to_path_buf();
        let data_name = name.to_string_lossy().into_owned();
        let store = match store {
            Some(s) => absolute_through_existing(&cwd.join(s))?,
            None => dir.join(DEFAULT_STORE_NAME),
        };
        if store.starts_with(&data) {
            return Err(Error::StoreInsideData { store, data });
        }
        Ok(Install { dir, data, data_name, store })
    }

    /// The install-relative path of something inside the data directory.
    pub fn rel(&self, inside_data: &str) -> String {
        if inside_data.is_empty() {
            self.data_name.clone()
        } else {
            format!("{}/{}", self.data_name, inside_data)
        }
    }

    /// `bwdata/config.yml`, absolute.
    pub fn config_path(&self) -> PathBuf {
        self.data.join("config.yml")
    }
}

/// Canonicalizes the longest existing ancestor of `p` and appends the rest,
/// so a store that does not exist yet is still compared by its real path.
fn absolute_through_existing(p: &Path) -> Result<PathBuf> {
    let mut existing = p;
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                return Ok(rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c)));
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(p.to_path_buf()),
            },
        }
    }
}

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: only results and errors.
    Quiet,
    /// The default.
    Normal,
    /// `-v`: details.
    Verbose,
}

/// Human output: lines for stdout and warnings for stderr, silenced in
/// `--json` mode (where stdout carries one JSON document only).
pub struct Output {
    out: Box<dyn Write>,
    err: Box<dyn Write>,
    json: bool,
    verbosity: Verbosity,
    colour: bool,
}

impl Output {
    /// An output writing to the given streams; `colour` paints labels on stderr.
    pub fn new(
        out: Box<dyn Write>,
        err: Box<dyn Write>,
        json: bool,
        verbosity: Verbosity,
        colour: bool,
    ) -> Self {
        Output { out, err, json, verbosity, colour }
    }

    /// A result line: shown unless `--json`.
    pub fn result(&mut self, line: impl AsRef<str>) {
        if !self.json {
            write_line(&mut self.out, line.as_ref());
        }
    }

    /// A narration line: shown unless `--json` or `-q`.
    pub fn info(&mut self, line: impl AsRef<str>) {
        if !self.json && self.verbosity >= Verbosity::Normal {
            write_line(&mut self.out, line.as_ref());
        }
    }

    /// A detail line: shown with `-v` only.
    pub fn detail(&mut self, line: impl AsRef<str>) {
        if !self.json && self.verbosity >= Verbosity::Verbose {
            write_line(&mut self.out, line.as_ref());
        }
    }

    /// A warning on stderr: always shown, JSON mode included.
    pub fn warn(&mut self, line: impl AsRef<str>) {
        let label = crate::report::human::paint("warning:", 33, self.colour);
        write_line(&mut self.err, &format!("{label} {}", line.as_ref()));
    }

    /// Writes the command's JSON document (only in `--json` mode).
    pub fn json(&mut self, doc: &serde_json::Value) {
        if self.json {
            write_line(&mut self.out, &doc.to_string());
        }
    }

    /// A raw stream for questions on stderr.
    pub fn err(&mut self) -> &mut dyn Write {
        &mut self.err
    }
}

/// Writes a line; a closed pipe (e.g. `| head`) is not an error worth dying for.
fn write_line(w: &mut Box<dyn Write>, line: &str) {
    let _ = writeln!(w, "{line}").and_then(|_| w.flush());
}

/// Everything a command needs to run.
pub struct Ctx {
    /// The global flags as given.
    pub global: GlobalArgs,
    /// The current directory the paths are resolved against.
    pub cwd: PathBuf,
    /// The time the run started, used for snapshot ids and ages.
    pub now: DateTime<Utc>,
    /// Whether a person can answer questions on stdin.
    pub interactive: bool,
    /// Whether stderr is a terminal (progress display).
    pub progress: bool,
    /// Whether systemd runs this host (`/run/systemd/system` exists; the
    /// environment variable `BWGUARD_SYSTEMD=yes|no` overrides, for tests
    /// and containers).
    pub systemd: bool,
    /// Where to write.
    pub out: Output,
}

impl Ctx {
    /// The context of a process run: real clock, real terminal, real streams.
    pub fn from_process(global: GlobalArgs) -> io::Result<Ctx> {
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let colour = crate::report::human::colour_stderr();
        let out = Output::new(Box::new(io::stdout()), Box::new(io::stderr()), global.json, verbosity, colour);
        Ok(Ctx {
            cwd: std::env::current_dir()?,
            now: Utc::now(),
            interactive: io::stdin().is_terminal(),
            progress: !global.no_progress && !global.json && io::stderr().is_terminal(),
            systemd: match std::env::var("BWGUARD_SYSTEMD").as_deref() {
                Ok("yes") => true,
                Ok("no") => false,
                _ => std::path::Path::new("/run/systemd/system").is_dir(),
            },
            out,
            global,
        })
    }

    /// Resolves the install from `--bwdata`/`--store` (or the defaults).
    pub fn install(&self) -> Result<Install> {
        Install::resolve(self.global.bwdata.as_deref(), self.global.store.as_deref(), &self.cwd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bwdata_then_dot_bwdata() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join(".bwdata")).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert_eq!(i.data_name, ".bwdata");
        std::fs::create_dir(t.path().join("bwdata")).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert_eq!(i.data_name, "bwdata");
        assert_eq!(i.store, i.dir.join(DEFAULT_STORE_NAME));
    }

    #[test]
    fn missing_data_dir_names_both_candidates() {
        let t = tempfile::tempdir().unwrap();
        let e = Install::resolve(None, None, t.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bwdata") && msg.contains(".bwdata"), "{msg}");
    }

    #[test]
    fn store_inside_data_is_refused_even_if_not_created() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bwdata")).unwrap();
        let e = Install::resolve(None, Some(Path::new("bwdata/snaps/x")), t.path()).unwrap_err();
        assert!(matches!(e, Error::StoreInsideData { .. }), "{e:?}");
    }
}
