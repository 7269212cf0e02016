//! `prune`: delete snapshots by a retention policy (the given one, else the
//! one `schedule install` saved), printing the reason for every one kept
//! and removed; with `--remote`, the same for the copies on a remote. The
//! decisions come from `schedule::retention::apply`, a pure function.

use chrono::{DateTime, Utc};

use super::Run;
use crate::cli::PruneArgs;
use crate::context::Ctx;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::offsite::sign::Accept;
use crate::offsite::{self, RemoteManifest, remote};
use crate::report::PruneReport;
use crate::schedule::retention::{Candidate, Policy};
use crate::schedule::{policy, prune};

impl Run for PruneArgs {
    type Report = PruneReport;

    fn run(&self, ctx: &mut Ctx) -> Result<PruneReport> {
        let install = ctx.install()?;
        // A mistyped --store must not become an empty store with nothing to prune.
        if !install.store.exists() {
            return Err(Error::NoStore(install.store.clone()));
        }
        if self.save_policy && self.retention.policy().is_none() {
            return Err(Error::Usage(
                "--save-policy saves the --keep-* flags given with it: add them".into(),
            ));
        }
        let writing = ctx.begin_write(&install, "prune")?;
        let policy = match self.retention.policy() {
            Some(p) => {
                if self.save_policy {
                    policy::save_policy(&writing.store, &p)?;
                    ctx.out.info(format!(
                        "saved the retention policy {} for prune and backup --prune",
                        p.describe()
                    ));
                }
                p
            }
            None => policy::saved_policy(&writing.store)?.ok_or_else(|| policy::no_policy(&writing.store))?,
        };
        let report = match &self.remote {
            Some(name) => prune_remote(ctx, &writing.store, name, &policy, self.dry_run)?,
            None => prune::prune_store(
                &mut ctx.out,
                &writing.store,
                &policy,
                self.dry_run,
                ctx.now,
                ctx.progress,
                crate::install::facts::read_info(&install).installation_id.as_deref(),
            )?,
        };
        ctx.out.show(&report);
        Ok(report)
    }
}

/// `prune --remote NAME`: the same retention, applied to the copies. The
/// newest copy whose checksum object and size agree with its manifest is
/// always kept, as are pinned ones; incomplete copies are removed.
fn prune_remote(
    ctx: &mut Ctx,
    store: &Store,
    name: &str,
    policy: &Policy,
    dry_run: bool,
) -> Result<PruneReport> {
    let (name, found) = remote::pick(&store.root, Some(name))?;
    if policy.is_empty() {
        return Ok(PruneReport { remote: Some(name), ..prune::empty(policy, dry_run) });
    }
    let client = found.client()?;
    // Only copies signed by a trusted key count toward retention or are
    // deleted: forged copies can neither push genuine ones out nor be
    // mistaken for them.
    let trust = found.trust(&store.root, &name, &Accept::default())?;
    let (listed, incomplete) = offsite::list(&client)?;
    if !dry_run {
        for id in &incomplete {
            offsite::delete_incomplete(&client, id)?;
        }
    }
    let mut candidates = Vec::new();
    let mut manifests: Vec<RemoteManifest> = Vec::new();
    for l in listed {
        if let (Ok(_), Err(e)) = (&l.manifest, l.signer(&trust, &name)) {
            ctx.out.warn(format!("{}: left alone and not counted ({e})", l.id));
            continue;
        }
        match l.manifest {
            Ok(m) => match DateTime::parse_from_rfc3339(&m.created) {
                Ok(t) => {
                    candidates.push(Candidate {
                        id: m.id.clone(),
                        // A remote's copies go by their time.
                        sequence: 0,
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
    let mut report = prune::decide(&mut ctx.out, &candidates, policy, dry_run, ctx.now, |id| {
        offsite::delete(&client, id)
    })?;
    report.remote = Some(name);
    report.incomplete_removed = incomplete;
    Ok(report)
}
