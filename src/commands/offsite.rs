//! `remote add|list|remove`, `push`, `pull`, and the `--remote` forms of
//! `list`, `verify`, `prune` and `rollback`. The work is in
//! `crate::offsite`; this file picks the remote, takes the lock, and says
//! what happened.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::{PruneArgs, PullArgs, PushArgs, RemoteAddArgs, RemoteCommand, UrlStyle, VerifyArgs};
use crate::commands::verify::check_each;
use crate::commands::{begin_write, human_age, human_size};
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::store::{Store, id_key};
use crate::error::{Error, Result};
use crate::install::Install;
use crate::offsite::crypt::{self, Identities};
use crate::offsite::remote::{self, Remote, Remotes};
use crate::offsite::{self, Pushed, RemoteManifest};
use crate::report::human::seconds_since;
use crate::schedule::retention::{Candidate, Policy};

/// Runs a `remote` subcommand.
pub fn run_remote(cmd: &RemoteCommand, ctx: &mut Ctx) -> Result<serde_json::Value> {
    match cmd {
        RemoteCommand::Add(a) => add(a, ctx),
        RemoteCommand::List => list_remotes(ctx),
        RemoteCommand::Remove(a) => {
            let install = ctx.install()?;
            let (_lock, _) = begin_write(ctx, &install, "remote remove")?;
            let mut remotes = Remotes::load(&install.store)?;
            remotes.get(&a.name)?;
            remotes.remotes.remove(&a.name);
            remotes.save(&install.store)?;
            offsite::forget_pending(&Store::new(&install.store), &a.name)?;
            ctx.out.result(format!("Removed remote {}; its bucket was left as it is.", a.name));
            Ok(json!({"removed": a.name}))
        }
    }
}

/// `remote add`: checks everything, lists the bucket once to prove the
/// address and the keys, then saves.
fn add(args: &RemoteAddArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    remote::check_name(&args.name)?;
    remote::parse_url(&args.url)?;
    let recipients = crypt::recipients(&args.recipients, args.recipients_file.as_deref())?;
    let endpoint = match &args.endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => format!("https://s3.{}.amazonaws.com", args.region),
    };
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(Error::Usage(format!("--endpoint {endpoint:?} must start with https:// (or http://)")));
    }
    let aws = endpoint.trim_end_matches('/').ends_with(".amazonaws.com");
    let path_style = match args.url_style {
        Some(UrlStyle::Path) => true,
        Some(UrlStyle::Virtual) => false,
        None => !aws,
    };
    let credentials_file = match &args.credentials_file {
        Some(f) => Some(f.canonicalize().map_err(|e| Error::io("cannot find credentials file", f, e))?),
        None => None,
    };
    let new = Remote {
        url: args.url.clone(),
        endpoint,
        region: args.region.clone(),
        path_style,
        recipients,
        credentials_file,
        profile: args.profile.clone(),
    };
    let install = ctx.install()?;
    let (_lock, _) = begin_write(ctx, &install, "remote add")?;
    let mut remotes = Remotes::load(&install.store)?;
    if let Some(old) = remotes.remotes.get(&args.name) {
        if *old == new {
            ctx.out.result(format!("Remote {} is already set up like this.", args.name));
            return Ok(json!({"name": args.name, "remote": new, "changed": false}));
        }
        return Err(Error::refused(
            format!("a remote named {} exists ({})", args.name, old.url),
            format!("`bwguard remote remove {}` first, or choose another name", args.name),
        ));
    }
    if !args.no_check {
        let (listed, incomplete) = offsite::list(&new.client()?)?;
        ctx.out.info(format!(
            "Reached {} at {}: {} snapshot copies there{}",
            new.url,
            new.endpoint,
            listed.len(),
            if incomplete.is_empty() { String::new() } else { format!(", {} incomplete", incomplete.len()) }
        ));
    }
    remotes.format = 1;
    remotes.remotes.insert(args.name.clone(), new.clone());
    remotes.save(&install.store)?;
    ctx.out.result(format!(
        "Added remote {}: {} ({} recipient{}). Push with `bwguard push --remote {0}`.",
        args.name,
        new.url,
        new.recipients.len(),
        if new.recipients.len() == 1 { "" } else { "s" }
    ));
    if new.credentials_file.is_none() {
        ctx.out.info(
            "The S3 keys come from the environment of each run; for scheduled pushes, \
             add the remote with --credentials-file FILE",
        );
    }
    Ok(json!({"name": args.name, "remote": new, "changed": true}))
}

/// `remote list`.
fn list_remotes(ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let remotes = Remotes::load(&install.store)?;
    if remotes.remotes.is_empty() {
        ctx.out.info("No remotes. Add one with `bwguard remote add NAME s3://BUCKET/PREFIX --endpoint URL --recipient age1…`.");
    }
    for (name, r) in &remotes.remotes {
        let keys = match &r.credentials_file {
            Some(f) => format!("keys from {}", f.display()),
            None => "keys from the environment".into(),
        };
        ctx.out.result(format!(
            "{name}  {}  {}  {} recipient(s), {keys}",
            r.url,
            r.endpoint,
            r.recipients.len()
        ));
    }
    Ok(json!({"remotes": remotes.remotes}))
}

/// The remote called `name`, or the only one when `name` is `None` or empty.
pub fn pick(store: &Path, name: Option<&str>) -> Result<(String, Remote)> {
    let remotes = Remotes::load(store)?;
    match name.filter(|n| !n.is_empty()) {
        Some(n) => Ok((n.to_string(), remotes.get(n)?.clone())),
        None => {
            let mut all = remotes.remotes.into_iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => Err(Error::refused(
                    "no remote is set up",
                    "add one with `bwguard remote add NAME s3://BUCKET/PREFIX --endpoint URL --recipient age1…`",
                )),
                (Some(_), Some(_)) => {
                    Err(Error::Usage("several remotes are set up: name one with --remote NAME".into()))
                }
            }
        }
    }
}

/// `push`.
pub fn push(args: &PushArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, "push")?;
    let ids = store.chosen(&args.ids, args.all)?;
    push_ids(ctx, &store, args.remote.as_deref(), &ids)
}

/// After `backup --push`: pushes snapshot `new` and every local snapshot
/// newer than the newest copy on the remote, oldest first, so a run after
/// a failed push catches up (and copies pruned from the remote are not
/// sent again).
pub fn push_newer(
    ctx: &mut Ctx,
    store: &Store,
    remote: Option<&str>,
    new: &str,
) -> Result<serde_json::Value> {
    let (name, found) = pick(&store.root, remote)?;
    let newest_there = offsite::list(&found.client()?)?.0.into_iter().next().map(|l| l.id);
    let mut ids: Vec<String> = match &newest_there {
        Some(n) => store.list()?.into_iter().map(|l| l.id).filter(|id| id_key(id) > id_key(n)).collect(),
        None => Vec::new(),
    };
    if let Some(n) = newest_there.as_ref().filter(|n| id_key(n) > id_key(new)) {
        ctx.out.warn(format!(
            "remote {name} holds {n}, newer than this snapshot: another host pushes to the same prefix, \
             or this host's clock went back"
        ));
    }
    if !ids.iter().any(|i| i == new) {
        ids.insert(0, new.to_string());
    }
    ids.reverse();
    push_ids(ctx, store, Some(&name), &ids)
}

/// Pushes `ids` (the caller holds the lock), stopping at the first failure.
pub fn push_ids(
    ctx: &mut Ctx,
    store: &Store,
    remote: Option<&str>,
    ids: &[String],
) -> Result<serde_json::Value> {
    let (name, remote) = pick(&store.root, remote)?;
    let client = remote.client()?;
    if let Some(said) = offsite::abandon_pending(&client, store, &name)? {
        ctx.out.warn(said);
    }
    let (mut uploaded, mut already) = (Vec::new(), Vec::new());
    for id in ids {
        match offsite::push(&client, &remote, &name, store, id, ctx.now, ctx.progress)? {
            Pushed::Uploaded(rm) => {
                ctx.out.result(format!(
                    "{id}  pushed to {name}: {} encrypted, {}",
                    human_size(rm.object.size),
                    client.name(&offsite::rel(id, offsite::OBJECT))
                ));
                uploaded.push(
                    json!({"id": id, "object_size": rm.object.size, "object_sha256": rm.object.sha256}),
                );
            }
            Pushed::AlreadyThere(_) => {
                ctx.out.result(format!("{id}  already on {name}"));
                already.push(id.clone());
            }
        }
    }
    Ok(json!({"remote": name, "pushed": uploaded, "already_there": already}))
}

/// `pull`.
pub fn pull(args: &PullArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (id, pulled) = fetch(ctx, &install, args.remote.as_deref(), args.id.as_deref(), &args.identity)?;
    Ok(json!({"id": id, "pulled": pulled}))
}

/// Brings copy `id` (default: the newest on the remote) into the local
/// store unless it is there already; returns its id and whether it was
/// downloaded. Takes the store lock and releases it.
pub fn fetch(
    ctx: &mut Ctx,
    install: &Install,
    remote: Option<&str>,
    id: Option<&str>,
    identity: &Path,
) -> Result<(String, bool)> {
    let identities = Identities::load(identity)?;
    let (_lock, store) = begin_write(ctx, install, "pull")?;
    fetch_locked(ctx, &store, remote, id, &identities)
}

/// [`fetch`] for a caller that holds the store lock.
pub fn fetch_locked(
    ctx: &mut Ctx,
    store: &Store,
    remote: Option<&str>,
    id: Option<&str>,
    identities: &Identities,
) -> Result<(String, bool)> {
    let (name, remote) = pick(&store.root, remote)?;
    let client = remote.client()?;
    let (id, rm) = offsite::open_or_newest(&client, &name, id)?;
    if store.dir(&id).exists() {
        let local = store.open(&id)?;
        if local.archive != rm.archive {
            return Err(Error::refused(
                format!("the local snapshot {id} differs from the copy on {name}"),
                "two hosts push to the same prefix: give each host its own s3://BUCKET/PREFIX",
            ));
        }
        ctx.out.info(format!("{id} is already in the local store; nothing downloaded"));
        return Ok((id, false));
    }
    ctx.out.info(format!("Pulling {id} from {name} ({} encrypted)", human_size(rm.object.size)));
    let progress = Progress::new(&format!("pull {id}"), rm.object.size, ctx.progress);
    let m = offsite::pull(&client, &rm, identities, store, &progress)?;
    drop(progress);
    ctx.out.result(format!(
        "Pulled {id} from {name} into {}: decrypted and checked against its checksums ({} files, {})",
        store.dir(&id).display(),
        m.entries.iter().filter(|e| e.sha256.is_some()).count(),
        human_size(m.content_size())
    ));
    Ok((id, true))
}

/// `rollback --remote NAME --dry-run`: says which copy would be pulled and
/// restored, downloading nothing.
pub fn rollback_dry_run(
    ctx: &mut Ctx,
    store: &Store,
    remote: &str,
    id: Option<&str>,
) -> Result<serde_json::Value> {
    let (name, found) = pick(&store.root, Some(remote))?;
    let client = found.client()?;
    let (id, rm) = offsite::open_or_newest(&client, &name, id)?;
    let local = store.dir(&id).join(crate::engine::manifest::MANIFEST).is_file();
    ctx.out.result(format!(
        "dry run: would {}roll back to snapshot {id} ({}, {}, Bitwarden {}); nothing changed",
        if local {
            String::new()
        } else {
            format!("pull {id} from {name} ({} encrypted), then ", human_size(rm.object.size))
        },
        rm.created,
        rm.reason,
        rm.bitwarden.core_version.as_deref().unwrap_or("?")
    ));
    Ok(json!({"id": id, "dry_run": true, "remote": name, "pull": !local, "copy": rm}))
}

/// `list --remote NAME`.
pub fn list(ctx: &mut Ctx, name: &str) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (name, remote) = pick(&install.store, Some(name))?;
    let client = remote.client()?;
    let (listed, incomplete) = offsite::list(&client)?;
    let mut rows = vec![["ID", "AGE", "REASON", "SIZE", "PINNED", "VERSION", "PUSHED"].map(String::from)];
    let mut docs = Vec::new();
    for l in &listed {
        match &l.manifest {
            Ok(m) => {
                rows.push([
                    l.id.clone(),
                    seconds_since(&m.created, ctx.now).map(human_age).unwrap_or_else(|| "?".into()),
                    m.reason.clone(),
                    human_size(m.object.size),
                    if m.pinned { "yes" } else { "no" }.into(),
                    m.bitwarden.core_version.clone().unwrap_or_else(|| "?".into()),
                    seconds_since(&m.pushed, ctx.now)
                        .map(|a| human_age(a) + " ago")
                        .unwrap_or_else(|| "?".into()),
                ]);
                docs.push(serde_json::to_value(m).unwrap_or_default());
            }
            Err(problem) => {
                rows.push([
                    l.id.clone(),
                    "?".into(),
                    format!("DAMAGED: {problem}"),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
                docs.push(json!({"id": l.id, "damaged": problem}));
            }
        }
    }
    if listed.is_empty() {
        ctx.out.info(format!("No snapshot copies on {name} ({}).", remote.url));
    } else {
        for line in crate::report::table::table(&rows) {
            ctx.out.result(line);
        }
    }
    if !incomplete.is_empty() {
        ctx.out.info(format!(
            "{} incomplete copies not listed ({}); a push of those snapshots replaces them, `prune --remote` removes them",
            incomplete.len(),
            incomplete.join(", ")
        ));
    }
    Ok(json!({"remote": name, "url": remote.url, "snapshots": docs, "incomplete": incomplete}))
}

/// `verify --remote NAME`.
pub fn verify(args: &VerifyArgs, ctx: &mut Ctx, name: &str) -> Result<serde_json::Value> {
    if args.deep && args.identity.is_none() {
        return Err(Error::Usage(
            "verify --remote --deep decrypts the copies: give the age identity with --identity FILE".into(),
        ));
    }
    let identities = args.identity.as_deref().map(Identities::load).transpose()?;
    let install = ctx.install()?;
    let (name, remote) = pick(&install.store, Some(name))?;
    let client = remote.client()?;
    let ids: Vec<String> = if args.all {
        offsite::list(&client)?.0.into_iter().map(|l| l.id).collect()
    } else if args.ids.is_empty() {
        vec![offsite::newest(&client, &name)?]
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        return Err(Error::refused(
            format!("remote {name} holds no snapshot"),
            format!("push one with `bwguard push --remote {name}`"),
        ));
    }
    let mode = if identities.is_some() { "decrypted, deep" } else { "ciphertext checksum" };
    let results = check_each(ctx, &ids, &format!(" on {name}"), mode, |ctx, id| {
        let rm = offsite::open(&client, &name, id)?;
        let progress = Progress::new(&format!("verify {id}"), rm.object.size, ctx.progress);
        offsite::verify(&client, &rm, identities.as_ref(), &progress)
    })?;
    Ok(json!({"remote": name, "mode": mode, "snapshots": results}))
}

/// `prune --remote NAME`: the same retention, applied to the copies. The
/// newest copy whose checksum object and size agree with its manifest is
/// always kept, as are pinned ones.
pub fn prune(args: &PruneArgs, ctx: &mut Ctx, name: &str) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, "prune")?;
    let policy: Policy = match args.retention.policy() {
        Some(p) => p,
        None => crate::schedule::policy::saved_policy(&store)?.unwrap_or_default(),
    };
    let (name, remote) = pick(&store.root, Some(name))?;
    if policy.is_empty() {
        ctx.out.result("no retention policy: nothing removed");
        return Ok(
            json!({"remote": name, "policy": policy, "dry_run": args.dry_run, "kept": [], "removed": []}),
        );
    }
    let client = remote.client()?;
    let (listed, incomplete) = offsite::list(&client)?;
    for id in &incomplete {
        let verb = if args.dry_run { "would remove" } else { "remove" };
        ctx.out.result(format!("{verb:<13} {id}  incomplete copy (an interrupted push or prune)"));
        if !args.dry_run {
            offsite::delete_incomplete(&client, id)?;
        }
    }
    let mut candidates = Vec::new();
    let mut manifests: Vec<RemoteManifest> = Vec::new();
    for l in listed {
        match l.manifest {
            Ok(m) => match DateTime::parse_from_rfc3339(&m.created) {
                Ok(t) => {
                    candidates.push(Candidate {
                        id: m.id.clone(),
                        time: t.with_timezone(&Utc),
                        pinned: m.pinned,
                        verified: false,
                    });
                    manifests.push(m);
                }
                Err(_) => ctx.out.warn(format!("{}: unreadable creation time; left alone", m.id)),
            },
            Err(problem) => ctx.out.warn(format!("{}: damaged on {name} ({problem}); left alone", l.id)),
        }
    }
    for (c, m) in candidates.iter_mut().zip(&manifests) {
        if offsite::quick_check(&client, m).is_ok() {
            c.verified = true;
            break;
        }
        ctx.out.warn(format!("{} on {name} fails its checks", c.id));
    }
    ctx.out.info(format!("policy on {name}: {}", policy.describe()));
    let mut doc = crate::commands::prune::decide(ctx, &candidates, &policy, args.dry_run, |id| {
        offsite::delete(&client, id)
    })?;
    doc["remote"] = json!(name);
    doc["incomplete_removed"] = json!(incomplete);
    Ok(doc)
}
