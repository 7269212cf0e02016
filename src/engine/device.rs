//! Reading a file from the storage device rather than the page cache: for
//! the checks that must prove what the disk holds (archives), and for the
//! database files a snapshot archives, which a stopped server leaves out
//! of the cache and nobody will read again soon.
//!
//! The file is opened with `O_DIRECT` and read in large aligned chunks by a
//! second thread while the caller consumes the previous chunk, so reading
//! overlaps hashing and decompressing. A direct read first writes back any
//! dirty cached pages of the range and then reads the device, so it sees
//! what is on disk whatever the cache holds, and it leaves nothing in the
//! cache.
//!
//! Invariant: the consumer sees every byte of the file (of a source, up to
//! the length asked for) exactly once, in order. Where the filesystem
//! refuses `O_DIRECT` (some FUSE and network filesystems, tmpfs on older
//! kernels), or a direct read is refused or comes back short before the
//! end, reading goes on through the page cache from the same offset; for
//! an archive, after asking the kernel to drop the file's cached pages.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustix::fs::{Advice, OFlags, fadvise, fcntl_getfl, fcntl_setfl};

/// Bytes per read; a multiple of any device's logical block size.
pub(crate) const CHUNK: usize = 1 << 20;
/// Alignment of buffers and offsets for direct reads.
pub(crate) const ALIGN: usize = 4096;
/// Buffers in flight between the reading thread and the consumer.
const BUFFERS: usize = 3;

/// A buffer with an aligned window of `CHUNK` bytes.
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    pub(crate) fn new() -> Self {
        let bytes = vec![0u8; CHUNK + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN).min(ALIGN);
        Buffer { bytes, start, len: 0 }
    }

    pub(crate) fn window(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + CHUNK]
    }

    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }
}

/// A file read from the device in large chunks by a second thread, ahead
/// of the consumer. Dropping it stops the thread.
pub struct DeviceReader {
    file: Arc<File>,
    full: Receiver<io::Result<Buffer>>,
    free: SyncSender<Buffer>,
    current: Option<Buffer>,
    pos: usize,
    done: bool,
}

/// Opens `path` for reading from the device, to its end.
pub fn open(path: &Path) -> io::Result<DeviceReader> {
    let file = open_direct(path, true)?;
    Ok(DeviceReader::spawn(file, Cursor::new(u64::MAX, false, true)))
}

/// Opens a source file (a database file, say) to read its first `len`
/// bytes from the device, ahead of the consumer. The holes of a sparse file
/// are zeros that are not read: `SEEK_DATA` and `SEEK_HOLE` say where they
/// are. The consumer sees fewer bytes if the file is shorter by then. Where
/// direct reads are refused, it is read through the page cache, which is
/// left alone: the server may be using it.
pub fn open_source(path: &Path, len: u64) -> io::Result<DeviceReader> {
    let file = open_direct(path, false)?;
    Ok(DeviceReader::spawn(file, Cursor::new(len, true, false)))
}

/// [`open_source`] for a file already opened (the caller checked it is the
/// file it means): `O_DIRECT` is turned on where the filesystem allows it.
pub fn open_source_file(file: File, len: u64) -> DeviceReader {
    if let Ok(flags) = fcntl_getfl(&file) {
        let _ = rustix::fs::fcntl_setfl(&file, flags | OFlags::DIRECT);
    }
    DeviceReader::spawn(file, Cursor::new(len, true, false))
}

/// Opens `path` for reading with `O_DIRECT`; fails with `EINVAL` where the
/// filesystem refuses it.
pub(crate) fn open_direct_only(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(OFlags::DIRECT.bits() as i32).open(path)
}

/// Opens `path` with `O_DIRECT`, or without it where the filesystem refuses
/// it, then dropping its cached pages if `drop_cache`.
fn open_direct(path: &Path, drop_cache: bool) -> io::Result<File> {
    match open_direct_only(path) {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            let f = File::open(path)?;
            if drop_cache {
                let _ = fadvise(&f, 0, None, Advice::DontNeed);
            }
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

impl DeviceReader {
    fn spawn(file: File, mut cursor: Cursor) -> Self {
        let file = Arc::new(file);
        let (full_tx, full) = sync_channel::<io::Result<Buffer>>(BUFFERS);
        let (free, free_rx) = sync_channel::<Buffer>(BUFFERS);
        for _ in 0..BUFFERS {
            let _ = free.send(Buffer::new());
        }
        let reading = Arc::clone(&file);
        std::thread::spawn(move || {
            cursor.direct = fcntl_getfl(&*reading).is_ok_and(|f| f.contains(OFlags::DIRECT));
            // Ends when the reader is dropped (no more free buffers) or the
            // file ended or failed.
            for mut buf in free_rx {
                let got = cursor.fill(&reading, &mut buf);
                let done = matches!(got, Ok(0) | Err(_));
                if full_tx.send(got.map(|_| buf)).is_err() || done {
                    return;
                }
            }
        });
        DeviceReader { file, full, free, current: None, pos: 0, done: false }
    }

    /// The file being read (its metadata, say).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl BufRead for DeviceReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.current.as_ref().is_some_and(|b| self.pos == b.len)
            && let Some(used) = self.current.take()
        {
            // The thread only stops taking buffers once it has ended.
            let _ = self.free.send(used);
        }
        if self.current.is_none() && !self.done {
            match self.full.recv() {
                Ok(Ok(buf)) if buf.len > 0 => {
                    self.current = Some(buf);
                    self.pos = 0;
                }
                Ok(Ok(_)) => self.done = true,
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("the device reader stopped")),
            }
        }
        Ok(self.current.as_ref().map_or(&[][..], |b| &b.data()[self.pos..]))
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

impl Read for DeviceReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let data = self.fill_buf()?;
        let n = data.len().min(out.len());
        out[..n].copy_from_slice(&data[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Reads the file at `path` to its end from the device, handing each chunk
/// to `each` in order; returns the number of bytes read.
pub fn read_through(path: &Path, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut reader = open(path)?;
    let mut total = 0u64;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(total);
        }
        each(chunk);
        let n = chunk.len();
        total += n as u64;
        reader.consume(n);
    }
}

/// Where the reading thread is in its file, and how it reads.
struct Cursor {
    at: u64,
    /// Read no further than this.
    end: u64,
    /// Reading with `O_DIRECT`.
    direct: bool,
    /// Skip the holes of sparse files.
    holes: bool,
    /// Whether `at` lies in data (else in a hole), and where that ends.
    in_data: bool,
    extent_end: u64,
    /// Drop the file's cached pages when leaving direct reads.
    drop_cache: bool,
}

impl Cursor {
    fn new(end: u64, holes: bool, drop_cache: bool) -> Self {
        Cursor { at: 0, end, direct: false, holes, in_data: true, extent_end: 0, drop_cache }
    }

    /// Fills `buf`'s window with the next bytes, as far as the file goes.
    /// A direct read that is refused or comes back short before the end
    /// leaves direct mode for the rest of the file.
    fn fill(&mut self, file: &File, buf: &mut Buffer) -> io::Result<usize> {
        let want = (self.end - self.at).min(CHUNK as u64) as usize;
        let window = buf.window();
        let mut got = 0;
        while got < want {
            let at = self.at + got as u64;
            if !self.holes {
                self.extent_end = u64::MAX;
            } else if at >= self.extent_end {
                (self.in_data, self.extent_end) = extent(file, at);
            }
            let n = ((want - got) as u64).min(self.extent_end - at) as usize;
            if !self.in_data {
                window[got..got + n].fill(0);
                got += n;
                continue;
            }
            // Direct reads take whole blocks; what lies past `n` is not used.
            let ask = if self.direct { n.next_multiple_of(ALIGN).min(CHUNK - got) } else { n };
            match file.read_at(&mut window[got..got + ask], at) {
                Ok(0) => break,
                Ok(k) => {
                    let k = k.min(n);
                    got += k;
                    if self.direct && got < want && !(self.at + got as u64).is_multiple_of(ALIGN as u64) {
                        // The end of the file, or a short read: either way
                        // the next offset is unaligned.
                        self.leave_direct(file)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if self.direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    self.leave_direct(file)?;
                }
                Err(e) => return Err(e),
            }
        }
        buf.len = got;
        self.at += got as u64;
        Ok(got)
    }

    fn leave_direct(&mut self, file: &File) -> io::Result<()> {
        fcntl_setfl(file, fcntl_getfl(file)? - OFlags::DIRECT)?;
        if self.drop_cache {
            let _ = fadvise(file, 0, None, Advice::DontNeed);
        }
        self.direct = false;
        Ok(())
    }
}

/// Whether `at` lies in data or in a hole of `file`, and where that extent
/// ends. Filesystems without `SEEK_DATA` report all data; so is the end of
/// the file, where reading finds nothing more.
fn extent(file: &File, at: u64) -> (bool, u64) {
    use rustix::fs::{SeekFrom, seek};
    match seek(file, SeekFrom::Data(at)) {
        Ok(data) if data > at => (false, data),
        Ok(_) => (true, seek(file, SeekFrom::Hole(at)).unwrap_or(u64::MAX).max(at + 1)),
        // No data from `at` on: a hole up to the end of the file.
        Err(rustix::io::Errno::NXIO) => match file.metadata() {
            Ok(m) if m.len() > at => (false, m.len()),
            _ => (true, u64::MAX),
        },
        Err(_) => (true, u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        let n = read_through(path, |chunk| out.extend_from_slice(chunk)).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    #[test]
    fn reads_every_byte_in_order_at_awkward_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(0x9E37_79B9) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            File::open(&path).unwrap().sync_all().unwrap();
            assert!(read_all(&path) == data, "length {len}");
        }
    }

    #[test]
    fn a_filesystem_without_direct_reads_is_read_through_the_cache() {
        // procfs refuses O_DIRECT (EINVAL), as some FUSE and network
        // filesystems do.
        let path = Path::new("/proc/version");
        assert!(
            OpenOptions::new().read(true).custom_flags(OFlags::DIRECT.bits() as i32).open(path).is_err(),
            "this test needs a file that refuses O_DIRECT"
        );
        assert_eq!(read_all(path), std::fs::read(path).unwrap());
    }

    #[test]
    fn reads_the_device_and_leaves_nothing_cached() {
        // Not /tmp: on tmpfs every page is a cached page.
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let path = dir.path().join("f");
        let data = vec![7u8; 2 * CHUNK];
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        let _ = fadvise(&file, 0, None, Advice::DontNeed);
        assert!(read_all(&path) == data);
        // A buffered read would have left the file's pages in the cache.
        assert_eq!(cached_pages(&path), 0, "the read went through the page cache");
    }

    /// Pages of `path` in the page cache, as fincore(1) (util-linux) counts them.
    fn cached_pages(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--noheadings", "--output", "PAGES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) is needed");
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    }

    fn read_source(path: &Path, len: u64) -> Vec<u8> {
        let mut reader = open_source(path, len).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_source_is_read_to_its_length_with_its_holes_as_zeros() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let path = dir.path().join("vault.mdf");
        // Data, a hole of megabytes, data at an unaligned end, a trailing hole.
        let mut f = File::create(&path).unwrap();
        f.write_all(&[1u8; 5000]).unwrap();
        f.seek(SeekFrom::Start(3 * CHUNK as u64)).unwrap();
        f.write_all(&[2u8; 777]).unwrap();
        f.set_len(4 * CHUNK as u64 + 123).unwrap();
        f.sync_all().unwrap();
        let whole = std::fs::read(&path).unwrap();
        let len = whole.len() as u64;
        let _ = fadvise(&f, 0, None, Advice::DontNeed);
        assert!(read_source(&path, len) == whole);
        // Only the length asked for, even where the file goes on ...
        assert!(read_source(&path, 3 * CHUNK as u64 + 100) == whole[..3 * CHUNK + 100]);
        // ... and no more than the file holds where it is shorter.
        assert!(read_source(&path, len + 5000) == whole);
        assert_eq!(cached_pages(&path), 0, "the read went through the page cache");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_through(&dir.path().join("absent"), |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
