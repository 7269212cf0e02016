//! docs/json.md against the documents themselves: every field of every
//! document has a row there, every row names a real field, and every
//! error kind is listed with its exit code.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::changes::Method;

use super::*;
use crate::engine::manifest::{ArchiveInfo, BitwardenInfo, DatabasePause};
use crate::error::{Error, all_kinds};
use crate::offsite::RemoteManifest;
use crate::offsite::remote::Remote;
use crate::offsite::sign::Signer;
use crate::procedure::{Journal, Step};
use crate::schedule::retention::{Policy, Within};

const DOC: &str = include_str!("../../docs/json.md");

fn s(v: &str) -> String {
    v.to_string()
}

fn bitwarden() -> BitwardenInfo {
    BitwardenInfo {
        core_version: Some(s("2026.8.0")),
        web_version: Some(s("2026.8.0")),
        key_connector_version: Some(s("2025.11.0")),
        enable_scim: Some(false),
        database: s("built-in"),
        images: BTreeMap::from([(s("mssql"), s("ghcr.io/bitwarden/mssql:2026.8.0"))]),
        installation_id: Some(s("6f1e0c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")),
    }
}

fn copy() -> RemoteManifest {
    let info = |name: &str| ArchiveInfo { name: s(name), size: 1, sha256: s("ab") };
    RemoteManifest {
        format: 1,
        id: s("20261202T000000Z"),
        created: s("2026-12-02T00:00:00Z"),
        pushed: s("2026-12-02T00:01:00Z"),
        tool: s("bwguard 0.1.0"),
        reason: s("manual"),
        pinned: false,
        consistency: s("cold"),
        bitwarden: bitwarden(),
        content_size: 1,
        archive: info("data.tar.gz"),
        object: info("snapshot.tar.age"),
        recipients: vec![s("age1x")],
    }
}

fn remote() -> Remote {
    Remote {
        url: s("s3://b/p"),
        endpoint: s("https://s3.example.com"),
        region: s("us-east-1"),
        path_style: true,
        recipients: vec![s("age1x")],
        credentials_file: Some("/root/creds".into()),
        profile: Some(s("vault")),
        trusted_keys: vec![s("bwguard-ed25519:k")],
    }
}

fn signer() -> Signer {
    Signer { key: Some(s("bwguard-ed25519:k")), trusted_as: s("this host") }
}

fn policy() -> Policy {
    Policy { last: 1, within: Some(Within { years: 0, months: 0, days: 7, hours: 0 }), ..Policy::default() }
}

fn journal() -> Journal {
    Journal {
        change: s("enable_scim: true"),
        snapshot: Some(s("20261202T000000Z")),
        steps: vec![Step {
            name: s("./bitwarden.sh stop"),
            started: s("2026-12-02T00:00:00Z"),
            seconds: 1.0,
            exit_code: Some(0),
            ok: true,
            output: s("stop done"),
        }],
        outcome: s("succeeded"),
    }
}

fn snapshot() -> SnapshotReport {
    SnapshotReport {
        id: s("20261202T000000Z"),
        path: s("/s/20261202T000000Z"),
        reason: s("manual"),
        scope: s("default"),
        consistency: s("cold"),
        changed_while_reading: vec![s("bwdata/mssql/data/vault.mdf")],
        files: 1,
        content_size: 1,
        archive_size: 1,
        archive_sha256: s("ab"),
        verified: true,
        database_pause: Some(pause()),
        parts: vec![PartSize { path: s("bwdata/mssql"), files: 1, bytes: 1 }],
        read_seconds: Some(0.5),
        readback: Some(s("while-writing")),
    }
}

fn pause() -> DatabasePause {
    DatabasePause {
        container: s("bitwarden-mssql"),
        stopped_at: s("2026-12-02T00:00:00.000Z"),
        started_at: Some(s("2026-12-02T00:00:04.000Z")),
        downtime_seconds: Some(4.0),
    }
}

fn prune() -> PruneReport {
    let decided = || vec![Decided { id: s("20261202T000000Z"), reasons: vec![s("newest")] }];
    PruneReport {
        remote: Some(s("g")),
        policy: policy(),
        dry_run: false,
        kept: decided(),
        removed: decided(),
        incomplete_removed: vec![s("20261201T000000Z")],
        compressed: vec![Compressed {
            id: s("20261130T000000Z"),
            archive_size_before: 9,
            archive_size_after: Some(3),
        }],
    }
}

fn push() -> PushReport {
    PushReport {
        remote: s("g"),
        pushed: vec![PushedCopy {
            id: s("20261202T000000Z"),
            object: s("s3://b/p/20261202T000000Z/snapshot.tar.age"),
            object_size: 1,
            object_sha256: s("ab"),
        }],
        already_there: vec![s("20261201T000000Z")],
    }
}

fn newest() -> Newest {
    Newest {
        id: s("20261202T000000Z"),
        created: s("2026-12-02T00:00:00Z"),
        reason: s("manual"),
        age_seconds: Some(1),
        database_pause: Some(pause()),
    }
}

/// The documents of each section of docs/json.md, and the fields below
/// which the section does not look (other sections document them).
fn sections() -> Vec<(&'static str, Vec<Value>, &'static [&'static str])> {
    let v = |x: &dyn erased::Json| x.value();
    let listing = SnapshotListing {
        id: s("20261202T000000Z"),
        created: s("2026-12-02T00:00:00Z"),
        age_seconds: Some(1),
        reason: s("manual"),
        note: Some(s("n")),
        pinned: false,
        archive_size: 1,
        content_size: 1,
        scope: s("default"),
        consistency: s("cold"),
        bitwarden: bitwarden(),
        database_pause: Some(pause()),
    };
    let edit = EditReport {
        old: Some(s("false")),
        line: Some(95),
        snapshot: Some(s("20261202T000000Z")),
        next_steps: vec![s("./bitwarden.sh rebuild")],
        undo: vec![s("bwguard rollback 20261202T000000Z --only config")],
        warnings: vec![s("w")],
        plan: vec![s("p")],
        journal: Some(journal()),
        ..EditReport::new(Method::Procedure, "enable_scim", "true", "/i/bwdata/config.yml")
    };
    vec![
        ("## Errors", vec![v(&ErrorReport::of(&Error::NoSnapshots("/s".into())))], &[]),
        (
            "## `backup`",
            vec![v(&BackupReport { snapshot: snapshot(), push: Some(push()), prune: Some(prune()) })],
            &["push", "prune", "database_pause"],
        ),
        (
            "## `verify`",
            vec![v(&VerifyReport {
                remote: Some(s("g")),
                mode: s("deep"),
                snapshots: vec![Checked {
                    id: s("20261202T000000Z"),
                    ok: false,
                    problem: Some(s("p")),
                    signed_by: Some(signer()),
                }],
            })],
            &["snapshots[].signed_by"],
        ),
        (
            "## `list`",
            vec![v(&ListReport::Store(StoreList {
                store: s("/s"),
                snapshots: vec![
                    Listing::Snapshot(Box::new(listing)),
                    Listing::Damaged { id: s("20261201T000000Z"), damaged: s("d") },
                ],
            }))],
            &["snapshots[].bitwarden", "snapshots[].database_pause"],
        ),
        (
            "## `list --remote`",
            vec![v(&ListReport::Remote(RemoteListReport {
                remote: s("g"),
                url: s("s3://b/p"),
                snapshots: vec![
                    RemoteListing::Copy {
                        copy: Box::new(copy()),
                        age_seconds: Some(1),
                        pushed_age_seconds: Some(1),
                        signed_by: Some(signer()),
                        untrusted: Some(s("u")),
                    },
                    RemoteListing::Damaged { id: s("20261201T000000Z"), damaged: s("d") },
                ],
                incomplete: vec![s("20261130T000000Z")],
            }))],
            &["snapshots[].copy", "snapshots[].signed_by"],
        ),
        (
            "## `status`",
            vec![v(&StatusReport {
                install_dir: s("/i"),
                data_dir: s("/i/bwdata"),
                bitwarden: bitwarden(),
                enable_scim: None,
                enable_scim_problem: Some(s("absent")),
                database: s("built-in"),
                database_files_open: true,
                database_holders: vec![HolderDoc { pid: 1, command: s("sqlservr"), file: s("/f") }],
                processes_not_inspected: 0,
                as_root: true,
                store: s("/s"),
                snapshots: 1,
                newest: Some(newest()),
                free_bytes: FreeBytes { data: Some(1), store: Some(1) },
                remotes: vec![RemoteDoc { name: s("g"), url: s("s3://b/p") }],
                interrupted_rollback: Some(s("20261202T000000Z")),
                incomplete_snapshots: vec![s("20261201T000000Z")],
                orphan_staging: vec![s("/i/.bwguard-staging")],
                database_paused: Some(s("p")),
                newest_good: Some(newest()),
                interrupted_rollback_next: Some(s("undo")),
                pinned: Pinned { count: 1, bytes: 2 },
                max_age: Some(MaxAge { ok: false, max_age_seconds: 3600, counts: s("c"), message: s("m") }),
            })],
            &["bitwarden", "newest.database_pause", "newest_good.database_pause"],
        ),
        ("## `enable-scim`, `disable-scim`, `set`", vec![v(&edit)], &["journal"]),
        (
            "## `diff`",
            vec![v(&DiffReport {
                id: s("20261202T000000Z"),
                identical: false,
                diff: s("-a\n+b\n"),
                changed_keys: vec![KeyChange {
                    key: s("enable_scim"),
                    snapshot: Some(s("false")),
                    current: None,
                }],
                files: vec![FileChange {
                    path: s("bwdata/mssql/data/vault.mdf"),
                    change: s("changed"),
                    detail: s("modified"),
                }],
            })],
            &[],
        ),
        (
            "## `rollback`",
            vec![v(&RollbackReport {
                id: s("20261202T000000Z"),
                install_dir: s("/i"),
                dry_run: false,
                rolled_back: true,
                before: Some(s("20261202T000001Z")),
                parts: vec![s("bwdata/config.yml")],
                entries: 1,
                content_size: 1,
                next_steps: vec![s("./bitwarden.sh start")],
                owners_not_restored: vec![s("bwdata/config.yml")],
                owners_clamped: vec![s("bwdata/scripts/run.sh")],
                version_change: vec![s("v")],
                restored_version: Some(s("2026.7.0")),
                remote: Some(s("g")),
                pulled: Some(true),
                copy: Some(Box::new(copy())),
                signed_by: Some(signer()),
                database_pause: Some(pause()),
            })],
            &["copy", "signed_by", "database_pause"],
        ),
        ("## `prune`", vec![v(&prune())], &["policy"]),
        (
            "## `pin`, `unpin`",
            vec![v(&PinReport { id: s("20261202T000000Z"), pinned: true, changed: true })],
            &[],
        ),
        ("## `forget`", vec![v(&ForgetReport { id: s("20261202T000000Z"), deleted: true })], &[]),
        (
            "## `upgrade`",
            vec![v(&UpgradeReport {
                snapshot: Some(s("20261202T000000Z")),
                dry_run: false,
                plan: vec![s("p")],
                journal: Some(journal()),
                undo: vec![s("cd /i && ./bitwarden.sh stop")],
            })],
            &["journal"],
        ),
        ("## `push`", vec![v(&push())], &[]),
        (
            "## `pull`",
            vec![v(&PullReport {
                id: s("20261202T000000Z"),
                remote: s("g"),
                pulled: true,
                path: s("/s/20261202T000000Z"),
                files: 1,
                content_size: 1,
                signed_by: signer(),
            })],
            &["signed_by"],
        ),
        (
            "## `remote`",
            vec![
                v(&RemoteReport::Added {
                    name: s("g"),
                    remote: remote(),
                    changed: true,
                    signing_key: s("bwguard-ed25519:k"),
                    key_created: true,
                }),
                v(&RemoteReport::Listed {
                    remotes: BTreeMap::from([(s("g"), remote())]),
                    signing_key: Some(s("bwguard-ed25519:k")),
                }),
                v(&RemoteReport::Removed { removed: s("g") }),
            ],
            &["remote", "remotes"],
        ),
        (
            "## `schedule`",
            vec![
                v(&ScheduleReport::Installed {
                    unit_dir: s("/etc/systemd/system"),
                    service: s("bwguard-backup.service"),
                    timer: s("bwguard-backup.timer"),
                    calendar: s("daily"),
                    policy: Some(policy()),
                    systemctl_ran: true,
                }),
                v(&ScheduleReport::Removed {
                    unit_dir: s("/etc/systemd/system"),
                    removed: true,
                    systemctl_ran: true,
                }),
                v(&ScheduleReport::Units { service: s("[Unit]"), timer: s("[Timer]") }),
                v(&ScheduleReport::Cron { cron: s("0 0 * * * root bwguard") }),
            ],
            &["policy"],
        ),
        (
            "## `completions`, `man`, `demo`",
            vec![
                v(&CompletionsReport { shell: s("bash"), script: s("complete") }),
                v(&ManReport { man: s(".TH") }),
                v(&DemoReport {
                    dir: s("/tmp/d"),
                    snapshot: s("20261202T000000Z"),
                    entries: 2,
                    files: 1,
                    identical: true,
                }),
            ],
            &[],
        ),
        ("### Bitwarden facts", vec![v(&bitwarden())], &["images"]),
        ("### Remote copy", vec![v(&copy())], &["bitwarden"]),
        ("### Remote", vec![v(&remote())], &[]),
        ("### Signer", vec![v(&signer())], &[]),
        ("### Database pause", vec![v(&pause())], &[]),
        ("## `resume-db`", vec![v(&ResumeDbReport { resumed: Some(s("started bitwarden-mssql")) })], &[]),
        ("### Retention policy", vec![v(&policy())], &[]),
        ("### Procedure journal", vec![v(&journal())], &[]),
    ]
}

/// Serializing any report to a JSON value, behind one trait object.
mod erased {
    pub trait Json {
        fn value(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

/// Every field path of `v` into `all`: `a`, `a.b` for a nested object,
/// `a[].b` for the objects of an array; nothing below the paths in `stop`.
/// Into `needed`, those that need a row of their own: all but the objects
/// whose fields have rows.
fn paths(v: &Value, prefix: &str, stop: &[&str], all: &mut BTreeSet<String>, needed: &mut BTreeSet<String>) {
    let object = match v {
        Value::Object(o) => o,
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), stop, all, needed);
            }
            return;
        }
        _ => return,
    };
    for (k, child) in object {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        all.insert(path.clone());
        let expanded = !stop.contains(&path.as_str())
            && (child.is_object() || child.as_array().is_some_and(|a| a.iter().any(Value::is_object)));
        if expanded {
            paths(child, &path, stop, all, needed);
        } else {
            needed.insert(path);
        }
    }
}

/// The text of the section under `heading`, up to the next heading.
fn section(heading: &str) -> &'static str {
    let start =
        DOC.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("docs/json.md has no {heading}"));
    let body = &DOC[start + heading.len() + 2..];
    let end = body.find("\n#").map_or(body.len(), |at| at + 1);
    &body[..end]
}

/// The field names in the first column of a section's tables.
fn rows(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn every_field_is_documented() {
    for (heading, docs, stop) in sections() {
        let (mut all, mut needed) = (BTreeSet::new(), BTreeSet::new());
        for d in &docs {
            paths(d, "", stop, &mut all, &mut needed);
        }
        let documented = rows(section(heading));
        let missing: Vec<&String> = needed.difference(&documented).collect();
        let extra: Vec<&String> = documented.difference(&all).collect();
        assert!(missing.is_empty(), "docs/json.md, {heading}: no row for {missing:?}");
        assert!(extra.is_empty(), "docs/json.md, {heading}: rows for fields that do not exist: {extra:?}");
    }
}

#[test]
fn every_error_kind_is_listed_with_its_exit_code() {
    let table = section("### Error kinds");
    let listed: BTreeSet<String> = rows(table);
    for (kind, exit) in all_kinds() {
        let row = format!("| `{kind}` | {} |", exit as i32);
        assert!(table.contains(&row), "docs/json.md lists no {row}");
    }
    let kinds: BTreeSet<String> = all_kinds().iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(listed, kinds, "docs/json.md lists kinds that do not exist, or misses some");
}

#[test]
fn documents_read_back_as_the_same_values() {
    for (heading, docs, _) in sections() {
        for d in docs {
            if heading.starts_with("###") || heading == "## Errors" {
                continue;
            }
            let back: Report = serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{heading}: {e}"));
            assert_eq!(serde_json::to_value(&back).unwrap(), d, "{heading}");
        }
    }
}

/// A stream the test reads back once the output is done with it.
#[derive(Clone, Default)]
struct Captured(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `value` prints on stdout for a human.
fn human(value: &impl Render) -> String {
    let (out, err) = (Captured::default(), Captured::default());
    let mut o = crate::context::Output::new(
        Box::new(out.clone()),
        Box::new(err),
        false,
        crate::context::Verbosity::Normal,
        false,
    );
    value.render(&mut o);
    drop(o);
    String::from_utf8(out.0.borrow().clone()).unwrap()
}

#[test]
fn prune_lines_up_ids_of_every_length() {
    let d = |id: &str, why: &str| Decided { id: s(id), reasons: vec![s(why)] };
    let report = PruneReport {
        remote: None,
        policy: policy(),
        dry_run: true,
        kept: vec![d("20261202T000000Z-2", "newest"), d("20261202T000000Z", "daily")],
        removed: vec![d("20261201T000000Z", "past every rule")],
        incomplete_removed: Vec::new(),
        compressed: Vec::new(),
    };
    let text = human(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let column = |l: &str, word: &str| l.find(word).unwrap_or_else(|| panic!("{word} in {l}"));
    assert_eq!(column(lines[0], "newest"), column(lines[1], "daily"), "{text}");
    assert_eq!(column(lines[0], "newest"), column(lines[2], "past every rule"), "{text}");
    assert_eq!(column(lines[0], "2026"), column(lines[2], "2026"), "{text}");
    assert!(lines[2].starts_with("would remove  20261201T000000Z"), "{text}");
}

#[test]
fn counts_are_said_in_words_not_with_parentheses() {
    let one = RemoteReport::Listed { remotes: BTreeMap::from([(s("g"), remote())]), signing_key: None };
    let text = human(&one);
    assert!(text.contains(" 1 recipient, ") && !text.contains("(s)"), "{text}");
}
