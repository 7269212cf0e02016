//! Room first (safety rule 8): before anything is written, every
//! filesystem a run writes to must have room for all that run puts on it;
//! and the bounds of what a snapshot or a restore takes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Refusal, Result};
use crate::files;
use crate::report::human::human_size;

/// One need for space: `bytes` on the filesystem holding `path`.
#[derive(Debug, Clone)]
pub struct Need {
    /// Where the bytes go (an existing directory on that filesystem).
    pub path: PathBuf,
    /// How many.
    pub bytes: u64,
    /// What for, for the message.
    pub what: String,
}

/// Refuses unless every filesystem has room for all the needs on it.
pub fn room(needs: &[Need]) -> Result<()> {
    let mut by_dev: BTreeMap<u64, (u64, Vec<&Need>)> = BTreeMap::new();
    for n in needs {
        let dev = files::device_of(&n.path)?;
        let e = by_dev.entry(dev).or_default();
        e.0 = e.0.saturating_add(n.bytes);
        e.1.push(n);
    }
    for (total, list) in by_dev.values() {
        let free = files::free_space(&list[0].path)?;
        if *total > free {
            let what: Vec<String> =
                list.iter().map(|n| format!("{} for {}", human_size(n.bytes), n.what)).collect();
            return Err(Error::refused(
                Refusal::NoRoom,
                format!(
                    "not enough free space on the filesystem holding {}: {} needed ({}), {} free",
                    list[0].path.display(),
                    human_size(*total),
                    what.join(", "),
                    human_size(free)
                ),
                "free some space, or use a store on another disk with --store PATH",
            ));
        }
    }
    Ok(())
}

/// A safe upper bound of a snapshot's size for `content` bytes in `entries`
/// entries whose paths add up to `path_bytes`: tar adds a 512-byte header
/// (two with a long name) and pads each file to 512 bytes; deflate never
/// grows data by more than 5 bytes per 16 KiB stored block, plus gzip
/// member framing; `SHA256SUMS` and `manifest.json` repeat every path with
/// a digest and a few hundred bytes of fields; each file of the snapshot
/// may take a block more than its bytes.
pub fn archive_bound(content: u64, entries: u64, path_bytes: u64) -> u64 {
    let tar = content.saturating_add(entries.saturating_mul(1536));
    let deflate = content / 16384 * 5 + content / (256 << 10) * 32;
    let metadata = entries.saturating_mul(512).saturating_add(path_bytes.saturating_mul(3));
    tar.saturating_add(deflate).saturating_add(metadata).saturating_add(1 << 20)
}

/// [`archive_bound`] for the objects a snapshot will hold.
pub fn snapshot_bound(sources: &[crate::engine::archive::Source]) -> u64 {
    let content =
        sources.iter().filter(|s| s.meta.is_file()).fold(0u64, |a, s| a.saturating_add(s.meta.len()));
    let paths = sources.iter().map(|s| s.rel.len() as u64).sum();
    archive_bound(content, sources.len() as u64, paths)
}

/// Bytes a file of `size` takes on disk at most: rounded up to 4 KiB blocks.
pub fn on_disk(size: u64) -> u64 {
    size.saturating_add(4095) & !4095
}

/// The nearest existing directory at or above `p`.
pub fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors().find(|a| a.is_dir()).unwrap_or(Path::new("/")).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_covers_incompressible_data() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        std::io::Write::write_all(&mut gz, &data).unwrap();
        let out = gz.finish().unwrap();
        assert!((out.len() as u64) < archive_bound(data.len() as u64, 1, 10));
    }

    #[test]
    fn room_refuses_more_than_the_disk_has() {
        let t = tempfile::tempdir().unwrap();
        let free = files::free_space(t.path()).unwrap();
        let ok = Need { path: t.path().into(), bytes: 1, what: "a test".into() };
        room(std::slice::from_ref(&ok)).unwrap();
        let big = Need { bytes: free / 2 + 1, ..ok };
        let e = room(&[big.clone(), big]).unwrap_err();
        assert!(e.to_string().contains("not enough free space"), "{e}");
    }
}
