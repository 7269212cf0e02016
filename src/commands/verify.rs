//! `verify`: check snapshots in the store, or with `--remote` the copies on
//! a remote; keep going past a failure, fail at the end.

use super::Run;
use crate::cli::VerifyArgs;
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::verify::check_files;
use crate::error::{Error, Exit, Refusal, Result};
use crate::offsite::crypt::Identities;
use crate::offsite::sign::Signer;
use crate::offsite::{self, remote};
use crate::report::{Checked, VerifyReport};

impl Run for VerifyArgs {
    type Report = VerifyReport;

    fn run(&self, ctx: &mut Ctx) -> Result<VerifyReport> {
        match &self.remote {
            Some(name) => verify_remote(self, ctx, name),
            None => verify_local(self, ctx),
        }
    }
}

fn verify_local(args: &VerifyArgs, ctx: &mut Ctx) -> Result<VerifyReport> {
    let install = ctx.install()?;
    let store = install.open_store()?;
    let ids = store.chosen(&args.ids, args.all)?;
    if ids.is_empty() {
        return Err(Error::NoSnapshots(store.root.clone()));
    }
    let mode = if args.deep { "deep" } else { "checksums" };
    let report = VerifyReport { remote: None, mode: mode.into(), snapshots: Vec::new() };
    check_each(ctx, report, &ids, |ctx, id| {
        let m = store.open(id)?;
        let total = if args.deep { m.content_size() } else { m.archive.size };
        let progress = Progress::new(&format!("verify {id}"), total, ctx.progress);
        check_files(&store.dir(id), &m, args.deep, &progress)
            .map(|()| None)
            .map_err(|e| gone_or(&store, id, e))
    })
}

/// A snapshot whose manifest was read and is gone now was deleted while it
/// was checked (a prune or forget, which take the lock verify does not;
/// they remove the manifest first): gone, exit 2, not damaged, exit 3.
fn gone_or(store: &crate::engine::store::Store, id: &str, e: Error) -> Error {
    let deleted = !store.dir(id).join(crate::engine::manifest::MANIFEST).exists();
    match e {
        Error::Integrity { .. } | Error::Io { .. } if deleted => {
            Error::SnapshotGone { id: id.to_string(), store: store.root.clone() }
        }
        e => e,
    }
}

/// `verify --remote NAME`: the copy's signature by a trusted key, then
/// without `--deep` the ciphertext's checksum (no age key needed); with
/// `--deep --identity FILE`, decrypted and checked entry by entry.
fn verify_remote(args: &VerifyArgs, ctx: &mut Ctx, name: &str) -> Result<VerifyReport> {
    if args.deep && args.identity.is_none() {
        return Err(Error::Usage(
            "verify --remote --deep decrypts the copies: give the age identity with --identity FILE".into(),
        ));
    }
    let identities = args.identity.as_deref().map(Identities::load).transpose()?;
    let install = ctx.install()?;
    let store = install.open_store()?;
    let (name, found) = remote::pick(&store.root, Some(name))?;
    let client = found.client()?;
    let trust = found.trust(&store.root, &name, &args.trust.accept())?;
    let ids: Vec<String> = if args.all {
        offsite::list(&client)?.0.into_iter().map(|l| l.id).collect()
    } else if args.ids.is_empty() {
        let newest = offsite::newest(&client, &name, &trust)?;
        for said in &newest.passed_over {
            ctx.out.warn(said);
        }
        vec![newest.id]
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        return Err(Error::refused(
            Refusal::RemoteEmpty,
            format!("remote {name} holds no snapshot"),
            format!("push one with `bwguard push --remote {name}`"),
        ));
    }
    let mode = if identities.is_some() { "decrypted, deep" } else { "ciphertext checksum" };
    let report = VerifyReport { remote: Some(name.clone()), mode: mode.into(), snapshots: Vec::new() };
    check_each(ctx, report, &ids, |ctx, id| {
        let opened = offsite::open(&client, &name, id, &trust)?;
        let progress = Progress::new(&format!("verify {id}"), opened.manifest.object.size, ctx.progress);
        offsite::verify(&client, &opened.manifest, identities.as_ref(), &progress)?;
        Ok(Some(opened.signer))
    })
}

/// Runs `check` on each id, showing a line for each, and keeps going past
/// a failure; fails at the end with the worst error (an integrity failure
/// outranks an unknown id).
fn check_each(
    ctx: &mut Ctx,
    mut report: VerifyReport,
    ids: &[String],
    mut check: impl FnMut(&mut Ctx, &str) -> Result<Option<Signer>>,
) -> Result<VerifyReport> {
    let mut failed: Vec<(String, Error)> = Vec::new();
    for id in ids {
        let outcome = check(ctx, id);
        report.snapshots.push(Checked {
            id: id.clone(),
            ok: outcome.is_ok(),
            problem: outcome.as_ref().err().map(|e| e.to_string()),
            signed_by: outcome.as_ref().ok().cloned().flatten(),
        });
        report.show_last(&mut ctx.out);
        if let Err(e) = outcome {
            failed.push((id.clone(), e));
        }
    }
    let Some(worst) = failed.iter().map(|(_, e)| e.exit()).max() else {
        ctx.out.show(&report);
        return Ok(report);
    };
    if failed.len() == 1 && ids.len() == 1 {
        return Err(failed.remove(0).1);
    }
    if worst != Exit::Integrity {
        let at = failed.iter().position(|(_, e)| e.exit() == worst).unwrap_or(0);
        return Err(failed.remove(at).1);
    }
    let place = report.remote.as_ref().map(|r| format!(" on {r}")).unwrap_or_default();
    let names: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
    let problem = |e: &Error| match e {
        Error::Integrity { problem, .. } => problem.clone(),
        other => other.to_string(),
    };
    let problems: Vec<String> = match failed.as_slice() {
        [(_, e)] => vec![problem(e)],
        all => all.iter().map(|(id, e)| format!("{id}: {}", problem(e))).collect(),
    };
    Err(Error::Integrity {
        id: names.join(", "),
        problem: format!(
            "{} of {} failed verification{place}: {}",
            failed.len(),
            ids.len(),
            problems.join("; ")
        ),
    })
}
