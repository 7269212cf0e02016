//! The Docker volume that holds the database of an install with
//! `database_docker_volume: true` (Bitwarden's compose file mounts the
//! volume `mssql_data` at `/var/opt/mssql/data` in `bitwarden-mssql`).
//!
//! Docker names the volume and its mount point: from the database
//! container's mounts when the container exists, else from the labels
//! compose gives the volumes it creates (`bitwarden.sh stop` removes the
//! containers, not the volume). The mount point is then the part
//! [`VOLUME_PART`] of every snapshot, read and restored like the install's
//! parts. Only a volume of Docker's `local` driver, whose directory is
//! `…/volumes/NAME/_data`, is accepted, and only when that directory and
//! every one above it belong to root (or bwguard's user) and no one else
//! can write them: a rollback stages beside `_data`, and the install's
//! owner (the containers' user) must not be able to redirect that.

use std::path::{Path, PathBuf};

use super::docker::{DATABASE, Docker};
use super::runas::RunAs;
use crate::error::{Error, Refusal, Result};
use crate::install::facts::DatabaseMode;
use crate::install::{Install, VOLUME_DATA, preflight};

/// The volume's name in Bitwarden's compose file.
pub const VOLUME: &str = "mssql_data";
/// Where the database container mounts it.
const DATA_MOUNT: &str = "/var/opt/mssql/data";

/// Records in `install` the mount point of the volume holding its
/// database, when `database_docker_volume: true` and the admin did not say
/// the database is backed up elsewhere; refuses (exit 5) when Docker names
/// no volume bwguard can trust and read.
pub fn attach(install: &mut Install, backed_up_elsewhere: bool) -> Result<()> {
    if backed_up_elsewhere
        || install.volume.is_some()
        || preflight::database_mode(install) != DatabaseMode::DockerVolume
    {
        return Ok(());
    }
    install.volume = Some(find(install)?);
    Ok(())
}

/// The mount point of the database's volume, as Docker names it, checked.
pub fn find(install: &Install) -> Result<PathBuf> {
    let who = RunAs::me();
    let docker = Docker::new(&who);
    // Docker names the volume: without it, the admin's other way stands.
    docker.reachable().map_err(|e| {
        let hint = e.hint().unwrap_or_default();
        e.with_hint(format!(
            "{hint} (the database is in a Docker volume, which bwguard finds through Docker); or back the \
             database up your own way and pass --db-backed-up-elsewhere"
        ))
    })?;
    let name = volume_name(&docker, install)?;
    let inspect = docker
        .query(&["volume", "inspect", "--format", "{{.Driver}}|{{.Mountpoint}}", &name])
        .ok_or_else(|| not_found(format!("Docker cannot inspect the volume {name}")))?;
    let (driver, mountpoint) = inspect.trim().split_once('|').unwrap_or(("", ""));
    let mountpoint = PathBuf::from(mountpoint);
    if driver != "local" || !mountpoint.is_absolute() || mountpoint.file_name() != Some(VOLUME_DATA.as_ref())
    {
        return Err(not_found(format!(
            "the volume {name} is of the driver `{driver}` at `{}`; bwguard reads and restores only a local \
             volume's directory (…/volumes/{name}/{VOLUME_DATA})",
            mountpoint.display()
        )));
    }
    check_place(&mountpoint)?;
    Ok(mountpoint)
}

/// The volume mounted at [`DATA_MOUNT`] in the database container, else
/// the one volume compose made for `mssql_data`.
fn volume_name(docker: &Docker, install: &Install) -> Result<String> {
    let format = format!(
        "{{{{range .Mounts}}}}{{{{if eq .Destination \"{DATA_MOUNT}\"}}}}{{{{.Type}}}}|{{{{.Name}}}}|{{{{.Source}}}}{{{{end}}}}{{{{end}}}}"
    );
    if let Some(out) = docker.query(&["container", "inspect", "--format", &format, DATABASE]) {
        let mut f = out.trim().splitn(3, '|');
        return match (f.next(), f.next(), f.next()) {
            (Some("volume"), Some(name), _) if !name.is_empty() => Ok(name.to_string()),
            (Some(kind), _, source) if !kind.is_empty() => Err(not_found(format!(
                "config.yml says database_docker_volume: true, but {DATABASE} mounts {} (a {kind} mount) at \
                 {DATA_MOUNT}, not a volume; the database is where that container keeps it",
                source.unwrap_or("?")
            ))
            .with_hint(format!(
                "apply config.yml first (`{} && {}`), or set database_docker_volume back to what the \
                 containers use",
                install.cd_line(),
                install.script_line("rebuild")
            ))),
            _ => Err(not_found(format!("{DATABASE} mounts nothing at {DATA_MOUNT}"))),
        };
    }
    let label = format!("label=com.docker.compose.volume={VOLUME}");
    let listed = |extra: Option<&str>| -> Vec<String> {
        let mut args = vec!["volume", "ls", "--quiet", "--filter", &label];
        if let Some(e) = extra {
            args.extend(["--filter", e]);
        }
        docker
            .query(&args)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    };
    let all = listed(None);
    // Compose names its project after the compose file's directory,
    // bwdata/docker, unless told otherwise.
    let project = format!("label=com.docker.compose.project={}", compose_project(install));
    match all.len() {
        0 => Err(not_found(format!(
            "{DATABASE} does not exist and Docker has no volume that compose made for {VOLUME}"
        ))
        .with_hint(format!(
            "start Bitwarden once so that Docker creates the volume (`{} && {}`), then run bwguard again",
            install.cd_line(),
            install.script_line("start")
        ))),
        1 => Ok(all[0].clone()),
        _ => match listed(Some(&project)).as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(not_found(format!(
                "{DATABASE} does not exist and Docker has several volumes for {VOLUME}: {}",
                all.join(", ")
            ))
            .with_hint(format!(
                "start Bitwarden (`{} && {}`) so that its database container names its volume, then run \
                 bwguard again",
                install.cd_line(),
                install.script_line("start")
            ))),
        },
    }
}

/// The compose project of the install: the name of its compose file's
/// directory, as compose derives it.
fn compose_project(install: &Install) -> String {
    let dir = install.data.join("docker");
    let name = dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

/// Refuses a mount point this user cannot read, or whose directory (where a
/// rollback stages) another user could change, or that is not a local
/// volume's data directory.
pub fn check_place(mountpoint: &Path) -> Result<()> {
    let volume_dir = mountpoint.parent().unwrap_or(Path::new("/"));
    if !mountpoint.is_absolute() || mountpoint.file_name() != Some(VOLUME_DATA.as_ref()) {
        return Err(not_found(format!("{} is not a local Docker volume's directory", mountpoint.display())));
    }
    if let Err(e) = std::fs::read_dir(mountpoint) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            return Err(Error::refused(
                Refusal::VolumeUnreadable,
                format!(
                    "the database is in the Docker volume at {}, which this user cannot read",
                    mountpoint.display()
                ),
                "Docker keeps volumes where only root can read them: run bwguard as root (sudo), or back the \
                 database up your own way and pass --db-backed-up-elsewhere",
            ));
        }
        return Err(not_found(format!(
            "the volume's directory {} cannot be read: {e}",
            mountpoint.display()
        )));
    }
    if let Some(why) = crate::engine::trust::dir_chain_problem(volume_dir) {
        return Err(not_found(format!(
            "the volume's directory {} cannot be trusted: {why}; another user could redirect what bwguard \
             reads and restores there",
            volume_dir.display()
        )));
    }
    match std::fs::symlink_metadata(mountpoint) {
        Ok(m) if m.is_dir() => Ok(()),
        _ => Err(not_found(format!("{} is not a directory", mountpoint.display()))),
    }
}

fn not_found(message: String) -> Error {
    Error::refused(
        Refusal::VolumeNotFound,
        message,
        "check `docker volume ls` and `docker inspect bitwarden-mssql`; or back the database up your own way \
         and pass --db-backed-up-elsewhere",
    )
}
