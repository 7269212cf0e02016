//! Pruning: the snapshots of a store (or the copies of a remote) gathered
//! as retention candidates, the newest good one marked, the decisions of
//! [`retention::apply`] carried out.

use chrono::{DateTime, Utc};

use crate::context::Output;
use crate::engine::progress::Progress;
use crate::engine::recompress;
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::Result;
use crate::report::{Compressed, Decided, PruneReport};
use crate::schedule::retention::{self, Candidate, Policy};

/// Applies `policy` to the snapshots in `store` (the caller holds the
/// lock). Damaged snapshots are left alone, and the newest snapshot that
/// passes verification is never removed.
pub fn prune_store(
    out: &mut Output,
    store: &Store,
    policy: &Policy,
    dry_run: bool,
    now: DateTime<Utc>,
    progress: bool,
    installation: Option<&str>,
) -> Result<PruneReport> {
    if policy.is_empty() {
        return Ok(empty(policy, dry_run));
    }
    let mut candidates = Vec::new();
    for l in store.list()? {
        match &l.manifest {
            // Another install's snapshots in a shared store are its own
            // to prune: neither counted nor removed here.
            Ok(m) if m.of_other_installation(installation) => {
                out.warn(format!("{}: another Bitwarden installation's snapshot; left alone", m.id));
            }
            Ok(m) => match DateTime::parse_from_rfc3339(&m.created) {
                Ok(t) => candidates.push(Candidate {
                    id: m.id.clone(),
                    sequence: m.sequence.unwrap_or(0),
                    time: t.with_timezone(&Utc),
                    pinned: m.pinned,
                    verified: false,
                }),
                Err(_) => out.warn(format!("{}: unreadable creation time; left alone", m.id)),
            },
            Err(problem) => {
                out.warn(format!("{}: damaged ({problem}); left alone, see `bwguard forget`", l.id))
            }
        }
    }
    for c in candidates.iter_mut() {
        let ok =
            store.open(&c.id).and_then(|m| check_files(&store.dir(&c.id), &m, false, &Progress::hidden(0)));
        if ok.is_ok() {
            c.verified = true;
            break;
        }
        out.warn(format!("{} fails verification", c.id));
    }
    let mut report = decide(out, &candidates, policy, dry_run, now, |id| store.delete(id))?;
    report.compressed = compress_kept(out, store, &report.kept, dry_run, progress);
    Ok(report)
}

/// Compresses the kept safety snapshots of rollbacks (stored uncompressed
/// for the outage's sake). A snapshot that cannot be compressed stays as
/// it is, with a warning: the prune itself succeeded.
fn compress_kept(
    out: &mut Output,
    store: &Store,
    kept: &[Decided],
    dry_run: bool,
    progress: bool,
) -> Vec<Compressed> {
    let mut done = Vec::new();
    for d in kept {
        let Ok(m) = store.open(&d.id) else { continue };
        if !recompress::wanted(&m) {
            continue;
        }
        if dry_run {
            done.push(Compressed {
                id: d.id.clone(),
                archive_size_before: m.archive.size,
                archive_size_after: None,
            });
            continue;
        }
        match recompress::recompress(store, &d.id, progress) {
            Ok(Some(sizes)) => done.push(Compressed {
                id: d.id.clone(),
                archive_size_before: sizes.before,
                archive_size_after: Some(sizes.after),
            }),
            Ok(None) => out.warn(format!(
                "{}: left uncompressed: this filesystem cannot swap a compressed copy in atomically",
                d.id
            )),
            Err(e) => out.warn(format!("{}: left uncompressed: {e}", d.id)),
        }
    }
    done
}

/// The report of an empty policy: nothing is removed.
pub fn empty(policy: &Policy, dry_run: bool) -> PruneReport {
    PruneReport {
        remote: None,
        policy: policy.clone(),
        dry_run,
        kept: Vec::new(),
        removed: Vec::new(),
        incomplete_removed: Vec::new(),
        compressed: Vec::new(),
    }
}

/// Decides by `policy` which `candidates` go and removes them with
/// `remove` unless `dry_run`. A removal that fails ends the run with its
/// error, after saying what was already removed.
pub fn decide(
    out: &mut Output,
    candidates: &[Candidate],
    policy: &Policy,
    dry_run: bool,
    now: DateTime<Utc>,
    mut remove: impl FnMut(&str) -> Result<()>,
) -> Result<PruneReport> {
    let mut report = empty(policy, dry_run);
    for d in retention::apply(candidates, policy, now, &chrono::Local) {
        let decided = Decided { id: d.id, reasons: d.reasons };
        if d.keep {
            report.kept.push(decided);
            continue;
        }
        if !dry_run && let Err(e) = remove(&decided.id) {
            if !report.removed.is_empty() {
                let done: Vec<&str> = report.removed.iter().map(|r| r.id.as_str()).collect();
                out.warn(format!("removed {} before {} could not be removed", done.join(", "), decided.id));
            }
            return Err(e);
        }
        report.removed.push(decided);
    }
    Ok(report)
}
