//! bwguard: safe configuration changes, snapshots and rollback for a
//! self-hosted Bitwarden install.
//!
//! `run` is the one dispatch; commands live in `commands/`, and return a
//! JSON document that `--json` prints. Only `main` exits, so every guard
//! (the store lock above all) is dropped before the process ends.

pub mod cli;
pub mod commands;
pub mod context;
pub mod engine;
pub mod error;
pub mod files;
pub mod install;
pub mod offsite;
pub mod report;
pub mod sample;
pub mod schedule;

use std::io::{IsTerminal, Write};

use cli::{Cli, Command};
use context::Ctx;
use error::{Error, Exit, Result};

/// Runs one command and returns its JSON document.
pub fn run(cmd: &Command, ctx: &mut Ctx) -> Result<serde_json::Value> {
    match cmd {
        Command::Backup(a) => commands::backup::run(a, ctx),
        Command::Verify(a) => match &a.remote {
            Some(remote) => commands::offsite::verify(a, ctx, remote),
            None => commands::verify::run(a, ctx),
        },
        Command::List(a) => match &a.remote {
            Some(remote) => commands::offsite::list(ctx, remote),
            None => commands::list::run(ctx),
        },
        Command::Status(a) => commands::status::run(a, ctx),
        Command::EnableScim(a) => commands::edit::run_scim(true, a, ctx),
        Command::DisableScim(a) => commands::edit::run_scim(false, a, ctx),
        Command::Set(a) => commands::edit::run_set(a, ctx),
        Command::Diff(a) => commands::diff::run(a, ctx),
        Command::Rollback(a) => commands::rollback::run(a, ctx),
        Command::Prune(a) => match &a.remote {
            Some(remote) => commands::offsite::prune(a, ctx, remote),
            None => commands::prune::run(a, ctx),
        },
        Command::Push(a) => commands::offsite::push(a, ctx),
        Command::Pull(a) => commands::offsite::pull(a, ctx),
        Command::Remote(a) => commands::offsite::run_remote(a, ctx),
        Command::Schedule(a) => commands::schedule::run(a, ctx),
        Command::Upgrade(a) => commands::apply::upgrade(a, ctx),
        Command::Log(a) => commands::apply::log(a, ctx),
        Command::Pin(a) => commands::pin::run_pin(a, true, ctx),
        Command::Unpin(a) => commands::pin::run_pin(a, false, ctx),
        Command::Forget(a) => commands::pin::run_forget(a, ctx),
        Command::Completions(a) => commands::docs::completions(a, ctx),
        Command::Man => commands::docs::man(ctx),
        Command::Demo(a) => commands::demo::run(a, ctx),
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
        Ok(doc) => {
            ctx.out.json(doc);
            Exit::Ok as i32
        }
        Err(e) => {
            report_error(e, json);
            e.exit() as i32
        }
    };
    let dry_run = result.as_ref().is_ok_and(|doc| doc["dry_run"] == true);
    if let Some(name) = writing_command(&cli.command)
        && !dry_run
        && !std::io::stderr().is_terminal()
    {
        log_line(name, &result, started.elapsed());
    }
    code
}

/// The name of a command that changes something, for the run's log line.
fn writing_command(cmd: &Command) -> Option<&'static str> {
    Some(match cmd {
        Command::Backup(_) => "backup",
        Command::EnableScim(_) => "enable-scim",
        Command::DisableScim(_) => "disable-scim",
        Command::Set(_) => "set",
        Command::Rollback(_) => "rollback",
        Command::Prune(_) => "prune",
        Command::Schedule(_) => "schedule",
        Command::Upgrade(_) => "upgrade",
        Command::Pin(_) => "pin",
        Command::Unpin(_) => "unpin",
        Command::Forget(_) => "forget",
        _ => return None,
    })
}

/// One line per unattended run on stderr, as journald and cron mail show it:
/// `bwguard[PID]: backup ok: snapshot ID (8.1s)` or `… failed (exit 5, refused): …`.
fn log_line(command: &str, result: &Result<serde_json::Value>, took: std::time::Duration) {
    let pid = std::process::id();
    let secs = took.as_secs_f64();
    let line = match result {
        Ok(doc) => {
            let what = doc["id"].as_str().map(|id| format!(": snapshot {id}")).unwrap_or_default();
            format!("bwguard[{pid}]: {command} ok{what} ({secs:.1}s)")
        }
        Err(e) => format!(
            "bwguard[{pid}]: {command} failed (exit {}, {}): {e} ({secs:.1}s)",
            e.exit() as i32,
            e.kind()
        ),
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Prints an error on stderr (`error:` and `hint:` lines) and, with
/// `--json`, as `{"error": {code, kind, message, hint}}` on stdout.
pub fn report_error(e: &Error, json: bool) {
    let hint = e.hint();
    let mut err = std::io::stderr();
    let colour = report::human::colour_stderr();
    let _ = writeln!(err, "{} {e}", report::human::paint("error:", 31, colour));
    if let Some(h) = &hint {
        let _ = writeln!(err, "{} {h}", report::human::paint("hint:", 36, colour));
    }
    if json {
        let doc = serde_json::json!({"error": {
            "code": e.exit() as i32,
            "kind": e.kind(),
            "message": e.to_string(),
            "hint": hint,
        }});
        println!("{doc}");
    }
}

/// Prints a usage error found by the argument parser as a JSON error.
pub fn report_usage_json(message: &str) {
    let first = message.lines().next().unwrap_or(message).trim_start_matches("error: ");
    let doc = serde_json::json!({"error": {
        "code": Exit::Usage as i32,
        "kind": "usage",
        "message": first,
        "hint": "run `bwguard --help`",
    }});
    println!("{doc}");
}
