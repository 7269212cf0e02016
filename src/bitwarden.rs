//! Facts read from a Bitwarden install: pinned versions in `bitwarden.sh`,
//! the database mode, the SCIM flag. Read-only; never fails on a missing or
//! odd file (it reports unknown instead), because status must always work.

use std::fs;

use crate::config::Config;
use crate::context::Install;
use crate::manifest::BitwardenInfo;
use crate::scope::SCRIPT;

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

/// Everything recorded about Bitwarden in a manifest, read from the install.
pub fn read_info(install: &Install) -> BitwardenInfo {
    let script = fs::read_to_string(install.dir.join(SCRIPT)).unwrap_or_default();
    let config = fs::read(install.config_path()).ok().and_then(|b| Config::parse(&b).ok());
    let env = fs::read_to_string(install.data.join("env/global.override.env")).ok();
    BitwardenInfo {
        core_version: shell_var(&script, "COREVERSION"),
        web_version: shell_var(&script, "WEBVERSION"),
        enable_scim: config.as_ref().and_then(|c| c.bool_value("enable_scim")),
        database: database_mode(config.as_ref(), env.as_deref()).name().to_string(),
    }
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
