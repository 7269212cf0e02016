//! `push`: copy snapshots to a remote, encrypted (default: the newest).
//! The work is `crate::offsite::push`; this file picks the snapshots and
//! takes the lock.

use super::Run;
use crate::cli::PushArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::offsite;
use crate::report::PushReport;

impl Run for PushArgs {
    type Report = PushReport;

    fn run(&self, ctx: &mut Ctx) -> Result<PushReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "push")?;
        let ids = writing.store.chosen(&self.ids, self.all)?;
        let report = offsite::push_ids(
            &mut ctx.out,
            &writing.store,
            self.remote.as_deref(),
            &ids,
            ctx.now,
            ctx.progress,
        )?;
        ctx.out.show(&report);
        Ok(report)
    }
}
