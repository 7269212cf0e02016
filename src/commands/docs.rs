//! `completions` and `man`: generated from the clap definitions, so they
//! never disagree with the real flags.

use clap::CommandFactory;
use serde_json::json;

use crate::cli::{Cli, CompletionsArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// Prints the completion script for a shell.
pub fn completions(args: &CompletionsArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "bwguard", &mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    ctx.out.result(text.trim_end());
    Ok(json!({"shell": args.shell.to_string(), "script": text}))
}

/// Prints the man page as roff.
pub fn man(ctx: &mut Ctx) -> Result<serde_json::Value> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(|e| Error::Failed { message: format!("cannot render the man page: {e}"), hint: None })?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    ctx.out.result(text.trim_end());
    Ok(json!({"man": text}))
}
