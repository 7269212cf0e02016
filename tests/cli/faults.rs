//! Faults from the environment: full disks on real small filesystems (safety
//! rule 8, with rules 2 and 3 for what a failed run leaves), and bad
//! arguments and bad environments (exit codes and messages that name the
//! path at fault).
//!
//! The disk tests mount a tmpfs of a chosen size, as the store or as the
//! install's filesystem, and unmount it when the test ends (also on panic).
//! They need root. When mounting fails they FAIL if `CI` is set, and are
//! skipped with a message otherwise. The unreadable-file test runs bwguard as
//! uid/gid 65534 through `setpriv`, with the same
//! CI rule when that is impossible.
//!
//! A disk that fills *after* the room check passed is, as on a real server,
//! another process filling it while bwguard writes ([`run_while_filling`]):
//! a thread polls every millisecond for the run's first write on that
//! filesystem (the new snapshot directory in the store, or the staging
//! directory in the install), then takes all the space left with
//! `fallocate` until ENOSPC. The filesystem is sized to pass the room check
//! with about 1 MiB to spare, so the filler takes the few tens of MB left
//! in milliseconds, while the run goes on writing for hundreds of
//! milliseconds (installs of tens of MB): the filler wins by a wide margin.
//! Each test asserts, as a precondition, that the filler fired and that the
//! run failed rather than finishing (or being refused by the room check),
//! so a lost race is a clear precondition message, never a silent pass.

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bwguard::engine::room::{on_disk, snapshot_bound};
use bwguard::engine::scope::{self, Scope};
use bwguard::engine::store::is_id;
use bwguard::files::free_space;
use bwguard::install::Install;
use bwguard::sample::{SampleOptions, generate};

use crate::support::{Bwguard, Run, TestEnv, assert_same_tree};

/// tmpfs page size: the unit in which it hands out space.
const PAGE: u64 = 4096;

/// Size of `vault.mdf` in the installs of the disk-fills-during-the-run
/// tests: big enough that writing a snapshot or a staged copy takes
/// hundreds of ms, while filling the rest of the filesystem takes a few.
const VAULT_KIB: u64 = 24 << 10;

// ---------------------------------------------------------------------------
// Mounts, fillers and other helpers

/// Skips the test locally (returning `None`) or fails it when `CI` is set.
pub(crate) fn skip_or_fail<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{why}\nCI is set, so this test must run (as root); it is not skipped");
    }
    eprintln!("SKIPPED: {why} (needs root; with CI set this is a failure)");
    None
}

/// A tmpfs mounted for one test; unmounted on drop, even on panic.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `opts` (e.g. `size=512k,mode=0700`) at `dir`,
    /// creating `dir` if missing.
    fn mount(dir: &Path, opts: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", opts, "tmpfs"]).arg(dir).output();
        let err = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir: dir.to_path_buf() }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        skip_or_fail(&format!("cannot mount a tmpfs ({opts}) at {}: {err}", dir.display()))
    }

    /// Remounts with new options (e.g. `ro`).
    fn remount(&self, opts: &str) {
        let out =
            Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "remount {opts}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        crate::support::unmount(&self.dir);
    }
}

/// A test install with mounted filesystems. Fields drop in order, so the
/// mounts go before the temporary directory that holds them is removed.
struct Mounted {
    mount: Tmpfs,
    env: TestEnv,
}

/// `TestEnv::new()` with a tmpfs of `opts` as its store.
fn store_on_tmpfs(opts: &str) -> Option<Mounted> {
    let env = TestEnv::new();
    let mount = Tmpfs::mount(&env.store, opts)?;
    Some(Mounted { mount, env })
}

/// A generated install whose directory is the root of a tmpfs of `opts`;
/// the store is on the ordinary disk.
fn install_on_tmpfs(opts: &str, sample: &SampleOptions) -> Option<Mounted> {
    let dir = tempfile::tempdir().unwrap();
    let install = dir.path().join("install");
    let mount = Tmpfs::mount(&install, opts)?;
    generate(&install, sample).unwrap();
    let store = dir.path().join("store");
    Some(Mounted { mount, env: TestEnv { dir, install, store } })
}

/// The sample `TestEnv::new()` generates.
fn small_sample() -> SampleOptions {
    SampleOptions { vault_kib: Some(768), backups: 2, small_system_dbs: true, ..Default::default() }
}

/// Free bytes on the filesystem holding `p`.
pub(crate) fn free(p: &Path) -> u64 {
    free_space(p).unwrap()
}

/// Allocates space to a new file at `path` until the kernel says ENOSPC,
/// and returns how many bytes it got. `fallocate` (not `set_len`, which
/// leaves a hole) really takes tmpfs pages, without copying any bytes: it
/// fills tens of MB in a few milliseconds. Chunks halve on ENOSPC down to
/// one page, so the filesystem ends with less than a page free even while
/// another process writes to it.
pub(crate) fn fill(path: &Path) -> u64 {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    let f = File::create_new(path).unwrap_or_else(|e| panic!("filler {}: {e}", path.display()));
    let (mut bytes, mut chunk) = (0, 4 << 20);
    loop {
        match fallocate(&f, FallocateFlags::empty(), bytes, chunk) {
            Ok(()) => bytes += chunk,
            Err(Errno::NOSPC) if chunk > PAGE => chunk /= 2,
            Err(Errno::NOSPC) => return bytes,
            Err(Errno::INTR) => {}
            Err(e) => panic!("filler {}: fallocate: {e}", path.display()),
        }
    }
}

/// Fills the filesystem holding `path` to the last byte with a filler file
/// at `path`.
fn fill_up(path: &Path) {
    fill(path);
    assert_eq!(free(path.parent().unwrap()), 0, "the filesystem is full");
}

/// What the concurrent filler of [`run_while_filling`] did.
struct Filled {
    /// Bytes that fit in the filler file.
    bytes: u64,
    /// From the moment the filler saw the run start writing to ENOSPC.
    took: Duration,
}

/// Sets a flag when dropped, also while unwinding.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `run` while another process fills the disk: a thread polls every
/// millisecond until `started()` says the run has begun writing on the
/// filesystem holding `filler`, then allocates space to a new file at
/// `filler` until ENOSPC (the file stays; the caller removes it).
///
/// Asserts the preconditions of a disk that filled during the run: the
/// filler fired, and the run neither succeeded (it finished writing before
/// the disk was full: make the install bigger) nor was refused by the room
/// check (the filesystem is too small). What the run did about the full
/// disk is the caller's to check.
#[track_caller]
pub(crate) fn run_while_filling(
    filler: &Path,
    started: impl Fn() -> bool + Sync,
    run: impl FnOnce() -> Run,
) -> Run {
    let done = AtomicBool::new(false);
    let (r, filled, took) = std::thread::scope(|s| {
        let thread = s.spawn(|| {
            loop {
                if started() {
                    let t = Instant::now();
                    let bytes = fill(filler);
                    return Some(Filled { bytes, took: t.elapsed() });
                }
                if done.load(Ordering::Acquire) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        // Stops the filler's wait when the run is over, even on panic
        // (the scope joins the thread before unwinding further).
        let stop = SetOnDrop(&done);
        let t = Instant::now();
        let r = run();
        let took = t.elapsed();
        drop(stop);
        let filled = thread.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (r, filled, took)
    });
    let Some(filled) = filled else {
        panic!(
            "precondition: the filler never saw the run start writing (the run took {took:?}); \
             is the trigger right?\n{r:?}"
        );
    };
    assert_ne!(
        r.code, 0,
        "precondition: the run finished before the filler filled the disk (the filler wrote {} bytes in \
         {:?}; the run took {took:?}): make it write longer\n{r:?}",
        filled.bytes, filled.took
    );
    assert_ne!(
        r.code, 5,
        "precondition: the room check refused, so the disk did not fill during the run; give the \
         filesystem more room\n{r:?}"
    );
    r
}

/// The binary with a scrubbed environment and no `--store`, run in `cwd`.
fn bare(cwd: &Path, args: &[&str]) -> Run {
    Bwguard::new(args).current_dir(cwd).run()
}

/// Asserts a `--json` error document with this code and kind, and returns
/// its message.
#[track_caller]
pub(crate) fn json_error(r: &Run, code: i32, kind: &str) -> String {
    r.error(code, kind).message
}

/// Names of the snapshot-shaped directories in the store, complete or not.
pub(crate) fn id_dirs(store: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(store) else { return Vec::new() };
    let mut ids: Vec<String> = rd
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_id(n))
        .collect();
    ids.sort();
    ids
}

/// No staging directory, config temp file, journal or incomplete snapshot.
#[track_caller]
pub(crate) fn assert_no_leftovers(env: &TestEnv) {
    for dir in [env.install.clone(), env.bwdata(), env.bwdata().join("core"), env.bwdata().join("scripts")] {
        assert!(!dir.join(".bwguard-staging").exists(), "staging left in {}", dir.display());
    }
    assert!(!env.bwdata().join(".config.yml.bwguard-tmp").exists(), "config temp file left");
    assert!(!env.store.join("rollback-journal.json").exists(), "rollback journal left");
    for id in id_dirs(&env.store) {
        assert!(env.snap_dir(&id).join("manifest.json").is_file(), "incomplete snapshot {id} left");
    }
}

/// The `disk-full` error of a run that hit ENOSPC.
#[track_caller]
pub(crate) fn assert_disk_full(r: &Run) {
    let message = json_error(r, 1, "disk-full");
    assert!(message.contains("No space left on device"), "{message}");
    r.says("hint: free some space");
}

// ---------------------------------------------------------------------------
// 1. Full disks

#[test]
fn backup_into_a_store_too_small_for_the_archive_bound_is_refused_before_writing() {
    let Some(m) = store_on_tmpfs("size=512k,mode=0700") else { return };
    let env = &m.env;
    let tree = env.tree();

    let r = env.run(&["backup", "--json"]);
    let message = json_error(&r, 5, "no-room");
    assert!(message.contains("not enough free space"), "{message}");
    assert!(message.contains(&env.store.display().to_string()), "names the store: {message}");
    r.says("--store PATH");

    assert_eq!(id_dirs(&env.store), Vec::<String>::new(), "no snapshot directory, complete or not");
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(env);
}

#[test]
fn backup_that_fills_the_store_midway_fails_cleanly_and_the_next_one_succeeds() {
    // An install whose archive takes hundreds of ms to write, and a store
    // with room for the snapshot bound and 1 MiB more: another process
    // fills it as soon as the snapshot directory appears (see the module
    // doc).
    let env = TestEnv::with(&SampleOptions { vault_kib: Some(VAULT_KIB), backups: 1, ..small_sample() });
    let install = Install::resolve(None, Some(&env.store), &env.install).unwrap();
    let (_, sources) = scope::collect(&install, &Scope::Default).unwrap();
    let bound = snapshot_bound(&sources);
    let size = (bound + (1 << 20)).div_ceil(PAGE) * PAGE;
    let Some(mount) = Tmpfs::mount(&env.store, &format!("size={size},mode=0700")) else { return };
    let m = Mounted { mount, env };
    let env = &m.env;
    assert!(free(&env.store) >= bound, "precondition: the room check must pass");
    let tree = env.tree();
    let filler = env.store.join("filler");
    let snapshot_dir_appeared = || !id_dirs(&env.store).is_empty();

    let r = run_while_filling(&filler, snapshot_dir_appeared, || env.run(&["backup", "--json"]));
    assert_disk_full(&r);
    r.says(&env.store.display().to_string());
    assert_eq!(id_dirs(&env.store), Vec::<String>::new(), "the partial snapshot was removed");
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(env);

    // Without --json too: a clear message on stderr.
    fs::remove_file(&filler).unwrap();
    let r = run_while_filling(&filler, snapshot_dir_appeared, || env.run(&["backup"]));
    r.code(1).says("No space left on device").says(&env.store.display().to_string());
    assert_eq!(id_dirs(&env.store), Vec::<String>::new());
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(env);

    fs::remove_file(&filler).unwrap();
    let id = env.backup();
    assert_eq!(env.snapshot_ids(), vec![id.clone()]);
    env.run(&["verify", &id, "--deep"]).ok();
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(env);
}

#[test]
fn enable_scim_on_a_full_install_filesystem_leaves_config_yml_alone() {
    let Some(m) = install_on_tmpfs("size=16m,mode=0755", &small_sample()) else { return };
    let env = &m.env;
    let config = env.config();
    fill_up(&env.install.join("filler"));
    let tree = env.tree();

    let r = env.run(&["enable-scim", "--json"]);
    // bwguard may check the install's room first (5) or fail writing (1).
    if r.code == 5 {
        json_error(&r, 5, "no-room");
    } else {
        assert_disk_full(&r);
        r.says(".config.yml.bwguard-tmp");
    }
    assert_eq!(env.config(), config, "config.yml byte-identical");
    assert!(!env.bwdata().join(".config.yml.bwguard-tmp").exists());
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(env);
    // The snapshot taken first (into the roomy store) is complete and good.
    if !env.snapshot_ids().is_empty() {
        env.run(&["verify", "--all", "--deep"]).ok();
    }

    fs::remove_file(env.install.join("filler")).unwrap();
    env.run(&["enable-scim"]).ok();
    assert!(String::from_utf8(env.config()).unwrap().contains("\nenable_scim: true\n"));
    assert_no_leftovers(env);
}

#[test]
fn rollback_onto_a_full_install_filesystem_is_refused_before_anything_is_written() {
    let Some(m) = install_on_tmpfs("size=16m,mode=0755", &small_sample()) else { return };
    let env = &m.env;
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    fill_up(&env.install.join("filler"));
    let (tree, store, ids) = (env.tree(), env.store_tree(), env.snapshot_ids());
    assert_eq!(ids.len(), 2);

    let r = env.run(&["rollback", &id, "--yes", "--json"]);
    let message = json_error(&r, 5, "no-room");
    assert!(message.contains("not enough free space"), "{message}");
    assert!(message.contains("the staged copy"), "{message}");
    assert!(message.contains(&env.bwdata().display().to_string()), "names the install: {message}");

    assert_same_tree(&tree, &env.tree());
    assert_same_tree(&store, &env.store_tree());
    assert_eq!(env.snapshot_ids(), ids, "no `before rollback` snapshot was kept");
    assert_no_leftovers(env);
}

#[test]
fn rollback_that_fills_the_install_filesystem_while_staging_changes_nothing() {
    // An install whose staged copy takes hundreds of ms to write, on a
    // filesystem with room for it and 1 MiB more: another process fills it
    // as soon as the staging directory appears (see the module doc).
    let sample = SampleOptions { vault_kib: Some(VAULT_KIB), backups: 1, ..small_sample() };
    let mount_size: u64 = 256 << 20;
    let Some(m) = install_on_tmpfs(&format!("size={mount_size},mode=0755"), &sample) else { return };
    let env = &m.env;
    let vault = env.bwdata().join("mssql/data/vault.mdf");
    let original = fs::read(&vault).unwrap();
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    fs::write(&vault, b"migrated by an upgrade").unwrap();

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(env.snap_dir(&id).join("manifest.json")).unwrap()).unwrap();
    let staged: u64 =
        manifest["entries"].as_array().unwrap().iter().map(|e| on_disk(e["size"].as_u64().unwrap())).sum();
    let used = mount_size - free(&env.install);
    m.mount.remount(&format!("size={}", (used + staged + (1 << 20)).div_ceil(PAGE) * PAGE));
    assert!(free(&env.install) >= staged, "precondition: the room check must pass");
    let (tree, store, ids) = (env.tree(), env.store_tree(), env.snapshot_ids());
    let filler = env.install.join("filler");
    let staging = env.bwdata().join(".bwguard-staging");

    let r =
        run_while_filling(&filler, || staging.exists(), || env.run(&["rollback", &id, "--yes", "--json"]));
    assert_disk_full(&r);
    let mut now = env.tree();
    assert!(now.remove("filler").is_some(), "the filler is in the install's root");
    assert_same_tree(&tree, &now);
    assert_same_tree(&store, &env.store_tree());
    assert_eq!(env.snapshot_ids(), ids, "the `before rollback` snapshot of a failed rollback is dropped");
    assert_no_leftovers(env);

    fs::remove_file(&filler).unwrap();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert!(fs::read(&vault).unwrap() == original, "vault.mdf is restored");
    assert!(String::from_utf8(env.config()).unwrap().contains("\nenable_scim: false\n"));
    assert_no_leftovers(env);
}

/// Sets the declared size of manifest entries, resealing nothing.
fn declare_sizes(env: &TestEnv, id: &str, sizes: &[(&str, u64)]) {
    let path = env.snap_dir(id).join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for (name, size) in sizes {
        let e = m["entries"].as_array_mut().unwrap().iter_mut().find(|e| e["path"] == *name).unwrap();
        e["size"] = (*size).into();
    }
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn rollback_of_a_snapshot_declaring_more_than_fits_is_refused_by_the_room_check() {
    let env = TestEnv::new();
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    declare_sizes(&env, &id, &[("bwdata/mssql/data/vault.mdf", 1 << 50)]);
    let (tree, store) = (env.tree(), env.store_tree());

    let r = env.run(&["rollback", &id, "--yes", "--json"]);
    let message = json_error(&r, 5, "no-room");
    assert!(message.contains("not enough free space"), "{message}");
    assert_same_tree(&tree, &env.tree());
    assert_same_tree(&store, &env.store_tree());
    assert_no_leftovers(&env);
}

#[test]

fn rollback_of_a_snapshot_whose_sizes_overflow_is_refused_by_the_room_check() {
    let env = TestEnv::new();
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    let half = u64::MAX / 2 + 1;
    declare_sizes(
        &env,
        &id,
        &[("bwdata/mssql/data/vault.mdf", half), ("bwdata/mssql/data/vault_log.ldf", half)],
    );
    let (tree, store) = (env.tree(), env.store_tree());

    let r = env.run(&["rollback", &id, "--yes", "--json"]);
    json_error(&r, 5, "no-room");
    assert_same_tree(&tree, &env.tree());
    assert_same_tree(&store, &env.store_tree());
    assert_no_leftovers(&env);
}

// ---------------------------------------------------------------------------
// 2. Bad arguments and bad environments

#[test]
fn no_data_directory_names_both_candidates() {
    let env = TestEnv::new();
    let empty = env.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for cmd in ["backup", "status", "list", "enable-scim"] {
        let r = bare(&empty, &[cmd]);
        r.code(2)
            .says(&empty.join("bwdata").display().to_string())
            .says(&empty.join(".bwdata").display().to_string());
    }
    let r = bare(&empty, &["backup", "--json"]);
    r.code(2);
    assert_eq!(r.json()["error"]["code"], 2);
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "nothing created");
}

#[test]

fn no_data_directory_says_how_to_fix_it() {
    let env = TestEnv::new();
    let empty = env.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    bare(&empty, &["backup"]).code(2).says("hint:").says("--bwdata PATH");
    let r = bare(&empty, &["backup", "--json"]);
    json_error(&r, 2, "no-data-dir");
    assert!(r.json()["error"]["hint"].as_str().is_some_and(|h| h.contains("--bwdata PATH")), "{}", r.stdout);
}

#[test]
fn bwdata_flag_naming_nothing_is_a_usage_error() {
    let env = TestEnv::new();
    let tree = env.tree();
    let r = env.run(&["backup", "--bwdata", "/nonexistent", "--json"]);
    let message = json_error(&r, 2, "no-data-dir");
    assert!(message.contains("/nonexistent"), "{message}");
    env.run(&["--bwdata", "/nonexistent", "status"]).code(2).says("/nonexistent");
    // A file is not a data directory either.
    let file = env.install.join("bitwarden.sh");
    env.run(&["backup", "--bwdata", file.to_str().unwrap()]).code(2).says(file.to_str().unwrap());
    assert!(!env.store.exists(), "nothing created");
    assert_same_tree(&tree, &env.tree());
}

#[test]
fn a_store_inside_the_data_directory_is_refused_and_nothing_is_created() {
    let env = TestEnv::new();
    let tree = env.tree();
    for store in ["bwdata/snapshots", "./bwdata/mssql/snaps", "bwdata"] {
        for cmd in [&["backup"][..], &["enable-scim"], &["rollback", "--yes"]] {
            let mut args = vec!["--store", store, "--json"];
            args.extend_from_slice(cmd);
            let r = bare(&env.install, &args);
            let message = json_error(&r, 5, "store-inside-data");
            assert!(message.contains(&env.bwdata().display().to_string()), "{message}");
            r.says("--store PATH");
        }
    }
    // Through the environment variable as well, and by absolute path.
    let abs = env.bwdata().join("snapshots");
    Bwguard::new(&["backup"])
        .current_dir(&env.install)
        .env("BWGUARD_STORE", &abs)
        .run()
        .code(5)
        .says(&abs.display().to_string());
    assert!(!env.bwdata().join("snapshots").exists(), "nothing created in bwdata");
    assert_same_tree(&tree, &env.tree());
}

#[test]
fn an_unreadable_file_in_the_scope_fails_naming_it_and_leaves_no_snapshot() {
    if !bwguard::files::is_root() {
        skip_or_fail::<()>("running bwguard as uid 65534 on a chowned install needs root");
        return;
    }
    let env = TestEnv::new();
    let nobody = 65534;
    // The unprivileged user must reach the install and the store.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(&env.store).unwrap();
    lchown(&env.store, Some(nobody), Some(nobody)).unwrap();
    for e in walkdir::WalkDir::new(&env.install) {
        lchown(e.unwrap().path(), Some(nobody), Some(nobody)).unwrap();
    }
    let secret = env.bwdata().join("env/global.override.env");
    lchown(&secret, Some(0), Some(0)).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let tree = env.tree();

    let as_nobody = |args: &[&str]| -> Option<Run> {
        if !which("setpriv") {
            return skip_or_fail("setpriv is not available to drop privileges");
        }
        let r = env.bwguard(args).run_as(65534, 65534).run();
        if r.stderr.contains("setpriv:") {
            return skip_or_fail(&format!("cannot run as uid 65534: {}", r.stderr.trim()));
        }
        Some(r)
    };
    // Prove the privilege drop works: the unprivileged user can list.
    let Some(r) = as_nobody(&["list"]) else { return };
    r.ok();

    let Some(r) = as_nobody(&["backup", "--json"]) else { return };
    let message = json_error(&r, 1, "permission-denied");
    assert!(message.contains(&secret.display().to_string()), "names the file: {message}");
    assert!(message.contains("Permission denied"), "{message}");
    r.says("run bwguard as the owner of the install, or as root");
    assert_eq!(id_dirs(&env.store), Vec::<String>::new(), "no snapshot left");
    assert_same_tree(&tree, &env.tree());

    // enable-scim stops at the same file, before config.yml is touched.
    let config = env.config();
    let Some(r) = as_nobody(&["enable-scim"]) else { return };
    r.code(1).says(&secret.display().to_string());
    assert_eq!(env.config(), config);
    assert_eq!(id_dirs(&env.store), Vec::<String>::new());
    assert_same_tree(&tree, &env.tree());
    assert_no_leftovers(&env);

    // Root refuses the store nobody made (nobody could plant anything
    // there); given back to root, the same install backs up fine.
    env.run(&["backup", "--json"]).error(5, "untrusted-store");
    assert!(Command::new("chown").args(["-R", "0:0"]).arg(&env.store).status().unwrap().success());
    env.backup();
}

/// Whether `prog` is on the PATH.
fn which(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

#[test]
fn a_read_only_store_fails_naming_it_and_read_only_commands_still_work() {
    let Some(m) = store_on_tmpfs("size=64m,mode=0700") else { return };
    let env = &m.env;
    let id = env.backup();
    m.mount.remount("ro");
    let (tree, store) = (env.tree(), env.store_tree());

    let r = env.run(&["backup", "--json"]);
    let message = json_error(&r, 1, "io");
    assert!(message.contains(&env.store.display().to_string()), "names the store: {message}");
    assert!(message.contains("Read-only file system"), "{message}");
    let r = env.run(&["enable-scim"]);
    r.code(1).says(&env.store.display().to_string());
    let r = env.run(&["rollback", &id, "--yes"]);
    r.code(1).says(&env.store.display().to_string());
    assert_same_tree(&tree, &env.tree());
    assert_same_tree(&store, &env.store_tree());

    // Reading needs no lock.
    assert_eq!(env.snapshot_ids(), vec![id.clone()]);
    env.run(&["verify", &id, "--deep"]).ok();
    env.run(&["status"]).ok();
    env.run(&["diff", &id]).ok();
}

#[test]
fn a_snapshot_id_that_names_nothing_is_a_usage_error() {
    let env = TestEnv::new();
    let real = env.backup();
    let (tree, store) = (env.tree(), env.store_tree());
    for id in ["20000101T000000Z", "20000101T000000Z-2", "nonsense", "../store"] {
        for cmd in [&["rollback", id, "--yes"][..], &["verify", id], &["verify", id, "--deep"], &["diff", id]]
        {
            let mut args = cmd.to_vec();
            args.push("--json");
            let r = env.run(&args);
            let message = json_error(&r, 2, "no-such-snapshot");
            assert!(message.contains(id), "{cmd:?}: {message}");
            r.says("bwguard list");
        }
    }
    assert_same_tree(&tree, &env.tree());
    assert_same_tree(&store, &env.store_tree());
    assert_eq!(env.snapshot_ids(), vec![real]);
}

#[test]
fn rollback_with_no_snapshot_is_refused() {
    let env = TestEnv::new();
    let tree = env.tree();
    // The store does not exist yet, then exists and holds none.
    for _ in 0..2 {
        let r = env.run(&["rollback", "--yes", "--json"]);
        let message = json_error(&r, 5, "no-snapshots");
        assert!(message.contains(&env.store.display().to_string()), "{message}");
        r.says("bwguard backup");
        env.run(&["rollback", "--yes"]).code(5).says(&env.store.display().to_string());
        fs::create_dir_all(&env.store).unwrap();
    }
    // An incomplete snapshot does not count.
    fs::create_dir(env.store.join("20000101T000000Z")).unwrap();
    env.run(&["rollback", "--yes"]).code(5);
    assert_same_tree(&tree, &env.tree());
}
