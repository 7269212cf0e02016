//! The Bitwarden install: where it is ([`Install`]), config.yml, Helm
//! values, facts read from the install, the live-database scan and the
//! checks before a change.

pub mod config;
pub mod facts;
pub mod helm;
pub mod live;
pub mod preflight;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Refusal, Result};

/// Names the data directory may have inside the install directory, in the
/// order they are looked for.
pub const DATA_DIR_NAMES: [&str; 2] = ["bwdata", ".bwdata"];
/// Name of the default store, beside the data directory.
pub const DEFAULT_STORE_NAME: &str = "bwguard-snapshots";
/// Where root keeps the stores of installs that another user owns: a store
/// inside such an install is that user's to change (the trust rule).
pub const SYSTEM_STORES: &str = "/var/lib/bwguard/stores";

/// Where the install, its data directory and the store are.
#[derive(Debug, Clone)]
pub struct Install {
    /// The directory holding `bitwarden.sh` and the data directory (absolute).
    pub dir: PathBuf,
    /// The data directory (absolute), `dir/data_name`.
    pub data: PathBuf,
    /// The data directory's real name (`bwdata` or `.bwdata`).
    pub data_name: String,
    /// The snapshot store (absolute; may not exist yet).
    pub store: PathBuf,
    /// The mount point of the Docker volume holding the database, for an
    /// install with `database_docker_volume: true` once Docker named it
    /// (`crate::procedure::volume`); its files are the part
    /// [`VOLUME_PART`] of a snapshot.
    pub volume: Option<PathBuf>,
}

/// The name, in a snapshot, of the part holding the files of the Docker
/// volume `mssql_data` (`database_docker_volume: true`). It is not a path in
/// the install: it stands for the volume's mount point.
pub const VOLUME_PART: &str = "docker-volume/mssql_data";
/// The name of a local Docker volume's data directory, its mount point:
/// `…/volumes/NAME/_data`.
pub const VOLUME_DATA: &str = "_data";

/// Refuses a data directory that is a symbolic link made by another user
/// than the one running: the install's owner could point it anywhere
/// (root's files, root's store) between two runs. A link root made (the
/// data moved to a bigger disk) is followed.
fn refuse_others_link(data: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(data) else { return Ok(()) };
    let me = rustix::process::geteuid().as_raw();
    if !meta.file_type().is_symlink() || meta.uid() == me {
        return Ok(());
    }
    let target = std::fs::read_link(data).map(|t| t.display().to_string()).unwrap_or_default();
    Err(Error::refused(
        Refusal::UntrustedLink,
        format!(
            "{} is a symbolic link to {target} made by uid {}, which can point it anywhere; bwguard does not follow it",
            data.display(),
            meta.uid()
        ),
        "move the data directory back in place of the link, or run bwguard as the install's owner",
    ))
}

impl Install {
    /// Resolves the data directory and the store from the flags and `cwd`.
    pub fn resolve(bwdata: Option<&Path>, store: Option<&Path>, cwd: &Path) -> Result<Install> {
        let data = match bwdata {
            Some(p) => {
                let p = cwd.join(p);
                if !p.is_dir() {
                    return Err(Error::NoDataDir(p));
                }
                // The install directory given for the data directory: its
                // parent would be taken for the install, its store made there.
                if let Some(inner) = DATA_DIR_NAMES.iter().map(|n| p.join(n)).find(|d| d.is_dir())
                    && !p.join("config.yml").exists()
                {
                    return Err(Error::Usage(format!(
                        "{} is the install directory (it holds {}), not the data directory: pass --bwdata {}",
                        p.display(),
                        inner.file_name().unwrap_or_default().to_string_lossy(),
                        shell_word(&inner.display().to_string())
                    )));
                }
                p
            }
            None => DATA_DIR_NAMES
                .iter()
                .map(|n| cwd.join(n))
                .find(|p| p.is_dir())
                .ok_or_else(|| Error::NoDataDirHere(cwd.to_path_buf()))?,
        };
        refuse_others_link(&data)?;
        let data = data.canonicalize().map_err(|e| Error::io("cannot resolve", &data, e))?;
        let (Some(dir), Some(name)) = (data.parent(), data.file_name()) else {
            return Err(Error::NoDataDir(data));
        };
        let dir = dir.to_path_buf();
        let data_name = name.to_string_lossy().into_owned();
        let store = match store {
            Some(s) => absolute_through_existing(&cwd.join(s))?,
            None => default_store(&dir),
        };
        if store.starts_with(&data) {
            return Err(Error::StoreInsideData { store, data });
        }
        Ok(Install { dir, data, data_name, store, volume: None })
    }

    /// The install-relative path of something inside the data directory.
    pub fn rel(&self, inside_data: &str) -> String {
        if inside_data.is_empty() {
            self.data_name.clone()
        } else {
            format!("{}/{}", self.data_name, inside_data)
        }
    }

    /// The store, once the trust rule accepts it (see [`crate::engine::trust`]).
    pub fn open_store(&self) -> Result<crate::engine::store::Store> {
        crate::engine::trust::check_store(&self.store)?;
        Ok(crate::engine::store::Store::new(&self.store))
    }

    /// Where the install-relative part path `rel` is now: in the install
    /// directory, or, for [`VOLUME_PART`] and what is in it, in the Docker
    /// volume (`None` when the volume's mount point is not known).
    pub fn locate(&self, rel: &str) -> Option<PathBuf> {
        match rel.strip_prefix(VOLUME_PART) {
            Some("") => self.volume.clone(),
            Some(rest) if rest.starts_with('/') => self.volume.as_ref().map(|v| v.join(&rest[1..])),
            _ => Some(self.dir.join(rel)),
        }
    }

    /// `bwdata/config.yml`, absolute.
    pub fn config_path(&self) -> PathBuf {
        self.data.join("config.yml")
    }

    /// `./bitwarden.sh ARG` as the admin types it in the install directory:
    /// with the data directory as its second argument when it is not
    /// `bwdata` (bitwarden.sh assumes `bwdata` otherwise).
    pub fn script_line(&self, arg: &str) -> String {
        if self.data_name == "bwdata" {
            format!("./bitwarden.sh {arg}")
        } else {
            format!("./bitwarden.sh {arg} {}", shell_word(&self.data.display().to_string()))
        }
    }

    /// `cd INSTALL`, for a command line the admin can paste anywhere.
    pub fn cd_line(&self) -> String {
        format!("cd {}", shell_word(&self.dir.display().to_string()))
    }

    /// The bytes of config.yml, refusing anything but a regular file: bwguard
    /// edits and restores it as a plain file.
    pub fn read_config(&self) -> Result<Vec<u8>> {
        let path = self.config_path();
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(Error::refused(
                Refusal::NotAPlainFile,
                format!("{} is not a regular file", path.display()),
                "bwguard edits and restores config.yml as a plain file; is --bwdata the Bitwarden data directory?",
            ));
        }
        crate::files::read_small(&path, crate::files::SMALL_CAP)
            .map_err(|e| Error::io("cannot read", &path, e))
    }

    /// The "install" of a Helm values file: its directory, the file as the
    /// one part, and the store (`store`, or `bwguard-snapshots` beside the
    /// file), all resolved against `cwd`.
    pub fn of_values_file(file: &Path, store: Option<&Path>, cwd: &Path) -> Result<Install> {
        let file = cwd.join(file);
        let file = file.canonicalize().map_err(|_| Error::NoDataDir(file.clone()))?;
        if !file.is_file() {
            return Err(Error::NoDataDir(file));
        }
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Err(Error::NoDataDir(file));
        };
        let store = match store {
            Some(s) => cwd.join(s),
            None => default_store(dir),
        };
        Ok(Install {
            dir: dir.to_path_buf(),
            data_name: name.to_string_lossy().into_owned(),
            data: file.clone(),
            store,
            volume: None,
        })
    }
}

/// The store an install gets when `--store` is not given:
/// `bwguard-snapshots/` beside the data directory, unless that place (or a
/// directory above it) is another user's to change, as when root runs on
/// an install its service user owns: then one of root's own under
/// [`SYSTEM_STORES`], named after the install directory.
pub fn default_store(dir: &Path) -> PathBuf {
    let beside = dir.join(DEFAULT_STORE_NAME);
    if crate::engine::trust::check_store(&beside).is_ok() {
        return beside;
    }
    Path::new(SYSTEM_STORES).join(store_name(dir))
}

/// An install directory as one file name: `/` as `-`, every byte but
/// letters, digits, `.` and `_` percent-encoded (`/opt/bit-warden` is
/// `opt-bit%2Dwarden`), so two installs never share a name.
fn store_name(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let raw = dir.as_os_str().as_bytes();
    let raw = raw.strip_prefix(b"/").unwrap_or(raw);
    raw.iter()
        .map(|&b| match b {
            b'/' => "-".to_string(),
            b if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// `s` as one word for a POSIX shell: as it is when it is plain, else in
/// single quotes.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Canonicalizes the longest existing ancestor of `p` and appends the rest,
/// so a store that does not exist yet is still compared by its real path.
fn absolute_through_existing(p: &Path) -> Result<PathBuf> {
    let mut existing = p;
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                return Ok(rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c)));
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(p.to_path_buf()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bwdata_then_dot_bwdata() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join(".bwdata")).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert_eq!(i.data_name, ".bwdata");
        std::fs::create_dir(t.path().join("bwdata")).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert_eq!(i.data_name, "bwdata");
        assert_eq!(i.store, i.dir.join(DEFAULT_STORE_NAME));
    }

    #[test]
    fn missing_data_dir_names_both_candidates() {
        let t = tempfile::tempdir().unwrap();
        let e = Install::resolve(None, None, t.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bwdata") && msg.contains(".bwdata"), "{msg}");
    }

    #[test]
    fn system_store_names_are_unambiguous() {
        assert_eq!(store_name(Path::new("/opt/bitwarden")), "opt-bitwarden");
        assert_eq!(store_name(Path::new("/opt/bit-warden")), "opt-bit%2Dwarden");
        assert_ne!(store_name(Path::new("/a-/b")), store_name(Path::new("/a/-b")));
    }

    #[test]
    fn an_install_another_user_can_change_gets_a_store_outside_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bwdata")).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert_eq!(i.store, i.dir.join(DEFAULT_STORE_NAME));
        std::fs::set_permissions(t.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let i = Install::resolve(None, None, t.path()).unwrap();
        assert!(i.store.starts_with(SYSTEM_STORES), "{}", i.store.display());
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("/opt/bitwarden"), "/opt/bitwarden");
        assert_eq!(shell_word("/srv/my vault"), "'/srv/my vault'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn store_inside_data_is_refused_even_if_not_created() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bwdata")).unwrap();
        let e = Install::resolve(None, Some(Path::new("bwdata/snaps/x")), t.path()).unwrap_err();
        assert!(matches!(e, Error::StoreInsideData { .. }), "{e:?}");
    }
}
