//! The run context: validated options, resolved paths, the clock and the
//! output, built once in `run` and passed down (no global state).
//!
//! Paths are resolved lazily by [`Ctx::install`] because `demo` needs none.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cli::GlobalArgs;
use crate::engine::session::{self, Writing};
use crate::error::Result;
use crate::install::Install;
use crate::report::human::printable;

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
    width: Option<usize>,
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
        Output { out, err, json, verbosity, colour, width: None }
    }

    /// The same output, its results laid out for a terminal `width`
    /// columns wide.
    pub fn with_width(mut self, width: Option<usize>) -> Self {
        self.width = width;
        self
    }

    /// The width of the terminal results go to, if they go to one.
    pub fn width(&self) -> Option<usize> {
        self.width
    }

    /// Whether `-q` asked for only what is essential.
    pub fn quiet(&self) -> bool {
        self.verbosity < Verbosity::Normal
    }

    /// A result line: shown unless `--json`.
    pub fn result(&mut self, line: impl AsRef<str>) {
        if !self.json {
            write_line(&mut self.out, line.as_ref());
        }
    }

    /// A result line with a red `mark` (on a terminal) between `before`
    /// and `after`, e.g. `ID  FAILED`.
    pub fn result_marked(&mut self, before: &str, mark: &str, after: &str) {
        if !self.json {
            let mark = crate::report::human::paint(mark, 31, self.colour);
            write_raw(&mut self.out, &format!("{}{mark}{}", printable(before), printable(after)));
        }
    }

    /// A narration line, on stderr: shown unless `--json` or `-q`. Stdout
    /// carries only results, so that `ID=$(bwguard backup)` is the id.
    pub fn info(&mut self, line: impl AsRef<str>) {
        if !self.json && self.verbosity >= Verbosity::Normal {
            write_line(&mut self.err, line.as_ref());
        }
    }

    /// A detail line, on stderr: shown with `-v` only.
    pub fn detail(&mut self, line: impl AsRef<str>) {
        if !self.json && self.verbosity >= Verbosity::Verbose {
            write_line(&mut self.err, line.as_ref());
        }
    }

    /// A warning on stderr: always shown, JSON mode included.
    pub fn warn(&mut self, line: impl AsRef<str>) {
        let label = crate::report::human::paint("warning:", 33, self.colour);
        write_raw(&mut self.err, &format!("{label} {}", printable(line.as_ref())));
    }

    /// Writes the command's JSON document (only in `--json` mode).
    pub fn json(&mut self, doc: &impl serde::Serialize) {
        if self.json {
            let text = serde_json::to_string(doc)
                .or_else(|e| {
                    let e = crate::error::Error::internal(format!("cannot render the JSON document: {e}"));
                    serde_json::to_string(&crate::report::ErrorReport::of(&e))
                })
                .unwrap_or_default();
            write_raw(&mut self.out, &text);
        }
    }

    /// Shows a value in its human form.
    pub fn show(&mut self, value: &impl crate::report::Render) {
        value.render(self);
    }

    /// A raw stream for questions on stderr.
    pub fn err(&mut self) -> &mut dyn Write {
        &mut self.err
    }
}

/// Writes a line of human output, control characters escaped.
fn write_line(w: &mut Box<dyn Write>, line: &str) {
    write_raw(w, &printable(line));
}

/// Writes a line as it is; a closed pipe (e.g. `| head`) is not an error
/// worth dying for.
fn write_raw(w: &mut Box<dyn Write>, line: &str) {
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
        let width = rustix::termios::tcgetwinsize(io::stdout())
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|w| *w > 0);
        let out = Output::new(Box::new(io::stdout()), Box::new(io::stderr()), global.json, verbosity, colour)
            .with_width(width);
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

    /// `bwguard ARGS` as the admin can paste it anywhere: this very program
    /// (`bwguard` when that is what PATH finds), with `--bwdata` and
    /// `--store` unless they are the defaults seen from the install directory.
    pub fn bwguard_line(&self, install: &Install, args: &str) -> String {
        let exe = std::env::current_exe().ok().and_then(|e| e.canonicalize().ok());
        let on_path = std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("bwguard")).find(|p| p.is_file()));
        let program = match (&exe, on_path.and_then(|p| p.canonicalize().ok())) {
            (Some(e), Some(p)) if *e == p => "bwguard".to_string(),
            (Some(e), _) => crate::install::shell_word(&e.display().to_string()),
            (None, _) => "bwguard".to_string(),
        };
        let mut line = program;
        if self.global.bwdata.is_some() || install.data_name != "bwdata" {
            line += &format!(" --bwdata {}", crate::install::shell_word(&install.data.display().to_string()));
        }
        if install.store != crate::install::default_store(&install.dir) {
            line += &format!(" --store {}", crate::install::shell_word(&install.store.display().to_string()));
        }
        format!("{line} {args}")
    }

    /// Starts a writing run on `install`: takes the store lock, then deals
    /// with what killed runs left ([`session::begin`]), saying so.
    pub fn begin_write(&mut self, install: &Install, command: &str) -> Result<Writing> {
        let beside = install.dir.join(crate::install::DEFAULT_STORE_NAME);
        if self.global.store.is_none() && install.store != beside && beside.exists() {
            self.out.warn(format!(
                "the snapshots in {} are not used: another user can change that directory, so they cannot \
                 be trusted; this install's store is {}",
                beside.display(),
                install.store.display()
            ));
        }
        let mut writing = session::begin(install, command, self.now)?;
        for said in &writing.notices {
            self.out.warn(said);
        }
        // The database container a killed `backup --pause-db` stopped comes
        // back before anything else happens.
        writing.resumed_db = crate::procedure::pause::recover(install, &writing.store)?;
        if let Some(said) = &writing.resumed_db
            && command != "resume-db"
        {
            self.out.warn(said);
        }
        Ok(writing)
    }
}
