//! `unpin ID`: let a snapshot be pruned again.

use super::Run;
use crate::cli::UnpinArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::report::PinReport;

impl Run for UnpinArgs {
    type Report = PinReport;

    fn run(&self, ctx: &mut Ctx) -> Result<PinReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "unpin")?;
        let id = writing.store.expand(&self.id)?;
        let changed = writing.store.set_pinned(&id, false)?;
        let report = PinReport { id, pinned: false, changed };
        ctx.out.show(&report);
        Ok(report)
    }
}
