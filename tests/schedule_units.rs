//! The units that `schedule install` writes pass `systemd-analyze verify`,
//! and the cron line runs the intended command under `/bin/sh`.
//!
//! `systemd-analyze` comes with Debian's `systemd` package
//! (`apt-get install -y systemd`). Without it these tests fail when `CI` is
//! set and are skipped, saying so, otherwise.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bwguard::schedule::units::{Job, render_cron, render_service, render_timer};

/// True when `systemd-analyze` can run; panics under CI when it cannot.
fn have_systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing: install Debian's systemd package (apt-get install -y systemd)"
        );
        eprintln!("skipped: systemd-analyze is missing (apt-get install -y systemd); CI fails instead");
    }
    found
}

/// A fake bwguard at `dir/<bin>/bwguard` that prints its arguments one a
/// line, and an install with a data directory, under `dir`.
fn layout(dir: &Path, bin: &str, install: &str) -> Job {
    let bwguard = dir.join(bin).join("bwguard");
    std::fs::create_dir_all(bwguard.parent().unwrap()).unwrap();
    std::fs::write(&bwguard, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n").unwrap();
    std::fs::set_permissions(&bwguard, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bwdata = dir.join(install).join("bwdata");
    std::fs::create_dir_all(&bwdata).unwrap();
    Job {
        bwguard,
        bwdata,
        store: dir.join("store"),
        calendar: "daily".into(),
        randomized_delay: "15min".into(),
        live: false,
        push: None,
        user: None,
        pause_db: true,
        documentation: None,
        retention: Vec::new(),
    }
}

/// Writes the two units into `dir` and runs `systemd-analyze verify` on
/// them, `Documentation=` checked too.
fn verify(dir: &Path, job: &Job) {
    verify_with(dir, job, &[]);
}

fn verify_with(dir: &Path, job: &Job, env: &[(&str, &Path)]) {
    let service = dir.join("bwguard-backup.service");
    let timer = dir.join("bwguard-backup.timer");
    std::fs::write(&service, render_service(job)).unwrap();
    std::fs::write(&timer, render_timer(job)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&service)
        .arg(&timer)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}\n--- service\n{}",
        out.status,
        render_service(job)
    );
}

/// A temporary directory in the target directory, so that the units keep
/// `PrivateTmp=yes` unless the target directory itself is under `/tmp`.
fn target_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("schedule-units").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn systemd_analyze_accepts_the_units() {
    if !have_systemd_analyze() {
        return;
    }
    let dir = target_tempdir();
    let job = layout(dir.path(), "bin", "install");
    if !dir.path().starts_with("/tmp") && !dir.path().starts_with("/var/tmp") {
        assert!(render_service(&job).contains("\nPrivateTmp=yes\n"));
    }
    verify(dir.path(), &job);

    // --live, User=, a store inside the install and another calendar.
    let dir = target_tempdir();
    let mut job = layout(dir.path(), "bin", "install");
    job.live = true;
    job.user = Some("root".into());
    job.store = job.bwdata.parent().unwrap().join("bwguard-snapshots");
    job.calendar = "Mon..Fri *-*-* 03:30".into();
    job.randomized_delay = "1h".into();
    verify(dir.path(), &job);

    // Spaces, '%' and '$' in every path, quotes in the data directory's.
    let dir = target_tempdir();
    let mut job = layout(dir.path(), "my bin 100% $X", "bit \"warden\" $HOME");
    job.store = dir.path().join("store 50%");
    assert!(render_service(&job).contains("\nExecStart=\""));
    verify(dir.path(), &job);

    // Quotes in the binary's path: systemd refuses them, /bin/sh starts it.
    let dir = target_tempdir();
    let job = layout(dir.path(), "it's \"bin\"", "install");
    assert!(render_service(&job).contains("\nExecStart=/bin/sh -c "));
    verify(dir.path(), &job);

    // The man page that `bwguard man` prints, where `man` finds it: the
    // units name it, and systemd-analyze finds it too.
    if Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let dir = target_tempdir();
        let mut job = layout(dir.path(), "bin", "install");
        job.documentation = Some("man:bwguard(1)".into());
        let pages = dir.path().join("man");
        std::fs::create_dir_all(pages.join("man1")).unwrap();
        std::fs::write(pages.join("man1/bwguard.1"), bwguard::commands::man::page()).unwrap();
        assert!(render_service(&job).contains("\nDocumentation=man:bwguard(1)\n"));
        verify_with(dir.path(), &job, &[("MANPATH", &pages)]);
    } else {
        assert!(std::env::var_os("CI").is_none(), "man is missing: apt-get install -y man-db");
    }

    // Everything under /tmp: PrivateTmp= is left out.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let job = layout(dir.path(), "bin", "install");
    assert!(!render_service(&job).contains("\nPrivateTmp="));
    verify(dir.path(), &job);
}

/// What `sh -c` runs for a cron line's command, after cron's own `%`
/// handling (`\%` is a literal `%`; a bare `%` would end the command).
fn cron_argv(line: &str, fields: usize) -> Vec<String> {
    let command = line.trim_end_matches('\n').splitn(fields + 1, ' ').nth(fields).unwrap();
    let command = command.replace("\\%", "%");
    let out = Command::new("/bin/sh").arg("-c").arg(&command).output().unwrap();
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn cron_line_runs_the_intended_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = layout(dir.path(), "my 'bin' 100%", "bit warden $HOME");
    job.store = dir.path().join("it's \"50%\"");
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let want = vec![
        "--bwdata".to_owned(),
        path(&job.bwdata),
        "--store".into(),
        path(&job.store),
        "backup".into(),
        "--scheduled".into(),
        "--prune".into(),
        "--quiet".into(),
        "--no-progress".into(),
        "--pause-db".into(),
        // After the backup, whatever became of it: the database comes back.
        "--bwdata".to_owned(),
        path(&job.bwdata),
        "--store".into(),
        path(&job.store),
        "--quiet".into(),
        "resume-db".into(),
    ];
    assert_eq!(cron_argv(&render_cron(&job, false).unwrap(), 5), want);
    assert_eq!(cron_argv(&render_cron(&job, true).unwrap(), 6), want);
}
