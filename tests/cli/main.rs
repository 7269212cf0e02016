//! Integration tests: the real bwguard binary against real directories.

#![allow(clippy::unwrap_used)]

mod support;

mod config_edits;
mod hostile;
mod roundtrip;
