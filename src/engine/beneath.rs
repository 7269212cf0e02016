//! Opening what lies in the install without following a symbolic link
//! anywhere on the way: the install's owner (a compromised container)
//! may swap any of its files or directories for a link to /etc at any
//! moment, and root's bwguard must neither read through it (a backup that
//! archives /etc/shadow under the owner's name) nor write through it (a
//! rollback that writes run.sh into /etc).
//!
//! Every path is resolved from a descriptor of the install directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: a link in any
//! component, or a path leaving the install, fails with an error instead
//! of being followed. A directory opened this way is then named by its
//! descriptor, `/proc/self/fd/N`, a name that cannot be redirected.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};

/// A directory opened once, named by its descriptor from then on.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its path as the user knows it, for messages.
    pub shown: PathBuf,
}

impl Dir {
    /// The directory at `path`, a real directory (not a link).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty()).map_err(link_error)?;
        Ok(Dir { fd, shown: path.to_path_buf() })
    }

    /// The directory `rel` below this one (`""` is this one again), no
    /// link followed; `create` makes missing ones (mode 0755) on the way.
    pub fn open_beneath(&self, rel: &str, create: bool) -> io::Result<Dir> {
        let shown = if rel.is_empty() { self.shown.clone() } else { self.shown.join(rel) };
        let mut at = rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())?;
        for name in rel.split('/').filter(|n| !n.is_empty()) {
            let next = match rustix::fs::openat2(&at, name, dir_flags(), Mode::empty(), resolve()) {
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&at, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rustix::fs::openat2(&at, name, dir_flags(), Mode::empty(), resolve())
                }
                other => other,
            };
            at = next.map_err(|e| link_error_at(e, &shown))?;
        }
        Ok(Dir { fd: at, shown })
    }

    /// The name of `name` in this directory that cannot be redirected:
    /// `/proc/self/fd/N/name` (the directory itself for `""`).
    pub fn path(&self, name: &str) -> PathBuf {
        let p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        if name.is_empty() { p } else { p.join(name) }
    }

    /// How a path made by [`Dir::path`] reads for the user.
    pub fn show(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(self.path("")) {
            Ok(rest) if rest.as_os_str().is_empty() => self.shown.clone(),
            Ok(rest) => self.shown.join(rest),
            Err(_) => path.to_path_buf(),
        }
    }

    /// The file `rel` below this directory, opened for reading: no link
    /// followed on the way or at the end, no blocking on a FIFO (the
    /// caller checks the kind with `fstat`).
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(&self.fd, rel, flags, Mode::empty(), resolve())
            .map_err(|e| link_error_at(e, &self.shown.join(rel)))?;
        Ok(File::from(fd))
    }

    /// The directory's descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// The install directory and the parts that live elsewhere (the Docker
/// volume holding the database), each opened once: an install-relative
/// name is resolved beneath the directory of the part it lies in.
#[derive(Debug)]
pub struct Roots {
    install: Dir,
    elsewhere: Vec<(String, Dir)>,
}

impl Roots {
    /// Names resolved beneath `install`.
    pub fn new(install: Dir) -> Roots {
        Roots { install, elsewhere: Vec::new() }
    }

    /// Names in part `part` (and the part itself) resolved beneath `dir`.
    pub fn with(mut self, part: &str, dir: Dir) -> Roots {
        self.elsewhere.push((part.to_string(), dir));
        self
    }

    /// The directory `rel` lies beneath, and its name there.
    fn split<'a>(&self, rel: &'a str) -> (&Dir, &'a str) {
        for (part, dir) in &self.elsewhere {
            match rel.strip_prefix(part.as_str()) {
                Some("") => return (dir, ""),
                Some(rest) if rest.starts_with('/') => return (dir, &rest[1..]),
                _ => {}
            }
        }
        (&self.install, rel)
    }

    /// [`Dir::open_beneath`] of the directory `rel` lies beneath.
    pub fn open_beneath(&self, rel: &str, create: bool) -> io::Result<Dir> {
        let (dir, rest) = self.split(rel);
        dir.open_beneath(rest, create)
    }

    /// [`Dir::open_file`] of the directory `rel` lies beneath.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let (dir, rest) = self.split(rel);
        dir.open_file(rest)
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn link_error(e: rustix::io::Errno) -> io::Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            io::Error::new(io::ErrorKind::InvalidInput, "a symbolic link (or not a directory) is in the way")
        }
        e => e.into(),
    }
}

fn link_error_at(e: rustix::io::Errno, at: &Path) -> io::Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV | rustix::io::Errno::NOTDIR => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has a symbolic link on its way, which bwguard does not follow", at.display()),
        ),
        e => e.into(),
    }
}

/// Whether `p` exists (as anything, a link included) in the real world.
pub fn exists(p: &Path) -> bool {
    rustix::fs::statat(CWD, p, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_on_the_way_is_refused_and_real_paths_work() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("install");
        std::fs::create_dir_all(root.join("bwdata/env")).unwrap();
        std::fs::write(root.join("bwdata/env/uid.env"), "LOCAL_UID=1\n").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("bwdata/scripts")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("bwdata/config.yml")).unwrap();
        let dir = Dir::open(&root).unwrap();
        let env = dir.open_beneath("bwdata/env", false).unwrap();
        assert_eq!(std::fs::read(env.path("uid.env")).unwrap(), b"LOCAL_UID=1\n");
        assert_eq!(env.show(&env.path("uid.env")), root.join("bwdata/env/uid.env"));
        let e = dir.open_beneath("bwdata/scripts", true).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(dir.open_file("bwdata/config.yml").unwrap_err().to_string().contains("symbolic link"));
        assert!(dir.open_file("bwdata/../../etc/passwd").is_err());
        let made = dir.open_beneath("bwdata/core/new", true).unwrap();
        assert!(root.join("bwdata/core/new").is_dir() && made.shown.ends_with("core/new"));
    }

    #[test]
    fn a_part_that_lives_elsewhere_is_resolved_beneath_its_own_directory() {
        let t = tempfile::tempdir().unwrap();
        let (install, volume) = (t.path().join("install"), t.path().join("volumes/v/_data"));
        std::fs::create_dir_all(install.join("bwdata")).unwrap();
        std::fs::create_dir_all(volume.join("sub")).unwrap();
        std::fs::write(volume.join("sub/vault.mdf"), b"pages").unwrap();
        std::fs::write(install.join("bwdata/config.yml"), b"k: v\n").unwrap();
        std::os::unix::fs::symlink("/etc", volume.join("etc")).unwrap();
        let roots =
            Roots::new(Dir::open(&install).unwrap()).with("docker-volume/v", Dir::open(&volume).unwrap());
        let mut read = String::new();
        use std::io::Read;
        roots.open_file("docker-volume/v/sub/vault.mdf").unwrap().read_to_string(&mut read).unwrap();
        assert_eq!(read, "pages");
        assert!(roots.open_beneath("docker-volume/v", false).unwrap().shown.ends_with("_data"));
        assert!(roots.open_file("bwdata/config.yml").is_ok());
        // The volume's root is not an install path, and its links are not followed.
        assert!(roots.open_file("docker-volume/vault.mdf").is_err());
        assert!(roots.open_file("docker-volume/v/etc/passwd").is_err());
    }
}
