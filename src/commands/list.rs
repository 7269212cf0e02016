//! `list`: the snapshots, newest first, as an aligned table or JSON.

use serde_json::json;

use crate::commands::{human_age, human_size};
use crate::context::Ctx;
use crate::engine::manifest::Manifest;
use crate::engine::store::Store;
use crate::error::Result;
use crate::report::human::age;
use crate::report::table::table;

/// Runs `list`.
pub fn run(ctx: &mut Ctx) -> Result<serde_json::Value> {
    let install = ctx.install()?;
    let store = Store::new(&install.store);
    let listed = store.list()?;
    let mut rows =
        vec![["ID", "AGE", "REASON", "SIZE", "PINNED", "VERSION", "SCIM", "CONSISTENCY"].map(String::from)];
    let mut docs = Vec::new();
    for l in &listed {
        match &l.manifest {
            Ok(m) => {
                rows.push([
                    l.id.clone(),
                    age(m, ctx.now).map(human_age).unwrap_or_else(|| "?".into()),
                    m.reason.clone() + &m.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                    human_size(m.archive.size),
                    if m.pinned { "yes" } else { "no" }.into(),
                    m.bitwarden.core_version.clone().unwrap_or_else(|| "?".into()),
                    m.bitwarden.enable_scim.map_or("?", |b| if b { "on" } else { "off" }).into(),
                    m.consistency.clone(),
                ]);
                docs.push(listing_json(m));
            }
            Err(problem) => {
                rows.push([
                    l.id.clone(),
                    "?".into(),
                    format!("DAMAGED: {problem}"),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ]);
                docs.push(json!({"id": l.id, "damaged": problem}));
            }
        }
    }
    if listed.is_empty() {
        ctx.out.info(format!("No snapshots in {}. Take one with `bwguard backup`.", store.root.display()));
    } else {
        for line in table(&rows) {
            ctx.out.result(line);
        }
    }
    Ok(json!({"store": store.root.display().to_string(), "snapshots": docs}))
}

/// The JSON description of a listed snapshot.
pub fn listing_json(m: &Manifest) -> serde_json::Value {
    json!({
        "id": m.id,
        "created": m.created,
        "reason": m.reason,
        "note": m.note,
        "pinned": m.pinned,
        "size": m.archive.size,
        "content_size": m.content_size(),
        "scope": m.scope,
        "consistency": m.consistency,
        "bitwarden": m.bitwarden,
    })
}
