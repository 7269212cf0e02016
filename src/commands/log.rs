//! `log ID`: the journal of an `--apply` or `upgrade` run: every step, its
//! time, exit code and (with `-v`) the end of its output. Read-only.

use super::Run;
use crate::cli::LogArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::procedure::Journal;

impl Run for LogArgs {
    type Report = Journal;

    fn run(&self, ctx: &mut Ctx) -> Result<Journal> {
        let install = ctx.install()?;
        let store = install.open_store()?;
        let journal = Journal::read(&store, &store.expand(&self.id)?)?;
        ctx.out.show(&journal);
        Ok(journal)
    }
}
