//! Which processes have the database files open (safety rule 5).
//!
//! Matches open files by device and inode, not by path: SQL Server runs in a
//! container, where `/proc/PID/fd` links read `/var/opt/mssql/data/…`, yet
//! `stat` through the link reaches the same inode as `bwdata/mssql/data/…`.
//! As root every process is visible; otherwise only the caller's own, and
//! the result counts the others as unreadable. A `sqlservr` process whose
//! files cannot be seen counts as holding the database: that it runs is
//! enough to refuse a cold snapshot.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// The command name of SQL Server's engine process.
const SQL_SERVER: &str = "sqlservr";

/// A process holding a database file open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), e.g. `sqlservr`.
    pub command: String,
    /// The file it holds, as found in the install.
    pub file: PathBuf,
}

/// The outcome of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Processes holding files open.
    pub holders: Vec<Holder>,
    /// Processes whose open files could not be read (not root).
    pub unreadable: usize,
}

impl Scan {
    /// One line naming the holders, e.g. `sqlservr (pid 812) has vault.mdf open`.
    pub fn describe(&self) -> String {
        self.holders
            .iter()
            .map(|h| {
                let name = h.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                format!("{} (pid {}) has {name} open", h.command, h.pid)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Finds processes that have files under `dir` open, by scanning `proc`
/// (normally `/proc`). A missing `dir` has no holders.
pub fn scan(dir: &Path, proc: &Path) -> Scan {
    let mut files: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for e in WalkDir::new(dir).follow_links(false).into_iter().filter_map(Result::ok) {
        if let Ok(m) = e.metadata()
            && m.is_file()
        {
            files.insert((m.dev(), m.ino()), e.path().to_path_buf());
        }
    }
    let mut out = Scan::default();
    if files.is_empty() {
        return out;
    }
    let me = std::process::id();
    let Ok(procs) = fs::read_dir(proc) else { return out };
    for p in procs.filter_map(Result::ok) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let command = || fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
        let fds = match fs::read_dir(p.path().join("fd")) {
            Ok(fds) => fds,
            // Gone since the listing, or a kernel thread: nothing to see.
            Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => continue,
            Err(_) => {
                out.unreadable += 1;
                if command() == SQL_SERVER {
                    // Its open files cannot be seen (not root); that it runs is enough.
                    out.holders.push(Holder { pid, command: command(), file: dir.to_path_buf() });
                }
                continue;
            }
        };
        for fd in fds.filter_map(Result::ok) {
            // stat follows the magic link to the open file itself; without
            // the right to trace the process it fails with EACCES, which
            // must not pass for "not open".
            let m = match fs::metadata(fd.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    out.unreadable += 1;
                    if command() == SQL_SERVER {
                        out.holders.push(Holder { pid, command: command(), file: dir.to_path_buf() });
                    }
                    break;
                }
                Err(_) => continue,
            };
            if let Some(file) = files.get(&(m.dev(), m.ino())) {
                let holder = Holder { pid, command: command(), file: file.clone() };
                if !out.holders.contains(&holder) {
                    out.holders.push(holder);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_process_holding_a_file_by_inode() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("vault.mdf");
        fs::write(&f, b"pages").unwrap();
        let mut child =
            std::process::Command::new("sleep").arg("30").stdin(fs::File::open(&f).unwrap()).spawn().unwrap();
        let found = scan(t.path(), Path::new("/proc"));
        child.kill().unwrap();
        child.wait().unwrap();
        let h =
            found.holders.iter().find(|h| h.pid == child.id()).expect("the sleeping child holds vault.mdf");
        assert_eq!(h.command, "sleep");
        assert_eq!(h.file, f);
        assert!(found.describe().contains("sleep (pid"));
        let after = scan(t.path(), Path::new("/proc"));
        assert!(after.holders.iter().all(|h| h.pid != child.id()));
    }
}
