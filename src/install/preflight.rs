//! Checks that run before anything is written: live database files (rule 5),
//! the database mode, and room on every filesystem a run will write (rule 8).
//! Each refusal is exit 5 with the fix in its hint, and nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::context::Install;
use crate::error::{Error, Result};
use crate::files;
use crate::install::config::Config;
use crate::install::facts::{self, DatabaseMode};
use crate::install::live;
use crate::report::human::human_size;

/// Where the live database files are.
pub fn database_dir(install: &Install) -> PathBuf {
    install.data.join("mssql/data")
}

/// Refuses while a process has the database files open, unless `live`
/// accepts a crash-consistent copy. Returns whether they are open.
pub fn database_files(install: &Install, live: bool, action: &str) -> Result<bool> {
    let scan = live::scan(&database_dir(install), Path::new("/proc"));
    if scan.holders.is_empty() {
        return Ok(false);
    }
    if live {
        return Ok(true);
    }
    Err(Error::refused(
        format!("the database files are in use: {}; {action} would copy torn files", scan.describe()),
        "stop Bitwarden first with `./bitwarden.sh stop` (or accept a crash-consistent copy with --live)",
    ))
}

/// Refuses a rollback while a process has the database files open.
pub fn no_database_holders(install: &Install) -> Result<()> {
    let scan = live::scan(&database_dir(install), Path::new("/proc"));
    if scan.holders.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        format!(
            "the database files are in use: {}; a rollback cannot replace them under SQL Server",
            scan.describe()
        ),
        "stop Bitwarden first with `./bitwarden.sh stop`, then run the rollback again",
    ))
}

/// The database mode of the install, read from config.yml and env.
pub fn database_mode(install: &Install) -> DatabaseMode {
    let config = std::fs::read(install.config_path()).ok().and_then(|b| Config::parse(&b).ok());
    let env = std::fs::read_to_string(install.data.join("env/global.override.env")).ok();
    facts::database_mode(config.as_ref(), env.as_deref())
}

/// Refuses when `bwdata/mssql/data` is not the live database (external SQL
/// Server, or a Docker volume), unless the user says it is backed up.
pub fn database_covered(install: &Install, backed_up_elsewhere: bool) -> Result<DatabaseMode> {
    let mode = database_mode(install);
    if mode == DatabaseMode::BuiltIn || backed_up_elsewhere {
        return Ok(mode);
    }
    let where_ = match mode {
        DatabaseMode::External => "an external SQL Server",
        _ => "the Docker volume mssql_data (database_docker_volume: true)",
    };
    Err(Error::refused(
        format!("this install keeps its database in {where_}, so a snapshot of bwdata cannot hold it"),
        "back the database up your own way, then pass --db-backed-up-elsewhere; \
         the snapshot will still cover config.yml and the settings",
    ))
}

/// One need for space: `bytes` on the filesystem holding `path`.
#[derive(Debug, Clone)]
pub struct Need {
    /// Where the bytes go (an existing directory on that filesystem).
    pub path: PathBuf,
    /// How many.
    pub bytes: u64,
    /// What for, for the message.
    pub what: String,
}

/// Refuses unless every filesystem has room for all the needs on it.
pub fn room(needs: &[Need]) -> Result<()> {
    let mut by_dev: BTreeMap<u64, (u64, Vec<&Need>)> = BTreeMap::new();
    for n in needs {
        let dev = files::device_of(&n.path)?;
        let e = by_dev.entry(dev).or_default();
        e.0 = e.0.saturating_add(n.bytes);
        e.1.push(n);
    }
    for (total, list) in by_dev.values() {
        let free = files::free_space(&list[0].path)?;
        if *total > free {
            let what: Vec<String> =
                list.iter().map(|n| format!("{} for {}", human_size(n.bytes), n.what)).collect();
            return Err(Error::refused(
                format!(
                    "not enough free space on the filesystem holding {}: {} needed ({}), {} free",
                    list[0].path.display(),
                    human_size(*total),
                    what.join(", "),
                    human_size(free)
                ),
                "free some space, or use a store on another disk with --store PATH",
            ));
        }
    }
    Ok(())
}

/// A safe upper bound of a snapshot's size for `content` bytes in `entries`
/// entries whose paths add up to `path_bytes`: tar adds a 512-byte header
/// (two with a long name) and pads each file to 512 bytes; deflate never
/// grows data by more than 5 bytes per 16 KiB stored block, plus gzip
/// member framing; `SHA256SUMS` and `manifest.json` repeat every path with
/// a digest and a few hundred bytes of fields; each file of the snapshot
/// may take a block more than its bytes.
pub fn archive_bound(content: u64, entries: u64, path_bytes: u64) -> u64 {
    let tar = content.saturating_add(entries.saturating_mul(1536));
    let deflate = content / 16384 * 5 + content / (256 << 10) * 32;
    let metadata = entries.saturating_mul(512).saturating_add(path_bytes.saturating_mul(3));
    tar.saturating_add(deflate).saturating_add(metadata).saturating_add(1 << 20)
}

/// [`archive_bound`] for the objects a snapshot will hold.
pub fn snapshot_bound(sources: &[crate::engine::archive::Source]) -> u64 {
    let content =
        sources.iter().filter(|s| s.meta.is_file()).fold(0u64, |a, s| a.saturating_add(s.meta.len()));
    let paths = sources.iter().map(|s| s.rel.len() as u64).sum();
    archive_bound(content, sources.len() as u64, paths)
}

/// Bytes a file of `size` takes on disk at most: rounded up to 4 KiB blocks.
pub fn on_disk(size: u64) -> u64 {
    size.saturating_add(4095) & !4095
}

/// The nearest existing directory at or above `p`.
pub fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors().find(|a| a.is_dir()).unwrap_or(Path::new("/")).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_covers_incompressible_data() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let out = gz.finish().unwrap();
        assert!((out.len() as u64) < archive_bound(data.len() as u64, 1, 10));
    }

    #[test]
    fn room_refuses_more_than_the_disk_has() {
        let t = tempfile::tempdir().unwrap();
        let free = files::free_space(t.path()).unwrap();
        let ok = Need { path: t.path().into(), bytes: 1, what: "a test".into() };
        room(std::slice::from_ref(&ok)).unwrap();
        let big = Need { bytes: free / 2 + 1, ..ok };
        let e = room(&[big.clone(), big]).unwrap_err();
        assert!(e.to_string().contains("not enough free space"), "{e}");
    }
}
