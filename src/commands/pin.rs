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
        let changed = writing.store.set_pinned(&self.id, true)?;
        let report = PinReport { id: self.id.clone(), pinned: true, changed };
        ctx.out.show(&report);
        Ok(report)
    }
}
