//! Version-aware rollback after a bad upgrade: every manifest records the
//! pinned versions and image tags, and a rollback across versions says what
//! it changes, warns when the database files predate a SQL Server major
//! version change, and says how to bring the old version up.

use std::fs;

use crate::support::TestEnv;

/// Pins `version` in bitwarden.sh and the compose file, as an update does.
fn pin(env: &TestEnv, version: &str) {
    let script = env.install.join("bitwarden.sh");
    let text = fs::read_to_string(&script).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("COREVERSION=") {
                format!("COREVERSION=\"{version}\"\n")
            } else if l.starts_with("WEBVERSION=") {
                format!("WEBVERSION=\"{version}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&script, text).unwrap();
    let compose = format!(
        "services:\n  mssql:\n    image: ghcr.io/bitwarden/mssql:{version}\n  api:\n    image: ghcr.io/bitwarden/api:{version}\n"
    );
    fs::write(env.bwdata().join("docker/docker-compose.yml"), compose).unwrap();
}

#[test]
fn rollback_across_versions_says_what_changes_and_warns_about_sql_server() {
    let env = TestEnv::new();
    pin(&env, "2024.1.0");
    let id = env.backup();
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(env.snap_dir(&id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["bitwarden"]["core_version"], "2024.1.0");
    assert_eq!(m["bitwarden"]["images"]["mssql"], "ghcr.io/bitwarden/mssql:2024.1.0");
    let list = env.run(&["list", "--json"]).json();
    assert_eq!(list["snapshots"][0]["bitwarden"]["images"]["api"], "ghcr.io/bitwarden/api:2024.1.0");
    assert!(env.run(&["list"]).stdout.contains("2024.1.0"));

    // A bad upgrade: new pins, a migrated database.
    pin(&env, "2026.8.0");
    fs::write(env.bwdata().join("mssql/data/vault.mdf"), b"migrated by 2026.8.0").unwrap();
    let status = env.run(&["status", "--json"]).json();
    assert_eq!(status["bitwarden"]["core_version"], "2026.8.0");

    let dry = env.run(&["rollback", &id, "--dry-run", "--json"]);
    dry.ok();
    let said: Vec<String> = dry.json()["version_change"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(said[0].contains("restores Bitwarden 2024.1.0 pins") && said[0].contains("2026.8.0"), "{said:?}");
    assert!(said[1].contains("SQL Server 2019") && said[1].contains("SQL Server 2025"), "{said:?}");

    // Config only: the database and pins stay, and it says so.
    let only = env.run(&["rollback", &id, "--only", "config", "--dry-run", "--json"]).json();
    let only = only["version_change"].to_string();
    assert!(only.contains("keeps the 2026.8.0 database") && !only.contains("SQL Server"), "{only}");

    let r = env.run(&["rollback", &id, "--yes"]);
    r.ok().says("SQL Server 2019").says("./bitwarden.sh start").says("Do not run `./bitwarden.sh update`");
    let status = env.run(&["status", "--json"]).json();
    assert_eq!(status["bitwarden"]["core_version"], "2024.1.0");
    assert_eq!(status["bitwarden"]["images"]["mssql"], "ghcr.io/bitwarden/mssql:2024.1.0");
}

#[test]
fn rollback_within_one_version_says_nothing_about_versions() {
    let env = TestEnv::new();
    let id = env.backup();
    let r = env.run(&["rollback", &id, "--yes", "--json"]);
    r.ok();
    assert_eq!(r.json()["version_change"], serde_json::json!([]));
    assert!(!r.stderr.contains("pins"));
}
