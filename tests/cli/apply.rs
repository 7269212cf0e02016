//! `enable-scim --apply`: Bitwarden's whole procedure, step by step.
//!
//! Docker cannot run here, so a stand-in `bitwarden.sh` written by these
//! tests replaces the install's own. It records each call (and the uid it
//! ran as) in `calls.log` beside the install, fails when `FAIL_AT` names
//! the call (`update:2` is the second update), and behaves like the real one
//! where bwguard relies on it: `update` and `rebuild` re-run "Setup", which
//! re-writes config.yml without user comments, adds a missing `enable_scim`
//! key, and regenerates docker-compose.yml with a scim service when SCIM is
//! enabled (unless `NO_SCIM` is set); `updateself` pins a newer version in
//! the script itself; `stop` releases the database files. With
//! `BACKUP_IN_WINDOW` set to a command line, `stop` and `start` run it (a
//! second bwguard, as a scheduled backup would) and log its exit code.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use bwguard::procedure::Journal;
use bwguard::report::EditReport;

use crate::support::{BIN, Run, TestEnv, assert_same_tree};

const STAND_IN: &str = r#"#!/bin/sh
set -e
COREVERSION="2026.8.0"
WEBVERSION="2026.8.0"
here=$(cd "$(dirname "$0")" && pwd)
log="$here/../calls.log"
echo "$1 uid=$(id -u)" >> "$log"
n=$(grep -c "^$1 " "$log")
if [ "${FAIL_AT:-}" = "$1:$n" ]; then echo "simulated failure of $1" >&2; exit 1; fi
cfg="$here/bwdata/config.yml"
compose="$here/bwdata/docker/docker-compose.yml"
case "$1" in
  update) if [ -n "${UPDATE_NOT_NEEDED:-}" ]; then echo "Update not needed"; exit 0; fi ;;
esac
case "$1" in
  update|rebuild)
    grep -v '^#!' "$cfg" > "$cfg.setup"
    grep -q '^enable_scim:' "$cfg.setup" || printf '# \n# Enable SCIM\nenable_scim: false\n' >> "$cfg.setup"
    mv "$cfg.setup" "$cfg"
    printf 'services:\n  mssql:\n    image: ghcr.io/bitwarden/mssql:2026.8.0\n' > "$compose"
    if grep -q '^enable_scim: true' "$cfg" && [ -z "${NO_SCIM:-}" ]; then
      printf '  scim:\n    image: ghcr.io/bitwarden/scim:2026.8.0\n' >> "$compose"
    fi
    echo "Setup done"
    ;;
  updateself)
    sed -i 's/^COREVERSION=.*/COREVERSION="2026.9.0"/; s/^WEBVERSION=.*/WEBVERSION="2026.9.0"/' "$0"
    echo "updated bitwarden.sh"
    ;;
  stop|start)
    # Another bwguard run (a scheduled backup) trying to get in while
    # bwguard runs this step: its exit code goes to the log.
    if [ -n "${BACKUP_IN_WINDOW:-}" ]; then
      if $BACKUP_IN_WINDOW >/dev/null 2>&1; then echo "backup-in-window 0" >> "$log"; else echo "backup-in-window $?" >> "$log"; fi
    fi
    echo "$1 done" ;;
esac
"#;

/// An install whose bitwarden.sh is the stand-in, with a user comment in
/// config.yml that Setup will drop.
fn env_with_stand_in() -> TestEnv {
    let env = TestEnv::new();
    let script = env.install.join("bitwarden.sh");
    fs::write(&script, STAND_IN).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let config = String::from_utf8(env.config()).unwrap();
    env.set_config(config.replace("# Enable SCIM\n", "#! a user comment\n# Enable SCIM\n").as_bytes());
    env
}

fn calls(env: &TestEnv) -> Vec<String> {
    let log = env.dir.path().join("calls.log");
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

fn apply(env: &TestEnv, extra: &[&str], fail_at: Option<&str>) -> Run {
    let mut args = vec!["enable-scim", "--apply", "--yes", "--json"];
    args.extend(extra);
    let mut run = env.bwguard(&args);
    if let Some(f) = fail_at {
        run = run.env("FAIL_AT", f);
    }
    run.run()
}

#[test]
fn a_full_run_does_every_step_in_order_and_journals_it() {
    let env = env_with_stand_in();
    let r = apply(&env, &[], None);
    r.ok();
    assert_eq!(calls(&env), ["stop", "update", "rebuild", "update"]);
    let config = String::from_utf8(env.config()).unwrap();
    assert!(config.contains("\nenable_scim: true\n"), "{config}");
    let compose = fs::read_to_string(env.bwdata().join("docker/docker-compose.yml")).unwrap();
    assert!(compose.contains("scim:"));
    let snap = r.json()["snapshot"].as_str().unwrap().to_string();
    // The snapshot holds the config as it was, user comment and all.
    let log = env.run(&["log", &snap, "--json"]);
    log.ok();
    let journal: Journal = log.parse();
    assert_eq!(journal.outcome, "succeeded");
    let names: Vec<&str> = journal.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "preflight",
            "./bitwarden.sh stop",
            "snapshot",
            "./bitwarden.sh update",
            "set enable_scim: true",
            "./bitwarden.sh rebuild",
            "./bitwarden.sh update",
            "check"
        ]
    );
    assert_eq!(journal.steps[5].exit_code, Some(0));
    assert!(journal.steps[5].output.contains("Setup done"));
    let report: EditReport = r.parse();
    assert_eq!(report.journal.as_ref(), Some(&journal), "the run's document holds the journal it saved");
    env.run(&["log", &snap]).ok().says("./bitwarden.sh rebuild");
}

#[test]
fn a_failing_step_stops_the_run_and_names_the_rollback() {
    for (fail_at, ran) in [
        ("update:1", &["stop", "update"][..]),
        ("rebuild:1", &["stop", "update", "rebuild"]),
        ("update:2", &["stop", "update", "rebuild", "update"]),
    ] {
        let env = env_with_stand_in();
        let r = apply(&env, &[], Some(fail_at));
        r.code(1);
        assert_eq!(calls(&env), ran, "{fail_at}");
        let err = &r.json()["error"];
        let step = format!("./bitwarden.sh {}", fail_at.split(':').next().unwrap());
        assert!(err["message"].as_str().unwrap().contains(&step), "{fail_at}: {err}");
        let snap = env.snapshot_ids()[0].clone();
        assert!(err["hint"].as_str().unwrap().contains(&format!("bwguard rollback {snap} --yes")), "{err}");
        assert_eq!(env.run(&["log", &snap, "--json"]).json()["outcome"], "failed");
    }
}

#[test]
fn rollback_on_failure_puts_the_snapshot_bytes_back_and_starts_bitwarden() {
    for fail_at in ["update:1", "rebuild:1", "update:2"] {
        let env = env_with_stand_in();
        let before = env.tree();
        let r = apply(&env, &["--rollback-on-failure"], Some(fail_at));
        r.code(1);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("rolled back"), "{}", r.stdout);
        assert_eq!(calls(&env).last().map(String::as_str), Some("start"), "{fail_at}");
        assert_eq!(calls(&env).iter().filter(|c| *c == "stop").count(), 2, "{fail_at}");
        // Everything is back as it was, config.yml's user comment included.
        let mut now = env.tree();
        let mut was = before.clone();
        for t in [&mut now, &mut was] {
            t.remove("bitwarden.sh");
        }
        assert_same_tree(&was, &now);
        let snap = env.run(&["list", "--json"]).json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["reason"] == "before enable-scim")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap();
        assert_eq!(env.run(&["log", &snap, "--json"]).json()["outcome"], "rolled back");
    }
}

#[test]
fn a_failed_stop_changes_nothing_and_takes_no_snapshot() {
    let env = env_with_stand_in();
    let before = env.tree();
    apply(&env, &[], Some("stop:1")).code(1).says("nothing was changed");
    assert_same_tree(&before, &env.tree());
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn the_result_is_checked_after_setup_re_wrote_everything() {
    let env = env_with_stand_in();
    let r = env.bwguard(&["enable-scim", "--apply", "--yes"]).env("NO_SCIM", "1").run();
    r.code(1).stderr_has("step `check` failed").stderr_has("no scim service");
}

#[test]
fn dry_run_runs_nothing() {
    let env = env_with_stand_in();
    let before = env.tree();
    let r = env.run(&["enable-scim", "--apply", "--dry-run", "--yes"]);
    r.ok().says("./bitwarden.sh rebuild").says("nothing is run");
    assert!(calls(&env).is_empty());
    assert!(env.snapshot_ids().is_empty());
    assert_same_tree(&before, &env.tree());
}

#[test]
fn bitwarden_sh_runs_as_the_owner_and_root_installs_need_yes() {
    use std::os::unix::fs::lchown;
    if !bwguard::files::is_root() {
        eprintln!("SKIPPED: needs root");
        assert!(std::env::var_os("CI").is_none());
        return;
    }
    let env = env_with_stand_in();
    // A root-owned install: bitwarden.sh would ask, so --yes is needed.
    let r = env.run(&["enable-scim", "--apply"]);
    r.code(5).says("belongs to root").says("--yes");
    assert!(calls(&env).is_empty());
    // An install owned by another user: bitwarden.sh runs as that user.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for e in walkdir::WalkDir::new(&env.install) {
        lchown(e.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    fs::write(env.dir.path().join("calls.log"), "").unwrap();
    lchown(env.dir.path().join("calls.log"), Some(65534), Some(65534)).unwrap();
    let r = env.run(&["enable-scim", "--apply"]);
    r.ok();
    let log = fs::read_to_string(env.dir.path().join("calls.log")).unwrap();
    assert!(log.lines().all(|l| l.ends_with("uid=65534")), "{log}");
    assert_eq!(log.lines().count(), 4);
}

#[test]
fn upgrade_snapshots_then_updates_and_can_roll_itself_back() {
    let env = env_with_stand_in();
    let r = env.run(&["upgrade", "--yes", "--json"]);
    r.ok();
    assert_eq!(calls(&env), ["stop", "updateself", "update"]);
    let snap = r.json()["snapshot"].as_str().unwrap().to_string();
    let journal = env.run(&["log", &snap, "--json"]).json();
    assert_eq!(journal["outcome"], "succeeded");
    let check = journal["steps"].as_array().unwrap().last().unwrap()["output"].as_str().unwrap().to_string();
    assert!(check.contains("2026.8.0 -> 2026.9.0"), "{check}");
    let list = env.run(&["list", "--json"]).json();
    let before =
        list["snapshots"].as_array().unwrap().iter().find(|s| s["id"] == snap.as_str()).unwrap().clone();
    assert_eq!(before["reason"], "before upgrade");
    assert_eq!(before["bitwarden"]["core_version"], "2026.8.0");

    // A failed update is rolled back: the old pins and database return.
    let env = env_with_stand_in();
    let tree = env.tree();
    env.bwguard(&["upgrade", "--yes", "--rollback-on-failure"]).env("FAIL_AT", "update:1").run().code(1);
    assert_same_tree(&tree, &env.tree());
    assert!(
        fs::read_to_string(env.install.join("bitwarden.sh")).unwrap().contains("COREVERSION=\"2026.8.0\"")
    );
    assert_eq!(calls(&env).last().map(String::as_str), Some("start"));
}

#[test]
fn an_old_config_gets_the_key_even_when_update_is_not_needed() {
    // Real bitwarden.sh prints "Update not needed" and adds nothing when the
    // running images already match: the edit step appends the key, and the
    // rebuild re-writes the file as Setup writes it.
    let env = env_with_stand_in();
    env.set_config(include_bytes!("../../fixtures/config-2022.6.yml"));
    env.bwguard(&["enable-scim", "--apply", "--yes"]).env("UPDATE_NOT_NEEDED", "1").run().ok();
    let config = String::from_utf8(env.config()).unwrap();
    assert_eq!(config.matches("\nenable_scim: true\n").count(), 1, "{config}");
}

#[test]
fn the_rollback_after_a_failed_step_keeps_the_lock_so_a_backup_cannot_get_in() {
    // A scheduled backup that starts while bwguard stops Bitwarden, rolls
    // back and starts it again must find the store locked (exit 4) every
    // time: the lock taken at the start is never let go until the end.
    let env = env_with_stand_in();
    let backup =
        format!("{} --store {} --bwdata {} backup", BIN, env.store.display(), env.bwdata().display());
    let r = env
        .bwguard(&["enable-scim", "--apply", "--yes", "--rollback-on-failure", "--json"])
        .env("FAIL_AT", "rebuild:1")
        .env("BACKUP_IN_WINDOW", &backup)
        .run();
    r.error(1, "rolled-back");
    let log = fs::read_to_string(env.dir.path().join("calls.log")).unwrap();
    let tried: Vec<&str> = log.lines().filter(|l| l.starts_with("backup-in-window")).collect();
    // The first stop, the stop before the rollback, and the start after it.
    assert_eq!(tried, ["backup-in-window 4"; 3], "{log}");
    let steps: Vec<String> = calls(&env).into_iter().filter(|c| c != "backup-in-window").collect();
    assert_eq!(steps, ["stop", "update", "rebuild", "stop", "start"], "{log}");
    // Once bwguard is done, the same backup gets in.
    env.run(&["backup"]).ok();
}
