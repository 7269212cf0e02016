//! `prune` (and `backup --prune`): delete snapshots by a retention policy,
//! printing the reason for every one kept and removed. The decisions come
//! from `retention::apply`, a pure function; this file only gathers the
//! snapshots, finds the newest verified one, and deletes.
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cli::PruneArgs;
use crate::commands::begin_write;
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::Result;
use crate::schedule::policy::saved_policy;
use crate::schedule::retention::{self, Candidate, Policy};

/// Runs `prune`.
pub fn run(args: &PruneArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, "prune")?;
    let policy = match args.retention.policy() {
        Some(p) => p,
        None => saved_policy(&store)?.unwrap_or_default(),
    };
    prune(ctx, &store, &policy, args.dry_run)
}

/// Applies `policy` to the snapshots in `store` (the caller holds the lock).
pub fn prune(ctx: &mut Ctx, store: &Store, policy: &Policy, dry_run: bool) -> Result<serde_json::Value> {
    if policy.is_empty() {
        ctx.out.result("no retention policy: nothing removed");
        return Ok(json!({"policy": policy, "dry_run": dry_run, "kept": [], "removed": []}));
    }
    let mut candidates = Vec::new();
    for l in store.list()? {
        match &l.manifest {
            Ok(m) => {
                let time = DateTime::parse_from_rfc3339(&m.created).map(|t| t.with_timezone(&Utc));
                let Ok(time) = time else {
                    ctx.out.warn(format!("{}: unreadable creation time; left alone", m.id));
                    continue;
                };
                candidates.push(Candidate { id: m.id.clone(), time, pinned: m.pinned, verified: false });
            }
            Err(problem) => {
                ctx.out.warn(format!("{}: damaged ({problem}); left alone, see `bwguard forget`", l.id))
            }
        }
    }
    // The newest snapshot that passes verification is never removed.
    for c in candidates.iter_mut() {
        let ok =
            store.open(&c.id).and_then(|m| check_files(&store.dir(&c.id), &m, false, &Progress::hidden(0)));
        if ok.is_ok() {
            c.verified = true;
            break;
        }
        ctx.out.warn(format!("{} fails verification", c.id));
    }
    ctx.out.info(format!("policy: {}", policy.describe()));
    decide(ctx, &candidates, policy, dry_run, |id| store.delete(id))
}

/// Decides by `policy` which `candidates` go, says why for each, and
/// removes them with `remove` unless `dry_run`; returns the JSON report.
pub fn decide(
    ctx: &mut Ctx,
    candidates: &[Candidate],
    policy: &Policy,
    dry_run: bool,
    mut remove: impl FnMut(&str) -> Result<()>,
) -> Result<serde_json::Value> {
    let decisions = retention::apply(candidates, policy, ctx.now, &chrono::Local);
    let verb = if dry_run { "would remove" } else { "remove" };
    let (mut kept, mut removed) = (Vec::new(), Vec::new());
    for d in &decisions {
        let reasons = d.reasons.join("; ");
        if d.keep {
            ctx.out.result(format!("keep          {}  {reasons}", d.id));
            kept.push(json!({"id": d.id, "reasons": d.reasons}));
        } else {
            ctx.out.result(format!("{verb:<13} {}  {reasons}", d.id));
            if !dry_run {
                remove(&d.id)?;
            }
            removed.push(json!({"id": d.id, "reasons": d.reasons}));
        }
    }
    ctx.out.info(format!(
        "{} kept, {} {}",
        kept.len(),
        removed.len(),
        if dry_run { "would be removed (dry run)" } else { "removed" }
    ));
    Ok(json!({"policy": policy, "dry_run": dry_run, "kept": kept, "removed": removed}))
}
