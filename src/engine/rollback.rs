//! A whole rollback (safety rule 3): the snapshot checked before anything
//! is touched, a snapshot of the current state taken while the target is
//! staged and checked, then the swap, journaled so a killed run is
//! finished by the next one. The mechanics are [`crate::engine::restore`].
//!
//! [`plan`] needs no lock and asks nothing; [`check`] and [`apply`] run
//! under the store lock the caller holds, so a command can ask its
//! question in between, and the procedure's failure path can roll back
//! without ever letting go of the lock ([`rollback_locked`]).

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::context::Output;
use crate::engine::manifest::Manifest;
use crate::engine::progress::Progress;
use crate::engine::restore::{self, Journal, Phase, Unit};
use crate::engine::room::{self, Need};
use crate::engine::scope::{self, Scope};
use crate::engine::snapshot::{self, Request};
use crate::engine::store::Store;
use crate::engine::verify::check_files;
use crate::error::{Error, Exit, Refusal, Result};
use crate::install::facts;
use crate::install::{Install, VOLUME_PART, preflight};
use crate::report::human::human_size;

/// Deflate level of the `before rollback` snapshot: stored, not compressed.
pub const SAFETY_LEVEL: u32 = 0;

/// Which parts of a snapshot to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every part.
    All,
    /// Just config.yml.
    Config,
    /// Every part but config.yml.
    Data,
}

impl Selection {
    /// How the selection reads in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            Selection::All => "config.yml and data",
            Selection::Config => "config.yml only",
            Selection::Data => "everything but config.yml",
        }
    }
}

/// A rollback as planned from the snapshot's manifest.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The snapshot to restore.
    pub manifest: Manifest,
    /// What is restored.
    pub selection: Selection,
    /// The parts, with what is known of their staging.
    pub units: Vec<Unit>,
    /// Files, directories and links restored.
    pub entries: usize,
    /// Bytes of the files restored.
    pub content_size: u64,
    /// Bytes the staged copy takes on disk at most.
    pub staged_bytes: u64,
    /// A Helm values file, restored as a file rather than as install parts.
    pub files_only: bool,
    /// Warnings about the Bitwarden version the rollback brings back.
    pub version_change: Vec<String>,
    /// Whether the database files are among the parts.
    pub restores_data: bool,
}

impl Plan {
    /// The install-relative paths of the parts.
    pub fn parts(&self) -> Vec<String> {
        self.units.iter().map(|u| u.rel.clone()).collect()
    }

    /// The snapshot's id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The Bitwarden version the restored files pin, when the rollback
    /// changes the version that runs.
    pub fn restored_version(&self) -> Option<String> {
        (self.restores_data && !self.version_change.is_empty())
            .then(|| self.manifest.bitwarden.core_version.clone().unwrap_or_else(|| "?".into()))
    }

    /// One sentence naming what is restored, from which snapshot.
    pub fn describe(&self) -> String {
        let config_only = self.units.iter().all(|u| u.rel.ends_with("/config.yml"));
        let what = if config_only { "config.yml only" } else { self.selection.describe() };
        format!(
            "Snapshot {} ({}, {}): restoring {what}: {} {}, {}",
            self.manifest.id,
            self.manifest.created,
            self.manifest.reason,
            self.entries,
            if self.entries == 1 { "entry" } else { "entries" },
            human_size(self.content_size)
        )
    }

    /// What the admin must know of the snapshot before restoring it: a
    /// live (crash-consistent) copy, or one of only some parts.
    pub fn cautions(&self) -> Vec<String> {
        let m = &self.manifest;
        let mut said = Vec::new();
        if m.consistency == "live" {
            said.push(format!(
                "snapshot {} is a live copy, taken while SQL Server ran: crash-consistent at best, its database \
                 may not recover",
                m.id
            ));
        }
        if !matches!(m.scope.as_str(), "default" | "with-attachments" | "full") && !self.files_only {
            let parts: Vec<&str> = m.parts.iter().map(|p| p.path.as_str()).collect();
            said.push(format!(
                "snapshot {} holds only some parts of the install: {}",
                m.id,
                parts.join(", ")
            ));
        }
        said
    }
}

/// What a finished rollback did.
#[derive(Debug, Clone)]
pub struct Done {
    /// The snapshot of the state it replaced.
    pub before: String,
    /// Entries whose recorded owner could not be set (not root).
    pub owners_not_restored: Vec<String>,
    /// Entries given the install's owner instead of root, or stripped of
    /// setuid/setgid bits (root restoring into an install it does not own).
    pub clamped: Vec<String>,
}

/// Plans the rollback of `install` to snapshot `id` of `store`: reads the
/// manifest and selects the parts (exit 2 for an unknown id, 3 for a
/// damaged manifest, 5 for parts that cannot be swapped). Changes nothing.
pub fn plan(
    install: &Install,
    store: &Store,
    id: &str,
    selection: Selection,
    files_only: bool,
    other_installation: bool,
) -> Result<Plan> {
    let manifest = store.open(id)?;
    let running = facts::read_info(install);
    if manifest.of_other_installation(running.installation_id.as_deref()) && !other_installation {
        return Err(Error::refused(
            Refusal::OtherInstallation,
            format!(
                "snapshot {id} is of Bitwarden installation {}, and this install is installation {}",
                manifest.bitwarden.installation_id.as_deref().unwrap_or_default(),
                running.installation_id.as_deref().unwrap_or_default()
            ),
            "a store shared by two installs holds both; name one of this install's snapshots (`bwguard list`), \
             or, to put that vault on this host on purpose (a new host), add --other-installation",
        ));
    }
    let units = restore::select_units(install, &manifest, selection)?;
    let mut entries = 0;
    let (mut content_size, mut staged_bytes) = (0u64, 0u64);
    for e in manifest.entries.iter().filter(|e| units.iter().any(|u| u.contains(&e.path))) {
        entries += 1;
        content_size = content_size.saturating_add(e.size);
        staged_bytes = staged_bytes.saturating_add(room::on_disk(e.size));
    }
    let restores_data = units.iter().any(|u| u.rel == install.rel("mssql") || u.rel == VOLUME_PART);
    let version_change = facts::version_change(
        manifest.bitwarden.core_version.as_deref(),
        running.core_version.as_deref(),
        restores_data,
        false,
    );
    Ok(Plan {
        manifest,
        selection,
        units,
        entries,
        content_size,
        staged_bytes,
        files_only,
        version_change,
        restores_data,
    })
}

/// The checks before anything is touched, under the store lock the caller
/// holds: no process has the database files open (rule 5), room for the
/// staged copy and the snapshot of the current state (rule 8), and the
/// archive against its checksums.
pub fn check(install: &Install, store: &Store, plan: &Plan, progress: bool) -> Result<()> {
    preflight::no_database_holders(install)?;
    room::room(&room_needs(install, store, plan)?)?;
    let m = &plan.manifest;
    check_files(&store.dir(&m.id), m, false, &Progress::new("check", m.archive.size, progress))
}

/// Space a rollback needs: the staged copy beside each part, and the
/// snapshot of the current state in the store.
fn room_needs(install: &Install, store: &Store, plan: &Plan) -> Result<Vec<Need>> {
    let (_, sources) = scope::collect(install, &current_scope(plan))?;
    let volume = plan.units.iter().any(|u| u.rel == VOLUME_PART).then_some(()).and(install.volume.as_ref());
    let in_volume: u64 = match volume {
        Some(_) => plan
            .manifest
            .entries
            .iter()
            .filter(|e| restore::Unit::in_volume(&e.path))
            .fold(0u64, |acc, e| acc.saturating_add(room::on_disk(e.size))),
        None => 0,
    };
    let mut needs = vec![
        Need {
            path: room::existing_ancestor(&store.root),
            bytes: room::snapshot_bound(&sources),
            what: "the snapshot of the current state".into(),
        },
        Need {
            path: install.data.clone(),
            bytes: plan.staged_bytes.saturating_sub(in_volume),
            what: "the staged copy".into(),
        },
    ];
    if let Some(volume) = volume {
        needs.push(Need {
            path: volume.clone(),
            bytes: in_volume,
            what: "the staged copy of the volume".into(),
        });
    }
    Ok(needs)
}

/// The scope of the snapshot of the current state: the same parts.
fn current_scope(plan: &Plan) -> Scope {
    if plan.files_only { Scope::Files(plan.parts()) } else { Scope::Parts(plan.parts()) }
}

/// Restores `plan` (the caller holds the store lock and ran [`check`]).
/// The snapshot of the current state and the staged copy of the target are
/// made at the same time: staging writes only into staging directories,
/// which are outside every part, and nothing in the install changes until
/// both are complete and checked. A failure before the swap leaves the
/// install untouched and removes what this run wrote.
pub fn apply(
    install: &Install,
    store: &Store,
    plan: &Plan,
    now: DateTime<Utc>,
    progress: bool,
    out: &mut Output,
) -> Result<Done> {
    let id = plan.id().to_string();
    let mut units = plan.units.clone();
    let t = Instant::now();
    out.info("Taking a snapshot of the current state while restoring into staging and checking every file");
    let mut req = Request::new(format!("before rollback to {id}"), current_scope(plan));
    // The state being replaced is stored uncompressed: it costs disk rather
    // than the admin's time during an outage (docs/performance.md).
    req.level = SAFETY_LEVEL;
    let mut journal = Journal {
        id: id.clone(),
        before: String::new(),
        install_dir: install.dir.display().to_string(),
        phase: Phase::Staging,
        units: units.clone(),
        volume: units
            .iter()
            .any(|u| u.rel == VOLUME_PART)
            .then(|| install.volume.as_ref().map(|v| v.display().to_string()))
            .flatten(),
    };
    journal.write(store)?;
    let bar = Progress::new("restore", plan.manifest.content_size(), progress);
    let (before, staged) = std::thread::scope(|s| {
        let snap = s.spawn(|| snapshot::take(install, store, &req, now));
        let staged = restore::stage(install, store, &plan.manifest, &mut units, &bar);
        let before = snap.join().unwrap_or_else(|_| Err(Error::internal("the snapshot thread panicked")));
        (before, staged)
    });
    drop(bar);
    let (before, staged) = match (before, staged) {
        (Ok(before), Ok(list)) => (before, list),
        (before, staged) => {
            // Nothing in the install changed; drop what this run added.
            restore::remove_staging(install, &units)?;
            if let Ok(b) = &before {
                store.delete(&b.id)?;
            }
            Journal::remove(store)?;
            // A damaged snapshot (exit 3) says the most; else the first error.
            let e = match staged {
                Err(e) if e.exit() == Exit::Integrity => e,
                staged => before
                    .err()
                    .or(staged.err())
                    .unwrap_or_else(|| Error::internal("the rollback stopped without saying why")),
            };
            return Err(e);
        }
    };
    out.info(format!("Current state saved as snapshot {}", before.id));
    out.detail(format!("  staged, checked and saved the current state ({:.1}s)", t.elapsed().as_secs_f64()));
    // From here the rollback only goes forward: the journal lets the next
    // run finish the swap if this one is killed.
    journal.units = units.clone();
    journal.before = before.id.clone();
    journal.phase = Phase::Swapping;
    journal.write(store)?;
    out.info("Swapping the restored parts in and removing the replaced copy");
    let t = Instant::now();
    restore::swap(install, &units)?;
    out.detail(format!("  swapped ({:.1}s)", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    restore::remove_staging(install, &units)?;
    Journal::remove(store)?;
    out.detail(format!("  removed the replaced copy ({:.1}s)", t.elapsed().as_secs_f64()));
    Ok(Done { before: before.id, owners_not_restored: staged.not_owned, clamped: staged.clamped })
}

/// Rolls `install` back to snapshot `id` entirely, for a caller that
/// already holds the store lock and has nobody to ask: the failure path of
/// Bitwarden's procedure. The lock is never released between the failure
/// and the rollback, so no other run (a scheduled backup) can get in.
pub fn rollback_locked(
    install: &Install,
    store: &Store,
    id: &str,
    now: DateTime<Utc>,
    progress: bool,
    out: &mut Output,
) -> Result<(Plan, Done)> {
    let mut plan = plan(install, store, id, Selection::All, false, false)?;
    // The caller starts Bitwarden next: the admin is not told to.
    plan.version_change = facts::version_change(
        plan.manifest.bitwarden.core_version.as_deref(),
        facts::read_info(install).core_version.as_deref(),
        plan.restores_data,
        true,
    );
    out.info(plan.describe());
    for said in &plan.version_change {
        out.warn(said);
    }
    check(install, store, &plan, progress)?;
    let done = apply(install, store, &plan, now, progress, out)?;
    Ok((plan, done))
}
