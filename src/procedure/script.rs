//! Running the install's `bitwarden.sh` the way Bitwarden expects: from
//! the install directory, as the install's owner with that user's groups,
//! given the data directory when it is not `bwdata`; its stdout and stderr
//! kept in order in one stream, the banner and known noise left out, the
//! last line shown live on a terminal, and stopped after a time limit.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Step;
use super::runas::RunAs;
use crate::error::{Error, Refusal, Result};
use crate::install::{Install, shell_word};
use crate::report::human::human_age;

/// Lines of a step's output kept in the journal.
const TAIL_LINES: usize = 40;

/// Runs `bitwarden.sh` the way Bitwarden expects.
pub struct Runner {
    script: PathBuf,
    dir: PathBuf,
    /// The data directory, passed as the second argument when it is not
    /// `bwdata` (bitwarden.sh assumes `bwdata` otherwise).
    data_arg: Option<PathBuf>,
    /// Who runs it.
    pub who: RunAs,
    /// Answer the root question with `y` (root-owned install and `--yes`).
    answer_yes: bool,
    /// How long one step may take.
    timeout: Duration,
    /// Show the last line of a running step on the terminal.
    progress: bool,
}

impl Runner {
    /// The runner of `script` (default: `bitwarden.sh` in the install
    /// directory), refusing a script that cannot run, and a root-owned
    /// install unless `yes` answers the script's root question.
    pub fn new(
        install: &Install,
        script: Option<&Path>,
        yes: bool,
        timeout: Duration,
        progress: bool,
    ) -> Result<Runner> {
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
        let who = RunAs::owner_of(&install.dir).map_err(|e| Error::io("cannot read", &install.dir, e))?;
        if who.uid == 0 && !yes {
            return Err(Error::refused(
                Refusal::RootInstall,
                format!(
                    "{} belongs to root, and bitwarden.sh run as root asks whether to go on",
                    install.dir.display()
                ),
                "pass --yes to answer it, or give the install to the user that runs Bitwarden",
            ));
        }
        let data_arg = (install.data_name != "bwdata").then(|| install.data.clone());
        Ok(Runner { script, dir: install.dir.clone(), data_arg, who, answer_yes: yes, timeout, progress })
    }

    /// `./bitwarden.sh ARG` as the admin would type it in the install
    /// directory, the data directory included when it is not `bwdata`.
    pub fn command_line(&self, arg: &str) -> String {
        let script = match self.script.strip_prefix(&self.dir) {
            Ok(rel) => format!("./{}", rel.display()),
            Err(_) => shell_word(&self.script.display().to_string()),
        };
        match &self.data_arg {
            Some(d) => format!("{script} {arg} {}", shell_word(&d.display().to_string())),
            None => format!("{script} {arg}"),
        }
    }

    /// Runs `bitwarden.sh ARG`, keeping the end of what it printed.
    pub fn run(&self, arg: &str) -> Step {
        let started = super::now_rfc3339();
        let t = Instant::now();
        let name = format!("./bitwarden.sh {arg}");
        let outcome = self.run_inner(arg, &name);
        let seconds = t.elapsed().as_secs_f64();
        match outcome {
            Ok(Ran { code, lines, timed_out: false }) => {
                Step { name, started, seconds, exit_code: code, ok: code == Some(0), output: tail(&lines) }
            }
            Ok(Ran { lines, .. }) => Step {
                name,
                started,
                seconds,
                exit_code: None,
                ok: false,
                output: format!(
                    "{}\nbwguard stopped it after {} (--step-timeout)",
                    tail(&lines),
                    human_age(self.timeout.as_secs() as i64)
                ),
            },
            Err(e) => Step {
                name,
                started,
                seconds,
                exit_code: None,
                ok: false,
                output: format!("cannot run {}: {e}", self.script.display()),
            },
        }
    }

    fn run_inner(&self, arg: &str, name: &str) -> std::io::Result<Ran> {
        let (reader, writer) = std::io::pipe()?;
        let mut cmd = self.who.command(&self.script);
        cmd.arg(arg);
        if let Some(d) = &self.data_arg {
            cmd.arg(d);
        }
        // One pipe for both streams keeps their lines in the order written.
        cmd.current_dir(&self.dir)
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .stdin(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        // The parent's copies of the pipe's write end go with the command,
        // so the reader sees the end of the output when the script exits.
        drop(cmd);
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(if self.answer_yes { b"y\n" } else { b"n\n" });
        }
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n').map_while(std::result::Result::ok) {
                let line = without_colours(String::from_utf8_lossy(&line).trim_end_matches('\r'));
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let live = Live::new(self.progress, name);
        let (t, mut lines, mut timed_out) = (Instant::now(), Vec::new(), false);
        let keep = |line: String, lines: &mut Vec<String>| {
            live.show(&line);
            lines.push(line);
            if lines.len() > 4 * TAIL_LINES {
                lines.drain(..lines.len() - 2 * TAIL_LINES);
            }
        };
        let status = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    keep(line, &mut lines);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The end of the output: the script is done.
                Err(mpsc::RecvTimeoutError::Disconnected) => break child.wait()?,
            }
            if let Some(status) = child.try_wait()? {
                // It exited, but a process it started holds the pipe: take
                // what comes within two seconds, then stop waiting.
                let until = Instant::now() + Duration::from_secs(2);
                while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    keep(line, &mut lines);
                }
                break status;
            }
            if !timed_out && t.elapsed() > self.timeout {
                timed_out = true;
                if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
            }
        };
        drop(live);
        Ok(Ran { code: status.code(), lines: clean(&lines), timed_out })
    }
}

/// What a run left: its exit code, its output, whether the time ran out.
struct Ran {
    code: Option<i32>,
    lines: Vec<String>,
    timed_out: bool,
}

/// The last line of a running step, on the terminal.
struct Live(Option<indicatif::ProgressBar>);

impl Live {
    fn new(visible: bool, name: &str) -> Live {
        if !visible {
            return Live(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template("{spinner} {prefix} ({elapsed}) {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Live(Some(bar))
    }

    fn show(&self, line: &str) {
        if let Some(bar) = &self.0
            && !line.trim().is_empty()
        {
            bar.set_message(crate::report::human::one_line(line).into_owned());
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Lines of bitwarden.sh's output that say nothing about the step: the
/// banner, up to its rule of `=`, and the usage text `docker inspect`
/// prints when run.sh asks it about a container that is not there.
fn clean(lines: &[String]) -> Vec<String> {
    let banner_end =
        lines.iter().take(20).position(|l| l.len() >= 20 && l.chars().all(|c| c == '=')).map_or(0, |i| i + 1);
    // Docker 20 and 28 word it differently.
    let is_noise = |l: &str| {
        let l = l.trim();
        (l.contains("docker inspect") && (l.contains("requires at least 1 argument") || l.contains("--help")))
            || l.starts_with("Usage:  docker inspect")
            || l == "Return low-level information on Docker objects"
    };
    let body = &lines[banner_end..];
    let noise = |i: usize| body.get(i).is_some_and(|l| is_noise(l));
    let blank = |i: usize| body[i].trim().is_empty();
    let mut out: Vec<String> = Vec::new();
    for (i, l) in body.iter().enumerate() {
        // Noise, the blank lines around it, and runs of blank lines go.
        let beside_noise = blank(i) && ((i > 0 && noise(i - 1)) || noise(i + 1));
        if noise(i) || beside_noise || (blank(i) && out.last().is_none_or(|p| p.trim().is_empty())) {
            continue;
        }
        out.push(l.clone());
    }
    out
}

/// `line` without the colour sequences (`ESC [ … m`) scripts print; any
/// other control character is escaped when shown.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find(|c: char| !(c.is_ascii_digit() || c == ';'));
        match end {
            Some(e) if after[e..].starts_with('m') => rest = &after[e + 1..],
            _ => {
                out.push('\x1b');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The last [`TAIL_LINES`] lines.
fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_go_and_other_escapes_stay_to_be_escaped() {
        assert_eq!(without_colours("\x1b[0;32mok\x1b[0m done"), "ok done");
        assert_eq!(without_colours("a\x1b]0;title\x07b"), "a\x1b]0;title\x07b");
        assert_eq!(without_colours("\x1b[2Jx\x1b["), "\x1b[2Jx\x1b[");
        assert_eq!(crate::report::human::printable("\x1b[2Jx\n"), "\\u{1b}[2Jx\n");
    }

    #[test]
    fn the_banner_and_docker_inspect_usage_are_left_out() {
        let lines: Vec<String> = [
            " _     _ _",
            "| |__ (_) |_",
            "Open source password management solutions",
            "===================================================",
            "",
            "bitwarden.sh version 2026.8.0",
            "docker: 'docker inspect' requires at least 1 argument",
            "See 'docker inspect --help' for more information",
            "\"docker inspect\" requires at least 1 argument.",
            "See 'docker inspect --help'.",
            "",
            "Usage:  docker inspect [OPTIONS] NAME|ID [NAME|ID...]",
            "",
            "Return low-level information on Docker objects",
            "Pulling setup",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(clean(&lines), ["bitwarden.sh version 2026.8.0", "Pulling setup"]);
        let no_banner: Vec<String> = vec!["error: x".into()];
        assert_eq!(clean(&no_banner), no_banner);
    }
}
