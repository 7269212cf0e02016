//! Running the install's `bitwarden.sh` the way Bitwarden expects: from
//! the install directory, as the install's owner, and keeping the end of
//! what it printed for the journal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::Step;
use crate::error::{Error, Refusal, Result};
use crate::files;
use crate::install::Install;

/// Lines of a step's output kept in the journal.
const TAIL_LINES: usize = 40;

/// Runs `bitwarden.sh` the way Bitwarden expects: from the install
/// directory, as the install's owner.
pub struct Runner {
    script: PathBuf,
    dir: PathBuf,
    /// Run as this uid/gid (when bwguard runs as root for a non-root install).
    as_owner: Option<(u32, u32)>,
    /// Answer the root question with `y` (root-owned install and `--yes`).
    answer_yes: bool,
}

impl Runner {
    /// The runner of `script` (default: `bitwarden.sh` in the install
    /// directory), refusing a script that cannot run, and a root-owned install
    /// unless `yes` answers the script's root question.
    pub fn new(install: &Install, script: Option<&Path>, yes: bool) -> Result<Runner> {
        let script = script.map(Path::to_path_buf).unwrap_or_else(|| install.dir.join("bitwarden.sh"));
        let meta = fs::metadata(&script).map_err(|e| {
            Error::refused(
                Refusal::NoScript,
                format!("{} cannot be run: {e}", script.display()),
                "pass --bitwarden-sh PATH to name Bitwarden's script",
            )
        })?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(Error::refused(
                Refusal::NoScript,
                format!("{} is not an executable file", script.display()),
                format!("chmod +x {}", script.display()),
            ));
        }
        let owner = fs::metadata(&install.dir).map_err(|e| Error::io("cannot read", &install.dir, e))?;
        let (as_owner, answer_yes) = match (files::is_root(), owner.uid()) {
            (true, 0) if yes => (None, true),
            (true, 0) => {
                return Err(Error::refused(
                    Refusal::RootInstall,
                    format!(
                        "{} belongs to root, and bitwarden.sh run as root asks whether to go on",
                        install.dir.display()
                    ),
                    "pass --yes to answer it, or give the install to the user that runs Bitwarden",
                ));
            }
            (true, uid) => (Some((uid, owner.gid())), false),
            (false, _) => (None, false),
        };
        Ok(Runner { script, dir: install.dir.clone(), as_owner, answer_yes })
    }

    /// Runs `bitwarden.sh ARG`, keeping the end of its output.
    pub fn run(&self, arg: &str) -> Step {
        let started = crate::procedure::now_rfc3339();
        let t = Instant::now();
        let mut cmd = match self.as_owner {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg("--");
                c.arg(&self.script);
                c
            }
            None => Command::new(&self.script),
        };
        cmd.arg(arg)
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::piped());
        let name = format!("./bitwarden.sh {arg}");
        let out = cmd.spawn().and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(if self.answer_yes { b"y\n" } else { b"n\n" });
            }
            child.wait_with_output()
        });
        match out {
            Ok(o) => {
                let text =
                    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                Step {
                    name,
                    started,
                    seconds: t.elapsed().as_secs_f64(),
                    exit_code: o.status.code(),
                    ok: o.status.success(),
                    output: tail(&text),
                }
            }
            Err(e) => Step {
                name,
                started,
                seconds: t.elapsed().as_secs_f64(),
                exit_code: None,
                ok: false,
                output: format!("cannot run {}: {e}", self.script.display()),
            },
        }
    }
}

/// The last [`TAIL_LINES`] lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}
