//! `pull`: fetch a snapshot from a remote into the local store, decrypted
//! and checked (default: the newest copy there).

use super::Run;
use crate::cli::PullArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::offsite::{self, crypt::Identities};
use crate::report::PullReport;

impl Run for PullArgs {
    type Report = PullReport;

    fn run(&self, ctx: &mut Ctx) -> Result<PullReport> {
        let install = ctx.install()?;
        let identities = Identities::load(&self.identity)?;
        let writing = ctx.begin_write(&install, "pull")?;
        let report = offsite::fetch_locked(
            &mut ctx.out,
            &writing.store,
            self.remote.as_deref(),
            self.id.as_deref(),
            &identities,
            ctx.progress,
            &self.trust.accept(),
        )?;
        ctx.out.show(&report);
        Ok(report)
    }
}
