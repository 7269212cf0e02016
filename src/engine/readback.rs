//! Reading the archive back from the device while it is being written
//! (safety rule 1), so that the check does not start only after the last
//! byte.
//!
//! The writer hands over each piece once it is in the file, in file order.
//! A thread hashes the pieces (the archive's SHA-256), and as soon as a
//! whole chunk of the file has been written it reads that chunk from the
//! device with `O_DIRECT` and compares it byte for byte with the pieces. A
//! direct read first writes out the range's dirty cached pages and then
//! reads the device, so what is compared is what the disk holds, whatever
//! the cache still has (see [`crate::engine::device`]).
//!
//! Invariants:
//! - Every byte handed over is hashed exactly once, in order.
//! - [`Outcome::from_device`] is true only if every byte was compared with
//!   what the device returned for its offset, and the file ends there.
//! - Where the filesystem refuses direct reads, or might serve them from
//!   the page cache, the pieces are only hashed, and the caller reads the
//!   file back after flushing it and dropping it from the cache.
//! - Memory is bounded: at most one chunk and `QUEUE` pieces wait.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::engine::archive::Digest256;
use crate::engine::device::{ALIGN, Buffer, CHUNK, open_direct_only};
use crate::engine::manifest::hex;

/// Pieces in flight between the writer and the read-back thread.
const QUEUE: usize = 2;

/// What the read-back found: the digest of everything written, and whether
/// all of it was compared with the device.
#[derive(Debug)]
pub struct Outcome {
    /// Size and SHA-256 of the bytes written.
    pub digest: Digest256,
    /// Every byte was read back from the device and matched.
    pub from_device: bool,
}

/// The disk holds other bytes than were written: the error inside the
/// `io::Error` a failed read-back returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The byte at this offset differs.
    Differs(u64),
    /// The file ends at this offset, before what was written.
    EndsEarly(u64),
    /// The file goes on past this offset, where what was written ends.
    GoesOn(u64),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Differs(at) => {
                write!(f, "read back from disk, byte {at} differs from what was written")
            }
            Mismatch::EndsEarly(at) => {
                write!(f, "read back from disk, it ends at byte {at}, before what was written")
            }
            Mismatch::GoesOn(at) => {
                write!(f, "read back from disk, it goes on past byte {at}, where what was written ends")
            }
        }
    }
}

impl std::error::Error for Mismatch {}

/// Whether `e` is a read-back that found other bytes on disk.
pub fn is_mismatch(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Mismatch>())
}

/// The read-back of one file, fed by its writer.
pub struct ReadBack {
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    thread: Option<JoinHandle<io::Result<Outcome>>>,
}

impl ReadBack {
    /// Reads back `path`, which the writer has created and appends to.
    /// Where direct reads of it cannot be opened, or might be served from
    /// the page cache ([`direct_reads_reach_the_disk`]), the pieces are only
    /// hashed (`from_device` false) and the caller reads the file back after
    /// flushing it and dropping it from the cache.
    pub fn start(path: &Path) -> Self {
        Self::spawn(open_direct_only(path).ok().filter(direct_reads_reach_the_disk))
    }

    /// [`Self::start`] without the filesystem rule, for tests of the
    /// comparison on whatever filesystem they run.
    #[cfg(test)]
    pub(crate) fn start_direct(path: &Path) -> Self {
        Self::spawn(open_direct_only(path).ok())
    }

    /// Only hashes what is written.
    pub fn hash_only() -> Self {
        Self::spawn(None)
    }

    fn spawn(file: Option<File>) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::spawn(move || run(file, &rx));
        ReadBack { tx: Some(tx), thread: Some(thread) }
    }

    /// Hands over `piece`, which is now in the file after what was handed
    /// over before. False if the read-back has stopped: [`Self::finish`]
    /// says why.
    pub fn wrote(&self, piece: Arc<Vec<u8>>) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(piece).is_ok())
    }

    /// Reads back the rest, once the writer has written everything.
    pub fn finish(mut self) -> io::Result<Outcome> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            _ => Err(io::Error::other("the read-back thread panicked")),
        }
    }
}

/// Whether a direct read of `file` surely comes from the device, not from
/// the page cache, while what it reads may still be cached. Some
/// filesystems accept `O_DIRECT` and quietly read through the cache: ext4
/// for data journaling (the `data=journal` mount option or `chattr +j`),
/// encrypted and verity files; btrfs for compressed extents; ZFS before
/// 2.3 always. Trusted: XFS, and ext4 without those.
pub fn direct_reads_reach_the_disk(file: &File) -> bool {
    let Ok(fs) = rustix::fs::fstatfs(file) else { return false };
    let flags = rustix::fs::ioctl_getflags(file).map_or(0, |f| f.bits());
    let options = super_options(file).unwrap_or_default();
    trusted(fs.f_type as u64, flags, &options)
}

/// The rule of [`direct_reads_reach_the_disk`] on the filesystem's magic
/// number, the file's inode flags and its mount's superblock options.
fn trusted(fs_type: u64, inode_flags: u32, super_options: &str) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    // FS_JOURNAL_DATA_FL, FS_ENCRYPT_FL, FS_VERITY_FL
    const BUFFERED: u32 = 0x4000 | 0x800 | 0x0010_0000;
    match fs_type {
        XFS => true,
        EXT4 => inode_flags & BUFFERED == 0 && !super_options.split(',').any(|o| o == "data=journal"),
        _ => false,
    }
}

/// The superblock options of the mount that holds `file`, from
/// `/proc/self/mountinfo` (the field after the source, past " - ").
fn super_options(file: &File) -> Option<String> {
    let st = rustix::fs::fstat(file).ok()?;
    let dev = format!("{}:{}", rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find(|l| l.split(' ').nth(2) == Some(dev.as_str())).and_then(|l| {
        let (_, after) = l.split_once(" - ")?;
        after.split(' ').nth(2).map(str::to_string)
    })
}

fn run(file: Option<File>, rx: &Receiver<Arc<Vec<u8>>>) -> io::Result<Outcome> {
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut device = file.map(Device::new);
    for piece in rx {
        hasher.update(piece.as_slice());
        written += piece.len() as u64;
        if let Some(d) = &mut device {
            d.pending.push_back(piece);
            if !d.check_up_to(written, CHUNK as u64)? {
                device = None;
            }
        }
    }
    // The writer has finished: the file ends at `written`.
    let from_device = match &mut device {
        Some(d) => d.check_up_to(written, 1)? && d.ends_at(written)?,
        None => false,
    };
    Ok(Outcome { digest: Digest256 { size: written, sha256: hex(&hasher.finalize()) }, from_device })
}

/// The file opened for direct reads, and what was written but not yet
/// compared.
struct Device {
    file: File,
    buf: Buffer,
    /// Bytes from the start of the file compared so far.
    checked: u64,
    /// Pieces not yet wholly compared; the first from `skip`.
    pending: VecDeque<Arc<Vec<u8>>>,
    skip: usize,
}

impl Device {
    fn new(file: File) -> Self {
        Device { file, buf: Buffer::new(), checked: 0, pending: VecDeque::new(), skip: 0 }
    }

    /// Compares chunks while at least `min` written bytes wait (the last
    /// chunk may be short). False if direct reads are refused here.
    fn check_up_to(&mut self, written: u64, min: u64) -> io::Result<bool> {
        while written - self.checked >= min {
            let n = (written - self.checked).min(CHUNK as u64) as usize;
            if !self.check(n)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the next `n` bytes from the device and compares them with the
    /// pending pieces.
    fn check(&mut self, n: usize) -> io::Result<bool> {
        let at = self.checked;
        let window = &mut self.buf.window()[..n.next_multiple_of(ALIGN)];
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut window[got..], at + got as u64) {
                Ok(0) => return Err(mismatch(Mismatch::EndsEarly(at + got as u64))),
                // Short of what was written: at the file's end, or a short
                // read that leaves the next offset unaligned for direct reads.
                Ok(k) if got + k < n && (got + k) % ALIGN != 0 => {
                    let end = at + (got + k) as u64;
                    if self.file.metadata()?.len() == end {
                        return Err(mismatch(Mismatch::EndsEarly(end)));
                    }
                    return Ok(false);
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        let mut disk = &window[..n];
        let mut offset = at;
        while !disk.is_empty() {
            let Some(piece) = self.pending.front() else {
                return Err(io::Error::other("the read-back ran ahead of the writer"));
            };
            let ours = &piece[self.skip..];
            let k = ours.len().min(disk.len());
            if ours[..k] != disk[..k] {
                let first = ours.iter().zip(disk).position(|(a, b)| a != b).unwrap_or(0);
                return Err(mismatch(Mismatch::Differs(offset + first as u64)));
            }
            disk = &disk[k..];
            offset += k as u64;
            self.skip += k;
            if self.skip == piece.len() {
                self.pending.pop_front();
                self.skip = 0;
            }
        }
        self.checked += n as u64;
        Ok(true)
    }

    /// Whether the file ends at `size`, as the device tells it: nothing
    /// more than was written.
    fn ends_at(&mut self, size: u64) -> io::Result<bool> {
        let aligned = size - size % ALIGN as u64;
        let window = &mut self.buf.window()[..ALIGN];
        loop {
            match self.file.read_at(window, aligned) {
                Ok(k) if aligned + k as u64 == size => return Ok(true),
                Ok(k) if aligned + (k as u64) < size => {
                    return Err(mismatch(Mismatch::EndsEarly(aligned + k as u64)));
                }
                Ok(_) => return Err(mismatch(Mismatch::GoesOn(size))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn mismatch(m: Mismatch) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A scratch directory on a disk filesystem (not tmpfs, where direct
    /// reads may be refused).
    fn scratch() -> tempfile::TempDir {
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect()
    }

    /// Writes `on_disk` to `path` while handing `written` over in pieces of
    /// `piece` bytes, as the archive writer does.
    fn read_back(path: &Path, on_disk: &[u8], written: &[u8], piece: usize) -> io::Result<Outcome> {
        let mut file = File::create(path).unwrap();
        let read_back = ReadBack::start_direct(path);
        let mut at = 0;
        for p in written.chunks(piece) {
            let end = (at + p.len()).min(on_disk.len());
            file.write_all(&on_disk[at.min(end)..end]).unwrap();
            at += p.len();
            if !read_back.wrote(Arc::new(p.to_vec())) {
                break;
            }
        }
        file.write_all(&on_disk[at.min(on_disk.len())..]).unwrap();
        read_back.finish()
    }

    #[test]
    fn what_was_written_is_read_back_from_the_device_and_hashed() {
        let dir = scratch();
        let path = dir.path().join("archive");
        for len in [0, 1, ALIGN - 1, ALIGN, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            for piece in [1000, 456_789, CHUNK] {
                let bytes = data(len);
                let outcome = read_back(&path, &bytes, &bytes, piece).unwrap();
                assert!(outcome.from_device, "length {len}, pieces of {piece}");
                assert_eq!(outcome.digest.size, len as u64);
                assert_eq!(outcome.digest.sha256, hex(&Sha256::digest(&bytes)));
            }
        }
    }

    #[test]
    fn a_byte_that_differs_on_disk_is_found_where_it_is() {
        let dir = scratch();
        let path = dir.path().join("archive");
        let written = data(3 * CHUNK + 12345);
        // In the first chunk, in a middle one, and in the short last one.
        for at in [0, 5, 2 * CHUNK + 77, 3 * CHUNK + 12344] {
            let mut on_disk = written.clone();
            on_disk[at] ^= 0x10;
            let err = read_back(&path, &on_disk, &written, 456_789).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(is_mismatch(&err));
            let inner = err.get_ref().unwrap().downcast_ref::<Mismatch>().unwrap();
            assert_eq!(*inner, Mismatch::Differs(at as u64));
        }
    }

    #[test]
    fn a_file_shorter_or_longer_on_disk_than_written_is_refused() {
        let dir = scratch();
        let path = dir.path().join("archive");
        let written = data(2 * CHUNK + 100);
        let short = read_back(&path, &written[..CHUNK + 50], &written, 300_000).unwrap_err();
        assert_eq!(
            short.get_ref().unwrap().downcast_ref::<Mismatch>(),
            Some(&Mismatch::EndsEarly(CHUNK as u64 + 50))
        );
        let mut long = written.clone();
        long.extend_from_slice(b"more");
        let err = read_back(&path, &long, &written, 300_000).unwrap_err();
        assert_eq!(
            err.get_ref().unwrap().downcast_ref::<Mismatch>(),
            Some(&Mismatch::GoesOn(written.len() as u64))
        );
        assert!(err.to_string().contains("goes on past byte"), "{err}");
    }

    #[test]
    fn only_filesystems_whose_direct_reads_reach_the_disk_are_trusted() {
        const EXT4: u64 = 0xEF53;
        assert!(trusted(0x5846_5342, 0, "rw,attr2,inode64"), "xfs");
        assert!(trusted(EXT4, 0x80000, "rw,relatime,errors=remount-ro"), "ext4, extents");
        assert!(!trusted(EXT4, 0, "rw,relatime,data=journal"), "ext4 journaling data");
        assert!(!trusted(EXT4, 0x4000, "rw"), "chattr +j");
        assert!(!trusted(EXT4, 0x800, "rw"), "encrypted");
        assert!(!trusted(EXT4, 0x0010_0000, "rw"), "verity");
        assert!(!trusted(0x9123_683E, 0, "rw,compress=zstd:3"), "btrfs");
        assert!(!trusted(0x2FC1_2FC1, 0, "rw"), "zfs");
        assert!(!trusted(0x0102_1994, 0, "rw"), "tmpfs");
        // This machine's disk: whatever it is, the answer follows the rule.
        let dir = scratch();
        let file = File::create(dir.path().join("f")).unwrap();
        let fs = rustix::fs::fstatfs(&file).unwrap();
        let flags = rustix::fs::ioctl_getflags(&file).map_or(0, |f| f.bits());
        let options = super_options(&file).expect("the mount is in /proc/self/mountinfo");
        assert_eq!(direct_reads_reach_the_disk(&file), trusted(fs.f_type as u64, flags, &options));
    }

    #[test]
    fn without_direct_reads_it_only_hashes() {
        // A path that cannot be opened stands for a filesystem that refuses
        // O_DIRECT: the caller must then read the file back itself.
        let dir = scratch();
        let read_back = ReadBack::start(&dir.path().join("absent"));
        assert!(read_back.wrote(Arc::new(b"abc".to_vec())));
        let outcome = read_back.finish().unwrap();
        assert!(!outcome.from_device);
        assert_eq!(outcome.digest.size, 3);
        assert_eq!(outcome.digest.sha256, hex(&Sha256::digest(b"abc")));
    }
}
