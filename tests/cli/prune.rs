//! prune and backup --prune: dry run against a real run, and the snapshots
//! that are never removed (pinned, newest, newest verified). The decision
//! tables themselves are unit tests of `retention::apply`.

use std::fs;

use crate::support::{TestEnv, ids_of};

/// Takes `n` backups and dates them one day apart, newest now; returns the
/// ids newest first.
fn dated_backups(env: &TestEnv, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|_| env.backup()).collect();
    ids.reverse();
    for (days, id) in ids.iter().enumerate() {
        let path = env.snap_dir(id).join("manifest.json");
        let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let t = chrono::Utc::now() - chrono::Duration::days(days as i64);
        m["created"] = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
        fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    ids
}

#[test]
fn dry_run_says_what_a_real_run_then_does() {
    let env = TestEnv::new();
    let ids = dated_backups(&env, 6);
    env.run(&["pin", &ids[4]]).ok();
    let store_before = env.store_tree();

    let dry = env.run(&["prune", "--keep-last", "2", "--dry-run", "--json"]);
    dry.ok();
    let dry = dry.json();
    assert_eq!(ids_of(&dry, "removed"), vec![ids[2].clone(), ids[3].clone(), ids[5].clone()]);
    assert_eq!(env.store_tree(), store_before, "a dry run removes nothing");
    let human = env.run(&["prune", "--keep-last", "2", "--dry-run"]);
    assert!(human.stdout.contains(&format!("would remove  {}", ids[5])), "{}", human.stdout);
    assert!(human.stdout.lines().any(|l| l.contains(&ids[4]) && l.contains("pinned")), "{}", human.stdout);

    let real = env.run(&["prune", "--keep-last", "2", "--json"]);
    real.ok();
    let real = real.json();
    assert_eq!(ids_of(&real, "removed"), ids_of(&dry, "removed"));
    assert_eq!(ids_of(&real, "kept"), ids_of(&dry, "kept"));
    assert_eq!(env.snapshot_ids(), vec![ids[0].clone(), ids[1].clone(), ids[4].clone()]);
    for id in [&ids[2], &ids[3], &ids[5]] {
        assert!(!env.snap_dir(id).exists(), "{id} still on disk");
    }
    env.run(&["verify", "--all", "--deep"]).ok();
}

#[test]
fn the_newest_and_the_newest_verified_are_never_removed() {
    let env = TestEnv::new();
    let ids = dated_backups(&env, 4);
    // The newest snapshot is damaged: the newest that verifies is the next.
    let archive = env.snap_dir(&ids[0]).join("data.tar.gz");
    let mut bytes = fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&archive, bytes).unwrap();
    let r = env.run(&["prune", "--keep-within", "1h", "--json"]);
    r.ok();
    let doc = r.json();
    assert_eq!(ids_of(&doc, "kept"), vec![ids[0].clone(), ids[1].clone()]);
    let reasons = doc["kept"][1]["reasons"].to_string();
    assert!(reasons.contains("newest verified"), "{reasons}");
    assert!(doc["kept"][0]["reasons"].to_string().contains("newest"));
    assert_eq!(env.snapshot_ids(), vec![ids[0].clone(), ids[1].clone()]);
}

#[test]
fn no_policy_given_or_saved_fails_loudly_and_removes_nothing() {
    let env = TestEnv::new();
    dated_backups(&env, 3);
    let before = env.store_tree();
    let e = env.run(&["prune", "--json"]).error(1, "no-retention-policy");
    assert!(e.hint.unwrap_or_default().contains("--save-policy"));
    assert_eq!(env.store_tree(), before);
    // --save-policy needs the flags it saves.
    env.run(&["prune", "--save-policy"]).code(2).says("--keep-");
    assert_eq!(env.store_tree(), before);
}

#[test]
fn a_policy_saved_on_its_own_serves_every_later_prune() {
    let env = TestEnv::new();
    let ids = dated_backups(&env, 3);
    env.run(&["prune", "--keep-last", "2", "--save-policy"]).ok().says("saved the retention policy");
    assert_eq!(env.snapshot_ids(), vec![ids[0].clone(), ids[1].clone()]);
    let new = env.run(&["backup", "--prune", "--json"]).ok().json()["id"].as_str().unwrap().to_string();
    let now = env.snapshot_ids();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.contains(&new) && !now.contains(&ids[1]), "{now:?}");
}

#[test]
fn a_mistyped_store_is_not_created_and_pruned_as_empty() {
    let env = TestEnv::new();
    let wrong = env.dir.path().join("bwguard-snapshost");
    let r = env.run(&["prune", "--keep-last", "1", "--store", wrong.to_str().unwrap(), "--json"]);
    r.error(2, "no-store");
    assert!(!wrong.exists());
}

#[test]
fn backup_prune_applies_the_given_policy_after_a_verified_backup() {
    let env = TestEnv::new();
    let ids = dated_backups(&env, 3);
    let r = env.run(&["backup", "--prune", "--keep-last", "2", "--json"]);
    r.ok();
    let doc = r.json();
    let new = doc["id"].as_str().unwrap().to_string();
    assert_eq!(ids_of(&doc["prune"], "removed"), vec![ids[1].clone(), ids[2].clone()]);
    assert_eq!(env.snapshot_ids(), vec![new, ids[0].clone()]);
    // Without a policy given or saved, the backup is kept and the run fails.
    let e = env.run(&["backup", "--prune", "--json"]).error(1, "no-retention-policy");
    assert_eq!(env.snapshot_ids().len(), 3);
    assert!(env.snapshot_ids().iter().any(|id| e.message.contains(id.as_str())), "{}", e.message);
    // --keep-* without --prune would be ignored: refused instead.
    env.run(&["backup", "--keep-last", "1"]).code(2).says("--prune");
    assert_eq!(env.snapshot_ids().len(), 3);
}

#[test]
fn prune_compresses_a_rollbacks_safety_snapshot_which_still_rolls_back_byte_for_byte() {
    let env = TestEnv::new();
    let id = env.backup();
    // The state a rollback replaces: SCIM on, the database changed.
    env.run(&["enable-scim"]).ok();
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), vec![7u8; 3 << 20]).unwrap();
    let replaced = env.tree();
    env.run(&["rollback", &id, "--yes"]).ok();
    let safety = env.snapshot_ids()[0].clone();
    let m = env.manifest(&safety);
    assert!(m["reason"].as_str().unwrap().starts_with("before rollback"), "{m}");
    assert_eq!(m["compression"]["level"], 0, "stored uncompressed during the outage");
    let before = m["archive"]["size"].as_u64().unwrap();

    // A dry run says so and changes nothing.
    let store = env.store_tree();
    let dry = env.run(&["prune", "--keep-last", "5", "--dry-run"]);
    dry.ok().stdout_has(&format!("would compress {safety}"));
    assert_eq!(env.store_tree(), store, "a dry run compressed something");

    let r = env.run(&["prune", "--keep-last", "5", "--json"]);
    let doc = r.ok().json();
    assert_eq!(doc["compressed"][0]["id"], safety.as_str(), "{doc}");
    assert_eq!(doc["compressed"][0]["archive_size_before"], before);
    let after = doc["compressed"][0]["archive_size_after"].as_u64().unwrap();
    let m = env.manifest(&safety);
    assert_eq!(m["archive"]["size"], after);
    assert!(after * 4 < before, "{after} of {before} bytes");
    assert!(m["compression"]["level"].as_u64().unwrap() > 0);
    assert_eq!(m["pinned"], true, "still pinned");
    assert!(
        fs::read_dir(&env.store).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.'))
    );
    env.run(&["verify", &safety, "--deep"]).ok();
    // Restorable by hand, as every snapshot.
    let dir = env.snap_dir(&safety);
    let sum = std::process::Command::new("sha256sum")
        .arg("-c")
        .arg("data.tar.gz.sha256")
        .current_dir(&dir)
        .output();
    assert!(sum.unwrap().status.success());
    let tar = std::process::Command::new("tar").arg("-tzf").arg(dir.join("data.tar.gz")).output().unwrap();
    assert!(
        tar.status.success() && String::from_utf8_lossy(&tar.stdout).contains("bwdata/mssql/data/vault.mdf")
    );
    // The next prune has nothing left to compress.
    let again = env.run(&["prune", "--keep-last", "5", "--json"]);
    assert!(again.ok().json().get("compressed").is_none());
    // And it undoes the rollback, every byte.
    env.run(&["rollback", &safety, "--yes"]).ok();
    assert_eq!(env.tree(), replaced);
}

/// Makes `open` of a file named `SHA256SUMS` wait `BWGUARD_SLOW_OPEN_MS`
/// first: the moment between verify reading a manifest and opening the
/// snapshot's other files, widened so a deletion surely lands in it.
const SLOW_OPEN: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_if_sums(const char *path) {
    const char *ms = getenv("BWGUARD_SLOW_OPEN_MS");
    size_t n = strlen(path);
    if (ms && n >= 11 && strcmp(path + n - 11, "/SHA256SUMS") == 0) usleep(atoi(ms) * 1000);
}

int open64(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "open64");
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    wait_if_sums(path);
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = dlsym(RTLD_NEXT, "open");
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    wait_if_sums(path);
    return real(path, flags, mode);
}
"#;

#[test]
fn a_snapshot_deleted_while_verify_reads_it_is_reported_gone_not_damaged() {
    // verify takes no lock, so a prune or forget may delete the snapshot it
    // is reading; the LD_PRELOAD shim holds verify between reading the
    // manifest and opening SHA256SUMS while `forget` deletes it.
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = match crate::support::c_shim(shim_dir.path(), "slow_open", SLOW_OPEN) {
        Ok(s) => s,
        Err(e) if std::env::var_os("CI").is_none() => return eprintln!("SKIPPED: {e}"),
        Err(e) => panic!("{e}"),
    };
    let env = TestEnv::new();
    let id = env.backup();
    let verify = env
        .bwguard(&["verify", &id, "--json"])
        .env("LD_PRELOAD", &shim)
        .env("BWGUARD_SLOW_OPEN_MS", "1500")
        .spawn_piped();
    std::thread::sleep(std::time::Duration::from_millis(400));
    env.run(&["forget", &id, "--yes"]).ok();
    assert!(!env.snap_dir(&id).exists(), "precondition: the snapshot is gone");
    let out = verify.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "gone, not damaged (exit 3)\n{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "no-such-snapshot", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("deleted") && message.contains(&id), "{message}");
}

#[test]
fn a_prune_that_fails_after_a_good_backup_says_the_backup_is_good() {
    // The saved policy is unreadable, so `backup --prune` takes and
    // verifies its snapshot and then cannot prune.
    let env = TestEnv::new();
    env.backup();
    fs::write(env.store.join("retention.json"), b"{ not json").unwrap();
    let r = env.run(&["backup", "--prune", "--json"]);
    let e = r.error(1, "prune-failed");
    assert!(e.message.contains("was taken and verified, but pruning failed"), "{}", e.message);
    assert!(e.message.contains("retention.json"), "says why: {}", e.message);
    // The unattended log line: the backup is ok, the prune failed.
    r.stderr_has("backup ok, prune failed (exit 1, prune-failed)");
    assert!(!r.stderr.contains("backup failed"), "{}", r.stderr);
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2, "the new snapshot is kept: {ids:?}");
    env.run(&["verify", "--deep", &ids[0]]).ok();
}
