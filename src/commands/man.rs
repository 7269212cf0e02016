//! `man`: the man page as roff, generated from the clap definitions.

use clap::CommandFactory;

use super::Run;
use crate::cli::{Cli, ManArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::report::ManReport;

impl Run for ManArgs {
    type Report = ManReport;

    fn run(&self, ctx: &mut Ctx) -> Result<ManReport> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut buf)
            .map_err(|e| Error::internal(format!("cannot render the man page: {e}")))?;
        let report = ManReport { man: String::from_utf8_lossy(&buf).into_owned() };
        ctx.out.show(&report);
        Ok(report)
    }
}
