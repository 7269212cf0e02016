//! `completions SHELL`: the shell's completion script, generated from the
//! clap definitions, so it never disagrees with the real flags.

use clap::CommandFactory;

use super::Run;
use crate::cli::{Cli, CompletionsArgs};
use crate::context::Ctx;
use crate::error::Result;
use crate::report::CompletionsReport;

impl Run for CompletionsArgs {
    type Report = CompletionsReport;

    fn run(&self, ctx: &mut Ctx) -> Result<CompletionsReport> {
        let mut buf = Vec::new();
        clap_complete::generate(self.shell, &mut Cli::command(), "bwguard", &mut buf);
        let report = CompletionsReport {
            shell: self.shell.to_string(),
            script: String::from_utf8_lossy(&buf).into_owned(),
        };
        ctx.out.show(&report);
        Ok(report)
    }
}
