//! `forget ID`: delete one snapshot, asking first; a pinned one needs
//! `--force`.

use super::{Run, confirm_or_stop};
use crate::cli::ForgetArgs;
use crate::context::Ctx;
use crate::error::{Error, Refusal, Result};
use crate::report::ForgetReport;

impl Run for ForgetArgs {
    type Report = ForgetReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ForgetReport> {
        let install = ctx.install()?;
        let writing = ctx.begin_write(&install, "forget")?;
        let m = writing.store.open(&writing.store.expand(&self.id)?)?;
        if m.pinned && !self.force {
            return Err(Error::refused(
                Refusal::Pinned,
                format!("snapshot {} is pinned ({}); a rollback may need it", m.id, m.reason),
                format!("`bwguard unpin {0}` first, or `bwguard forget {0} --force`", m.id),
            ));
        }
        confirm_or_stop(ctx, &format!("Delete snapshot {} ({}, {})?", m.id, m.created, m.reason))?;
        writing.store.delete(&m.id)?;
        let report = ForgetReport { id: m.id, deleted: true };
        ctx.out.show(&report);
        Ok(report)
    }
}
