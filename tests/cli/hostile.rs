//! Damaged and hostile snapshots (safety rules 3 and 4): `verify` (plain or
//! `--deep`) and `rollback` exit 3 on each, and a refused rollback leaves the
//! install, the store and everything outside the install as they were.
//!
//! Tampered snapshots are real snapshots damaged afterwards. Hostile ones
//! hold an archive crafted here with hand-written ustar headers (GNU tar
//! refuses or rewrites `..`, absolute names, hard links and devices), with the
//! manifest, `SHA256SUMS` and `data.tar.gz.sha256` rewritten to agree with
//! it, so the archive checksum passes and only the per-entry checks can
//! catch the entry.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bwguard::engine::manifest::{Entry, EntryType, Manifest, Part, hex, render_archive_sum, render_sums};
use sha2::{Digest, Sha256};

use crate::support::{Run, TestEnv, assert_same_tree};

/// Staging directories a rollback may create, relative to the install.
const STAGING: [&str; 4] = [
    "bwdata/.bwguard-staging",
    "bwdata/core/.bwguard-staging",
    "bwdata/scripts/.bwguard-staging",
    ".bwguard-staging",
];

/// Modification time of every crafted entry.
const MTIME: i64 = 1_790_000_000;

// ---------------------------------------------------------------------------
// Snapshot files

fn read_manifest(env: &TestEnv, id: &str) -> Manifest {
    Manifest::parse(&fs::read(env.snap_dir(id).join("manifest.json")).unwrap()).unwrap()
}

fn write_manifest(env: &TestEnv, m: &Manifest) {
    fs::write(env.snap_dir(&m.id).join("manifest.json"), m.render()).unwrap();
}

fn write_sums(env: &TestEnv, m: &Manifest) {
    fs::write(env.snap_dir(&m.id).join("SHA256SUMS"), render_sums(&m.entries)).unwrap();
}

/// Records the archive as it now is in the manifest and `data.tar.gz.sha256`,
/// so the archive checksum agrees with whatever was done to it.
fn reseal_archive(env: &TestEnv, m: &mut Manifest) {
    let snap = env.snap_dir(&m.id);
    let bytes = fs::read(snap.join("data.tar.gz")).unwrap();
    m.archive.size = bytes.len() as u64;
    m.archive.sha256 = hex(&Sha256::digest(&bytes));
    fs::write(snap.join("data.tar.gz.sha256"), render_archive_sum(&m.archive.sha256)).unwrap();
    write_manifest(env, m);
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------
// Assertions

/// Everything a refused rollback must leave as it was.
struct Before {
    tree: std::collections::BTreeMap<String, String>,
    store: std::collections::BTreeMap<String, String>,
    ids: Vec<String>,
}

fn before(env: &TestEnv) -> Before {
    Before { tree: env.tree(), store: env.store_tree(), ids: env.snapshot_ids() }
}

/// Runs `rollback ID --yes` and asserts exit 3 with nothing changed: the
/// install tree, the store (no `before rollback` snapshot kept, no journal)
/// and no staging directory left.
#[track_caller]
fn assert_rollback_refused(env: &TestEnv, id: &str) -> Run {
    let was = before(env);
    let r = env.run(&["rollback", id, "--yes"]);
    r.code(3).says(id);
    assert_same_tree(&was.tree, &env.tree());
    for s in STAGING {
        assert!(!env.install.join(s).exists(), "{s} left behind\n{}", r.stderr);
    }
    assert!(!env.store.join("rollback-journal.json").exists(), "journal left behind");
    assert_eq!(was.ids, env.snapshot_ids(), "the list of snapshots changed");
    assert_same_tree(&was.store, &env.store_tree());
    r
}

/// Both verify modes fail with exit 3 (the damage is visible to checksums).
#[track_caller]
fn assert_verify_fails(env: &TestEnv, id: &str) {
    env.run(&["verify", id]).code(3).says(id);
    env.run(&["verify", "--deep", id]).code(3).says(id);
}

/// Plain verify passes (the checksum files agree) and `--deep` exits 3.
#[track_caller]
/// The archive checksum is sealed (so the refusal below comes from checking
/// the entries or the manifest's own entries), and deep verify exits 3.
/// Plain verify may exit 3 as well when the manifest itself lists a
/// hostile entry.
fn assert_sealed_and_deep_fails(env: &TestEnv, id: &str) {
    let sealed = std::process::Command::new("sha256sum")
        .args(["-c", "data.tar.gz.sha256"])
        .current_dir(env.snap_dir(id))
        .output()
        .unwrap();
    assert!(sealed.status.success(), "the crafted archive's checksum must agree");
    let r = env.run(&["verify", "--deep", id, "--json"]);
    r.code(3);
    assert_eq!(r.json()["error"]["code"], 3, "{}", r.stdout);
}

fn assert_only_deep_fails(env: &TestEnv, id: &str) {
    env.run(&["verify", id]).ok();
    let r = env.run(&["verify", "--deep", id, "--json"]);
    r.code(3);
    assert_eq!(r.json()["error"]["code"], 3, "{}", r.stdout);
}

// ---------------------------------------------------------------------------
// Tampered snapshots

#[test]
fn a_flipped_byte_in_the_archive_is_refused() {
    let env = TestEnv::new();
    let id = env.backup();
    let archive = env.snap_dir(&id).join("data.tar.gz");
    let len = fs::metadata(&archive).unwrap().len() as usize;
    flip_byte(&archive, len / 2);
    assert_verify_fails(&env, &id);
    assert_rollback_refused(&env, &id);
}

#[test]
fn a_truncated_archive_is_refused() {
    let env = TestEnv::new();
    let id = env.backup();
    let archive = env.snap_dir(&id).join("data.tar.gz");
    let len = fs::metadata(&archive).unwrap().len();
    fs::OpenOptions::new().write(true).open(&archive).unwrap().set_len(len * 2 / 3).unwrap();
    assert_verify_fails(&env, &id);
    assert_rollback_refused(&env, &id);
}

#[test]
fn a_truncated_archive_with_resealed_checksums_is_caught_by_deep_verify_and_rollback() {
    let env = TestEnv::new();
    let id = env.backup();
    let archive = env.snap_dir(&id).join("data.tar.gz");
    let len = fs::metadata(&archive).unwrap().len();
    fs::OpenOptions::new().write(true).open(&archive).unwrap().set_len(len * 2 / 3).unwrap();
    let mut m = read_manifest(&env, &id);
    reseal_archive(&env, &mut m);
    assert_only_deep_fails(&env, &id);
    assert_rollback_refused(&env, &id);
}

#[test]
fn a_directory_without_manifest_is_not_a_snapshot() {
    let env = TestEnv::new();
    let id = env.backup();
    fs::remove_file(env.snap_dir(&id).join("manifest.json")).unwrap();
    assert!(env.snapshot_ids().is_empty(), "list shows an incomplete snapshot");
    let list = env.run(&["list"]);
    list.ok();
    assert!(!list.stdout.contains(&id), "{}", list.stdout);
    env.run(&["verify", &id]).code(3).says(&id);
    env.run(&["verify", "--deep", &id]).code(3).says(&id);
    assert_rollback_refused(&env, &id);
    // The next writing run removes it and says so.
    let r = env.run(&["backup", "--json"]);
    r.ok().says("incomplete").says(&id);
    let new = r.json()["id"].as_str().unwrap().to_string();
    if new != id {
        assert!(!env.snap_dir(&id).exists(), "the incomplete snapshot is still there");
    }
    assert_eq!(env.snapshot_ids(), [new]);
}

/// Changes one hex digit of vault.mdf's SHA-256 in the manifest.
fn corrupt_vault_sum(env: &TestEnv, id: &str) -> Manifest {
    let mut m = read_manifest(env, id);
    let e = m.entries.iter_mut().find(|e| e.path == "bwdata/mssql/data/vault.mdf").unwrap();
    let sum = e.sha256.as_mut().unwrap();
    let first = if sum.starts_with('0') { "1" } else { "0" };
    sum.replace_range(0..1, first);
    write_manifest(env, &m);
    m
}

#[test]
fn a_wrong_file_checksum_in_the_manifest_fails_plain_verify() {
    let env = TestEnv::new();
    let id = env.backup();
    corrupt_vault_sum(&env, &id);
    // SHA256SUMS now disagrees with the manifest, and the error names the entry.
    assert_verify_fails(&env, &id);
    let r = env.run(&["verify", &id]);
    r.code(3).says("the checksum of bwdata/mssql/data/vault.mdf differs");
    assert_eq!(format!("{}{}", r.stdout, r.stderr).matches("differs").count(), 1, "said once: {r:?}");
    assert_eq!(r.stdout, format!("{id}  FAILED\n"));
    // On a terminal the mark is red.
    let r = env.bwguard(&["verify", &id]).on_terminal().run();
    assert!(r.stdout.contains("\u{1b}[1;31mFAILED\u{1b}[0m"), "{r:?}");
    assert_rollback_refused(&env, &id);
}

#[test]
fn a_wrong_file_checksum_agreed_by_sha256sums_is_caught_by_deep_verify_and_rollback() {
    let env = TestEnv::new();
    let id = env.backup();
    let m = corrupt_vault_sum(&env, &id);
    write_sums(&env, &m);
    assert_only_deep_fails(&env, &id);
    let r = assert_rollback_refused(&env, &id);
    r.says("vault.mdf");
}

#[test]
fn a_missing_checksum_file_is_refused() {
    for name in ["data.tar.gz.sha256", "SHA256SUMS", "data.tar.gz"] {
        let env = TestEnv::new();
        let id = env.backup();
        fs::remove_file(env.snap_dir(&id).join(name)).unwrap();
        assert_verify_fails(&env, &id);
        assert_rollback_refused(&env, &id).says(name);
    }
}

#[test]
fn garbage_after_the_last_gzip_member_is_caught_by_deep_verify() {
    let env = TestEnv::new();
    let id = env.backup();
    append_garbage(&env, &id);
    assert_only_deep_fails(&env, &id);
}

#[test]
fn garbage_after_the_last_gzip_member_makes_rollback_exit_3() {
    let env = TestEnv::new();
    let id = env.backup();
    append_garbage(&env, &id);
    assert_rollback_refused(&env, &id);
}

/// Appends bytes after the last gzip member and reseals the archive checksum,
/// so only a reader that goes to the end can see them.
fn append_garbage(env: &TestEnv, id: &str) {
    let archive = env.snap_dir(id).join("data.tar.gz");
    fs::OpenOptions::new().append(true).open(&archive).unwrap().write_all(b"trailing garbage\n").unwrap();
    let mut m = read_manifest(env, id);
    reseal_archive(env, &mut m);
}

// ---------------------------------------------------------------------------
// Crafted archives

/// One entry of a crafted archive.
struct Item {
    /// Name in the tar header.
    path: String,
    /// ustar type flag: b'0' file, b'1' hard link, b'2' symlink, b'3' char
    /// device, b'4' block device, b'5' directory, b'6' fifo.
    flag: u8,
    body: Vec<u8>,
    /// Link name (hard and symbolic links).
    link: String,
    /// Whether the manifest lists it.
    listed: bool,
}

fn file(path: &str, body: &[u8]) -> Item {
    Item { path: path.into(), flag: b'0', body: body.to_vec(), link: String::new(), listed: true }
}

fn dir(path: &str) -> Item {
    Item { path: path.into(), flag: b'5', body: Vec::new(), link: String::new(), listed: true }
}

fn symlink(path: &str, target: &str) -> Item {
    Item { path: path.into(), flag: b'2', body: Vec::new(), link: target.into(), listed: true }
}

fn special(path: &str, flag: u8, link: &str) -> Item {
    Item { path: path.into(), flag, body: Vec::new(), link: link.into(), listed: true }
}

fn unlisted(item: Item) -> Item {
    Item { listed: false, ..item }
}

impl Item {
    fn mode(&self) -> u32 {
        match self.flag {
            b'5' => 0o755,
            b'2' => 0o777,
            _ => 0o644,
        }
    }

    /// How the manifest describes it; kinds the manifest has no word for
    /// (links, devices) are described as empty files.
    fn entry(&self, uid: u32, gid: u32) -> Entry {
        let kind = match self.flag {
            b'5' => EntryType::Dir,
            b'2' => EntryType::Symlink,
            _ => EntryType::File,
        };
        Entry {
            path: self.path.clone(),
            kind,
            size: self.body.len() as u64,
            sha256: (kind == EntryType::File).then(|| hex(&Sha256::digest(&self.body))),
            target: (kind == EntryType::Symlink).then(|| self.link.clone()),
            mode: self.mode(),
            uid,
            gid,
            mtime: MTIME,
        }
    }

    /// A 512-byte ustar header, names longer than 100 bytes split into
    /// prefix and name.
    fn header(&self, uid: u32, gid: u32) -> [u8; 512] {
        fn octal(field: &mut [u8], v: u64) {
            let s = format!("{v:0w$o}\0", w = field.len() - 1);
            field.copy_from_slice(s.as_bytes());
        }
        let mut h = [0u8; 512];
        let path = self.path.as_bytes();
        let (prefix, name) = if path.len() <= 100 {
            (&b""[..], path)
        } else {
            let cut = (0..path.len()).rev().find(|&i| path[i] == b'/' && path.len() - i - 1 <= 100).unwrap();
            (&path[..cut], &path[cut + 1..])
        };
        assert!(prefix.len() <= 155 && self.link.len() <= 100, "name too long for ustar");
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(self.mode()));
        octal(&mut h[108..116], u64::from(uid));
        octal(&mut h[116..124], u64::from(gid));
        octal(&mut h[124..136], self.body.len() as u64);
        octal(&mut h[136..148], MTIME as u64);
        h[156] = self.flag;
        h[157..157 + self.link.len()].copy_from_slice(self.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if matches!(self.flag, b'3' | b'4') {
            // 1,3 is /dev/null; 7,0 is /dev/loop0.
            octal(&mut h[329..337], if self.flag == b'3' { 1 } else { 7 });
            octal(&mut h[337..345], if self.flag == b'3' { 3 } else { 0 });
        }
        h[345..345 + prefix.len()].copy_from_slice(prefix);
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
}

/// A tar stream of `items`, gzipped by the system's `gzip -n`.
fn tar_gz(items: &[Item], uid: u32, gid: u32) -> Vec<u8> {
    let mut tar = Vec::new();
    for item in items {
        tar.extend_from_slice(&item.header(uid, gid));
        tar.extend_from_slice(&item.body);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gzip = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is needed to craft archives");
    let mut stdin = gzip.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&tar).unwrap());
    let out = gzip.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// Takes a real snapshot and replaces its archive with `items` under the
/// parts `bwdata/config.yml` and `bwdata/mssql`, rewriting the manifest,
/// `SHA256SUMS` and `data.tar.gz.sha256` to agree with it. Returns the id.
fn crafted_snapshot(env: &TestEnv, items: &[Item]) -> String {
    let id = env.backup();
    let owner = fs::metadata(env.bwdata()).unwrap();
    let (uid, gid) = (owner.uid(), owner.gid());
    fs::write(env.snap_dir(&id).join("data.tar.gz"), tar_gz(items, uid, gid)).unwrap();
    let mut m = read_manifest(env, &id);
    m.scope = "partial".into();
    m.parts = ["bwdata/config.yml", "bwdata/mssql"]
        .into_iter()
        .map(|p| Part { path: p.into(), present: true })
        .collect();
    m.entries = items.iter().filter(|i| i.listed).map(|i| i.entry(uid, gid)).collect();
    write_sums(env, &m);
    reseal_archive(env, &mut m);
    id
}

/// `config.yml` and `bwdata/mssql`, the legitimate start of every crafted archive.
fn start() -> Vec<Item> {
    vec![file("bwdata/config.yml", b"# crafted\nenable_scim: false\n"), dir("bwdata/mssql")]
}

/// A legitimate entry after the hostile ones, so a reader must pass them.
fn end() -> Item {
    file("bwdata/mssql/zz-last.txt", b"last\n")
}

/// The crafted snapshot of `hostile` between [`start`] and [`end`]: plain
/// verify passes, `verify --deep` and `rollback` exit 3 changing nothing,
/// and none of `must_not_exist` exists afterwards.
#[track_caller]
fn assert_hostile_refused(env: &TestEnv, hostile: Vec<Item>, must_not_exist: &[PathBuf]) -> Run {
    let mut items = start();
    items.extend(hostile);
    items.push(end());
    let id = crafted_snapshot(env, &items);
    assert_sealed_and_deep_fails(env, &id);
    let r = assert_rollback_refused(env, &id);
    for p in must_not_exist {
        assert!(fs::symlink_metadata(p).is_err(), "{} was written\n{}", p.display(), r.stderr);
    }
    r
}

#[test]
fn a_crafted_archive_without_hostile_entries_is_restored() {
    // The crafting is right: without a hostile entry the same snapshot passes
    // every check and restores, so the refusals below come from the entry.
    let env = TestEnv::new();
    let mut items = start();
    items.push(dir("bwdata/mssql/data"));
    items.push(file("bwdata/mssql/data/vault.mdf", b"crafted vault"));
    items.push(symlink("bwdata/mssql/latest", "data/vault.mdf"));
    items.push(end());
    let id = crafted_snapshot(&env, &items);
    env.run(&["verify", &id]).ok();
    env.run(&["verify", "--deep", &id]).ok();
    env.run(&["rollback", &id, "--yes"]).ok();
    assert_eq!(env.config(), b"# crafted\nenable_scim: false\n");
    assert_eq!(fs::read(env.bwdata().join("mssql/latest")).unwrap(), b"crafted vault");
    assert_eq!(fs::read(env.bwdata().join("mssql/zz-last.txt")).unwrap(), b"last\n");
    assert!(env.bwdata().join("env").is_dir(), "parts outside the manifest are left alone");
}

#[test]
fn a_dotdot_path_is_refused() {
    let env = TestEnv::new();
    let outside = env.dir.path().join("escape.txt");
    assert_hostile_refused(&env, vec![file("bwdata/../../escape.txt", b"escaped\n")], &[outside]);
}

#[test]
fn a_dotdot_path_inside_a_part_is_refused() {
    // Inside `bwdata/mssql` as a prefix, so it would be staged with that part.
    let env = TestEnv::new();
    let outside = env.dir.path().join("escape.txt");
    assert_hostile_refused(&env, vec![file("bwdata/mssql/../../../escape.txt", b"escaped\n")], &[outside]);
}

#[test]
fn an_absolute_path_is_refused() {
    let env = TestEnv::new();
    let abs = env.dir.path().join("abs.txt");
    assert_hostile_refused(&env, vec![file(abs.to_str().unwrap(), b"absolute\n")], &[abs]);
}

#[test]
fn a_symlink_to_the_root_and_a_file_through_it_are_refused() {
    let env = TestEnv::new();
    let name = format!("bwguard-pwned-{}.txt", env.dir.path().file_name().unwrap().to_string_lossy());
    let hostile = vec![symlink("bwdata/mssql/evil", "/"), file(&format!("bwdata/mssql/evil/{name}"), b"x")];
    assert_hostile_refused(&env, hostile, &[Path::new("/").join(name)]);
}

#[test]
fn a_symlink_climbing_out_and_a_file_through_it_are_refused() {
    // From the staging copy of mssql, ../../../.. is the directory holding
    // the install; from the install's mssql it is above the install.
    let env = TestEnv::new();
    let hostile =
        vec![symlink("bwdata/mssql/evil", "../../../.."), file("bwdata/mssql/evil/pwned.txt", b"x")];
    let r = assert_hostile_refused(&env, hostile, &[env.dir.path().join("pwned.txt")]);
    r.says("evil");
}

#[test]
fn an_absolute_symlink_to_a_directory_outside_and_a_file_through_it_are_refused() {
    let env = TestEnv::new();
    let outside = env.dir.path().to_str().unwrap().to_string();
    let hostile = vec![symlink("bwdata/mssql/evil", &outside), file("bwdata/mssql/evil/pwned.txt", b"x")];
    assert_hostile_refused(&env, hostile, &[env.dir.path().join("pwned.txt")]);
}

#[test]
fn a_file_through_a_symlink_pointing_inside_the_install_is_refused() {
    // The link is allowed, but from the staging copy of mssql ../../env is
    // the live bwdata/env: a file through it would land in the install.
    let env = TestEnv::new();
    let hostile =
        vec![symlink("bwdata/mssql/inner", "../../env"), file("bwdata/mssql/inner/pwned.txt", b"x")];
    let must_not = [env.bwdata().join("env/pwned.txt"), env.install.join("env")];
    assert_hostile_refused(&env, hostile, &must_not).says("inner/pwned.txt");
}

#[test]
fn a_file_inside_a_file_is_refused() {
    let env = TestEnv::new();
    let hostile = vec![file("bwdata/mssql/plain", b"a file\n"), file("bwdata/mssql/plain/under.txt", b"x")];
    assert_hostile_refused(&env, hostile, &[]);
}

#[test]
fn a_hard_link_is_refused() {
    let env = TestEnv::new();
    let outside = env.dir.path().join("outside.txt");
    fs::write(&outside, b"outside the install\n").unwrap();
    let hostile = vec![special("bwdata/mssql/hard", b'1', outside.to_str().unwrap())];
    assert_hostile_refused(&env, hostile, &[]).says("hard");
    let m = fs::metadata(&outside).unwrap();
    assert_eq!(m.nlink(), 1, "a hard link to {} was made", outside.display());
    assert_eq!(fs::read(&outside).unwrap(), b"outside the install\n");
}

#[test]
fn a_hard_link_to_a_file_of_the_install_is_refused() {
    let env = TestEnv::new();
    let nlink = fs::metadata(env.config_path()).unwrap().nlink();
    let hostile = vec![special("bwdata/mssql/hard", b'1', "bwdata/config.yml")];
    assert_hostile_refused(&env, hostile, &[]);
    assert_eq!(fs::metadata(env.config_path()).unwrap().nlink(), nlink);
}

#[test]
fn a_character_device_is_refused() {
    let env = TestEnv::new();
    assert_hostile_refused(&env, vec![special("bwdata/mssql/null", b'3', "")], &[]).says("null");
}

#[test]
fn a_block_device_and_a_fifo_are_refused() {
    for (name, flag) in [("block", b'4'), ("fifo", b'6')] {
        let env = TestEnv::new();
        let path = format!("bwdata/mssql/{name}");
        assert_hostile_refused(&env, vec![special(&path, flag, "")], &[]).says(&path);
    }
}

#[test]
fn an_entry_not_in_the_manifest_is_refused() {
    let env = TestEnv::new();
    let hostile = vec![unlisted(file("bwdata/mssql/extra.txt", b"not in the manifest\n"))];
    assert_hostile_refused(&env, hostile, &[]).says("extra.txt");
}

#[test]
fn an_entry_not_in_the_manifest_after_the_last_listed_one_makes_rollback_exit_3() {
    let env = TestEnv::new();
    let mut items = start();
    items.push(end());
    items.push(unlisted(file("bwdata/mssql/extra.txt", b"not in the manifest\n")));
    let id = crafted_snapshot(&env, &items);
    assert_only_deep_fails(&env, &id);
    assert_rollback_refused(&env, &id);
}

#[test]
fn a_dotdot_entry_after_every_restored_entry_makes_rollback_exit_3() {
    let env = TestEnv::new();
    let mut items = start();
    items.push(end());
    items.push(file("bwdata/../../escape.txt", b"escaped\n"));
    let id = crafted_snapshot(&env, &items);
    assert_sealed_and_deep_fails(&env, &id);
    assert_rollback_refused(&env, &id);
    assert!(!env.dir.path().join("escape.txt").exists());
}

#[test]
fn rollback_only_config_of_a_snapshot_holding_a_dotdot_entry_exits_3() {
    let env = TestEnv::new();
    let mut items = start();
    items.push(file("bwdata/mssql/../../../escape.txt", b"escaped\n"));
    items.push(end());
    let id = crafted_snapshot(&env, &items);
    let was = before(&env);
    env.run(&["rollback", &id, "--only", "config", "--yes"]).code(3);
    assert_same_tree(&was.tree, &env.tree());
    assert_eq!(was.ids, env.snapshot_ids());
}
