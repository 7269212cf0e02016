//! Every command's `--json` document, read back as its typed value from
//! `bwguard::report` (unknown fields refused), with its values checked
//! against what happened on disk.

use std::fs;

use bwguard::report::StoreList;
use bwguard::report::{
    BackupReport, CompletionsReport, DiffReport, EditReport, ForgetReport, ListReport, Listing, ManReport,
    PinReport, PruneReport, RemoteReport, RollbackReport, ScheduleReport, StatusReport, VerifyReport,
};

use crate::support::TestEnv;

#[test]
fn every_document_reads_as_its_type_and_says_what_happened() {
    let env = TestEnv::new();
    let backup: BackupReport = env.run(&["backup", "--note", "first", "--json"]).ok().parse();
    let snap = &backup.snapshot;
    assert!(env.snap_dir(&snap.id).join("manifest.json").is_file());
    assert_eq!(snap.archive_size, fs::metadata(env.snap_dir(&snap.id).join("data.tar.gz")).unwrap().len());
    assert!(snap.content_size > snap.archive_size / 2 && snap.files > 10 && snap.verified, "{snap:?}");
    assert_eq!((snap.reason.as_str(), snap.consistency.as_str()), ("manual", "cold"));
    assert!(backup.push.is_none() && backup.prune.is_none());

    let ListReport::Store(StoreList { snapshots, .. }) = env.run(&["list", "--json"]).ok().parse() else {
        panic!("not the store's list")
    };
    let [Listing::Snapshot(listed)] = snapshots.as_slice() else { panic!("{snapshots:?}") };
    assert_eq!((listed.id.as_str(), listed.note.as_deref()), (snap.id.as_str(), Some("first")));
    assert_eq!((listed.archive_size, listed.content_size), (snap.archive_size, snap.content_size));
    assert!(listed.age_seconds.is_some_and(|a| (0..600).contains(&a)));

    let verify: VerifyReport = env.run(&["verify", "--deep", "--json"]).ok().parse();
    assert_eq!((verify.mode.as_str(), verify.snapshots.len(), verify.snapshots[0].ok), ("deep", 1, true));

    let status: StatusReport = env.run(&["status", "--json"]).ok().parse();
    assert_eq!(status.newest.as_ref().map(|n| n.id.as_str()), Some(snap.id.as_str()));
    assert_eq!((status.enable_scim, status.snapshots, status.database_files_open), (Some(false), 1, false));

    let config = env.config();
    let dry: EditReport = env.run(&["enable-scim", "--dry-run", "--json"]).ok().parse();
    assert!(dry.dry_run && !dry.changed && dry.snapshot.is_none(), "{dry:?}");
    assert_eq!((dry.value.as_str(), dry.old.as_deref()), ("true", Some("false")));
    assert_eq!(env.config(), config, "a dry run edited config.yml");

    let set: EditReport = env.run(&["set", "http_port", "8080", "--json"]).ok().parse();
    let before_set = set.snapshot.clone().unwrap();
    assert!(set.changed && set.line.is_some_and(|l| l > 1), "{set:?}");
    assert!(String::from_utf8(env.config()).unwrap().contains("\nhttp_port: 8080\n"));

    let diff: DiffReport = env.run(&["diff", &before_set, "--json"]).ok().parse();
    assert!(!diff.identical && diff.diff.contains("+http_port: 8080"), "{diff:?}");
    assert_eq!(diff.changed_keys.len(), 1);
    assert_eq!(diff.changed_keys[0].current.as_deref(), Some("8080"));

    let pin: PinReport = env.run(&["pin", &snap.id, "--json"]).ok().parse();
    assert!(pin.pinned && pin.changed);
    let again: PinReport = env.run(&["pin", &snap.id, "--json"]).ok().parse();
    assert!(again.pinned && !again.changed);
    let unpin: PinReport = env.run(&["unpin", &snap.id, "--json"]).ok().parse();
    assert!(!unpin.pinned && unpin.changed);

    let prune: PruneReport = env.run(&["prune", "--keep-last", "1", "--dry-run", "--json"]).ok().parse();
    assert!(prune.dry_run && prune.policy.last == 1);
    assert_eq!(prune.kept.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [before_set.as_str()]);
    assert_eq!(prune.removed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [snap.id.as_str()]);
    assert_eq!(env.snapshot_ids().len(), 2, "a dry run removed a snapshot");

    let dry: RollbackReport = env.run(&["rollback", &before_set, "--dry-run", "--json"]).ok().parse();
    assert!(dry.dry_run && !dry.rolled_back && dry.before.is_none());
    assert!(dry.parts.contains(&"bwdata/mssql".to_string()) && dry.entries > 10, "{dry:?}");
    let done: RollbackReport =
        env.run(&["rollback", &before_set, "--only", "config", "--yes", "--json"]).ok().parse();
    assert!(done.rolled_back && done.parts == ["bwdata/config.yml"], "{done:?}");
    let cd = format!("cd {}", env.install.display());
    assert_eq!(done.next_steps, [format!("{cd} && ./bitwarden.sh rebuild && ./bitwarden.sh start")]);
    assert_eq!(env.config(), config);
    let before_rollback = done.before.unwrap();
    assert!(env.snapshot_ids().contains(&before_rollback));

    let forget: ForgetReport =
        env.run(&["forget", &before_rollback, "--force", "--yes", "--json"]).ok().parse();
    assert!(forget.deleted && !env.snap_dir(&before_rollback).exists());

    let ScheduleReport::Units { service, timer } = env.run(&["schedule", "print", "--json"]).ok().parse()
    else {
        panic!("not the units")
    };
    assert!(service.contains("ExecStart=") && timer.contains("OnCalendar=daily"));
    let ScheduleReport::Cron { cron } = env.run(&["schedule", "print", "--cron", "--json"]).ok().parse()
    else {
        panic!("not a cron line")
    };
    assert!(cron.contains(" backup --scheduled --prune"), "{cron}");

    let remotes: RemoteReport = env.run(&["remote", "list", "--json"]).ok().parse();
    assert_eq!(remotes, RemoteReport::Listed { remotes: Default::default(), signing_key: None });
    let completions: CompletionsReport = env.run(&["completions", "bash", "--json"]).ok().parse();
    assert!(completions.shell == "bash" && completions.script.contains("_bwguard"));
    let man: ManReport = env.run(&["man", "--json"]).ok().parse();
    assert!(man.man.starts_with(".ie") || man.man.contains(".TH"), "{}", &man.man[..80]);
}
