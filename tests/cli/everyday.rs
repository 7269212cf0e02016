//! Everyday commands: pin, unpin, forget, status --max-age, completions,
//! the man page, colour only on a terminal and never with NO_COLOR, and the
//! log line of unattended runs.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::TestEnv;

#[test]
fn before_change_snapshots_are_pinned_and_forget_respects_pins() {
    let env = TestEnv::new();
    let manual = env.backup();
    assert_eq!(env.manifest(&manual)["pinned"], false);
    let edited = env.run(&["enable-scim", "--json"]).json();
    let before = edited["snapshot"].as_str().unwrap().to_string();
    assert_eq!(env.manifest(&before)["pinned"], true, "a before-change snapshot is pinned when made");

    // forget refuses a pinned snapshot without --force, and asks first.
    env.run(&["forget", &before, "--yes"]).code(5).says("pinned").says("--force");
    assert!(env.snap_dir(&before).join("manifest.json").exists());
    env.run(&["forget", &manual]).code(5).says("--yes");
    assert!(env.snap_dir(&manual).exists());

    env.run(&["unpin", &before]).ok();
    assert_eq!(env.manifest(&before)["pinned"], false);
    env.run(&["pin", &manual, "--json"]).ok();
    assert_eq!(env.manifest(&manual)["pinned"], true);
    // The rewritten manifest still verifies and stays private.
    env.run(&["verify", &manual]).ok();

    env.run(&["forget", &before, "--yes"]).ok();
    assert!(!env.snap_dir(&before).exists());
    env.run(&["forget", &manual, "--yes", "--force"]).ok();
    assert!(env.snapshot_ids().is_empty());
    env.run(&["forget", &manual, "--yes"]).code(2);
}

#[test]
fn status_max_age_fails_when_the_newest_good_snapshot_is_too_old() {
    let env = TestEnv::new();
    env.run(&["status", "--max-age", "1h"]).code(1).stdout_has("STALE: no good backup");
    let id = env.backup();
    let r = env.run(&["status", "--max-age", "1h", "-q"]);
    r.ok();
    assert_eq!(r.stdout.lines().count(), 1, "one line for a monitoring check: {}", r.stdout);
    assert!(r.stdout.starts_with("OK: ") && r.stdout.contains(&id), "{}", r.stdout);
    // Make it two days old.
    let path = env.snap_dir(&id).join("manifest.json");
    let mut m = env.manifest(&id);
    m["created"] = "2020-01-01T00:00:00Z".into();
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // The status document stays, with the verdict in it, and the run exits 1.
    let r = env.run(&["status", "--max-age", "26h", "--json"]);
    r.code(1);
    let doc = r.json();
    assert_eq!(doc["max_age"]["ok"], false);
    assert_eq!(doc["newest_good"]["id"], id.as_str());
    assert!(doc["max_age"]["message"].as_str().unwrap().starts_with("STALE: "));
    assert_eq!(doc["install_dir"], env.install.display().to_string().as_str());
    env.run(&["status", "--max-age", "26x"]).code(2);
}

#[test]
fn status_max_age_counts_only_cold_backups_of_the_whole_install() {
    let env = TestEnv::new();
    let old = env.backup();
    let path = env.snap_dir(&old).join("manifest.json");
    let mut m = env.manifest(&old);
    m["created"] = "2020-01-01T00:00:00Z".into();
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // A config-only rollback's "before rollback" snapshot is new, but holds no database.
    env.run(&["rollback", &old, "--only", "config", "--yes"]).ok();
    // A live one is new, but may be torn (made live here by its manifest:
    // tests/cli/live.rs takes real ones).
    let live = env.backup();
    let path = env.snap_dir(&live).join("manifest.json");
    let mut m = env.manifest(&live);
    m["consistency"] = "live".into();
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    assert_eq!(env.snapshot_ids().len(), 3);
    let r = env.run(&["status", "--max-age", "26h", "--json"]);
    r.code(1);
    let doc = r.json();
    assert_eq!(doc["newest_good"]["id"], old.as_str(), "{doc}");
    assert!(doc["max_age"]["counts"].as_str().unwrap().contains("live"));
    let fresh = env.backup();
    let doc = env.run(&["status", "--max-age", "26h", "--json"]).ok().json();
    assert_eq!(doc["newest_good"]["id"], fresh.as_str());
}

#[test]
fn status_says_whether_the_next_run_undoes_or_finishes_an_interrupted_rollback() {
    let env = TestEnv::new();
    let id = env.backup();
    let journal = |phase: &str| {
        let j = serde_json::json!({
            "id": id, "before": "", "install_dir": env.install.display().to_string(),
            "phase": phase, "units": [{"rel": "bwdata/config.yml", "in_snapshot": true}],
        });
        fs::write(env.store.join("rollback-journal.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    };
    journal("staging");
    let r = env.run(&["status"]);
    r.ok().says("will undo it");
    assert_eq!(env.run(&["status", "--json"]).ok().json()["interrupted_rollback_next"], "undo");
    let before = env.tree();
    env.run(&["backup"]).ok().says("was undone");
    assert_eq!(env.tree(), before, "the undo changed nothing in the install");
    journal("swapping");
    assert_eq!(env.run(&["status", "--json"]).ok().json()["interrupted_rollback_next"], "finish");
    fs::remove_file(env.store.join("rollback-journal.json")).unwrap();
}

/// What bash completes for `words` (the last one being typed) with the
/// script `bwguard completions bash` prints, sourced in a real bash that
/// finds this bwguard on PATH, run in `cwd` with the test's store in
/// `BWGUARD_STORE`.
fn bash_completes(env: &TestEnv, cwd: &Path, words: &[&str]) -> Vec<String> {
    let script = env.dir.path().join("bwguard.bash");
    fs::write(&script, env.run(&["completions", "bash"]).ok().stdout.as_bytes()).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_bwguard")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMP_TYPE=9; \
         _clap_complete_bwguard bwguard \"${{COMP_WORDS[COMP_CWORD]}}\" x; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(line)
        .env("PATH", path)
        .env("BWGUARD_STORE", &env.store)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

#[test]
fn completion_offers_snapshot_ids_config_keys_and_directories_without_a_space() {
    let env = TestEnv::new();
    let (a, b) = (env.backup(), env.backup());
    let store = env.store.display().to_string();
    let bwdata = env.bwdata().display().to_string();
    // Ids of the store the line names, newest first, with `latest`.
    let got = bash_completes(
        &env,
        env.dir.path(),
        &["bwguard", "--bwdata", &bwdata, "--store", &store, "rollback", ""],
    );
    assert_eq!(got[..3], ["latest".to_string(), b.clone(), a.clone()], "{got:?}");
    let common: String = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).map(|(x, _)| x).collect();
    let got = bash_completes(
        &env,
        env.dir.path(),
        &["bwguard", "--store", &store, "--bwdata", &bwdata, "verify", &common],
    );
    assert!(got.contains(&b) && got.contains(&a) && !got.contains(&"latest".to_string()), "{got:?}");
    // The install found from the current directory and the store from
    // BWGUARD_STORE, as bwguard itself finds them.
    let got = bash_completes(&env, &env.install, &["bwguard", "forget", &b]);
    assert_eq!(got, [b.as_str()], "{got:?}");
    // Keys of config.yml.
    let got = bash_completes(&env, &env.install, &["bwguard", "set", "enable_s"]);
    assert_eq!(got, ["enable_scim"], "{got:?}");
    // A directory ends in a slash, and the script then adds no space.
    let parent = env.install.parent().unwrap().display().to_string();
    let got = bash_completes(&env, &env.install, &["bwguard", "backup", "--store", &format!("{parent}/ins")]);
    assert_eq!(got, [format!("{parent}/install/")], "{got:?}");
    // Only the global options that apply to the command are offered.
    let list = bash_completes(&env, &env.install, &["bwguard", "list", "--"]);
    let rollback = bash_completes(&env, &env.install, &["bwguard", "rollback", "--"]);
    assert!(list.contains(&"--json".to_string()) && !list.contains(&"--yes".to_string()), "{list:?}");
    assert!(rollback.contains(&"--yes".to_string()), "{rollback:?}");
    // Nothing readable there: nothing offered, no error.
    let got = bash_completes(
        &env,
        env.dir.path(),
        &["bwguard", "--store", "/nonexistent", "--bwdata", &bwdata, "pin", "2"],
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = env.run(&["completions", shell]);
        r.ok();
        // The script asks bwguard itself, under bwguard's own variable.
        assert!(
            r.stdout.contains("BWGUARD_COMPLETE") && r.stdout.contains("bwguard"),
            "{shell}: {}",
            r.stdout
        );
    }
    // Asked as a shell asks, bwguard answers with the real commands.
    let r = env
        .bwguard(&["--", "bwguard", "enable-"])
        .env("BWGUARD_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "1")
        .env("_CLAP_IFS", "\n")
        .run();
    r.ok();
    assert!(r.stdout.contains("enable-scim"), "{}", r.stdout);
    // A stray COMPLETE (another tool's variable) changes nothing.
    env.bwguard(&["status"]).env("COMPLETE", "bash").run().ok().says("snapshot");
    let r = env.run(&["man"]);
    r.ok();
    assert!(r.stdout.starts_with(".TH BWGUARD 1 "), "not a man page: {}", &r.stdout[..80]);
    assert!(r.stdout.contains(".SS \"bwguard enable\\-scim\""));
    // groff (where it is installed) formats it without a warning.
    let page = env.dir.path().join("bwguard.1");
    fs::write(&page, &r.stdout).unwrap();
    if let Ok(out) = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&page).output() {
        assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn output_without_a_terminal_or_with_no_color_has_no_escape_codes() {
    let env = TestEnv::new();
    env.run(&["enable-scim"]).ok();
    // Piped: no colour, whatever the command (a warning and an error included).
    for args in
        [&["list"][..], &["status"], &["rollback", "20200101T000000Z"], &["backup", "--with-attachments"]]
    {
        let r = env.run(args);
        assert!(!r.stdout.contains('\u{1b}') && !r.stderr.contains('\u{1b}'), "{args:?}: {r:?}");
    }
    // On a terminal (a pty from `script`), colour appears unless NO_COLOR.
    if Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "`script` (util-linux) is needed for the terminal test");
        eprintln!("SKIPPED: no `script` command for a pty");
        return;
    }
    let on_tty = |no_color: bool| {
        let bwdata = env.bwdata();
        let args = ["--bwdata", bwdata.to_str().unwrap(), "verify", "20200101T000000Z"];
        let run = env.bwguard(&args).on_terminal();
        let run = if no_color { run.env("NO_COLOR", "1") } else { run };
        run.run().stdout
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("\u{1b}[1;31merror:"), "{coloured:?}");
    let plain = on_tty(true);
    assert!(plain.contains("error:") && !plain.contains('\u{1b}'), "{plain:?}");
}

#[test]
fn unattended_runs_end_with_one_log_line() {
    let env = TestEnv::new();
    let r = env.run(&["backup"]);
    r.ok();
    let log: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("bwguard[")).collect();
    assert_eq!(log.len(), 1, "{}", r.stderr);
    assert!(log[0].contains("]: backup ok: snapshot 20"), "{}", log[0]);
    let r = env.run(&["rollback"]);
    r.code(5);
    let log: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("bwguard[")).collect();
    assert_eq!(log.len(), 1);
    assert!(log[0].contains("rollback failed (exit 5, needs-confirmation)"), "{}", log[0]);
    // Read-only commands have no log line.
    assert!(!env.run(&["list"]).stderr.contains("bwguard["));
}

#[test]
fn a_database_bwguard_cannot_reach_is_refused_unless_backed_up_elsewhere() {
    let env = TestEnv::new();
    let config = String::from_utf8(env.config()).unwrap();
    // An external SQL Server.
    env.set_config(
        config.replace("enable_built_in_ms_sql: true", "enable_built_in_ms_sql: false").as_bytes(),
    );
    let e = env.run(&["backup", "--json"]).error(5, "database-elsewhere");
    assert!(e.hint.unwrap_or_default().contains("--db-backed-up-elsewhere"));
    assert!(env.snapshot_ids().is_empty());
    let id = env.run(&["backup", "--db-backed-up-elsewhere", "--json"]).ok().json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.manifest(&id)["bitwarden"]["database"], "external");
    // A Docker volume, and no Docker daemon to name it: nothing is taken.
    env.set_config(
        config.replace("database_docker_volume: false", "database_docker_volume: true").as_bytes(),
    );
    let no_daemon =
        |args: &[&str]| env.bwguard(args).env("DOCKER_HOST", "unix:///nonexistent/docker.sock").run();
    let e = no_daemon(&["backup", "--json"]).error(5, "docker-unreachable");
    assert!(e.hint.unwrap_or_default().contains("--db-backed-up-elsewhere"));
    assert_eq!(env.snapshot_ids(), std::slice::from_ref(&id));
    let r = no_daemon(&["backup", "--db-backed-up-elsewhere", "--json"]);
    let only_settings = r.ok().json()["id"].as_str().unwrap().to_string();
    let m = env.manifest(&only_settings);
    assert_eq!(m["bitwarden"]["database"], "docker-volume");
    assert!(m["parts"].as_array().unwrap().iter().all(|p| p["path"] != "docker-volume/mssql_data"));
}

#[test]
fn rollback_without_an_id_restores_the_newest_whole_cold_backup_not_the_state_a_rollback_left() {
    let env = TestEnv::new();
    let good = env.backup();
    let env_file = env.bwdata().join("env/global.override.env");
    let original = fs::read(&env_file).unwrap();
    fs::write(&env_file, b"globalSettings__broken=true\n").unwrap();
    let r = env.run(&["rollback", "--yes"]);
    r.ok().says(&format!("No id given: restoring {good}"));
    assert_eq!(fs::read(&env_file).unwrap(), original);
    let after_first = env.tree();
    // The newest snapshot is now the state the first rollback left: a
    // second rollback without an id must not undo the first.
    assert_eq!(env.snapshot_ids().len(), 2);
    env.run(&["rollback", "--yes"]).ok().says(&format!("restoring {good}"));
    assert_eq!(env.tree(), after_first);
    // `latest` and a unique prefix name snapshots; an ambiguous prefix does not.
    let newest = env.snapshot_ids()[0].clone();
    assert_eq!(env.run(&["verify", "latest", "--json"]).ok().json()["snapshots"][0]["id"], newest.as_str());
    let ids = env.snapshot_ids();
    env.run(&["pin", &good[..8]]).code(2).says("give more of the id");
    let unique =
        (9..good.len()).map(|k| &good[..k]).find(|p| ids.iter().filter(|i| i.starts_with(p)).count() == 1);
    if let Some(prefix) = unique {
        env.run(&["unpin", prefix]).ok();
        assert_eq!(env.manifest(&good)["pinned"], false);
        env.run(&["pin", prefix]).ok();
        assert_eq!(env.manifest(&good)["pinned"], true);
    }
}

#[test]
fn a_rollback_says_what_a_snapshot_is_and_a_declined_one_exits_1() {
    let env = TestEnv::new();
    let id = env.backup();
    let r = env.run(&["rollback", &id, "--only", "config", "--dry-run"]);
    r.ok().says("restoring config.yml only: 1 entry,");
    let path = env.snap_dir(&id).join("manifest.json");
    let mut m = env.manifest(&id);
    m["consistency"] = "live".into();
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    env.run(&["rollback", &id, "--dry-run"]).ok().says("is a live copy");
    // Without an id, a live snapshot is never chosen.
    env.run(&["rollback", "--dry-run", "--json"]).error(5, "no-full-snapshot");
    // Answered no at the terminal: exit 1, nothing changed, so that
    // `bwguard rollback && ./bitwarden.sh start` starts nothing.
    let before = (env.tree(), env.store_tree());
    let r = env.bwguard(&["rollback", &id]).on_terminal().stdin("n\n").run();
    r.code(1);
    assert!(r.stdout.contains("not confirmed"), "{}", r.stdout);
    assert_eq!((env.tree(), env.store_tree()), before);
    let r = env.bwguard(&["forget", &id]).on_terminal().stdin("n\n").run();
    r.code(1);
    assert!(env.snap_dir(&id).exists());
}

#[test]
fn the_install_directory_given_as_bwdata_is_refused_naming_the_data_directory() {
    let env = TestEnv::new();
    let before = env.tree();
    let r = env.bwguard(&[OsStr::new("--bwdata"), env.install.as_os_str(), OsStr::new("backup")]).run();
    r.code(2).says(&format!("pass --bwdata {}", env.bwdata().display()));
    assert_eq!(env.tree(), before);
    let parent = env.install.parent().unwrap();
    assert!(!parent.join("bwguard-snapshots").exists(), "no store beside the install directory");
}

#[test]
fn stdout_carries_only_the_result_a_script_wants() {
    let env = TestEnv::new();
    let r = env.run(&["backup"]);
    r.ok();
    let id = env.snapshot_ids()[0].clone();
    assert_eq!(r.stdout, format!("{id}\n"), "ID=$(bwguard backup) is the id");
    assert!(r.stderr.contains("written and read back"), "the narration is on stderr: {}", r.stderr);
    assert!(r.stderr.lines().any(|l| l.starts_with("done in ") && l.ends_with(" s")), "{}", r.stderr);
    // Global options have a heading of their own in every command's help.
    let help = env.run(&["backup", "--help"]);
    let (own, global) = help.stdout.split_once("Global options:").expect("a Global options heading");
    assert!(own.contains("--pause-db") && !own.contains("--bwdata") && global.contains("--bwdata"));
    // Quiet keeps the result and drops the narration.
    let r = env.run(&["backup", "-q"]);
    r.ok();
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(!r.stderr.contains("written and read back"));
}

#[test]
fn status_and_list_say_what_pinned_snapshots_hold_and_how_to_release_them() {
    let env = TestEnv::new();
    env.backup();
    let pinned = env.run(&["enable-scim", "--json"]).ok().json()["snapshot"].as_str().unwrap().to_string();
    let size = env.manifest(&pinned)["archive"]["size"].as_u64().unwrap();
    let doc = env.run(&["status", "--json"]).ok().json();
    assert_eq!((doc["pinned"]["count"].as_u64(), doc["pinned"]["bytes"].as_u64()), (Some(1), Some(size)));
    env.run(&["status"]).ok().stdout_has("pinned       1 snapshot").stdout_has("`bwguard unpin ID` releases");
    let r = env.run(&["list"]);
    r.ok();
    assert!(r.stderr.contains("2 snapshots") && r.stderr.contains("1 pinned"), "{}", r.stderr);
    env.run(&["unpin", &pinned]).ok();
    assert_eq!(env.run(&["status", "--json"]).ok().json()["pinned"]["count"], 0);
}

#[test]
fn log_lines_up_its_columns() {
    let env = TestEnv::new();
    let id = env.backup();
    let step = |name: &str, ok: bool, secs: f64, code: Option<i32>| {
        serde_json::json!({"name": name, "started": "2026-12-02T03:00:00Z", "seconds": secs,
            "exit_code": code, "ok": ok, "output": "said something"})
    };
    let journal = serde_json::json!({
        "change": "enable_scim: true", "snapshot": id, "outcome": "failed",
        "steps": [step("./bitwarden.sh stop", true, 2.5, Some(0)), step("check: database stopped", true, 0.1, None),
                  step("./bitwarden.sh rebuild", false, 123.4, Some(134))],
    });
    fs::write(env.snap_dir(&id).join("apply-journal.json"), serde_json::to_vec(&journal).unwrap()).unwrap();
    let r = env.run(&["log", &id]);
    r.ok();
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    let at = |needle: &str| rows.iter().map(|l| l.find(needle)).collect::<Vec<_>>();
    let steps: Vec<usize> = ["STEP", "./bitwarden.sh stop", "check: database", "./bitwarden.sh rebuild"]
        .iter()
        .zip(&rows)
        .map(|(n, l)| l.find(n).unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] == w[1]), "the step names line up:\n{}", r.stdout);
    assert!(at("FAILED")[3].is_some() && rows[3].contains("exit 134"), "{}", r.stdout);
}

/// What a terminal shows, escape sequences left out, one entry per line
/// or redraw (`\r`).
fn screen_lines(out: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.next_if_eq(&'[').is_some() {
            while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            continue;
        }
        plain.push(c);
    }
    plain.split(['\r', '\n']).map(str::to_string).collect()
}

#[test]
fn the_progress_bar_and_list_fit_80_columns() {
    let env = TestEnv::with(&bwguard::sample::SampleOptions { vault_mb: 120, ..Default::default() });
    let r = env.bwguard(&["backup"]).on_terminal_cols(80).run();
    r.ok();
    let lines = screen_lines(&r.stdout);
    let bars: Vec<&String> = lines.iter().filter(|l| l.contains("] ") && l.contains('[')).collect();
    assert!(!bars.is_empty(), "no progress drawn:\n{}", r.stdout);
    assert!(bars.iter().all(|l| l.chars().count() <= 80), "{bars:#?}");
    let id = env.snapshot_ids()[0].clone();
    env.run(&["rollback", &id, "--only", "config", "--yes"]).ok();
    let r = env.bwguard(&["list"]).on_terminal_cols(80).run();
    r.ok();
    let rows: Vec<String> = screen_lines(&r.stdout)
        .into_iter()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) || l.starts_with("ID"))
        .collect();
    assert!(rows.len() >= 3 && rows.iter().all(|l| l.chars().count() <= 80), "{rows:#?}");
    assert!(rows.iter().any(|l| l.contains("before rollback to") && l.contains('…')), "{rows:#?}");
    // status: every line that names no path of this machine fits.
    let r = env.bwguard(&["status"]).on_terminal_cols(80).run();
    r.ok();
    let tmp = env.dir.path().display().to_string();
    let long: Vec<String> =
        screen_lines(&r.stdout).into_iter().filter(|l| !l.contains(&tmp) && l.chars().count() > 80).collect();
    assert!(long.is_empty(), "{long:#?}");
    // Wide enough, nothing is cut.
    let r = env.bwguard(&["list"]).on_terminal_cols(200).run();
    assert!(
        r.stdout.contains("VERSION") && r.stdout.contains(&format!("before rollback to {id}")),
        "{}",
        r.stdout
    );
}

#[test]
fn diff_names_every_file_that_changed_not_only_config_yml() {
    let env = TestEnv::new();
    let id = env.backup();
    let same = env.run(&["diff", &id, "--json"]).ok().json();
    assert_eq!(same["files"], serde_json::json!([]), "{same}");
    // An upgrade rewrote a database file, a file appeared, one went, a
    // mode changed, and config.yml is untouched.
    let data = env.bwdata();
    let mdf = data.join("mssql/data/vault.mdf");
    let len = fs::metadata(&mdf).unwrap().len();
    fs::write(&mdf, vec![1u8; len as usize + 10]).unwrap();
    // (Times are kept to the second: a rewrite within the backup's second
    // is dated earlier.)
    assert!(Command::new("touch").args(["-d", "2026-01-01 00:00:00"]).arg(&mdf).status().unwrap().success());
    fs::write(data.join("env/extra.env"), b"x=1\n").unwrap();
    fs::remove_file(data.join("mssql/backups/vault_FULL_LATESTLN.BAK")).unwrap();
    let uid = data.join("env/uid.env");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&uid, fs::Permissions::from_mode(0o640)).unwrap();
    let doc = env.run(&["diff", &id, "--json"]).ok().json();
    assert_eq!(doc["identical"], true, "config.yml did not change");
    let files: Vec<(String, String, String)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("path"), s("change"), s("detail"))
        })
        .collect();
    let find = |p: &str| files.iter().find(|f| f.0 == p).unwrap_or_else(|| panic!("{p} not in {files:?}"));
    let vault = find("bwdata/mssql/data/vault.mdf");
    assert!(vault.1 == "changed" && vault.2.contains("size") && vault.2.contains("modified"), "{vault:?}");
    assert_eq!(find("bwdata/env/extra.env").1, "added");
    assert_eq!(find("bwdata/mssql/backups/vault_FULL_LATESTLN.BAK").1, "removed");
    assert!(find("bwdata/env/uid.env").2.contains("-> 0640"));
    assert_eq!(files.len(), 4, "only what changed: {files:?}");
    // For a human: the same, one line each, after the config.yml verdict.
    let r = env.run(&["diff", &id]);
    r.ok().stdout_has("config.yml is the same").stdout_has("added    bwdata/env/extra.env");
    // Nothing was written anywhere.
    let store = env.store_tree();
    env.run(&["diff", &id]).ok();
    assert_eq!(env.store_tree(), store);
}

#[test]
fn quiet_and_verbose_change_what_backup_and_status_say() {
    let env = TestEnv::new();
    let quiet = env.run(&["backup", "-q"]);
    quiet.ok();
    let normal = env.run(&["backup"]);
    normal.ok();
    let verbose = env.run(&["backup", "-v"]);
    verbose.ok();
    // The id alone on stdout, whatever the verbosity.
    for r in [&quiet, &normal, &verbose] {
        assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    }
    assert!(!quiet.stderr.contains("Taking a snapshot") && !quiet.stderr.contains("written and read back"));
    assert!(normal.stderr.contains("written and read back") && !normal.stderr.contains("bwdata/mssql:"));
    // -v: each part with its files and bytes, the reading speed, the archive's digest.
    assert!(
        verbose.stderr.contains("  bwdata/mssql: ") && verbose.stderr.contains("MiB/s"),
        "{}",
        verbose.stderr
    );
    assert!(verbose.stderr.contains("data.tar.gz SHA-256 "), "{}", verbose.stderr);

    let quiet = env.run(&["status", "-q"]);
    quiet.ok();
    assert_eq!(quiet.stdout.lines().count(), 1, "{}", quiet.stdout);
    assert!(
        quiet.stdout.contains("3 snapshots, newest ") && quiet.stdout.contains("enable_scim false"),
        "{}",
        quiet.stdout
    );
    let normal = env.run(&["status"]).ok().stdout.clone();
    let verbose = env.run(&["status", "-v"]);
    verbose.ok();
    assert!(
        !normal.contains("image      api") && verbose.stderr.contains("image      api"),
        "{}",
        verbose.stderr
    );
}

#[test]
fn a_closed_pipe_on_stdout_is_no_panic() {
    let env = TestEnv::new();
    let id = env.backup();
    for (args, code) in [
        (vec!["verify", "nosuch", "--json"], 2),
        (vec!["list", "--json"], 0),
        (vec!["verify", id.as_str()], 0),
        (vec!["status", "--json"], 0),
    ] {
        // The reader is gone before bwguard writes a byte (`| head -0`).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_bwguard"))
            .arg("--store")
            .arg(&env.store)
            .args(&args)
            .current_dir(&env.install)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
