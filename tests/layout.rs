//! The layout the code promises (README, "Layout"): commands are leaves,
//! each command of `bwguard --help` has its own file, only the dispatcher
//! dispatches, and the engine knows nothing of the command line. Read from
//! the sources, so a change that breaks the map fails here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use bwguard::cli::Cli;
use clap::CommandFactory;

/// The commands that share `edit.rs`.
const EDIT: [&str; 3] = ["enable-scim", "disable-scim", "set"];

fn source(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The `.rs` files under `dir` (relative to the crate), recursively.
fn rust_files(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    walkdir::WalkDir::new(root.join(dir))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// The command modules: the files of src/commands/ but mod.rs.
fn command_modules() -> BTreeSet<String> {
    rust_files("src/commands")
        .iter()
        .map(|f| Path::new(f).file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "mod")
        .collect()
}

#[test]
fn help_commands_map_one_to_one_onto_files_under_src_commands() {
    let help: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    let wanted: BTreeSet<String> = help
        .iter()
        .map(|name| if EDIT.contains(&name.as_str()) { "edit".to_string() } else { name.replace('-', "_") })
        .collect();
    assert_eq!(wanted, command_modules(), "commands of --help: {help:?}");
    for name in &help {
        assert!(!EDIT.contains(&name.as_str()) || source("src/commands/edit.rs").contains(name.as_str()));
    }
}

/// The first path segments after every `super::` in `text`: `super::x::y`
/// gives `x`, `super::{a, b::c}` gives `a` and `b`.
fn names_after_super(text: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("super::") {
        let rest = &text[i + "super::".len()..];
        match rest.strip_prefix('{') {
            Some(list) => {
                let list = &list[..list.find('}').unwrap_or(list.len())];
                out.extend(list.split(',').map(|item| ident(item.trim())));
            }
            None => out.push(ident(rest)),
        }
    }
    out
}

#[test]
fn no_command_imports_another() {
    let modules = command_modules();
    for file in rust_files("src/commands") {
        let text = source(&file);
        assert!(!text.contains("crate::commands::"), "{file} reaches into commands/");
        for name in names_after_super(&text) {
            assert!(!modules.contains(&name), "{file} imports the command {name}");
        }
    }
    assert_eq!(names_after_super("use super::{Run, backup::x};\nsuper::list::y"), ["Run", "backup", "list"]);
}

#[test]
fn only_the_dispatcher_dispatches_and_the_demo_is_the_one_caller() {
    for file in rust_files("src") {
        if ["src/lib.rs", "src/main.rs", "src/commands/demo.rs"].contains(&file.as_str()) {
            continue;
        }
        let text = source(&file);
        assert!(!text.contains("crate::run("), "{file} calls the dispatcher");
        assert!(!text.contains("main_with("), "{file} calls the dispatcher");
    }
}

#[test]
fn the_engine_does_not_know_the_command_line() {
    for file in rust_files("src/engine") {
        let text = source(&file);
        assert!(!text.contains("crate::cli"), "{file} imports the clap layer");
        assert!(!text.contains("crate::commands"), "{file} imports a command");
    }
    for dir in ["src/install", "src/schedule", "src/offsite", "src/procedure", "src/report"] {
        for file in rust_files(dir) {
            assert!(!source(&file).contains("crate::commands"), "{file} imports a command");
        }
    }
}
