//! A hostile owner (docs/safety.md, "A hostile owner"): the install belongs
//! to an unprivileged user, as on a real host, and bwguard runs as root.
//! Every attack is staged by that user, `bwguard-owner` (made by the test
//! and removed when the test process ends), with that user's rights only
//! (`setpriv --reuid --regid --clear-groups`); each test asserts the secure
//! outcome: nothing outside the install written or read into a snapshot,
//! no setuid or root-owned file in the install, root's snapshots intact,
//! and no run hanging (every run has a time limit).
//!
//! The tests need root (CI runs as root); elsewhere they are skipped, or
//! fail under `CI`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bwguard::report::{BackupReport, RollbackReport, StatusReport};

use crate::support::{Bwguard, Run, TestEnv, assert_same_tree, tree_of};

/// The unprivileged owner.
const USER: &str = "bwguard-owner";
/// No run here may take longer.
const LIMIT: Duration = Duration::from_secs(60);

/// The owner's uid and gid, made once per test process; a watcher removes
/// the user when the process is gone.
fn owner() -> Option<(u32, u32)> {
    static MADE: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    let made = MADE.get_or_init(|| {
        if !bwguard::files::is_root() {
            return Err("the hostile-owner tests need root".into());
        }
        let sh = |script: &str| Command::new("sh").args(["-c", script]).output().map_err(|e| e.to_string());
        let out = sh(&format!("id -u {USER} >/dev/null 2>&1 || useradd -M -U -s /bin/sh {USER}"))?;
        if !out.status.success() {
            return Err(format!("cannot create {USER}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let watcher = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; userdel {USER} 2>/dev/null; groupdel {USER} 2>/dev/null",
            std::process::id()
        );
        crate::support::spawn_detached(&watcher).map_err(|e| e.to_string())?;
        let id = |flag: &str| -> Result<u32, String> {
            let out = sh(&format!("id {flag} {USER}"))?;
            String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("id {flag}: {e}"))
        };
        Ok((id("-u")?, id("-g")?))
    });
    match made {
        Ok(ids) => Some(*ids),
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// An install owned by the owner, root's store beside it (`env.store`,
/// root's, 0700, under a directory only root can write).
struct Owned {
    env: TestEnv,
    uid: u32,
    gid: u32,
}

impl Owned {
    fn new() -> Option<Owned> {
        let (uid, gid) = owner()?;
        let env = TestEnv::new();
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(&env.install).status();
        assert!(chown.unwrap().success());
        Some(Owned { env, uid, gid })
    }

    /// Runs `script` in the install directory as the owner, with the
    /// owner's rights only.
    #[track_caller]
    fn attack(&self, script: &str) -> Output {
        let out = self.attack_command(script).output().unwrap();
        assert!(
            out.status.success(),
            "the owner's script failed: {script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn attack_command(&self, script: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--", "sh", "-c", script])
            .current_dir(&self.env.install)
            .env("HOME", "/")
            .stdin(Stdio::null());
        c
    }

    /// Root's bwguard with root's store.
    fn root(&self, args: &[&str]) -> Run {
        self.env.bwguard(args).run_within(LIMIT)
    }

    /// Root's bwguard with `--store store`.
    fn root_with_store(&self, store: &Path, args: &[&str]) -> Run {
        Bwguard::new(&["--store".as_ref(), store.as_os_str()])
            .args(args)
            .current_dir(&self.env.install)
            .run_within(LIMIT)
    }

    /// Root's bwguard with no `--store`: the default.
    fn root_default_store(&self, args: &[&str]) -> Run {
        Bwguard::new(args).current_dir(&self.env.install).run_within(LIMIT)
    }

    /// A file outside the install that only root may change or read.
    fn victim(&self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.env.dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

/// Removes a default store under /var/lib/bwguard/stores/ when dropped.
struct SystemStore(Option<PathBuf>);

impl Drop for SystemStore {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Every entry of `root` that is root's or setuid/setgid, with its uid and mode.
fn root_or_setuid(root: &Path) -> Vec<(String, u32, u32)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let m = fs::symlink_metadata(e.path()).ok()?;
            let setid = m.mode() & 0o6000 != 0 && !m.file_type().is_symlink();
            (m.uid() == 0 || setid).then(|| (e.path().display().to_string(), m.uid(), m.mode() & 0o7777))
        })
        .collect()
}

/// Attack 1: a `lock` link in a store the owner controls.
#[test]
fn a_planted_lock_link_is_never_followed() {
    let Some(o) = Owned::new() else { return };
    let victim = o.victim("shadow", b"root:$6$precious:19000:0:99999:7:::\n", 0o640);
    let before = fs::read(&victim).unwrap();
    o.attack(&format!("mkdir -p bwguard-snapshots && ln -s {} bwguard-snapshots/lock", victim.display()));

    // Named, the owner's store is refused: exit 5, the link never opened.
    let planted = o.env.install.join("bwguard-snapshots");
    let r = o.root_with_store(&planted, &["backup", "--json"]);
    r.error(5, "untrusted-store");
    r.says(&planted.display().to_string());
    assert_eq!(fs::read(&victim).unwrap(), before, "the link's target changed");
    for args in [&["rollback", "--yes"][..], &["enable-scim"], &["prune", "--keep-last", "1"], &["verify"]] {
        o.root_with_store(&planted, args).code(5);
    }
    assert_eq!(fs::read(&victim).unwrap(), before, "the link's target changed");
    // A store root made inside the install is refused too: the owner can
    // rename it away and put another in its place.
    let inside = o.env.install.join("root-store");
    fs::create_dir(&inside).unwrap();
    fs::set_permissions(&inside, fs::Permissions::from_mode(0o700)).unwrap();
    o.root_with_store(&inside, &["backup", "--json"]).error(5, "untrusted-store");

    // By default, root's store for this install is outside it, root's only;
    // the owner's old store is named in a warning and left alone.
    let r = o.root_default_store(&["backup", "--json"]);
    r.ok();
    let store = PathBuf::from(r.parse::<BackupReport>().snapshot.path).parent().unwrap().to_path_buf();
    let _cleanup = SystemStore(Some(store.clone()));
    assert!(store.starts_with("/var/lib/bwguard/stores"), "{}", store.display());
    assert!(
        r.stderr.contains(&planted.display().to_string()),
        "no warning about the ignored store: {}",
        r.stderr
    );
    let meta = fs::metadata(&store).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o077), (0, 0), "the default store is root's and private");
    assert_eq!(fs::read(&victim).unwrap(), before, "the link's target changed");
    assert!(fs::symlink_metadata(planted.join("lock")).unwrap().file_type().is_symlink(), "left alone");
    let status: StatusReport = o.root_default_store(&["status", "--json"]).ok().parse();
    assert_eq!(Path::new(&status.store), store);
}

/// Attack 2: a forged store with a setuid root entry, and root-owned or
/// setuid entries in root's own snapshot of the owner's install.
#[test]
fn no_snapshot_makes_a_setuid_or_root_file_in_the_owners_install() {
    let Some(o) = Owned::new() else { return };
    // The owner's own store, with a snapshot of its making: refused whole.
    o.attack("cp /bin/sh bwdata/env/sh && chmod 4755 bwdata/env/sh");
    let forged = o.env.install.join("forged");
    let made = Bwguard::new(&["--store".as_ref(), forged.as_os_str(), "backup".as_ref()])
        .current_dir(&o.env.install)
        .run_as(o.uid, o.gid)
        .run_within(LIMIT);
    made.ok();
    o.attack("rm bwdata/env/sh");
    let tree = o.env.tree();
    for args in [&["verify", "--deep", "--json"][..], &["rollback", "--yes", "--json"], &["list", "--json"]] {
        o.root_with_store(&forged, args).error(5, "untrusted-store");
    }
    assert_same_tree(&tree, &o.env.tree());
    assert!(!o.env.install.join("bwdata/env/sh").exists());

    // Root's own snapshot of an install holding a root-owned setuid file (a
    // root-run script left it) and the owner's setuid copy of a shell.
    let root_suid = o.env.install.join("bwdata/nginx/tool");
    fs::copy("/bin/sh", &root_suid).unwrap();
    fs::set_permissions(&root_suid, fs::Permissions::from_mode(0o4755)).unwrap();
    o.attack("cp /bin/sh bwdata/env/sh && chmod 6755 bwdata/env/sh");
    assert_eq!(fs::metadata(&root_suid).unwrap().uid(), 0);
    let id = o.env.backup();
    fs::remove_file(&root_suid).unwrap();
    o.attack("rm bwdata/env/sh");
    let r = o.root(&["rollback", &id, "--yes", "--json"]);
    r.ok();
    let report: RollbackReport = r.parse();
    for rel in ["bwdata/nginx/tool", "bwdata/env/sh"] {
        assert!(report.owners_clamped.iter().any(|c| c.contains(rel)), "{rel} not reported: {report:?}");
        let m = fs::metadata(o.env.install.join(rel)).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (o.uid, o.gid, 0o755), "{rel}");
    }
    assert_eq!(root_or_setuid(&o.env.install), Vec::new());
    let said = format!("{}{}", r.stdout, r.stderr);
    let r = o.root(&["rollback", &id, "--yes"]);
    r.ok();
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("setuid") || said.contains("setuid"),
        "the clamping is not said: {said}"
    );
    // The snapshot itself still says what was there: restored as root into
    // a root-owned copy of the install, the bits come back.
    o.root(&["verify", &id, "--deep"]).ok();
}

/// Attack 3: a crafted rollback journal.
#[test]
fn a_crafted_journal_never_deletes_roots_snapshots() {
    let Some(o) = Owned::new() else { return };
    let first = o.env.backup();
    o.env.backup();
    let store = o.env.store_tree();
    let journal = |units: &str| {
        format!(
            r#"{{"id":"{first}","before":"{first}","install_dir":"{}","phase":"swapping","units":[{units}]}}"#,
            o.env.install.display()
        )
    };
    // In a store of the owner's: refused before the journal is read.
    let escape = format!(
        r#"{{"rel":"../store","in_snapshot":true}},{{"rel":"{}","in_snapshot":false}}"#,
        o.env.store.display()
    );
    o.attack(&format!("mkdir -p own && printf '%s' '{}' > own/rollback-journal.json", journal(&escape)));
    let own = o.env.install.join("own");
    o.root_with_store(&own, &["backup", "--json"]).error(5, "untrusted-store");
    o.root_with_store(&own, &["status"]).code(5);
    assert_same_tree(&store, &o.env.store_tree());

    // In root's own store (damaged, say): parts outside the data directory
    // are refused, and nothing is renamed or deleted.
    let journal_path = o.env.store.join("rollback-journal.json");
    let tree = o.env.tree();
    for units in [
        r#"{"rel":"bwdata/../../store","in_snapshot":true}"#.to_string(),
        r#"{"rel":"store","in_snapshot":false}"#.to_string(),
        r#"{"rel":"/etc","in_snapshot":false}"#.to_string(),
        r#"{"rel":"bwdata/mssql/../../..","in_snapshot":false}"#.to_string(),
    ] {
        fs::write(&journal_path, journal(&units)).unwrap();
        fs::set_permissions(&journal_path, fs::Permissions::from_mode(0o600)).unwrap();
        let r = o.root(&["backup", "--json"]);
        r.error(1, "bad-state-file");
        assert!(o.env.snap_dir(&first).join("manifest.json").is_file(), "root's snapshot went");
        assert_same_tree(&tree, &o.env.tree());
    }
    fs::remove_file(&journal_path).unwrap();
    assert_same_tree(&store, &o.env.store_tree());
    o.root(&["verify", "--all", "--deep"]).ok();
}

/// Attack 4: a symlinked directory in the install when root rolls back.
#[test]
fn rollback_never_writes_through_a_symlinked_directory() {
    let Some(o) = Owned::new() else { return };
    let id = o.env.backup();
    let outside = o.env.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"root's\n").unwrap();
    let outside_before = tree_of(&outside, true);
    for dir in ["bwdata/scripts", "bwdata/env", "bwdata"] {
        o.attack(&format!("mv {dir} {dir}.real && ln -s {} {dir}", outside.display()));
        let r = o.root(&["rollback", &id, "--yes", "--json"]);
        assert_same_tree(&outside_before, &tree_of(&outside, true));
        if r.code == 0 {
            // The link itself was a part's path and was replaced: the part is
            // a real directory again.
            let m = fs::symlink_metadata(o.env.install.join(dir)).unwrap();
            assert!(m.is_dir(), "{dir} is not a directory after the rollback");
        } else {
            r.says("link");
            o.attack(&format!("rm {dir} && mv {dir}.real {dir}"));
        }
        o.attack(&format!("rm -rf {dir}.real"));
    }
    assert_eq!(root_or_setuid(&o.env.install), Vec::new());
}

/// Attack 5: files swapped for links to a root-only file, renamed over, and
/// added or removed while root backs up.
#[test]
fn a_file_swapped_during_backup_is_never_archived_under_the_owners_name() {
    let Some(o) = Owned::new() else { return };
    let secret = o.victim("secret", b"ROOT-ONLY-SECRET\n", 0o600);
    let stop = o.env.dir.path().join("stop");
    let script = format!(
        "i=0; while [ ! -e {stop} ]; do i=$((i+1)); \
           ln -sf {secret} bwdata/env/l.tmp && mv -f bwdata/env/l.tmp bwdata/env/global.override.env; \
           printf 'globalSettings__x=%s\\n' $i > bwdata/env/f.tmp && mv -f bwdata/env/f.tmp bwdata/env/global.override.env; \
           : > bwdata/env/new$i; rm -f bwdata/env/new$((i-1)); \
         done",
        stop = stop.display(),
        secret = secret.display()
    );
    let mut racer = o.attack_command(&script).spawn().unwrap();
    let (mut ok, mut failed) = (Vec::new(), 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && ok.len() + failed < 12 {
        let r = o.root(&["backup", "--json"]);
        if r.code == 0 {
            ok.push(r.json()["id"].as_str().unwrap().to_string());
        } else {
            let kind = r.json()["error"]["kind"].as_str().unwrap_or_default().to_string();
            assert!(
                ["changed-meanwhile", "not-a-plain-file", "link-outside-install", "io"]
                    .contains(&kind.as_str()),
                "unexpected failure {kind}: {}",
                r.stdout
            );
            failed += 1;
        }
    }
    fs::write(&stop, b"").unwrap();
    racer.wait().unwrap();
    assert!(failed > 0 || !ok.is_empty());
    for id in &ok {
        let out = o.env.dir.path().join(format!("x-{id}"));
        fs::create_dir(&out).unwrap();
        let archive = o.env.snap_dir(id).join("data.tar.gz");
        assert!(
            Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&out).status().unwrap().success()
        );
        for e in walkdir::WalkDir::new(&out).into_iter().flatten().filter(|e| e.file_type().is_file()) {
            let bytes = fs::read(e.path()).unwrap();
            assert!(
                !bytes.windows(16).any(|w| w == b"ROOT-ONLY-SECRET"),
                "{id} archived the secret as {}",
                e.path().display()
            );
        }
        o.root(&["verify", id, "--deep"]).ok();
    }
}

/// Attack 6: FIFOs and devices where bwguard reads a file.
#[test]
fn fifos_and_devices_never_hang_a_run_or_hold_the_lock() {
    let Some(o) = Owned::new() else { return };
    o.env.backup();
    let store = o.env.store_tree();
    for (file, attack) in [
        ("bwdata/config.yml", "mkfifo"),
        ("bwdata/config.yml", "ln -s /dev/zero"),
        ("bwdata/env/global.override.env", "mkfifo"),
        ("bwdata/env/uid.env", "ln -s /dev/zero"),
        ("bitwarden.sh", "mkfifo"),
    ] {
        o.attack(&format!("mv {file} {file}.real"));
        if attack == "mkfifo" {
            o.attack(&format!("mkfifo {file}"));
        } else {
            o.attack(&format!("{attack} {file}"));
        }
        let t = Instant::now();
        let r = o.root(&["backup", "--json"]);
        assert_ne!(r.code, 0, "{file} as {attack}: backed up\n{}", r.stdout);
        o.root(&["status"]);
        o.root(&["enable-scim", "--dry-run"]);
        assert!(t.elapsed() < LIMIT, "{file} as {attack}");
        assert_same_tree(&store, &o.env.store_tree());
        o.attack(&format!("rm {file} && mv {file}.real {file}"));
        // The lock was released: the next run goes through.
        let id = o.env.backup();
        o.root(&["--yes", "forget", &id]).ok();
    }
}

/// Escapes: a note, the version pins and file names never reach the
/// terminal raw.
#[test]
fn terminal_escapes_from_notes_pins_and_names_are_escaped() {
    let Some(o) = Owned::new() else { return };
    let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    o.root(&["backup", "--note", esc]).code(2).says("control character");
    o.attack("sed -i 's/^COREVERSION=.*/COREVERSION=\"2026.8.0\\x1b]0;owned\\x07\\x1b[2J\"/' bitwarden.sh");
    o.attack("mkfifo \"$(printf 'bwdata/env/\\033[31mred')\"");
    for args in [&["status"][..], &["backup"], &["list"], &["status", "-v"]] {
        let r = o.root(args);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{args:?} printed a raw escape: {all:?}");
    }
    let r = o.root(&["backup"]);
    assert!(r.stderr.contains("\\u{1b}[31mred"), "the name is shown escaped: {}", r.stderr);
}
