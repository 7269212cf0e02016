//! `forget ID`: delete one snapshot, asking first; a pinned one needs
//! `--force`.

use super::{Run, confirm};
use crate::cli::ForgetArgs;
use crate::context::Ctx;
use crate::error::{Error, Refusal, Result};
use crate::report::ForgetReport;

impl Run for ForgetArgs {
    type Report = ForgetReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ForgetReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "forget")?;
        let m = writing.store.open(&self.id)?;
        if m.pinned && !self.force {
            return Err(Error::refused(
                Refusal::Pinned,
                format!("snapshot {} is pinned ({}); a rollback may need it", m.id, m.reason),
                format!("`bwguard unpin {0}` first, or `bwguard forget {0} --force`", m.id),
            ));
        }
        let deleted = confirm(ctx, &format!("Delete snapshot {} ({}, {})?", m.id, m.created, m.reason))?;
        if deleted {
            writing.store.delete(&m.id)?;
        }
        let report = ForgetReport { id: m.id, deleted };
        ctx.out.show(&report);
        Ok(report)
    }
}
