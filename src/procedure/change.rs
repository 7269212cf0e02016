//! A config.yml change the way Bitwarden documents it (the SCIM procedure
//! for `enable_scim`): stop, snapshot, `update`, the one-line edit,
//! `rebuild`, `update`, and a check that Setup kept the value and, for
//! SCIM, wired the scim service.

use std::fs;
use std::time::Instant;

use super::{Action, Plan, Step, now_rfc3339, own_step};
use crate::error::{Error, Refusal, Result};
use crate::files::{self, Ownership};
use crate::install::Install;
use crate::install::config::{self, Config, ConfigError, Edit};
use crate::install::facts::compose_images;

/// The steps, as `--dry-run` shows them.
pub const STEPS: [&str; 8] = [
    "preflight: config.yml, database mode, free space, lock, generated-config flags, bitwarden.sh",
    "./bitwarden.sh stop (so the snapshot is cold)",
    "snapshot and read back",
    "./bitwarden.sh update (adds the key on old installs)",
    "set the key in config.yml (one line, checked)",
    "./bitwarden.sh rebuild",
    "./bitwarden.sh update",
    "check: config.yml still holds the value; for SCIM, docker-compose.yml has a scim service",
];

/// Checks that `key: value` can go through the procedure before anything
/// runs. Returns the value the key already has when there is nothing to
/// do. A missing key is fine: `update` adds it, and the edit appends it.
pub fn preflight(install: &Install, key: &str, value: &str, add_missing: bool) -> Result<Option<String>> {
    let path = install.config_path();
    let original = install.read_config()?;
    match config::plan_set(&original, key, value, add_missing) {
        Ok(Edit::Unchanged { value, .. }) => return Ok(Some(value)),
        Ok(Edit::Changed { .. }) | Err(ConfigError::MissingKey { .. }) => {}
        Err(e) => return Err(Error::Config { path, source: e }),
    }
    if is_scim(key, value)
        && let Ok(c) = Config::parse(&original)
    {
        for flag in ["generate_compose_config", "generate_nginx_config"] {
            if c.bool_value(flag) == Some(false) {
                return Err(Error::refused(
                    Refusal::GeneratedConfigOff,
                    format!("{flag} is false: Setup will not add the scim container or its route"),
                    format!(
                        "set it with `bwguard set {flag} true`, or wire SCIM into your own files by hand"
                    ),
                ));
            }
        }
    }
    Ok(None)
}

/// The plan for `key: value`, recorded in the snapshot as `reason`.
pub fn plan<'a>(key: &'a str, value: &'a str, reason: &str) -> Plan<'a> {
    Plan {
        change: format!("{key}: {value}"),
        reason: reason.to_string(),
        actions: vec![
            Action::Script("update"),
            // `update` prints "Update not needed" and adds nothing when the
            // images are current, so a missing key is appended here; the
            // rebuild that follows re-writes the file in Setup's own form.
            Action::Edit { key, value },
            Action::Script("rebuild"),
            Action::Script("update"),
        ],
        described: &STEPS,
        check: Box::new(move |install: &Install| check_result(install, key, value)),
    }
}

fn is_scim(key: &str, value: &str) -> bool {
    key == "enable_scim" && value == "true"
}

/// The one-line edit, planned on the file as `update` left it (a missing
/// key is appended).
pub fn edit_step(install: &Install, key: &str, value: &str) -> Step {
    let (t, started) = (Instant::now(), now_rfc3339());
    let path = install.config_path();
    let result = (|| -> std::result::Result<String, String> {
        let bytes = install.read_config().map_err(|e| e.to_string())?;
        match config::plan_set(&bytes, key, value, true).map_err(|e| format!("{e}"))? {
            Edit::Unchanged { value, .. } => Ok(format!("{key} already {value}")),
            Edit::Changed { old, new, line, bytes: new_bytes, .. } => {
                let meta = fs::metadata(&path).map_err(|e| e.to_string())?;
                files::write_atomic(&path, &new_bytes, Ownership::of(&meta)).map_err(|e| e.to_string())?;
                Ok(format!("line {line}: {key}: {} -> {new}", old.as_deref().unwrap_or("(absent)")))
            }
        }
    })();
    own_step(&format!("set {key}: {value}"), t, started, result)
}

/// After Setup re-wrote everything: the value is still there, and for SCIM
/// the compose file has the scim service.
fn check_result(install: &Install, key: &str, value: &str) -> std::result::Result<String, String> {
    let bytes = install.read_config().map_err(|e| e.to_string())?;
    match config::plan_set(&bytes, key, value, false) {
        Ok(Edit::Unchanged { .. }) => {}
        _ => return Err(format!("config.yml no longer says {key}: {value} after Setup re-wrote it")),
    }
    let scim = is_scim(key, value);
    if scim {
        let compose = install.data.join("docker/docker-compose.yml");
        let text = files::read_small_text(&compose, files::SMALL_CAP)
            .map_err(|e| format!("{}: {e}", compose.display()))?;
        if !compose_images(&text).contains_key("scim") {
            return Err(format!("{} has no scim service", compose.display()));
        }
    }
    Ok(format!("config.yml says {key}: {value}{}", if scim { "; docker-compose.yml has scim" } else { "" }))
}
