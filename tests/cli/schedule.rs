//! `schedule install|remove|print` through the binary. systemd cannot run
//! here, so a stand-in `systemctl` script on PATH records its calls (and can
//! be told to fail), and `BWGUARD_SYSTEMD` says whether systemd "runs".
//! The rendered units are checked against golden files and with
//! `systemd-analyze verify` in `tests/schedule_units.rs` and the unit tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Run, TestEnv};

/// A `systemctl` stand-in in `dir/bin` that appends its arguments to
/// `dir/systemctl.log` and exits with `code`.
fn fake_systemctl(dir: &Path, code: i32) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}/systemctl.log'\nexit {code}\n", dir.display());
    fs::write(bin.join("systemctl"), script).unwrap();
    fs::set_permissions(bin.join("systemctl"), fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn run_with(env: &TestEnv, args: &[&str], systemd: &str, bin: &Path) -> Run {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    env.bwguard(args).env("BWGUARD_SYSTEMD", systemd).env("PATH", path).run()
}

fn calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("systemctl.log")).unwrap_or_default().lines().map(String::from).collect()
}

#[test]
fn install_writes_the_units_saves_the_policy_and_enables_the_timer() {
    let env = TestEnv::new();
    let units = env.dir.path().join("units");
    let bin = fake_systemctl(env.dir.path(), 0);
    let r = run_with(
        &env,
        &[
            "schedule",
            "install",
            "--unit-dir",
            units.to_str().unwrap(),
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
        ],
        "yes",
        &bin,
    );
    r.ok();
    assert_eq!(calls(env.dir.path()), vec!["daemon-reload", "enable --now bwguard-backup.timer"]);
    let service = fs::read_to_string(units.join("bwguard-backup.service")).unwrap();
    let timer = fs::read_to_string(units.join("bwguard-backup.timer")).unwrap();
    // Absolute paths of the binary, the data directory and the store.
    let exec = service.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.contains(&format!("--bwdata {}", env.bwdata().display())), "{exec}");
    assert!(exec.contains(&format!("--store {}", env.store.display())), "{exec}");
    assert!(exec.contains("backup --scheduled --prune"), "{exec}");
    assert!(exec.split_whitespace().next().unwrap().trim_start_matches("ExecStart=").starts_with('/'));
    assert!(timer.contains("OnCalendar=daily") && timer.contains("Persistent=true"), "{timer}");
    // print shows exactly what install wrote.
    let printed = run_with(&env, &["schedule", "print", "--json"], "yes", &bin);
    printed.ok();
    assert_eq!(printed.json()["service"], service.as_str());
    assert_eq!(printed.json()["timer"], timer.as_str());
    let policy: serde_json::Value =
        serde_json::from_slice(&fs::read(env.store.join("retention.json")).unwrap()).unwrap();
    assert_eq!((policy["daily"].as_u64(), policy["weekly"].as_u64()), (Some(7), Some(4)));

    // The unit's command line works as written: a scheduled, pruned backup.
    let args: Vec<String> =
        exec.trim_start_matches("ExecStart=").split_whitespace().map(String::from).collect();
    let out = std::process::Command::new(&args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = env.run(&["list", "--json"]).json();
    assert_eq!(list["snapshots"][0]["reason"], "scheduled");

    // remove undoes it.
    let r = run_with(&env, &["schedule", "remove", "--unit-dir", units.to_str().unwrap()], "yes", &bin);
    r.ok();
    assert_eq!(calls(env.dir.path())[2..], ["disable --now bwguard-backup.timer", "daemon-reload"]);
    assert!(!units.join("bwguard-backup.service").exists() && !units.join("bwguard-backup.timer").exists());
    assert!(!env.store.join("retention.json").exists());
}

#[test]
fn without_systemd_the_commands_are_printed_not_run() {
    let env = TestEnv::new();
    let units = env.dir.path().join("units");
    let bin = fake_systemctl(env.dir.path(), 0);
    let r = run_with(&env, &["schedule", "install", "--unit-dir", units.to_str().unwrap()], "no", &bin);
    r.ok()
        .says("systemctl daemon-reload")
        .says("systemctl enable --now bwguard-backup.timer")
        .says("keep every snapshot");
    assert!(calls(env.dir.path()).is_empty());
    assert!(units.join("bwguard-backup.timer").exists());
}

#[test]
fn a_failing_systemctl_is_reported() {
    let env = TestEnv::new();
    let units = env.dir.path().join("units");
    let bin = fake_systemctl(env.dir.path(), 1);
    let r = run_with(&env, &["schedule", "install", "--unit-dir", units.to_str().unwrap()], "yes", &bin);
    r.code(1).says("systemctl daemon-reload");
}

#[test]
fn cron_line_calls_bwguard_by_absolute_paths() {
    let env = TestEnv::new();
    let r = env.run(&["schedule", "print", "--cron", "--calendar", "*-*-* 02:30", "--json"]);
    r.ok();
    let line = r.json()["cron"].as_str().unwrap().to_string();
    assert!(line.starts_with("30 2 * * * root /"), "{line}");
    assert!(
        line.contains(&env.bwdata().display().to_string()) && line.contains("backup --scheduled --prune"),
        "{line}"
    );
    env.run(&["schedule", "print", "--cron", "--calendar", "Mon..Fri *-*-* 03:00"])
        .code(2)
        .says("systemd timer");
}

#[test]
fn the_cron_route_carries_its_retention_or_warns_that_it_has_none() {
    let env = TestEnv::new();
    // No flags and nothing saved: each run would fail at --prune; said so.
    let r = env.run(&["schedule", "print", "--cron"]);
    r.ok().says("no policy saved");
    // The policy goes on the printed command line, ...
    let r = env.run(&["schedule", "print", "--cron", "--keep-daily", "7", "--keep-weekly", "4", "--json"]);
    r.ok();
    let line = r.json()["cron"].as_str().unwrap().to_string();
    assert!(line.contains("--prune") && line.contains("--keep-daily 7 --keep-weekly 4"), "{line}");
    // ... and the line's backup prunes by it.
    let ids: Vec<String> = (0..3).map(|_| env.backup()).collect();
    env.run(&["backup", "--scheduled", "--prune", "--keep-last", "2"]).ok();
    let left = env.snapshot_ids();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&ids[0]) && !left.contains(&ids[1]));
    // A policy saved on its own is what a flagless line relies on.
    env.run(&["prune", "--keep-last", "5", "--save-policy"]).ok();
    env.run(&["schedule", "print", "--cron"]).ok().says("--keep-last 5");
}
