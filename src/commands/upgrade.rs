//! `upgrade`: a snapshot first, then `./bitwarden.sh updateself` and
//! `update`, each step checked and journaled (see [`crate::procedure`]),
//! and a check that `bitwarden.sh` still pins a version.

use super::Run;
use crate::cli::UpgradeArgs;
use crate::context::Ctx;
use crate::engine::scope::Scope;
use crate::error::Result;
use crate::install::{Install, facts};
use crate::procedure::{self, Action, Opts, Plan};
use crate::report::UpgradeReport;

/// The steps, as `--dry-run` shows them.
const STEPS: [&str; 6] = [
    "preflight: database mode, free space, lock, bitwarden.sh",
    "./bitwarden.sh stop (so the snapshot is cold)",
    "snapshot and read back (reason `before upgrade`)",
    "./bitwarden.sh updateself",
    "./bitwarden.sh update",
    "check: bitwarden.sh pins a version",
];

impl Run for UpgradeArgs {
    type Report = UpgradeReport;

    fn run(&self, ctx: &mut Ctx) -> Result<UpgradeReport> {
        let install = ctx.install()?;
        let before = facts::read_info(&install).core_version;
        let from = before.clone().unwrap_or_else(|| "an unknown version".into());
        let plan = Plan {
            change: format!("upgrade from {from}"),
            reason: "before upgrade".into(),
            actions: vec![Action::Script("updateself"), Action::Script("update")],
            described: &STEPS,
            check: Box::new(move |install: &Install| {
                let after = facts::read_info(install).core_version;
                match (&before, &after) {
                    (_, None) => Err("bitwarden.sh no longer pins a COREVERSION".into()),
                    (Some(b), Some(a)) if a == b => Ok(format!("Bitwarden {a}: already the newest")),
                    (b, Some(a)) => Ok(format!("Bitwarden {} -> {a}", b.as_deref().unwrap_or("?"))),
                }
            }),
        };
        let opts = Opts {
            scope: Scope::from_flags(self.scope.with_attachments, self.scope.full),
            live: self.scope.live,
            db_backed_up_elsewhere: self.scope.db_backed_up_elsewhere,
            dry_run: self.dry_run,
            rollback_on_failure: self.rollback_on_failure,
            bitwarden_sh: self.bitwarden_sh.clone(),
            step_timeout: std::time::Duration::from_secs(self.step_timeout),
        };
        let outcome = procedure::execute(ctx, &install, &plan, &opts)?;
        let report = UpgradeReport {
            snapshot: outcome.snapshot,
            dry_run: self.dry_run,
            plan: outcome.plan,
            journal: outcome.journal,
            undo: outcome.undo,
        };
        ctx.out.show(&report);
        Ok(report)
    }
}
