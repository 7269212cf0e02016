//! `backup --pause-db` on a running stand-in stack (real dockerd, the
//! images of `docker_bed`): only the database container stops, the
//! snapshot is cold and verified, the database always comes back (after a
//! failure, a signal, SIGKILL at any instant), and nothing half-made is
//! kept. The stand-in engine holds its files open while it runs and closes
//! them on `docker stop`, as SQL Server does; told to (a file in its log
//! directory), it fails to start.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bwguard::report::{BackupReport, ResumeDbReport, StatusReport};

use crate::docker_bed::{Owner, Site, text};
use crate::support::{Run, assert_same_tree};

const DB: &str = "bitwarden-mssql";

/// When Docker last started container `name`.
fn started_at(site: &Site, name: &str) -> String {
    let out = site.bed.docker(&["inspect", "--format", "{{.State.StartedAt}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The start times of every container but the database.
fn others(site: &Site) -> Vec<(String, String)> {
    site.containers().keys().filter(|c| *c != DB).map(|c| (c.clone(), started_at(site, c))).collect()
}

fn db_state(site: &Site) -> Option<String> {
    site.containers().get(DB).cloned()
}

fn journal(site: &Site) -> PathBuf {
    site.env.store.join(bwguard::procedure::pause::JOURNAL)
}

/// Asserts that the database runs and its engine holds the files again.
#[track_caller]
fn assert_db_back(site: &Site) {
    let t = Instant::now();
    loop {
        let status: StatusReport = site.bwguard(&["status", "--json"]).run().ok().parse();
        if db_state(site).as_deref() == Some("running") && status.database_files_open {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the database is not back: {:?}", site.containers());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every listed snapshot verifies deeply, and none is incomplete.
#[track_caller]
fn assert_store_sound(site: &Site) {
    site.bwguard(&["verify", "--all", "--deep"]).run().ok();
    let status: StatusReport = site.bwguard(&["status", "--json"]).run().ok().parse();
    assert!(status.incomplete_snapshots.is_empty(), "{:?}", status.incomplete_snapshots);
}

/// A file of `mib` MiB of incompressible bytes in the default scope, so
/// that a snapshot takes a while.
fn bulk(site: &Site, mib: usize) {
    let path = site.data().join("mssql/backups/bulk.BAK");
    let mut f = fs::File::create(&path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
}

#[test]
fn a_paused_backup_of_a_running_stack_is_cold_and_only_the_database_stopped() {
    let Some(site) = Site::new(Owner::User) else { return };
    let before = others(&site);
    let db_before = started_at(&site, DB);
    let r = site.bwguard(&["backup", "--pause-db", "--json"]).run();
    r.ok();
    let report: BackupReport = r.parse();
    assert_eq!(report.snapshot.consistency, "cold");
    let pause = report.snapshot.database_pause.clone().expect("the pause is recorded");
    assert_eq!(pause.container, DB);
    let down = pause.downtime_seconds.unwrap();
    assert!(down > 0.0 && down < 60.0, "{down}");
    assert!(pause.started_at.unwrap() > pause.stopped_at);
    // The database was restarted; nothing else was.
    assert_ne!(started_at(&site, DB), db_before);
    assert_eq!(others(&site), before);
    assert_db_back(&site);
    site.assert_running();
    assert!(!journal(&site).exists());
    // The manifest keeps it; list and status show it.
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(site.env.snap_dir(&report.snapshot.id).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["database_pause"]["container"], DB);
    assert!(m["read_seconds"].as_f64().is_some());
    site.bwguard(&["list"]).run().ok().stdout_has("cold, db down");
    site.bwguard(&["status"]).run().ok().says("db down");
    let human = site.bwguard(&["backup", "--pause-db"]).run();
    human.ok().says("the database was down");
    assert_store_sound(&site);
}

#[test]
fn a_database_stopped_before_the_run_stays_stopped() {
    let Some(site) = Site::new(Owner::Root) else { return };
    assert!(site.bed.docker(&["stop", DB]).status.success());
    let before = others(&site);
    let r = site.bwguard(&["backup", "--pause-db", "--json"]).run();
    r.ok();
    let report: BackupReport = r.parse();
    assert_eq!(report.snapshot.consistency, "cold");
    assert_eq!(report.snapshot.database_pause, None);
    assert_eq!(db_state(&site).as_deref(), Some("exited"), "bwguard started a database it did not stop");
    assert_eq!(others(&site), before);
    // And with Bitwarden stopped altogether (no container at all).
    let out = site.script("stop");
    assert!(out.status.success(), "{}", text(&out));
    site.bwguard(&["backup", "--pause-db"]).run().ok().says("nothing to pause");
    assert!(site.containers().is_empty(), "{:?}", site.containers());
}

#[test]
fn sigkill_at_any_instant_the_next_run_or_resume_db_brings_the_database_back() {
    let Some(site) = Site::new(Owner::User) else { return };
    let kills: usize = std::env::var("BWGUARD_PAUSE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    // The scheduled unit's ExecStopPost=, run as systemd would after a kill.
    let units = site.bwguard(&["schedule", "print", "--json"]).run().ok().json();
    let service = units["service"].as_str().unwrap().to_string();
    assert!(service.contains("--pause-db"), "the nightly job pauses the database by default:\n{service}");
    let exec_stop_post = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStopPost="))
        .expect("the unit starts the database after every run")
        .to_string();
    // How long a whole paused backup takes here, to spread the kills over it.
    let t = Instant::now();
    site.bwguard(&["backup", "--pause-db"]).run().ok();
    let whole = t.elapsed();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut during_pause = 0;
    for i in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = whole.mul_f64((seed % 1000) as f64 / 1000.0);
        let mut child = site.bwguard(&["backup", "--pause-db"]).spawn();
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();
        if journal(&site).exists() {
            during_pause += 1;
        }
        // Whoever comes next ends the pause: the unit's ExecStopPost, a
        // status, or the next backup.
        match i % 3 {
            0 => {
                let out = site.shell(&exec_stop_post);
                assert!(out.status.success(), "{exec_stop_post}: {}", text(&out));
            }
            1 => {
                site.bwguard(&["status"]).run().ok();
            }
            _ => {
                site.bwguard(&["backup", "--pause-db"]).run().ok();
            }
        }
        assert!(!journal(&site).exists(), "kill {i} at {at:?}: the pause entry is left");
        assert_db_back(&site);
    }
    assert!(during_pause > 0, "no kill landed while the database was stopped");
    site.assert_running();
    assert_store_sound(&site);
    eprintln!("{kills} kills, {during_pause} while the database was stopped");
}

/// Starts a paused backup of a big install and waits until the database
/// is stopped.
fn start_paused_and_wait(site: &Site, extra: &[&str]) -> std::process::Child {
    let mut args = vec!["backup", "--pause-db", "--json"];
    args.extend(extra);
    let child = site.bwguard(&args).spawn_piped();
    let t = Instant::now();
    while db_state(site).as_deref() == Some("running") {
        assert!(t.elapsed() < Duration::from_secs(30), "the database was never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[test]
fn sigterm_sigint_and_sighup_mid_snapshot_restart_the_database_and_keep_nothing() {
    let Some(site) = Site::new(Owner::User) else { return };
    bulk(&site, 300);
    let store = site.env.store_tree();
    for signal in ["TERM", "INT", "HUP"] {
        let child = start_paused_and_wait(&site, &[]);
        let pid = child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        r.error(1, "interrupted");
        r.says("no snapshot was kept");
        assert_db_back(&site);
        assert!(!journal(&site).exists(), "SIG{signal}: the pause entry is left");
        assert_same_tree(&store, &site.env.store_tree());
    }
    // The lock was released.
    site.bwguard(&["backup", "--pause-db"]).run().ok();
    site.assert_running();
}

#[test]
fn a_database_that_does_not_start_again_is_reported_down_and_retried() {
    let Some(site) = Site::new(Owner::Root) else { return };
    let fault = site.data().join("logs/mssql/fail-start");
    fs::write(&fault, b"").unwrap();
    let r = site.bwguard(&["backup", "--pause-db", "--json"]).run();
    let err = r.error(1, "database-down");
    assert!(err.message.contains("THE VAULT IS DOWN"), "{}", err.message);
    assert!(err.message.contains("was taken and read back"), "the snapshot is kept: {}", err.message);
    assert!(err.hint.unwrap().contains("docker start bitwarden-mssql"));
    assert!(journal(&site).exists(), "the pause entry must stay until the database is back");
    // Every later run tries again and says so, loudly, while it cannot.
    site.bwguard(&["backup", "--json"]).run().error(1, "database-down");
    site.bwguard(&["status"]).run().ok().says("database paused");
    // Fixed: the next resume-db (or any run) ends the pause.
    fs::remove_file(&fault).unwrap();
    let r = site.bwguard(&["resume-db", "--json"]).run();
    r.ok();
    assert!(r.parse::<ResumeDbReport>().resumed.is_some());
    assert!(!journal(&site).exists());
    assert_db_back(&site);
    site.assert_running();
    site.bwguard(&["resume-db"]).run().ok().says("nothing to do");
}

#[test]
fn max_downtime_refuses_before_stopping_and_abandons_a_snapshot_that_overruns() {
    let Some(site) = Site::new(Owner::User) else { return };
    bulk(&site, 600);
    let db_before = started_at(&site, DB);
    let store = site.env.store_tree();
    // No earlier snapshot was timed: 600 MiB at the assumed 100 MiB/s is
    // more than a second.
    let err = site
        .bwguard(&["backup", "--pause-db", "--max-downtime", "1s", "--json"])
        .run()
        .error(5, "downtime-too-long");
    assert!(err.message.contains("nothing was stopped"), "{}", err.message);
    assert_eq!(started_at(&site, DB), db_before, "the database was stopped");
    assert_same_tree(&store, &site.env.store_tree());
    // An earlier snapshot that was read very fast makes the estimate
    // small; the snapshot then overruns the limit and is abandoned.
    let id =
        site.bwguard(&["backup", "--live", "--json"]).run().ok().json()["id"].as_str().unwrap().to_string();
    let path = site.env.snap_dir(&id).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    m["read_seconds"] = serde_json::json!(0.001);
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let store = site.env.store_tree();
    let err = site
        .bwguard(&["backup", "--pause-db", "--max-downtime", "1s", "--json"])
        .run()
        .error(1, "downtime-exceeded");
    assert!(err.message.contains("nothing was kept"), "{}", err.message);
    assert_same_tree(&store, &site.env.store_tree());
    assert_db_back(&site);
    assert!(!journal(&site).exists());
    site.assert_running();
}

#[test]
fn two_scheduled_paused_backups_at_once_take_turns_and_the_database_comes_back() {
    let Some(site) = Site::new(Owner::User) else { return };
    bulk(&site, 200);
    let spawn = || site.bwguard(&["backup", "--pause-db", "--scheduled", "--json"]).spawn_piped();
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
    // One ran; the other found the store busy (exit 4) and touched nothing,
    // or came after it and ran too.
    assert!(
        codes.contains(&0),
        "{codes:?}: {}",
        outs.iter().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).collect::<String>()
    );
    assert!(codes.iter().all(|c| *c == 0 || *c == 4), "{codes:?}");
    assert_db_back(&site);
    assert!(!journal(&site).exists());
    site.assert_running();
    assert_store_sound(&site);
}

#[test]
fn a_data_rollback_with_the_database_paused_leaves_the_rest_running() {
    let Some(site) = Site::new(Owner::User) else { return };
    let id = site.bwguard(&["backup", "--pause-db", "--json"]).run().ok().json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = site.data().join("core/aspnet-dataprotection");
    let key = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let kept = fs::read(&key).unwrap();
    fs::write(&key, b"a key that was rotated since").unwrap();
    site.bwguard(&["rollback", &id, "--pause-db", "--yes"]).run().code(2).says("--only data");
    let before = others(&site);
    let r = site.bwguard(&["rollback", &id, "--only", "data", "--pause-db", "--yes", "--json"]).run();
    r.ok();
    let report: bwguard::report::RollbackReport = r.parse();
    assert!(report.rolled_back);
    assert!(report.database_pause.is_some_and(|p| p.downtime_seconds.is_some()));
    assert!(report.next_steps[0].ends_with("./bitwarden.sh restart"), "{:?}", report.next_steps);
    assert_eq!(fs::read(&key).unwrap(), kept);
    assert_eq!(others(&site), before, "only the database was stopped");
    assert_db_back(&site);
    assert!(!journal(&site).exists());
    site.assert_running();
}

/// The mount point of the volume the database container mounts.
fn volume_of(site: &Site) -> PathBuf {
    let format =
        "{{range .Mounts}}{{if eq .Destination \"/var/opt/mssql/data\"}}{{.Type}} {{.Source}}{{end}}{{end}}";
    let out = site.bed.docker(&["inspect", "--format", format, DB]);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let source = said.strip_prefix("volume ").unwrap_or_else(|| panic!("not a volume mount: {said:?}"));
    PathBuf::from(source)
}

/// The SHA-256 of each file in `dir`, by its path below `dir`.
fn digests(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            (rel, bwguard::engine::manifest::hex(&sha2::Sha256::digest(fs::read(e.path()).unwrap())))
        })
        .collect()
}

#[test]
fn a_docker_volume_install_is_snapshotted_with_its_volume_and_rolled_back_into_it() {
    let Some(site) = Site::new(Owner::User) else { return };
    // The admin moves the database into a Docker volume.
    assert!(site.script("stop").status.success());
    let config = fs::read_to_string(site.data().join("config.yml")).unwrap();
    fs::write(
        site.data().join("config.yml"),
        config.replace("database_docker_volume: false", "database_docker_volume: true"),
    )
    .unwrap();
    for arg in ["rebuild", "start"] {
        let out = site.script(arg);
        assert!(out.status.success(), "./bitwarden.sh {arg}: {}", text(&out));
    }
    site.wait_running();
    let volume = volume_of(&site);
    assert!(volume.ends_with("_data") && volume.join("vault.mdf").is_file(), "{}", volume.display());
    // Without Docker's volume the backup would hold no database; now it
    // needs no --db-backed-up-elsewhere.
    let before = others(&site);
    let r = site.bwguard(&["backup", "--pause-db", "--json"]).run();
    r.ok();
    let backup: BackupReport = r.parse();
    let id = backup.snapshot.id.clone();
    assert_eq!(backup.snapshot.consistency, "cold");
    assert!(backup.snapshot.database_pause.as_ref().is_some_and(|p| p.downtime_seconds.is_some()));
    assert_eq!(others(&site), before, "only the database was stopped");
    assert_db_back(&site);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(site.env.snap_dir(&id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["bitwarden"]["database"], "docker-volume");
    let part = manifest["parts"].as_array().unwrap().iter().find(|p| p["path"] == "docker-volume/mssql_data");
    assert!(part.is_some_and(|p| p["present"] == true), "{}", manifest["parts"]);
    // What the volume held, as the snapshot recorded it (the engine's log
    // keeps changing after the start).
    let recorded: std::collections::BTreeMap<String, String> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file")
        .filter_map(|e| {
            let rel = e["path"].as_str()?.strip_prefix("docker-volume/mssql_data/")?;
            Some((rel.to_string(), e["sha256"].as_str()?.to_string()))
        })
        .collect();
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        ["master.mdf", "mastlog.ldf", "vault.mdf", "vault_log.ldf"]
    );
    assert_eq!(recorded["vault.mdf"], digests(&volume)["vault.mdf"]);
    site.bwguard(&["verify", &id, "--deep"]).run().ok();

    // The vault changes in the volume, and a file is added.
    site.bed.docker(&["stop", DB]);
    let kept_meta = fs::metadata(volume.join("vault.mdf")).unwrap();
    fs::write(volume.join("vault.mdf"), b"a vault that went wrong").unwrap();
    fs::write(volume.join("stray.ndf"), b"added since").unwrap();
    site.bed.docker(&["start", DB]);
    assert_db_back(&site);
    let r = site.bwguard(&["rollback", &id, "--only", "data", "--pause-db", "--yes", "--json"]).run();
    r.ok();
    let report: bwguard::report::RollbackReport = r.parse();
    assert!(report.parts.iter().any(|p| p == "docker-volume/mssql_data"), "{:?}", report.parts);
    assert_db_back(&site);
    site.assert_running();
    let now = digests(&volume);
    assert!(!now.contains_key("stray.ndf"), "the added file is gone");
    for f in ["vault.mdf", "master.mdf", "mastlog.ldf"] {
        assert_eq!(now[f], recorded[f], "{f} is the snapshot's again");
    }
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(volume.join("vault.mdf")).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode()), (kept_meta.uid(), kept_meta.gid(), kept_meta.mode()));
    assert!(fs::read_dir(volume.parent().unwrap()).unwrap().all(|e| e.unwrap().file_name() == "_data"));
    // The state the rollback replaced is kept, the broken vault with it.
    let before_id = report.before.clone().unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(site.env.snap_dir(&before_id).join("manifest.json")).unwrap())
            .unwrap();
    let stray = saved["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "docker-volume/mssql_data/stray.ndf");
    assert!(stray, "the snapshot before the rollback holds the volume as it was");
    assert_store_sound(&site);
    // Bitwarden stopped: compose removed the containers, not the volume,
    // which Docker still names by the labels compose gave it.
    assert!(site.script("stop").status.success());
    assert!(db_state(&site).is_none());
    let r = site.bwguard(&["backup", "--json"]).run();
    r.ok();
    let cold: BackupReport = r.parse();
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(site.env.snap_dir(&cold.snapshot.id).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let vault =
        m["entries"].as_array().unwrap().iter().find(|e| e["path"] == "docker-volume/mssql_data/vault.mdf");
    assert_eq!(vault.unwrap()["sha256"], recorded["vault.mdf"].as_str());
}
