//! Crash consistency (safety rule 2): `backup`, `enable-scim` and `rollback`
//! are killed with SIGKILL at random instants over their whole run, and
//! after every kill the invariants are checked:
//! - config.yml holds either the old or the new bytes;
//! - every part of the install (mssql above all) is either the old or the
//!   restored tree, and nothing else in the install changed;
//! - every snapshot that `list` shows passes `verify --deep`;
//! - the next run succeeds and leaves no leftovers.
//!
//! Kills per command: 40 when `CI` is set (120 in all), 12 otherwise, or
//! `BWGUARD_CRASH_KILLS` (e.g. 1000 for a long local run). The random seed is
//! printed; `BWGUARD_CRASH_SEED` replays one.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use crate::support::TestEnv;

/// A small deterministic PRNG (xorshift64*), seeded per test.
struct Rng(u64);

impl Rng {
    fn seeded(label: &str) -> Self {
        let seed =
            std::env::var("BWGUARD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
            });
        eprintln!("{label}: BWGUARD_CRASH_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn kills_wanted() -> usize {
    if let Some(n) = std::env::var("BWGUARD_CRASH_KILLS").ok().and_then(|s| s.parse().ok()) {
        return n;
    }
    if std::env::var_os("CI").is_some() { 40 } else { 12 }
}

type Tree = BTreeMap<String, String>;

/// One prepared install: the extra arguments of the run, the tree before
/// it, and the tree a completed run leaves (config.yml compared by bytes).
pub(crate) struct Case {
    env: TestEnv,
    extra: Vec<String>,
    old: Tree,
    new: Tree,
    old_config: Vec<u8>,
    new_config: Vec<u8>,
}

/// The directory parts a rollback swaps, install-relative.
const PARTS: [&str; 7] = [
    "bwdata/mssql",
    "bwdata/env",
    "bwdata/docker",
    "bwdata/nginx",
    "bwdata/web",
    "bwdata/identity",
    "bwdata/core/aspnet-dataprotection",
];

fn subtree(t: &Tree, part: &str) -> Tree {
    t.iter()
        .filter(|(k, _)| *k == part || k.strip_prefix(part).is_some_and(|r| r.starts_with('/')))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Everything but config.yml, the parts, and what a killed run may leave
/// for the next one to finish or remove (staging directories, a temporary
/// config.yml beside the real one).
fn rest(t: &Tree) -> Tree {
    let in_part =
        |k: &str| PARTS.iter().any(|p| k == *p || k.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    let mut r = t.clone();
    r.retain(|k, _| {
        k != "bwdata/config.yml"
            && !in_part(k)
            && !k.split('/').any(|c| c == ".bwguard-staging" || c.ends_with(".bwguard-tmp"))
    });
    r
}

/// config.yml is the old or the new bytes, each part the old or the new
/// tree, and nothing else changed.
fn assert_old_or_new(case: &Case, context: &str) {
    let config = case.env.config();
    assert!(
        config == case.old_config || config == case.new_config,
        "{context}: config.yml is neither old nor new"
    );
    let now = case.env.tree();
    for p in PARTS {
        let sub = subtree(&now, p);
        assert!(
            sub == subtree(&case.old, p) || sub == subtree(&case.new, p),
            "{context}: {p} is neither tree"
        );
    }
    assert_eq!(rest(&now), rest(&case.old), "{context}: something outside the parts changed");
}

/// Runs `args` and kills it after `delay`; returns whether it was killed
/// while still running.
fn run_and_kill(env: &TestEnv, args: &[&str], delay: Duration) -> bool {
    let mut child = env.bwguard(args).spawn();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap_or(()); // SIGKILL
    child.wait().unwrap();
    running
}

/// Every listed snapshot passes deep verification.
fn assert_listed_snapshots_are_good(env: &TestEnv, context: &str) {
    let r = env.run(&["verify", "--all", "--deep"]);
    assert!(r.code == 0 || (r.code == 5 && env.snapshot_ids().is_empty()), "{context}: {r:?}");
}

/// No leftover of any run: no staging, no journal, no incomplete snapshot,
/// no temporary config file.
fn assert_no_leftovers(env: &TestEnv, context: &str) {
    for dir in [env.install.clone(), env.bwdata(), env.bwdata().join("core"), env.bwdata().join("scripts")] {
        assert!(!dir.join(".bwguard-staging").exists(), "{context}: staging left in {}", dir.display());
    }
    assert!(!env.bwdata().join(".config.yml.bwguard-tmp").exists(), "{context}: config temp left");
    assert!(!env.store.join("rollback-journal.json").exists(), "{context}: journal left");
    for e in fs::read_dir(&env.store).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            assert!(e.path().join("manifest.json").exists(), "{context}: incomplete {}", e.path().display());
        }
    }
}

/// Kills `args` at random instants on fresh cases until enough kills
/// landed mid-run; after each, checks the invariants, then runs it again to
/// completion and checks the result and that nothing is left over.
fn crash_loop(label: &str, args: &[&str], setup: impl Fn() -> Case) {
    crash_loop_n(label, args, kills_wanted(), setup);
}

/// [`crash_loop`] until `wanted` kills landed mid-run.
pub(crate) fn crash_loop_n(label: &str, args: &[&str], wanted: usize, setup: impl Fn() -> Case) {
    let mut rng = Rng::seeded(label);
    let probe = setup();
    let mut probe_args: Vec<&str> = args.to_vec();
    probe_args.extend(probe.extra.iter().map(String::as_str));
    let t = Instant::now();
    probe.env.run(&probe_args).ok();
    let full = t.elapsed();
    drop(probe);
    let (mut kills, mut attempts) = (0, 0);
    // Delays are drawn up to `bound`, which follows how long runs take now
    // (other tests share the machine): it shrinks when a run finished
    // before its kill and grows back when one was killed.
    let full_us = full.as_micros() as u64;
    let mut bound = full_us * 11 / 10;
    while kills < wanted {
        attempts += 1;
        assert!(attempts < wanted * 10, "{label}: runs finish before the kill; only {kills} kills");
        let case = setup();
        let mut run: Vec<&str> = args.to_vec();
        run.extend(case.extra.iter().map(String::as_str));
        let delay = Duration::from_micros(rng.below(bound));
        let killed = run_and_kill(&case.env, &run, delay);
        kills += usize::from(killed);
        bound = if killed { (bound * 21 / 20).min(full_us * 2) } else { (bound * 3 / 4).max(1000) };
        let context = format!("{label} killed after {delay:?}");
        assert_old_or_new(&case, &context);
        assert_listed_snapshots_are_good(&case.env, &context);
        case.env.run(&run).ok();
        let after = case.env.tree();
        assert_eq!(case.env.config(), case.new_config, "{context}: the next run did not finish the job");
        for p in PARTS {
            assert_eq!(subtree(&after, p), subtree(&case.new, p), "{context}: {p} after the next run");
        }
        assert_no_leftovers(&case.env, &context);
    }
    eprintln!("{label}: {kills} kills in {attempts} runs survived (full run {full:?})");
}

/// A backup of `env`: nothing in the install changes.
pub(crate) fn backup_case(env: TestEnv) -> Case {
    let (old, config) = (env.tree(), env.config());
    Case { env, extra: Vec::new(), new: old.clone(), old, new_config: config.clone(), old_config: config }
}

/// A rollback of `env` to a snapshot taken before SCIM was enabled and the
/// database "migrated" by an upgrade.
pub(crate) fn rollback_case(env: TestEnv) -> Case {
    let (new, new_config) = (env.tree(), env.config());
    let id = env.backup();
    env.run(&["enable-scim"]).ok();
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), b"migrated by an upgrade").unwrap();
    fs::remove_file(env.bwdata().join("mssql/backups/vault_FULL_LATESTLN.BAK")).unwrap();
    fs::write(env.bwdata().join("env/global.override.env"), b"changed=1\n").unwrap();
    let (old, old_config) = (env.tree(), env.config());
    Case { env, extra: vec![id, "--yes".into()], old, new, old_config, new_config }
}

#[test]
fn backup_killed_at_any_instant_leaves_the_install_and_store_consistent() {
    crash_loop("backup", &["backup"], || backup_case(TestEnv::new()));
}

#[test]
fn enable_scim_killed_at_any_instant_leaves_old_or_new_config() {
    crash_loop("enable-scim", &["enable-scim"], || {
        let env = TestEnv::new();
        let (old, config) = (env.tree(), env.config());
        let new_config = String::from_utf8(config.clone())
            .unwrap()
            .replace("enable_scim: false", "enable_scim: true")
            .into_bytes();
        Case { env, extra: Vec::new(), new: old.clone(), old, old_config: config, new_config }
    });
}

#[test]
fn rollback_killed_at_any_instant_is_old_or_restored_and_finished_by_the_next_run() {
    // A snapshot, then SCIM enabled and the database "migrated" by an
    // upgrade; the rollback under test goes back to the snapshot.
    crash_loop("rollback", &["rollback"], || rollback_case(TestEnv::new()));
}

#[test]
fn prune_killed_while_compressing_a_safety_snapshot_leaves_it_whole() {
    // A rollback's safety snapshot, stored uncompressed, which the prune
    // under test compresses and swaps in.
    let setup = || {
        let env = TestEnv::with(&bwguard::sample::SampleOptions {
            vault_mb: 24,
            backups: 1,
            small_system_dbs: true,
            ..Default::default()
        });
        let id = env.backup();
        env.run(&["enable-scim"]).ok();
        env.run(&["rollback", &id, "--yes"]).ok();
        let ids = env.snapshot_ids();
        let safety = ids[0].clone();
        (env, ids, safety)
    };
    let level = |env: &TestEnv, id: &str| -> u64 {
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(env.snap_dir(id).join("manifest.json")).unwrap()).unwrap();
        m["compression"]["level"].as_u64().unwrap()
    };
    let args = ["prune", "--keep-last", "5"];
    let mut rng = Rng::seeded("prune");
    let (probe, _, _) = setup();
    let t = Instant::now();
    probe.run(&args).ok();
    let full_us = t.elapsed().as_micros() as u64;
    drop(probe);
    let wanted = kills_wanted() / 2;
    let (mut kills, mut attempts, mut bound) = (0, 0, full_us * 11 / 10);
    while kills < wanted {
        attempts += 1;
        assert!(attempts < wanted * 10, "prune: runs finish before the kill; only {kills} kills");
        let (env, ids, safety) = setup();
        let delay = Duration::from_micros(rng.below(bound));
        let killed = run_and_kill(&env, &args, delay);
        kills += usize::from(killed);
        bound = if killed { (bound * 21 / 20).min(full_us * 2) } else { (bound * 3 / 4).max(1000) };
        let context = format!("prune killed after {delay:?}");
        assert_eq!(env.snapshot_ids(), ids, "{context}: the snapshots listed changed");
        assert_listed_snapshots_are_good(&env, &context);
        env.run(&args).ok();
        assert!(level(&env, &safety) > 0, "{context}: the next prune did not compress it");
        assert_listed_snapshots_are_good(&env, &context);
        assert_no_leftovers(&env, &context);
        for e in fs::read_dir(&env.store).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".recompress-"), "{context}: {name} left");
        }
    }
    eprintln!(
        "prune: {kills} kills in {attempts} runs survived (full run {:?})",
        Duration::from_micros(full_us)
    );
}
