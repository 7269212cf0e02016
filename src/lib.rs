//! bwguard: safe configuration changes, snapshots and rollback for a
//! self-hosted Bitwarden install.
//!
//! The map, top down (a module uses only those below it, and `commands/`
//! nothing but them):
//!
//! - `main.rs`, [`run`] (the one dispatch) and [`main_with`]: parse, run,
//!   print the report or the error, exit. Only `main` exits, so every
//!   guard (the store lock above all) is dropped before the process ends.
//! - [`cli`]: the command line as clap types, no logic.
//! - [`commands`]: one file per command, each implementing
//!   [`commands::Run`] for its arguments; no command imports another.
//! - [`procedure`]: Bitwarden's own procedures run by bwguard (the SCIM
//!   change, the upgrade), journaled, rolled back on failure under the lock.
//! - [`offsite`]: encrypted copies on S3-compatible storage.
//! - [`schedule`]: systemd units and cron lines, retention and pruning.
//! - [`engine`]: the snapshot engine: archives and their checks, gzip
//!   members, read-back and device reads, the store and its lock,
//!   manifests, scope, verification, restore and rollback. It knows
//!   nothing of the command line.
//! - [`install`]: the Bitwarden install: where it is, config.yml, Helm
//!   values, facts read from it, the live-database scan, preflight checks.
//! - [`report`]: every `--json` document as a typed value, and its human
//!   form; [`context`]: the run's options, clock and output; [`error`]:
//!   the error type, its exit codes and stable kinds; [`files`]: atomic
//!   writes and private files; [`sample`]: generated installs.

pub mod cli;
pub mod commands;
pub mod context;
pub mod engine;
pub mod error;
pub mod files;
pub mod install;
pub mod offsite;
pub mod procedure;
pub mod report;
pub mod sample;
pub mod schedule;

use std::io::{IsTerminal, Write};

use cli::{Cli, Command, RemoteCommand, ScheduleCommand};
use commands::Run;
use context::Ctx;
use error::{Error, Exit, Result};
use report::{ErrorDoc, ErrorReport, Report};

/// Runs one command and returns its report: the one dispatch.
pub fn run(cmd: &Command, ctx: &mut Ctx) -> Result<Report> {
    match cmd {
        Command::Backup(a) => a.run(ctx).map(Into::into),
        Command::Verify(a) => a.run(ctx).map(Into::into),
        Command::List(a) => a.run(ctx).map(Into::into),
        Command::Status(a) => a.run(ctx).map(Into::into),
        Command::EnableScim(a) => a.run(ctx).map(Into::into),
        Command::DisableScim(a) => a.run(ctx).map(Into::into),
        Command::Set(a) => a.run(ctx).map(Into::into),
        Command::Diff(a) => a.run(ctx).map(Into::into),
        Command::Rollback(a) => a.run(ctx).map(Into::into),
        Command::Prune(a) => a.run(ctx).map(Into::into),
        Command::Schedule(a) => a.run(ctx).map(Into::into),
        Command::Upgrade(a) => a.run(ctx).map(Into::into),
        Command::Log(a) => a.run(ctx).map(Into::into),
        Command::Pin(a) => a.run(ctx).map(Into::into),
        Command::Unpin(a) => a.run(ctx).map(Into::into),
        Command::Forget(a) => a.run(ctx).map(Into::into),
        Command::ResumeDb(a) => a.run(ctx).map(Into::into),
        Command::Push(a) => a.run(ctx).map(Into::into),
        Command::Pull(a) => a.run(ctx).map(Into::into),
        Command::Remote(a) => a.run(ctx).map(Into::into),
        Command::Completions(a) => a.run(ctx).map(Into::into),
        Command::Man(a) => a.run(ctx).map(Into::into),
        Command::Demo(a) => a.run(ctx).map(Into::into),
    }
}

/// Runs a parsed command line in this process and returns the exit status,
/// having printed the result or the error (as JSON with `--json`).
pub fn main_with(cli: Cli) -> i32 {
    let json = cli.global.json;
    let mut ctx = match Ctx::from_process(cli.global) {
        Ok(ctx) => ctx,
        Err(e) => {
            report_error(&Error::io("cannot read", ".", e), json);
            return Exit::Failed as i32;
        }
    };
    let started = std::time::Instant::now();
    let result = run(&cli.command, &mut ctx);
    let code = match &result {
        Ok(report) => {
            ctx.out.json(report);
            if timed(&cli.command) && !report.dry_run() {
                ctx.out.info(format!("done in {}", elapsed(started.elapsed())));
            }
            report.exit() as i32
        }
        Err(e) => {
            report_error(e, json);
            e.exit() as i32
        }
    };
    let dry_run = result.as_ref().is_ok_and(Report::dry_run);
    if let Some(name) = writing_command(&cli.command)
        && !dry_run
        && !std::io::stderr().is_terminal()
    {
        log_line(name, &result, started.elapsed());
    }
    code
}

/// Whether the command's human output ends with the time it took, as
/// restic's and borg's do: the commands that read or write whole snapshots.
fn timed(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Backup(_)
            | Command::Verify(_)
            | Command::Rollback(_)
            | Command::Push(_)
            | Command::Pull(_)
            | Command::Prune(_)
            | Command::Upgrade(_)
            | Command::EnableScim(_)
            | Command::DisableScim(_)
            | Command::Set(_)
    )
}

/// A duration as people read it: `0.4 s`, `12.3 s`, `3 min 05 s`.
fn elapsed(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The name of a command that changes something (it takes the store's
/// write lock), for the run's log line.
fn writing_command(cmd: &Command) -> Option<&'static str> {
    Some(match cmd {
        Command::Backup(_) => "backup",
        Command::EnableScim(_) => "enable-scim",
        Command::DisableScim(_) => "disable-scim",
        Command::Set(_) => "set",
        Command::Rollback(_) => "rollback",
        Command::Prune(_) => "prune",
        Command::Schedule(ScheduleCommand::Install(_) | ScheduleCommand::Remove(_)) => "schedule",
        Command::Upgrade(_) => "upgrade",
        Command::Pin(_) => "pin",
        Command::Unpin(_) => "unpin",
        Command::Forget(_) => "forget",
        Command::ResumeDb(_) => "resume-db",
        Command::Push(_) => "push",
        Command::Pull(_) => "pull",
        Command::Remote(RemoteCommand::Add(_)) => "remote add",
        Command::Remote(RemoteCommand::Remove(_)) => "remote remove",
        _ => return None,
    })
}

/// One line per unattended run on stderr, as journald and cron mail show it:
/// `bwguard[PID]: backup ok: snapshot ID (8.1s)` or `… failed (exit 5, refused): …`.
fn log_line(command: &str, result: &Result<Report>, took: std::time::Duration) {
    let pid = std::process::id();
    let secs = took.as_secs_f64();
    let line = match result {
        Ok(report) => {
            let what = report.snapshot().map(|id| format!(": snapshot {id}")).unwrap_or_default();
            format!("bwguard[{pid}]: {command} ok{what} ({secs:.1}s)")
        }
        Err(e) => {
            // The snapshot is good; only what `backup` does after it failed.
            let after = match (command, e.kind()) {
                ("backup", "push-failed") => "ok, push failed",
                ("backup", "prune-failed" | "no-retention-policy") => "ok, prune failed",
                _ => "failed",
            };
            format!(
                "bwguard[{pid}]: {command} {after} (exit {}, {}): {e} ({secs:.1}s)",
                e.exit() as i32,
                e.kind()
            )
        }
    };
    let _ = writeln!(std::io::stderr(), "{}", report::human::one_line(&line));
}

/// Prints an error on stderr (`error:` and `hint:` lines) and, with
/// `--json`, as `{"error": {code, kind, message, hint}}` on stdout.
pub fn report_error(e: &Error, json: bool) {
    let doc = ErrorReport::of(e);
    let mut err = std::io::stderr();
    let colour = report::human::colour_stderr();
    let printable = |t: &str| report::human::printable(t).into_owned();
    let _ = writeln!(err, "{} {}", report::human::paint("error:", 31, colour), printable(&e.to_string()));
    if let Some(h) = &doc.error.hint {
        let _ = writeln!(err, "{} {}", report::human::paint("hint:", 36, colour), printable(h));
    }
    if json {
        print_json(&doc);
    }
}

/// Prints a usage error found by the argument parser as a JSON error.
pub fn report_usage_json(message: &str) {
    let first = message.lines().next().unwrap_or(message).trim_start_matches("error: ");
    print_json(&ErrorReport {
        error: ErrorDoc {
            code: Exit::Usage as i32,
            kind: "usage".into(),
            message: first.into(),
            hint: Some("run `bwguard --help`".into()),
        },
    });
}

fn print_json(doc: &ErrorReport) {
    if let Ok(text) = serde_json::to_string(doc) {
        // A reader that went away (`| head`, a closed pipe) is no reason to
        // panic: the exit code still says what happened.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}
