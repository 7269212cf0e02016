//! Off-site copies against a real S3 server: a three-node Garage cluster on
//! loopback (see garage.rs), not a mock of the client. Push, list, verify,
//! pull and rollback with the local store gone; a node down; a push killed
//! midway; damaged, foreign and missing copies; retention on the remote;
//! credentials kept out of the store, the output and the JSON.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use bwguard::report::RemoteDoc;
use bwguard::report::{
    BackupReport, PruneReport, PullReport, RemoteListReport, RemoteListing, RollbackReport, StatusReport,
};
use bwguard::sample::SampleOptions;

use crate::garage::{self, Garage, KEY_ID, REGION, SECRET};
use crate::support::{Bwguard, Run, TestEnv, assert_same_tree};

/// An install, a Garage cluster, a remote `g` and an age key pair.
struct Offsite {
    env: TestEnv,
    garage: Garage,
    /// The identity file (private key).
    identity: PathBuf,
    /// Its public key.
    recipient: String,
    /// Every output seen, to prove no credential ever appears.
    seen: std::cell::RefCell<String>,
}

/// The key prefix the remote uses.
const PREFIX: &str = "hosts/vault1";

/// Writes a fresh age identity to `path` and returns its public key.
fn keypair(path: &Path) -> String {
    let id = age::x25519::Identity::generate();
    fs::write(path, format!("# test key\n{}\n", id.to_string().expose_secret())).unwrap();
    id.to_public().to_string()
}

impl Offsite {
    /// Starts a cluster and adds remote `g`, or `None` when Garage is missing
    /// outside CI.
    fn new(opts: Option<&SampleOptions>) -> Option<Offsite> {
        if !garage::available() {
            return None;
        }
        let env = match opts {
            Some(o) => TestEnv::with(o),
            None => TestEnv::new(),
        };
        let identity = env.dir.path().join("identity.txt");
        let recipient = keypair(&identity);
        let o = Offsite { env, garage: Garage::start(), identity, recipient, seen: Default::default() };
        o.add_remote().ok();
        Some(o)
    }

    /// `remote add g …` with the key from the environment.
    fn add_remote(&self) -> Run {
        self.finish(self.bwguard(&[]).args(&self.add_remote_args()))
    }

    /// The arguments of `remote add g …`.
    fn add_remote_args(&self) -> Vec<String> {
        let url = format!("s3://{}/{PREFIX}", garage::BUCKET);
        let args = ["remote", "add", "g", &url, "--endpoint", &self.garage.endpoint(), "--region", REGION];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--recipient".to_string(), self.recipient.clone()]);
        args
    }

    /// A run with the S3 keys in its environment and no other AWS settings.
    fn bwguard(&self, args: &[&str]) -> Bwguard {
        self.env
            .bwguard(args)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("HOME", self.env.dir.path())
    }

    /// Runs `run` to completion, remembering what it printed.
    fn finish(&self, run: Bwguard) -> Run {
        let r = run.run();
        self.seen.borrow_mut().push_str(&format!("{}\n{}\n", r.stdout, r.stderr));
        r
    }

    /// This host's signing key (public half), as `remote list` prints it.
    fn signing_key(&self) -> String {
        let doc = self.run(&["remote", "list", "--json"]).ok().json();
        doc["signing_key"].as_str().expect("the host has a signing key").to_string()
    }

    /// Runs the binary with the S3 keys, remembering what it printed.
    fn run(&self, args: &[&str]) -> Run {
        self.finish(self.bwguard(args))
    }

    /// The identity file as an argument.
    fn id_arg(&self) -> &str {
        self.identity.to_str().unwrap()
    }

    /// Ids of the complete copies on the remote, newest first, and the listing.
    fn remote_ids(&self) -> (Vec<String>, RemoteListReport) {
        let r = self.run(&["list", "--remote", "g", "--json"]);
        let doc: RemoteListReport = r.ok().parse();
        let ids = doc
            .snapshots
            .iter()
            .map(|l| match l {
                RemoteListing::Copy { copy, .. } => copy.id.clone(),
                RemoteListing::Damaged { id, .. } => id.clone(),
            })
            .collect();
        (ids, doc)
    }

    /// Asserts the credentials appear in no output and no file of the store.
    fn assert_no_credentials(&self) {
        let seen = self.seen.borrow();
        for secret in [KEY_ID, SECRET] {
            assert!(!seen.contains(secret), "a credential appeared in the output:\n{seen}");
            for e in walkdir::WalkDir::new(&self.env.store)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
            {
                let bytes = fs::read(e.path()).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a credential appeared in {}",
                    e.path().display()
                );
            }
        }
    }
}

/// Removes the whole local store, as a lost disk would.
fn wipe_store(store: &Path) {
    fs::remove_dir_all(store).unwrap();
}

#[test]
fn push_list_verify_pull_and_roll_back_with_the_local_store_gone() {
    let Some(mut o) = Offsite::new(None) else { return };
    let before_scim = o.env.tree();
    o.env.backup();
    o.run(&["enable-scim"]).ok();
    let after = o.env.tree();
    assert_ne!(before_scim, after);
    let local = o.env.snapshot_ids();
    assert_eq!(local.len(), 2);

    let r = o.run(&["push", "--all", "--json"]);
    r.ok();
    let pushed: Vec<String> = r.json()["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pushed, local);
    // A second push finds them there.
    let r = o.run(&["push", "--all", "--json"]);
    r.ok();
    assert_eq!(r.json()["already_there"].as_array().unwrap().len(), 2);

    let (ids, doc) = o.remote_ids();
    assert_eq!(ids, local);
    let status: StatusReport = o.run(&["status", "--json"]).parse();
    let url = format!("s3://{}/{PREFIX}", garage::BUCKET);
    assert_eq!(status.remotes, [RemoteDoc { name: "g".into(), url }]);
    assert!(doc.incomplete.is_empty());
    let RemoteListing::Copy { copy, age_seconds, .. } = &doc.snapshots[0] else { panic!("{doc:?}") };
    assert_eq!((copy.reason.as_str(), copy.pinned), ("before enable-scim", true));
    assert!(age_seconds.is_some_and(|a| a >= 0), "{age_seconds:?}");
    // Only ciphertext is stored: the object does not start like a tar or gzip.
    let client = o.garage.client(PREFIX);
    let (_, mut body) = client.get(&format!("{}/snapshot.tar.age", local[0])).unwrap();
    let mut head = [0u8; 21];
    body.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"age-encryption.org/v1");

    o.run(&["verify", "--remote", "g", "--all"]).ok().says("ok on g (ciphertext checksum)");
    o.run(&["verify", "--remote", "g", "--all", "--deep", "--identity", o.id_arg()])
        .ok()
        .says("decrypted, deep");

    // The host's store is lost, and with it its signing key; a new store
    // learns the remote again from the admin (address, age public key and
    // the old host's signing key, kept off the host), then rolls back from
    // the copy.
    let old_key = o.signing_key();
    wipe_store(&o.env.store);
    o.run(&["list", "--remote", "g"]).code(2).says("no remote \"g\"");
    o.add_remote().ok();
    assert_ne!(o.signing_key(), old_key, "a new store made a new key");
    let (ids, doc) = o.remote_ids();
    assert_eq!(ids, local);
    assert!(
        doc.snapshots
            .iter()
            .all(|l| matches!(l, RemoteListing::Copy { signed_by: None, untrusted: Some(_), .. })),
        "{doc:?}"
    );
    let scim_id = &local[0];
    // Copies signed by the old key are not trusted until the admin says so.
    let r = o.run(&["rollback", scim_id, "--remote", "g", "--identity", o.id_arg(), "--yes", "--json"]);
    r.error(5, "untrusted-copy");
    assert!(r.stdout.contains(&old_key), "{}", r.stdout);
    o.run(&["rollback", "--remote", "g", "--identity", o.id_arg(), "--yes"]).code(5).says("--trust-key");
    assert!(!o.env.store.join(scim_id).exists(), "an untrusted copy was downloaded");
    assert_same_tree(&after, &o.env.tree());
    o.run(&["remote", "remove", "g"]).ok();
    o.finish(o.bwguard(&[]).args(&o.add_remote_args()).args(&["--trust-key", old_key.as_str()])).ok();
    let (_, doc) = o.remote_ids();
    let RemoteListing::Copy { signed_by: Some(signer), .. } = &doc.snapshots[0] else { panic!("{doc:?}") };
    assert_eq!(signer.key.as_deref(), Some(old_key.as_str()));
    assert_eq!(signer.trusted_as, "saved with remote g");
    // Without a terminal and without --yes: refused before any download.
    o.run(&["rollback", scim_id, "--remote", "g", "--identity", o.id_arg()]).code(5);
    assert!(!o.env.store.join(scim_id).exists(), "a refused rollback downloaded the copy");
    let r = o.run(&["rollback", scim_id, "--remote", "g", "--identity", o.id_arg(), "--dry-run", "--json"]);
    r.ok();
    let dry: RollbackReport = r.parse();
    assert_eq!((dry.dry_run, dry.pulled, dry.remote.as_deref()), (true, Some(true), Some("g")));
    assert_eq!(dry.copy.as_ref().map(|c| c.id.as_str()), Some(scim_id.as_str()));
    assert!(!o.env.store.join(scim_id).exists(), "a dry run downloaded the copy");
    assert_same_tree(&after, &o.env.tree());
    o.run(&["rollback", scim_id, "--remote", "g", "--identity", o.id_arg(), "--yes"]).ok();
    assert_same_tree(&before_scim, &o.env.tree());
    o.run(&["verify", scim_id, "--deep"]).ok();

    // One of the three nodes goes down: the copies are still readable.
    o.garage.stop(2);
    fs::remove_dir_all(o.env.store.join(&local[1])).ok();
    let r = o.run(&["pull", &local[1], "--remote", "g", "--identity", o.id_arg(), "--json"]);
    r.ok();
    let pulled: PullReport = r.parse();
    assert!(pulled.pulled && pulled.id == local[1] && pulled.remote == "g", "{pulled:?}");
    o.run(&["verify", &local[1], "--deep"]).ok();
    o.run(&["rollback", &local[1], "--yes"]).ok();
    assert_same_tree(&before_scim, &o.env.tree());
    o.run(&["verify", "--remote", "g", "--all", "--deep", "--identity", o.id_arg()]).ok();
    // A failed run under --json carries no credential either.
    o.run(&["pull", "20200101T000000Z", "--remote", "g", "--identity", o.id_arg(), "--json"]).code(2);
    o.assert_no_credentials();
}

#[test]
fn a_copy_restores_by_hand_with_age_tar_and_sha256sum() {
    let Some(o) = Offsite::new(None) else { return };
    if Command::new("age").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "age is missing: apt-get install -y age");
        eprintln!("skipped: age is missing (apt-get install -y age)");
        return;
    }
    let id = o.env.backup();
    o.run(&["push"]).ok();
    let work = o.env.dir.path().join("by-hand");
    fs::create_dir(&work).unwrap();
    let client = o.garage.client(PREFIX);
    for name in ["snapshot.tar.age", "snapshot.tar.age.sha256"] {
        let (_, mut body) = client.get(&format!("{id}/{name}")).unwrap();
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).unwrap();
        fs::write(work.join(name), bytes).unwrap();
    }
    let sh = |script: &str| {
        let out = Command::new("sh").arg("-c").arg(script).current_dir(&work).output().unwrap();
        assert!(
            out.status.success(),
            "{script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Without the key: the ciphertext against its checksum.
    sh("sha256sum -c snapshot.tar.age.sha256");
    // With it: decrypt, unpack, and check down to every file.
    sh(&format!("age -d -i {} snapshot.tar.age | tar -xf -", o.id_arg()));
    sh(&format!("cd {id} && sha256sum -c data.tar.gz.sha256"));
    sh(&format!(
        "mkdir install && tar -xzf {id}/data.tar.gz -C install && cd install && sha256sum -c ../{id}/SHA256SUMS"
    ));
    let original = fs::read(o.env.config_path()).unwrap();
    assert_eq!(fs::read(work.join("install/bwdata/config.yml")).unwrap(), original);
}

#[test]
fn a_push_killed_midway_is_never_listed_and_the_next_push_completes_it() {
    let opts = SampleOptions { vault_mb: 48, backups: 1, small_system_dbs: true, ..Default::default() };
    let Some(o) = Offsite::new(Some(&opts)) else { return };
    let id = o.env.backup();
    let pending = o.env.store.join("upload-g.json");
    let mut killed_mid_upload = 0;
    let mut stale: Vec<String> = Vec::new();
    let client = o.garage.client(PREFIX);
    let object = format!("{id}/snapshot.tar.age");
    for delay_ms in [0u64, 40, 120, 250, 500] {
        let mut child = o.bwguard(&["push"]).spawn();
        // Wait for the upload to start (its record appears), then kill.
        for _ in 0..400 {
            if pending.exists() || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok();
        child.wait().unwrap();
        let (ids, doc) = o.remote_ids();
        if finished {
            break;
        }
        if ids.is_empty() {
            killed_mid_upload += 1;
            assert!(doc.snapshots.is_empty());
            // The record of the upload the kill interrupted, if it got that far.
            if let Ok(bytes) = fs::read(&pending) {
                let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let upload = record["upload_id"].as_str().unwrap().to_string();
                if let Some(previous) = stale.last().filter(|p| **p != upload) {
                    // This push started a new upload, so it first abandoned
                    // the one the previous kill left. (Checked here: Garage
                    // itself drops stale uploads of a key once a newer
                    // upload of that key completes; AWS keeps and bills them.)
                    assert!(
                        !client.upload_exists(&object, previous).unwrap(),
                        "killed upload {previous} was not abandoned"
                    );
                }
                stale.push(upload);
            }
        } else {
            // Killed after the manifest was written: then the copy is whole.
            o.run(&["verify", "--remote", "g", &id]).ok();
            break;
        }
    }
    assert!(killed_mid_upload > 0, "no kill landed during the upload");
    let last = stale.last().expect("a killed push left its upload record");
    assert!(client.upload_exists(&object, last).unwrap(), "the killed upload is not pending");
    let r = o.run(&["push"]);
    r.ok();
    assert_eq!(o.remote_ids().0, vec![id.clone()]);
    assert!(!pending.exists(), "the upload record outlived the push");
    o.run(&["verify", "--remote", "g", "--deep", "--identity", o.id_arg()]).ok();
    for upload in &stale {
        assert!(!client.upload_exists(&object, upload).unwrap(), "killed upload {upload} was not abandoned");
    }

    // A pull killed midway leaves no snapshot that `list` shows (rule 2);
    // the next writing run removes what it left and pulls again.
    fs::remove_dir_all(o.env.store.join(&id)).unwrap();
    let mut child = o.bwguard(&["pull", &id, "--remote", "g", "--identity", o.id_arg()]).spawn();
    let archive = o.env.store.join(&id).join("data.tar.gz");
    for _ in 0..2000 {
        if archive.exists() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    if !finished {
        assert!(!o.env.snapshot_ids().contains(&id), "a pull killed midway left a listed snapshot");
        o.run(&["verify", &id]).code(3);
    }
    o.run(&["pull", &id, "--remote", "g", "--identity", o.id_arg()]).ok();
    o.run(&["verify", &id, "--deep"]).ok();
}

#[test]
fn foreign_damaged_and_missing_copies_exit_3_and_change_nothing_locally() {
    let Some(o) = Offsite::new(None) else { return };
    let id = o.env.backup();
    o.run(&["push"]).ok();
    fs::remove_dir_all(o.env.store.join(&id)).unwrap();
    let (install, store) = (o.env.tree(), o.env.store_tree());
    let unchanged = |what: &str| {
        assert_same_tree(&install, &o.env.tree());
        assert_same_tree(&store, &o.env.store_tree());
        assert!(!o.env.store.join(&id).exists(), "{what} left a partial snapshot");
    };

    // An identity the copy was not encrypted to.
    let other = o.env.dir.path().join("other.txt");
    keypair(&other);
    let other = other.to_str().unwrap();
    o.run(&["pull", &id, "--remote", "g", "--identity", other]).code(3).says("not one of the recipients");
    o.run(&["rollback", &id, "--remote", "g", "--identity", other, "--yes"]).code(3);
    o.run(&["verify", "--remote", "g", "--deep", "--identity", other]).code(3);
    unchanged("a wrong identity");

    // The network drops mid-download: a failure (exit 1), not damage.
    let proxy = garage::cutting_proxy(o.garage.s3_port(), 96 << 10);
    let url = format!("s3://{}/{PREFIX}", garage::BUCKET);
    let via = format!("http://127.0.0.1:{proxy}");
    let add =
        ["remote", "add", "cut", &url, "--endpoint", &via, "--region", REGION, "--recipient", &o.recipient];
    o.run(&add).ok();
    o.run(&["pull", &id, "--remote", "cut", "--identity", o.id_arg()]).code(1).says("broke off");
    o.run(&["verify", "--remote", "cut", "--deep", "--identity", o.id_arg()]).code(1).says("broke off");
    o.run(&["verify", "--remote", "cut"]).code(1);
    o.run(&["remote", "remove", "cut"]).ok();
    unchanged("a dropped connection");
    // A wrong secret: refused by the server, and shown nowhere.
    let r =
        o.bwguard(&["list", "--remote", "g", "--json"]).env("AWS_SECRET_ACCESS_KEY", "0".repeat(64)).run();
    r.error(1, "remote-denied");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains(&"0".repeat(64)) && !all.contains(KEY_ID) && !all.contains("X-Amz"), "{all}");

    // One flipped byte in the middle of the ciphertext.
    let client = o.garage.client(PREFIX);
    let object = format!("{id}/snapshot.tar.age");
    let (_, mut body) = client.get(&object).unwrap();
    let mut good = Vec::new();
    body.read_to_end(&mut good).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    client.put(&object, &bad).unwrap();
    o.run(&["verify", "--remote", "g"]).code(3).says("does not match its SHA-256");
    o.run(&["verify", "--remote", "g", "--deep", "--identity", o.id_arg()]).code(3);
    let r = o.run(&["pull", &id, "--remote", "g", "--identity", o.id_arg(), "--json"]);
    r.code(3);
    assert_eq!(r.json()["error"]["code"], 3);
    o.run(&["rollback", &id, "--remote", "g", "--identity", o.id_arg(), "--yes"]).code(3);
    unchanged("a damaged copy");

    // The checksum object or the object itself missing.
    client.put(&object, &good).unwrap();
    o.run(&["verify", "--remote", "g"]).ok();
    client.delete(&format!("{id}/snapshot.tar.age.sha256")).unwrap();
    o.run(&["verify", "--remote", "g"]).code(3).says("snapshot.tar.age.sha256 is missing");
    o.run(&["pull", &id, "--remote", "g", "--identity", o.id_arg()]).code(3);
    client.delete(&object).unwrap();
    o.run(&["verify", "--remote", "g"]).code(3).says("is missing");
    o.run(&["pull", &id, "--remote", "g", "--identity", o.id_arg()]).code(3);
    o.run(&["rollback", &id, "--remote", "g", "--identity", o.id_arg(), "--yes"]).code(3);
    unchanged("a missing object");
    // Objects without their manifest: an incomplete copy, exit 3, never
    // listed, and removed by the next prune of the remote.
    client.put(&object, &good).unwrap();
    client.delete(&format!("{id}/manifest.json")).unwrap();
    o.run(&["pull", &id, "--remote", "g", "--identity", o.id_arg()]).code(3).says("incomplete");
    let (ids, doc) = o.remote_ids();
    assert!(ids.is_empty() && doc.incomplete == [id.clone()], "{doc:?}");
    o.run(&["prune", "--remote", "g", "--keep-last", "1"]).ok().says("incomplete copy");
    assert!(client.list(&format!("{id}/")).unwrap().is_empty(), "prune left the incomplete copy");
    unchanged("an incomplete copy");
    // A copy that was never pushed names nothing.
    o.run(&["pull", "20200101T000000Z", "--remote", "g", "--identity", o.id_arg()]).code(2);
    o.assert_no_credentials();
}

#[test]
fn backup_push_prune_remote_and_keys_from_a_credentials_file() {
    let Some(o) = Offsite::new(None) else { return };
    // Keys from a file the admin names; the environment has none.
    let creds = o.env.dir.path().join("s3-credentials");
    fs::write(&creds, format!("[vault]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"))
        .unwrap();
    let url = format!("s3://{}/{PREFIX}", garage::BUCKET);
    let run_no_env = |args: &[&str]| {
        o.finish(
            o.env
                .bwguard(args)
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("HOME", o.env.dir.path()),
        )
    };
    let endpoint = o.garage.endpoint();
    let add = [
        "remote",
        "add",
        "f",
        &url,
        "--endpoint",
        &endpoint,
        "--region",
        REGION,
        "--recipient",
        &o.recipient,
    ];
    run_no_env(&add).code(5).says("no S3 credentials");
    let mut with_file = add.to_vec();
    with_file.extend(["--credentials-file", creds.to_str().unwrap(), "--profile", "vault"]);
    run_no_env(&with_file).ok();
    let remotes = fs::read_to_string(o.env.store.join("remotes.json")).unwrap();
    assert!(remotes.contains("s3-credentials") && !remotes.contains(SECRET), "{remotes}");

    // Three scheduled-style backups, each pushed; the first one pinned.
    let first = run_no_env(&["backup", "--push", "f", "--json"]);
    first.ok();
    let first_id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(first.json()["push"]["pushed"][0]["id"], first_id.as_str());
    o.run(&["pin", &first_id]).ok();
    for _ in 0..2 {
        run_no_env(&["backup", "--push", "f"]).ok();
    }
    // A backup whose push did not happen is caught up by the next run.
    let missed = o.env.backup();
    let r = run_no_env(&["backup", "--push", "f", "--json"]);
    r.ok();
    let doc: BackupReport = r.parse();
    let caught_up: Vec<&str> = doc.push.as_ref().unwrap().pushed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(caught_up.first().copied(), Some(missed.as_str()));
    assert_eq!(caught_up.len(), 2);
    // Pinned after its push, the first copy is not pinned on the remote.
    let ids = o.env.snapshot_ids();
    assert_eq!(o.remote_ids().0, ids);

    let r = run_no_env(&["prune", "--remote", "f", "--keep-last", "1", "--dry-run", "--json"]);
    r.ok();
    let pruned: PruneReport = r.parse();
    assert_eq!((pruned.removed.len(), pruned.remote.as_deref()), (ids.len() - 1, Some("f")));
    assert_eq!(o.remote_ids().0.len(), ids.len(), "a dry run removed copies");
    let r = run_no_env(&["prune", "--remote", "f", "--keep-last", "1", "--json"]);
    r.ok();
    assert_eq!(o.remote_ids().0, vec![ids[0].clone()]);
    // The local snapshots are untouched by a remote prune.
    assert_eq!(o.env.snapshot_ids(), ids);
    // A snapshot pinned before its push stays through a remote prune.
    let pinned = o.env.backup();
    o.run(&["pin", &pinned]).ok();
    run_no_env(&["push", "--remote", "f"]).ok();
    run_no_env(&["backup", "--push", "f"]).ok();
    run_no_env(&["prune", "--remote", "f", "--keep-last", "1"]).ok();
    let left = o.remote_ids().0;
    assert!(left.contains(&pinned) && left.len() == 2, "{left:?}");
    o.assert_no_credentials();
}

#[test]
fn remote_mistakes_are_refused_and_save_nothing() {
    // No cluster needed: nothing here reaches a server.
    let env = TestEnv::new();
    let key = env.dir.path().join("k.txt");
    let recipient = keypair(&key);
    let run = |args: &[&str]| {
        env.bwguard(args).env("AWS_ACCESS_KEY_ID", KEY_ID).env("AWS_SECRET_ACCESS_KEY", SECRET).run()
    };
    let dead = "http://127.0.0.1:9";
    run(&["remote", "add", "g", "s3://bucket/p", "--endpoint", dead, "--recipient", "age1nope"])
        .code(2)
        .says("not an age recipient");
    let secret = fs::read_to_string(&key).unwrap();
    let secret_line = secret.lines().find(|l| l.starts_with("AGE-SECRET")).unwrap();
    let r = run(&["remote", "add", "g", "s3://bucket/p", "--endpoint", dead, "--recipient", secret_line]);
    r.code(2).says("private key");
    assert!(!r.stderr.contains(secret_line) && !r.stdout.contains(secret_line));
    run(&["remote", "add", "g", "http://bucket/p", "--endpoint", dead, "--recipient", &recipient]).code(2);
    let r = run(&[
        "remote",
        "add",
        "g",
        "s3://bucket/p",
        "--endpoint",
        dead,
        "--recipient",
        &recipient,
        "--json",
    ]);
    r.code(1);
    assert_eq!(r.json()["error"]["code"], 1);
    assert!(!r.stdout.contains(KEY_ID) && !r.stderr.contains(KEY_ID) && !r.stdout.contains("X-Amz"), "{r:?}");
    assert!(!env.store.join("remotes.json").exists(), "a remote that failed its check was saved");
    assert!(!env.store.join("signing.key").exists(), "a remote that failed its check made a key");
    let r = run(&[
        "remote",
        "add",
        "g",
        "s3://bucket/p",
        "--endpoint",
        dead,
        "--recipient",
        &recipient,
        "--trust-key",
        "ssh-ed25519 AAAA",
        "--no-check",
    ]);
    r.code(2).says("bwguard-ed25519:");
    env.backup();
    run(&["push"]).code(5).says("no remote is set up");
    run(&[
        "remote",
        "add",
        "g",
        "s3://bucket/p",
        "--endpoint",
        dead,
        "--recipient",
        &recipient,
        "--no-check",
    ])
    .ok();
    run(&[
        "remote",
        "add",
        "g",
        "s3://bucket/q",
        "--endpoint",
        dead,
        "--recipient",
        &recipient,
        "--no-check",
    ])
    .code(5);
    run(&["verify", "--remote", "g", "--deep"]).code(2).says("--identity");
    run(&["remote", "remove", "g"]).ok();
    run(&["remote", "remove", "g"]).code(2);
}

/// Attack 7 of docs/safety.md: whoever can write to the bucket adds a newer
/// copy, encrypted to the same public age recipient (so it decrypts fine)
/// but signed by its own key, or unsigned, or rewrites a genuine copy's
/// manifest. Root's bwguard restores, pulls, verifies and prunes only
/// copies signed by a key it trusts, and says which.
#[test]
fn forged_copies_on_the_bucket_are_never_restored_pulled_or_counted() {
    let Some(o) = Offsite::new(None) else { return };
    let before_scim = o.env.tree();
    let genuine = o.env.backup();
    o.run(&["push"]).ok();
    o.run(&["enable-scim"]).ok();
    let after_scim = o.env.tree();
    let host_key = o.signing_key();

    // The attacker: an install and store of its own, the bucket's keys, the
    // host's public age recipient; its copy is newer than the genuine one.
    std::thread::sleep(Duration::from_millis(1100));
    let attacker = TestEnv::new();
    fs::write(attacker.config_path(), "# forged\nenable_scim: true\n").unwrap();
    let as_attacker = |args: &[&str]| {
        o.finish(
            attacker
                .bwguard(args)
                .env("AWS_ACCESS_KEY_ID", KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("HOME", attacker.dir.path()),
        )
    };
    as_attacker(&o.add_remote_args().iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let forged = attacker.backup();
    as_attacker(&["push"]).ok();
    let attacker_key =
        as_attacker(&["remote", "list", "--json"]).ok().json()["signing_key"].as_str().unwrap().to_string();
    assert_ne!(attacker_key, host_key);

    // The listing shows both, the forged one as not trusted.
    let (ids, doc) = o.remote_ids();
    assert_eq!(ids, [forged.clone(), genuine.clone()]);
    let RemoteListing::Copy { signed_by: None, untrusted: Some(why), .. } = &doc.snapshots[0] else {
        panic!("{doc:?}")
    };
    assert!(why.contains(&attacker_key), "{why}");
    o.run(&["list", "--remote", "g"]).ok().says("NOT TRUSTED").says("this host");

    // Named, the forged copy is refused before anything is downloaded.
    let store = o.env.store_tree();
    let r = o.run(&["pull", &forged, "--remote", "g", "--identity", o.id_arg(), "--json"]);
    r.error(5, "untrusted-copy");
    o.run(&["rollback", &forged, "--remote", "g", "--identity", o.id_arg(), "--yes"]).code(5);
    o.run(&["verify", "--remote", "g", &forged]).code(5).says("does not trust");
    assert_same_tree(&store, &o.env.store_tree());
    assert_same_tree(&after_scim, &o.env.tree());
    // Unnamed, "the newest copy" is the newest trusted one; the forged one
    // is passed over, and said so.
    let r = o.run(&["rollback", "--remote", "g", "--identity", o.id_arg(), "--yes", "--json"]);
    r.ok();
    assert!(r.stderr.contains(&format!("passed over the newer copy {forged}")), "{}", r.stderr);
    let done: RollbackReport = r.parse();
    assert_eq!(done.id, genuine);
    let signer = done.signed_by.expect("the report says who signed the copy");
    assert_eq!((signer.key.as_deref(), signer.trusted_as.as_str()), (Some(host_key.as_str()), "this host"));
    assert_same_tree(&before_scim, &o.env.tree());
    o.run(&["verify", "--remote", "g"]).ok().says(&format!("{genuine}  ok on g")).says("this host");

    // The admin can trust another key explicitly, and is told so.
    let r = o.run(&[
        "rollback",
        &forged,
        "--remote",
        "g",
        "--identity",
        o.id_arg(),
        "--dry-run",
        "--trust-key",
        &attacker_key,
        "--json",
    ]);
    let dry: RollbackReport = r.ok().parse();
    assert_eq!(dry.signed_by.map(|s| s.trusted_as).as_deref(), Some("--trust-key"));

    // Forged copies neither count toward retention nor are deleted by it:
    // with one more genuine copy, keep-last 1 removes the older genuine one.
    std::thread::sleep(Duration::from_millis(1100));
    let newer = o.env.backup();
    o.run(&["push", &newer]).ok();
    o.run(&["prune", "--remote", "g", "--keep-last", "1"]).ok().says("left alone and not counted");
    assert_eq!(o.remote_ids().0, [newer.clone(), forged.clone()]);

    // Unsigned: refused unless the admin allows it.
    let client = o.garage.client(PREFIX);
    client.delete(&format!("{forged}/manifest.json.sig")).unwrap();
    o.run(&["pull", &forged, "--remote", "g", "--identity", o.id_arg()]).code(5).says("is not signed");
    let r = o.run(&[
        "rollback",
        &forged,
        "--remote",
        "g",
        "--identity",
        o.id_arg(),
        "--dry-run",
        "--allow-unsigned",
        "--json",
    ]);
    let dry: RollbackReport = r.ok().parse();
    assert_eq!(dry.signed_by.map(|s| s.key), Some(None));

    // A genuine copy whose public manifest was rewritten (its signature
    // kept): damage, exit 3.
    let (_, mut body) = client.get(&format!("{newer}/manifest.json")).unwrap();
    let mut manifest = String::new();
    body.read_to_string(&mut manifest).unwrap();
    let rewritten = manifest.replace("\"pinned\": false", "\"pinned\": true");
    assert_ne!(rewritten, manifest);
    client.put(&format!("{newer}/manifest.json"), rewritten.as_bytes()).unwrap();
    o.run(&["verify", "--remote", "g", &newer]).code(3).says("does not match manifest.json");
    o.run(&["pull", &newer, "--remote", "g", "--identity", o.id_arg()]).code(3);
    o.assert_no_credentials();
}
