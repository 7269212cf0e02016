//! What a snapshot covers: the parts of the install (docs/guide.md, "The
//! snapshot format") and the walk that lists every file system object in them.
//!
//! Invariants: `bwdata/config.yml` is always the first part and the first
//! entry; within a part, entries come parents first, names sorted, so the
//! archive order is deterministic. Symlinks are listed as links, never
//! followed. A missing part is recorded absent, not an error.

use std::fs;
use std::path::Path;

use walkdir::WalkDir;

use crate::engine::archive::Source;
use crate::engine::manifest::Part;
use crate::error::{Error, Refusal, Result};
use crate::install::{Install, VOLUME_PART};

/// The parts inside the data directory that must match the database.
/// With them, as one set, everything Setup (re)writes: a rollback must not
/// leave an nginx route whose container the restored compose file lacks.
const DEFAULT_PARTS: [&str; 9] = [
    "config.yml",
    "mssql",
    "env",
    "docker",
    "nginx",
    "web",
    "core/aspnet-dataprotection",
    "identity",
    "scripts/run.sh",
];
/// The attachments part added by `--with-attachments`.
const ATTACHMENTS: &str = "core/attachments";
/// Left out of `--full`.
const NEVER_IN_FULL: [&str; 2] = ["logs", "config.yml"];
/// Name prefix of bwguard's own temporary directories inside the install.
pub const OWN_PREFIX: &str = ".bwguard-";
/// The install-level script, relative to the install directory.
pub const SCRIPT: &str = "bitwarden.sh";

/// Which parts a snapshot takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// config, database files and the settings that must match them.
    Default,
    /// The default plus `core/attachments`.
    WithAttachments,
    /// All of the data directory but `logs/`.
    Full,
    /// `config.yml` plus the given install-relative parts (the state a
    /// rollback is about to replace).
    Parts(Vec<String>),
    /// Just these files, relative to the install directory (a Helm values
    /// file, which has no config.yml beside it).
    Files(Vec<String>),
}

impl Scope {
    /// The scope named by the backup flags.
    pub fn from_flags(with_attachments: bool, full: bool) -> Scope {
        match (with_attachments, full) {
            (_, true) => Scope::Full,
            (true, false) => Scope::WithAttachments,
            _ => Scope::Default,
        }
    }

    /// The name recorded in the manifest.
    pub fn name(&self) -> &'static str {
        match self {
            Scope::Default => "default",
            Scope::WithAttachments => "with-attachments",
            Scope::Full => "full",
            Scope::Parts(_) => "partial",
            Scope::Files(_) => "files",
        }
    }

    /// The install-relative paths of the parts, config.yml first.
    pub fn part_paths(&self, install: &Install) -> Result<Vec<String>> {
        let mut paths: Vec<String> = match self {
            Scope::Default => DEFAULT_PARTS.iter().map(|p| install.rel(p)).collect(),
            Scope::WithAttachments => {
                DEFAULT_PARTS.iter().chain([&ATTACHMENTS]).map(|p| install.rel(p)).collect()
            }
            Scope::Full => {
                let mut names: Vec<String> = fs::read_dir(&install.data)
                    .map_err(|e| Error::io("cannot list", &install.data, e))?
                    .filter_map(|d| d.ok())
                    .map(|d| d.file_name().to_string_lossy().into_owned())
                    .filter(|n| !NEVER_IN_FULL.contains(&n.as_str()) && !n.starts_with(OWN_PREFIX))
                    .collect();
                names.sort();
                std::iter::once(install.rel("config.yml"))
                    .chain(names.iter().map(|n| install.rel(n)))
                    .collect()
            }
            Scope::Parts(parts) => {
                let config = install.rel("config.yml");
                std::iter::once(config.clone())
                    .chain(parts.iter().filter(|p| **p != config).cloned())
                    .collect()
            }
            Scope::Files(files) => files.clone(),
        };
        if !matches!(self, Scope::Parts(_) | Scope::Files(_)) {
            paths.push(SCRIPT.to_string());
            // The database of a Docker-volume install, with the rest.
            if install.volume.is_some() {
                paths.push(VOLUME_PART.to_string());
            }
        }
        Ok(paths)
    }
}

/// Lists the parts (present or absent) and every object in them, in archive order.
pub fn collect(install: &Install, scope: &Scope) -> Result<(Vec<Part>, Vec<Source>)> {
    let config = install.config_path();
    match fs::symlink_metadata(&config) {
        _ if matches!(scope, Scope::Files(_)) => {}
        Ok(m) if m.is_file() => {}
        // The current state before a rollback (or a diff) may lack
        // config.yml: deleted by mistake, or a new host's empty data
        // directory. It is recorded as absent, and the rollback brings it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && matches!(scope, Scope::Parts(_)) => {}
        Ok(_) => {
            return Err(Error::refused(
                Refusal::NotAPlainFile,
                format!("{} is not a regular file", config.display()),
                "bwguard edits and restores config.yml as a plain file; replace the link with the file",
            ));
        }
        Err(e) => {
            return Err(Error::refused(
                Refusal::NotAPlainFile,
                format!("{} cannot be read: {e}", config.display()),
                "is --bwdata the Bitwarden data directory? It holds config.yml",
            ));
        }
    }
    let mut parts = Vec::new();
    let mut sources = Vec::new();
    for rel in scope.part_paths(install)? {
        let abs = install.locate(&rel).ok_or_else(|| {
            Error::internal(format!("{rel} is the Docker volume's part, and the volume is not known"))
        })?;
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                parts.push(Part { path: rel, present: false });
                continue;
            }
            Err(e) => return Err(Error::io("cannot read", &abs, e)),
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&abs).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(Error::refused(
                Refusal::NotAPlainFile,
                format!(
                    "{} is a symbolic link to {target}; a snapshot keeps links as links, so it would not hold what the link points to",
                    abs.display()
                ),
                "replace the link with the real directory (or mount the disk there) before taking snapshots",
            ));
        }
        walk_part(&rel, &abs, &mut sources)?;
        parts.push(Part { path: rel, present: true });
    }
    Ok((parts, sources))
}

/// Refuses a link that points outside the install before anything is
/// written: the snapshot keeps links as links, and a restore makes only
/// those that stay inside.
fn refuse_outside_link(rel: &str, abs: &Path) -> Result<()> {
    let target = fs::read_link(abs).map_err(|e| Error::io("cannot read link", abs, e))?;
    let shown = target.display().to_string();
    crate::engine::archive::check_link_target(rel, &shown).map_err(|_| {
        Error::refused(
            Refusal::LinkOutside,
            format!("{} is a symbolic link to {shown}, outside the install", abs.display()),
            "a snapshot keeps links as links and restores only those that stay inside the install: \
             replace it with a relative link inside the install, or with what it points to",
        )
    })
}

fn walk_part(rel: &str, abs: &Path, out: &mut Vec<Source>) -> Result<()> {
    for item in WalkDir::new(abs).follow_links(false).sort_by_file_name() {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(abs).to_path_buf();
            let io = e.into_io_error().unwrap_or_else(|| std::io::Error::other("file system loop"));
            Error::io("cannot read", path, io)
        })?;
        let inner = item.path().strip_prefix(abs).unwrap_or(Path::new(""));
        let mut name = rel.to_string();
        for c in inner.components() {
            let Some(c) = c.as_os_str().to_str() else {
                return Err(Error::refused(
                    Refusal::BadName,
                    format!("{} has a name that is not UTF-8", item.path().display()),
                    "rename it; snapshot manifests record names as UTF-8",
                ));
            };
            name.push('/');
            name.push_str(c);
        }
        let meta = item.metadata().map_err(|e| {
            Error::io(
                "cannot read",
                item.path(),
                e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk")),
            )
        })?;
        if meta.file_type().is_symlink() {
            refuse_outside_link(&name, item.path())?;
        }
        out.push(Source { rel: name, abs: item.path().to_path_buf(), meta });
    }
    Ok(())
}
