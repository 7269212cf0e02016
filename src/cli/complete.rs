//! Dynamic shell completion (clap_complete's engine): the script that
//! `bwguard completions SHELL` prints asks bwguard itself, so snapshot ids,
//! config.yml keys and remote names come from the install and store that
//! the command line being typed names (`--bwdata`, `--store`, their
//! environment variables, else the install found from the current
//! directory). Completing reads only; anything unreadable completes to
//! nothing.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;

use crate::engine::store::{LATEST, Store};
use crate::install::Install;

/// The environment variable the completion scripts set when they ask
/// bwguard for completions (its own name: a `COMPLETE` left in a cron
/// environment must not turn a backup into a completion).
pub const VAR: &str = "BWGUARD_COMPLETE";

/// Answers the shell when it asks for completions (and exits); otherwise
/// returns at once.
pub fn answer_shell() {
    clap_complete::CompleteEnv::with_factory(super::command).var(VAR).completer("bwguard").complete();
}

/// The registration script for `shell`, which asks `bwguard` (on PATH).
pub fn script(shell: &str) -> std::io::Result<Vec<u8>> {
    let shells = clap_complete::env::Shells::builtins();
    let Some(s) = shells.completer(shell) else {
        return Err(std::io::Error::other(format!("no completion for the shell {shell}")));
    };
    let mut buf = Vec::new();
    s.write_registration(VAR, "bwguard", "bwguard", "bwguard", &mut buf)?;
    if shell == "zsh" {
        // Autoloaded from fpath as `_bwguard`, the file runs at the first
        // Tab: complete that one too, not only register for the next.
        buf.extend_from_slice(
            b"if [ \"${funcstack[1]}\" = \"_bwguard\" ]; then\n    _clap_dynamic_completer_bwguard \"$@\"\nfi\n",
        );
    }
    Ok(buf)
}

/// The value of `--NAME` on the command line being completed (after the
/// `--` the scripts put before it), else of the environment variable `env`.
fn flag(name: &str, env: &str) -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    let line = args.iter().position(|a| a == "--").map_or(&args[..0], |i| &args[i + 1..]);
    let long = format!("--{name}");
    let given = line.iter().enumerate().find_map(|(i, a)| {
        if *a == long {
            line.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{long}=")).map(str::to_string)
        }
    });
    given.or_else(|| std::env::var(env).ok()).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The install the command line being completed names.
fn install() -> Option<Install> {
    let cwd = std::env::current_dir().ok()?;
    let (bwdata, store) = (flag("bwdata", "BWGUARD_BWDATA"), flag("store", "BWGUARD_STORE"));
    Install::resolve(bwdata.as_deref(), store.as_deref(), &cwd).ok()
}

fn matching(current: &OsStr, words: impl IntoIterator<Item = (String, String)>) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    words
        .into_iter()
        .filter(|(w, _)| w.starts_with(&*prefix))
        .map(|(w, help)| CompletionCandidate::new(w).help(Some(help.into())))
        .collect()
}

/// Snapshot ids of the store, newest first, with `latest`.
pub fn snapshot_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(install) = install() else { return Vec::new() };
    let listed = Store::new(&install.store).list().unwrap_or_default();
    let ids = listed.into_iter().map(|l| {
        let about = match &l.manifest {
            Ok(m) => format!("{} ({})", crate::report::human::one_line(&m.reason), m.consistency),
            Err(_) => "damaged".into(),
        };
        (l.id, about)
    });
    let latest = (LATEST.to_string(), "the newest snapshot".to_string());
    matching(current, std::iter::once(latest).chain(ids))
}

/// The top-level keys of the install's config.yml.
pub fn config_keys(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(install) = install() else { return Vec::new() };
    let text =
        crate::files::read_small_text(&install.config_path(), crate::files::SMALL_CAP).unwrap_or_default();
    matching(current, top_level_keys(&text).into_iter().map(|k| (k, "a key of config.yml".to_string())))
}

/// The remotes set up in the store.
pub fn remote_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(install) = install() else { return Vec::new() };
    let remotes = crate::offsite::remote::Remotes::load(&install.store).unwrap_or_default();
    let names = remotes.remotes.into_iter().map(|(name, r)| (name, r.url.clone()));
    matching(current, names)
}

/// The keys at the top level of a YAML mapping, in order: lines that start
/// with a key and a colon.
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty() && !k.contains(' '))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_keys_of_config_yml() {
        let text = "# a comment\nurl: https://vault\nenable_scim: false\nnested:\n  inner: 1\n- item\n";
        assert_eq!(top_level_keys(text), ["url", "enable_scim", "nested"]);
    }
}
