//! `enable-scim --apply` (and `disable-scim`/`set --apply`): Bitwarden's
//! whole procedure, each step checked and journaled, and `log ID` to read
//! the journal.
//!
//! Steps: preflight, `./bitwarden.sh stop` (so the snapshot is cold),
//! snapshot and read back, `update`, the one-line edit, `rebuild`, `update`,
//! and a check of the result. A failing step stops the run and prints the
//! exact rollback command; `--rollback-on-failure` runs it (stop, rollback,
//! start). The journal lives beside the snapshot's files as
//! `<store>/<id>/apply-journal.json`, written after every step.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::{Command as Cli, EditArgs, IdArg, RollbackArgs};
use crate::commands::begin_write;
use crate::commands::edit::read_regular;
use crate::context::Ctx;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::files::{self, Ownership};
use crate::install::Install;
use crate::install::config::{self, Config, ConfigError, Edit};
use crate::install::facts::compose_images;
use crate::install::preflight;

/// Name of the journal file in the snapshot's directory.
pub const JOURNAL: &str = "apply-journal.json";
/// Lines of a step's output kept in the journal.
const TAIL_LINES: usize = 40;

/// One step as it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// The journal of one `--apply` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyJournal {
    /// The change, e.g. `enable_scim: true`.
    pub change: String,
    /// The snapshot taken before it.
    pub snapshot: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// `succeeded`, `failed`, `rolled back` or `rollback failed`.
    pub outcome: String,
}

/// Runs `bitwarden.sh` the way Bitwarden expects: from the install
/// directory, as the install's owner.
struct Runner {
    script: PathBuf,
    dir: PathBuf,
    /// Run as this uid/gid (when bwguard runs as root for a non-root install).
    as_owner: Option<(u32, u32)>,
    /// Answer the root question with `y` (root-owned install and `--yes`).
    answer_yes: bool,
}

impl Runner {
    fn new(install: &Install, script: Option<&Path>, yes: bool) -> Result<Runner> {
        let script = script.map(Path::to_path_buf).unwrap_or_else(|| install.dir.join("bitwarden.sh"));
        let meta = fs::metadata(&script).map_err(|e| {
            Error::refused(
                format!("{} cannot be run: {e}", script.display()),
                "pass --bitwarden-sh PATH to name Bitwarden's script",
            )
        })?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(Error::refused(
                format!("{} is not an executable file", script.display()),
                format!("chmod +x {}", script.display()),
            ));
        }
        let owner = fs::metadata(&install.dir).map_err(|e| Error::io("cannot read", &install.dir, e))?;
        let (as_owner, answer_yes) = match (files::is_root(), owner.uid()) {
            (true, 0) if yes => (None, true),
            (true, 0) => {
                return Err(Error::refused(
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
    fn run(&self, arg: &str) -> Step {
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// A step bwguard does itself.
fn own_step(name: &str, t: Instant, started: String, result: std::result::Result<String, String>) -> Step {
    let (ok, output) = match result {
        Ok(s) => (true, s),
        Err(s) => (false, s),
    };
    Step { name: name.into(), started, seconds: t.elapsed().as_secs_f64(), exit_code: None, ok, output }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The plan, as shown by `--dry-run`.
const PLAN: [&str; 8] = [
    "preflight: config.yml, database mode, free space, lock, generated-config flags, bitwarden.sh",
    "./bitwarden.sh stop (so the snapshot is cold)",
    "snapshot and read back",
    "./bitwarden.sh update (adds the key on old installs)",
    "set the key in config.yml (one line, checked)",
    "./bitwarden.sh rebuild",
    "./bitwarden.sh update",
    "check: config.yml still holds the value; for SCIM, docker-compose.yml has a scim service",
];

/// Runs the procedure for `key: value`.
pub fn run(
    ctx: &mut Ctx,
    key: &str,
    value: &str,
    args: &EditArgs,
    reason: &str,
) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let path = install.config_path();
    // 1. Preflight: nothing runs unless everything needed is in place.
    let original = read_regular(&path)?;
    match config::plan_set(&original, key, value, args.add_missing) {
        Ok(Edit::Unchanged { value, .. }) => {
            ctx.out.result(format!("{key} is already {value} in {}: nothing to do", path.display()));
            return Ok(json!({"key": key, "changed": false, "snapshot": null}));
        }
        // `update` adds a missing key (step 4).
        Ok(Edit::Changed { .. }) | Err(ConfigError::MissingKey { .. }) => {}
        Err(e) => return Err(Error::Config { path, source: e }),
    }
    let scim = key == "enable_scim" && value == "true";
    if scim && let Ok(c) = Config::parse(&original) {
        for flag in ["generate_compose_config", "generate_nginx_config"] {
            if c.bool_value(flag) == Some(false) {
                return Err(Error::refused(
                    format!("{flag} is false: Setup will not add the scim container or its route"),
                    format!(
                        "set it with `bwguard set {flag} true`, or wire SCIM into your own files by hand"
                    ),
                ));
            }
        }
    }
    let plan = Plan {
        change: format!("{key}: {value}"),
        reason: reason.to_string(),
        actions: vec![
            Action::Script("update"),
            // `update` prints "Update not needed" and adds nothing when the
            // images are current, so a missing key is appended here; the
            // rebuild that follows re-writes the file in Setup's own form.
            Action::Edit { key, value, add_missing: true },
            Action::Script("rebuild"),
            Action::Script("update"),
        ],
        described: &PLAN,
        check: Box::new(move |install: &Install| check_result(install, key, value, scim)),
    };
    let opts = Opts {
        scope: args.scope,
        dry_run: args.dry_run,
        rollback_on_failure: args.rollback_on_failure,
        bitwarden_sh: args.bitwarden_sh.clone(),
    };
    let doc = execute(ctx, &install, &plan, &opts)?;
    if let Some(snap) = doc["snapshot"].as_str() {
        ctx.out.result(format!(
            "{key}: {value} applied; snapshot {snap} holds the state before (`bwguard log {snap}`)"
        ));
    }
    Ok(
        json!({"key": key, "changed": !opts.dry_run, "snapshot": doc["snapshot"], "journal": doc["journal"], "plan": doc["plan"]}),
    )
}

/// What an `--apply` run does after its snapshot.
enum Action<'a> {
    /// `./bitwarden.sh ARG`.
    Script(&'static str),
    /// The one-line config.yml edit, on the file as the earlier steps left it.
    Edit { key: &'a str, value: &'a str, add_missing: bool },
}

/// A checked procedure: stop, snapshot, the actions, the check.
struct Plan<'a> {
    change: String,
    reason: String,
    actions: Vec<Action<'a>>,
    described: &'a [&'a str],
    check: Check<'a>,
}

/// The last step of a plan: what it found, or why the result is wrong.
type Check<'a> = Box<dyn Fn(&Install) -> std::result::Result<String, String> + 'a>;

/// How to run a plan.
struct Opts {
    scope: crate::cli::ScopeArgs,
    dry_run: bool,
    rollback_on_failure: bool,
    bitwarden_sh: Option<PathBuf>,
}

/// Runs `plan`: preflight of bitwarden.sh and the database mode, stop,
/// snapshot, the actions, the check; journaled, rolled back on request.
fn execute(ctx: &mut Ctx, install: &Install, plan: &Plan<'_>, opts: &Opts) -> Result<serde_json::Value> {
    let install = install.clone();
    preflight::database_covered(&install, opts.scope.db_backed_up_elsewhere)?;
    let runner = Runner::new(&install, opts.bitwarden_sh.as_deref(), ctx.global.yes)?;
    if opts.dry_run {
        ctx.out.result(format!("plan for {} (nothing is run):", plan.change));
        for (i, s) in plan.described.iter().enumerate() {
            ctx.out.result(format!("  {}. {s}", i + 1));
        }
        return Ok(json!({"snapshot": null, "dry_run": true, "plan": plan.described}));
    }
    let (lock, store) = begin_write(ctx, &install, "apply")?;
    let mut journal = ApplyJournal {
        change: plan.change.clone(),
        snapshot: None,
        steps: Vec::new(),
        outcome: "failed".into(),
    };
    journal.steps.push(Step {
        name: "preflight".into(),
        started: now_rfc3339(),
        seconds: 0.0,
        exit_code: None,
        ok: true,
        output: "config.yml, database mode, generated-config flags and bitwarden.sh checked; lock taken"
            .into(),
    });
    show(ctx, journal.steps.last());

    let failed = |ctx: &mut Ctx, journal: &mut ApplyJournal, store: &Store| -> Result<()> {
        save(store, journal)?;
        show(ctx, journal.steps.last());
        Ok(())
    };

    // 2. Stop, so the snapshot is cold.
    journal.steps.push(runner.run("stop"));
    show(ctx, journal.steps.last());
    if !journal.steps.last().is_some_and(|s| s.ok) {
        return Err(step_failed(&journal, None, &install));
    }
    // 3. Snapshot and read back.
    let (t, started) = (Instant::now(), now_rfc3339());
    let mut req =
        Request::new(plan.reason.clone(), Scope::from_flags(opts.scope.with_attachments, opts.scope.full));
    req.live = opts.scope.live;
    let taken = snapshot::take(&install, &store, &req, ctx.now);
    let snap = match taken {
        Ok(m) => {
            journal.snapshot = Some(m.id.clone());
            journal.steps.push(own_step(
                "snapshot",
                t,
                started,
                Ok(format!("snapshot {} written and read back", m.id)),
            ));
            save(&store, &journal)?;
            show(ctx, journal.steps.last());
            m.id
        }
        Err(e) => {
            journal.steps.push(own_step("snapshot", t, started, Err(e.to_string())));
            show(ctx, journal.steps.last());
            let start = runner.run("start");
            show(ctx, Some(&start));
            return Err(e);
        }
    };
    // The actions, then the check of what Setup left (`None`).
    for action in plan.actions.iter().map(Some).chain([None]) {
        let s = match action {
            Some(Action::Script(arg)) => runner.run(arg),
            Some(Action::Edit { key, value, add_missing }) => {
                edit_step(&install.config_path(), key, value, *add_missing)
            }
            None => {
                let (t, started) = (Instant::now(), now_rfc3339());
                own_step("check", t, started, (plan.check)(&install))
            }
        };
        let ok = s.ok;
        journal.steps.push(s);
        if !ok {
            failed(ctx, &mut journal, &store)?;
            return finish_failure(
                ctx,
                journal,
                &store,
                &install,
                &runner,
                opts.rollback_on_failure,
                lock,
                &snap,
            );
        }
        if action.is_some() {
            save(&store, &journal)?;
            show(ctx, journal.steps.last());
        }
    }
    journal.outcome = "succeeded".into();
    save(&store, &journal)?;
    show(ctx, journal.steps.last());
    Ok(json!({"snapshot": snap, "journal": journal, "plan": null}))
}

/// Runs `upgrade`: stop, snapshot, `./bitwarden.sh updateself`, `update`,
/// and a check that the pinned version is readable afterwards.
pub fn upgrade(args: &crate::cli::UpgradeArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let before = crate::install::facts::read_info(&install).core_version;
    let from = before.clone().unwrap_or_else(|| "an unknown version".into());
    let plan = Plan {
        change: format!("upgrade from {from}"),
        reason: "before upgrade".into(),
        actions: vec![Action::Script("updateself"), Action::Script("update")],
        described: &UPGRADE_PLAN,
        check: Box::new(move |install: &Install| {
            let after = crate::install::facts::read_info(install).core_version;
            match (&before, &after) {
                (_, None) => Err("bitwarden.sh no longer pins a COREVERSION".into()),
                (Some(b), Some(a)) if a == b => Ok(format!("Bitwarden {a}: already the newest")),
                (b, Some(a)) => Ok(format!("Bitwarden {} -> {a}", b.as_deref().unwrap_or("?"))),
            }
        }),
    };
    let opts = Opts {
        scope: args.scope,
        dry_run: args.dry_run,
        rollback_on_failure: args.rollback_on_failure,
        bitwarden_sh: args.bitwarden_sh.clone(),
    };
    let doc = execute(ctx, &install, &plan, &opts)?;
    if let (Some(snap), Some(check)) =
        (doc["snapshot"].as_str(), doc["journal"]["steps"].as_array().and_then(|s| s.last()))
    {
        ctx.out.result(format!(
            "{}; snapshot {snap} holds the state before (`bwguard rollback {snap}` goes back)",
            check["output"].as_str().unwrap_or("upgraded")
        ));
    }
    Ok(doc)
}

/// The upgrade plan, as shown by `--dry-run`.
const UPGRADE_PLAN: [&str; 6] = [
    "preflight: database mode, free space, lock, bitwarden.sh",
    "./bitwarden.sh stop (so the snapshot is cold)",
    "snapshot and read back (reason `before upgrade`)",
    "./bitwarden.sh updateself",
    "./bitwarden.sh update",
    "check: bitwarden.sh pins a version",
];

/// The one-line edit, planned on the file as `update` left it.
fn edit_step(path: &Path, key: &str, value: &str, add_missing: bool) -> Step {
    let (t, started) = (Instant::now(), now_rfc3339());
    let result = (|| -> std::result::Result<String, String> {
        let bytes = read_regular(path).map_err(|e| e.to_string())?;
        match config::plan_set(&bytes, key, value, add_missing).map_err(|e| format!("{e}"))? {
            Edit::Unchanged { value, .. } => Ok(format!("{key} already {value}")),
            Edit::Changed { old, new, line, bytes: new_bytes, .. } => {
                let meta = fs::metadata(path).map_err(|e| e.to_string())?;
                files::write_atomic(path, &new_bytes, Ownership::of(&meta)).map_err(|e| e.to_string())?;
                Ok(format!("line {line}: {key}: {} -> {new}", old.as_deref().unwrap_or("(absent)")))
            }
        }
    })();
    own_step(&format!("set {key}: {value}"), t, started, result)
}

/// After Setup re-wrote everything: the value is still there, and for SCIM
/// the compose file has the scim service.
fn check_result(
    install: &Install,
    key: &str,
    value: &str,
    scim: bool,
) -> std::result::Result<String, String> {
    let bytes = fs::read(install.config_path()).map_err(|e| e.to_string())?;
    match config::plan_set(&bytes, key, value, false) {
        Ok(Edit::Unchanged { .. }) => {}
        _ => return Err(format!("config.yml no longer says {key}: {value} after Setup re-wrote it")),
    }
    if scim {
        let compose = install.data.join("docker/docker-compose.yml");
        let text = fs::read_to_string(&compose).map_err(|e| format!("{}: {e}", compose.display()))?;
        if !compose_images(&text).contains_key("scim") {
            return Err(format!("{} has no scim service", compose.display()));
        }
    }
    Ok(format!("config.yml says {key}: {value}{}", if scim { "; docker-compose.yml has scim" } else { "" }))
}

fn step_failed(journal: &ApplyJournal, snap: Option<&str>, install: &Install) -> Error {
    let step = journal.steps.last();
    let name = step.map(|s| s.name.as_str()).unwrap_or("a step");
    let hint = match snap {
        Some(id) => format!(
            "to undo: cd {} && ./bitwarden.sh stop && bwguard rollback {id} --yes && ./bitwarden.sh start \
             (or run again with --rollback-on-failure); `bwguard log {id}` shows every step",
            install.dir.display()
        ),
        None => "nothing was changed; fix the cause and run the command again".into(),
    };
    Error::Failed {
        message: format!("step `{name}` failed: {}", step.map(|s| s.output.as_str()).unwrap_or("")),
        hint: Some(hint),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_failure(
    ctx: &mut Ctx,
    mut journal: ApplyJournal,
    store: &Store,
    install: &Install,
    runner: &Runner,
    rollback_on_failure: bool,
    lock: crate::engine::lock::StoreLock,
    snap: &str,
) -> Result<serde_json::Value> {
    let err = step_failed(&journal, Some(snap), install);
    if !rollback_on_failure {
        save(store, &journal)?;
        return Err(err);
    }
    ctx.out.warn(format!("{err}; rolling back to snapshot {snap}"));
    journal.steps.push(runner.run("stop"));
    show(ctx, journal.steps.last());
    // The rollback takes the store lock itself.
    drop(lock);
    let saved = ctx.global.yes;
    ctx.global.yes = true;
    let rolled = crate::run(
        &Cli::Rollback(RollbackArgs {
            id: Some(snap.to_string()),
            only: None,
            dry_run: false,
            helm_values: None,
            remote: None,
            identity: None,
        }),
        ctx,
    );
    ctx.global.yes = saved;
    let (t, started) = (Instant::now(), now_rfc3339());
    journal.steps.push(own_step(
        "rollback",
        t,
        started,
        rolled.as_ref().map(|_| format!("rolled back to {snap}")).map_err(|e| e.to_string()),
    ));
    journal.steps.push(runner.run("start"));
    show(ctx, journal.steps.last());
    journal.outcome = if rolled.is_ok() { "rolled back".into() } else { "rollback failed".into() };
    save(store, &journal)?;
    match rolled {
        Ok(_) => Err(Error::Failed {
            message: format!("{}; the install was rolled back to snapshot {snap} and started", err),
            hint: Some(format!("`bwguard log {snap}` shows every step")),
        }),
        Err(e) => Err(e),
    }
}

fn show(ctx: &mut Ctx, step: Option<&Step>) {
    if let Some(s) = step {
        let mark = if s.ok { "ok" } else { "FAILED" };
        let code = s.exit_code.map(|c| format!(", exit {c}")).unwrap_or_default();
        ctx.out.info(format!("[{mark}] {} ({:.1}s{code})", s.name, s.seconds));
        if !s.ok {
            for line in s.output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                ctx.out.info(format!("       {line}"));
            }
        }
    }
}

fn save(store: &Store, journal: &ApplyJournal) -> Result<()> {
    let Some(id) = &journal.snapshot else { return Ok(()) };
    let bytes = serde_json::to_vec_pretty(journal).unwrap_or_default();
    files::write_atomic(&store.dir(id).join(JOURNAL), &bytes, Ownership::mine(files::PRIVATE_FILE))
}

/// Runs `log ID`.
pub fn log(args: &IdArg, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    store.open(&args.id)?;
    let path = store.dir(&args.id).join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "snapshot {} was not taken by an --apply run: it has no journal",
                args.id
            )));
        }
        Err(e) => return Err(Error::io("cannot read", &path, e)),
    };
    let journal: ApplyJournal = serde_json::from_slice(&bytes)
        .map_err(|e| Error::integrity(&args.id, format!("{JOURNAL} is malformed: {e}")))?;
    ctx.out.result(format!("{} ({}), snapshot {}", journal.change, journal.outcome, args.id));
    for s in &journal.steps {
        let code = s.exit_code.map(|c| format!(" exit {c}")).unwrap_or_default();
        ctx.out.result(format!(
            "  {} {} {:.1}s{code} {}",
            s.started,
            if s.ok { "ok    " } else { "FAILED" },
            s.seconds,
            s.name
        ));
        for line in s.output.lines() {
            ctx.out.detail(format!("      {line}"));
        }
    }
    Ok(serde_json::to_value(&journal).unwrap_or_default())
}
