//! The document of `prune` (and of `backup --prune`).

use serde::{Deserialize, Serialize};

use super::Render;
use crate::context::Output;
use crate::schedule::retention::Policy;

/// `prune` (and `backup --prune`): the decision for every snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneReport {
    /// With `--remote`: the remote pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The policy applied.
    pub policy: Policy,
    /// Only said what it would remove.
    pub dry_run: bool,
    /// Snapshots kept, and why.
    pub kept: Vec<Decided>,
    /// Snapshots removed (with `--dry-run`: that would be), and why.
    pub removed: Vec<Decided>,
    /// With `--remote`: incomplete copies removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_removed: Vec<String>,
    /// Safety snapshots of rollbacks, stored uncompressed during the
    /// outage, compressed by this prune (with `--dry-run`: that would be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compressed: Vec<Compressed>,
}

/// A rollback's safety snapshot compressed by a prune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compressed {
    /// The snapshot.
    pub id: String,
    /// Its archive's size, uncompressed.
    pub archive_size_before: u64,
    /// Its archive's size now; absent with `--dry-run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_size_after: Option<u64>,
}

/// One retention decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decided {
    /// The snapshot.
    pub id: String,
    /// Every reason it is kept, or every rule that passed it over.
    pub reasons: Vec<String>,
}

impl Render for PruneReport {
    fn render(&self, out: &mut Output) {
        if self.policy.is_empty() {
            out.result("no retention policy: nothing removed");
            return;
        }
        let verb = if self.dry_run { "would remove" } else { "remove" };
        let on = self.remote.as_ref().map(|r| format!(" on {r}")).unwrap_or_default();
        out.info(format!("policy{on}: {}", self.policy.describe()));
        let mut all: Vec<(&Decided, bool)> =
            self.kept.iter().map(|d| (d, true)).chain(self.removed.iter().map(|d| (d, false))).collect();
        all.sort_by_key(|(d, _)| std::cmp::Reverse(crate::engine::store::id_key(&d.id)));
        // One table, so ids of every length (`…Z-2`) line up.
        let incomplete = self.incomplete_removed.iter().map(|id| {
            [verb.to_string(), id.clone(), "incomplete copy (an interrupted push or prune)".into()]
        });
        let decided = all
            .into_iter()
            .map(|(d, keep)| [if keep { "keep" } else { verb }.into(), d.id.clone(), d.reasons.join("; ")]);
        for line in super::table::table(&incomplete.chain(decided).collect::<Vec<_>>()) {
            out.result(line);
        }
        for c in &self.compressed {
            let size = super::human::human_size;
            out.result(match c.archive_size_after {
                Some(after) => format!(
                    "compressed {}  {} -> {} (a rollback's safety snapshot)",
                    c.id,
                    size(c.archive_size_before),
                    size(after)
                ),
                None => format!(
                    "would compress {}  {} (a rollback's safety snapshot)",
                    c.id,
                    size(c.archive_size_before)
                ),
            });
        }
        out.info(format!(
            "{} kept, {} {}",
            self.kept.len(),
            self.removed.len(),
            if self.dry_run { "would be removed (dry run)" } else { "removed" }
        ));
    }
}
