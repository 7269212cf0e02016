//! Fuzzes the snapshot reader (SPEC safety rule 4 and integrity checks).
//!
//! The input is used three ways, each of which must end in `Ok` or `Err`:
//! never a panic, never a hang (run with `-timeout`):
//! 1. as `data.tar.gz` bytes, scanned against the fixed manifest of a real
//!    tiny snapshot (`fuzz/snapshot/`), in full and stopping after one entry;
//! 2. as an uncompressed tar, gzipped here and scanned the same way, so that
//!    mutations reach the tar headers and the manifest checks behind gzip;
//! 3. as `manifest.json` bytes; a manifest that parses is then used to scan
//!    the real snapshot's archive (hostile paths, parts, sizes, types).
//!
//! An `Ok` from a full scan of the fixed manifest can only come from entries
//! equal to the manifest's, and that is checked too.

#![no_main]

use std::io::{Read, Write};
use std::sync::LazyLock;

use bwguard::engine::archive::scan_reader;
use bwguard::engine::manifest::{Entry, Manifest};
use bwguard::engine::progress::Progress;
use libfuzzer_sys::fuzz_target;

const MANIFEST: &[u8] = include_bytes!("../snapshot/manifest.json");
const ARCHIVE: &[u8] = include_bytes!("../snapshot/data.tar.gz");

static FIXED: LazyLock<Manifest> =
    LazyLock::new(|| Manifest::parse(MANIFEST).expect("fuzz/snapshot/manifest.json parses"));

/// Scans `archive` against `manifest`; the callback reads part of each entry
/// itself, as restore does, and leaves the rest to the scanner.
fn scan(archive: &[u8], manifest: &Manifest, stop_after: Option<usize>) -> Option<Vec<Entry>> {
    let mut seen = Vec::new();
    let result = scan_reader(archive, manifest, stop_after, &Progress::hidden(0), |entry, content| {
        seen.push(entry.clone());
        let mut head = [0u8; 64];
        let _ = content.read(&mut head);
        Ok(())
    });
    result.ok().map(|digest| {
        let want = stop_after.unwrap_or(manifest.entries.len()).min(manifest.entries.len());
        assert_eq!(want, seen.len(), "an accepted scan handed out other entries than the manifest lists");
        // The raw digest comes only from a scan that read to the end.
        assert_eq!(digest.is_some(), want == manifest.entries.len(), "digest without reading to the end");
        seen
    })
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).expect("writing to a Vec");
    gz.finish().expect("writing to a Vec")
}

fuzz_target!(|data: &[u8]| {
    let fixed = &*FIXED;
    for archive in [data, &gzip(data)] {
        if let Some(seen) = scan(archive, fixed, None) {
            assert_eq!(seen, fixed.entries, "a full scan passed without every manifest entry in order");
        }
        if let Some(seen) = scan(archive, fixed, Some(1)) {
            assert!(seen.len() <= 1 && fixed.entries.starts_with(&seen), "stop_after 1 handed out {seen:?}");
        }
    }
    if let Ok(manifest) = Manifest::parse(data) {
        let _ = scan(ARCHIVE, &manifest, None);
        let _ = scan(ARCHIVE, &manifest, Some(1));
        let _ = manifest.render();
    }
});
