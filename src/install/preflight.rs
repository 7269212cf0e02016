//! Checks that run before anything is written: live database files (rule 5)
//! and the database mode. Each refusal is exit 5 with the fix in its hint,
//! and nothing written. Room on disk (rule 8) is `crate::engine::room`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Refusal, Result};
use crate::install::Install;
use crate::install::config::Config;
use crate::install::facts::{self, DatabaseMode};
use crate::install::live;

/// Where the live database files are: `bwdata/mssql/data`, or the Docker
/// volume's mount point once it is known.
pub fn database_dir(install: &Install) -> PathBuf {
    install.volume.clone().unwrap_or_else(|| install.data.join("mssql/data"))
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
        Refusal::DatabaseInUse,
        format!("the database files are in use: {}; {action} would copy torn files", scan.describe()),
        format!(
            "stop Bitwarden first: `{} && {}` (or accept a crash-consistent copy with --live)",
            install.cd_line(),
            install.script_line("stop")
        ),
    ))
}

/// Refuses a rollback while a process has the database files open.
pub fn no_database_holders(install: &Install) -> Result<()> {
    let scan = live::scan(&database_dir(install), Path::new("/proc"));
    if scan.holders.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        Refusal::DatabaseInUse,
        format!(
            "the database files are in use: {}; a rollback cannot replace them under SQL Server",
            scan.describe()
        ),
        format!(
            "stop Bitwarden first (`{} && {}`), then run the rollback again",
            install.cd_line(),
            install.script_line("stop")
        ),
    ))
}

/// The database mode of the install, read from config.yml and env.
pub fn database_mode(install: &Install) -> DatabaseMode {
    let config = crate::files::read_small(&install.config_path(), crate::files::SMALL_CAP)
        .ok()
        .and_then(|b| Config::parse(&b).ok());
    let env =
        crate::files::read_small_text(&install.data.join("env/global.override.env"), crate::files::SMALL_CAP)
            .ok();
    facts::database_mode(config.as_ref(), env.as_deref())
}

/// Refuses when the snapshot would not hold the live database (an external
/// SQL Server, or a Docker volume whose mount point is not known), unless
/// the user says it is backed up.
pub fn database_covered(install: &Install, backed_up_elsewhere: bool) -> Result<DatabaseMode> {
    let mode = database_mode(install);
    let covered = match mode {
        DatabaseMode::BuiltIn => true,
        DatabaseMode::DockerVolume => install.volume.is_some(),
        DatabaseMode::External => false,
    };
    if covered || backed_up_elsewhere {
        return Ok(mode);
    }
    let where_ = match mode {
        DatabaseMode::External => "an external SQL Server",
        _ => "the Docker volume mssql_data (database_docker_volume: true)",
    };
    Err(Error::refused(
        Refusal::DatabaseElsewhere,
        format!("this install keeps its database in {where_}, so a snapshot of bwdata cannot hold it"),
        "back the database up your own way, then pass --db-backed-up-elsewhere; \
         the snapshot will still cover config.yml and the settings",
    ))
}
