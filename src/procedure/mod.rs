//! Bitwarden's own procedures run by bwguard, each step checked and
//! journaled: a config.yml change the way Bitwarden documents it
//! (`enable-scim --apply`, [`change`]) and an upgrade (`upgrade`).
//!
//! Every plan runs: preflight (bitwarden.sh, and Docker as the user who
//! runs it), `./bitwarden.sh stop` and Docker's word that the database
//! stopped (so the snapshot is cold), snapshot and read back, the plan's
//! actions, and a check of the result and that every container runs. A
//! failing step stops the run and prints the complete undo command; with
//! `--rollback-on-failure` bwguard stops Bitwarden, rolls back and starts
//! it, and says whether Docker then runs it, all under the store lock it
//! took at the start, so no other run can get in between. The journal
//! lives beside the snapshot's files as `<store>/<id>/apply-journal.json`,
//! written after every step.

pub mod change;
pub mod docker;
pub mod pause;
pub mod runas;
pub mod script;
pub mod volume;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::context::{Ctx, Output};
use crate::engine::rollback;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::error::{Error, Failure, Result};
use crate::files::{self, Ownership};
use crate::install::facts::{self, DatabaseMode};
use crate::install::{Install, preflight};
use crate::install::{live, shell_word};
use crate::report::Render;
use docker::{DATABASE, Docker};
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
        // One aligned row per step; with -v each step's output under it.
        let row = |s: &Step| {
            [
                format!("  {}", s.started),
                if s.ok { "ok" } else { "FAILED" }.to_string(),
                format!("{:.1}s", s.seconds),
                s.exit_code.map(|c| format!("exit {c}")).unwrap_or_default(),
                s.name.clone(),
            ]
        };
        let mut rows = vec![["  STARTED", "RESULT", "TIME", "EXIT", "STEP"].map(String::from)];
        rows.extend(self.steps.iter().map(row));
        let lines = crate::report::table::table(&rows);
        let mut lines = lines.into_iter();
        if let Some(header) = lines.next() {
            out.result(header);
        }
        for (s, line) in self.steps.iter().zip(lines) {
            out.result(line);
            for output in s.output.lines() {
                out.detail(format!("      {output}"));
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
        let bytes = match files::read_small(&path, files::SMALL_CAP) {
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
    /// How long one step of bitwarden.sh may take.
    pub step_timeout: Duration,
}

/// How long the containers get to run after a start, and how long they
/// must then stay up without a restart (a crash-looping nginx restarts
/// within a second or two).
const START_WAIT: Duration = Duration::from_secs(120);
const START_SETTLE: Duration = Duration::from_secs(4);

/// What a plan run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The snapshot taken before the change (none with `--dry-run`).
    pub snapshot: Option<String>,
    /// Every step as it ran.
    pub journal: Option<Journal>,
    /// With `--dry-run`: the steps.
    pub plan: Vec<String>,
    /// The commands that undo the change, complete.
    pub undo: Vec<String>,
}

/// A run of a plan: the install, its script and Docker, and the journal.
struct Run<'a> {
    install: &'a Install,
    store: &'a Store,
    runner: &'a Runner,
    docker: Docker<'a>,
    journal: Journal,
}

impl Run<'_> {
    /// Records `step`, saves the journal, shows the step; returns whether it passed.
    fn record(&mut self, out: &mut Output, step: Step) -> Result<bool> {
        let ok = step.ok;
        self.journal.steps.push(step);
        self.journal.save(self.store)?;
        show(out, self.journal.steps.last());
        Ok(ok)
    }

    /// After `stop` exited 0: the database container is gone or stopped,
    /// and no process holds the database files (bitwarden.sh's `stop`
    /// exits 0 having stopped nothing in several cases).
    fn check_stopped(&self) -> Step {
        let (t, started) = (Instant::now(), now_rfc3339());
        let result = if preflight::database_mode(self.install) != DatabaseMode::BuiltIn {
            Ok("the database is not Bitwarden's container: nothing to check".to_string())
        } else if let Some(state) = self
            .docker
            .state(DATABASE)
            .filter(|s| matches!(s.status.as_str(), "running" | "restarting" | "paused"))
        {
            Err(format!("{DATABASE} is still {} after `./bitwarden.sh stop`", state.status))
        } else {
            let scan = live::scan(&preflight::database_dir(self.install), std::path::Path::new("/proc"));
            if scan.holders.is_empty() {
                Ok(format!("{DATABASE} is stopped and no process holds the database files"))
            } else {
                Err(format!("the database files are still in use: {}", scan.describe()))
            }
        };
        own_step("check: the database is stopped", t, started, result)
    }

    /// After a start: every container runs and stays up.
    fn check_running(&self) -> Step {
        let (t, started) = (Instant::now(), now_rfc3339());
        own_step(
            "check: Bitwarden runs",
            t,
            started,
            self.docker.wait_running(self.install, START_WAIT, START_SETTLE),
        )
    }

    /// `./bitwarden.sh start`, then the check that it runs; the message of
    /// what failed, if anything did.
    fn start(&mut self, out: &mut Output) -> Result<std::result::Result<String, String>> {
        let start = self.runner.run("start");
        let failed = (!start.ok).then(|| {
            format!("`{}` failed: {}", self.runner.command_line("start"), last_lines(&start.output, 3))
        });
        self.record(out, start)?;
        if let Some(f) = failed {
            return Ok(Err(f));
        }
        let running = self.check_running();
        let said = running.output.clone();
        Ok(if self.record(out, running)? { Ok(said) } else { Err(said) })
    }
}

/// Runs `plan` on `install`: preflight of bitwarden.sh, Docker and the
/// database mode, the lock, stop and its check, snapshot, the actions, the
/// check; journaled, and rolled back on request under the same lock.
pub fn execute(ctx: &mut Ctx, install: &Install, plan: &Plan<'_>, opts: &Opts) -> Result<Outcome> {
    let mut install = install.clone();
    volume::attach(&mut install, opts.db_backed_up_elsewhere)?;
    let install = &install;
    preflight::database_covered(install, opts.db_backed_up_elsewhere)?;
    // A dry run runs nothing, so the root question it would answer is only said.
    let yes = ctx.global.yes || opts.dry_run;
    let runner = Runner::new(install, opts.bitwarden_sh.as_deref(), yes, opts.step_timeout, ctx.progress)?;
    let docker = Docker::new(&runner.who);
    let compose = docker.preflight()?;
    // With compose 2.0 to 2.14, `update` on a stopped install aborts: start
    // it first, as a careful admin would.
    let actions: Vec<&Action<'_>> = plan
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::Script("update") if compose.fails_update_when_stopped() => vec![&START, a],
            a => vec![a],
        })
        .collect();
    if opts.dry_run {
        let mut described: Vec<String> = plan.described.iter().map(|s| s.to_string()).collect();
        if compose.fails_update_when_stopped() {
            described.push(
                "(docker compose 2.0 to 2.14 abort `update` on a stopped install: each update is preceded by a start)"
                    .into(),
            );
        }
        if runner.who.uid == 0 && !ctx.global.yes {
            described.push(
                "(the install is root's: bitwarden.sh will ask whether to go on; the run needs --yes)".into(),
            );
        }
        return Ok(Outcome { snapshot: None, journal: None, plan: described, undo: Vec::new() });
    }
    let writing = ctx.begin_write(install, "apply")?;
    let mut run = Run {
        install,
        store: &writing.store,
        runner: &runner,
        docker,
        journal: Journal {
            change: plan.change.clone(),
            snapshot: None,
            steps: Vec::new(),
            outcome: "failed".into(),
        },
    };
    let compose_name = if compose.plugin { "docker compose" } else { "docker-compose" };
    let (v1, v2, v3) = compose.version;
    run.journal.steps.push(Step {
        name: "preflight".into(),
        started: now_rfc3339(),
        seconds: 0.0,
        exit_code: None,
        ok: true,
        output: format!(
            "config.yml, database mode, generated-config flags and bitwarden.sh checked; {} reaches Docker \
             ({compose_name} {v1}.{v2}.{v3}); lock taken",
            runner.who.describe()
        ),
    });
    show(&mut ctx.out, run.journal.steps.last());

    // Stop, so the snapshot is cold, and check that it did.
    let stop = runner.run("stop");
    show(&mut ctx.out, Some(&stop));
    run.journal.steps.push(stop);
    if !run.journal.steps.last().is_some_and(|s| s.ok) {
        return Err(step_failed(
            &run.journal,
            None,
            &[],
            "nothing was changed; fix the cause and run the command again",
        ));
    }
    let stopped = run.check_stopped();
    show(&mut ctx.out, Some(&stopped));
    let stopped_ok = stopped.ok;
    run.journal.steps.push(stopped);
    if !stopped_ok {
        return Err(Error::Failed {
            kind: Failure::DatabaseStillRunning,
            message: format!(
                "{}; no snapshot was taken and nothing was changed",
                run.journal.steps.last().map(|s| s.output.as_str()).unwrap_or("")
            ),
            hint: Some(format!(
                "stop it (`docker stop {DATABASE}`, or `{} && docker compose -f {} down`), then run the command again",
                install.cd_line(),
                shell_word(&install.data.join("docker/docker-compose.yml").display().to_string())
            )),
        });
    }
    // Snapshot and read back.
    let (t, started) = (Instant::now(), now_rfc3339());
    let mut req = Request::new(plan.reason.clone(), opts.scope.clone());
    req.live = opts.live;
    let snap = match snapshot::take(install, run.store, &req, ctx.now) {
        Ok(m) => {
            run.journal.snapshot = Some(m.id.clone());
            run.record(
                &mut ctx.out,
                own_step("snapshot", t, started, Ok(format!("snapshot {} written and read back", m.id))),
            )?;
            m.id
        }
        Err(e) => {
            run.journal.steps.push(own_step("snapshot", t, started, Err(e.to_string())));
            show(&mut ctx.out, run.journal.steps.last());
            // Nothing changed yet: bring Bitwarden back as it was.
            let started = run.start(&mut ctx.out)?;
            return Err(match started {
                Ok(_) => e,
                Err(not) => Error::Failed {
                    kind: Failure::StepFailed,
                    message: format!("{e}; and Bitwarden did not start again: {not}"),
                    hint: Some(format!("{} && {}", install.cd_line(), runner.command_line("start"))),
                },
            });
        }
    };
    let undo = vec![format!(
        "{} && {} && {} && {}",
        install.cd_line(),
        runner.command_line("stop"),
        ctx.bwguard_line(install, &format!("rollback {snap} --yes")),
        runner.command_line("start")
    )];
    // The actions, then the check of what Setup left and that it runs.
    for action in actions.iter().map(Some).chain([None]) {
        let step = match action {
            Some(Action::Script(arg)) => runner.run(arg),
            Some(Action::Edit { key, value }) => change::edit_step(install, key, value),
            None => {
                let (t, started) = (Instant::now(), now_rfc3339());
                let checked = (plan.check)(install).and_then(|said| {
                    run.docker
                        .wait_running(install, START_WAIT, START_SETTLE)
                        .map(|ran| format!("{said}; {ran}"))
                });
                own_step("check", t, started, checked)
            }
        };
        if !run.record(&mut ctx.out, step)? {
            return finish_failure(ctx, run, opts.rollback_on_failure, &snap, undo);
        }
    }
    run.journal.outcome = "succeeded".into();
    run.journal.save(run.store)?;
    let journal = run.journal;
    drop(writing);
    Ok(Outcome { snapshot: Some(snap), journal: Some(journal), plan: Vec::new(), undo })
}

/// `./bitwarden.sh start`, put before an `update` where compose needs it.
static START: Action<'static> = Action::Script("start");

/// The last `n` lines of a step's output that say something: compose's
/// per-container progress (`Stopping bitwarden-api ... done`) left out.
fn last_lines(output: &str, n: usize) -> String {
    let progress = |l: &str| {
        let l = l.trim();
        ["Stopping ", "Removing ", "Creating ", "Starting ", "Recreating ", "Pulling "]
            .iter()
            .any(|p| l.starts_with(p))
            && (l.ends_with("...") || l.ends_with("... done"))
    };
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty() && !progress(l)).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// The error of the step that failed last: its name and the end of its
/// output, and the hint (the commands that undo it).
fn step_failed(journal: &Journal, snap: Option<&str>, undo: &[String], otherwise: &str) -> Error {
    let step = journal.steps.last();
    let name = step.map(|s| s.name.as_str()).unwrap_or("a step");
    let message =
        format!("step `{name}` failed: {}", step.map(|s| last_lines(&s.output, 6)).unwrap_or_default());
    let hint = match (snap, undo.first()) {
        (Some(id), Some(undo)) => format!(
            "to undo: `{undo}` (or run again with --rollback-on-failure); `bwguard log {id}` shows every step"
        ),
        _ => otherwise.to_string(),
    };
    Error::failed(Failure::StepFailed, message, hint)
}

/// After a failed step: the error, or with `rollback_on_failure` stop,
/// roll back and start, still under the caller's store lock, and report
/// what Docker saw after the start.
fn finish_failure(
    ctx: &mut Ctx,
    mut run: Run<'_>,
    rollback_on_failure: bool,
    snap: &str,
    undo: Vec<String>,
) -> Result<Outcome> {
    let err = step_failed(&run.journal, Some(snap), &undo, "");
    if !rollback_on_failure {
        return Err(err);
    }
    ctx.out.warn(format!("{err}; rolling back to snapshot {snap}"));
    let stop = run.runner.run("stop");
    run.record(&mut ctx.out, stop)?;
    let stopped = run.check_stopped();
    run.record(&mut ctx.out, stopped)?;
    let (t, started) = (Instant::now(), now_rfc3339());
    let rolled = rollback::rollback_locked(run.install, run.store, snap, ctx.now, ctx.progress, &mut ctx.out);
    let problems = facts::generated_files_disagree(run.install);
    let said = match (&rolled, problems.is_empty()) {
        (Ok((_, d)), true) => {
            Ok(format!("rolled back to {snap}; the state it replaced is snapshot {}", d.before))
        }
        (Ok(_), false) => Err(format!("rolled back to {snap}, but {}", problems.join("; "))),
        (Err(e), _) => Err(e.to_string()),
    };
    run.record(&mut ctx.out, own_step("rollback", t, started, said))?;
    let started = run.start(&mut ctx.out)?;
    let log = ctx.bwguard_line(run.install, &format!("log {snap}"));
    let (outcome, result) = match (&rolled, started) {
        (Ok(_), Ok(running)) => (
            "rolled back",
            Err(Error::failed(
                Failure::RolledBack,
                format!(
                    "{err}; the install was rolled back to snapshot {snap} and Bitwarden runs again ({running})"
                ),
                format!("`{log}` shows every step"),
            )),
        ),
        (Ok(_), Err(not)) => (
            "rolled back, not running",
            Err(Error::failed(
                Failure::RolledBackNotRunning,
                format!("{err}; the install was rolled back to snapshot {snap}, but {not}"),
                format!(
                    "start it with `{} && {}` once the cause is fixed; `{log}` shows every step",
                    run.install.cd_line(),
                    run.runner.command_line("start")
                ),
            )),
        ),
        (Err(_), _) => {
            ("rollback failed", Err(rolled.err().unwrap_or_else(|| Error::internal("the rollback vanished"))))
        }
    };
    run.journal.outcome = outcome.into();
    run.journal.save(run.store)?;
    result
}

/// Prints a step as it finishes: `[ok] name (1.2s, exit 0)`. The end of a
/// failed step's output is in the error (once), all of it in the journal.
fn show(out: &mut Output, step: Option<&Step>) {
    if let Some(s) = step {
        let mark = if s.ok { "ok" } else { "FAILED" };
        let code = s.exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
        out.info(format!("[{mark}] {} ({:.1}s{code})", s.name, s.seconds));
    }
}
