//! Round trips on a realistic generated install: backup, enable-scim,
//! rollback; the system tools accept the archives; lock; JSON output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{Bwguard, TestEnv, assert_same_tree};

#[test]
fn backup_enable_scim_rollback_restores_every_byte_mode_and_mtime() {
    let env = TestEnv::new();
    let original = env.tree();
    let original_config = env.config();

    let first = env.backup();
    let r = env.run(&["enable-scim", "--json"]);
    r.ok();
    let edited = r.json();
    assert_eq!(edited["changed"], true);
    let before_edit = edited["snapshot"].as_str().unwrap().to_string();
    assert_ne!(before_edit, first);
    let config = String::from_utf8(env.config()).unwrap();
    assert!(config.contains("\nenable_scim: true\n"));
    assert_eq!(
        config.replace("\nenable_scim: true\n", "\nenable_scim: false\n").as_bytes(),
        original_config.as_slice(),
        "exactly one value changed"
    );

    // Something else changes too, as Bitwarden's update would.
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), b"migrated forward").unwrap();
    fs::write(env.bwdata().join("env/new-after-upgrade.env"), b"x=1\n").unwrap();

    env.run(&["rollback", &before_edit, "--yes"]).ok();
    assert_same_tree(&original, &env.tree());
    assert_eq!(env.config(), original_config);

    // The state it replaced is a snapshot of its own, and nothing is left over.
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let list = env.run(&["list", "--json"]).json();
    assert_eq!(list["snapshots"][0]["reason"], format!("before rollback to {before_edit}"));
    for leftover in [".bwguard-staging", "core/.bwguard-staging", "scripts/.bwguard-staging"] {
        assert!(!env.bwdata().join(leftover).exists(), "{leftover} left behind");
    }
    assert!(!env.store.join("rollback-journal.json").exists());
}

#[test]
fn rollback_only_config_leaves_the_data_alone_and_vice_versa() {
    let env = TestEnv::new();
    let original_config = env.config();
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let original_vault = fs::read(&vault).unwrap();
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    fs::write(&vault, b"changed").unwrap();

    env.run(&["rollback", &id, "--only", "config", "--yes"]).ok();
    assert_eq!(env.config(), original_config);
    assert_eq!(fs::read(&vault).unwrap(), b"changed");

    env.run(&["enable-scim"]).ok();
    env.run(&["rollback", &id, "--only", "data", "--yes"]).ok();
    assert_eq!(fs::read(&vault).unwrap(), original_vault);
    assert!(String::from_utf8(env.config()).unwrap().contains("enable_scim: true"));
}

#[test]
fn gnu_tar_and_sha256sum_accept_the_snapshot_for_a_manual_restore() {
    let env = TestEnv::new();
    let original = env.tree();
    let id = env.backup();
    let snap = env.snap_dir(&id);

    let list = Command::new("tar").arg("-tzf").arg(snap.join("data.tar.gz")).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let names = String::from_utf8(list.stdout).unwrap();
    assert_eq!(names.lines().next(), Some("bwdata/config.yml"), "config.yml is the first entry");
    assert!(names.lines().any(|l| l == "bitwarden.sh"));
    assert!(names.lines().any(|l| l == "bwdata/mssql/backups/vault_FULL_LATESTLN.BAK"));

    let check =
        Command::new("sha256sum").arg("-c").arg("data.tar.gz.sha256").current_dir(&snap).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // The README's manual restore, into an empty directory.
    let target = manual_restore(&env, &snap);
    let restored = crate::support::tree_of(&target, true);
    let scope: Vec<_> = original
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("bwdata/logs")
                && !k.starts_with("bwdata/core/attachments")
                && restored.contains_key(*k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &scope {
        // Directory mtimes of the parents of parts are not in the archive.
        if !v.starts_with("dir") {
            assert_eq!(restored.get(k), Some(v), "{k}");
        }
    }
    assert!(restored.contains_key("bwdata/mssql/data/vault.mdf"));
    assert!(!restored.contains_key("bwdata/logs"), "logs are not in the default scope");
}

/// The README's manual restore of the snapshot in `snap` with GNU tar and
/// `sha256sum -c`, into a new directory; returns that directory.
fn manual_restore(env: &TestEnv, snap: &std::path::Path) -> std::path::PathBuf {
    let target = env.dir.path().join("manual");
    fs::create_dir(&target).unwrap();
    let x = Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(snap.join("data.tar.gz"))
        .current_dir(&target)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg(snap.join("SHA256SUMS"))
        .current_dir(&target)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    target
}

#[test]
fn snapshot_files_are_private_whatever_the_umask() {
    let env = TestEnv::new();
    // Run under the most permissive umask: the modes must come from bwguard.
    let r = env.bwguard(&["backup", "--json"]).shell_prefix("umask 000").run();
    let id = r.ok().json()["id"].as_str().unwrap().to_string();
    assert_eq!(fs::metadata(&env.store).unwrap().permissions().mode() & 0o777, 0o700, "the store itself");
    let snap = env.snap_dir(&id);
    assert_eq!(fs::metadata(&snap).unwrap().permissions().mode() & 0o777, 0o700);
    for f in ["data.tar.gz", "SHA256SUMS", "data.tar.gz.sha256", "manifest.json"] {
        assert_eq!(fs::metadata(snap.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
}

#[test]
fn manifest_has_the_keys_scripts_rely_on() {
    let env = TestEnv::new();
    let id = env.backup();
    let m = env.manifest(&id);
    for key in [
        "format",
        "id",
        "created",
        "tool",
        "host",
        "install_dir",
        "data_dir",
        "reason",
        "note",
        "pinned",
        "bitwarden",
        "consistency",
        "compression",
        "archive",
        "entries",
    ] {
        assert!(m.get(key).is_some(), "manifest lacks {key}");
    }
    assert_eq!(m["format"], 1);
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["data_dir"], "bwdata");
    assert_eq!(m["reason"], "manual");
    assert_eq!(m["consistency"], "cold");
    assert_eq!(m["bitwarden"]["core_version"], "2026.8.0");
    assert_eq!(m["bitwarden"]["enable_scim"], false);
    assert_eq!(m["bitwarden"]["database"], "built-in");
    assert_eq!(m["compression"]["format"], "gzip");
    let entries = m["entries"].as_array().unwrap();
    assert_eq!(entries[0]["path"], "bwdata/config.yml");
    let link = entries.iter().find(|e| e["type"] == "symlink").unwrap();
    assert!(link["target"].as_str().unwrap().starts_with("vault_FULL_"));
    let vault = entries.iter().find(|e| e["path"] == "bwdata/mssql/data/vault.mdf").unwrap();
    assert_eq!(vault["mode"], 0o640);
    for k in ["size", "sha256", "uid", "gid", "mtime"] {
        assert!(vault.get(k).is_some(), "entry lacks {k}");
    }
    // Absent parts are recorded, not an error.
    fs::remove_dir_all(env.bwdata().join("identity")).unwrap();
    let id2 = env.backup();
    let m2: serde_json::Value =
        serde_json::from_slice(&fs::read(env.snap_dir(&id2).join("manifest.json")).unwrap()).unwrap();
    let identity = m2["parts"].as_array().unwrap().iter().find(|p| p["path"] == "bwdata/identity").unwrap();
    assert_eq!(identity["present"], false);
}

#[test]
fn rollback_removes_a_part_the_snapshot_did_not_have() {
    let env = TestEnv::new();
    fs::remove_dir_all(env.bwdata().join("identity")).unwrap();
    let original = env.tree();
    let id = env.backup();
    fs::create_dir(env.bwdata().join("identity")).unwrap();
    fs::write(env.bwdata().join("identity/identity.pfx"), b"new").unwrap();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&original, &env.tree());
}

#[test]
fn second_writer_exits_4_at_once_naming_the_holder() {
    let env = TestEnv::new();
    env.backup();
    // Hold the store lock the way a running bwguard does.
    let lock = fs::OpenOptions::new().read(true).write(true).open(env.store.join("lock")).unwrap();
    lock.try_lock().unwrap();
    use std::io::Write;
    (&lock).write_all(b"pid 4242 (backup), started 2026-11-28T00:00:00Z").unwrap();
    let before = env.store_tree();
    let config = env.config();
    for args in [&["backup"][..], &["enable-scim"], &["rollback", "--yes"]] {
        let started = std::time::Instant::now();
        env.run(args).code(4).says("pid 4242").says("backup");
        assert!(started.elapsed().as_secs() < 10, "a busy run must not wait");
    }
    assert_eq!(env.config(), config);
    let mut after = env.store_tree();
    after.remove("lock");
    let mut before = before;
    before.remove("lock");
    assert_eq!(before, after);
    // Read-only commands take no lock.
    env.run(&["list"]).ok();
    env.run(&["verify"]).ok();
    env.run(&["status"]).ok();
    drop(lock);
    env.run(&["backup"]).ok();
}

#[test]
fn every_command_speaks_json_and_uses_the_spec_exit_codes() {
    let env = TestEnv::new();
    // rollback with no snapshot: 5; diff/verify with none: 5.
    let r = env.run(&["rollback", "--yes", "--json"]);
    r.code(5);
    assert_eq!(r.json()["error"]["code"], 5);
    let id = env.backup();
    for args in [
        vec!["list", "--json"],
        vec!["status", "--json"],
        vec!["verify", "--json"],
        vec!["verify", "--deep", "--all", "--json"],
        vec!["diff", "--json"],
        vec!["set", "http_port", "8080", "--json"],
        vec!["disable-scim", "--json"],
        vec!["rollback", &id, "--dry-run", "--json"],
        vec!["rollback", &id, "--yes", "--json"],
    ] {
        let r = env.run(&args);
        r.ok();
        let _ = r.json();
    }
    // Usage errors are 2, also as JSON; an unknown id is 2.
    let r = env.run(&["--json", "frobnicate"]);
    r.code(2);
    assert_eq!(r.json()["error"]["code"], 2);
    let r = env.run(&["verify", "20200101T000000Z", "--json"]);
    r.code(2);
    assert_eq!(r.json()["error"]["kind"], "no-such-snapshot");
    // Without a terminal and without --yes, rollback refuses (5) and changes nothing.
    let tree = env.tree();
    env.run(&["rollback", &id]).code(5).says("--yes");
    assert_same_tree(&tree, &env.tree());
    // diff exits 0 whether or not they differ.
    env.run(&["enable-scim"]).ok();
    let d = env.run(&["diff", &id, "--json"]);
    d.ok();
    assert_eq!(d.json()["identical"], false);
    assert!(d.json()["diff"].as_str().unwrap().contains("+enable_scim: true"));
}

#[test]
fn global_flags_work_after_the_command_and_bwdata_is_found_or_named() {
    let env = TestEnv::new();
    // From elsewhere, --bwdata names the data directory.
    Bwguard::new(&["status", "--json"])
        .arg("--store")
        .arg(&env.store)
        .arg("--bwdata")
        .arg(env.bwdata())
        .current_dir(env.dir.path())
        .run()
        .ok();
    // Without it, a clear error naming both candidates, exit 2.
    let r = Bwguard::new(&["status"]).current_dir(env.dir.path()).run();
    r.code(2).stderr_has("bwdata").stderr_has(".bwdata");
    // A store inside the data directory is refused.
    let inside = env.bwdata().join("snaps");
    Bwguard::new(&["backup"]).arg("--store").arg(&inside).current_dir(&env.install).run().code(5);
    assert!(!inside.exists());
}

#[test]
fn sparse_database_files_round_trip_as_the_same_bytes() {
    use bwguard::sample::SampleOptions;
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::with(&SampleOptions {
        vault_kib: Some(4096),
        backups: 1,
        small_system_dbs: true,
        sparse_tail: true,
        ..Default::default()
    });
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let m = fs::metadata(&vault).unwrap();
    assert!(m.blocks() * 512 < m.len(), "the generated vault.mdf has holes");
    let original = env.tree();
    let id = env.backup();
    env.run(&["verify", "--deep", &id]).ok();
    fs::write(&vault, b"overwritten").unwrap();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&original, &env.tree());
}

#[test]
fn encrypted_attachments_are_stored_and_restore_by_hand_and_by_rollback() {
    use sha2::{Digest, Sha256};
    let env = TestEnv::new();
    // Bitwarden attachments are encrypted: bytes deflate cannot shrink,
    // which bwguard stores rather than compresses (unit-tested in gz.rs).
    let noise: Vec<u8> = (0u64..).flat_map(|i| Sha256::digest(i.to_le_bytes())).take(3 << 20).collect();
    let dir = env.bwdata().join("core/attachments/8f1d6a0e-cipher");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("b2c3d4"), &noise).unwrap();
    let original = env.tree();
    let r = env.run(&["backup", "--with-attachments", "--json"]);
    r.ok();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let snap = env.snap_dir(&id);

    let target = manual_restore(&env, &snap);
    assert!(fs::read(target.join("bwdata/core/attachments/8f1d6a0e-cipher/b2c3d4")).unwrap() == noise);

    env.run(&["verify", "--deep", &id]).ok();
    fs::write(dir.join("b2c3d4"), b"damaged").unwrap();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&original, &env.tree());
}

#[test]
fn backup_reads_database_files_past_the_page_cache() {
    use bwguard::sample::{SampleOptions, generate};
    // Not /tmp: on tmpfs every page is a cached page.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let install = dir.path().join("install");
    let opts =
        SampleOptions { vault_kib: Some(4096), backups: 1, small_system_dbs: true, ..Default::default() };
    generate(&install, &opts).unwrap();
    let env = TestEnv { store: dir.path().join("store"), install, dir };
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let file = fs::File::open(&vault).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    drop(file); // an open database file would make backup refuse (rule 5)
    assert_eq!(cached_pages(&vault), 0, "vault.mdf is still in the page cache");
    let id = env.backup();
    // A stopped server's files stay out of the cache: the backup read them
    // from the device, not through the cache.
    assert_eq!(cached_pages(&vault), 0, "the backup read vault.mdf through the page cache");
    env.run(&["verify", "--deep", &id]).ok();
}

/// Pages of `path` in the page cache, as fincore(1) (util-linux) counts them.
fn cached_pages(path: &std::path::Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--noheadings", "--output", "PAGES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) is needed");
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

#[test]
fn a_link_out_of_the_install_is_refused_before_anything_is_written_naming_it() {
    // An absolute link, and a relative one that climbs above the install:
    // a restore could not make either safely, so no snapshot may hold them.
    for (name, target) in [("abs", "/etc/passwd"), ("up", "../../../../etc/passwd")] {
        let env = TestEnv::new();
        let link = env.bwdata().join("mssql/data").join(name);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let (tree, config) = (env.tree(), env.config());

        let r = env.run(&["backup", "--json"]);
        let e = r.error(5, "link-outside-install");
        assert!(e.message.contains(&link.display().to_string()), "names the link: {}", e.message);
        assert!(e.message.contains(target), "names its target: {}", e.message);
        assert!(env.store_tree().keys().all(|k| k == "lock"), "nothing in the store: {:?}", env.store_tree());

        // A change is refused the same way, before its snapshot.
        let r = env.run(&["enable-scim", "--json"]);
        r.error(5, "link-outside-install");
        assert_eq!(env.config(), config, "config.yml unchanged");
        assert_same_tree(&tree, &env.tree());
        assert!(env.store_tree().keys().all(|k| k == "lock"), "still nothing in the store");
    }
}

#[test]
fn a_deleted_config_yml_is_restored_as_the_dry_run_says() {
    let env = TestEnv::new();
    let tree = env.tree();
    let id = env.backup();
    fs::remove_file(env.config_path()).unwrap();
    let without = env.tree();

    let r = env.run(&["rollback", &id, "--dry-run"]);
    r.ok().says("bwdata/config.yml");
    assert_same_tree(&without, &env.tree());

    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&tree, &env.tree());
    // The state it replaced, config.yml absent, is a snapshot of its own.
    let before: serde_json::Value = serde_json::from_slice(
        &fs::read(env.snap_dir(&env.snapshot_ids()[0]).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(before["reason"].as_str().unwrap().starts_with("before rollback"), "{before}");
    let config =
        before["parts"].as_array().unwrap().iter().find(|p| p["path"] == "bwdata/config.yml").unwrap();
    assert_eq!(config["present"], false, "{before}");
}

#[test]
fn a_new_host_with_an_empty_data_directory_gets_the_whole_install_back() {
    // The old host's store, copied over; the new install is the directory
    // with an empty bwdata/, as the README and docs/offsite.md describe.
    let env = TestEnv::new();
    let id = env.backup();
    // All but what the default scope leaves out (attachments, logs,
    // certificates).
    let mut old = env.tree();
    old.retain(|k, _| {
        !["bwdata/core/attachments", "bwdata/letsencrypt", "bwdata/logs"].iter().any(|p| k.starts_with(p))
    });
    let host = tempfile::tempdir().unwrap();
    let install = host.path().join("install");
    fs::create_dir_all(install.join("bwdata")).unwrap();
    let new = TestEnv { dir: host, install, store: env.store.clone() };

    new.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&old, &new.tree());
    new.run(&["verify", "--all", "--deep"]).ok();
}

#[test]
fn times_before_1970_are_kept_and_gnu_tar_reads_them() {
    let env = TestEnv::new();
    let file = env.bwdata().join("env/uid.env");
    let dir = env.bwdata().join("env");
    for (p, when) in [(&file, "1965-05-05 12:00:00 UTC"), (&dir, "1969-12-31 23:59:59 UTC")] {
        let out = Command::new("touch").args(["-h", "-d", when]).arg(p).output().unwrap();
        assert!(out.status.success(), "touch: {}", String::from_utf8_lossy(&out.stderr));
    }
    use std::os::unix::fs::MetadataExt;
    let mtime = |p: &std::path::Path| fs::symlink_metadata(p).unwrap().mtime();
    assert_eq!((mtime(&file), mtime(&dir)), (-147_009_600, -1), "precondition");
    let tree = env.tree();
    let id = env.backup();
    let m = env.manifest(&id);
    let recorded = |path: &str| {
        m["entries"].as_array().unwrap().iter().find(|e| e["path"] == path).unwrap()["mtime"].as_i64()
    };
    assert_eq!(recorded("bwdata/env/uid.env"), Some(-147_009_600));
    assert_eq!(recorded("bwdata/env"), Some(-1));

    // GNU tar, by hand, gets the same times.
    let by_hand = manual_restore(&env, &env.snap_dir(&id));
    assert_eq!(mtime(&by_hand.join("bwdata/env/uid.env")), -147_009_600);

    // A rollback brings them back.
    fs::write(&file, b"changed\n").unwrap();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&tree, &env.tree());
    assert_eq!((mtime(&file), mtime(&dir)), (-147_009_600, -1));
    env.run(&["verify", "--deep", &id]).ok();
}

#[test]
fn a_store_shared_by_two_installs_keeps_each_to_its_own_snapshots() {
    use bwguard::sample::SampleOptions;
    // Two installs (two Bitwarden installation ids) and one store.
    let a = TestEnv::new();
    let b = TestEnv::with(&SampleOptions {
        vault_kib: Some(768),
        backups: 2,
        small_system_dbs: true,
        seed: 2,
        ..Default::default()
    });
    let b = TestEnv { store: a.store.clone(), ..b };
    let a1 = a.backup();
    let b1 = b.backup();
    assert_ne!(
        a.manifest(&a1)["bitwarden"]["installation_id"],
        b.manifest(&b1)["bitwarden"]["installation_id"],
        "precondition: two installation ids"
    );

    // A rollback without an id takes A's own snapshot, not B's newer one.
    let r = a.run(&["rollback", "--dry-run", "--json"]);
    r.ok();
    assert_eq!(r.json()["id"], a1.as_str());

    // B's snapshot named in A is refused, nothing changed.
    let (tree, store) = (a.tree(), a.store_tree());
    let e = a.run(&["rollback", &b1, "--yes", "--json"]).error(5, "other-installation");
    assert!(e.message.contains(&b1), "{}", e.message);
    assert!(e.hint.unwrap_or_default().contains("--other-installation"));
    assert_same_tree(&tree, &a.tree());
    assert_eq!(store, a.store_tree());
    a.run(&["rollback", &b1, "--other-installation", "--dry-run"]).ok();

    // A's prune counts and removes only A's snapshots.
    let a2 = a.backup();
    let r = a.run(&["prune", "--keep-last", "1", "--json"]);
    r.ok().says("another Bitwarden installation's snapshot; left alone");
    assert_eq!(crate::support::ids_of(&r.json(), "removed"), vec![a1.clone()]);
    let mut left = a.snapshot_ids();
    left.sort();
    let mut want = vec![a2, b1];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn max_age_counts_only_this_installations_backups() {
    // Bitwarden installed again at the same path, with a new installation
    // id: the old installation's backup does not cover the new one.
    let env = TestEnv::new();
    env.backup();
    env.run(&["status", "--max-age", "1d", "-q"]).ok();
    let path = env.bwdata().join("env/global.override.env");
    let text = fs::read_to_string(&path).unwrap();
    let old = text.lines().find(|l| l.starts_with("globalSettings__installation__id=")).unwrap();
    fs::write(
        &path,
        text.replace(old, "globalSettings__installation__id=00000000-0000-4000-8000-000000000001"),
    )
    .unwrap();
    let r = env.run(&["status", "--max-age", "1d", "-q"]);
    r.code(1);
    assert!(r.stdout.starts_with("STALE"), "{}", r.stdout);
    env.backup();
    env.run(&["status", "--max-age", "1d", "-q"]).ok();
}
