//! `completions SHELL`: the shell's completion script. It asks bwguard
//! itself for completions (clap_complete's dynamic engine), so it never
//! disagrees with the real flags and completes snapshot ids, config.yml
//! keys and remote names from the install (see `crate::cli::complete`).

use super::Run;
use crate::cli::CompletionsArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::report::CompletionsReport;

impl Run for CompletionsArgs {
    type Report = CompletionsReport;

    fn run(&self, ctx: &mut Ctx) -> Result<CompletionsReport> {
        let buf = crate::cli::complete::script(&self.shell.to_string())
            .map_err(|e| crate::error::Error::internal(format!("cannot write the completion script: {e}")))?;
        let report = CompletionsReport {
            shell: self.shell.to_string(),
            script: String::from_utf8_lossy(&buf).into_owned(),
        };
        ctx.out.show(&report);
        Ok(report)
    }
}
