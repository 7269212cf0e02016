//! Bitwarden as it really runs: bwguard's procedures against the stand-in
//! scripts on a real Docker daemon (`docker_bed`), as root and as the
//! install's owner, with faults injected at every step. Each failure ends
//! with Bitwarden running (or a truthful message and a command that works
//! as printed) and the install byte for byte as before, logs excluded.

use std::fs;

use bwguard::procedure::Journal;
use bwguard::report::{EditReport, ErrorDoc, UpgradeReport};

use crate::docker_bed::{GROUP, NEXT, Owner, Site, USER, VERSION, text};
use crate::support::{Run, assert_same_tree};

/// `enable-scim --apply --yes --json` with `extra` flags.
fn apply(site: &Site, extra: &[&str]) -> Run {
    let mut args = vec!["enable-scim", "--apply", "--yes", "--json"];
    args.extend(extra);
    site.bwguard(&args).run()
}

/// The command between the backticks after `after` in `text`.
fn command_in(text: &str, after: &str) -> String {
    let rest = &text[text.find(after).unwrap_or_else(|| panic!("no {after:?} in {text}")) + after.len()..];
    let start = rest.find('`').unwrap() + 1;
    rest[start..start + rest[start..].find('`').unwrap()].to_string()
}

/// Runs a command bwguard printed, exactly as printed; asserts it worked.
#[track_caller]
fn run_printed(site: &Site, line: &str) {
    let out = site.shell(line);
    assert!(out.status.success(), "`{line}` as printed failed:\n{}", text(&out));
}

/// The journal of snapshot `id`.
fn journal(site: &Site, id: &str) -> Journal {
    site.bwguard(&["log", id, "--json"]).run().ok().parse()
}

/// The newest snapshot taken before enable-scim.
fn before_scim(site: &Site) -> String {
    let list = site.bwguard(&["list", "--json"]).run().ok().json();
    list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == "before enable-scim")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn the_scim_procedure_as_root_on_a_root_install_wires_scim_and_its_undo_works_as_printed() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    let report: EditReport = apply(&site, &[]).ok().parse();
    let journal: Journal = report.journal.clone().unwrap();
    let names: Vec<&str> = journal.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "preflight",
            "./bitwarden.sh stop",
            "check: the database is stopped",
            "snapshot",
            "./bitwarden.sh update",
            "set enable_scim: true",
            "./bitwarden.sh rebuild",
            "./bitwarden.sh update",
            "check"
        ],
        "{journal:?}"
    );
    assert!(journal.steps[8].output.contains("containers run"), "{}", journal.steps[8].output);
    site.assert_running();
    assert_eq!(site.containers().get("bitwarden-scim").map(String::as_str), Some("running"));
    let conf = fs::read_to_string(site.data().join("nginx/default.conf")).unwrap();
    assert!(conf.contains("proxy_pass http://scim:5000/"), "{conf}");
    // The snapshot holds every file Setup rewrites, as one set.
    let snap = report.snapshot.unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(site.env.snap_dir(&snap).join("manifest.json")).unwrap()).unwrap();
    let parts: Vec<&str> =
        manifest["parts"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    for p in
        ["bwdata/nginx", "bwdata/web", "bwdata/docker", "bwdata/env", "bwdata/config.yml", "bwdata/mssql"]
    {
        assert!(parts.contains(&p), "{p} not in {parts:?}");
    }
    assert_eq!(manifest["bitwarden"]["key_connector_version"], "2025.11.0");
    // The undo command, run exactly as printed, brings the install back.
    assert_eq!(report.undo.len(), 1, "{:?}", report.undo);
    run_printed(&site, &report.undo[0]);
    site.assert_running();
    assert!(!site.containers().contains_key("bitwarden-scim"), "{:?}", site.containers());
    assert_same_tree(&before, &site.tree());
}

#[test]
fn run_as_root_on_a_users_install_the_script_gets_that_users_groups_home_and_name() {
    let Some(site) = Site::new(Owner::User) else { return };
    apply(&site, &[]).ok();
    site.assert_running();
    let group = String::from_utf8_lossy(
        &std::process::Command::new("getent").args(["group", GROUP]).output().unwrap().stdout,
    )
    .split(':')
    .nth(2)
    .unwrap()
    .to_string();
    let calls: Vec<String> = site.calls().into_iter().filter(|c| !c.starts_with("setup ")).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for c in &calls {
        assert!(c.contains(&format!(" uid={} ", site.bed.uid)), "{c}");
        assert!(
            c.split(" groups=").nth(1).unwrap().split(' ').next().unwrap().split(',').any(|g| g == group),
            "{c}"
        );
        assert!(c.contains(&format!(" home=/home/{USER} user={USER} ")), "{c}");
    }
}

#[test]
fn run_by_the_installs_owner_itself_the_procedure_works_too() {
    let Some(site) = Site::new(Owner::User) else { return };
    fs::create_dir(&site.env.store).unwrap();
    std::os::unix::fs::chown(&site.env.store, Some(site.bed.uid), Some(site.bed.gid)).unwrap();
    let before = site.tree();
    let r =
        site.bwguard(&["enable-scim", "--apply", "--rollback-on-failure", "--json"]).run_as_user(USER).run();
    r.ok();
    site.assert_running();
    assert!(site.containers().contains_key("bitwarden-scim"));
    // And as that user, a failure rolls back.
    site.reset_calls();
    site.fault("update:2:migrate");
    let r =
        site.bwguard(&["disable-scim", "--apply", "--rollback-on-failure", "--json"]).run_as_user(USER).run();
    r.error(1, "rolled-back");
    site.assert_running();
    assert!(site.containers().contains_key("bitwarden-scim"), "rolled back to scim on");
    let _ = before;
}

#[test]
fn a_failure_at_any_step_with_rollback_on_failure_ends_running_and_byte_for_byte_as_before() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    for fault in [
        "update:1:setup-dies-at:nginx",
        "rebuild:1:setup-dies-at:compose",
        "update:2:migrate",
        "update:2:setup-dies-at:config",
    ] {
        site.reset_calls();
        site.clear_faults();
        site.fault(fault);
        let r = apply(&site, &["--rollback-on-failure"]);
        let err = r.error(1, "rolled-back");
        assert!(err.message.contains("Bitwarden runs again"), "{fault}: {}", err.message);
        site.clear_faults();
        site.assert_running();
        assert!(!site.containers().contains_key("bitwarden-scim"), "{fault}: {:?}", site.containers());
        assert_same_tree(&before, &site.tree());
        let j = journal(&site, &before_scim(&site));
        assert_eq!(j.outcome, "rolled back", "{fault}");
        let last: Vec<&str> = j.steps.iter().rev().take(2).map(|s| s.name.as_str()).collect();
        assert_eq!(last, ["check: Bitwarden runs", "./bitwarden.sh start"], "{fault}");
    }
}

#[test]
fn a_failure_without_rollback_names_an_undo_that_works_as_printed() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    site.fault("rebuild:1:setup-dies-at:compose");
    let r = apply(&site, &[]);
    let err: ErrorDoc = r.error(1, "step-failed");
    assert!(
        err.message.contains("./bitwarden.sh rebuild") && err.message.contains("Unhandled exception"),
        "{}",
        err.message
    );
    // One tail of the output, without the banner (the unattended log line
    // repeats the error, as journald shows it).
    let shown: Vec<&str> = r.stderr.lines().filter(|l| !l.starts_with("bwguard[")).collect();
    assert_eq!(shown.iter().filter(|l| l.contains("Unhandled exception")).count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("=====") && !r.stderr.contains("docker inspect"), "{}", r.stderr);
    site.clear_faults();
    let undo = command_in(err.hint.as_deref().unwrap(), "to undo: ");
    run_printed(&site, &undo);
    site.assert_running();
    assert_same_tree(&before, &site.tree());
}

#[test]
fn when_start_fails_after_the_rollback_bwguard_says_so_and_its_start_command_works() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    // The last update fails, and the registry is gone when bwguard starts
    // Bitwarden again after rolling back.
    site.fault("update:2:migrate");
    site.fault("start:1:registry");
    let r = apply(&site, &["--rollback-on-failure"]);
    let err = r.error(1, "rolled-back-not-running");
    assert!(
        err.message.contains("rolled back to snapshot") && err.message.contains("ghcr.io"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("runs again"), "{}", err.message);
    assert_eq!(journal(&site, &before_scim(&site)).outcome, "rolled back, not running");
    site.clear_faults();
    run_printed(&site, &command_in(err.hint.as_deref().unwrap(), "start it with "));
    site.assert_running();
    assert_same_tree(&before, &site.tree());
}

#[test]
fn with_run_sh_download_offline_the_first_update_fails_and_the_rollback_brings_it_back() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    site.fault("offline");
    let err = apply(&site, &["--rollback-on-failure"]).error(1, "rolled-back");
    assert!(err.message.contains("Could not resolve host"), "{}", err.message);
    site.assert_running();
    assert_same_tree(&before, &site.tree());
}

#[test]
fn with_compose_2_14_each_update_on_a_stopped_install_is_preceded_by_a_start() {
    let Some(site) = Site::build(Owner::Root, "bwdata", Some("v2.14")) else { return };
    // What the stand-in models: Bitwarden's own order fails with 2.14.
    assert!(site.script("stop").status.success());
    let out = site.script("update");
    assert!(!out.status.success() && text(&out).contains("no such service: admin"), "{}", text(&out));
    assert!(site.script("start").status.success());
    site.wait_running();
    let before = site.tree();
    let report: EditReport = apply(&site, &[]).ok().parse();
    let names: Vec<String> = report.journal.unwrap().steps.into_iter().map(|s| s.name).collect();
    let at = |n: &str| names.iter().position(|s| s == n);
    assert!(
        names
            .windows(2)
            .filter(|w| w[0] == "./bitwarden.sh start" && w[1] == "./bitwarden.sh update")
            .count()
            == 2,
        "{names:?}"
    );
    assert!(at("snapshot") < at("./bitwarden.sh start"), "{names:?}");
    site.assert_running();
    assert!(site.containers().contains_key("bitwarden-scim"));
    let _ = before;
}

#[test]
fn a_dot_bwdata_install_gets_its_data_directory_and_its_undo_names_it() {
    let Some(site) = Site::build(Owner::Root, ".bwdata", None) else { return };
    let before = site.tree();
    let report: EditReport = apply(&site, &[]).ok().parse();
    let data = site.data().display().to_string();
    for c in site.calls().iter().filter(|c| !c.starts_with("setup ")) {
        assert!(c.ends_with(&format!(" {data}")), "{c}");
    }
    assert!(
        report.undo[0].contains(&format!("./bitwarden.sh stop {data}"))
            && report.undo[0].contains("--bwdata"),
        "{:?}",
        report.undo
    );
    run_printed(&site, &report.undo[0]);
    site.assert_running();
    assert_same_tree(&before, &site.tree());
}

#[test]
fn when_stop_leaves_the_database_running_no_snapshot_is_taken_and_the_hint_works() {
    // With compose v2, `stop` does nothing when one container is left.
    let Some(site) = Site::build(Owner::Root, "bwdata", Some("v2.20")) else { return };
    for c in ["bitwarden-nginx", "bitwarden-web", "bitwarden-admin", "bitwarden-api", "bitwarden-identity"] {
        site.bed.docker(&["rm", "-f", c]);
    }
    let before = site.tree();
    let store = site.env.store_tree();
    let err = apply(&site, &[]).error(1, "database-still-running");
    assert!(err.message.contains("bitwarden-mssql is still running"), "{}", err.message);
    assert_same_tree(&store, &site.env.store_tree());
    assert_same_tree(&before, &site.tree());
    assert_eq!(site.containers().get("bitwarden-mssql").map(String::as_str), Some("running"));
    run_printed(&site, &command_in(err.hint.as_deref().unwrap(), "stop it ("));
    apply(&site, &[]).ok();
    site.assert_running();
}

#[test]
fn an_owner_without_docker_access_is_refused_before_anything_stops() {
    let Some(site) = Site::new(Owner::User) else { return };
    struct Regroup;
    impl Drop for Regroup {
        fn drop(&mut self) {
            std::process::Command::new("usermod").args(["-aG", GROUP, USER]).status().unwrap();
        }
    }
    let _regroup = Regroup;
    assert!(
        std::process::Command::new("gpasswd").args(["-d", USER, GROUP]).output().unwrap().status.success()
    );
    let before = site.tree();
    let err = apply(&site, &[]).error(5, "docker-unreachable");
    assert!(err.message.contains("permission denied"), "{}", err.message);
    assert!(err.hint.as_deref().unwrap().contains(&format!("usermod -aG {GROUP} {USER}")), "{:?}", err.hint);
    assert!(site.calls().is_empty(), "{:?}", site.calls());
    assert_same_tree(&before, &site.tree());
    site.assert_running();
}

#[test]
fn upgrade_brings_the_next_version_and_its_undo_goes_back_as_printed() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    let report: UpgradeReport = site.bwguard(&["upgrade", "--yes", "--json"]).run().ok().parse();
    site.assert_running();
    let image = site.bed.docker(&["inspect", "--format", "{{.Config.Image}}", "bitwarden-admin"]);
    assert_eq!(String::from_utf8_lossy(&image.stdout).trim(), format!("ghcr.io/bitwarden/admin:{NEXT}"));
    let schema = fs::read(site.data().join("mssql/data/vault.mdf")).unwrap();
    assert!(String::from_utf8_lossy(&schema[8192..8192 + 40]).contains(NEXT), "migrated to {NEXT}");
    run_printed(&site, &report.undo[0]);
    site.assert_running();
    let image = site.bed.docker(&["inspect", "--format", "{{.Config.Image}}", "bitwarden-admin"]);
    assert_eq!(String::from_utf8_lossy(&image.stdout).trim(), format!("ghcr.io/bitwarden/admin:{VERSION}"));
    assert_same_tree(&before, &site.tree());
}

#[test]
fn a_failed_upgrade_rolls_back_to_the_old_version_running() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    site.fault("update:1:migrate");
    site.bwguard(&["upgrade", "--yes", "--rollback-on-failure", "--json"]).run().error(1, "rolled-back");
    site.assert_running();
    let image = site.bed.docker(&["inspect", "--format", "{{.Config.Image}}", "bitwarden-admin"]);
    assert_eq!(String::from_utf8_lossy(&image.stdout).trim(), format!("ghcr.io/bitwarden/admin:{VERSION}"));
    assert_same_tree(&before, &site.tree());
}

#[test]
fn a_step_that_hangs_is_stopped_at_the_time_limit_and_rolled_back() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    site.fault("rebuild:1:hang");
    let t = std::time::Instant::now();
    let err = apply(&site, &["--rollback-on-failure", "--step-timeout", "5s"]).error(1, "rolled-back");
    assert!(err.message.contains("stopped it after 5s"), "{}", err.message);
    assert!(t.elapsed() < std::time::Duration::from_secs(120));
    let sleeping = std::process::Command::new("pgrep").args(["-f", "sleep 600"]).output().unwrap();
    assert!(!sleeping.status.success(), "the hung step's processes were left running");
    site.assert_running();
    assert_same_tree(&before, &site.tree());
}

#[test]
fn the_rollback_after_a_failed_step_keeps_the_lock_so_a_backup_cannot_get_in() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let backup = format!(
        "{} --store {} --bwdata {} backup",
        crate::support::BIN,
        site.env.store.display(),
        site.data().display()
    );
    site.fault("rebuild:1:fail");
    site.bwguard(&["enable-scim", "--apply", "--yes", "--rollback-on-failure", "--json"])
        .env("STANDIN_BACKUP", &backup)
        .run()
        .error(1, "rolled-back");
    let tried: Vec<String> = site.calls().into_iter().filter(|l| l.starts_with("backup-in-window")).collect();
    // Every bitwarden.sh call: stop, update, rebuild, then stop and start of the rollback.
    assert_eq!(tried, vec!["backup-in-window 4".to_string(); 5]);
    site.assert_running();
}

#[test]
fn a_failed_stop_changes_nothing_and_takes_no_snapshot() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    site.fault("stop:1:fail");
    let err = apply(&site, &["--rollback-on-failure"]).error(1, "step-failed");
    assert!(err.hint.as_deref().unwrap().contains("nothing was changed"), "{:?}", err.hint);
    assert!(site.env.snapshot_ids().is_empty());
    assert_same_tree(&before, &site.tree());
    site.assert_running();
}

#[test]
fn a_check_after_setup_finds_what_it_left_wrong() {
    let Some(site) = Site::new(Owner::Root) else { return };
    // Setup leaves the scim service out: the check fails.
    site.fault("rebuild:1:no-scim");
    site.fault("update:2:no-scim");
    let err = apply(&site, &[]).error(1, "step-failed");
    assert!(
        err.message.contains("step `check` failed") && err.message.contains("no scim service"),
        "{}",
        err.message
    );
    site.clear_faults();
    // Setup leaves a /scim/ route without its container: nginx crash-loops,
    // and the check says so, from what Docker sees.
    site.bwguard(&["enable-scim", "--apply", "--yes"]).run().ok();
    site.reset_calls();
    site.fault("rebuild:1:stale-route");
    site.fault("update:2:stale-route");
    let err = site.bwguard(&["disable-scim", "--apply", "--yes", "--json"]).run().error(1, "step-failed");
    assert!(
        err.message.contains("bitwarden-nginx is restarting")
            || err.message.contains("bitwarden-nginx is exited"),
        "{}",
        err.message
    );
    assert!(err.message.contains("host not found in upstream"), "{}", err.message);
}

#[test]
fn a_dry_run_or_a_root_install_without_yes_runs_nothing() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let before = site.tree();
    let r = site.bwguard(&["enable-scim", "--apply", "--dry-run", "--yes"]).run();
    r.ok().says("./bitwarden.sh rebuild").says("nothing is run");
    // Without --yes too: a dry run answers nothing, it says that the run will need it.
    let r = site.bwguard(&["enable-scim", "--apply", "--dry-run"]).run();
    r.ok().says("nothing is run").says("the run needs --yes");
    site.bwguard(&["enable-scim", "--apply", "--json"]).run().error(5, "root-install");
    assert!(site.calls().is_empty(), "{:?}", site.calls());
    assert!(site.env.snapshot_ids().is_empty());
    assert_same_tree(&before, &site.tree());
}

#[test]
fn an_old_config_gets_the_key_when_update_is_not_needed() {
    // With compose 2.14 bwguard starts Bitwarden before each update, and
    // the first update on a running current install is "Update not needed".
    let Some(site) = Site::build(Owner::Root, "bwdata", Some("v2.14")) else { return };
    let config = fs::read_to_string(site.data().join("config.yml")).unwrap();
    let old: String = config
        .split("\n# \n")
        .filter(|block| !block.contains("enable_scim"))
        .collect::<Vec<_>>()
        .join("\n# \n");
    fs::write(site.data().join("config.yml"), old).unwrap();
    let report: EditReport = apply(&site, &[]).ok().parse();
    let update = &report.journal.unwrap().steps[5];
    assert!(
        update.name == "./bitwarden.sh update" && update.output.contains("Update not needed"),
        "{update:?}"
    );
    let config = fs::read_to_string(site.data().join("config.yml")).unwrap();
    assert_eq!(config.matches("\nenable_scim: true\n").count(), 1, "{config}");
    site.assert_running();
}
