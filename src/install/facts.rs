//! Facts read from a Bitwarden install: pinned versions in `bitwarden.sh`,
//! the database mode, the SCIM flag. Read-only; never fails on a missing or
//! odd file (it reports unknown instead), because status must always work.

use std::collections::BTreeMap;

use crate::engine::manifest::BitwardenInfo;
use crate::engine::scope::SCRIPT;
use crate::install::Install;
use crate::install::config::Config;

/// Where the vault database lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseMode {
    /// Bitwarden's own mssql container with files in `bwdata/mssql/data`.
    BuiltIn,
    /// An external SQL Server: `bwdata/mssql/data` is not the database.
    External,
    /// The built-in container with data in the Docker volume `mssql_data`.
    DockerVolume,
}

impl DatabaseMode {
    /// The name used in manifests and output.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseMode::BuiltIn => "built-in",
            DatabaseMode::External => "external",
            DatabaseMode::DockerVolume => "docker-volume",
        }
    }
}

/// The value of `NAME="…"` in a shell script, as `bitwarden.sh` pins versions.
pub fn shell_var(script: &str, name: &str) -> Option<String> {
    script.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(name)?.strip_prefix('=')?;
        let v = rest.trim().trim_matches('"').trim_matches('\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The database mode by Bitwarden's own test: built-in when the connection
/// string points at `tcp:mssql,1433` and `enable_built_in_ms_sql` is not
/// false; `database_docker_volume: true` moves the data into a volume.
pub fn database_mode(config: Option<&Config>, global_override_env: Option<&str>) -> DatabaseMode {
    let flag = |k: &str| config.and_then(|c| c.bool_value(k));
    if flag("enable_built_in_ms_sql") == Some(false) {
        return DatabaseMode::External;
    }
    if let Some(env) = global_override_env {
        let conn =
            env.lines().find(|l| l.trim_start().starts_with("globalSettings__sqlServer__connectionString="));
        if let Some(conn) = conn
            && !conn.to_ascii_lowercase().replace(' ', "").contains("tcp:mssql,1433")
        {
            return DatabaseMode::External;
        }
    }
    if flag("database_docker_volume") == Some(true) {
        return DatabaseMode::DockerVolume;
    }
    DatabaseMode::BuiltIn
}

/// The image of each service in a docker-compose file (`services.NAME.image`).
pub fn compose_images(compose: &str) -> BTreeMap<String, String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(compose).unwrap_or_default();
    let services = docs.first().map(|d| &d["services"]);
    let Some(services) = services.and_then(|s| s.as_hash()) else {
        return BTreeMap::new();
    };
    services
        .iter()
        .filter_map(|(name, svc)| Some((name.as_str()?.to_string(), svc["image"].as_str()?.to_string())))
        .collect()
}

/// The container of each service in a docker-compose file, in file order:
/// its `container_name` (Bitwarden's files set one for every service), else
/// `bitwarden-SERVICE`.
pub fn compose_containers(compose: &str) -> Vec<String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(compose).unwrap_or_default();
    let services = docs.first().map(|d| &d["services"]);
    let Some(services) = services.and_then(|s| s.as_hash()) else {
        return Vec::new();
    };
    services
        .iter()
        .filter_map(|(name, svc)| {
            let name = name.as_str()?;
            Some(svc["container_name"].as_str().map_or_else(|| format!("bitwarden-{name}"), str::to_string))
        })
        .collect()
}

/// The hosts nginx proxies to (`proxy_pass http://HOST:PORT…`), sorted.
pub fn nginx_upstreams(conf: &str) -> Vec<String> {
    let mut hosts: Vec<String> = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split("proxy_pass").nth(1))
        .filter_map(|rest| {
            let url = rest.trim_start().trim_start_matches("http://").trim_start_matches("https://");
            let host: String =
                url.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
            (!host.is_empty()).then_some(host)
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Whether the files Setup generates agree with each other: every host
/// nginx/default.conf proxies to is a service of docker/docker-compose.yml
/// (else nginx exits `host not found in upstream` and, with `restart:
/// always`, crash-loops). Returns what disagrees.
pub fn generated_files_disagree(install: &Install) -> Vec<String> {
    let (Ok(conf), Ok(compose)) = (
        read_text(&install.data.join("nginx/default.conf")),
        read_text(&install.data.join("docker/docker-compose.yml")),
    ) else {
        return Vec::new();
    };
    let services = compose_images(&compose);
    nginx_upstreams(&conf)
        .into_iter()
        .filter(|h| !services.contains_key(h))
        .map(|h| {
            format!("nginx/default.conf proxies to {h}, which docker/docker-compose.yml has no service for")
        })
        .collect()
}

/// A Bitwarden release version `YYYY.M.P`, comparable.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.trim().trim_start_matches('v').split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// The SQL Server major version Bitwarden's database image ran at release
/// `v`: 2017 before 2022.10.0, 2019 from it, 2022 from 2024.2.2, 2025 from
/// 2026.6.1.
pub fn sql_server_of(v: &str) -> Option<u32> {
    let v = parse_version(v)?;
    Some(match v {
        v if v >= (2026, 6, 1) => 2025,
        v if v >= (2024, 2, 2) => 2022,
        v if v >= (2022, 10, 0) => 2019,
        _ => 2017,
    })
}

/// What a rollback from the running version `now` to a snapshot of version
/// `then` changes, as sentences for the admin; empty when the versions are
/// the same or unknown. `bwguard_starts`: the rollback after a failed
/// procedure, which starts Bitwarden itself (the admin is not told to).
pub fn version_change(
    then: Option<&str>,
    now: Option<&str>,
    restores_data: bool,
    bwguard_starts: bool,
) -> Vec<String> {
    let (Some(then), Some(now)) = (then, now) else { return Vec::new() };
    if then == now {
        return Vec::new();
    }
    let mut said = vec![if restores_data {
        format!(
            "this restores Bitwarden {then} pins (bitwarden.sh, run.sh, docker-compose.yml) over {now}; \
             the database returns to its state before the upgrade"
        )
    } else {
        format!(
            "this snapshot is from Bitwarden {then} and the install runs {now}: restoring only config.yml \
             keeps the {now} database and pins"
        )
    }];
    if let (Some(a), Some(b)) = (sql_server_of(then), sql_server_of(now))
        && a != b
        && restores_data
    {
        let how = if bwguard_starts {
            format!("bwguard starts them with the restored {then} images next; never run")
        } else {
            format!("start them only with the restored {then} images (`./bitwarden.sh start`), never")
        };
        said.push(format!(
            "the database files come from SQL Server {a} (Bitwarden {then}), the running images use SQL Server \
             {b}: {how} `./bitwarden.sh update` first: a newer engine upgrades the files for good"
        ));
    }
    said
}

/// A small text file of the install, read the safe way (no links, no
/// FIFOs, a size cap: the install's owner may have planted any of them).
fn read_text(path: &std::path::Path) -> std::io::Result<String> {
    crate::files::read_small_text(path, crate::files::SMALL_CAP)
}

/// Everything recorded about Bitwarden in a manifest, read from the install.
pub fn read_info(install: &Install) -> BitwardenInfo {
    let script = read_text(&install.dir.join(SCRIPT)).unwrap_or_default();
    let config = crate::files::read_small(&install.config_path(), crate::files::SMALL_CAP)
        .ok()
        .and_then(|b| Config::parse(&b).ok());
    let env = read_text(&install.data.join("env/global.override.env")).ok();
    BitwardenInfo {
        core_version: shell_var(&script, "COREVERSION"),
        web_version: shell_var(&script, "WEBVERSION"),
        key_connector_version: shell_var(&script, "KEYCONNECTORVERSION"),
        enable_scim: config.as_ref().and_then(|c| c.bool_value("enable_scim")),
        database: database_mode(config.as_ref(), env.as_deref()).name().to_string(),
        images: compose_images(
            &read_text(&install.data.join("docker/docker-compose.yml")).unwrap_or_default(),
        ),
        installation_id: env.as_deref().and_then(installation_id),
    }
}

/// `globalSettings__installation__id` of a `global.override.env`: the id
/// Bitwarden's installer wrote, stable for the install's life.
pub fn installation_id(global_override_env: &str) -> Option<String> {
    global_override_env
        .lines()
        .find_map(|l| l.trim().strip_prefix("globalSettings__installation__id="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pinned_versions() {
        let s = "#!/usr/bin/env bash\nset -e\nCOREVERSION=\"2026.8.0\"\nWEBVERSION=\"2026.8.1\"\n";
        assert_eq!(shell_var(s, "COREVERSION").as_deref(), Some("2026.8.0"));
        assert_eq!(shell_var(s, "WEBVERSION").as_deref(), Some("2026.8.1"));
        assert_eq!(shell_var(s, "KEYCONNECTORVERSION"), None);
    }

    #[test]
    fn versions_and_sql_server_generations() {
        assert_eq!(parse_version("2026.8.0"), Some((2026, 8, 0)));
        assert_eq!(parse_version("2024.2"), Some((2024, 2, 0)));
        assert_eq!(parse_version("latest"), None);
        for (v, sql) in [
            ("2022.9.9", 2017),
            ("2022.10.0", 2019),
            ("2024.2.1", 2019),
            ("2024.2.2", 2022),
            ("2026.6.0", 2022),
            ("2026.6.1", 2025),
            ("2026.8.0", 2025),
        ] {
            assert_eq!(sql_server_of(v), Some(sql), "{v}");
        }
        assert!(version_change(Some("2026.8.0"), Some("2026.8.0"), true, false).is_empty());
        let said = version_change(Some("2024.1.0"), Some("2026.8.0"), true, false);
        assert!(said[0].contains("restores Bitwarden 2024.1.0 pins"), "{said:?}");
        assert!(said[1].contains("SQL Server 2019") && said[1].contains("SQL Server 2025"), "{said:?}");
        assert!(
            said[1].contains("(`./bitwarden.sh start`), never `./bitwarden.sh update` first"),
            "{said:?}"
        );
        // After a failed procedure bwguard starts Bitwarden itself: the
        // admin is not told to.
        let auto = version_change(Some("2024.1.0"), Some("2026.8.0"), true, true);
        assert!(
            !auto[1].contains("bitwarden.sh start") && auto[1].contains("bwguard starts them"),
            "{auto:?}"
        );
        assert_eq!(version_change(Some("2026.6.0"), Some("2026.6.0"), true, false).len(), 0);
        assert_eq!(version_change(Some("2026.7.0"), Some("2026.8.0"), true, false).len(), 1);
    }

    #[test]
    fn reads_images_from_docker_compose() {
        let compose = "version: '3'\nservices:\n  mssql:\n    image: ghcr.io/bitwarden/mssql:2026.8.0\n  api:\n    image: ghcr.io/bitwarden/api:2026.8.0\n  nginx:\n    build: .\n";
        let images = compose_images(compose);
        assert_eq!(images.len(), 2);
        assert_eq!(images["mssql"], "ghcr.io/bitwarden/mssql:2026.8.0");
        assert!(compose_images("not: [yaml").is_empty());
    }

    #[test]
    fn database_mode_follows_bitwardens_test() {
        let builtin = "globalSettings__sqlServer__connectionString=\"Data Source=tcp:mssql,1433;Initial Catalog=vault\"\n";
        let external = "globalSettings__sqlServer__connectionString=\"Data Source=db.example.com;Initial Catalog=vault\"\n";
        assert_eq!(database_mode(None, Some(builtin)), DatabaseMode::BuiltIn);
        assert_eq!(database_mode(None, Some(external)), DatabaseMode::External);
        let vol = Config::parse(b"database_docker_volume: true\n").unwrap();
        assert_eq!(database_mode(Some(&vol), Some(builtin)), DatabaseMode::DockerVolume);
        let off = Config::parse(b"enable_built_in_ms_sql: false\n").unwrap();
        assert_eq!(database_mode(Some(&off), Some(builtin)), DatabaseMode::External);
    }
}
