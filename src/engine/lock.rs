//! The store lock: one writing run at a time (safety rule 6).
//!
//! The lock is `std::fs::File::try_lock` (an exclusive `flock`) on
//! `<store>/lock`. It is released by the kernel when the holder exits, so a
//! dead holder never blocks. The file's text names the holder (PID, command,
//! start time) for the refused run to print; it may be stale, the lock never.
//! The file is opened without following a link and must be a regular file
//! of this user's: a `lock` symlink planted by another user is refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::files;

/// Name of the lock file inside the store.
pub const LOCK_FILE: &str = "lock";

/// The most of the lock file's text that is read.
const HOLDER_CAP: usize = 512;

/// The holder named by the lock file's bytes, on one line, at most
/// [`HOLDER_CAP`] bytes of it; "a run that is starting" if empty.
pub fn holder(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(HOLDER_CAP)]);
    match text.trim() {
        "" => "a run that is starting".to_string(),
        t => crate::report::human::one_line(t).into_owned(),
    }
}

/// An exclusive hold on the store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl StoreLock {
    /// Takes the lock at once or fails with [`Error::Busy`] naming the holder.
    pub fn acquire(store: &Path, command: &str, now: DateTime<Utc>) -> Result<StoreLock> {
        files::ensure_private_dir(store)?;
        let path = store.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(files::PRIVATE_FILE)
            // A planted link is never followed (it would truncate its target).
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| Error::io("cannot open lock file", &path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("cannot read", &path, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                "refusing lock file",
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "it is not a regular file"),
            ));
        }
        crate::engine::trust::check_store_file(&meta, &path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = Vec::new();
                let _ = (&mut file).take(HOLDER_CAP as u64).read_to_end(&mut text);
                return Err(Error::Busy { path, holder: holder(&text) });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, e)),
        }
        let text = format!(
            "pid {} ({}), started {}",
            std::process::id(),
            command,
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(text.as_bytes()))
            .map_err(|e| Error::io("cannot write lock file", &path, e))?;
        Ok(StoreLock { file })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_named_then_released() {
        let t = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let first = StoreLock::acquire(t.path(), "backup", now).unwrap();
        let e = StoreLock::acquire(t.path(), "rollback", now).unwrap_err();
        match &e {
            Error::Busy { holder, .. } => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
                assert!(holder.contains("backup"), "{holder}");
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        StoreLock::acquire(t.path(), "rollback", now).unwrap();
    }
}
