//! `resume-db`: start the database container again if an interrupted
//! `backup --pause-db` left it stopped. Every writing run does this first
//! ([`crate::context::Ctx::begin_write`]); this command does only that: it is
//! the scheduled unit's `ExecStopPost=`, which runs even when bwguard was
//! killed.

use super::Run;
use crate::cli::ResumeDbArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::report::ResumeDbReport;

impl Run for ResumeDbArgs {
    type Report = ResumeDbReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ResumeDbReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "resume-db")?;
        let report = ResumeDbReport { resumed: writing.resumed_db.clone() };
        ctx.out.show(&report);
        Ok(report)
    }
}
