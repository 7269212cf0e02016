//! Documents about changes to the install: `enable-scim`, `disable-scim`,
//! `set` (in their three forms) and `upgrade`.

use serde::{Deserialize, Serialize};

use super::Render;
use crate::context::Output;
use crate::procedure::Journal;

/// How a change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// One line of config.yml; the admin runs Bitwarden's procedure.
    Edit,
    /// Bitwarden's whole procedure, run by bwguard (`--apply`).
    Procedure,
    /// `component.scim.enabled` in a Helm values file (`--helm-values`).
    Helm,
}

/// `enable-scim`, `disable-scim` and `set KEY VALUE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditReport {
    /// How the change is made.
    pub method: Method,
    /// The key (`component.scim.enabled` for Helm).
    pub key: String,
    /// The value asked for, canonical (for an unchanged key: the value it has).
    pub value: String,
    /// The file edited: config.yml or the values file.
    pub file: String,
    /// Whether the file changed.
    pub changed: bool,
    /// Only said what it would do.
    pub dry_run: bool,
    /// The value before (null when the key was appended).
    pub old: Option<String>,
    /// The 1-based line edited.
    pub line: Option<usize>,
    /// The snapshot taken first.
    pub snapshot: Option<String>,
    /// What to run next, each a complete command line.
    pub next_steps: Vec<String>,
    /// The command lines that undo the change (the first restores the least).
    pub undo: Vec<String>,
    /// What the new value will not do.
    pub warnings: Vec<String>,
    /// With `--apply --dry-run`: the steps that would run.
    pub plan: Vec<String>,
    /// With `--apply`: every step as it ran.
    pub journal: Option<Journal>,
}

impl EditReport {
    /// A report of `key` in `file` that changed nothing yet.
    pub fn new(method: Method, key: &str, value: &str, file: &str) -> Self {
        EditReport {
            method,
            key: key.into(),
            value: value.into(),
            file: file.into(),
            changed: false,
            dry_run: false,
            old: None,
            line: None,
            snapshot: None,
            next_steps: Vec::new(),
            undo: Vec::new(),
            warnings: Vec::new(),
            plan: Vec::new(),
            journal: None,
        }
    }
}

impl Render for EditReport {
    fn render(&self, out: &mut Output) {
        let (key, value, file) = (&self.key, &self.value, &self.file);
        if self.dry_run {
            match self.method {
                Method::Edit => out.result(format!(
                    "would snapshot, then change line {} of {file}: {key}: {} -> {value}",
                    self.line.unwrap_or(0),
                    self.old.as_deref().unwrap_or("(absent; appended)")
                )),
                Method::Procedure => {
                    out.result(format!("plan for {key}: {value} (nothing is run):"));
                    for (i, s) in self.plan.iter().enumerate() {
                        out.result(format!("  {}. {s}", i + 1));
                    }
                }
                Method::Helm => out.result(format!("would snapshot {file}, then set {key}: {value}")),
            }
            return;
        }
        let Some(snap) = &self.snapshot else {
            out.result(format!("{key} is already {value} in {file}: nothing to do"));
            return;
        };
        match self.method {
            Method::Edit => {
                out.result(format!(
                    "Set {key}: {} -> {value} (line {} of {file}); snapshot {snap} holds the previous state",
                    self.old.as_deref().unwrap_or("(absent)"),
                    self.line.unwrap_or(0)
                ));
                for w in &self.warnings {
                    out.warn(w);
                }
                out.info("Next, apply it as Bitwarden's procedure says:");
                for s in &self.next_steps {
                    out.info(format!("  {s}"));
                }
                out.info("To undo (config.yml only, or config.yml and the database):");
                for u in &self.undo {
                    out.info(format!("  {u}"));
                }
            }
            Method::Procedure => {
                out.result(format!("{key}: {value} applied; snapshot {snap} holds the state before"));
                for u in &self.undo {
                    out.info(format!("To undo: {u}"));
                }
            }
            Method::Helm => {
                out.result(format!("Set {key}: {value} in {file}; snapshot {snap} holds the previous file"));
                for s in &self.next_steps {
                    out.info(format!("Next, apply it to the cluster:\n  {s}"));
                }
                for u in &self.undo {
                    out.info(format!("To undo: `{u}`, then the same helm upgrade"));
                }
            }
        }
    }
}

/// `upgrade`: Bitwarden's update, checked and journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeReport {
    /// The snapshot taken first.
    pub snapshot: Option<String>,
    /// Only said what it would do.
    pub dry_run: bool,
    /// With `--dry-run`: the steps that would run.
    pub plan: Vec<String>,
    /// Every step as it ran.
    pub journal: Option<Journal>,
    /// The command lines that go back to the state before.
    pub undo: Vec<String>,
}

impl Render for UpgradeReport {
    fn render(&self, out: &mut Output) {
        if self.dry_run {
            out.result("plan for upgrade (nothing is run):");
            for (i, s) in self.plan.iter().enumerate() {
                out.result(format!("  {}. {s}", i + 1));
            }
            return;
        }
        if let (Some(snap), Some(check)) =
            (&self.snapshot, self.journal.as_ref().and_then(|j| j.steps.last()))
        {
            out.result(format!("{}; snapshot {snap} holds the state before", check.output));
            for u in &self.undo {
                out.info(format!("To go back: {u}"));
            }
        }
    }
}
