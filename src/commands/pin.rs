//! `pin ID`: keep a snapshot from pruning.

use super::Run;
use crate::cli::PinArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::report::PinReport;

impl Run for PinArgs {
    type Report = PinReport;

    fn run(&self, ctx: &mut Ctx) -> Result<PinReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "pin")?;
        let id = writing.store.expand(&self.id)?;
        let changed = writing.store.set_pinned(&id, true)?;
        let report = PinReport { id, pinned: true, changed };
        ctx.out.show(&report);
        Ok(report)
    }
}
