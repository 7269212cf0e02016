//! `verify`: check snapshots; keep going past a failure, fail at the end.

use serde_json::json;

use crate::cli::VerifyArgs;
use crate::context::Ctx;
use crate::error::{Error, Exit, Result};
use crate::progress::Progress;
use crate::store::Store;
use crate::verify::check_files;

/// Runs `verify`.
pub fn run(args: &VerifyArgs, ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let ids: Vec<String> = if args.all {
        store.list()?.into_iter().map(|l| l.id).collect()
    } else if args.ids.is_empty() {
        vec![store.resolve(None)?]
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        return Err(Error::NoSnapshots(store.root.clone()));
    }
    let mode = if args.deep { "deep" } else { "checksums" };
    let mut results = Vec::new();
    let mut worst: Option<Error> = None;
    for id in &ids {
        let outcome = store.open(id).and_then(|m| {
            let total = if args.deep { m.content_size() } else { m.archive.size };
            let progress = Progress::new(&format!("verify {id}"), total, ctx.progress);
            check_files(&store.dir(id), &m, args.deep, &progress)
        });
        match outcome {
            Ok(()) => {
                ctx.out.result(format!("{id}  ok ({mode})"));
                results.push(json!({"id": id, "ok": true}));
            }
            Err(e) => {
                ctx.out.result(format!("{id}  FAILED: {e}"));
                results.push(json!({"id": id, "ok": false, "problem": e.to_string()}));
                // An integrity failure outranks an unknown id.
                if worst.as_ref().is_none_or(|w| (e.exit() as i32) > (w.exit() as i32)) {
                    worst = Some(e);
                }
            }
        }
    }
    match worst {
        None => {
            ctx.out.info(format!("{} snapshot(s) verified ({mode})", ids.len()));
            Ok(json!({"mode": mode, "snapshots": results}))
        }
        Some(e) if ids.len() == 1 => Err(e),
        Some(e) if e.exit() != Exit::Integrity => Err(e),
        Some(_) => {
            let failed: Vec<String> = results
                .iter()
                .filter(|r| r["ok"] == false)
                .map(|r| {
                    format!("{}: {}", r["id"].as_str().unwrap_or(""), r["problem"].as_str().unwrap_or(""))
                })
                .collect();
            Err(Error::Integrity {
                id: format!("{} of {} snapshots", failed.len(), ids.len()),
                problem: format!("failed verification: {}", failed.join("; ")),
            })
        }
    }
}
