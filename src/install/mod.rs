//! The Bitwarden install: config.yml, Helm values, facts read from the
//! install, the live-database scan and the checks before a change.

pub mod config;
pub mod facts;
pub mod helm;
pub mod live;
pub mod preflight;
