//! `list`: the snapshots, newest first, as an aligned table; with
//! `--remote`, the complete copies on a remote.

use super::Run;
use crate::cli::ListArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::offsite::{self, remote};
use crate::report::StoreList;
use crate::report::human::{age, seconds_since};
use crate::report::{ListReport, Listing, RemoteListReport, RemoteListing, SnapshotListing};

impl Run for ListArgs {
    type Report = ListReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ListReport> {
        let report = match &self.remote {
            Some(name) => ListReport::Remote(list_remote(ctx, self, name)?),
            None => ListReport::Store(list_store(ctx)?),
        };
        ctx.out.show(&report);
        Ok(report)
    }
}

fn list_store(ctx: &mut Ctx) -> Result<StoreList> {
    let install = ctx.install()?;
    let store = install.open_store()?;
    let snapshots = store
        .list()?
        .into_iter()
        .map(|l| match l.manifest {
            Ok(m) => Listing::Snapshot(Box::new(SnapshotListing::of(&m, age(&m, ctx.now)))),
            Err(damaged) => Listing::Damaged { id: l.id, damaged },
        })
        .collect();
    Ok(StoreList { store: store.root.display().to_string(), snapshots })
}

fn list_remote(ctx: &mut Ctx, args: &ListArgs, name: &str) -> Result<RemoteListReport> {
    let install = ctx.install()?;
    let store = install.open_store()?;
    let (name, found) = remote::pick(&store.root, Some(name))?;
    let trust = found.trust(&store.root, &name, &args.trust.accept())?;
    let (listed, incomplete) = offsite::list(&found.client()?)?;
    let snapshots = listed
        .into_iter()
        .map(|l| {
            let signed = l.signer(&trust, &name);
            match l.manifest {
                Ok(m) => RemoteListing::Copy {
                    age_seconds: seconds_since(&m.created, ctx.now),
                    pushed_age_seconds: seconds_since(&m.pushed, ctx.now),
                    copy: Box::new(m),
                    signed_by: signed.as_ref().ok().cloned(),
                    untrusted: signed.err().map(|e| e.to_string()),
                },
                Err(damaged) => RemoteListing::Damaged { id: l.id, damaged },
            }
        })
        .collect();
    Ok(RemoteListReport { remote: name, url: found.url, snapshots, incomplete })
}
