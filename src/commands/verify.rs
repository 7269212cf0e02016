//! `verify`: check snapshots; keep going past a failure, fail at the end.

use serde_json::json;

use crate::cli::VerifyArgs;
use crate::context::Ctx;
use crate::engine::progress::Progress;
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Exit, Result};

/// Runs `verify`.
pub fn run(args: &VerifyArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let ids = store.chosen(&args.ids, args.all)?;
    if ids.is_empty() {
        return Err(Error::NoSnapshots(store.root.clone()));
    }
    let mode = if args.deep { "deep" } else { "checksums" };
    let results = check_each(ctx, &ids, "", mode, |ctx, id| {
        let m = store.open(id)?;
        let total = if args.deep { m.content_size() } else { m.archive.size };
        let progress = Progress::new(&format!("verify {id}"), total, ctx.progress);
        check_files(&store.dir(id), &m, args.deep, &progress)
    })?;
    ctx.out.info(format!("{} snapshot(s) verified ({mode})", ids.len()));
    Ok(json!({"mode": mode, "snapshots": results}))
}

/// Runs `check` on each id, printing a line for each, and keeps going past
/// a failure; fails at the end with the worst error (an integrity failure
/// outranks an unknown id). `place` follows "ok"/"FAILED" (e.g. " on NAME").
pub fn check_each(
    ctx: &mut Ctx,
    ids: &[String],
    place: &str,
    mode: &str,
    mut check: impl FnMut(&mut Ctx, &str) -> Result<()>,
) -> Result<Vec<serde_json::Value>> {
    let mut results = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    for id in ids {
        match check(ctx, id) {
            Ok(()) => {
                ctx.out.result(format!("{id}  ok{place} ({mode})"));
                results.push(json!({"id": id, "ok": true}));
            }
            Err(e) => {
                ctx.out.result(format!("{id}  FAILED{place}: {e}"));
                results.push(json!({"id": id, "ok": false, "problem": e.to_string()}));
                failed.push((id.clone(), e));
            }
        }
    }
    let worst = failed.iter().map(|(_, e)| e.exit() as i32).max();
    match worst {
        None => Ok(results),
        Some(_) if failed.len() == 1 && ids.len() == 1 => Err(failed.remove(0).1),
        Some(code) if code != Exit::Integrity as i32 => {
            let at = failed.iter().position(|(_, e)| e.exit() as i32 == code).unwrap_or(0);
            Err(failed.remove(at).1)
        }
        Some(_) => {
            let names: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
            let problem = |e: &Error| match e {
                Error::Integrity { problem, .. } => problem.clone(),
                other => other.to_string(),
            };
            let problems: Vec<String> = match failed.as_slice() {
                [(_, e)] => vec![problem(e)],
                all => all.iter().map(|(id, e)| format!("{id}: {}", problem(e))).collect(),
            };
            Err(Error::Integrity {
                id: names.join(", "),
                problem: format!(
                    "{} of {} failed verification{place}: {}",
                    failed.len(),
                    ids.len(),
                    problems.join("; ")
                ),
            })
        }
    }
}
