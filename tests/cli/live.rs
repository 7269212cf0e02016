//! Live database files (safety rule 5) and concurrent runs (rule 6).
//!
//! SQL Server cannot run here, so a test process stands in for it: it holds
//! `bwdata/mssql/data/vault.mdf` open (and, in one test, keeps appending to
//! a file) the way the database engine does.

use std::fs::{self, File};
use std::process::{Child, Command};
use std::time::Duration;

use crate::support::{TestEnv, assert_same_tree};

/// A stand-in for SQL Server: a process holding `path` open until dropped.
struct Holder(Child);

impl Holder {
    fn open(path: &std::path::Path) -> Self {
        Holder(Command::new("sleep").arg("120").stdin(File::open(path).unwrap()).spawn().unwrap())
    }

    /// A process that keeps appending to `path` while it runs.
    fn appending(path: &std::path::Path) -> Self {
        let script = format!("exec >> '{}'; while :; do printf 'page'; done", path.display());
        let child = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
        // Let it open the file before the test goes on.
        std::thread::sleep(Duration::from_millis(100));
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn open_database_files_are_refused_unless_live_and_then_recorded_live() {
    let env = TestEnv::new();
    let id = env.backup();
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let holder = Holder::open(&vault);
    let tree = env.tree();
    let config = env.config();

    let r = env.run(&["backup"]);
    r.code(5).says("sleep (pid").says("vault.mdf").says("./bitwarden.sh stop").says("--live");
    let r = env.run(&["enable-scim", "--json"]);
    r.code(5);
    assert_eq!(r.json()["error"]["code"], 5);
    assert_eq!(env.config(), config, "refused edit changed config.yml");
    assert_eq!(env.snapshot_ids(), vec![id.clone()], "a refused run left a snapshot");

    // A rollback never replaces files under a running database.
    env.run(&["rollback", &id, "--yes"]).code(5).says("./bitwarden.sh stop");
    assert_same_tree(&tree, &env.tree());

    // --live accepts a crash-consistent copy and says so everywhere.
    let r = env.run(&["backup", "--live", "--json"]);
    r.ok().says("live");
    let live_id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["consistency"], "live");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(env.snap_dir(&live_id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["consistency"], "live");
    let list = env.run(&["list"]);
    assert!(list.stdout.lines().any(|l| l.starts_with(&live_id) && l.contains("live")), "{}", list.stdout);
    let list = env.run(&["list", "--json"]).json();
    assert_eq!(list["snapshots"][0]["consistency"], "live");
    let status = env.run(&["status", "--json"]).json();
    assert_eq!(status["database_files_open"], true);
    env.run(&["enable-scim", "--live"]).ok();

    drop(holder);
    let status = env.run(&["status", "--json"]).json();
    assert_eq!(status["database_files_open"], false);
    env.run(&["rollback", &id, "--yes"]).ok();
}

#[test]
fn a_file_changing_while_read_fails_a_backup_or_is_reported_by_a_live_one() {
    let env = TestEnv::new();
    let log = env.bwdata().join("mssql/data/vault_log.ldf");
    let _writer = Holder::appending(&log);
    // Without --live: refused because it is open (5), or failed because it
    // changed (1); either way no snapshot is left.
    let r = env.run(&["backup"]);
    assert!(r.code == 5 || r.code == 1, "{r:?}");
    assert!(env.snapshot_ids().is_empty());
    // With --live the archive is still self-consistent and the changed
    // file is named in the manifest.
    let r = env.run(&["backup", "--live", "--json"]);
    r.ok();
    let doc = r.json();
    let changed: Vec<&str> =
        doc["changed_while_reading"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(changed.contains(&"bwdata/mssql/data/vault_log.ldf"), "{doc}");
    env.run(&["verify", "--deep"]).ok();
}

#[test]
fn concurrent_runs_have_one_writer_at_a_time_and_corrupt_nothing() {
    let env = TestEnv::new();
    env.backup();
    let mut children = Vec::new();
    for i in 0..12 {
        let args: &[&str] = match i % 3 {
            0 => &["backup"],
            1 => &["enable-scim"],
            _ => &["set", "http_port", "8080"],
        };
        let child = env.bwguard(args).spawn_piped();
        children.push((args, child));
    }
    let mut ok = 0;
    for (args, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => ok += 1,
            Some(4) => assert!(stderr.contains("pid "), "{args:?}: busy without naming the holder: {stderr}"),
            other => panic!("{args:?} exited {other:?}: {stderr}"),
        }
    }
    assert!(ok >= 1, "nobody got the lock");
    // Each successful writer took exactly one snapshot (those that had
    // nothing to do took none), and every snapshot is whole.
    let ids = env.snapshot_ids();
    assert!(ids.len() > 1 && ids.len() <= ok + 1, "{} snapshots for {ok} successful runs", ids.len());
    env.run(&["verify", "--all", "--deep"]).ok();
    let config = String::from_utf8(env.config()).unwrap();
    assert_eq!(config.matches("\nenable_scim:").count(), 1);
    for e in fs::read_dir(&env.store).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            assert!(e.path().join("manifest.json").exists(), "incomplete {}", e.path().display());
        }
    }
}

#[test]
fn an_unprivileged_run_that_cannot_see_sql_servers_files_still_refuses() {
    // As another user, /proc/PID/fd of a root process cannot be followed;
    // a running `sqlservr` then counts as holding the database.
    use std::os::unix::fs::{PermissionsExt, lchown};
    if !bwguard::files::is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root and setpriv in CI");
        eprintln!("SKIPPED: needs root and setpriv");
        return;
    }
    let env = TestEnv::new();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(&env.store).unwrap();
    for e in walkdir::WalkDir::new(&env.install).into_iter().chain(walkdir::WalkDir::new(&env.store)) {
        lchown(e.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    // A root process named like SQL Server's engine, holding vault.mdf.
    let engine = env.dir.path().join("sqlservr");
    fs::copy("/bin/sleep", &engine).unwrap();
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let mut child = Command::new(&engine).arg("120").stdin(File::open(&vault).unwrap()).spawn().unwrap();
    let r = env.bwguard(&["backup"]).run_as(65534, 65534).run();
    child.kill().unwrap();
    child.wait().unwrap();
    r.code(5).stderr_has("sqlservr (pid");
}
