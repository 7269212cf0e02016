//! `pin`, `unpin` and `forget`: keep a snapshot from pruning, release it,
//! or delete one snapshot (asking first; a pinned one needs `--force`).

use serde_json::json;

use crate::cli::{ForgetArgs, IdArg};
use crate::commands::{begin_write, confirm};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// Runs `pin` (`pinned`) or `unpin`.
pub fn run_pin(args: &IdArg, pinned: bool, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, if pinned { "pin" } else { "unpin" })?;
    let mut m = store.open(&args.id)?;
    let word = if pinned { "pinned" } else { "not pinned" };
    if m.pinned == pinned {
        ctx.out.result(format!("{} is already {word}", m.id));
    } else {
        m.pinned = pinned;
        store.rewrite_manifest(&m)?;
        ctx.out.result(format!("{} is now {word}", m.id));
    }
    Ok(json!({"id": m.id, "pinned": m.pinned}))
}

/// Runs `forget`.
pub fn run_forget(args: &ForgetArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let (_lock, store) = begin_write(ctx, &install, "forget")?;
    let m = store.open(&args.id)?;
    if m.pinned && !args.force {
        return Err(Error::refused(
            format!("snapshot {} is pinned ({}); a rollback may need it", m.id, m.reason),
            format!("`bwguard unpin {0}` first, or `bwguard forget {0} --force`", m.id),
        ));
    }
    if !confirm(ctx, &format!("Delete snapshot {} ({}, {})?", m.id, m.created, m.reason))? {
        ctx.out.result("Nothing deleted.");
        return Ok(json!({"id": m.id, "deleted": false}));
    }
    store.delete(&m.id)?;
    ctx.out.result(format!("Deleted snapshot {}", m.id));
    Ok(json!({"id": m.id, "deleted": true}))
}
