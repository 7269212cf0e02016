//! `schedule install|remove|print`: systemd units (or a cron line) that run
//! `bwguard backup --scheduled --prune` by absolute paths. Rendering is pure
//! (`crate::schedule::units`); this file writes, enables and removes.

use std::path::Path;
use std::process::Command;

use super::Run;
use crate::cli::{JobArgs, ScheduleArgs, ScheduleCommand, SchedulePrintArgs, UnitDirArgs};
use crate::context::Ctx;
use crate::error::{Error, Failure, Result};
use crate::files;
use crate::install::facts::DatabaseMode;
use crate::install::{live, preflight};
use crate::offsite::remote;
use crate::report::ScheduleReport;
use crate::schedule::policy::{POLICY_FILE, save_policy, saved_policy};
use crate::schedule::retention::Policy;
use crate::schedule::units::{self, Job, SERVICE, TIMER};

impl Run for ScheduleCommand {
    type Report = ScheduleReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ScheduleReport> {
        let report = match self {
            ScheduleCommand::Install(a) => install(a, ctx)?,
            ScheduleCommand::Remove(a) => remove(a, ctx)?,
            ScheduleCommand::Print(a) => print(a, ctx)?,
        };
        ctx.out.show(&report);
        Ok(report)
    }
}

/// The job for this install: this binary, the data directory and the
/// store, all absolute.
fn job(args: &JobArgs, retention: Option<&Policy>, ctx: &Ctx) -> Result<Job> {
    units::check_calendar(&args.calendar).map_err(Error::Usage)?;
    let install = ctx.install()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find", "the bwguard binary", e))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let pause_db = pause_by_default(args, &install);
    Ok(Job {
        bwguard: exe,
        bwdata: install.data,
        store: install.store,
        calendar: args.calendar.clone(),
        randomized_delay: args.randomized_delay.clone(),
        live: args.live,
        push: args.push.clone(),
        user: args.user.clone(),
        pause_db,
        documentation: documentation(),
        retention: retention.map(Policy::flags).unwrap_or_default(),
    })
}

/// What documents the units on this host: the man page when `man` finds
/// it, else the scheduling guide the package installs, else nothing.
fn documentation() -> Option<String> {
    let man = std::process::Command::new("man")
        .args(["-w", "bwguard"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if man.is_ok_and(|s| s.success()) {
        return Some("man:bwguard(1)".into());
    }
    let guide = Path::new("/usr/share/doc/bwguard/docs/scheduling.md");
    guide.is_file().then(|| format!("file:{}", guide.display()))
}

/// `--pause-db` unless the admin chose `--live` or `--no-pause`, for a
/// built-in database under Docker (a compose file Setup wrote), its files
/// in bwdata or in a Docker volume.
fn pause_by_default(args: &JobArgs, install: &crate::install::Install) -> bool {
    !args.live
        && !args.no_pause
        && matches!(preflight::database_mode(install), DatabaseMode::BuiltIn | DatabaseMode::DockerVolume)
        && install.data.join("docker/docker-compose.yml").is_file()
}

/// Says which mode the job runs in, and warns when it would refuse every
/// night on this install as it runs now.
fn say_mode(ctx: &mut Ctx, job: &Job) -> Result<()> {
    let install = ctx.install()?;
    let as_root = job.user.as_deref().is_none_or(|u| u == "root" || u == "0");
    if preflight::database_mode(&install) == DatabaseMode::DockerVolume && !as_root {
        ctx.out.warn(
            "the database is in a Docker volume, which only root can read: run the job as root, or every \
             scheduled backup fails with exit 5 (volume-unreadable)",
        );
    }
    if job.pause_db {
        ctx.out.info(
            "each scheduled backup stops only the database container for the snapshot and starts it again \
             (--pause-db; choose --live or --no-pause for another way)",
        );
    } else if job.live {
        ctx.out.warn(
            "--live: scheduled snapshots are taken while Bitwarden runs; they are crash-consistent at best",
        );
    } else if preflight::database_mode(&install) == DatabaseMode::BuiltIn {
        let open = !live::scan(&preflight::database_dir(&install), Path::new("/proc")).holders.is_empty();
        if open {
            ctx.out.warn(
                "Bitwarden runs now: without --pause-db (the default, left out by --no-pause) or --live, \
                 every scheduled backup while it runs fails with exit 5",
            );
        }
    }
    Ok(())
}

fn print(args: &SchedulePrintArgs, ctx: &mut Ctx) -> Result<ScheduleReport> {
    // What is printed is installed by hand: its retention goes on its
    // command line, or it relies on the policy saved in the store.
    let policy = args.retention.policy();
    let job = job(&args.job, policy.as_ref(), ctx)?;
    say_mode(ctx, &job)?;
    if policy.is_none() {
        let store = ctx.install()?.open_store()?;
        match saved_policy(&store)? {
            Some(p) => ctx.out.info(format!(
                "no retention flags: each run prunes by the policy saved in {} ({})",
                store.root.display(),
                p.describe()
            )),
            None => ctx.out.warn(format!(
                "no retention flags and no policy saved in {}: each run would keep its snapshot and fail at \
                 --prune (exit 1); add --keep-daily N (and --keep-weekly, --keep-monthly), or save a policy \
                 with `bwguard prune --keep-daily N --save-policy`",
                store.root.display()
            )),
        }
    }
    if args.cron {
        let cron = units::render_cron(&job, true).map_err(Error::Usage)?;
        return Ok(ScheduleReport::Cron { cron });
    }
    Ok(ScheduleReport::Units { service: units::render_service(&job), timer: units::render_timer(&job) })
}

fn install(args: &ScheduleArgs, ctx: &mut Ctx) -> Result<ScheduleReport> {
    // The installed job prunes by the policy saved in the store (saved
    // below), which `prune --save-policy` can change later.
    let job = job(&args.job, None, ctx)?;
    let install = ctx.install()?;
    let writing = ctx.begin_write(&install, "schedule")?;
    let store = &writing.store;
    if let Some(name) = &job.push {
        let (_, remote) = remote::pick(&store.root, Some(name))?;
        if remote.credentials_file.is_none() {
            ctx.out.warn(format!(
                "remote {name} takes its S3 keys from the environment, which the timer does not have: \
                 add it again with --credentials-file FILE (see `bwguard remote add --help`)"
            ));
        }
    }
    let policy = args.retention.policy();
    if let Some(p) = &policy {
        save_policy(store, p)?;
        ctx.out.info(format!("saved the retention policy {} for backup --prune", p.describe()));
    } else {
        ctx.out
            .warn("no retention flags: scheduled backups will keep every snapshot (add --keep-daily, --keep-weekly or --keep-monthly; see `man bwguard`)");
    }
    let dir = &args.dir.unit_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let own = files::Ownership::mine(0o644);
    let (service, timer) = (units::render_service(&job), units::render_timer(&job));
    files::write_atomic(&dir.join(SERVICE), service.as_bytes(), own)?;
    files::write_atomic(&dir.join(TIMER), timer.as_bytes(), own)?;
    let steps = [vec!["daemon-reload"], vec!["enable", "--now", TIMER]];
    let ran = systemctl(ctx, &steps, "enable the timer")?;
    say_mode(ctx, &job)?;
    Ok(ScheduleReport::Installed {
        unit_dir: dir.display().to_string(),
        service: SERVICE.into(),
        timer: TIMER.into(),
        calendar: job.calendar,
        policy,
        systemctl_ran: ran,
    })
}

fn remove(args: &UnitDirArgs, ctx: &mut Ctx) -> Result<ScheduleReport> {
    let install = ctx.install()?;
    let writing = ctx.begin_write(&install, "schedule")?;
    let store = &writing.store;
    let dir = &args.unit_dir;
    let present = dir.join(SERVICE).exists() || dir.join(TIMER).exists();
    let ran =
        if present { systemctl(ctx, &[vec!["disable", "--now", TIMER]], "stop the timer")? } else { false };
    for name in [SERVICE, TIMER] {
        files::remove_any(&dir.join(name))?;
    }
    if present {
        systemctl(ctx, &[vec!["daemon-reload"]], "forget the units")?;
    }
    files::remove_any(&store.root.join(POLICY_FILE))?;
    Ok(ScheduleReport::Removed { unit_dir: dir.display().to_string(), removed: present, systemctl_ran: ran })
}

/// Runs each `systemctl` step when systemd runs this host, else prints them
/// for the admin. Returns whether they ran.
fn systemctl(ctx: &mut Ctx, steps: &[Vec<&str>], what: &str) -> Result<bool> {
    if !ctx.systemd {
        ctx.out.info(format!("systemd is not running here; to {what}, run:"));
        for s in steps {
            ctx.out.info(format!("  systemctl {}", s.join(" ")));
        }
        return Ok(false);
    }
    for s in steps {
        let status = Command::new("systemctl")
            .args(s)
            .status()
            .map_err(|e| Error::io("cannot run", Path::new("systemctl"), e))?;
        if !status.success() {
            return Err(Error::failed(
                Failure::SystemctlFailed,
                format!("`systemctl {}` failed ({status})", s.join(" ")),
                format!("run it by hand to see why; the unit files are in place ({SERVICE}, {TIMER})"),
            ));
        }
    }
    Ok(true)
}
