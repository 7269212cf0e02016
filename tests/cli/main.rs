//! Integration tests: the real bwguard binary against real directories.

mod support;

mod config_edits;
mod hostile;
mod roundtrip;
