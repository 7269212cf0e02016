//! The snapshot archive: install files → tar.gz while hashing every file and
//! the archive in the same pass ([`write`]), and tar.gz → checked entries
//! ([`check`]).
//!
//! Invariants: every entry written is recorded (path, type, size, SHA-256,
//! mode, owner, mtime) in archive order; reading checks each entry against
//! that record in the same order, so an entry that is not in the manifest,
//! out of place, of a forbidden kind (hard link, device, fifo), with a path
//! that could leave the install (`..`, absolute, through a symlink or a
//! file), or with other bytes is an integrity failure. Reading never writes:
//! callers decide what to do with each checked entry.

pub mod check;
pub mod write;

use std::fs::Metadata;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use sha2::{Digest, Sha256};

pub use check::{Content, check_link_target, check_manifest, check_rel_path, scan, scan_reader};
pub use write::append_sources;

/// Size of reads from source files and from the archive.
pub const CHUNK: usize = 1 << 20;

/// A file system object to put in the archive.
#[derive(Debug)]
pub struct Source {
    /// Install-relative, `/`-separated path, the name in the archive.
    pub rel: String,
    /// Where it is now.
    pub abs: PathBuf,
    /// Its metadata, read without following symlinks.
    pub meta: Metadata,
}

/// Size and SHA-256 of a written archive.
#[derive(Debug, Clone)]
pub struct Digest256 {
    /// Bytes written.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// A reader that hashes and counts the bytes it passes on.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> HashReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        HashReader { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Size and SHA-256 of what was read so far.
    pub fn digest(&self) -> Digest256 {
        Digest256 { size: self.count, sha256: crate::engine::manifest::hex(&self.hasher.clone().finalize()) }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A stream of chunks from another thread as a `Read` (the decompressed
/// archive fed by [`decode`], or an archive fed by whoever reads it).
pub struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// Reads the chunks `rx` receives until its sender is dropped.
    pub fn new(rx: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader { rx, buf: Vec::new(), pos: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
