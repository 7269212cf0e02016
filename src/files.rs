//! Filesystem helpers with path context: atomic writes, directory flushes,
//! private directories and files, metadata restore.
//!
//! Invariant: a file written through [`write_atomic`] is either absent/old or
//! complete and flushed under its final name; never partial.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT};

use crate::error::{Error, Result};

/// Mode of snapshot directories: the database holds secrets.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of snapshot files.
pub const PRIVATE_FILE: u32 = 0o600;

/// Write-behind for a large file written front to back: every 32 MiB, asks
/// the kernel to start writing out what was written and to drop from the
/// cache what is already on disk. The final flush then has little left to
/// do, and gigabytes of snapshot or staged data do not crowd the server's
/// cache. Advice only: `fsync`/`syncfs` still decide durability.
#[derive(Debug, Default)]
pub struct WriteBehind {
    advised: u64,
}

impl WriteBehind {
    const STEP: u64 = 32 << 20;

    /// Notes that `file` now holds `written` bytes.
    pub fn wrote(&mut self, file: &File, written: u64) {
        if written - self.advised >= Self::STEP {
            // The step before is on its way to disk by now: drop it too.
            let from = self.advised.saturating_sub(Self::STEP);
            let _ = rustix::fs::fadvise(
                file,
                from,
                std::num::NonZeroU64::new(written - from),
                rustix::fs::Advice::DontNeed,
            );
            self.advised = written;
        }
    }
}

/// The most bwguard reads of a file it parses (config.yml, env files,
/// bitwarden.sh, docker-compose.yml, nginx/default.conf, journals, the
/// retention policy, the remotes): ten times the largest Bitwarden writes.
pub const SMALL_CAP: u64 = 1 << 20;
/// The most bwguard reads of a manifest (about 200,000 files' worth).
pub const MANIFEST_CAP: u64 = 64 << 20;

/// Opens `path` for reading without following a symbolic link in its last
/// component and without blocking on a FIFO, and refuses anything but a
/// regular file: a file another user can swap for a link to /etc/shadow,
/// a FIFO or /dev/zero is not read.
pub fn open_regular(path: &Path) -> std::io::Result<(File, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "it is a symbolic link, which bwguard does not follow",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "it is not a regular file"));
    }
    Ok((file, meta))
}

/// Reads a regular file of at most `cap` bytes whole (see [`open_regular`]);
/// a larger one is an error, so no file can make bwguard hold more.
pub fn read_small(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let (file, meta) = open_regular(path)?;
    if meta.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it holds {} bytes, more than the {cap} bwguard reads of such a file", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it grew past {cap} bytes while read"),
        ));
    }
    Ok(bytes)
}

/// [`read_small`] as text (invalid UTF-8 replaced).
pub fn read_small_text(path: &Path, cap: u64) -> std::io::Result<String> {
    read_small(path, cap).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Flushes a directory, so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("cannot flush directory", dir, e))
}

/// Creates `dir` with mode 0700 whatever the umask. Fails if it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir(dir)?;
    fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR))
}

/// Creates `dir` and its parents with mode 0700 if missing.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)
        .and_then(|_| fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR)))
        .map_err(|e| Error::io("cannot create directory", dir, e))
}

/// Creates a new file with mode 0600 whatever the umask; fails if it exists.
pub fn create_private_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
        .map_err(|e| Error::io("cannot create", path, e))?;
    f.set_permissions(Permissions::from_mode(PRIVATE_FILE))
        .map_err(|e| Error::io("cannot set mode of", path, e))?;
    Ok(f)
}

/// File mode and owner to give a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    /// Permission bits.
    pub mode: u32,
    /// Owner, applied when running as root (otherwise the writer owns it).
    pub uid: u32,
    /// Group, as for `uid`.
    pub gid: u32,
}

impl Ownership {
    /// `mode`, owned by this process's user: for bwguard's own files.
    pub fn mine(mode: u32) -> Self {
        Ownership { mode, uid: rustix::process::geteuid().as_raw(), gid: rustix::process::getegid().as_raw() }
    }

    /// The mode and owner of an existing file.
    pub fn of(meta: &fs::Metadata) -> Self {
        Ownership { mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() }
    }
}

/// The temporary name used beside `path` while writing it.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.bwguard-tmp"))
}

/// Writes `bytes` to `path` atomically: a temporary name on the same
/// filesystem, flushed, given `own`, renamed over `path`, directory flushed.
/// On failure the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], own: Ownership) -> Result<()> {
    let tmp = temp_name(path);
    let result = write_then_rename(&tmp, path, bytes, own);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], own: Ownership) -> Result<()> {
    // A leftover from a killed run is ours to replace.
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| Error::io("cannot create", tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io("cannot write", tmp, e))?;
    if is_root() {
        std::os::unix::fs::fchown(&f, Some(own.uid), Some(own.gid))
            .map_err(|e| Error::io("cannot set owner of", tmp, e))?;
    }
    f.set_permissions(Permissions::from_mode(own.mode))
        .map_err(|e| Error::io("cannot set mode of", tmp, e))?;
    f.sync_all().map_err(|e| Error::io("cannot flush", tmp, e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| Error::io("cannot rename into place", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Whether this process runs as root (and so can restore owners).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets the modification time of `path` without following a symlink.
pub fn set_mtime_nofollow(path: &Path, secs: i64) -> std::io::Result<()> {
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: secs, tv_nsec: 0 },
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// Free bytes for an unprivileged writer on the filesystem holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::io("cannot read free space of", path, e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The device id of the filesystem holding `path` (not following a final symlink).
pub fn device_of(path: &Path) -> Result<u64> {
    fs::symlink_metadata(path).map(|m| m.dev()).map_err(|e| Error::io("cannot read", path, e))
}

/// Removes a file or a whole directory tree; absent is fine.
pub fn remove_any(path: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| Error::io("cannot remove", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_refuse_links_fifos_devices_and_big_files() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("config.yml");
        fs::write(&file, b"url: x\n").unwrap();
        assert_eq!(read_small(&file, 100).unwrap(), b"url: x\n");
        assert!(read_small(&file, 3).unwrap_err().to_string().contains("more than"));
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_small(&link, 100).unwrap_err().to_string().contains("symbolic link"));
        let fifo = t.path().join("fifo");
        rustix::fs::mknodat(
            CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Refused at once: a FIFO would block a plain read for ever.
        assert!(read_small(&fifo, 100).unwrap_err().to_string().contains("not a regular file"));
        assert!(
            read_small(Path::new("/dev/zero"), 100).unwrap_err().to_string().contains("not a regular file")
        );
    }

    #[test]
    fn write_atomic_replaces_and_keeps_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.yml");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        let own = Ownership::of(&fs::metadata(&p).unwrap());
        write_atomic(&p, b"new", own).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert!(!temp_name(&p).exists());
    }

    #[test]
    fn private_dir_ignores_umask() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("snap");
        create_private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        let f = d.join("x");
        create_private_file(&f).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    }
}
