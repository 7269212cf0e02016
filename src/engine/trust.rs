//! The trust rule (docs/safety.md, "A hostile owner"): bwguard trusts only
//! paths that no other user can change. The store, every directory above
//! it, and everything in it must belong to bwguard's user (or, above the
//! store, to root) and be writable by no group or other user, as ssh checks
//! `~/.ssh`. A world-writable directory with the sticky bit (`/tmp`) may be
//! above a store: only an entry's owner can rename or remove it there.
//!
//! Why: Bitwarden's containers run as the install's owner, so a compromised
//! container is that user; bwguard often runs as root. Whatever that user
//! can write (a store inside the install, a planted `lock` symlink, a forged
//! snapshot or journal) would otherwise steer root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Refusal, Result};

/// Group- or other-writable permission bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// The sticky bit.
const STICKY: u32 = 0o1000;

/// Why `path` (with metadata `meta`) cannot be trusted by a process of
/// uid `me`, if it cannot; `ancestor` allows root as the owner.
fn problem(meta: &std::fs::Metadata, me: u32, ancestor: bool) -> Option<String> {
    let owner_ok = meta.uid() == me || (ancestor && meta.uid() == 0);
    if !owner_ok {
        return Some(format!("it belongs to uid {}, not to uid {me}", meta.uid()));
    }
    let mode = meta.permissions().mode();
    if mode & WRITABLE_BY_OTHERS != 0 && !(ancestor && mode & STICKY != 0 && meta.is_dir()) {
        return Some(format!("it is writable by its group or by others (mode {:o})", mode & 0o7777));
    }
    None
}

/// Refuses (exit 5) unless the store at `store` can be trusted: every
/// existing directory above it owned by root or by this user and writable
/// by nobody else (sticky directories aside), and the store itself, when
/// it exists, a real directory owned by this user and writable by nobody
/// else.
pub fn check_store(store: &Path) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let mut at = PathBuf::from("/");
    let mut components = store.components().skip(1).peekable();
    loop {
        let is_store = components.peek().is_none();
        match std::fs::symlink_metadata(&at) {
            Ok(meta) => {
                if meta.file_type().is_symlink() {
                    return Err(untrusted(store, &at, "it is a symbolic link"));
                }
                if !meta.is_dir() {
                    return Err(untrusted(store, &at, "it is not a directory"));
                }
                if let Some(why) = problem(&meta, me, !is_store) {
                    return Err(untrusted(store, &at, &why));
                }
            }
            // What does not exist yet, bwguard creates (and checks again).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("cannot check", &at, e)),
        }
        match components.next() {
            Some(c) => at.push(c),
            None => return Ok(()),
        }
    }
}

/// Why the directory `path` cannot be trusted as a place to read and
/// write beneath, if it cannot: it or a directory above it is a link, not
/// a directory, owned by another user than root or this one, or writable
/// by others (sticky directories aside). For places bwguard does not make,
/// such as a Docker volume's directory.
pub fn dir_chain_problem(path: &Path) -> Option<String> {
    let me = rustix::process::geteuid().as_raw();
    let mut at = PathBuf::from("/");
    for c in std::iter::once(None).chain(path.components().skip(1).map(Some)) {
        if let Some(c) = c {
            at.push(c);
        }
        let why = match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => Some("it is a symbolic link".to_string()),
            Ok(m) if !m.is_dir() => Some("it is not a directory".to_string()),
            Ok(m) => problem(&m, me, true),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            return Some(format!("{} ({why})", at.display()));
        }
    }
    None
}

/// Refuses a file of the store that this user does not own or that others
/// can write (`meta` from `fstat` of the opened file).
pub fn check_store_file(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    match problem(meta, me, false) {
        Some(why) => Err(untrusted(path, path, &why)),
        None if meta.nlink() > 1 && meta.is_file() => {
            Err(untrusted(path, path, "it has other hard links, which another user may have made"))
        }
        None => Ok(()),
    }
}

fn untrusted(store: &Path, at: &Path, why: &str) -> Error {
    Error::refused(
        Refusal::UntrustedStore,
        format!(
            "bwguard does not trust {}: {} ({why}), so another user could change what bwguard reads \
             and writes there",
            store.display(),
            at.display()
        ),
        "keep snapshots where only this user can change them: pass --store PATH under a directory \
         only root or this user can write (as root, the default for an install another user owns is \
         /var/lib/bwguard/stores/), or fix the owner and mode (`chown`, `chmod go-w`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_writable_by_others_or_under_such_a_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        check_store(&store).unwrap();
        std::fs::create_dir(&store).unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_store(&store).unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(check_store(&store).unwrap_err().to_string().contains("writable by its group"));
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_store(&store).unwrap_err().to_string();
        assert!(e.contains(&t.path().display().to_string()) && e.contains("writable"), "{e}");
        // The sticky bit makes a world-writable parent fine (as /tmp).
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_store(&store).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&store, &link).unwrap();
        assert!(check_store(&link).unwrap_err().to_string().contains("symbolic link"));
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
