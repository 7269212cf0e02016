//! `backup`: take a snapshot, read it back, print its id; then, with
//! `--push` and `--prune`, copy it off the host and apply the retention
//! policy.

use std::time::Duration;

use super::Run;
use crate::cli::BackupArgs;
use crate::context::Ctx;
use crate::engine::scope::Scope;
use crate::engine::snapshot::{self, Request};
use crate::error::{Error, Failure, Result};
use crate::install::facts::DatabaseMode;
use crate::install::preflight;
use crate::offsite;
use crate::procedure::{pause, volume};
use crate::report::{BackupReport, SnapshotReport};
use crate::schedule::{policy, prune};

impl Run for BackupArgs {
    type Report = BackupReport;

    fn run(&self, ctx: &mut Ctx) -> Result<BackupReport> {
        if self.retention.policy().is_some() && !self.prune {
            return Err(Error::Usage(
                "--keep-* is the retention policy of --prune: add --prune, or run `bwguard prune` with it"
                    .into(),
            ));
        }
        let mut install = ctx.install()?;
        volume::attach(&mut install, self.scope.db_backed_up_elsewhere)?;
        let writing = ctx.begin_write(&install, "backup")?;
        let store = &writing.store;
        let mode = preflight::database_covered(&install, self.scope.db_backed_up_elsewhere)?;
        match &install.volume {
            Some(v) => ctx.out.detail(format!("the database is in the Docker volume at {}", v.display())),
            None if mode != DatabaseMode::BuiltIn => ctx.out.warn(format!(
                "database mode {}: the snapshot covers config.yml and the settings only",
                mode.name()
            )),
            None => {}
        }
        let reason = if self.scheduled { "scheduled" } else { "manual" };
        let mut req = Request::new(reason, Scope::from_flags(self.scope.with_attachments, self.scope.full));
        req.note = self.note.clone();
        req.live = self.scope.live;
        req.level = self.level.unwrap_or(req.level);
        req.progress = ctx.progress;
        ctx.out.info(format!("Taking a snapshot of {} into {}", install.dir.display(), store.root.display()));
        let m = if self.pause_db {
            let limit = self.max_downtime.map_or(pause::DEFAULT_MAX_DOWNTIME, Duration::from_secs);
            pause::take_paused(&mut ctx.out, &install, store, &mut req, ctx.now, limit)?
        } else {
            snapshot::take(&install, store, &req, ctx.now)?
        };
        let snapshot = SnapshotReport::of(&m, &store.dir(&m.id));
        ctx.out.show(&snapshot);
        ctx.out.result(&m.id);
        let mut report = BackupReport { snapshot, push: None, prune: None };
        if let Some(remote) = &self.push {
            let pushed = offsite::push_newer(&mut ctx.out, store, Some(remote), &m.id, ctx.now, ctx.progress)
                .map_err(|e| Error::Failed {
                    kind: Failure::PushFailed,
                    message: format!("snapshot {} was taken and verified, but pushing it failed: {e}", m.id),
                    hint: e.hint(),
                })?;
            ctx.out.show(&pushed);
            report.push = Some(pushed);
        }
        if self.prune {
            let after = |e: Error| Error::Failed {
                kind: Failure::PruneFailed,
                message: format!("snapshot {} was taken and verified, but pruning failed: {e}", m.id),
                hint: e.hint(),
            };
            let policy = match self.retention.policy() {
                Some(p) => Some(p),
                None => policy::saved_policy(store).map_err(after)?,
            };
            match policy {
                Some(p) => {
                    let here = m.bitwarden.installation_id.as_deref();
                    let pruned =
                        prune::prune_store(&mut ctx.out, store, &p, false, ctx.now, ctx.progress, here)
                            .map_err(after)?;
                    ctx.out.show(&pruned);
                    report.prune = Some(pruned);
                }
                None => {
                    let e = policy::no_policy(store);
                    return Err(Error::Failed {
                        kind: Failure::NoRetentionPolicy,
                        message: format!("snapshot {} was taken and verified, but {e}", m.id),
                        hint: e.hint(),
                    });
                }
            }
        }
        Ok(report)
    }
}
