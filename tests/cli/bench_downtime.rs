//! The downtime benchmark (bench/downtime.sh runs it; not a test: it is
//! ignored by `cargo test`). On the Docker test bed, for each size in
//! `BWGUARD_BENCH_GIB` (default "1"), one generated install runs as the
//! stand-in stack, and one run each measures, with the page cache dropped
//! before:
//!
//! - `backup --pause-db`: the database's downtime as bwguard records it
//!   (from `docker stop` to the engine holding its files again);
//! - the community scripts' way: `./bitwarden.sh stop` (the whole stack),
//!   `tar -czf` of the same files, `./bitwarden.sh start`, timed from the
//!   stop to the database container holding its files again.
//!
//! It prints one line per size with both downtimes, their ratio and
//! bwguard's seconds per GiB.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bwguard::report::BackupReport;
use bwguard::sample::SampleOptions;

use crate::docker_bed::{Owner, Site, text};

/// The default scope, as the reference archives it.
const SCOPE: [&str; 10] = [
    "bwdata/config.yml",
    "bwdata/mssql",
    "bwdata/env",
    "bwdata/docker",
    "bwdata/nginx",
    "bwdata/web",
    "bwdata/core/aspnet-dataprotection",
    "bwdata/identity",
    "bwdata/scripts/run.sh",
    "bitwarden.sh",
];

fn drop_caches() {
    let _ = Command::new("sh").args(["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"]).status();
}

/// Waits until the database container runs and holds its files.
fn until_db_back(site: &Site) {
    let t = Instant::now();
    loop {
        let running = site.containers().get("bitwarden-mssql").is_some_and(|s| s == "running");
        let dir = site.data().join("mssql/data");
        if running && !bwguard::install::live::scan(&dir, Path::new("/proc")).holders.is_empty() {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "the database did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "a benchmark: bench/downtime.sh"]
fn bench_downtime() {
    let sizes = std::env::var("BWGUARD_BENCH_GIB").unwrap_or_else(|_| "1".into());
    println!(
        "\n| install | bytes read | bwguard --pause-db downtime | s per GiB | stop, tar -czf, start | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for gib in sizes.split_whitespace() {
        let gib: f64 = gib.parse().unwrap();
        // About 2.5 times the vault with two nightly backups (as bench/compare.sh).
        let vault_mb = ((gib * 1024.0) / 2.5).round() as u64;
        let sample = SampleOptions { vault_mb, backups: 2, ..Default::default() };
        let Some(site) = Site::build_with(Owner::User, "bwdata", None, &sample) else { return };
        // The first snapshot measures the throughput the next one is
        // estimated by; only the second is timed.
        site.bwguard(&["backup", "--pause-db", "--max-downtime", "1h"]).run().ok();
        drop_caches();
        let r = site.bwguard(&["backup", "--pause-db", "--max-downtime", "1h", "--json"]).run();
        r.ok();
        let report: BackupReport = r.parse();
        let down = report.snapshot.database_pause.and_then(|p| p.downtime_seconds).unwrap();
        let read = report.snapshot.content_size;
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(site.env.snap_dir(&report.snapshot.id).join("manifest.json")).unwrap(),
        )
        .unwrap();
        let reading = manifest["read_seconds"].as_f64().unwrap();
        site.wait_running();

        drop_caches();
        let archive = site.env.dir.path().join("reference.tar.gz");
        let t = Instant::now();
        let out = site.script("stop");
        assert!(out.status.success(), "{}", text(&out));
        let tar = Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&site.env.install)
            .args(SCOPE)
            .status()
            .unwrap();
        assert!(tar.success());
        let out = site.script("start");
        assert!(out.status.success(), "{}", text(&out));
        until_db_back(&site);
        let reference = t.elapsed().as_secs_f64();
        let gib_read = read as f64 / f64::from(1u32 << 30);
        println!(
            "| {gib} GiB | {:.2} GiB | {down:.1} s | {reading:.1} s | {:.1} | {reference:.1} s | {:.2} |",
            gib_read,
            down / gib_read,
            down / reference
        );
        site.wait_running();
    }
}
