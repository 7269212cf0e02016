//! Bitwarden's own procedures run by bwguard, each step checked and
//! journaled: a config.yml change the way Bitwarden documents it
//! (`enable-scim --apply`, [`change`]) and an upgrade (`upgrade`).
//!
//! Every plan runs: preflight, `./bitwarden.sh stop` (so the snapshot is
//! cold), snapshot and read back, the plan's actions, and a check of the
//! result. A failing step stops the run and prints the exact rollback
//! command; with `--rollback-on-failure` bwguard stops Bitwarden, rolls
//! back and starts it, all under the store lock it took at the start, so
//! no other run can get in between. The journal lives beside the
//! snapshot's files as `<store>/<id>/apply-journal.json`, written after
//! every step.

pub mod change;
pub mod script;

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::context::{Ctx, Output};
use crate::engine::rollback;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::error::{Error, Failure, Result};
use crate::files::{self, Ownership};
use crate::install::{Install, preflight};
use crate::report::Render;
use script::Runner;

/// Name of the journal file in the snapshot's directory.
pub const JOURNAL: &str = "apply-journal.json";

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What it is, e.g. `./bitwarden.sh rebuild`.
    pub name: String,
    /// When it started (RFC 3339 UTC).
    pub started: String,
    /// How long it took.
    pub seconds: f64,
    /// The exit code of a command step.
    pub exit_code: Option<i32>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The end of its output, or what bwguard found.
    pub output: String,
}

/// The journal of one procedure run: `log ID` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// The change, e.g. `enable_scim: true`.
    pub change: String,
    /// The snapshot taken before it.
    pub snapshot: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// `succeeded`, `failed`, `rolled back` or `rollback failed`.
    pub outcome: String,
}

impl Render for Journal {
    fn render(&self, out: &mut Output) {
        out.result(format!(
            "{} ({}), snapshot {}",
            self.change,
            self.outcome,
            self.snapshot.as_deref().unwrap_or("none")
        ));
        for s in &self.steps {
            let code = s.exit_code.map(|c| format!(" exit {c}")).unwrap_or_default();
            out.result(format!(
                "  {} {} {:.1}s{code} {}",
                s.started,
                if s.ok { "ok    " } else { "FAILED" },
                s.seconds,
                s.name
            ));
            for line in s.output.lines() {
                out.detail(format!("      {line}"));
            }
        }
    }
}

impl Journal {
    /// Reads the journal of snapshot `id` (exit 2 if it has none, 3 if it
    /// is malformed).
    pub fn read(store: &Store, id: &str) -> Result<Journal> {
        store.open(id)?;
        let path = store.dir(id).join(JOURNAL);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!(
                    "snapshot {id} was not taken by an --apply or upgrade run: it has no journal"
                )));
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::integrity(id, format!("{JOURNAL} is malformed: {e}")))
    }

    /// Writes the journal beside the snapshot's files (nothing before there
    /// is a snapshot).
    fn save(&self, store: &Store) -> Result<()> {
        let Some(id) = &self.snapshot else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("cannot render the journal: {e}")))?;
        files::write_atomic(&store.dir(id).join(JOURNAL), &bytes, Ownership::mine(files::PRIVATE_FILE))
    }
}

/// The time now, as the journal records it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A step bwguard does itself.
pub fn own_step(
    name: &str,
    t: Instant,
    started: String,
    result: std::result::Result<String, String>,
) -> Step {
    let (ok, output) = match result {
        Ok(s) => (true, s),
        Err(s) => (false, s),
    };
    Step { name: name.into(), started, seconds: t.elapsed().as_secs_f64(), exit_code: None, ok, output }
}

/// What a plan does after its snapshot.
pub enum Action<'a> {
    /// `./bitwarden.sh ARG`.
    Script(&'static str),
    /// The one-line config.yml edit, on the file as the earlier steps left it.
    Edit {
        /// The key.
        key: &'a str,
        /// Its new value.
        value: &'a str,
    },
}

/// The last step of a plan: what it found, or why the result is wrong.
pub type Check<'a> = Box<dyn Fn(&Install) -> std::result::Result<String, String> + 'a>;

/// A checked procedure: stop, snapshot, the actions, the check.
pub struct Plan<'a> {
    /// The change, as the journal names it.
    pub change: String,
    /// The reason recorded in the snapshot's manifest.
    pub reason: String,
    /// What runs after the snapshot.
    pub actions: Vec<Action<'a>>,
    /// Every step, as `--dry-run` shows them.
    pub described: &'a [&'a str],
    /// The check of the result.
    pub check: Check<'a>,
}

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct Opts {
    /// What the snapshot includes.
    pub scope: Scope,
    /// Accept a crash-consistent snapshot.
    pub live: bool,
    /// The database is external and backed up elsewhere.
    pub db_backed_up_elsewhere: bool,
    /// Print the plan and run nothing.
    pub dry_run: bool,
    /// Roll back on a failed step.
    pub rollback_on_failure: bool,
    /// The bitwarden.sh to run.
    pub bitwarden_sh: Option<PathBuf>,
}

/// What a plan run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The snapshot taken before the change (none with `--dry-run`).
    pub snapshot: Option<String>,
    /// Every step as it ran.
    pub journal: Option<Journal>,
    /// With `--dry-run`: the steps.
    pub plan: Vec<String>,
}

/// Runs `plan` on `install`: preflight of bitwarden.sh and the database
/// mode, the lock, stop, snapshot, the actions, the check; journaled, and
/// rolled back on request under the same lock.
pub fn execute(ctx: &mut Ctx, install: &Install, plan: &Plan<'_>, opts: &Opts) -> Result<Outcome> {
    preflight::database_covered(install, opts.db_backed_up_elsewhere)?;
    let runner = Runner::new(install, opts.bitwarden_sh.as_deref(), ctx.global.yes)?;
    if opts.dry_run {
        return Ok(Outcome {
            snapshot: None,
            journal: None,
            plan: plan.described.iter().map(|s| s.to_string()).collect(),
        });
    }
    let writing = ctx.begin_write(install, "apply")?;
    let store = &writing.store;
    let mut journal =
        Journal { change: plan.change.clone(), snapshot: None, steps: Vec::new(), outcome: "failed".into() };
    journal.steps.push(Step {
        name: "preflight".into(),
        started: now_rfc3339(),
        seconds: 0.0,
        exit_code: None,
        ok: true,
        output: "config.yml, database mode, generated-config flags and bitwarden.sh checked; lock taken"
            .into(),
    });
    show(&mut ctx.out, journal.steps.last());

    // Stop, so the snapshot is cold.
    journal.steps.push(runner.run("stop"));
    show(&mut ctx.out, journal.steps.last());
    if !journal.steps.last().is_some_and(|s| s.ok) {
        return Err(step_failed(&journal, None, install));
    }
    // Snapshot and read back.
    let (t, started) = (Instant::now(), now_rfc3339());
    let mut req = Request::new(plan.reason.clone(), opts.scope.clone());
    req.live = opts.live;
    let snap = match snapshot::take(install, store, &req, ctx.now) {
        Ok(m) => {
            journal.snapshot = Some(m.id.clone());
            journal.steps.push(own_step(
                "snapshot",
                t,
                started,
                Ok(format!("snapshot {} written and read back", m.id)),
            ));
            journal.save(store)?;
            show(&mut ctx.out, journal.steps.last());
            m.id
        }
        Err(e) => {
            journal.steps.push(own_step("snapshot", t, started, Err(e.to_string())));
            show(&mut ctx.out, journal.steps.last());
            let start = runner.run("start");
            show(&mut ctx.out, Some(&start));
            return Err(e);
        }
    };
    // The actions, then the check of what Setup left (`None`).
    for action in plan.actions.iter().map(Some).chain([None]) {
        let s = match action {
            Some(Action::Script(arg)) => runner.run(arg),
            Some(Action::Edit { key, value }) => change::edit_step(install, key, value),
            None => {
                let (t, started) = (Instant::now(), now_rfc3339());
                own_step("check", t, started, (plan.check)(install))
            }
        };
        let ok = s.ok;
        journal.steps.push(s);
        journal.save(store)?;
        show(&mut ctx.out, journal.steps.last());
        if !ok {
            return finish_failure(ctx, journal, store, install, &runner, opts.rollback_on_failure, &snap);
        }
    }
    journal.outcome = "succeeded".into();
    journal.save(store)?;
    drop(writing);
    Ok(Outcome { snapshot: Some(snap), journal: Some(journal), plan: Vec::new() })
}

/// The error of the step that failed last, with the command that undoes it.
fn step_failed(journal: &Journal, snap: Option<&str>, install: &Install) -> Error {
    let step = journal.steps.last();
    let name = step.map(|s| s.name.as_str()).unwrap_or("a step");
    let message = format!("step `{name}` failed: {}", step.map(|s| s.output.as_str()).unwrap_or(""));
    match snap {
        Some(id) => Error::failed(
            Failure::StepFailed,
            message,
            format!(
                "to undo: cd {} && ./bitwarden.sh stop && bwguard rollback {id} --yes && ./bitwarden.sh start \
                 (or run again with --rollback-on-failure); `bwguard log {id}` shows every step",
                install.dir.display()
            ),
        ),
        None => Error::failed(
            Failure::StepFailed,
            message,
            "nothing was changed; fix the cause and run the command again",
        ),
    }
}

/// After a failed step: the error, or with `rollback_on_failure` stop,
/// roll back and start, still under the caller's store lock.
fn finish_failure(
    ctx: &mut Ctx,
    mut journal: Journal,
    store: &Store,
    install: &Install,
    runner: &Runner,
    rollback_on_failure: bool,
    snap: &str,
) -> Result<Outcome> {
    let err = step_failed(&journal, Some(snap), install);
    if !rollback_on_failure {
        return Err(err);
    }
    ctx.out.warn(format!("{err}; rolling back to snapshot {snap}"));
    journal.steps.push(runner.run("stop"));
    show(&mut ctx.out, journal.steps.last());
    let (t, started) = (Instant::now(), now_rfc3339());
    let rolled = rollback::rollback_locked(install, store, snap, ctx.now, ctx.progress, &mut ctx.out);
    journal.steps.push(own_step(
        "rollback",
        t,
        started,
        rolled
            .as_ref()
            .map(|(_, d)| format!("rolled back to {snap}; the state it replaced is snapshot {}", d.before))
            .map_err(|e| e.to_string()),
    ));
    show(&mut ctx.out, journal.steps.last());
    journal.steps.push(runner.run("start"));
    show(&mut ctx.out, journal.steps.last());
    journal.outcome = if rolled.is_ok() { "rolled back".into() } else { "rollback failed".into() };
    journal.save(store)?;
    match rolled {
        Ok(_) => Err(Error::failed(
            Failure::RolledBack,
            format!("{err}; the install was rolled back to snapshot {snap} and started"),
            format!("`bwguard log {snap}` shows every step"),
        )),
        Err(e) => Err(e),
    }
}

/// Prints a step as it finishes: `[ok] name (1.2s, exit 0)`, and the end
/// of the output of a failed one.
fn show(out: &mut Output, step: Option<&Step>) {
    if let Some(s) = step {
        let mark = if s.ok { "ok" } else { "FAILED" };
        let code = s.exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
        out.info(format!("[{mark}] {} ({:.1}s{code})", s.name, s.seconds));
        if !s.ok {
            for line in s.output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                out.info(format!("       {line}"));
            }
        }
    }
}
