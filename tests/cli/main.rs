//! Integration tests: the real bwguard binary against real directories.

#![allow(clippy::unwrap_used)]

mod support;

mod bench_downtime;
mod clock;
mod config_edits;
mod crash;
mod docker;
mod docker_bed;
mod documents;
mod everyday;
mod faults;
mod filesystems;
mod garage;
mod helm;
mod hostile;
mod live;
mod offsite;
mod owner;
mod pause;
mod prune;
mod roundtrip;
mod schedule;
mod versions;
