//! Helm installs: `enable-scim --helm-values FILE` sets
//! `component.scim.enabled` in the values file, keeping its comments and
//! layout, after snapshotting the file; `rollback --helm-values` restores it.

use std::fs;

use crate::support::{Bwguard, Run};

const VALUES: &str = "# Bitwarden self-host values\ngeneral:\n  domain: vault.example.com # public name\ncomponent:\n  # SCIM provisioning\n  scim:\n    enabled: false   # until licensed\n    resources: {}\n";

fn run(dir: &std::path::Path, args: &[&str]) -> Run {
    Bwguard::new(args).current_dir(dir).run()
}

#[test]
fn values_file_is_edited_in_one_place_after_a_snapshot_and_rolled_back() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("my-values.yaml");
    fs::write(&file, VALUES).unwrap();
    let f = file.to_str().unwrap();

    // The cluster's database is not bwguard's to back up: it must be said.
    run(t.path(), &["enable-scim", "--helm-values", f]).code(5).says("--db-backed-up-elsewhere");
    assert_eq!(fs::read_to_string(&file).unwrap(), VALUES);

    let r = run(t.path(), &["enable-scim", "--helm-values", f, "--db-backed-up-elsewhere", "--json"]);
    r.ok();
    assert_eq!(fs::read_to_string(&file).unwrap(), VALUES.replace("enabled: false", "enabled: true"));
    let doc = r.json();
    let id = doc["snapshot"].as_str().unwrap().to_string();
    assert!(doc["next_steps"][0].as_str().unwrap().starts_with("helm upgrade"));
    assert!(t.path().join("bwguard-snapshots").join(&id).join("manifest.json").exists());

    // Already enabled: nothing to do.
    run(t.path(), &["enable-scim", "--helm-values", f, "--db-backed-up-elsewhere"])
        .ok()
        .says("nothing to do");

    run(t.path(), &["rollback", &id, "--helm-values", f, "--yes"]).ok();
    assert_eq!(fs::read_to_string(&file).unwrap(), VALUES);
}

#[test]
fn flow_style_and_missing_maps() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("values.yaml");
    let f = file.to_str().unwrap();
    for (before, after) in [
        ("component: {scim: {enabled: false}}\n", "component: {scim: {enabled: true}}\n"),
        ("general:\n  domain: x\n", "general:\n  domain: x\ncomponent:\n  scim:\n    enabled: true\n"),
        (
            "component:\n  admin:\n    enabled: true\n",
            "component:\n  scim:\n    enabled: true\n  admin:\n    enabled: true\n",
        ),
    ] {
        fs::write(&file, before).unwrap();
        run(t.path(), &["enable-scim", "--helm-values", f, "--db-backed-up-elsewhere"]).ok();
        assert_eq!(fs::read_to_string(&file).unwrap(), after);
    }
    // A flow map without scim cannot be extended safely: refused, unchanged.
    fs::write(&file, "component: {admin: {enabled: true}}\n").unwrap();
    run(t.path(), &["enable-scim", "--helm-values", f, "--db-backed-up-elsewhere"]).code(5).says("by hand");
    assert_eq!(fs::read_to_string(&file).unwrap(), "component: {admin: {enabled: true}}\n");
}
