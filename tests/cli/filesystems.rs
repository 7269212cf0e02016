//! Real filesystems: the install and the store on loop-mounted ext4, ext4
//! with `data=journal`, XFS with reflink, btrfs, btrfs with compression,
//! and tmpfs. On each:
//! - backup, `verify --deep` and a rollback round trip, compared byte for
//!   byte, with the install and the store on that filesystem together, and
//!   each of them on it with the other on the build machine's disk;
//! - the read-back path the manifest records (`readback`) is the one the
//!   filesystem calls for: `while-writing` where direct reads surely reach
//!   the disk (ext4 without data journaling, XFS), `after-flush` elsewhere;
//! - a byte flipped in what the read-back gets from the disk fails the
//!   backup (exit 3) on either path, and no snapshot is left. The flip is
//!   fault injection at the read-back's input: an `LD_PRELOAD` shim, built
//!   here with the C compiler, changes one byte of what `pread`/`read`
//!   return for `data.tar.gz` (a second mount of the same device would see
//!   the same page cache, and the loop device's window is too short to hit);
//! - a dozen SIGKILLs each of backup and rollback (the invariants of
//!   crash.rs);
//! - a store that fills while the archive is written (the filler of
//!   faults.rs): exit 1, no partial snapshot, the next backup succeeds.
//!
//! The images are sparse files in a temporary directory of the build
//! machine, mounted with `-o loop` (the loop device goes with the unmount).
//! These tests run when `BWGUARD_FS_TESTS` or `CI` is set (`.ci/run` sets
//! `CI` and installs xfsprogs and btrfs-progs), as root; in CI a filesystem
//! that cannot be made or mounted is a failure, elsewhere a skip with a
//! message. The plain `cargo test` skips them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bwguard::engine::room::snapshot_bound;
use bwguard::engine::scope::{self, Scope};
use bwguard::install::Install;
use bwguard::sample::{SampleOptions, generate};

use crate::crash::{backup_case, crash_loop_n, rollback_case};
use crate::faults::{assert_disk_full, assert_no_leftovers, free, id_dirs, run_while_filling, skip_or_fail};
use crate::support::{TestEnv, assert_same_tree};

/// SIGKILLs of each of backup and rollback per filesystem.
const KILLS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ext4,
    Ext4Journal,
    Xfs,
    Btrfs,
    BtrfsCompressed,
    Tmpfs,
}

impl Kind {
    /// The read-back path bwguard must choose here.
    fn readback(self) -> &'static str {
        match self {
            Kind::Ext4 | Kind::Xfs => "while-writing",
            _ => "after-flush",
        }
    }

    /// The `mkfs` command line for an image (None: no image, tmpfs).
    fn mkfs(self) -> Option<Vec<&'static str>> {
        match self {
            Kind::Ext4 | Kind::Ext4Journal => Some(vec!["mkfs.ext4", "-q", "-F"]),
            Kind::Xfs => Some(vec!["mkfs.xfs", "-q", "-f", "-m", "reflink=1"]),
            Kind::Btrfs | Kind::BtrfsCompressed => Some(vec!["mkfs.btrfs", "-q", "-f"]),
            Kind::Tmpfs => None,
        }
    }

    /// Mount options beyond `loop`.
    fn options(self) -> &'static str {
        match self {
            Kind::Ext4Journal => "data=journal",
            Kind::BtrfsCompressed => "compress-force=zstd",
            _ => "",
        }
    }
}

/// Whether this run wants the filesystem tests at all.
fn wanted() -> bool {
    let on = std::env::var_os("BWGUARD_FS_TESTS").is_some() || std::env::var_os("CI").is_some();
    if !on {
        eprintln!("SKIPPED: the real-filesystem tests run with BWGUARD_FS_TESTS=1 (CI sets CI)");
    }
    on
}

/// A filesystem mounted for one test at `dir`; unmounted on drop, even on
/// panic, and its image removed after.
struct Mount {
    dir: PathBuf,
    _image: tempfile::TempDir,
}

impl Mount {
    /// Makes a filesystem of `kind` and `mib` MiB and mounts it.
    fn new(kind: Kind, mib: u64) -> Option<Mount> {
        if !wanted() {
            return None;
        }
        let image_dir = tempfile::tempdir().unwrap();
        let dir = image_dir.path().join("mnt");
        fs::create_dir(&dir).unwrap();
        let mount = match kind.mkfs() {
            None => Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755"), "tmpfs"])
                .arg(&dir)
                .output(),
            Some(mkfs) => {
                let image = image_dir.path().join("fs.img");
                fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
                let made = Command::new(mkfs[0]).args(&mkfs[1..]).arg(&image).output();
                match made {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => {
                        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                        return skip_or_fail(&format!("{} on {kind:?} failed: {err}", mkfs[0]));
                    }
                    Err(e) => return skip_or_fail(&format!("cannot run {} for {kind:?}: {e}", mkfs[0])),
                }
                let options = match kind.options() {
                    "" => "loop".to_string(),
                    more => format!("loop,{more}"),
                };
                Command::new("mount").args(["-o", &options]).arg(&image).arg(&dir).output()
            }
        };
        match mount {
            Ok(o) if o.status.success() => Some(Mount { dir, _image: image_dir }),
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                skip_or_fail(&format!("cannot mount {kind:?} at {}: {err}", dir.display()))
            }
            Err(e) => skip_or_fail(&format!("cannot run mount for {kind:?}: {e}")),
        }
    }

    /// A fresh empty directory on this filesystem.
    fn tempdir(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(&self.dir).unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        crate::support::unmount(&self.dir);
    }
}

/// The small sample install of `TestEnv::new()`.
fn sample() -> SampleOptions {
    SampleOptions { vault_kib: Some(768), backups: 2, small_system_dbs: true, ..Default::default() }
}

/// A test install with its install directory in `install_in` and its store
/// in `store_in` (each a filesystem's directory).
fn env_in(install_in: &Path, store_in: &Path, opts: &SampleOptions) -> TestEnv {
    let dir = tempfile::tempdir_in(install_in).unwrap();
    let install = dir.path().join("install");
    generate(&install, opts).unwrap();
    let store = if store_in == install_in {
        dir.path().join("store")
    } else {
        // Kept alive by the TestEnv's own directory: the store's directory
        // is made, and removed, by hand.
        let store = store_in.join(format!("store-{}", dir.path().file_name().unwrap().to_string_lossy()));
        fs::create_dir(&store).unwrap();
        store
    };
    TestEnv { dir, install, store }
}

/// Removes a store made by [`env_in`] outside the env's directory.
fn remove_store(env: &TestEnv) {
    if !env.store.starts_with(env.dir.path()) {
        let _ = fs::remove_dir_all(&env.store);
    }
}

/// backup -v, verify --deep and a rollback that brings back every byte,
/// mode and time; asserts the read-back path where `readback` is given.
fn round_trip(env: &TestEnv, readback: Option<&str>, label: &str) {
    let before = env.tree();
    let r = env.run(&["backup", "-v"]);
    r.ok();
    let id = r.stdout.trim().to_string();
    assert!(env.snap_dir(&id).join("manifest.json").is_file(), "{label}: backup printed {id:?}");
    let recorded = env.manifest(&id)["readback"].as_str().map(str::to_string);
    if let Some(want) = readback {
        assert_eq!(recorded.as_deref(), Some(want), "{label}: the read-back path");
        r.stderr_has(match want {
            "while-writing" => "read back while writing",
            _ => "read back after flushing",
        });
    } else {
        assert!(recorded.is_some(), "{label}: the manifest records a read-back path");
    }
    env.run(&["verify", "--deep", &id]).ok();

    // An upgrade gone wrong: SCIM on, the database rewritten, a backup
    // deleted, a file added.
    env.run(&["enable-scim", "--yes"]).ok();
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), vec![7u8; 300_000]).unwrap();
    fs::remove_file(env.bwdata().join("mssql/backups/vault_FULL_LATESTLN.BAK")).unwrap();
    fs::write(env.bwdata().join("mssql/data/new.ndf"), b"added by the upgrade").unwrap();
    assert_ne!(env.tree(), before, "{label}: precondition: the install changed");

    env.run(&["rollback", &id, "--yes"]).ok();
    assert_same_tree(&before, &env.tree());
    env.run(&["verify", "--all", "--deep"]).ok();
}

/// The shim that flips byte `BWGUARD_FLIP_AT` of what `read` and `pread`
/// return for a file named `data.tar.gz`.
const FLIP_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

static void flip(int fd, void *buf, ssize_t n, off_t at) {
    const char *s = getenv("BWGUARD_FLIP_AT");
    if (n <= 0 || at < 0 || !s) return;
    long long want = atoll(s);
    if (want < at || want >= at + n) return;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k < 12) return;
    target[k] = 0;
    if (strcmp(target + k - 12, "/data.tar.gz") != 0) return;
    ((unsigned char *)buf)[want - at] ^= 0x5a;
}

ssize_t pread64(int fd, void *buf, size_t count, off_t at) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pread64");
    ssize_t n = real(fd, buf, count, at);
    flip(fd, buf, n, at);
    return n;
}

ssize_t read(int fd, void *buf, size_t count) {
    static ssize_t (*real)(int, void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "read");
    off_t at = lseek(fd, 0, SEEK_CUR);
    ssize_t n = real(fd, buf, count);
    flip(fd, buf, n, at);
    return n;
}
"#;

/// Builds the flip shim into `dir`; its path.
fn flip_shim(dir: &Path) -> Option<PathBuf> {
    crate::support::c_shim(dir, "flip", FLIP_SHIM).map_or_else(|e| skip_or_fail(&e), Some)
}

/// A byte flipped in what the read-back reads is an integrity failure, and
/// the snapshot is not kept.
fn flipped_byte_is_caught(env: &TestEnv, label: &str) {
    let shim_dir = tempfile::tempdir().unwrap();
    let Some(shim) = flip_shim(shim_dir.path()) else { return };
    let before = (env.tree(), env.store_tree(), id_dirs(&env.store));
    let r = env.bwguard(&["backup", "--json"]).env("LD_PRELOAD", &shim).env("BWGUARD_FLIP_AT", "5000").run();
    let e = r.error(3, "integrity");
    assert!(e.message.contains("data.tar.gz"), "{label}: names the archive: {}", e.message);
    assert_eq!(id_dirs(&env.store), before.2, "{label}: no new snapshot, complete or not");
    assert_same_tree(&before.0, &env.tree());
    assert_eq!(before.1, env.store_tree(), "{label}: the store is as before");
    // Without the flip, the same backup goes through.
    env.run(&["backup"]).ok();
}

/// The store fills while the archive is written: exit 1, nothing partial
/// left, and once there is room again the next backup succeeds.
fn store_fills_midway(m: &Mount, label: &str) {
    let home = m.tempdir();
    let env = {
        let opts = SampleOptions { vault_kib: Some(24 << 10), backups: 1, ..sample() };
        let host = tempfile::tempdir().unwrap();
        let install = host.path().join("install");
        generate(&install, &opts).unwrap();
        TestEnv { dir: host, install, store: home.path().join("store") }
    };
    fs::create_dir(&env.store).unwrap();
    let install = Install::resolve(None, Some(&env.store), &env.install).unwrap();
    let (_, sources) = scope::collect(&install, &Scope::Default).unwrap();
    let bound = snapshot_bound(&sources);
    // Leave the room check's bound and a few MiB free, then let the filler
    // take the rest once the snapshot directory appears.
    let ballast = home.path().join("ballast");
    let want_free = bound + (4 << 20);
    let f = fs::File::create(&ballast).unwrap();
    let have = free(&env.store);
    assert!(have > want_free, "{label}: precondition: the filesystem has room ({have} bytes)");
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, have - want_free).unwrap();
    drop(f);
    assert!(free(&env.store) >= bound, "{label}: precondition: the room check must pass");
    let tree = env.tree();
    let filler = home.path().join("filler");
    let r = run_while_filling(&filler, || !id_dirs(&env.store).is_empty(), || env.run(&["backup", "--json"]));
    assert_disk_full(&r);
    assert_eq!(id_dirs(&env.store), Vec::<String>::new(), "{label}: the partial snapshot was removed");
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(&env);
    fs::remove_file(&filler).unwrap();
    fs::remove_file(&ballast).unwrap();
    let id = env.backup();
    env.run(&["verify", "--deep", &id]).ok();
}

/// Everything above on one filesystem.
fn exercise(kind: Kind) {
    let label = format!("{kind:?}");
    let Some(m) = Mount::new(kind, 512) else { return };
    let host = tempfile::tempdir().unwrap();

    // The install and the store on this filesystem.
    let env = env_in(&m.dir, &m.dir, &sample());
    round_trip(&env, Some(kind.readback()), &format!("{label}: both"));
    flipped_byte_is_caught(&env, &label);
    drop(env);

    // The install here, the store on the build machine's disk; then the
    // other way round (the read-back path is the store's filesystem's).
    let env = env_in(&m.dir, host.path(), &sample());
    round_trip(&env, None, &format!("{label}: install only"));
    remove_store(&env);
    drop(env);
    let env = env_in(host.path(), &m.dir, &sample());
    round_trip(&env, Some(kind.readback()), &format!("{label}: store only"));
    remove_store(&env);
    drop(env);

    // Killed at any instant, on this filesystem.
    crash_loop_n(&format!("{label} backup"), &["backup"], KILLS, || {
        backup_case(env_in(&m.dir, &m.dir, &sample()))
    });
    crash_loop_n(&format!("{label} rollback"), &["rollback"], KILLS, || {
        rollback_case(env_in(&m.dir, &m.dir, &sample()))
    });

    store_fills_midway(&m, &label);
}

#[test]
fn ext4() {
    exercise(Kind::Ext4);
}

#[test]
fn ext4_with_data_journaling() {
    exercise(Kind::Ext4Journal);
}

#[test]
fn xfs_with_reflink() {
    exercise(Kind::Xfs);
}

#[test]
fn btrfs() {
    exercise(Kind::Btrfs);
}

#[test]
fn btrfs_with_compression() {
    exercise(Kind::BtrfsCompressed);
}

#[test]
fn tmpfs() {
    exercise(Kind::Tmpfs);
}

/// Runs `cmd` (as root), asserting it worked.
fn sh(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A rollback that one part could not take refuses before anything is
/// written: the install and the store stay as they were, and once the
/// cause is gone the same rollback works.
fn refused_before_the_swap(env: &TestEnv, id: &str, kind: &str, names: &Path) {
    let (tree, store) = (env.tree(), env.store_tree());
    let r = env.run(&["rollback", id, "--yes", "--json"]);
    let e = r.error(5, kind);
    assert!(e.message.contains(&names.display().to_string()), "names it: {}", e.message);
    assert_same_tree(&tree, &env.tree());
    assert_eq!(store, env.store_tree(), "no snapshot of the current state, no journal");
    assert!(!env.store.join("rollback-journal.json").exists());
}

#[test]
fn a_part_that_cannot_be_swapped_is_refused_before_the_first_swap() {
    let Some(m) = Mount::new(Kind::Ext4, 256) else { return };
    let env = env_in(&m.dir, &m.dir, &sample());
    let id = env.backup();
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), b"changed").unwrap();
    let changed = env.tree();

    // A bind mount of the same filesystem: the same device number as its
    // parent, but a rename of it fails with EBUSY.
    let mssql = env.bwdata().join("mssql");
    sh(&["mount", "--bind", &mssql.display().to_string(), &mssql.display().to_string()]);
    refused_before_the_swap(&env, &id, "mount-point", &mssql);
    sh(&["umount", &mssql.display().to_string()]);

    // An immutable part, and an append-only directory holding parts.
    let env_dir = env.bwdata().join("env");
    sh(&["chattr", "+i", &env_dir.display().to_string()]);
    refused_before_the_swap(&env, &id, "immutable", &env_dir);
    sh(&["chattr", "-i", &env_dir.display().to_string()]);
    let bwdata = env.bwdata();
    sh(&["chattr", "+a", &bwdata.display().to_string()]);
    refused_before_the_swap(&env, &id, "immutable", &bwdata);
    sh(&["chattr", "-a", &bwdata.display().to_string()]);

    assert_same_tree(&changed, &env.tree());
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_ne!(fs::read(env.bwdata().join("mssql/data/vault.mdf")).unwrap(), b"changed");
}
